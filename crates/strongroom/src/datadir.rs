//! The data directory: its layout, its initialisation, and the lock that keeps two
//! servers from sharing it.
//!
//! ```text
//! <data_dir>/            mode 0700
//!   serve.lock           held (flock) by the running `serve`; holds its pid
//!   init.lock            held briefly by whoever initialises or opens the directory
//!   root.key             the root key (local key provider), mode 0600
//!   control.db           platform directory: operators, tenants, signing keys
//!                        (or postgres.instance, naming the control database, when
//!                        database.backend = "postgres": the databases are elsewhere)
//!   tls/cert.pem         self-signed certificate (when no certificate is configured)
//!   tls/key.pem          its private key, mode 0600
//!   regions/<name>/strongroom.db   each region's tenant data (ciphertext for sealed data)
//!   regions/<name>/blobs/<tenant>/ each region's encrypted streams (attachments, …)
//! ```
//!
//! With `keys.root = "local"` (the default) the root key is `root.key`; with a PKCS#11
//! root it lives on the token and no key file is created.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use strongroom_core::config::Config;
use strongroom_core::config::LOCAL_PROVIDER;
use strongroom_core::config::{DatabaseBackend, Synchronous};
use strongroom_core::keys::{KeyProvider, LocalKeyFile, Pkcs11Provider, Providers};
use strongroom_core::secret::read_first_line;
use strongroom_core::store::{BlobStore, Store};
use strongroom_core::tenant::RegionName;
use strongroom_store::blobs::{FsBlobStore, RegionBlobs};
use strongroom_store::postgres::{PgSettings, PgStore};
use strongroom_store::s3::{S3BlobStore, S3Bucket};
use strongroom_store::sqlite::{GroupCommit, SqliteStore, SqliteTuning};

/// A data directory, created (mode 0700) if it did not exist.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
    created: bool,
    /// Whether missing parts (the root key file) may be created: only for `serve` and
    /// `init`, never for an administrative command.
    initialise: bool,
}

/// What opening the directory found or did, for the start-up banner.
#[derive(Debug, Clone)]
pub struct InitReport {
    /// The directory did not exist before.
    pub created_dir: bool,
    /// A new root key was generated.
    pub created_root_key: bool,
}

/// The directory's storage and keys, ready to use.
pub struct Opened {
    /// Storage.
    pub store: Arc<dyn Store>,
    /// Encrypted-stream storage.
    pub blobs: Arc<dyn BlobStore>,
    /// The key providers (root and customer-owned).
    pub providers: Providers,
    /// What was initialised.
    pub report: InitReport,
}

/// Held for the life of a `serve` process; dropping it releases the directory.
#[derive(Debug)]
pub struct ServeLock {
    _file: File,
}

