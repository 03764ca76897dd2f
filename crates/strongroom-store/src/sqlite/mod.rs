//! The SQLite adapter: one control database plus one database per region.
//!
//! Each database has one writer thread owning its only read-write connection (SQLite
//! serialises writers anyway; one connection makes that explicit and keeps write
//! transactions short and ordered) and a small pool of read-only connections. A write
//! is a closure run on the writer thread; concurrent writes share a transaction and its
//! flush (group commit, see [`commit`]). Write transactions start with
//! `BEGIN IMMEDIATE` so a second process (the CLI next to a running server) waits on
//! `busy_timeout` instead of failing half-way through. The driver is rusqlite
//! (decision 0007); statements, rows and connections are in [`connection`].

mod applications;
mod audit;
mod commit;
mod connection;
mod directory;
mod keys;
mod migrate;
mod objects;
mod operators;
mod records;
mod sessions;
mod support;
mod users;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use commit::GroupCommit;
pub(crate) use connection::{Builder, ReadConn, SqliteRow, dynamic, query, query_scalar};
pub(crate) use rusqlite::Connection;
use strongroom_core::access::Scoped;
use strongroom_core::store::StoreError;
use strongroom_core::tenant::RegionName;

use crate::error::db;

/// How long a writer waits for another process's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// While purging the log: how long one checkpoint attempt waits for readers, and the
/// pause between attempts.
const PURGE_BUSY: Duration = Duration::from_millis(50);
/// Checkpoint attempts before the purge reports failure (about two seconds).
const PURGE_ATTEMPTS: u32 = 20;
/// Idle read connections kept per database.
const READERS: usize = 4;

/// How an SQLite store commits: the durability of an acknowledged write, and the
/// bounds of group commit.
#[derive(Debug, Clone, Copy)]
pub struct SqliteTuning {
    /// `synchronous=FULL` (an acknowledged write survives power loss) when true;
    /// `synchronous=NORMAL` (it survives a crash of the process, not of the machine).
    pub synchronous_full: bool,
    /// Group-commit bounds.
    pub group_commit: GroupCommit,
}

impl Default for SqliteTuning {
    fn default() -> Self {
        Self {
            synchronous_full: true,
            group_commit: GroupCommit::default(),
        }
    }
}

/// One SQLite database: a writer thread and a pool of read-only connections.
#[derive(Debug, Clone)]
pub(crate) struct Db {
    writer: commit::Writer,
    readers: Arc<connection::Readers>,
    path: Arc<Path>,
}

impl Db {
    /// Opens the database at `path`; `name` (`control` or the region's) names its
    /// writer thread (`sqlw-<name>` in `top -H`).
    async fn open(
        path: &Path,
        name: &str,
        migrations: &'static [migrate::Migration],
        tuning: SqliteTuning,
    ) -> Result<Self, StoreError> {
        let at = path.to_owned();
        let conn = tokio::task::spawn_blocking(move || {
            let conn = connection::open_writer(&at, tuning.synchronous_full, BUSY_TIMEOUT)?;
            migrate::run(&conn, migrations).map_err(|e| StoreError::Backend {
                context: format!("migrating {}", at.display()),
                source: Some(Box::new(e)),
            })?;
            Ok::<_, StoreError>(conn)
        })
        .await
        .map_err(|_| StoreError::unavailable("opening the database failed unexpectedly"))??;
        Ok(Self {
            writer: commit::Writer::start(conn, tuning.group_commit, BUSY_TIMEOUT * 2, name)?,
            readers: Arc::new(connection::Readers::new(path, BUSY_TIMEOUT, READERS)),
            path: Arc::from(path),
        })
    }

