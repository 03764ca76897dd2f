//! The PostgreSQL adapter: one control database plus one database per region, each
//! reached through a pool of connections as an application role that owns nothing.
//!
//! Every statement runs in a transaction that first sets `app.tenant_id` with
//! `set_config(…, true)`: the setting is transaction-local, so a pooled connection
//! never carries one tenant's setting into the next transaction, and every tenant table
//! has row-level security (enabled and forced) on it. The adapter still binds
//! `tenant_id` in every statement, as on SQLite: RLS is the last line of defence, not
//! the only one.
//!
//! A write transaction also takes a transaction-level advisory lock on its tenant
//! (`pg_advisory_xact_lock`), so writes to one tenant are serialised by the database
//! across every server node, exactly as SQLite's single writer serialises them: the
//! audit sequence, record version numbers, refresh-token rotation and seal budgets
//! read-then-write under that lock and stay correct with any number of nodes. Control
//! database writes lock the platform's pseudo-tenant.
//!
//! Schema changes are not made by `serve`: [`migrate`] runs them with the owner role
//! (`strongroom db migrate`) and [`PgStore::open`] refuses a schema that is behind.

mod applications;
mod audit;
mod directory;
mod keys;
mod objects;
mod operators;
mod records;
mod sessions;
mod support;
mod users;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgSslMode};
use std::sync::Arc;

use sqlx::{PgConnection, Postgres, Transaction};
use strongroom_core::access::Scoped;
use strongroom_core::secret::SecretString;
use strongroom_core::store::StoreError;
use strongroom_core::tenant::{RegionName, TenantId};

use crate::error::db;

pub(crate) use crate::codec::{int, tid, u32_col, u64_col};

/// A transaction on one PostgreSQL database.
pub(crate) type Tx = Transaction<'static, Postgres>;

/// How to reach one PostgreSQL database. The password is kept apart from the URL so
/// that the URL can appear in messages; a password inside the URL is refused.
#[derive(Clone)]
pub struct PgDatabase {
    /// `postgres://user@host:port/database?sslmode=…` (no password).
    pub url: String,
    /// The role's password, if the server asks for one.
    pub password: Option<SecretString>,
    /// The name of the setting the URL came from, for error messages
    /// (`database.control_url`, `regions.eu.database_url`).
    pub setting: String,
}

impl PgDatabase {
    /// The role the URL names, if it names one.
    pub fn user(&self) -> Option<String> {
        let info = userinfo(&self.url)?;
        let user = info.split(':').next().unwrap_or("");
        (!user.is_empty()).then(|| user.to_owned())
    }

    /// The URL as it may be printed (it never holds a password; this also drops one
    /// that slipped in).
    pub fn redacted_url(&self) -> String {
        redacted(&self.url)
    }

    /// The same database reached as another role (the owner, for migrations).
    pub fn as_user(&self, user: &str, password: Option<SecretString>) -> Self {
        let url = match (self.url.find("://"), userinfo(&self.url)) {
            (Some(i), Some(info)) => format!(
                "{}{user}@{}",
                &self.url[..i + 3],
                &self.url[i + 3 + info.len() + 1..]
            ),
            (Some(i), None) => format!("{}{user}@{}", &self.url[..i + 3], &self.url[i + 3..]),
            (None, _) => self.url.clone(),
        };
        Self {
            url,
            password,
            setting: self.setting.clone(),
        }
    }
}

impl fmt::Debug for PgDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgDatabase")
            .field("url", &self.url)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("setting", &self.setting)
            .finish()
    }
}

/// Connection settings shared by every database of a deployment.
#[derive(Debug, Clone)]
pub struct PgSettings {
    /// The control database (operators, tenant directory, platform trail).
    pub control: PgDatabase,
    /// One database per region.
    pub regions: BTreeMap<RegionName, PgDatabase>,
    /// CA certificates (PEM) that sign the servers' certificates, for
    /// `sslmode=verify-ca` / `verify-full`; the system roots otherwise.
    pub ca_file: Option<PathBuf>,
    /// Connections per database pool.
    pub max_connections: u32,
    /// `statement_timeout`: no statement runs longer.
    pub statement_timeout: Duration,
    /// `lock_timeout`: no lock (row, table or a tenant's write lock) is waited on longer.
    pub lock_timeout: Duration,
    /// How long a request waits for a free pooled connection (or a new one).
    pub acquire_timeout: Duration,
}

/// The name of a role, checked before it is quoted into a `GRANT`.
fn role_ident(role: &str) -> Result<String, StoreError> {
    let ok = !role.is_empty()
        && role.len() <= 63
        && role
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !role.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(format!("\"{role}\""))
    } else {
        Err(StoreError::backend(format!(
            "application role {role:?} must be 1-63 characters of a-z, 0-9 and _"
        )))
    }
}

