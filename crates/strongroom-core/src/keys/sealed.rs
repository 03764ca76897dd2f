//! Sealed values: one AES-256-GCM box per value, under a tenant's data key.
//!
//! ```text
//! offset  size  field
//! 0       1     format version = 0x01
//! 1       1     kind = 0x01 (value)
//! 2       4     data-key version, u32 big-endian
//! 6       12    nonce (random)
//! 18      n     ciphertext
//! 18+n    16    GCM tag
//! ```
//!
//! Associated data: `"strongroom/value/v1\0"` followed by the object binding of
//! [`ObjectRef`] and the 18 header bytes. See `docs/formats/encryption.md`.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

use super::{DataKey, KeyError, ObjectRef};
use crate::secret::SecretBytes;

/// Format version byte.
pub const FORMAT: u8 = 0x01;
/// Kind byte of a single sealed value.
pub const KIND_VALUE: u8 = 0x01;
/// Header length.
pub const HEADER_LEN: usize = 2 + 4 + NONCE_LEN;
/// Bytes a sealed value adds to its plaintext.
pub const OVERHEAD: usize = HEADER_LEN + 16;
const DOMAIN: &[u8] = b"strongroom/value/v1\0";

/// Seals `plaintext` for `object` under `key`.
pub fn seal(key: &DataKey, object: &ObjectRef<'_>, plaintext: &[u8]) -> Result<Vec<u8>, KeyError> {
    let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD);
    out.extend_from_slice(&[FORMAT, KIND_VALUE]);
    out.extend_from_slice(&key.version.to_be_bytes());
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce)
        .map_err(|_| KeyError::Unavailable("system RNG failed".into()))?;
    out.extend_from_slice(&nonce);
    let aad = object.aad(DOMAIN, &out);
    out.extend_from_slice(plaintext);
    let cipher = aes(&key.key)?;
    let (_, body) = out.split_at_mut(HEADER_LEN);
    let tag = cipher
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(&aad), body)
        .map_err(|_| KeyError::Unavailable("AES-GCM seal failed".into()))?;
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

/// The data-key version a sealed value needs, read from its header.
pub fn key_version(sealed: &[u8]) -> Result<u32, KeyError> {
    if sealed.len() < OVERHEAD {
        return Err(KeyError::Malformed(
            "sealed value shorter than its header and tag",
        ));
    }
    if sealed[0] != FORMAT || sealed[1] != KIND_VALUE {
        return Err(KeyError::Malformed("not a version-1 sealed value"));
    }
    Ok(u32::from_be_bytes([
        sealed[2], sealed[3], sealed[4], sealed[5],
    ]))
}

/// Opens a sealed value for `object` with `key` (whose version must match the header).
///
/// Returns a plain buffer: record data is not key material, and wiping large
/// plaintexts costs a third of the throughput (BENCHMARKS.md). Callers opening secrets
/// wrap the result in [`SecretBytes`] at once (as `Keyring::open_value` does).
pub fn open(key: &DataKey, object: &ObjectRef<'_>, sealed: &[u8]) -> Result<Vec<u8>, KeyError> {
    if key_version(sealed)? != key.version {
        return Err(KeyError::Malformed("sealed under another data-key version"));
    }
    let (header, body) = sealed.split_at(HEADER_LEN);
    let nonce =
        Nonce::try_assume_unique_for_key(&header[6..]).map_err(|_| KeyError::Malformed("nonce"))?;
    let aad = object.aad(DOMAIN, header);
    let mut buf = body.to_vec();
    let n = aes(&key.key)?
        .open_in_place(nonce, Aad::from(&aad), &mut buf)
        .map_err(|_| KeyError::Integrity)?
        .len();
    buf.truncate(n);
    Ok(buf)
}

pub(crate) fn aes(key: &SecretBytes) -> Result<LessSafeKey, KeyError> {
    UnboundKey::new(&AES_256_GCM, key.expose())
        .map(LessSafeKey::new)
        .map_err(|_| KeyError::Malformed("AES-256 key must be 32 bytes"))
}