    /// Runs `f` as one write on the database's writer thread, inside its own
    /// savepoint of the open batch; returns once the batch is durable. `f` returning
    /// `Err` undoes everything it wrote, and only that.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.writer.write(f).await
    }

    /// A read-only connection (reads see the last committed batch).
    pub(crate) fn read(&self) -> Result<ReadConn<'_>, StoreError> {
        self.readers.get()
    }

    /// Checkpoints the write-ahead log and truncates it, so bytes deleted by the last
    /// transactions (shredded keys) survive neither in the log nor, with
    /// `secure_delete`, in the database's free pages. Readers can hold a checkpoint
    /// back, so it is retried for about two seconds — with the writer's busy timeout
    /// lowered meanwhile, because a TRUNCATE checkpoint waits on that timeout for every
    /// reader, and the writer is the region's only one: a long reader must not stall
    /// every write for minutes. Runs on the writer thread, between batches.
    pub(crate) async fn purge_log(&self) -> Result<(), StoreError> {
        let path = self.path.clone();
        self.writer
            .exclusive(move |conn| {
                conn.busy_timeout(PURGE_BUSY).map_err(db)?;
                let mut purged = Ok(false);
                for _ in 0..PURGE_ATTEMPTS {
                    purged = query_scalar::<i64>("PRAGMA wal_checkpoint(TRUNCATE)")
                        .fetch_one(conn)
                        .map(|busy| busy == 0);
                    if !matches!(purged, Ok(false)) {
                        break;
                    }
                    std::thread::sleep(PURGE_BUSY);
                }
                // Writes would otherwise fail at once on another process's lock
                // instead of waiting (this fails only if the connection is broken).
                conn.busy_timeout(BUSY_TIMEOUT).map_err(db)?;
                match purged.map_err(db)? {
                    true => Ok(()),
                    false => Err(StoreError::unavailable(format!(
                        "{}: the write-ahead log could not be checkpointed (readers busy); retry",
                        path.display()
                    ))),
                }
            })
            .await
    }

    /// Readable, and its writer thread still serving.
    fn ping(&self) -> Result<(), StoreError> {
        if !self.writer.is_running() {
            return Err(StoreError::unavailable(format!(
                "{}: the database's writer has stopped; restart the server",
                self.path.display()
            )));
        }
        self.readers.ping()
    }
}

pub(crate) use crate::codec::{int, tid};

/// A non-negative integer column as `u32`; anything else is corruption.
pub(crate) fn u32_col(r: &SqliteRow, col: &str) -> Result<u32, StoreError> {
    crate::codec::as_u32(r.try_get(col).map_err(db)?, col)
}

/// A non-negative integer column as `u64`; anything else is corruption.
pub(crate) fn u64_col(r: &SqliteRow, col: &str) -> Result<u64, StoreError> {
    crate::codec::as_u64(r.try_get(col).map_err(db)?, col)
}

/// Strongroom's storage on SQLite files.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    control: Db,
    regions: BTreeMap<RegionName, Db>,
}

impl SqliteStore {
    /// Opens (creating and migrating as needed) the control database at `control_path`
    /// and one database per region at `<dir>/strongroom.db`.
    pub async fn open(
        control_path: &Path,
        regions: &BTreeMap<RegionName, PathBuf>,
    ) -> Result<Self, StoreError> {
        Self::open_tuned(control_path, regions, SqliteTuning::default()).await
    }

    /// [`open`](Self::open) with explicit durability and group-commit settings.
    pub async fn open_tuned(
        control_path: &Path,
        regions: &BTreeMap<RegionName, PathBuf>,
        tuning: SqliteTuning,
    ) -> Result<Self, StoreError> {
        let control = Db::open(control_path, "control", migrate::CONTROL, tuning).await?;
        let mut opened = BTreeMap::new();
        for (name, dir) in regions {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Unavailable {
                context: format!("region {name} directory {}", dir.display()),
                source: Some(Box::new(e)),
            })?;
            opened.insert(
                name.clone(),
                Db::open(
                    &dir.join("strongroom.db"),
                    name.as_str(),
                    migrate::REGION,
                    tuning,
                )
                .await?,
            );
        }
        Ok(Self {
            control,
            regions: opened,
        })
    }

    /// The database of the region a scope belongs to. A scope names a region that was
    /// declared when the tenant was created; if configuration has since dropped it,
    /// that is an operator error surfaced as unavailability, not a silent fallback.
    pub(crate) fn region(&self, scope: &(impl Scoped + ?Sized)) -> Result<&Db, StoreError> {
        // The platform's own trail lives in the control database.
        if scope.region().is_platform() {
            return Ok(&self.control);
        }
        self.regions.get(scope.region()).ok_or_else(|| {
            StoreError::unavailable(format!("region {} is not configured", scope.region()))
        })
    }

    /// Regions whose tenants exist in the directory but are not configured, for a
    /// start-up check that fails loudly instead of hiding tenants.
    pub async fn unconfigured_regions(&self) -> Result<Vec<String>, StoreError> {
        let used = directory::regions_in_use(&self.control)?;
        Ok(used
            .into_iter()
            .filter(|r| !self.regions.keys().any(|k| k.as_str() == r))
            .collect())
    }
}

#[cfg(test)]
mod tests;
