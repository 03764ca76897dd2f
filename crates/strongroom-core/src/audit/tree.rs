//! The stored form of a log's Merkle tree: tlog-tiles hash tiles, grown in batches.
//!
//! A level-`L` tile holds the hashes of the height-`8L` subtrees; hash `i` of level `L`
//! (over all tiles of that level) is the root of the full level-`L-1` tile `i`. Only the
//! last tile of each level is partial, so integrating a batch rewrites at most one
//! partial tile per level and appends the rest. Any subtree hash, and so any root or
//! proof, is computable from the tiles ([`Tiles`] is a [`HashSource`]).

use std::collections::BTreeMap;

use super::merkle::{Hash, HashSource, ProofError, root_of};
use super::tiles::TILE_WIDTH;

/// Hashes per full tile, as a `usize`.
const WIDTH: usize = 256;

/// Tiles of one log, by (level, index). A read-through view over stored tiles plus the
/// ones an integration is about to write.
#[derive(Debug, Default, Clone)]
pub struct Tiles {
    tiles: BTreeMap<(u8, u64), Vec<Hash>>,
}

impl Tiles {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a stored tile.
    pub fn insert(&mut self, level: u8, index: u64, hashes: Vec<Hash>) {
        self.tiles.insert((level, index), hashes);
    }

    /// A tile's hashes, if present.
    pub fn get(&self, level: u8, index: u64) -> Option<&[Hash]> {
        self.tiles.get(&(level, index)).map(Vec::as_slice)
    }

    /// The tiles a log of `size` entries needs to read before integrating more: the
    /// last (possibly partial) tile of each level.
    pub fn needed_for_append(size: u64) -> Vec<(u8, u64)> {
        let mut out = Vec::new();
        let mut level = 0u8;
        let mut count = size;
        while count > 0 {
            if !count.is_multiple_of(TILE_WIDTH) {
                out.push((level, count / TILE_WIDTH));
            }
            count /= TILE_WIDTH;
            level += 1;
        }
        out
    }

    /// Integrates `leaves` (leaf hashes of entries `size..size + leaves.len()`) and
    /// returns the tiles that changed, as (level, index, hashes). `self` must hold the
    /// tiles [`Tiles::needed_for_append`] names for `size`.
    pub fn append(
        &mut self,
        size: u64,
        leaves: &[Hash],
    ) -> Result<Vec<(u8, u64, Vec<Hash>)>, ProofError> {
        let mut changed: BTreeMap<(u8, u64), ()> = BTreeMap::new();
        let mut new_hashes: Vec<Hash> = leaves.to_vec();
        let mut first = size; // position of new_hashes[0] at this level
        let mut level = 0u8;
        while !new_hashes.is_empty() {
            let mut completed = Vec::new();
            for (k, h) in new_hashes.iter().enumerate() {
                let pos = first + k as u64;
                let (index, offset) = (
                    pos / TILE_WIDTH,
                    usize::try_from(pos % TILE_WIDTH).unwrap_or(0),
                );
                let tile = self.tiles.entry((level, index)).or_default();
                if tile.len() != offset {
                    return Err(ProofError::Invalid(
                        "stored tile does not end where the log does",
                    ));
                }
                tile.push(*h);
                changed.insert((level, index), ());
                if tile.len() == WIDTH {
                    completed.push(root_of(tile));
                }
            }
            // Level L+1 gains one hash per level-L tile completed by this batch; tiles
            // fill in order, so the first completed one is the one holding `first`.
            first /= TILE_WIDTH;
            new_hashes = completed;
            level += 1;
        }
        Ok(changed
            .into_keys()
            .filter_map(|(l, i)| self.tiles.get(&(l, i)).map(|t| (l, i, t.clone())))
            .collect())
    }
}

impl HashSource for Tiles {
    fn hash(&self, height: u8, index: u64) -> Result<Hash, ProofError> {
        let level = height / 8;
        let rest = u32::from(height % 8);
        // The 2^rest hashes of tile level `level` under this subtree lie in one tile.
        let start = index << rest;
        let tile = self
            .get(level, start / TILE_WIDTH)
            .ok_or(ProofError::Invalid("tile not available"))?;
        let from = usize::try_from(start % TILE_WIDTH).map_err(|_| ProofError::Invalid("index"))?;
        let span = tile
            .get(from..from + (1usize << rest))
            .ok_or(ProofError::Invalid("subtree not complete in its tile"))?;
        Ok(root_of(span))
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // test sizes fit in usize
mod tests {
    use super::*;
    use crate::audit::merkle::{consistency_proof, inclusion_proof, leaf_hash, range_root};

    fn leaves(n: u32) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    /// Integrates in uneven batches, reloading only the tiles an appender would read.
    fn grow(all: &[Hash], batches: &[usize]) -> Tiles {
        let mut stored = Tiles::new();
        let mut size = 0u64;
        let mut at = 0usize;
        for &b in batches.iter().cycle() {
            if at >= all.len() {
                break;
            }
            let end = (at + b).min(all.len());
            let mut view = Tiles::new();
            for (l, i) in Tiles::needed_for_append(size) {
                view.insert(l, i, stored.get(l, i).unwrap().to_vec());
            }
            for (l, i, t) in view.append(size, &all[at..end]).unwrap() {
                stored.insert(l, i, t);
            }
            size = end as u64;
            at = end;
        }
        stored
    }

    #[test]
    fn tiles_reproduce_roots_and_proofs_across_levels() {
        let all = leaves(70_000); // 274 level-0 tiles, 2 level-1 tiles, 1 level-2 hash
        let tiles = grow(&all, &[1, 255, 1000, 3, 65_536, 17]);
        for size in [1u64, 2, 255, 256, 257, 65_535, 65_536, 65_537, 70_000] {
            let want = root_of(&all[..size as usize]);
            assert_eq!(range_root(&tiles, 0, size).unwrap(), want, "root of {size}");
        }
        for (index, size) in [
            (0u64, 70_000u64),
            (65_535, 65_537),
            (69_999, 70_000),
            (12_345, 40_000),
        ] {
            assert_eq!(
                inclusion_proof(&tiles, index, size).unwrap(),
                inclusion_proof(&all[..], index, size).unwrap()
            );
        }
        for (s1, s2) in [
            (1u64, 70_000u64),
            (256, 65_536),
            (65_536, 70_000),
            (300, 301),
        ] {
            assert_eq!(
                consistency_proof(&tiles, s1, s2).unwrap(),
                consistency_proof(&all[..], s1, s2).unwrap()
            );
        }
        // Level-1 tile 0 is full (65 536 leaves); level 2 has one hash.
        assert_eq!(tiles.get(1, 0).unwrap().len(), 256);
        assert_eq!(tiles.get(2, 0).unwrap().len(), 1);
        assert_eq!(tiles.get(0, 273).unwrap().len(), 70_000 % 256);
    }

    #[test]
    fn an_append_that_does_not_continue_the_stored_tiles_is_refused() {
        let all = leaves(300);
        let mut t = grow(&all[..10], &[10]);
        assert!(
            t.append(5, &all[10..20]).is_err(),
            "size disagrees with the stored tile"
        );
    }
}
