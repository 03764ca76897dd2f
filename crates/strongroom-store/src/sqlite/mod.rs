//! The SQLite adapter: one control database plus one database per region.
//!
//! Each database has one writer connection (SQLite serialises writers anyway; one
//! connection makes that explicit and keeps write transactions short and ordered) and a
//! small read-only pool. Write transactions start with `BEGIN IMMEDIATE` so a second
//! process (the CLI next to a running server) waits on `busy_timeout` instead of
//! failing half-way through.

mod applications;
mod audit;
mod control;
mod keys;
mod region;
mod users;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};
use strongroom_core::access::{PlatformScope, TenantScope};
use strongroom_core::identity::Email;
use strongroom_core::identity::application::{AppId, StoredApplication};
use strongroom_core::identity::operator::{Operator, OperatorCredentials};
use strongroom_core::identity::user::{StoredSession, User, UserCredentials, UserId};
use strongroom_core::store::{
    AuditEvent, AuditFilter, AuditLogState, NewUserRow, Page, RefreshOutcome, Store, StoreError,
    StoredBlob, StoredDek, StoredEntry, StoredInvitation, StoredKek, StoredSealed,
    StoredSigningKey, StoredSubjectKey, StoredTile, TenantKeys, UserChange,
};
use strongroom_core::tenant::{RegionName, Slug, Tenant};
use time::OffsetDateTime;

use crate::error::db;

/// How long a writer waits for another process's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Read connections per database.
const READERS: u32 = 4;

/// One SQLite database: a single writer and a read-only pool.
#[derive(Debug, Clone)]
pub(crate) struct Db {
    writer: SqlitePool,
    reader: SqlitePool,
    path: PathBuf,
}

impl Db {
    async fn open(path: &Path, migrator: &sqlx::migrate::Migrator) -> Result<Self, StoreError> {
        let options = connect_options(path)?;
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(BUSY_TIMEOUT * 2)
            .connect_with(options.clone().create_if_missing(true))
            .await
            .map_err(db)?;
        migrator
            .run(&writer)
            .await
            .map_err(|e| StoreError::Backend(format!("migrating {}: {e}", path.display())))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS)
            .acquire_timeout(BUSY_TIMEOUT * 2)
            .connect_with(options.read_only(true))
            .await
            .map_err(db)?;
        Ok(Self {
            writer,
            reader,
            path: path.to_owned(),
        })
    }

    /// Starts a write transaction holding SQLite's write lock from the first statement.
    pub(crate) async fn write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(db)
    }

    /// The read pool.
    pub(crate) fn read(&self) -> &SqlitePool {
        &self.reader
    }

    /// Checkpoints the write-ahead log and truncates it, so bytes deleted by the last
    /// transactions (shredded keys) survive neither in the log nor, with
    /// `secure_delete`, in the database's free pages. Readers can hold a checkpoint
    /// back, so it is retried for a short while.
    pub(crate) async fn purge_log(&self) -> Result<(), StoreError> {
        for _ in 0..50 {
            let row = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(&self.writer)
                .await
                .map_err(db)?;
            let busy: i64 = sqlx::Row::try_get(&row, 0).map_err(db)?;
            if busy == 0 {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(StoreError::Unavailable(format!(
            "{}: the write-ahead log could not be checkpointed (readers busy); retry",
            self.path.display()
        )))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", self.path.display())))?;
        Ok(())
    }
}

/// The tenant id a scope binds into every region query.
pub(crate) fn tid(scope: &TenantScope) -> String {
    scope.tenant().as_uuid().to_string()
}

/// A count or version as SQLite's signed 64-bit integer.
pub(crate) fn int(n: u64) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::Backend(format!("{n} exceeds the storable range")))
}

