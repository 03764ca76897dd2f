//! C2SP signed notes (`c2sp.org/signed-note`) with Ed25519 keys, verifier keys
//! (`c2sp.org/signed-note#verifier-keys`), and tlog checkpoints
//! (`c2sp.org/tlog-checkpoint`).
//!
//! ```text
//! note      = text (UTF-8, ends with "\n") || "\n" || signature lines
//! signature = "— " || key name || " " || base64(key id (4) || Ed25519 signature (64)) || "\n"
//! key id    = SHA-256(key name || "\n" || 0x01 || public key)[0..4]
//! vkey      = key name || "+" || hex(key id) || "+" || base64(0x01 || public key)
//! checkpoint text = origin "\n" || tree size (decimal) "\n" || base64(root) "\n" || extension lines
//! ```

use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::merkle::{Hash, sha256};
use crate::secret::SecretBytes;

/// Signature type byte of Ed25519 in key ids and verifier keys.
const ALG_ED25519: u8 = 0x01;
/// The em dash and space that start a signature line.
const SIG_PREFIX: &str = "\u{2014} ";
/// Most signature lines a note may carry before it is refused.
const MAX_SIGNATURES: usize = 100;
/// Longest note accepted for parsing.
const MAX_NOTE: usize = 1 << 20;

/// Why a note, key or checkpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// Not a well-formed note, key or checkpoint.
    #[error("malformed: {0}")]
    Malformed(&'static str),
    /// No signature by the verifier's key verifies.
    #[error("no valid signature by {0}")]
    Unverified(String),
    /// Key generation or signing failed.
    #[error("signing failed")]
    Signing,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c.is_control())
}

fn key_id(name: &str, public: &[u8]) -> [u8; 4] {
    let d = sha256(&[name.as_bytes(), b"\n", &[ALG_ED25519], public]);
    [d[0], d[1], d[2], d[3]]
}

/// Signs notes with an Ed25519 key under a key name.
pub struct NoteSigner {
    name: String,
    key: Ed25519KeyPair,
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl NoteSigner {
    /// A signer from a 32-byte Ed25519 seed.
    pub fn from_seed(name: &str, seed: &SecretBytes) -> Result<Self, NoteError> {
        if !valid_name(name) {
            return Err(NoteError::Malformed("key name"));
        }
        let key = Ed25519KeyPair::from_seed_unchecked(seed.expose())
            .map_err(|_| NoteError::Malformed("Ed25519 seed"))?;
        Ok(Self {
            name: name.to_owned(),
            key,
        })
    }

    /// A fresh random seed (to be stored sealed).
    pub fn generate_seed() -> Result<SecretBytes, NoteError> {
        let mut seed = vec![0u8; 32];
        aws_lc_rs::rand::fill(&mut seed).map_err(|_| NoteError::Signing)?;
        Ok(SecretBytes::new(seed))
    }

    /// The raw 32-byte public key.
    pub fn public_key(&self) -> Vec<u8> {
        self.key.public_key().as_ref().to_vec()
    }

    /// The verifier key, in vkey format.
    pub fn vkey(&self) -> String {
        let public = self.key.public_key().as_ref();
        let mut encoded = vec![ALG_ED25519];
        encoded.extend_from_slice(public);
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(key_id(&self.name, public)),
            STANDARD.encode(encoded)
        )
    }

    /// Signs `text` (which must end with a newline) and returns the whole note.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        if text.is_empty() || !text.ends_with('\n') {
            return Err(NoteError::Malformed("note text must end with a newline"));
        }
        let public = self.key.public_key().as_ref();
        let sig = self.key.sign(text.as_bytes());
        let mut blob = key_id(&self.name, public).to_vec();
        blob.extend_from_slice(sig.as_ref());
        Ok(format!(
            "{text}\n{SIG_PREFIX}{} {}\n",
            self.name,
            STANDARD.encode(blob)
        ))
    }
}

/// A verifier key parsed from vkey format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verifier {
    name: String,
    id: [u8; 4],
    public: Vec<u8>,
}

