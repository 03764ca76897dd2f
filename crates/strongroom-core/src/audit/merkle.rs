//! The Merkle tree of RFC 9162 §2.1 (Certificate Transparency v2), which the C2SP
//! tlog-tiles and tlog-checkpoint specifications build on.
//!
//! ```text
//! MTH({})        = SHA-256()
//! leaf hash      = SHA-256(0x00 || entry)
//! node hash      = SHA-256(0x01 || left || right)
//! MTH(D[0..n])   = node(MTH(D[0..k]), MTH(D[k..n])), k the largest power of two < n
//! ```
//!
//! Proof *generation* takes a [`HashSource`] so it can run over a stored tree (tiles) as
//! well as over leaves in memory; *verification* is pure and follows RFC 9162
//! §2.1.3.2 and §2.1.4.2 step by step.

use aws_lc_rs::digest::{Context, SHA256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// Why a proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The sizes or index make no proof possible (index beyond the tree, size1 > size2).
    #[error("invalid proof request: {0}")]
    Invalid(&'static str),
    /// The proof has the wrong number of hashes for the sizes.
    #[error("proof has the wrong length")]
    Length,
    /// The proof does not lead to the expected root.
    #[error("proof does not match the root hash")]
    Mismatch,
}

/// SHA-256 of the concatenation of `parts`.
pub fn sha256(parts: &[&[u8]]) -> Hash {
    let mut ctx = Context::new(&SHA256);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The hash of the empty tree.
pub fn empty_root() -> Hash {
    sha256(&[])
}

/// RFC 9162 leaf hash of an entry.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    sha256(&[&[0x00], entry])
}

/// RFC 9162 interior node hash.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    sha256(&[&[0x01], left, right])
}

/// Largest power of two strictly less than `n` (n ≥ 2).
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// Supplies hashes of complete subtrees of a tree: `hash(level, index)` is the root of
/// leaves `[index << level, (index + 1) << level)`. Used by proof generation.
pub trait HashSource {
    /// The hash of a complete subtree, or an error from the backing store.
    fn hash(&self, level: u8, index: u64) -> Result<Hash, ProofError>;
}

/// Leaf hashes in memory.
impl HashSource for [Hash] {
    fn hash(&self, level: u8, index: u64) -> Result<Hash, ProofError> {
        let width = 1u64 << level;
        let start = usize::try_from(index * width).map_err(|_| ProofError::Invalid("index"))?;
        let end = usize::try_from((index + 1) * width).map_err(|_| ProofError::Invalid("index"))?;
        self.get(start..end)
            .map(root_of)
            .ok_or(ProofError::Invalid("subtree beyond the leaves"))
    }
}

/// The root of leaf hashes (the MTH of their entries).
pub fn root_of(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = usize::try_from(split(n as u64)).unwrap_or(n / 2);
            node_hash(&root_of(&leaves[..k]), &root_of(&leaves[k..]))
        }
    }
}

/// The root of the subtree of leaves `[start, start + size)` from complete subtrees:
/// the tree is decomposed into maximal aligned power-of-two pieces, hashed right to left.
pub fn range_root(
    src: &(impl HashSource + ?Sized),
    start: u64,
    size: u64,
) -> Result<Hash, ProofError> {
    if size == 0 {
        return Ok(empty_root());
    }
    let mut pieces = Vec::new();
    let (mut at, end) = (start, start + size);
    while at < end {
        // The largest aligned power of two starting at `at` and fitting before `end`.
        let mut level = if at == 0 { 63 } else { at.trailing_zeros() };
        while level > 0 && (1u64 << level) > end - at {
            level -= 1;
        }
        let level8 = u8::try_from(level).map_err(|_| ProofError::Invalid("level"))?;
        pieces.push(src.hash(level8, at >> level)?);
        at += 1 << level;
    }
    let mut acc = pieces.pop().ok_or(ProofError::Invalid("empty range"))?;
    while let Some(left) = pieces.pop() {
        acc = node_hash(&left, &acc);
    }
    Ok(acc)
}