/// Connection settings, applied in this order on every connection:
///
/// 1. `journal_mode=WAL` — readers never block the writer and vice versa.
/// 2. `synchronous=FULL` — a committed, acknowledged write survives power loss.
/// 3. `foreign_keys=ON` — declared references are enforced.
/// 4. `busy_timeout` — wait for another process's lock instead of failing at once.
/// 5. `secure_delete=ON` — deleted content is overwritten, so erased or shredded data
///    does not linger in free pages.
/// 6. `trusted_schema=OFF` — schema content cannot call application functions.
fn connect_options(path: &Path) -> Result<SqliteConnectOptions, StoreError> {
    let url = format!("sqlite://{}", path.display());
    let options = SqliteConnectOptions::from_str(&url)
        .map_err(|e| StoreError::Backend(format!("database path {}: {e}", path.display())))?;
    Ok(options
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
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
        let control = Db::open(control_path, &CONTROL_MIGRATIONS).await?;
        let mut opened = BTreeMap::new();
        for (name, dir) in regions {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Unavailable(format!("region {name} directory {}: {e}", dir.display()))
            })?;
            opened.insert(
                name.clone(),
                Db::open(&dir.join("strongroom.db"), &REGION_MIGRATIONS).await?,
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
    fn region(&self, scope: &TenantScope) -> Result<&Db, StoreError> {
        self.regions.get(scope.region()).ok_or_else(|| {
            StoreError::Unavailable(format!("region {} is not configured", scope.region()))
        })
    }

    /// Regions whose tenants exist in the directory but are not configured, for a
    /// start-up check that fails loudly instead of hiding tenants.
    pub async fn unconfigured_regions(&self) -> Result<Vec<String>, StoreError> {
        let used = control::regions_in_use(&self.control).await?;
        Ok(used
            .into_iter()
            .filter(|r| !self.regions.keys().any(|k| k.as_str() == r))
            .collect())
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn health(&self) -> Result<(), StoreError> {
        self.control.ping().await?;
        for db in self.regions.values() {
            db.ping().await?;
        }
        Ok(())
    }

    async fn insert_operator(
        &self,
        _: &PlatformScope,
        op: &Operator,
        hash: &str,
    ) -> Result<(), StoreError> {
        control::insert_operator(&self.control, op, hash).await
    }

    async fn operator_credentials(
        &self,
        email: &Email,
    ) -> Result<Option<OperatorCredentials>, StoreError> {
        control::operator_credentials(&self.control, email).await
    }

    async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError> {
        control::signing_keys(&self.control).await
    }

    async fn insert_signing_key(&self, key: &StoredSigningKey) -> Result<(), StoreError> {
        control::insert_signing_key(&self.control, key).await
    }

    async fn delete_signing_key(&self, kid: &str) -> Result<(), StoreError> {
        control::delete_signing_key(&self.control, kid).await
    }

    async fn create_tenant(
        &self,
        _: &PlatformScope,
        tenant: &Tenant,
        home: &TenantScope,
        keys: &TenantKeys,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let region = self.region(home)?;
        // Directory first (it holds the unique slug), region home second, directory
        // commit last: a failure anywhere leaves no directory entry. A crash between the
        // two commits leaves only an unreferenced home, which nothing can reach.
        let mut dir_tx = self.control.write().await?;
        control::insert_tenant(&mut dir_tx, tenant).await?;
        region::insert_home(region, home, tenant, keys, audit).await?;
        dir_tx.commit().await.map_err(db)
    }

    async fn tenant(&self, _: &PlatformScope, slug: &Slug) -> Result<Option<Tenant>, StoreError> {
        control::tenant_by_slug(&self.control, slug).await
    }

    async fn tenants(
        &self,
        _: &PlatformScope,
        page: Page<Slug>,
    ) -> Result<Vec<Tenant>, StoreError> {
        control::tenants(&self.control, page).await
    }

    async fn tenant_home_exists(&self, scope: &TenantScope) -> Result<bool, StoreError> {
        region::home_exists(self.region(scope)?, scope).await
    }

    async fn tenant_keys(&self, scope: &TenantScope) -> Result<TenantKeys, StoreError> {
        keys::tenant_keys(self.region(scope)?, scope).await
    }

    async fn add_data_key(
        &self,
        scope: &TenantScope,
        dek: &StoredDek,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        keys::add_data_key(self.region(scope)?, scope, dek, audit).await
    }

    async fn replace_kek(
        &self,
        scope: &TenantScope,
        kek: &StoredKek,
        rewrapped: &[StoredDek],
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        keys::replace_kek(self.region(scope)?, scope, kek, rewrapped, audit).await
    }

    async fn reserve_seals(
        &self,
        scope: &TenantScope,
        dek_version: u32,
        n: u64,
    ) -> Result<u64, StoreError> {
        keys::reserve_seals(self.region(scope)?, scope, dek_version, n).await
    }

    async fn destroy_tenant_keys(
        &self,
        scope: &TenantScope,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        keys::destroy(self.region(scope)?, scope, audit).await
    }

    async fn put_sealed(
        &self,
        scope: &TenantScope,
        kind: &str,
        value: &StoredSealed,
        expected: u64,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        keys::put_sealed(self.region(scope)?, scope, kind, value, expected, audit).await
    }

    async fn audit_log(&self, scope: &TenantScope) -> Result<Option<AuditLogState>, StoreError> {
        audit::log(self.region(scope)?, scope).await
    }

    async fn init_audit_log(
        &self,
        scope: &TenantScope,
        state: &AuditLogState,
    ) -> Result<(), StoreError> {
        audit::init_log(self.region(scope)?, scope, state).await
    }

    async fn audit_tiles(
        &self,
        scope: &TenantScope,
        wanted: &[(u8, u64)],
    ) -> Result<Vec<StoredTile>, StoreError> {
        audit::tiles(self.region(scope)?, scope, wanted).await
    }

    async fn integrate_audit(
        &self,
        scope: &TenantScope,
        from: u64,
        to: u64,
        tiles: &[StoredTile],
        checkpoint: &str,
    ) -> Result<bool, StoreError> {
        audit::integrate(self.region(scope)?, scope, from, to, tiles, checkpoint).await
    }

    async fn audit_len(&self, scope: &TenantScope) -> Result<u64, StoreError> {
        audit::len(self.region(scope)?, scope).await
    }

    async fn audit_entries(
        &self,
        scope: &TenantScope,
        from: u64,
        limit: u32,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        audit::entries(self.region(scope)?, scope, from, limit).await
    }

    async fn append_audit(
        &self,
        scope: &TenantScope,
        audit: &AuditEvent,
    ) -> Result<u64, StoreError> {
        audit::append_alone(self.region(scope)?, scope, audit).await
    }

    async fn audit_query(
        &self,
        scope: &TenantScope,
        filter: &AuditFilter,
        from: u64,
        limit: u32,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        audit::query(self.region(scope)?, scope, filter, from, limit).await
    }

    async fn audit_subject_key(
        &self,
        scope: &TenantScope,
        subject: &str,
    ) -> Result<Option<StoredSubjectKey>, StoreError> {
        audit::subject_key(self.region(scope)?, scope, subject).await
    }

    async fn audit_subject_key_by_id(
        &self,
        scope: &TenantScope,
        key_id: &str,
    ) -> Result<Option<StoredSubjectKey>, StoreError> {
        audit::subject_key_by_id(self.region(scope)?, scope, key_id).await
    }

    async fn insert_audit_subject_key(
        &self,
        scope: &TenantScope,
        subject: &str,
        key: &StoredSubjectKey,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        audit::insert_subject_key(self.region(scope)?, scope, subject, key, at).await
    }

    async fn erase_audit_subject(
        &self,
        scope: &TenantScope,
        subject: &str,
        audit: &AuditEvent,
    ) -> Result<u64, StoreError> {
        audit::erase_subject(self.region(scope)?, scope, subject, audit).await
    }

    async fn insert_user(
        &self,
        scope: &TenantScope,
        row: &NewUserRow,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        users::insert(self.region(scope)?, scope, row, audit).await
    }

    async fn user(&self, scope: &TenantScope, id: UserId) -> Result<Option<User>, StoreError> {
        users::by_id(self.region(scope)?, scope, id).await
    }

    async fn user_credentials(
        &self,
        scope: &TenantScope,
        email: &Email,
    ) -> Result<Option<UserCredentials>, StoreError> {
        users::credentials(self.region(scope)?, scope, email).await
    }

    async fn users(
        &self,
        scope: &TenantScope,
        page: &Page<UserId>,
    ) -> Result<Vec<User>, StoreError> {
        users::list(self.region(scope)?, scope, page).await
    }

    async fn update_user(
        &self,
        scope: &TenantScope,
        id: UserId,
        change: &UserChange,
        audit: &AuditEvent,
    ) -> Result<Option<User>, StoreError> {
        users::update(self.region(scope)?, scope, id, change, audit).await
    }

    async fn set_password_hash(
        &self,
        scope: &TenantScope,
        id: UserId,
        hash: &str,
    ) -> Result<(), StoreError> {
        users::set_password_hash(self.region(scope)?, scope, id, hash).await
    }

    async fn insert_application(
        &self,
        scope: &TenantScope,
        app: &StoredApplication,
        created_by: &str,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        applications::insert(self.region(scope)?, scope, app, created_by, audit).await
    }

    async fn application(
        &self,
        scope: &TenantScope,
        id: AppId,
    ) -> Result<Option<StoredApplication>, StoreError> {
        applications::by_id(self.region(scope)?, scope, id).await
    }

    async fn applications(
        &self,
        scope: &TenantScope,
        limit: u32,
    ) -> Result<Vec<StoredApplication>, StoreError> {
        applications::list(self.region(scope)?, scope, limit).await
    }

    async fn set_application_active(
        &self,
        scope: &TenantScope,
        id: AppId,
        active: bool,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        applications::set_active(self.region(scope)?, scope, id, active, audit).await
    }

    async fn delete_user(
        &self,
        scope: &TenantScope,
        id: UserId,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        users::delete(self.region(scope)?, scope, id, audit).await
    }

    async fn insert_invitation(
        &self,
        scope: &TenantScope,
        invitation: &StoredInvitation,
        created_by: &str,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        users::insert_invitation(self.region(scope)?, scope, invitation, created_by, audit).await
    }

    async fn accept_invitation(
        &self,
        scope: &TenantScope,
        hash: &[u8; 32],
        user: &NewUserRow,
        now: OffsetDateTime,
        audit: &AuditEvent,
    ) -> Result<Option<StoredInvitation>, StoreError> {
        users::accept_invitation(self.region(scope)?, scope, hash, user, now, audit).await
    }

    async fn create_session(
        &self,
        scope: &TenantScope,
        session: &StoredSession,
        refresh_hash: &[u8; 32],
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        users::create_session(self.region(scope)?, scope, session, refresh_hash, audit).await
    }

    async fn session(
        &self,
        scope: &TenantScope,
        id: &str,
    ) -> Result<Option<StoredSession>, StoreError> {
        users::session(self.region(scope)?, scope, id).await
    }

    async fn rotate_refresh(
        &self,
        scope: &TenantScope,
        old: &[u8; 32],
        new: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<RefreshOutcome, StoreError> {
        users::rotate_refresh(self.region(scope)?, scope, old, new, now).await
    }

    async fn revoke_session(
        &self,
        scope: &TenantScope,
        id: &str,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        users::revoke_session(self.region(scope)?, scope, id, audit).await
    }

    async fn sealed(
        &self,
        scope: &TenantScope,
        kind: &str,
        id: &str,
    ) -> Result<Option<StoredSealed>, StoreError> {
        keys::sealed(self.region(scope)?, scope, kind, id).await
    }

    async fn sealed_before(
        &self,
        scope: &TenantScope,
        kind: &str,
        current: u32,
        limit: u32,
    ) -> Result<Vec<StoredSealed>, StoreError> {
        keys::sealed_before(self.region(scope)?, scope, kind, current, limit).await
    }

    async fn reseal(
        &self,
        scope: &TenantScope,
        kind: &str,
        old: &StoredSealed,
        new: &StoredSealed,
    ) -> Result<bool, StoreError> {
        keys::reseal(self.region(scope)?, scope, kind, old, new).await
    }

    async fn insert_blob(&self, scope: &TenantScope, blob: &StoredBlob) -> Result<(), StoreError> {
        keys::insert_blob(self.region(scope)?, scope, blob).await
    }

    async fn blob(&self, scope: &TenantScope, id: &str) -> Result<Option<StoredBlob>, StoreError> {
        keys::blob(self.region(scope)?, scope, id).await
    }

    async fn blobs_before(
        &self,
        scope: &TenantScope,
        current: u32,
        limit: u32,
    ) -> Result<Vec<StoredBlob>, StoreError> {
        keys::blobs_before(self.region(scope)?, scope, current, limit).await
    }

    async fn reseal_blob(
        &self,
        scope: &TenantScope,
        old: &StoredBlob,
        new: &StoredBlob,
    ) -> Result<bool, StoreError> {
        keys::reseal_blob(self.region(scope)?, scope, old, new).await
    }
}

#[cfg(test)]
mod tests;
