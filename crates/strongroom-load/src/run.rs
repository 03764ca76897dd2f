//! The driver: a fixed number of clients, each running operations back to back (or
//! paced to a total rate) until the time or the count runs out, every latency kept.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::Load;

/// What a client can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Op {
    /// Create a record.
    Create,
    /// Read one record by id.
    Read,
    /// Replace a draft's content (`If-Match`).
    Update,
    /// A filtered list (an exact match on an indexed field).
    List,
    /// A page of the audit trail.
    Audit,
    /// Submit a draft and sign it (re-authenticating with the password).
    Sign,
}

impl Op {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Read => "read",
            Self::Update => "update",
            Self::List => "list",
            Self::Audit => "audit",
            Self::Sign => "sign",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            Self::Create,
            Self::Read,
            Self::Update,
            Self::List,
            Self::Audit,
            Self::Sign,
        ]
        .into_iter()
        .find(|o| o.name() == s)
    }
}

/// Weighted operations: `create=40,read=30`.
#[derive(Debug, Clone)]
pub(crate) struct Mix(Vec<(Op, u32)>);

impl Mix {
    pub(crate) fn parse(text: &str) -> anyhow::Result<Self> {
        let mut out = Vec::new();
        for part in text.split(',').filter(|p| !p.is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .with_context(|| format!("mix entry {part:?}: expected op=weight"))?;
            let op =
                Op::parse(name.trim()).with_context(|| format!("unknown operation {name:?}"))?;
            let w: u32 = weight
                .trim()
                .parse()
                .with_context(|| format!("weight {weight:?}"))?;
            if w > 0 {
                out.push((op, w));
            }
        }
        if out.is_empty() {
            bail!("the mix has no operation with a weight above 0");
        }
        Ok(Self(out))
    }

    /// One operation alone.
    pub(crate) fn only(op: Op) -> Self {
        Self(vec![(op, 1)])
    }

    fn pick(&self, rng: &mut Rng) -> Op {
        let total: u32 = self.0.iter().map(|(_, w)| w).sum();
        let mut r = rng.below(u64::from(total));
        for (op, w) in &self.0 {
            if r < u64::from(*w) {
                return *op;
            }
            r -= u64::from(*w);
        }
        self.0[0].0
    }
}

/// A small xorshift generator: picks operations and records, nothing secret.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        if n == 0 { 0 } else { self.0 % n }
    }
}

/// One client's connection to a target: runs an operation, returns the HTTP status
/// (0 for a transport error).
pub(crate) trait Client: Send + 'static {
    /// Runs `op`; `n` numbers the client's operations.
    fn op(&mut self, op: Op, n: u64, rng: &mut Rng) -> impl Future<Output = u16> + Send;
}

/// What one kind of operation did.
#[derive(Debug, Default, Clone)]
pub(crate) struct Tally {
    /// Latencies of successful (2xx) operations, microseconds.
    pub(crate) ok: Vec<u32>,
    /// Failed operations by status (0: transport error).
    pub(crate) errors: BTreeMap<u16, u64>,
}

/// Everything a run measured.
#[derive(Debug, Default)]
pub(crate) struct Measured {
    pub(crate) by_op: BTreeMap<Op, Tally>,
    pub(crate) elapsed: Duration,
}

/// Runs `clients` with `load`'s settings and `mix`.
#[allow(clippy::too_many_lines)] // one loop, read top to bottom
pub(crate) async fn drive<C: Client>(
    load: &Load,
    clients: Vec<C>,
    mix: &Mix,
) -> anyhow::Result<Measured> {
    let started = Instant::now();
    let deadline = started + load.duration();
    let budget = Arc::new(AtomicU64::new(load.count.unwrap_or(u64::MAX)));
    let n = clients.len() as u64;
    // Paced: each client starts an operation every `interval`, latency measured from
    // when it should have started (so a slow server is not hidden by waiting clients).
    let interval = (load.rate > 0).then(|| Duration::from_secs_f64(n as f64 / load.rate as f64));
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut client)| {
            let (budget, mix) = (budget.clone(), mix.clone());
            tokio::spawn(async move {
                let mut rng = Rng::new(i as u64 + 1);
                let mut by_op: BTreeMap<Op, Tally> = BTreeMap::new();
                let offset = interval.map(|d| d.mul_f64(i as f64 / n as f64));
                let mut k = 0u64;
                loop {
                    let due = match (interval, offset) {
                        (Some(d), Some(o)) => started + o + d.mul_f64(k as f64),
                        _ => Instant::now(),
                    };
                    if due >= deadline
                        || budget
                            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                                b.checked_sub(1)
                            })
                            .is_err()
                    {
                        break;
                    }
                    tokio::time::sleep_until(due.into()).await;
                    let op = mix.pick(&mut rng);
                    let status = client.op(op, k, &mut rng).await;
                    let took = due.elapsed();
                    let tally = by_op.entry(op).or_default();
                    if (200..300).contains(&status) {
                        tally
                            .ok
                            .push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
                    } else {
                        *tally.errors.entry(status).or_default() += 1;
                    }
                    k += 1;
                }
                by_op
            })
        })
        .collect();
    let mut all = Measured::default();
    for t in tasks {
        let by_op = t.await.context("a client task failed")?;
        {
            for (op, tally) in by_op {
                let into = all.by_op.entry(op).or_default();
                into.ok.extend(tally.ok);
                for (s, c) in tally.errors {
                    *into.errors.entry(s).or_default() += c;
                }
            }
        }
    }
    all.elapsed = started.elapsed();
    let ok: usize = all.by_op.values().map(|t| t.ok.len()).sum();
    let failed: u64 = all.by_op.values().flat_map(|t| t.errors.values()).sum();
    // A run that mostly failed measured the failures: refuse to report it as a rate.
    if ok == 0 || failed * 20 > ok as u64 {
        bail!(
            "{ok} operations succeeded and {failed} failed: {:?}",
            all.by_op
                .iter()
                .map(|(op, t)| (op.name(), &t.errors))
                .collect::<Vec<_>>()
        );
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mix_parses_weights_and_refuses_nonsense() {
        let m = Mix::parse("create=3,read=1,sign=0").unwrap();
        let mut rng = Rng::new(7);
        let picks: Vec<Op> = (0..4000).map(|_| m.pick(&mut rng)).collect();
        let creates = picks.iter().filter(|o| **o == Op::Create).count();
        assert!(picks.iter().all(|o| matches!(o, Op::Create | Op::Read)));
        assert!((2700..3300).contains(&creates), "{creates} creates of 4000");
        for bad in ["", "create", "create=x", "teleport=1", "sign=0"] {
            assert!(Mix::parse(bad).is_err(), "{bad:?}");
        }
    }
}
