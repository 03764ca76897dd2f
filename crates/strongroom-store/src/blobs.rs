//! Encrypted streams as files: one directory per region, one sub-directory per tenant.
//!
//! ```text
//! <region dir>/blobs/<tenant uuid>/<file>            committed stream (read-only)
//! <region dir>/blobs/<tenant uuid>/<file>.partial    being written; never read
//! ```
//!
//! A stream becomes visible only by an atomic rename after its bytes are fsynced, and
//! the directory is fsynced after the rename, so a crash leaves either the whole file
//! or a `.partial` that nothing references. Files hold ciphertext only (the caller
//! seals before writing); the tenant directory is derived from the scope, so a scope
//! for tenant A cannot name B's files.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use async_trait::async_trait;
use strongroom_core::access::TenantScope;
use strongroom_core::store::{BlobSink, BlobStore, StoreError};
use strongroom_core::tenant::RegionName;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// Longest file name accepted.
const MAX_NAME: usize = 64;

/// Blob files under each region's directory.
#[derive(Debug, Clone)]
pub struct FsBlobStore {
    regions: BTreeMap<RegionName, PathBuf>,
}

impl FsBlobStore {
    /// Blob storage under `<dir>/blobs` for each region directory.
    pub fn new(regions: &BTreeMap<RegionName, PathBuf>) -> Self {
        Self {
            regions: regions
                .iter()
                .map(|(r, d)| (r.clone(), d.join("blobs")))
                .collect(),
        }
    }

    fn tenant_dir(&self, scope: &TenantScope) -> Result<PathBuf, StoreError> {
        let root = self.regions.get(scope.region()).ok_or_else(|| {
            StoreError::unavailable(format!("region {} is not configured", scope.region()))
        })?;
        Ok(root.join(scope.tenant().as_uuid().to_string()))
    }

    fn path(&self, scope: &TenantScope, file: &str) -> Result<PathBuf, StoreError> {
        check_name(file)?;
        Ok(self.tenant_dir(scope)?.join(file))
    }
}

/// Blob names are 1-64 characters of a-z, 0-9 and '-': nothing that could climb out
/// of a tenant's directory or prefix.
pub(crate) fn check_name(file: &str) -> Result<(), StoreError> {
    let ok = !file.is_empty()
        && file.len() <= MAX_NAME
        && file
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(StoreError::backend(format!(
            "invalid blob file name {file:?}"
        )))
    }
}

fn io_err(path: &Path, e: io::Error) -> StoreError {
    StoreError::Unavailable {
        context: path.display().to_string(),
        source: Some(Box::new(e)),
    }
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn create(
        &self,
        scope: &TenantScope,
        file: &str,
    ) -> Result<Box<dyn BlobSink>, StoreError> {
        let dest = self.path(scope, file)?;
        let dir = self.tenant_dir(scope)?;
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| io_err(&dir, e))?;
        let partial = dir.join(format!("{file}.partial"));
        let handle = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&partial)
            .await
            .map_err(|e| io_err(&partial, e))?;
        Ok(Box::new(FileSink {
            file: handle,
            partial,
            dest,
            dir,
            committed: false,
        }))
    }

    async fn open(
        &self,
        scope: &TenantScope,
        file: &str,
    ) -> Result<Box<dyn AsyncRead + Send + Unpin>, StoreError> {
        let path = self.path(scope, file)?;
        let f = tokio::fs::File::open(&path)
            .await
            .map_err(|e| io_err(&path, e))?;
        Ok(Box::new(f))
    }

    async fn open_at(
        &self,
        scope: &TenantScope,
        file: &str,
        offset: u64,
    ) -> Result<Box<dyn AsyncRead + Send + Unpin>, StoreError> {
        use tokio::io::AsyncSeekExt;
        let path = self.path(scope, file)?;
        let mut f = tokio::fs::File::open(&path)
            .await
            .map_err(|e| io_err(&path, e))?;
        f.seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(|e| io_err(&path, e))?;
        Ok(Box::new(f))
    }

    async fn remove(&self, scope: &TenantScope, file: &str) -> Result<(), StoreError> {
        let path = self.path(scope, file)?;
        match tokio::fs::remove_file(&path).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(&path, e)),
            _ => Ok(()),
        }
    }

    async fn remove_all(&self, scope: &TenantScope) -> Result<(), StoreError> {
        let dir = self.tenant_dir(scope)?;
        match tokio::fs::remove_dir_all(&dir).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(&dir, e)),
            _ => Ok(()),
        }
    }
}

/// A `.partial` file that becomes the blob on commit, or disappears when dropped.
struct FileSink {
    file: tokio::fs::File,
    partial: PathBuf,
    dest: PathBuf,
    dir: PathBuf,
    committed: bool,
}

impl Drop for FileSink {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

impl AsyncWrite for FileSink {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.file).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.file).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.file).poll_shutdown(cx)
    }
}

#[async_trait]
impl BlobSink for FileSink {
    async fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        let partial = self.partial.clone();
        self.file.flush().await.map_err(|e| io_err(&partial, e))?;
        self.file
            .sync_all()
            .await
            .map_err(|e| io_err(&partial, e))?;
        tokio::fs::rename(&partial, &self.dest)
            .await
            .map_err(|e| io_err(&self.dest, e))?;
        self.committed = true;
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || std::fs::File::open(&dir)?.sync_all())
            .await
            .map_err(|e| StoreError::Backend {
                context: "syncing the blob directory".into(),
                source: Some(Box::new(e)),
            })?
            .map_err(|e| io_err(&self.dir, e))
    }
}

/// Each region's streams where that region keeps them: a directory or a bucket.
#[derive(Clone)]
pub struct RegionBlobs {
    routes: BTreeMap<RegionName, std::sync::Arc<dyn BlobStore>>,
}

impl std::fmt::Debug for RegionBlobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegionBlobs")
            .field("regions", &self.routes.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl RegionBlobs {
    /// Routes each region to its store.
    pub fn new(routes: BTreeMap<RegionName, std::sync::Arc<dyn BlobStore>>) -> Self {
        Self { routes }
    }

    fn to(&self, scope: &TenantScope) -> Result<&dyn BlobStore, StoreError> {
        self.routes
            .get(scope.region())
            .map(|s| &**s)
            .ok_or_else(|| {
                StoreError::unavailable(format!("region {} is not configured", scope.region()))
            })
    }
}

#[async_trait]
impl BlobStore for RegionBlobs {
    async fn create(
        &self,
        scope: &TenantScope,
        file: &str,
    ) -> Result<Box<dyn BlobSink>, StoreError> {
        self.to(scope)?.create(scope, file).await
    }

    async fn open(
        &self,
        scope: &TenantScope,
        file: &str,
    ) -> Result<Box<dyn AsyncRead + Send + Unpin>, StoreError> {
        self.to(scope)?.open(scope, file).await
    }

    async fn open_at(
        &self,
        scope: &TenantScope,
        file: &str,
        offset: u64,
    ) -> Result<Box<dyn AsyncRead + Send + Unpin>, StoreError> {
        self.to(scope)?.open_at(scope, file, offset).await
    }

    async fn remove(&self, scope: &TenantScope, file: &str) -> Result<(), StoreError> {
        self.to(scope)?.remove(scope, file).await
    }

    async fn remove_all(&self, scope: &TenantScope) -> Result<(), StoreError> {
        self.to(scope)?.remove_all(scope).await
    }
}
