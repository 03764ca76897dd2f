//! AES-256-GCM with random 96-bit nonces (aws-lc-rs).
//!
//! Layout of a sealed box: `version (1 byte = 0x01) || nonce (12) || ciphertext || tag (16)`.
//! The associated data is supplied by the caller and binds the box to where it belongs.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

use super::KeyError;
use crate::secret::SecretBytes;

/// Format version byte of a sealed box.
pub const VERSION: u8 = 0x01;
/// Bytes a sealed box adds to its plaintext: version, nonce, tag.
pub const OVERHEAD: usize = 1 + NONCE_LEN + 16;
/// Length of an AES-256 key.
pub const KEY_LEN: usize = 32;

/// A fresh random 256-bit key.
pub fn generate_key() -> Result<SecretBytes, KeyError> {
    let mut key = vec![0u8; KEY_LEN];
    aws_lc_rs::rand::fill(&mut key)
        .map_err(|_| KeyError::Unavailable("system RNG failed".into()))?;
    Ok(SecretBytes::new(key))
}

/// Seals `plaintext` under `key` with associated data `aad`.
pub fn seal(key: &SecretBytes, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, KeyError> {
    let key = less_safe_key(key)?;
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce)
        .map_err(|_| KeyError::Unavailable("system RNG failed".into()))?;
    let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD);
    out.push(VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let mut body = out.split_off(1 + NONCE_LEN);
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut body,
    )
    .map_err(|_| KeyError::Unavailable("AES-GCM seal failed".into()))?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// Opens a box made by [`seal`] with the same key and associated data.
pub fn open(key: &SecretBytes, aad: &[u8], sealed: &[u8]) -> Result<SecretBytes, KeyError> {
    if sealed.len() < OVERHEAD {
        return Err(KeyError::Malformed(
            "sealed value shorter than its header and tag",
        ));
    }
    let (version, rest) = sealed.split_at(1);
    if version != [VERSION] {
        return Err(KeyError::Malformed("unknown sealed-value version"));
    }
    let (nonce, body) = rest.split_at(NONCE_LEN);
    let nonce =
        Nonce::try_assume_unique_for_key(nonce).map_err(|_| KeyError::Malformed("nonce"))?;
    let key = less_safe_key(key)?;
    let mut buf = body.to_vec();
    let plain_len = key
        .open_in_place(nonce, Aad::from(aad), &mut buf)
        .map_err(|_| KeyError::Integrity)?
        .len();
    buf.truncate(plain_len);
    Ok(SecretBytes::new(buf))
}

fn less_safe_key(key: &SecretBytes) -> Result<LessSafeKey, KeyError> {
    UnboundKey::new(&AES_256_GCM, key.expose())
        .map(LessSafeKey::new)
        .map_err(|_| KeyError::Malformed("AES-256 key must be 32 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper_detection() {
        let key = generate_key().unwrap();
        let sealed = seal(&key, b"ctx", b"hello").unwrap();
        assert_eq!(sealed.len(), 5 + OVERHEAD);
        assert_eq!(open(&key, b"ctx", &sealed).unwrap().expose(), b"hello");
        assert!(matches!(
            open(&key, b"other", &sealed),
            Err(KeyError::Integrity)
        ));
        for i in 1..sealed.len() {
            let mut t = sealed.clone();
            t[i] ^= 0x01;
            assert!(
                open(&key, b"ctx", &t).is_err(),
                "flip at byte {i} went unnoticed"
            );
        }
        let other = generate_key().unwrap();
        assert!(matches!(
            open(&other, b"ctx", &sealed),
            Err(KeyError::Integrity)
        ));
        assert!(open(&key, b"ctx", &sealed[..OVERHEAD - 1]).is_err());
    }
}
