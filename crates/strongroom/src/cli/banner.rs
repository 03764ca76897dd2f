//! What `serve` prints on start: where it listens and what to do next.

use std::io::Write;
use std::net::SocketAddr;

use strongroom_core::config::Config;

use crate::datadir::InitReport;
use crate::tls::CertInfo;

/// Prints the start-up banner. Its first line, `strongroom: listening on <url>`, is
/// stable: scripts and the test harness wait for it.
pub fn banner(
    out: &mut dyn Write,
    addr: SocketAddr,
    config: &Config,
    report: &InitReport,
    cert: &CertInfo,
) -> std::io::Result<()> {
    let url = format!("https://{addr}");
    let dir = config.data_dir.display();
    writeln!(out, "strongroom: listening on {url}")?;
    if report.created_root_key {
        writeln!(
            out,
            "  initialised data directory {dir} (database, root key file root.key with mode 0600)"
        )?;
        writeln!(
            out,
            "  back up {dir}/root.key separately from the data: without it the data cannot be read"
        )?;
    } else if report.created_dir {
        writeln!(out, "  initialised data directory {dir}")?;
    } else {
        writeln!(out, "  data directory {dir}")?;
    }
    if config.keys.root != strongroom_core::config::LOCAL_PROVIDER {
        writeln!(
            out,
            "  root key: provider `{}` (PKCS#11 token; the key never leaves it)",
            config.keys.root
        )?;
    }
    let kind = if cert.self_signed {
        "self-signed"
    } else {
        "configured"
    };
    writeln!(
        out,
        "  TLS certificate ({kind}): {} sha256 {}",
        cert.cert_file.display(),
        cert.sha256
    )?;
    let regions: Vec<&str> = config.regions.keys().map(|r| r.as_str()).collect();
    writeln!(out, "  regions: {}", regions.join(", "))?;
    next_steps(out, &url, &dir.to_string(), cert, regions.first().copied())?;
    out.flush()
}

/// The "next steps" part of the banner: commands a newcomer can paste.
fn next_steps(
    out: &mut dyn Write,
    url: &str,
    dir: &str,
    cert: &CertInfo,
    region: Option<&str>,
) -> std::io::Result<()> {
    let cacert = if cert.self_signed {
        format!(" --cacert {}", cert.cert_file.display())
    } else {
        String::new()
    };
    writeln!(out)?;
    writeln!(out, "Next steps:")?;
    writeln!(
        out,
        "  1. create an operator:  strongroom operator create --data-dir {dir} --email you@example.com"
    )?;
    writeln!(
        out,
        "  2. sign in:             curl{cacert} -H 'content-type: application/json' \\\n                            \
         -d '{{\"email\":\"you@example.com\",\"password\":\"...\"}}' {url}/v1/operator/sessions"
    )?;
    writeln!(
        out,
        "  3. create a tenant:     curl{cacert} -H \"authorization: Bearer $TOKEN\" -H 'content-type: application/json' \\\n                            \
         -d '{{\"slug\":\"acme\",\"display_name\":\"Acme\",\"region\":\"{}\"}}' {url}/v1/tenants",
        region.unwrap_or("local")
    )?;
    writeln!(out, "  API reference:          {url}/openapi.json")?;
    Ok(())
}