impl Verifier {
    /// Parses `name+hexid+base64key`, checking that the id matches the key.
    pub fn parse(vkey: &str) -> Result<Self, NoteError> {
        let mut parts = vkey.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::Malformed("vkey must be name+id+key"));
        };
        let key = STANDARD
            .decode(key)
            .map_err(|_| NoteError::Malformed("vkey key is not base64"))?;
        let id = hex::decode(id).map_err(|_| NoteError::Malformed("vkey id is not hex"))?;
        if !valid_name(name) || id.len() != 4 || key.len() != 33 || key[0] != ALG_ED25519 {
            return Err(NoteError::Malformed("vkey is not an Ed25519 verifier key"));
        }
        let public = key[1..].to_vec();
        if key_id(name, &public)[..] != id[..] {
            return Err(NoteError::Malformed("vkey id does not match its key"));
        }
        Ok(Self {
            name: name.to_owned(),
            id: key_id(name, &public),
            public,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Verifies `note` and returns its text (without the signature block). Signatures
    /// by other keys are ignored; at least one by this key must verify.
    pub fn open<'a>(&self, note: &'a str) -> Result<&'a str, NoteError> {
        if note.len() > MAX_NOTE {
            return Err(NoteError::Malformed("note too large"));
        }
        let split = note
            .rfind("\n\n")
            .ok_or(NoteError::Malformed("no signature block"))?;
        let (text, sigs) = (&note[..=split], &note[split + 2..]);
        if !sigs.ends_with('\n') {
            return Err(NoteError::Malformed(
                "signature block must end with a newline",
            ));
        }
        let lines: Vec<&str> = sigs.lines().collect();
        if lines.is_empty() || lines.len() > MAX_SIGNATURES {
            return Err(NoteError::Malformed("signature count"));
        }
        let mut verified = false;
        for line in lines {
            let rest = line
                .strip_prefix(SIG_PREFIX)
                .ok_or(NoteError::Malformed("signature line"))?;
            let (name, b64) = rest
                .split_once(' ')
                .ok_or(NoteError::Malformed("signature line"))?;
            let blob = STANDARD
                .decode(b64)
                .map_err(|_| NoteError::Malformed("signature base64"))?;
            if blob.len() < 4 {
                return Err(NoteError::Malformed("signature too short"));
            }
            if name != self.name || blob[..4] != self.id {
                continue;
            }
            let key = UnparsedPublicKey::new(&ED25519, &self.public);
            if key.verify(text.as_bytes(), &blob[4..]).is_ok() {
                verified = true;
            }
        }
        if verified {
            Ok(text)
        } else {
            Err(NoteError::Unverified(self.name.clone()))
        }
    }
}

/// The body of a tlog checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin line (unique name of the log).
    pub origin: String,
    /// Number of entries.
    pub size: u64,
    /// Root hash of the tree of that size.
    pub root: Hash,
    /// Extension lines (without newlines), usually none.
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// The note text of this checkpoint.
    pub fn text(&self) -> String {
        let mut t = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        );
        for e in &self.extensions {
            t.push_str(e);
            t.push('\n');
        }
        t
    }

    /// Parses checkpoint text (already verified by [`Verifier::open`]).
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let body = text
            .strip_suffix('\n')
            .ok_or(NoteError::Malformed("checkpoint must end with a newline"))?;
        let mut lines = body.split('\n');
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or(NoteError::Malformed("origin line"))?;
        let size = lines.next().ok_or(NoteError::Malformed("size line"))?;
        if size.is_empty()
            || (size.len() > 1 && size.starts_with('0'))
            || !size.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(NoteError::Malformed(
                "size must be a decimal without leading zeros",
            ));
        }
        let size = size
            .parse()
            .map_err(|_| NoteError::Malformed("size out of range"))?;
        let root = STANDARD
            .decode(lines.next().ok_or(NoteError::Malformed("root line"))?)
            .ok()
            .and_then(|r| Hash::try_from(r).ok())
            .ok_or(NoteError::Malformed("root must be base64 of 32 bytes"))?;
        let extensions: Vec<String> = lines.map(str::to_owned).collect();
        if extensions.iter().any(String::is_empty) {
            return Err(NoteError::Malformed("empty extension line"));
        }
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        })
    }
}

#[cfg(test)]
mod tests;