impl PgSettings {
    fn connect_options(&self, target: &PgDatabase) -> Result<PgConnectOptions, StoreError> {
        let bad = |why: &str| StoreError::Backend {
            context: format!("{}: {why}", target.setting),
            source: None,
        };
        let mut options = PgConnectOptions::from_str(&target.url)
            .map_err(|_| bad("not a valid postgres:// URL"))?;
        if userinfo(&target.url).is_some_and(|u| u.contains(':'))
            || query_keys(&target.url).any(|k| k == "password")
        {
            // The URL is printed in messages: it must not hold the password.
            return Err(bad(
                "the URL holds a password; set it in database.password or \
                 database.password_file (or STRONGROOM_DATABASE__PASSWORD) instead",
            ));
        }
        if let Some(pw) = &target.password {
            options = options.password(pw.expose());
        }
        if let Some(ca) = &self.ca_file {
            options = options.ssl_root_cert(ca);
            if matches!(
                options.get_ssl_mode(),
                PgSslMode::Prefer | PgSslMode::Allow | PgSslMode::Require
            ) {
                options = options.ssl_mode(PgSslMode::VerifyFull);
            }
        }
        let loopback = matches!(options.get_host(), "127.0.0.1" | "::1" | "localhost")
            || options.get_host().starts_with('/');
        // Only verify-full off this machine: `require` accepts any certificate, and
        // `verify-ca` any name under any trusted root (the public roots included).
        if !loopback && !matches!(options.get_ssl_mode(), PgSslMode::VerifyFull) {
            return Err(bad(
                "a database off this machine needs sslmode=verify-full in the URL, with \
                 database.ca_file for a private CA: wrapped keys and password hashes \
                 cross this connection",
            ));
        }
        let ms = |d: Duration| format!("{}ms", d.as_millis());
        Ok(options.application_name("strongroom").options([
            ("statement_timeout", ms(self.statement_timeout)),
            ("lock_timeout", ms(self.lock_timeout)),
            // A transaction left open (a crashed handler) must not hold locks forever.
            (
                "idle_in_transaction_session_timeout",
                ms(self.statement_timeout * 2),
            ),
        ]))
    }

    async fn pool(&self, target: &PgDatabase) -> Result<PgPool, StoreError> {
        let options = self.connect_options(target)?;
        PgPoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(self.acquire_timeout)
            .connect_with(options)
            .await
            .map_err(|e| connect_error(target, e))
    }
}

/// A failure to connect, naming the setting to fix and never the secret.
fn connect_error(target: &PgDatabase, e: sqlx::Error) -> StoreError {
    let hint = match &e {
        sqlx::Error::Database(d) if d.code().is_some_and(|c| c.starts_with("28")) => {
            " (authentication refused: check database.password / database.password_file \
             and the role in the URL)"
        }
        sqlx::Error::Database(d) if d.code().as_deref() == Some("3D000") => {
            " (the database does not exist)"
        }
        sqlx::Error::Tls(_) => " (TLS failed: check sslmode and database.ca_file)",
        _ => "",
    };
    StoreError::Unavailable {
        context: format!(
            "cannot connect to {} = {}{hint}",
            target.setting,
            redacted(&target.url)
        ),
        source: Some(Box::new(e)),
    }
}

/// The `user[:password]` part of a URL, if it has one.
fn userinfo(url: &str) -> Option<&str> {
    let rest = &url[url.find("://")? + 3..];
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    authority.rfind('@').map(|at| &authority[..at])
}

/// The names of a URL's query parameters.
fn query_keys(url: &str) -> impl Iterator<Item = String> + '_ {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    form_urlencoded::parse(query.as_bytes()).map(|(k, _)| k.into_owned())
}

/// The URL with at most a user name before its host and no query string: never a
/// password, wherever one was put.
fn redacted(url: &str) -> String {
    let url = url.split_once('?').map_or(url, |(u, _)| u);
    match (url.find("://"), userinfo(url)) {
        (Some(i), Some(info)) => {
            let user = info.split(':').next().unwrap_or("");
            let host = &url[i + 3 + info.len() + 1..];
            format!("{}{user}@{host}", &url[..i + 3])
        }
        (Some(_), None) => url.to_owned(),
        (None, _) => "<unparsable URL>".into(),
    }
}

/// One PostgreSQL database: a pool of application-role connections.
#[derive(Clone)]
pub(crate) struct Db {
    pool: PgPool,
    label: String,
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db").field("label", &self.label).finish()
    }
}

