//! `strongroom audit …`: a tenant's or the platform's audit trail from the command line.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use strongroom_core::audit::note::{Checkpoint, Verifier};
use strongroom_core::audit::verify::{Source, Verdict, Verified, tile_paths, verify};
use strongroom_core::tenant::Slug;

use super::{AuditCommand, Trail};

/// The trail an audit command reads.
enum Which {
    Tenant(Slug),
    Platform,
}

impl Which {
    fn of(trail: &Trail) -> anyhow::Result<Self> {
        match (&trail.tenant, trail.platform) {
            (Some(t), false) => Ok(Self::Tenant(Slug::parse(t)?)),
            (None, true) => Ok(Self::Platform),
            _ => bail!("give either --tenant or --platform"),
        }
    }

    async fn vkey(&self, admin: &super::Admin) -> anyhow::Result<String> {
        let (platform, me) = (&admin.platform, &admin.me);
        Ok(match self {
            Self::Tenant(slug) => platform.audit_vkey(me, slug).await?,
            Self::Platform => platform.platform_audit_vkey(me).await?,
        })
    }

    async fn checkpoint(&self, admin: &super::Admin) -> anyhow::Result<String> {
        let (platform, me) = (&admin.platform, &admin.me);
        Ok(match self {
            Self::Tenant(slug) => platform.audit_checkpoint(me, slug).await?,
            Self::Platform => platform.platform_audit_checkpoint(me).await?,
        })
    }

    async fn tile(&self, admin: &super::Admin, path: &str) -> anyhow::Result<Vec<u8>> {
        let (platform, me) = (&admin.platform, &admin.me);
        Ok(match self {
            Self::Tenant(slug) => platform.audit_tile(me, slug, path).await?,
            Self::Platform => platform.platform_audit_tile(me, path).await?,
        })
    }
}

fn out(text: &str) -> anyhow::Result<()> {
    writeln!(std::io::stdout().lock(), "{text}")?;
    Ok(())
}

pub(super) async fn run(admin: &super::Admin, cmd: AuditCommand) -> anyhow::Result<()> {
    let (platform, me) = (&admin.platform, &admin.me);
    match cmd {
        AuditCommand::Vkey { trail } => out(&Which::of(&trail)?.vkey(admin).await?),
        AuditCommand::Checkpoint { trail } => {
            let note = Which::of(&trail)?.checkpoint(admin).await?;
            write!(std::io::stdout().lock(), "{note}")?;
            Ok(())
        }
        AuditCommand::Export { trail, dir } => {
            let which = Which::of(&trail)?;
            if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
                bail!("{} is not empty", dir.display());
            }
            let note = which.checkpoint(admin).await?;
            let vkey = which.vkey(admin).await?;
            let text = Verifier::parse(&vkey)?.open(&note)?.to_owned();
            let size = Checkpoint::parse(&text)?.size;
            write_file(&dir, "checkpoint", note.as_bytes())?;
            write_file(&dir, "vkey", format!("{vkey}\n").as_bytes())?;
            let mut files = 2;
            let mut paths = tile_paths(size, None);
            let mut level = 0u8;
            while size.checked_shr(8 * u32::from(level)).unwrap_or(0) > 0 {
                paths.extend(tile_paths(size, Some(level)));
                level += 1;
            }
            for path in paths {
                let bytes = which.tile(admin, &path).await?;
                write_file(&dir, &path, &bytes)?;
                files += 1;
            }
            out(&format!(
                "exported {size} entries ({files} files) to {}",
                dir.display()
            ))
        }
        AuditCommand::EraseSubject {
            tenant,
            subject,
            reason,
        } => {
            let n = platform
                .audit_erase_subject(me, &Slug::parse(&tenant)?, &subject, reason)
                .await?;
            out(&format!(
                "erased {n} personal-data key(s) of {subject} in {tenant}; entries and proofs are unchanged"
            ))
        }
        AuditCommand::Verify { .. } => bail!("verify runs without a data directory"),
    }
}

fn write_file(dir: &Path, rel: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))
}

struct DirSource<'a>(&'a Path);

impl Source for DirSource<'_> {
    fn read(&mut self, path: &str) -> Option<Vec<u8>> {
        // Paths come from our own tile-path encoder; refuse anything else anyway.
        if path.split('/').any(|c| c.is_empty() || c == "..") {
            return None;
        }
        std::fs::read(self.0.join(path)).ok()
    }
}

