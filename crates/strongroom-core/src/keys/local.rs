//! The local key file: the embedded default root-key provider.
//!
//! File format (text, mode 0600):
//!
//! ```text
//! # Strongroom root key. ...comment lines...
//! strongroom-root-key v1 <base64url, no padding, of 32 random bytes>
//! ```

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{KeyError, KeyProvider, aead};
use crate::secret::SecretBytes;

const HEADER: &str = "strongroom-root-key v1 ";
const WRAP_DOMAIN: &[u8] = b"strongroom/root-wrap/v1\0";

/// A root key kept in a file on the server's disk.
#[derive(Debug)]
pub struct LocalKeyFile {
    path: PathBuf,
    key: SecretBytes,
}

impl LocalKeyFile {
    /// Opens the key file at `path`, creating it (mode 0600, fresh random key) when it
    /// does not exist. Returns the provider and whether the file was created.
    pub fn open_or_create(path: &Path) -> Result<(Self, bool), KeyError> {
        match Self::create(path) {
            Ok(p) => Ok((p, true)),
            Err(KeyError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::AlreadyExists =>
            {
                Ok((Self::open(path)?, false))
            }
            Err(e) => Err(e),
        }
    }

    /// Opens an existing key file, refusing one that others can read.
    pub fn open(path: &Path) -> Result<Self, KeyError> {
        let key = read_key(path)?;
        Ok(Self {
            path: path.to_owned(),
            key,
        })
    }

    fn create(path: &Path) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        let key = aead::generate_key()?;
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        let text = format!(
            "# Strongroom root key. Whoever holds this file and the data directory can read every tenant's data.\n\
             # Back it up separately from the data; losing it makes the data unreadable.\n\
             {HEADER}{}\n",
            URL_SAFE_NO_PAD.encode(key.expose())
        );
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(Self {
            path: path.to_owned(),
            key,
        })
    }

    /// The file this key lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn read_key(path: &Path) -> Result<SecretBytes, KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::InsecurePermissions {
            path: path.to_owned(),
            mode,
        });
    }
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(io)?);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(HEADER))
        .ok_or(KeyError::Malformed(
            "root key file has no `strongroom-root-key v1` line",
        ))?;
    let key = URL_SAFE_NO_PAD
        .decode(line.trim())
        .map_err(|_| KeyError::Malformed("root key is not base64url"))?;
    if key.len() != aead::KEY_LEN {
        return Err(KeyError::Malformed("root key must be 32 bytes"));
    }
    Ok(SecretBytes::new(key))
}

fn aad(context: &[u8]) -> Vec<u8> {
    [WRAP_DOMAIN, context].concat()
}

#[async_trait]
impl KeyProvider for LocalKeyFile {
    fn describe(&self) -> String {
        format!("local-file:{}", self.path.display())
    }

    async fn wrap(&self, key: &SecretBytes, context: &[u8]) -> Result<Vec<u8>, KeyError> {
        aead::seal(&self.key, &aad(context), key.expose())
    }

    async fn unwrap(&self, wrapped: &[u8], context: &[u8]) -> Result<SecretBytes, KeyError> {
        aead::open(&self.key, &aad(context), wrapped)
    }

    /// The file must still exist, still be private, and still hold the key in use:
    /// a replaced or deleted key file is a deployment fault the operator must see.
    async fn health(&self) -> Result<(), KeyError> {
        let path = self.path.clone();
        let on_disk = tokio::task::spawn_blocking(move || read_key(&path))
            .await
            .map_err(|_| KeyError::Unavailable("key file check did not complete".into()))??;
        if !on_disk.ct_eq(self.key.expose()) {
            return Err(KeyError::Unavailable(
                "root key file now holds a different key".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn creates_a_private_file_and_reopens_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("root.key");
        let (p, created) = LocalKeyFile::open_or_create(&path).unwrap();
        assert!(created);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let wrapped = p
            .wrap(&SecretBytes::new(vec![7; 32]), b"ctx")
            .await
            .unwrap();
        let (q, created) = LocalKeyFile::open_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(q.unwrap(&wrapped, b"ctx").await.unwrap().expose(), &[7; 32]);
        assert!(q.unwrap(&wrapped, b"other").await.is_err());
        assert!(q.health().await.is_ok());
    }

    #[tokio::test]
    async fn refuses_a_world_readable_file_and_notices_removal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("root.key");
        let (p, _) = LocalKeyFile::open_or_create(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            LocalKeyFile::open(&path),
            Err(KeyError::InsecurePermissions { .. })
        ));
        assert!(p.health().await.is_err());
        std::fs::remove_file(&path).unwrap();
        assert!(p.health().await.is_err());
    }

    #[test]
    fn debug_output_has_no_key() {
        let dir = tempfile::tempdir().unwrap();
        let (p, _) = LocalKeyFile::open_or_create(&dir.path().join("k")).unwrap();
        let text = std::fs::read_to_string(dir.path().join("k")).unwrap();
        let b64 = text.lines().last().unwrap().rsplit(' ').next().unwrap();
        assert!(!format!("{p:?}").contains(b64));
    }
}
