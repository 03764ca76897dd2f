//! Encrypted streams in an S3-compatible bucket, one bucket (or prefix) per region,
//! through the `object_store` crate.
//!
//! Objects are named `<prefix><tenant id>/<file>` and hold exactly the bytes the
//! platform wrote: the streaming encryption's ciphertext (docs/formats/encryption.md),
//! so the bucket never sees plaintext. Writes stream through a bounded buffer: an
//! object smaller than one part is sent with a single PUT at commit, a larger one as a
//! multipart upload whose parts leave while the client is still sending; nothing is
//! ever held whole in memory. An object becomes visible only when its upload completes
//! (at [`BlobSink::commit`]); an upload dropped before that is aborted.

use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, RetryConfig};
use strongroom_core::access::TenantScope;
use strongroom_core::secret::SecretString;
use strongroom_core::store::{BlobSink, BlobStore, StoreError};
use strongroom_core::tenant::RegionName;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::blobs::check_name;

/// Size of one multipart part (the S3 minimum), and of the buffer a small object is
/// sent from.
const PART: usize = 5 * 1024 * 1024;
/// Parts of one upload in flight at once (so at most this many parts are buffered).
const PARTS_IN_FLIGHT: usize = 2;

/// How to reach one region's bucket.
#[derive(Clone)]
pub struct S3Bucket {
    /// `https://s3.eu-central-1.amazonaws.com`, or any S3-compatible endpoint.
    pub endpoint: String,
    /// The bucket.
    pub bucket: String,
    /// The signing region (`us-east-1` for most S3-compatible servers).
    pub region: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: SecretString,
    /// Path-style requests (`endpoint/bucket/key`) instead of virtual-hosted ones.
    pub path_style: bool,
    /// Allow an `http://` endpoint (tests on loopback only; never in production).
    pub allow_http: bool,
    /// Extra CA certificates (PEM) for the endpoint's certificate.
    pub ca_pem: Option<Vec<u8>>,
    /// Key prefix inside the bucket (`""` or ending in `/`).
    pub prefix: String,
    /// Bound on one request, body included.
    pub timeout: Duration,
    /// Where the settings came from, for messages (`regions.eu.s3`).
    pub setting: String,
}

impl std::fmt::Debug for S3Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Bucket")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("setting", &self.setting)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Region {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    label: String,
}

/// Blobs in S3-compatible buckets.
#[derive(Debug, Clone)]
pub struct S3BlobStore {
    regions: Arc<BTreeMap<RegionName, Region>>,
}

fn unavailable(
    label: &str,
    what: &str,
    e: impl std::error::Error + Send + Sync + 'static,
) -> StoreError {
    StoreError::Unavailable {
        context: format!("{label}: {what}"),
        source: Some(Box::new(e)),
    }
}

impl S3BlobStore {
    /// Builds a client per region and checks each bucket answers to these
    /// credentials, so a wrong secret fails at start, naming the setting.
    pub async fn open(buckets: &BTreeMap<RegionName, S3Bucket>) -> Result<Self, StoreError> {
        let mut regions = BTreeMap::new();
        for (name, b) in buckets {
            let region = Region {
                store: Arc::new(client(b)?),
                prefix: b.prefix.clone(),
                label: format!("{} (bucket {} at {})", b.setting, b.bucket, b.endpoint),
            };
            region.probe().await?;
            regions.insert(name.clone(), region);
        }
        Ok(Self {
            regions: Arc::new(regions),
        })
    }

    fn region(&self, scope: &TenantScope) -> Result<&Region, StoreError> {
        self.regions.get(scope.region()).ok_or_else(|| {
            StoreError::unavailable(format!(
                "region {} has no bucket configured",
                scope.region()
            ))
        })
    }

    fn path(&self, scope: &TenantScope, file: &str) -> Result<(&Region, Path), StoreError> {
        check_name(file)?;
        let region = self.region(scope)?;
        let key = format!("{}{}/{file}", region.prefix, scope.tenant().as_uuid());
        Ok((region, Path::from(key)))
    }
}

fn client(b: &S3Bucket) -> Result<object_store::aws::AmazonS3, StoreError> {
    let bad = |what: String| StoreError::Backend {
        context: format!("{}: {what}", b.setting),
        source: None,
    };
    let mut options = ClientOptions::new()
        .with_allow_http(b.allow_http)
        .with_timeout(b.timeout)
        .with_connect_timeout(Duration::from_secs(5));
    if let Some(pem) = &b.ca_pem {
        for cert in object_store::Certificate::from_pem_bundle(pem)
            .map_err(|_| bad("ca_file holds no PEM certificate".into()))?
        {
            options = options.with_root_certificate(cert);
        }
    }
    let retry = RetryConfig {
        max_retries: 3,
        retry_timeout: Duration::from_secs(30),
        ..RetryConfig::default()
    };
    AmazonS3Builder::new()
        .with_endpoint(&b.endpoint)
        .with_bucket_name(&b.bucket)
        .with_region(&b.region)
        .with_access_key_id(&b.access_key_id)
        .with_secret_access_key(b.secret_access_key.expose())
        .with_virtual_hosted_style_request(!b.path_style)
        .with_client_options(options)
        .with_retry(retry)
        .build()
        // The builder's errors name settings, never the secret's value.
        .map_err(|e| bad(format!("invalid S3 settings: {e}")))
}

