//! Verifying a tenant's audit log from a tlog-tiles copy (an export directory), as an
//! auditor would: the checkpoint's signature, every entry re-hashed, the root recomputed,
//! the stored tiles compared, sequence numbers checked, and consistency with the last
//! verified state (so a rolled-back log is caught).

use super::merkle::{Hash, leaf_hash, root_of};
use super::note::{Checkpoint, Verifier};
use super::tiles::{TILE_WIDTH, TileRef, read_bundle};

/// Largest log verified in one run.
const MAX_ENTRIES: u64 = 100_000_000;

/// Reads files of a tlog-tiles layout (`checkpoint`, `tile/...`).
pub trait Source {
    /// The bytes at `path`, or `None` when absent.
    fn read(&mut self, path: &str) -> Option<Vec<u8>>;
}

/// What an earlier verification established (kept by the verifier between runs).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Verified {
    /// Checkpoint origin.
    pub origin: String,
    /// Tree size.
    pub size: u64,
    /// Root hash, hex.
    pub root: String,
}

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Everything checks out.
    Ok(Verified),
    /// Something is wrong; `first_bad_index` names the first entry implicated, when
    /// one can be named.
    Bad {
        /// What is wrong.
        reason: String,
        /// The first entry index at fault.
        first_bad_index: Option<u64>,
    },
}

fn bad(reason: impl Into<String>, index: Option<u64>) -> Verdict {
    Verdict::Bad {
        reason: reason.into(),
        first_bad_index: index,
    }
}

/// Paths of the tiles of `level` for a tree of `size` (hash tiles) or of the entry
/// bundles (`level == None`).
pub fn tile_paths(size: u64, level: Option<u8>) -> Vec<String> {
    let count = size
        .checked_shr(8 * u32::from(level.unwrap_or(0)))
        .unwrap_or(0);
    let full = count / TILE_WIDTH;
    let mut out: Vec<String> = (0..full)
        .map(|index| {
            TileRef {
                level,
                index,
                width: 256,
            }
            .path()
        })
        .collect();
    let rest = count % TILE_WIDTH;
    if rest > 0 {
        out.push(
            TileRef {
                level,
                index: full,
                width: u16::try_from(rest).unwrap_or(255),
            }
            .path(),
        );
    }
    out
}

/// Verifies the log in `src` against `vkey`, and against `previous` if given.
pub fn verify(src: &mut dyn Source, vkey: &str, previous: Option<&Verified>) -> Verdict {
    let verifier = match Verifier::parse(vkey) {
        Ok(v) => v,
        Err(e) => return bad(format!("verifier key: {e}"), None),
    };
    let Some(note) = src
        .read("checkpoint")
        .and_then(|b| String::from_utf8(b).ok())
    else {
        return bad("no checkpoint", None);
    };
    let cp = match verifier.open(&note).and_then(Checkpoint::parse) {
        Ok(cp) => cp,
        Err(e) => return bad(format!("checkpoint: {e}"), None),
    };
    if cp.origin != verifier.name() {
        return bad("checkpoint origin is not the key's name", None);
    }
    if cp.size > MAX_ENTRIES {
        return bad("log larger than this verifier accepts", None);
    }
    let leaves = match read_leaves(src, cp.size) {
        Ok(l) => l,
        Err(v) => return v,
    };
    if let Some(v) = check_level0_tiles(src, cp.size, &leaves) {
        return v;
    }
    let root = root_of(&leaves);
    if root != cp.root {
        // Entries and tiles agree with each other but not with the signature: the
        // tiles were rewritten along with the entries, so no single index is to blame.
        return bad("recomputed root does not match the signed checkpoint", None);
    }
    if let Some(prev) = previous {
        if prev.origin != cp.origin {
            return bad("state file is for another log", None);
        }
        if cp.size < prev.size {
            return bad(
                format!("log rolled back from {} to {} entries", prev.size, cp.size),
                Some(cp.size),
            );
        }
        let old_root = hex::encode(root_of(&leaves[..usize::try_from(prev.size).unwrap_or(0)]));
        if old_root != prev.root {
            return bad(
                "log is not an extension of the last verified one (history rewritten)",
                None,
            );
        }
    }
    Verdict::Ok(Verified {
        origin: cp.origin,
        size: cp.size,
        root: hex::encode(root),
    })
}

/// Every entry, re-hashed; sequence numbers must be 0, 1, 2, … without gaps.
fn read_leaves(src: &mut dyn Source, size: u64) -> Result<Vec<Hash>, Verdict> {
    let mut leaves: Vec<Hash> = Vec::new();
    for path in tile_paths(size, None) {
        let bundle = src
            .read(&path)
            .ok_or_else(|| bad(format!("missing {path}"), Some(leaves.len() as u64)))?;
        let entries = read_bundle(&bundle)
            .map_err(|_| bad(format!("malformed {path}"), Some(leaves.len() as u64)))?;
        for e in entries {
            let index = leaves.len() as u64;
            let seq = seq_of(e);
            if seq != Some(index) {
                return Err(bad(
                    format!("entry {index} has sequence number {seq:?}"),
                    Some(index),
                ));
            }
            leaves.push(leaf_hash(e));
        }
    }
    if leaves.len() as u64 != size {
        return Err(bad(
            "entry bundles do not hold as many entries as the checkpoint",
            Some(leaves.len() as u64),
        ));
    }
    Ok(leaves)
}

/// The stored level-0 tiles must agree with the re-hashed entries: an entry edited in
/// storage after it was integrated shows up here, at its index.
fn check_level0_tiles(src: &mut dyn Source, size: u64, leaves: &[Hash]) -> Option<Verdict> {
    for (n, path) in tile_paths(size, Some(0)).iter().enumerate() {
        let Some(tile) = src.read(path) else {
            return Some(bad(format!("missing {path}"), None));
        };
        for (k, h) in tile.chunks(32).enumerate() {
            let index = n as u64 * TILE_WIDTH + k as u64;
            let recomputed = leaves.get(usize::try_from(index).unwrap_or(usize::MAX));
            if recomputed.map(|r| &r[..]) != Some(h) {
                return Some(bad(
                    format!("entry {index} does not match the hash the log committed to"),
                    Some(index),
                ));
            }
        }
    }
    None
}

/// The `seq` of a canonical entry, without parsing the whole entry. In canonical JSON
/// the bytes `"seq":` can only occur as the top-level key: a quote inside a string is
/// always escaped (`\"`), and no nested object has a `seq` key.
fn seq_of(entry: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"seq\":";
    // A byte scan for the quote first, then a compare: several times faster than
    // comparing a window at every offset (this runs once per entry).
    let at = (0..entry.len().saturating_sub(KEY.len()))
        .filter(|&i| entry[i] == b'"')
        .find(|&i| &entry[i..i + KEY.len()] == KEY)?
        + KEY.len();
    let digits = entry[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    if digits == 0 || digits > 19 {
        return None;
    }
    std::str::from_utf8(&entry[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_is_read_from_the_key_not_from_string_contents() {
        assert_eq!(
            seq_of(br#"{"action":"a","reason":"\"seq\":7","seq":41,"v":1}"#),
            Some(41)
        );
        assert_eq!(seq_of(br#"{"seq":0}"#), Some(0));
        assert_eq!(seq_of(br#"{"seq":"1"}"#), None);
        assert_eq!(seq_of(br#"{"v":1}"#), None);
    }
}
