//! Keys: the root of trust and the envelope around everything sealed.
//!
//! The hierarchy is root key (held by a [`KeyProvider`]) → per-tenant and platform keys
//! (stored only wrapped by the root key) → data keys. This module holds the provider
//! seam and the AEAD primitive; a provider never hands out the root key itself, it only
//! wraps and unwraps, so an HSM-backed provider can keep its key non-extractable.

pub mod aead;
mod cache;
mod keyring;
mod local;
mod object;
mod pkcs11;
pub mod sealed;
pub mod stream;

#[cfg(test)]
mod sealed_tests;

use async_trait::async_trait;

use crate::secret::SecretBytes;

pub use keyring::{Keyring, KeyringError, Providers};
pub use local::LocalKeyFile;
pub use object::ObjectRef;
pub use pkcs11::Pkcs11Provider;

/// A tenant's data-encryption key of a given version, unwrapped.
#[derive(Clone)]
pub struct DataKey {
    /// Version, as recorded in every ciphertext it seals.
    pub version: u32,
    /// The 256-bit key, wiped on drop.
    pub key: SecretBytes,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// Why a key operation failed. `Unavailable` is transient (retry, fail readiness);
/// `Integrity` means tampering or the wrong key and must never be retried into success.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The provider cannot be reached or used right now (file gone, token removed).
    #[error("key provider unavailable: {0}")]
    Unavailable(String),
    /// A ciphertext or wrapped key failed authentication: tampered, moved, or the
    /// wrong key.
    #[error(
        "authentication failed: the sealed value was altered, moved, or sealed under another key"
    )]
    Integrity,
    /// A sealed value or key file does not have the expected layout.
    #[error("malformed key material: {0}")]
    Malformed(&'static str),
    /// The root key file is readable by other users.
    #[error(
        "root key file {path} has mode {mode:o}; it must not be readable by group or others (chmod 600)"
    )]
    InsecurePermissions {
        /// The file.
        path: std::path::PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Reading or writing key material failed.
    #[error("key file i/o on {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Holds the root key and wraps other keys under it.
///
/// Implementations: [`LocalKeyFile`] (the embedded default). The seam is deliberately
/// narrow — wrap, unwrap, health — so an HSM or a cloud KMS fits behind it unchanged.
#[async_trait]
pub trait KeyProvider: Send + Sync + 'static {
    /// A short, non-secret description for status output, e.g. `local-file:/x/root.key`.
    fn describe(&self) -> String;

    /// Wraps `key`, binding it to `context` (the wrapped key will not unwrap under any
    /// other context).
    async fn wrap(&self, key: &SecretBytes, context: &[u8]) -> Result<Vec<u8>, KeyError>;

    /// Unwraps a key wrapped by [`KeyProvider::wrap`] under the same `context`.
    async fn unwrap(&self, wrapped: &[u8], context: &[u8]) -> Result<SecretBytes, KeyError>;

    /// Checks that the root key is still usable (readiness).
    async fn health(&self) -> Result<(), KeyError>;
}
