//! C2SP tlog-tiles (`c2sp.org/tlog-tiles`): where hashes and entries of a log live, as
//! static, cacheable resources.
//!
//! ```text
//! <prefix>/tile/<L>/<N>[.p/<W>]     hashes: tile N of level L, W < 256 hashes if partial
//! <prefix>/tile/entries/<N>[.p/<W>] entry bundle N: entries N*256 .. N*256+W
//! N is written in groups of three digits, all but the last prefixed with "x":
//!   1234067 → x001/x234/067
//! a level-L tile holds the hashes of the level-8L subtrees (each covering 256^L leaves)
//! entry bundle = for each entry: length (u16 BE) || entry
//! ```

/// Hashes (or entries) per full tile.
pub const TILE_WIDTH: u64 = 256;
/// Largest entry an entry bundle can hold (u16 length prefix).
pub const MAX_ENTRY: usize = u16::MAX as usize;

/// Why a tile path or bundle was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TileError {
    /// Not a tile path this log serves.
    #[error("not a tile path: {0}")]
    BadPath(&'static str),
    /// An entry bundle that does not decode.
    #[error("malformed entry bundle")]
    BadBundle,
}

/// What a tile path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileRef {
    /// `None` for an entry bundle, else the tile level.
    pub level: Option<u8>,
    /// Tile index within its level.
    pub index: u64,
    /// Width: 256 for a full tile, 1..=255 for a partial one.
    pub width: u16,
}

/// Encodes a tile index as `x001/x234/067`.
pub fn encode_index(n: u64) -> String {
    let digits = n.to_string();
    let pad = (3 - digits.len() % 3) % 3;
    let padded = format!("{}{digits}", "0".repeat(pad));
    let groups: Vec<&str> = padded
        .as_bytes()
        .chunks(3)
        .map(|c| std::str::from_utf8(c).unwrap_or("000"))
        .collect();
    let last = groups.len() - 1;
    groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
            if i < last {
                format!("x{g}")
            } else {
                (*g).to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

impl TileRef {
    /// The path below the log prefix, e.g. `tile/0/x001/234.p/17`.
    pub fn path(&self) -> String {
        let level = self
            .level
            .map_or_else(|| "entries".to_owned(), |l| l.to_string());
        let partial = if u64::from(self.width) < TILE_WIDTH {
            format!(".p/{}", self.width)
        } else {
            String::new()
        };
        format!("tile/{level}/{}{partial}", encode_index(self.index))
    }

    /// Parses a path below the log prefix (strictly: only canonical spellings).
    pub fn parse(path: &str) -> Result<Self, TileError> {
        let rest = path
            .strip_prefix("tile/")
            .ok_or(TileError::BadPath("must start with tile/"))?;
        let (level_s, rest) = rest.split_once('/').ok_or(TileError::BadPath("level"))?;
        let level = if level_s == "entries" {
            None
        } else {
            let l: u8 = parse_decimal(level_s)
                .and_then(|l| u8::try_from(l).ok())
                .ok_or(TileError::BadPath("level"))?;
            if l > 63 {
                return Err(TileError::BadPath("level"));
            }
            Some(l)
        };
        let (index_s, width) = match rest.split_once(".p/") {
            Some((i, w)) => {
                let w = parse_decimal(w)
                    .and_then(|w| u16::try_from(w).ok())
                    .filter(|w| (1..256).contains(w));
                (
                    i,
                    w.ok_or(TileError::BadPath("partial width must be 1-255"))?,
                )
            }
            None => (rest, 256),
        };
        let groups: Vec<&str> = index_s.split('/').collect();
        let mut index: u64 = 0;
        for (i, g) in groups.iter().enumerate() {
            let digits = if i + 1 < groups.len() {
                g.strip_prefix('x').ok_or(TileError::BadPath("index"))?
            } else {
                g
            };
            if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(TileError::BadPath("index groups are three digits"));
            }
            let d: u64 = digits.parse().map_err(|_| TileError::BadPath("index"))?;
            index = index
                .checked_mul(1000)
                .and_then(|x| x.checked_add(d))
                .ok_or(TileError::BadPath("index"))?;
        }
        let tile = Self {
            level,
            index,
            width,
        };
        if tile.path() != path {
            return Err(TileError::BadPath("not in canonical form"));
        }
        Ok(tile)
    }
}

fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || (s.len() > 1 && s.starts_with('0')) || !s.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    s.parse().ok()
}

