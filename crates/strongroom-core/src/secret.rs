//! Secrets as their own types.
//!
//! A secret is zeroised when dropped, has no `Display` or `Serialize`, prints as
//! `<redacted>` under `Debug`, and is compared in constant time. The only way to the
//! bytes is [`SecretBytes::expose`] / [`SecretString::expose`]: grep for `expose(` to
//! find every place a secret is used.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Secret bytes: key material, token secrets.
#[derive(Clone)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Takes ownership of `bytes`; they are wiped when the secret is dropped.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The secret's bytes. Every caller is a place a secret leaves its box.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Number of bytes (not secret).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Constant-time equality with another byte string.
    pub fn ct_eq(&self, other: &[u8]) -> bool {
        self.0.as_slice().ct_eq(other).into()
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretBytes(<redacted>)")
    }
}

/// A secret string: a password, a PIN, a client secret.
#[derive(Clone)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    /// Takes ownership of `value`; it is wiped when the secret is dropped.
    pub fn new(value: String) -> Self {
        Self(Zeroizing::new(value))
    }

    /// The secret's text. Every caller is a place a secret leaves its box.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Length in characters (not secret): password rules need it.
    pub fn char_count(&self) -> usize {
        self.0.chars().count()
    }

    /// Constant-time equality with another string.
    pub fn ct_eq(&self, other: &str) -> bool {
        self.0.as_bytes().ct_eq(other.as_bytes()).into()
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

impl<'de> serde::Deserialize<'de> for SecretString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::new)
    }
}

/// Reads a secret from the first line of a file (a PIN file, a password file): the
/// file's text is wiped after reading, and the trailing newline is not part of the
/// secret.
pub fn read_first_line(file: &std::path::Path) -> std::io::Result<SecretString> {
    let text = Zeroizing::new(std::fs::read_to_string(file)?);
    Ok(SecretString::new(
        text.lines().next().unwrap_or_default().to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let s = SecretString::new("hunter2-correct-horse".into());
        let b = SecretBytes::new(b"key-material".to_vec());
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{b:?}").contains("key-material"));
    }

    #[test]
    fn equality_is_by_content() {
        let s = SecretString::new("abc".into());
        assert!(s.ct_eq("abc"));
        assert!(!s.ct_eq("abd"));
        assert!(!s.ct_eq("abcd"));
    }
}
