//! `strongroom audit …`: the tenant audit trail from the command line.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use strongroom_core::access::Principal;
use strongroom_core::audit::note::{Checkpoint, Verifier};
use strongroom_core::audit::verify::{Source, Verdict, Verified, tile_paths, verify};
use strongroom_core::platform::Platform;
use strongroom_core::tenant::Slug;

use super::AuditCommand;

fn out(text: &str) -> anyhow::Result<()> {
    writeln!(std::io::stdout().lock(), "{text}")?;
    Ok(())
}

pub(super) async fn run(platform: &Platform, cmd: AuditCommand) -> anyhow::Result<()> {
    let me = Principal::LocalAdmin;
    match cmd {
        AuditCommand::Vkey { tenant } => {
            out(&platform.audit_vkey(&me, &Slug::parse(&tenant)?).await?)
        }
        AuditCommand::Checkpoint { tenant } => {
            let note = platform
                .audit_checkpoint(&me, &Slug::parse(&tenant)?)
                .await?;
            write!(std::io::stdout().lock(), "{note}")?;
            Ok(())
        }
        AuditCommand::Export { tenant, dir } => {
            let slug = Slug::parse(&tenant)?;
            if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
                bail!("{} is not empty", dir.display());
            }
            let note = platform.audit_checkpoint(&me, &slug).await?;
            let vkey = platform.audit_vkey(&me, &slug).await?;
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
                let bytes = platform.audit_tile(&me, &slug, &path).await?;
                write_file(&dir, &path, &bytes)?;
                files += 1;
            }
            out(&format!(
                "exported {size} entries ({files} files) to {}",
                dir.display()
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
    let previous: Option<Verified> = match state {
        Some(p) if p.exists() => Some(
            serde_json::from_slice(&std::fs::read(p)?)
                .with_context(|| format!("state file {}", p.display()))?,
        ),
        _ => None,
    };
    match verify(&mut DirSource(dir), vkey, previous.as_ref()) {
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