impl DataDir {
    /// Creates the directory if needed and refuses one that others can read.
    pub fn new(root: &Path) -> anyhow::Result<Self> {
        let created = !root.exists();
        if created {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(root)
                .with_context(|| format!("cannot create data directory {}", root.display()))?;
        }
        let meta = std::fs::metadata(root)
            .with_context(|| format!("cannot read data directory {}", root.display()))?;
        if !meta.is_dir() {
            bail!("data directory {} is not a directory", root.display());
        }
        // Everything inside (databases, keys, certificates) is protected by the
        // directory's mode, so keep it owner-only even if someone loosened it.
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %root.display(), "data directory was accessible to other users; setting mode 0700");
            std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("cannot set mode 0700 on {}", root.display()))?;
        }
        Ok(Self {
            root: root.to_owned(),
            created,
            initialise: true,
        })
    }

    /// An existing, initialised data directory (see
    /// [`strongroom_core::access::DataDirProof`]); nothing missing is created.
    pub fn existing(root: &Path) -> anyhow::Result<Self> {
        strongroom_core::access::DataDirProof::check(root)?;
        Ok(Self {
            root: root.to_owned(),
            created: false,
            initialise: false,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Path of a file or directory inside the data directory.
    pub fn join(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Takes the exclusive serve lock, or explains who holds it.
    pub fn lock_for_serve(&self) -> anyhow::Result<ServeLock> {
        let path = self.join("serve.lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        if file.try_lock().is_err() {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            bail!(
                "data directory {} is in use by another `strongroom serve` (pid {}); \
                 stop it first, or use another --data-dir",
                self.root.display(),
                holder.trim()
            );
        }
        file.set_len(0)?;
        writeln!(file, "{}", std::process::id())?;
        Ok(ServeLock { _file: file })
    }

    /// Opens storage and keys, initialising whatever is missing. Safe to run from the
    /// CLI while a server runs, and from two processes at once (an init lock orders
    /// first-time creation).
    pub async fn open(&self, config: &Config) -> anyhow::Result<Opened> {
        let init = File::create(self.join("init.lock"))?;
        init.lock()
            .context("cannot lock the data directory for initialisation")?;
        let (providers, created_root_key) = self.providers(config)?;
        let regions: BTreeMap<_, _> = config
            .regions
            .keys()
            .filter_map(|r| config.region_dir(r).map(|d| (r.clone(), d)))
            .collect();
        let (store, missing): (Arc<dyn Store>, _) = match config.database.backend {
            DatabaseBackend::Sqlite => {
                let d = &config.database;
                let tuning = SqliteTuning {
                    synchronous_full: d.synchronous == Synchronous::Full,
                    group_commit: GroupCommit {
                        max_batch: d.group_commit_max_batch,
                        max_wait: Duration::from_millis(d.group_commit_max_wait_ms),
                    },
                };
                let store = SqliteStore::open_tuned(&self.join("control.db"), &regions, tuning)
                    .await
                    .context("opening the databases")?;
                let missing = store.unconfigured_regions().await?;
                (Arc::new(store), missing)
            }
            DatabaseBackend::Postgres => {
                let settings = crate::database::settings(config, crate::database::Role::App)?;
                let store = PgStore::open(&settings)
                    .await
                    .context("opening the PostgreSQL databases")?;
                if self.initialise {
                    self.mark_postgres(&settings)?;
                }
                let missing = store.unconfigured_regions().await?;
                (Arc::new(store), missing)
            }
        };
        drop(init);
        if !missing.is_empty() {
            bail!(
                "tenants exist in region(s) {} which the configuration does not declare; \
                 add them under [regions] (their data is still on disk)",
                missing.join(", ")
            );
        }
        Ok(Opened {
            store,
            blobs: blobs(config, &regions).await?,
            providers,
            report: InitReport {
                created_dir: self.created,
                created_root_key,
            },
        })
    }
}

/// Each region's stream store: its bucket when `[regions.<name>.s3]` is set, its
/// directory otherwise. Buckets are checked now, so a wrong secret fails at start.
async fn blobs(
    config: &Config,
    dirs: &BTreeMap<RegionName, PathBuf>,
) -> anyhow::Result<Arc<dyn BlobStore>> {
    let mut buckets = BTreeMap::new();
    for (name, rc) in &config.regions {
        let Some(s3) = &rc.s3 else { continue };
        let setting = format!("regions.{name}.s3");
        let secret = match (&s3.secret_access_key, &s3.secret_access_key_file) {
            (Some(s), _) => s.clone(),
            (None, Some(f)) => read_first_line(f).with_context(|| {
                format!(
                    "{setting}.secret_access_key_file: cannot read {}",
                    f.display()
                )
            })?,
            (None, None) => bail!("{setting}: no secret_access_key"),
        };
        let ca_pem = match &s3.ca_file {
            Some(f) => Some(
                std::fs::read(f)
                    .with_context(|| format!("{setting}.ca_file: cannot read {}", f.display()))?,
            ),
            None => None,
        };
        buckets.insert(
            name.clone(),
            S3Bucket {
                endpoint: s3.endpoint.clone(),
                bucket: s3.bucket.clone(),
                region: s3.region.clone(),
                access_key_id: s3.access_key_id.clone(),
                secret_access_key: secret,
                path_style: s3.path_style,
                allow_http: s3.allow_http,
                ca_pem,
                prefix: s3.prefix.clone(),
                timeout: std::time::Duration::from_secs(s3.timeout_secs),
                setting,
            },
        );
    }
    let files: Arc<dyn BlobStore> = Arc::new(FsBlobStore::new(dirs));
    if buckets.is_empty() {
        return Ok(files);
    }
    let s3: Arc<dyn BlobStore> = Arc::new(
        S3BlobStore::open(&buckets)
            .await
            .context("opening the object storage")?,
    );
    let routes = config
        .regions
        .keys()
        .map(|r| {
            let to = if buckets.contains_key(r) { &s3 } else { &files };
            (r.clone(), Arc::clone(to))
        })
        .collect();
    Ok(Arc::new(RegionBlobs::new(routes)))
}

impl DataDir {
    /// Marks the directory as initialised for PostgreSQL (the local administrator's
    /// proof rests on it, as on `control.db` for SQLite), naming the control database.
    fn mark_postgres(&self, settings: &PgSettings) -> anyhow::Result<()> {
        let path = self.join(strongroom_core::access::DataDirProof::POSTGRES_MARKER);
        if !path.exists() {
            std::fs::write(
                &path,
                format!("control database: {}\n", settings.control.redacted_url()),
            )
            .with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(())
    }

    /// Opens the configured key providers: the local key file (created on first run)
    /// when it is the root, and every `[keys.pkcs11.<name>]` token. Returns them and
    /// whether a root key file was created.
    fn providers(&self, config: &Config) -> anyhow::Result<(Providers, bool)> {
        let mut all: BTreeMap<String, Arc<dyn KeyProvider>> = BTreeMap::new();
        let mut created = false;
        if config.keys.root == LOCAL_PROVIDER {
            let path = self.join("root.key");
            let (local, new) = if self.initialise {
                LocalKeyFile::open_or_create(&path)
            } else {
                LocalKeyFile::open(&path).map(|k| (k, false))
            }
            .with_context(|| format!("root key in {}", self.root.display()))?;
            created = new;
            all.insert(LOCAL_PROVIDER.into(), Arc::new(local));
        }
        for (name, p11) in &config.keys.pkcs11 {
            let provider = Pkcs11Provider::open(name, p11)
                .with_context(|| format!("key provider `{name}` (keys.pkcs11.{name})"))?;
            all.insert(name.clone(), Arc::new(provider));
        }
        Ok((Providers::new(&config.keys.root, all)?, created))
    }
}