impl Region {
    /// Writes and deletes a small probe object: proves the endpoint, that the bucket
    /// exists (a HEAD of a missing key cannot tell a missing bucket from a missing
    /// object) and that these credentials may write and delete; anything else is
    /// reported with the setting.
    async fn probe(&self) -> Result<(), StoreError> {
        let key = Path::from(format!("{}.strongroom-probe", self.prefix));
        let written = self
            .store
            .put(&key, object_store::PutPayload::from_static(b"strongroom"))
            .await;
        let checked = match written {
            Ok(_) => self.store.delete(&key).await,
            Err(e) => Err(e),
        };
        match checked {
            Ok(()) => Ok(()),
            Err(e) => {
                let hint = match &e {
                    object_store::Error::Unauthenticated { .. }
                    | object_store::Error::PermissionDenied { .. } => {
                        " (credentials refused: check access_key_id and \
                         secret_access_key / secret_access_key_file)"
                    }
                    _ => " (check endpoint, bucket and that the server is up)",
                };
                Err(unavailable(
                    &self.label,
                    &format!("bucket check failed{hint}"),
                    e,
                ))
            }
        }
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn create(
        &self,
        scope: &TenantScope,
        file: &str,
    ) -> Result<Box<dyn BlobSink>, StoreError> {
        let (region, path) = self.path(scope, file)?;
        let writer = BufWriter::with_capacity(Arc::clone(&region.store), path, PART)
            .with_max_concurrency(PARTS_IN_FLIGHT);
        Ok(Box::new(ObjectSink {
            writer: Some(writer),
            label: region.label.clone(),
        }))
    }

    async fn open(
        &self,
        scope: &TenantScope,
        file: &str,
    ) -> Result<Box<dyn AsyncRead + Send + Unpin>, StoreError> {
        self.open_at(scope, file, 0).await
    }

    async fn open_at(
        &self,
        scope: &TenantScope,
        file: &str,
        offset: u64,
    ) -> Result<Box<dyn AsyncRead + Send + Unpin>, StoreError> {
        let (region, path) = self.path(scope, file)?;
        let options = GetOptions {
            range: (offset > 0).then_some(GetRange::Offset(offset)),
            ..GetOptions::default()
        };
        let got = match region.store.get_opts(&path, options).await {
            Ok(got) => got,
            // The blob row says it exists: a missing object is lost data, not an
            // outage (retrying will not bring it back).
            Err(object_store::Error::NotFound { .. }) => {
                return Err(StoreError::Corrupt(format!(
                    "{}: object {path} is missing",
                    region.label
                )));
            }
            Err(e) => return Err(unavailable(&region.label, "reading an object", e)),
        };
        let stream = got.into_stream().map_err(io::Error::other);
        Ok(Box::new(tokio_util::io::StreamReader::new(stream.boxed())))
    }

    async fn remove(&self, scope: &TenantScope, file: &str) -> Result<(), StoreError> {
        let (region, path) = self.path(scope, file)?;
        match region.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(unavailable(&region.label, "deleting an object", e)),
        }
    }

    async fn remove_all(&self, scope: &TenantScope) -> Result<(), StoreError> {
        let region = self.region(scope)?;
        let prefix = Path::from(format!("{}{}", region.prefix, scope.tenant().as_uuid()));
        let mut listing = region.store.list(Some(&prefix));
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| unavailable(&region.label, "listing objects", e))?;
            match region.store.delete(&meta.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(unavailable(&region.label, "deleting an object", e)),
            }
        }
        Ok(())
    }
}

/// An upload in progress: bytes go to a bounded buffer, then to parts.
struct ObjectSink {
    writer: Option<BufWriter>,
    label: String,
}

impl ObjectSink {
    fn writer(&mut self) -> io::Result<Pin<&mut BufWriter>> {
        self.writer
            .as_mut()
            .map(Pin::new)
            .ok_or_else(|| io::Error::other("upload already finished"))
    }
}

impl Drop for ObjectSink {
    fn drop(&mut self) {
        // Not committed: abort the multipart upload (if one started) so no parts are
        // left billed and invisible. Without a runtime there is nothing to run it on;
        // the bucket's lifecycle rule for incomplete uploads is the backstop.
        if let Some(mut writer) = self.writer.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move {
                let _ = writer.abort().await;
            });
        }
    }
}

impl AsyncWrite for ObjectSink {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.writer() {
            Ok(w) => w.poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.writer() {
            Ok(w) => w.poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Completing the upload is `commit`, which can report a failure; shutting the
        // writer down must not publish the object on its own.
        Poll::Ready(Ok(()))
    }
}

#[async_trait]
impl BlobSink for ObjectSink {
    async fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        let mut writer = self
            .writer
            .take()
            .ok_or_else(|| StoreError::backend("upload already finished"))?;
        // A failed completion leaves at most an incomplete multipart upload, which the
        // bucket's lifecycle rule for incomplete uploads removes.
        writer
            .shutdown()
            .await
            .map_err(|e| unavailable(&self.label, "completing an upload", e))
    }
}