impl Db {
    /// A write transaction for `tenant`: the RLS setting, then the tenant's write lock,
    /// held until commit or rollback.
    pub(crate) async fn write(&self, tenant: &str) -> Result<Tx, StoreError> {
        let mut tx = self.pool.begin().await.map_err(|e| self.unreachable(e))?;
        sqlx::query(
            "SELECT set_config('app.tenant_id', $1, true), \
             pg_advisory_xact_lock(hashtextextended($1, 0))",
        )
        .bind(tenant)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        Ok(tx)
    }

    /// A read-only transaction for `tenant`. Reads take no lock: under READ COMMITTED
    /// each statement sees every write committed before it.
    pub(crate) async fn read(&self, tenant: &str) -> Result<Tx, StoreError> {
        self.read_with(tenant, "BEGIN READ ONLY").await
    }

    /// A read-only transaction for `tenant` on one snapshot (REPEATABLE READ): for a
    /// read of several statements that must see one state.
    pub(crate) async fn snapshot(&self, tenant: &str) -> Result<Tx, StoreError> {
        self.read_with(tenant, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
    }

    async fn read_with(&self, tenant: &str, begin: &'static str) -> Result<Tx, StoreError> {
        let mut tx = self
            .pool
            .begin_with(begin)
            .await
            .map_err(|e| self.unreachable(e))?;
        sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
            .bind(tenant)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        Ok(tx)
    }

    /// A failure to get a connection and begin a transaction: whatever the server
    /// said (shutting down, not accepting connections, too many clients), nothing
    /// was attempted, and the request can be retried: unavailable, a 503.
    fn unreachable(&self, e: sqlx::Error) -> StoreError {
        StoreError::Unavailable {
            context: self.label.clone(),
            source: Some(Box::new(e)),
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::Unavailable {
                context: self.label.clone(),
                source: Some(Box::new(e)),
            })?;
        Ok(())
    }

    /// Fails if the role we connected as could step around row-level security: a
    /// superuser, a role with BYPASSRLS, or one that owns a table (the owner of a table
    /// can disable its policies).
    async fn require_unprivileged(&self) -> Result<(), StoreError> {
        let found: Vec<String> = sqlx::query_scalar(UNPRIVILEGED)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        if found.is_empty() {
            return Ok(());
        }
        Err(StoreError::backend(format!(
            "{}: the server must connect as a role that owns nothing and cannot step \
             around row-level security or the append-only rules, but this one {}; connect \
             as the application role, and run migrations (which grant it exactly what it \
             needs) with `strongroom db migrate`",
            self.label,
            found.join("; ")
        )))
    }

    /// Fails unless every migration this binary knows is applied, and no other.
    async fn require_current(&self, migrator: &sqlx::migrate::Migrator) -> Result<(), StoreError> {
        let applied: Vec<i64> = sqlx::query_scalar(
            "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| StoreError::Backend {
            context: format!(
                "{}: cannot read the schema version (run `strongroom db migrate`)",
                self.label
            ),
            source: Some(Box::new(e)),
        })?;
        let known: Vec<i64> = migrator.iter().map(|m| m.version).collect();
        if let Some(missing) = known.iter().find(|v| !applied.contains(v)) {
            return Err(StoreError::backend(format!(
                "{}: the schema is behind this binary (migration {missing} not applied); \
                 run `strongroom db migrate`",
                self.label
            )));
        }
        if let Some(newer) = applied.iter().find(|v| !known.contains(v)) {
            return Err(StoreError::backend(format!(
                "{}: the schema has migration {newer}, which this binary does not know; \
                 run the newer binary",
                self.label
            )));
        }
        Ok(())
    }
}

static CONTROL_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres/control");
static REGION_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres/region");
/// Privileges of the application role, applied after migrating (`{app}` is the role).
const CONTROL_GRANTS: &str = include_str!("../../migrations/postgres/grants/control.sql");
const REGION_GRANTS: &str = include_str!("../../migrations/postgres/grants/region.sql");