/// RFC 9162 §2.1.3.1: the inclusion proof of leaf `index` in the tree of `size` leaves.
pub fn inclusion_proof(
    src: &(impl HashSource + ?Sized),
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, ProofError> {
    if index >= size {
        return Err(ProofError::Invalid("leaf index beyond the tree"));
    }
    let mut proof = Vec::new();
    path(src, index, 0, size, &mut proof)?;
    Ok(proof)
}

/// PATH(m, D[start..start+n]) with the proof collected bottom-up.
fn path(
    src: &(impl HashSource + ?Sized),
    m: u64,
    start: u64,
    n: u64,
    out: &mut Vec<Hash>,
) -> Result<(), ProofError> {
    if n <= 1 {
        return Ok(());
    }
    let k = split(n);
    if m < k {
        path(src, m, start, k, out)?;
        out.push(range_root(src, start + k, n - k)?);
    } else {
        path(src, m - k, start + k, n - k, out)?;
        out.push(range_root(src, start, k)?);
    }
    Ok(())
}

/// RFC 9162 §2.1.4.1: the consistency proof between trees of `size1` and `size2` leaves.
pub fn consistency_proof(
    src: &(impl HashSource + ?Sized),
    size1: u64,
    size2: u64,
) -> Result<Vec<Hash>, ProofError> {
    if size1 > size2 {
        return Err(ProofError::Invalid("size1 is greater than size2"));
    }
    let mut proof = Vec::new();
    if size1 == 0 || size1 == size2 {
        return Ok(proof);
    }
    subproof(src, size1, 0, size2, true, &mut proof)?;
    Ok(proof)
}

/// SUBPROOF(m, D[start..start+n], b).
fn subproof(
    src: &(impl HashSource + ?Sized),
    m: u64,
    start: u64,
    n: u64,
    whole: bool,
    out: &mut Vec<Hash>,
) -> Result<(), ProofError> {
    if m == n {
        if !whole {
            out.push(range_root(src, start, n)?);
        }
        return Ok(());
    }
    let k = split(n);
    if m <= k {
        subproof(src, m, start, k, whole, out)?;
        out.push(range_root(src, start + k, n - k)?);
    } else {
        subproof(src, m - k, start + k, n - k, false, out)?;
        out.push(range_root(src, start, k)?);
    }
    Ok(())
}

/// RFC 9162 §2.1.3.2: verifies that `leaf` is at `index` in the tree of `size` with `root`.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::Invalid("leaf index beyond the tree"));
    }
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s_n == 0 {
            return Err(ProofError::Length);
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(ProofError::Length);
    }
    if &r == root {
        Ok(())
    } else {
        Err(ProofError::Mismatch)
    }
}

/// RFC 9162 §2.1.4.2: verifies that the tree of `size2` with `root2` extends the tree
/// of `size1` with `root1`.
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    proof: &[Hash],
    root1: &Hash,
    root2: &Hash,
) -> Result<(), ProofError> {
    if size1 > size2 {
        return Err(ProofError::Invalid("size1 is greater than size2"));
    }
    if size1 == 0 {
        // Every tree extends the empty tree: such a "proof" proves nothing, and the
        // published vectors (transparency-dev) require it to be refused.
        return Err(ProofError::Invalid(
            "consistency with the empty tree proves nothing",
        ));
    }
    if size1 == size2 {
        if !proof.is_empty() {
            return Err(ProofError::Length);
        }
        return if root1 == root2 {
            Ok(())
        } else {
            Err(ProofError::Mismatch)
        };
    }
    if proof.is_empty() {
        return Err(ProofError::Length);
    }
    // Step 2: if size1 is an exact power of two, prepend root1 to the proof.
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if size1.is_power_of_two() {
        path.push(*root1);
    }
    path.extend_from_slice(proof);
    let (mut f_n, mut s_n) = (size1 - 1, size2 - 1);
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if s_n == 0 {
            return Err(ProofError::Length);
        }
        if f_n & 1 == 1 || f_n == s_n {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(ProofError::Length);
    }
    if &fr == root1 && &sr == root2 {
        Ok(())
    } else {
        Err(ProofError::Mismatch)
    }
}

#[cfg(test)]
pub(crate) mod tests;
