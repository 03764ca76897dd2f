//! The SQLite adapter: one control database plus one database per region.
//!
//! Each database has one writer connection (SQLite serialises writers anyway; one
//! connection makes that explicit and keeps write transactions short and ordered) and a
//! small read-only pool. Concurrent writes share a transaction and its flush (group
//! commit, see [`commit`]). Write transactions start with `BEGIN IMMEDIATE` so a second
//! process (the CLI next to a running server) waits on `busy_timeout` instead of
//! failing half-way through.

mod applications;
mod audit;
mod commit;
mod directory;
mod keys;
mod objects;
mod operators;
mod records;
mod sessions;
mod support;
mod users;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

pub use commit::GroupCommit;
pub(crate) use commit::WriteTx;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use strongroom_core::access::Scoped;
use strongroom_core::store::StoreError;
use strongroom_core::tenant::RegionName;

use crate::error::db;

/// How long a writer waits for another process's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// While purging the log: how long one checkpoint attempt waits for readers, and the
/// pause between attempts.
const PURGE_BUSY: Duration = Duration::from_millis(50);
const _: () = assert!(PURGE_BUSY.as_millis() == 50 && BUSY_TIMEOUT.as_millis() == 5000);
/// Checkpoint attempts before the purge reports failure (about two seconds).
const PURGE_ATTEMPTS: u32 = 20;
/// Read connections per database.
const READERS: u32 = 4;

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

/// One SQLite database: a single writer and a read-only pool.
#[derive(Debug, Clone)]
pub(crate) struct Db {
    writer: commit::Writer,
    reader: SqlitePool,
    path: PathBuf,
}

impl Db {
    async fn open(
        path: &Path,
        migrator: &sqlx::migrate::Migrator,
        tuning: SqliteTuning,
    ) -> Result<Self, StoreError> {
        let options = connect_options(path, tuning.synchronous_full)?;
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(BUSY_TIMEOUT * 2)
            .connect_with(options.clone().create_if_missing(true))
            .await
            .map_err(db)?;
        migrator
            .run(&writer)
            .await
            .map_err(|e| StoreError::Backend {
                context: format!("migrating {}", path.display()),
                source: Some(Box::new(e)),
            })?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS)
            .acquire_timeout(BUSY_TIMEOUT * 2)
            .connect_with(options.read_only(true))
            .await
            .map_err(db)?;
        // The migrating pool's one connection becomes the group-commit writer's.
        let conn = writer.acquire().await.map_err(db)?.detach();
        writer.close().await;
        Ok(Self {
            writer: commit::Writer::new(conn, tuning.group_commit, BUSY_TIMEOUT * 2),
            reader,
            path: path.to_owned(),
        })
    }

    /// Starts a write: a savepoint in the batch transaction, which holds SQLite's write
    /// lock from its first statement. Nothing is durable until its `commit` returns.
    pub(crate) async fn write(&self) -> Result<WriteTx, StoreError> {
        self.writer.begin().await
    }

    /// The read pool.
    pub(crate) fn read(&self) -> &SqlitePool {
        &self.reader
    }

    /// Checkpoints the write-ahead log and truncates it, so bytes deleted by the last
    /// transactions (shredded keys) survive neither in the log nor, with
    /// `secure_delete`, in the database's free pages. Readers can hold a checkpoint
    /// back, so it is retried for about two seconds — with the writer's busy timeout
    /// lowered meanwhile, because a TRUNCATE checkpoint waits on that timeout for every
    /// reader, and the writer is the region's only one: a long reader must not stall
    /// every write for minutes.
    pub(crate) async fn purge_log(&self) -> Result<(), StoreError> {
        // In a task of its own: a caller dropped mid-way must not leave the writer
        // with the lowered busy timeout.
        let db = self.clone();
        commit::detached(async move { db.purge_log_now().await }).await?
    }

    async fn purge_log_now(&self) -> Result<(), StoreError> {
        let mut conn = self.writer.exclusive().await?;
        sqlx::query("PRAGMA busy_timeout = 50") // PURGE_BUSY
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        let mut purged = Ok(false);
        for _ in 0..PURGE_ATTEMPTS {
            purged = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(&mut *conn)
                .await
                .and_then(|row| sqlx::Row::try_get::<i64, _>(&row, 0))
                .map(|busy| busy == 0);
            if !matches!(purged, Ok(false)) {
                break;
            }
            tokio::time::sleep(PURGE_BUSY).await;
        }
        let mut restored = Ok(());
        for _ in 0..3 {
            restored = sqlx::query("PRAGMA busy_timeout = 5000") // BUSY_TIMEOUT
                .execute(&mut *conn)
                .await
                .map(|_| ());
            if restored.is_ok() {
                break;
            }
        }
        if let Err(e) = restored {
            // Writes would now fail at once on another process's lock instead of
            // waiting (setting a pragma fails only if the connection is broken).
            return Err(db(e));
        }
        match purged.map_err(db)? {
            true => Ok(()),
            false => Err(StoreError::unavailable(format!(
                "{}: the write-ahead log could not be checkpointed (readers busy); retry",
                self.path.display()
            ))),
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(|e| StoreError::Unavailable {
                context: self.path.display().to_string(),
                source: Some(Box::new(e)),
            })?;
        Ok(())
    }
}

pub(crate) use crate::codec::{int, tid, u32_col, u64_col};

/// Connection settings, applied in this order on every connection:
///
/// 1. `journal_mode=WAL` — readers never block the writer and vice versa.
/// 2. `synchronous=FULL` — a committed, acknowledged write survives power loss
///    (`NORMAL` when so configured: it survives the process crashing, and a power
///    loss may lose the last commits but never corrupts the database).
/// 3. `foreign_keys=ON` — declared references are enforced.
/// 4. `busy_timeout` — wait for another process's lock instead of failing at once.
/// 5. `secure_delete=ON` — deleted content is overwritten, so erased or shredded data
///    does not linger in free pages.
/// 6. `trusted_schema=OFF` — schema content cannot call application functions.
fn connect_options(path: &Path, full: bool) -> Result<SqliteConnectOptions, StoreError> {
    let url = format!("sqlite://{}", path.display());
    let options = SqliteConnectOptions::from_str(&url).map_err(|e| StoreError::Backend {
        context: format!("database path {}", path.display()),
        source: Some(Box::new(e)),
    })?;
    Ok(options
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(if full {
            SqliteSynchronous::Full
        } else {
            SqliteSynchronous::Normal
        })
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT)
        .pragma("secure_delete", "ON")
        .pragma("trusted_schema", "OFF"))
}

static CONTROL_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite/control");
static REGION_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite/region");

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
        let control = Db::open(control_path, &CONTROL_MIGRATIONS, tuning).await?;
        let mut opened = BTreeMap::new();
        for (name, dir) in regions {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Unavailable {
                context: format!("region {name} directory {}", dir.display()),
                source: Some(Box::new(e)),
            })?;
            opened.insert(
                name.clone(),
                Db::open(&dir.join("strongroom.db"), &REGION_MIGRATIONS, tuning).await?,
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
        let used = directory::regions_in_use(&self.control).await?;
        Ok(used
            .into_iter()
            .filter(|r| !self.regions.keys().any(|k| k.as_str() == r))
            .collect())
    }
}

#[cfg(test)]
mod tests;
