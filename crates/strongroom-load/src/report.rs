//! The report: per operation and in total, throughput, latency percentiles and errors
//! by status, and the server's peak and current resident memory; as a table and,
//! with `--json`, as one JSON object on the last line.

use serde_json::{Value, json};

use crate::run::{Measured, Tally};

/// The `q`-quantile of sorted microsecond latencies, in milliseconds.
fn quantile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() as f64) * q).ceil() as usize;
    f64::from(sorted[rank.clamp(1, sorted.len()) - 1]) / 1000.0
}

fn summary(name: &str, t: &Tally, secs: f64) -> Value {
    let mut lat = t.ok.clone();
    lat.sort_unstable();
    let errors: serde_json::Map<String, Value> = t
        .errors
        .iter()
        .map(|(s, c)| {
            (
                if *s == 0 {
                    "io".to_owned()
                } else {
                    s.to_string()
                },
                json!(c),
            )
        })
        .collect();
    json!({
        "op": name,
        "ok": lat.len(),
        "per_sec": lat.len() as f64 / secs,
        "p50_ms": quantile(&lat, 0.50),
        "p95_ms": quantile(&lat, 0.95),
        "p99_ms": quantile(&lat, 0.99),
        "max_ms": quantile(&lat, 1.0),
        "errors": errors,
    })
}

/// Resident memory of a process from `/proc`: (peak, now) in MiB.
pub(crate) fn rss_mib(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

/// CPU seconds (user + system) a process has used, from `/proc/<pid>/stat` (in clock
/// ticks, which Linux reports at 100 per second on every architecture we run on).
pub(crate) fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at state.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the state.
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

/// Prints the report; returns it as JSON.
pub(crate) fn print(label: &str, m: &Measured, server_pid: Option<u32>, json_line: bool) -> Value {
    let secs = m.elapsed.as_secs_f64();
    let mut rows = Vec::new();
    let mut total = Tally::default();
    for (op, t) in &m.by_op {
        rows.push(summary(op.name(), t, secs));
        total.ok.extend(&t.ok);
        for (s, c) in &t.errors {
            *total.errors.entry(*s).or_default() += c;
        }
    }
    rows.push(summary("total", &total, secs));
    println!("{label} — {secs:.1} s");
    println!(
        "{:<8} {:>9} {:>10} {:>8} {:>8} {:>8} {:>8}  errors",
        "op", "ok", "per s", "p50 ms", "p95 ms", "p99 ms", "max ms"
    );
    for r in &rows {
        println!(
            "{:<8} {:>9} {:>10.1} {:>8.2} {:>8.2} {:>8.2} {:>8.2}  {}",
            r["op"].as_str().unwrap_or(""),
            r["ok"],
            r["per_sec"].as_f64().unwrap_or(0.0),
            r["p50_ms"].as_f64().unwrap_or(0.0),
            r["p95_ms"].as_f64().unwrap_or(0.0),
            r["p99_ms"].as_f64().unwrap_or(0.0),
            r["max_ms"].as_f64().unwrap_or(0.0),
            r["errors"]
        );
    }
    let rss = server_pid.and_then(rss_mib);
    if let Some((peak, now)) = rss {
        println!("server RSS: peak {peak:.1} MiB, now {now:.1} MiB");
    }
    let report = json!({
        "label": label,
        "secs": secs,
        "ops": rows,
        "server_peak_rss_mib": rss.map(|r| r.0),
        "server_rss_mib": rss.map(|r| r.1),
    });
    if json_line {
        println!("{report}");
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank_in_milliseconds() {
        let sorted: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        assert!((quantile(&sorted, 0.50) - 50.0).abs() < f64::EPSILON);
        assert!((quantile(&sorted, 0.99) - 99.0).abs() < f64::EPSILON);
        assert!((quantile(&sorted, 1.0) - 100.0).abs() < f64::EPSILON);
        assert!(quantile(&[], 0.5).abs() < f64::EPSILON);
    }

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let pid = std::process::id();
        assert!(cpu_secs(pid).is_some());
        let (peak, now) = rss_mib(pid).unwrap();
        assert!(peak >= now && now > 0.0);
    }
}