/// Everything that would let the connected role step around row-level security, the
/// append-only rules or the column grants, each as the reason `serve` gives when it
/// refuses to start. Through any role it belongs to, too (`pg_has_role … MEMBER`
/// ignores INHERIT and SET options): a member of the owner can `SET ROLE` and alter
/// any policy. Checked on effective privileges, so rights granted to PUBLIC or by
/// default privileges count as well.
const UNPRIVILEGED: &str = "SELECT reason FROM (VALUES \
    ('is, or belongs to, a superuser or a role with BYPASSRLS', \
     EXISTS (SELECT 1 FROM pg_roles r WHERE pg_has_role(current_user, r.oid, 'MEMBER') \
             AND (r.rolsuper OR r.rolbypassrls))), \
    ('can create roles (CREATEROLE), and so grant itself the owner', \
     EXISTS (SELECT 1 FROM pg_roles r WHERE pg_has_role(current_user, r.oid, 'MEMBER') \
             AND r.rolcreaterole)), \
    ('owns, or belongs to the owner of, a table, function or type of the schema', \
     EXISTS (SELECT 1 FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace \
             AND pg_has_role(current_user, c.relowner, 'MEMBER')) \
     OR EXISTS (SELECT 1 FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace \
             AND pg_has_role(current_user, p.proowner, 'MEMBER')) \
     OR EXISTS (SELECT 1 FROM pg_type t WHERE t.typnamespace = 'public'::regnamespace \
             AND pg_has_role(current_user, t.typowner, 'MEMBER'))), \
    ('owns, or belongs to the owner of, the database or its schema', \
     pg_has_role(current_user, (SELECT datdba FROM pg_database \
                                WHERE datname = current_database()), 'MEMBER') \
     OR pg_has_role(current_user, (SELECT nspowner FROM pg_namespace \
                                   WHERE nspname = 'public'), 'MEMBER')), \
    ('may create objects in the schema or the database, or temporary tables', \
     has_schema_privilege('public', 'CREATE') \
     OR has_database_privilege(current_database(), 'CREATE') \
     OR has_database_privilege(current_database(), 'TEMP')), \
    ('may truncate a table, add triggers to it or reference it', \
     EXISTS (SELECT 1 FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace \
             AND c.relkind = 'r' AND (has_table_privilege(c.oid, 'TRUNCATE') \
             OR has_table_privilege(c.oid, 'TRIGGER') \
             OR has_table_privilege(c.oid, 'REFERENCES')))), \
    ('may change or delete audit entries, signatures or other append-only rows', \
     EXISTS (SELECT 1 FROM unnest(ARRAY['audit_entries', 'record_types', \
             'record_revisions', 'record_events', 'signatures']) AS t(name) \
             WHERE to_regclass(t.name) IS NOT NULL \
             AND (has_any_column_privilege(t.name, 'UPDATE') \
                  OR has_table_privilege(t.name, 'DELETE')))), \
    ('belongs to a predefined role that writes all data or reaches server files', \
     pg_has_role(current_user, 'pg_write_all_data', 'MEMBER') \
     OR pg_has_role(current_user, 'pg_read_server_files', 'MEMBER') \
     OR pg_has_role(current_user, 'pg_write_server_files', 'MEMBER') \
     OR pg_has_role(current_user, 'pg_execute_server_program', 'MEMBER')) \
) AS v(reason, bad) WHERE bad";

/// The platform's pseudo-tenant, whose lock and RLS setting control writes use.
pub(crate) fn platform_tid() -> String {
    TenantId::PLATFORM.as_uuid().to_string()
}

/// Brings every database up to this binary's schema, connected as the owner role (the
/// settings' credentials must be the owner's), and grants `app_role` exactly what the
/// server needs. Safe to run again; safe while servers run (each migration is one
/// transaction, and sqlx holds an advisory lock so two migrators never interleave).
pub async fn migrate(owner: &PgSettings, app_role: &str) -> Result<(), StoreError> {
    let app = role_ident(app_role)?;
    let run = async |target: &PgDatabase,
                     migrator: &sqlx::migrate::Migrator,
                     grants: &str|
           -> Result<(), StoreError> {
        let pool = owner.pool(target).await?;
        migrator.run(&pool).await.map_err(|e| StoreError::Backend {
            context: format!("migrating {}", redacted(&target.url)),
            source: Some(Box::new(e)),
        })?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(grants.replace("{app}", &app)))
            .execute(&pool)
            .await
            .map_err(|e| StoreError::Backend {
                context: format!("granting {app_role} on {}", redacted(&target.url)),
                source: Some(Box::new(e)),
            })?;
        pool.close().await;
        Ok(())
    };
    run(&owner.control, &CONTROL_MIGRATIONS, CONTROL_GRANTS).await?;
    for target in owner.regions.values() {
        run(target, &REGION_MIGRATIONS, REGION_GRANTS).await?;
    }
    Ok(())
}

/// Strongroom's storage on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgStore {
    control: Db,
    regions: BTreeMap<RegionName, Db>,
    /// While this node leads: the control-database connection that holds the
    /// session-level leader lock (released by the server when the connection ends,
    /// so a crashed or partitioned node loses leadership by itself).
    leader: Arc<tokio::sync::Mutex<Option<PgConnection>>>,
}