/// Appends `entry` to an entry bundle.
pub fn push_entry(bundle: &mut Vec<u8>, entry: &[u8]) -> Result<(), TileError> {
    let len = u16::try_from(entry.len()).map_err(|_| TileError::BadBundle)?;
    bundle.extend_from_slice(&len.to_be_bytes());
    bundle.extend_from_slice(entry);
    Ok(())
}

/// Splits an entry bundle into its entries.
pub fn read_bundle(mut bundle: &[u8]) -> Result<Vec<&[u8]>, TileError> {
    let mut out = Vec::new();
    while !bundle.is_empty() {
        if bundle.len() < 2 {
            return Err(TileError::BadBundle);
        }
        let len = usize::from(u16::from_be_bytes([bundle[0], bundle[1]]));
        let entry = bundle.get(2..2 + len).ok_or(TileError::BadBundle)?;
        out.push(entry);
        bundle = &bundle[2 + len..];
        if out.len() > 256 {
            return Err(TileError::BadBundle);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::merkle::leaf_hash;
    use crate::audit::merkle::tests::{TESSERA_ENTRIES, vectors};

    #[test]
    fn index_encoding_follows_the_spec_examples() {
        assert_eq!(encode_index(0), "000");
        assert_eq!(encode_index(1_234_067), "x001/x234/067");
        let t = TileRef {
            level: Some(0),
            index: 1_234_067,
            width: 17,
        };
        assert_eq!(t.path(), "tile/0/x001/x234/067.p/17");
        assert_eq!(TileRef::parse(&t.path()).unwrap(), t);
        let e = TileRef {
            level: None,
            index: 5,
            width: 256,
        };
        assert_eq!(e.path(), "tile/entries/005");
        assert_eq!(TileRef::parse("tile/entries/005").unwrap(), e);
        for bad in [
            "tile/0/5",
            "tile/0/005.p/0",
            "tile/0/005.p/256",
            "tile/0/001/002",
            "tile/00/001",
            "tile/x/001",
            "tile/0/x001",
            "tile/0/../001",
            "tiles/0/000",
            "tile/64/000",
        ] {
            assert!(TileRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_tessera_log_tiles_decode_to_its_entries_and_leaf_hashes() {
        let dir = vectors().join("tessera/testdata/log");
        for w in 1..=15usize {
            let bundle = std::fs::read(dir.join(format!("tile/entries/000.p/{w}"))).unwrap();
            let entries = read_bundle(&bundle).unwrap();
            assert_eq!(entries.len(), w);
            let mut rebuilt = Vec::new();
            for (e, want) in entries.iter().zip(TESSERA_ENTRIES) {
                assert_eq!(*e, want.as_bytes());
                push_entry(&mut rebuilt, e).unwrap();
            }
            assert_eq!(
                rebuilt, bundle,
                "bundle of width {w} re-encodes byte for byte"
            );
            let tile = std::fs::read(dir.join(format!("tile/0/000.p/{w}"))).unwrap();
            let hashes: Vec<u8> = TESSERA_ENTRIES[..w]
                .iter()
                .flat_map(|e| leaf_hash(e.as_bytes()))
                .collect();
            assert_eq!(tile, hashes, "level-0 tile of width {w}");
        }
        assert!(read_bundle(&[0, 5, 1]).is_err());
    }
}