/// `audit verify --dir`: one line, exit status 1 on any problem.
pub(super) fn verify_dir(dir: &Path, vkey: &str, state: Option<&Path>) -> anyhow::Result<()> {
    verdict(&mut DirSource(dir), vkey, state)
}

/// Where `audit verify --url` fetches from.
pub(super) struct Remote {
    /// Base URL of the server.
    pub url: String,
    /// Tenant slug, or none for the platform's own trail.
    pub tenant: Option<String>,
    /// Certificates to trust instead of the system roots.
    pub ca_cert: Option<std::path::PathBuf>,
    /// File holding the bearer token.
    pub token_file: Option<std::path::PathBuf>,
}

/// Largest response accepted from the server (an entry bundle of 256 large entries).
const MAX_FETCH: usize = 64 << 20;

/// Reads the tlog-tiles layout from a server. `Source` is synchronous (the verifier
/// is plain code), so this runs on a blocking thread and drives each request on the
/// runtime.
struct HttpSource {
    client: reqwest::Client,
    base: String,
    token: Option<String>,
    runtime: tokio::runtime::Handle,
    /// The first failure other than "not found", reported with the verdict.
    error: Option<String>,
}

impl HttpSource {
    async fn fetch(&self, path: &str) -> Result<Option<Vec<u8>>, String> {
        let mut req = self.client.get(format!("{}/{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let mut resp = req
            .send()
            .await
            .map_err(|e| format!("fetching {path}: {e}"))?;
        match resp.status().as_u16() {
            200 => {}
            404 => return Ok(None),
            s => return Err(format!("fetching {path}: HTTP {s}")),
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| format!("reading {path}: {e}"))?
        {
            if body.len() + chunk.len() > MAX_FETCH {
                return Err(format!("{path} is larger than {MAX_FETCH} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Some(body))
    }
}

impl Source for HttpSource {
    fn read(&mut self, path: &str) -> Option<Vec<u8>> {
        match self.runtime.block_on(self.fetch(path)) {
            Ok(body) => body,
            Err(e) => {
                self.error.get_or_insert(e);
                None
            }
        }
    }
}

/// `audit verify --url … --tenant …|--platform`: fetches the checkpoint and tiles over HTTPS and
/// verifies them exactly as `--dir` does.
pub(super) async fn verify_url(
    remote: Remote,
    vkey: String,
    state: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let trail = match &remote.tenant {
        Some(t) => format!("t/{}", Slug::parse(t)?.as_str()),
        None => "platform".to_owned(),
    };
    let mut builder = reqwest::Client::builder()
        .https_only(true)
        .timeout(std::time::Duration::from_secs(60));
    if let Some(path) = &remote.ca_cert {
        let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("{} holds no PEM certificate", path.display()))?;
        builder = builder.tls_certs_only(certs);
    }
    let token = match &remote.token_file {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .with_context(|| format!("reading {}", p.display()))?
                .trim()
                .to_owned(),
        ),
        None => None,
    };
    let mut src = HttpSource {
        client: builder.build()?,
        base: format!("{}/v1/{trail}/audit", remote.url.trim_end_matches('/')),
        token,
        runtime: tokio::runtime::Handle::current(),
        error: None,
    };
    tokio::task::spawn_blocking(move || {
        let result = verdict(&mut src, &vkey, state.as_deref());
        match (result, src.error) {
            // Say why a file was missing: a refused token reads differently from a
            // truncated log.
            (Err(e), Some(fetch)) => bail!("{e} ({fetch})"),
            (result, _) => result,
        }
    })
    .await?
}

/// Verifies `src` and prints the one-line verdict (an error on failure).
fn verdict(src: &mut dyn Source, vkey: &str, state: Option<&Path>) -> anyhow::Result<()> {
    let previous: Option<Verified> = match state {
        Some(p) if p.exists() => Some(
            serde_json::from_slice(&std::fs::read(p)?)
                .with_context(|| format!("state file {}", p.display()))?,
        ),
        _ => None,
    };
    match verify(src, vkey, previous.as_ref()) {
        Verdict::Ok(v) => {
            if let Some(p) = state {
                std::fs::write(p, serde_json::to_vec_pretty(&v)?)?;
            }
            out(&format!(
                "OK: {} entries of {} verified, root {}",
                v.size, v.origin, v.root
            ))
        }
        Verdict::Bad {
            reason,
            first_bad_index,
        } => {
            let at = first_bad_index.map_or(String::new(), |i| format!(" (first bad index {i})"));
            bail!("FAILED: {reason}{at}")
        }
    }
}