/// How long the leader's lock connection may take to answer its liveness check.
const LEADER_PING: Duration = Duration::from_secs(5);

/// The advisory-lock key of the singleton background work, in the control database.
const LEADER_LOCK: &str = "strongroom:background-leader";

impl PgStore {
    /// Connects to every database and checks that its schema is this binary's.
    pub async fn open(settings: &PgSettings) -> Result<Self, StoreError> {
        let open = async |target: &PgDatabase, migrator| -> Result<Db, StoreError> {
            let db = Db {
                pool: settings.pool(target).await?,
                label: format!("{} ({})", target.setting, redacted(&target.url)),
            };
            db.require_unprivileged().await?;
            db.require_current(migrator).await?;
            Ok(db)
        };
        let control = open(&settings.control, &CONTROL_MIGRATIONS).await?;
        let mut regions = BTreeMap::new();
        for (name, target) in &settings.regions {
            regions.insert(name.clone(), open(target, &REGION_MIGRATIONS).await?);
        }
        Ok(Self {
            control,
            regions,
            leader: Arc::default(),
        })
    }

    /// Keeps or takes the leader lock: true while this node holds it. The held
    /// connection is checked every call; if it died, the lock died with it and is
    /// tried again (another node may have it by then).
    pub(crate) async fn lead(&self) -> Result<bool, StoreError> {
        let mut held = self.leader.lock().await;
        if let Some(conn) = held.as_mut() {
            // Bounded: a half-open connection must not hang the integrator. Dropping
            // it ends our session, and the server releases the lock with it.
            let alive =
                tokio::time::timeout(LEADER_PING, sqlx::query("SELECT 1").execute(&mut *conn))
                    .await
                    .is_ok_and(|r| r.is_ok());
            if alive {
                return Ok(true);
            }
            *held = None;
        }
        // Out of the pool before the lock is tried: the lock lives exactly as long as
        // this connection, and a connection dropped half-way (the timeout) is closed,
        // never returned to the pool still holding it.
        let attempt = async {
            let mut conn = self.control.pool.acquire().await.map_err(db)?.detach();
            let got: bool =
                sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
                    .bind(LEADER_LOCK)
                    .fetch_one(&mut conn)
                    .await
                    .map_err(db)?;
            Ok::<_, StoreError>((conn, got))
        };
        let (conn, got) = tokio::time::timeout(LEADER_PING, attempt)
            .await
            .map_err(|_| {
                StoreError::unavailable("taking the leader lock did not answer in time")
            })??;
        if got {
            *held = Some(conn);
        }
        Ok(got)
    }

    /// The database of the region a scope belongs to (the control database for the
    /// platform's own trail).
    pub(crate) fn region(&self, scope: &(impl Scoped + ?Sized)) -> Result<&Db, StoreError> {
        if scope.region().is_platform() {
            return Ok(&self.control);
        }
        self.regions.get(scope.region()).ok_or_else(|| {
            StoreError::unavailable(format!("region {} is not configured", scope.region()))
        })
    }

    /// A write transaction in `scope`'s database, set to and locked on its tenant.
    pub(crate) async fn write(&self, scope: &(impl Scoped + ?Sized)) -> Result<Tx, StoreError> {
        self.region(scope)?.write(&tid(scope)).await
    }

    /// A read-only transaction in `scope`'s database, set to its tenant.
    pub(crate) async fn read(&self, scope: &(impl Scoped + ?Sized)) -> Result<Tx, StoreError> {
        self.region(scope)?.read(&tid(scope)).await
    }

    /// A read-only transaction in `scope`'s database on one snapshot.
    pub(crate) async fn snapshot(&self, scope: &(impl Scoped + ?Sized)) -> Result<Tx, StoreError> {
        self.region(scope)?.snapshot(&tid(scope)).await
    }

    /// A write transaction on the control database (locked on the platform).
    pub(crate) async fn control_write(&self) -> Result<Tx, StoreError> {
        self.control.write(&platform_tid()).await
    }

    /// A read-only transaction on the control database.
    pub(crate) async fn control_read(&self) -> Result<Tx, StoreError> {
        self.control.read(&platform_tid()).await
    }

    /// Regions whose tenants exist in the directory but are not configured.
    pub async fn unconfigured_regions(&self) -> Result<Vec<String>, StoreError> {
        let used = directory::regions_in_use(self).await?;
        Ok(used
            .into_iter()
            .filter(|r| !self.regions.keys().any(|k| k.as_str() == r))
            .collect())
    }
}

#[cfg(test)]
pub(crate) mod tests;
