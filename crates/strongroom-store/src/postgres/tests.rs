//! The storage conformance suite on PostgreSQL, and what only PostgreSQL's adapter
//! promises: row-level security against raw SQL with the application role, the
//! application role's privileges, the schema check at start, and writers on two
//! "nodes" (two stores over one database).
//!
//! Needs a PostgreSQL server: `SR_TEST_POSTGRES` is a superuser URL
//! (`postgres://postgres:…@127.0.0.1:5432/postgres`; `.ci/run` starts a throw-away
//! cluster and sets it). Without it these tests say so and pass vacuously, unless
//! `SR_REQUIRE_POSTGRES=1` (set by `.ci/run`), when they fail.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use strongroom_core::access::TenantScope;
use strongroom_core::store::{AuditStore, Store};
use strongroom_core::tenant::Tenant;

use super::*;
use crate::conformance::{self, Backend};

const OWNER: &str = "sr_test_owner";
const APP: &str = "sr_test_app";
const OWNER_PW: &str = "owner-test-password";
const APP_PW: &str = "app-test-password";

/// The superuser URL, or `None` when PostgreSQL tests are not configured here.
#[allow(clippy::disallowed_methods)] // test configuration comes from the environment
fn admin_url() -> Option<String> {
    match std::env::var("SR_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("SR_REQUIRE_POSTGRES").is_err(),
                "SR_REQUIRE_POSTGRES is set but SR_TEST_POSTGRES is not"
            );
            None
        }
    }
}

/// A fresh set of databases (control, eu, us) owned by the test owner role, migrated.
struct Cluster {
    admin: PgConnectOptions,
    prefix: String,
}

impl Cluster {
    async fn new() -> Self {
        let url = admin_url().expect("checked by the caller");
        let admin = PgConnectOptions::from_str(&url).unwrap();
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(admin.clone())
            .await
            .unwrap();
        for (role, pw) in [(OWNER, OWNER_PW), (APP, APP_PW)] {
            // Tests run in parallel: creating a role twice must not fail either test.
            let sql = format!(
                "DO $$ BEGIN CREATE ROLE {role} LOGIN PASSWORD '{pw}'; \
                 EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
            );
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&pool)
                .await
                .unwrap();
        }
        let prefix = format!("sr_{}", uuid::Uuid::new_v4().simple());
        for db in ["control", "eu", "us"] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "CREATE DATABASE {prefix}_{db} OWNER {OWNER}"
            )))
            .execute(&pool)
            .await
            .unwrap();
        }
        pool.close().await;
        let cluster = Self { admin, prefix };
        migrate(&cluster.settings(OWNER, OWNER_PW), APP)
            .await
            .unwrap();
        cluster
    }

    fn target(&self, user: &str, pw: &str, db: &str) -> PgDatabase {
        PgDatabase {
            url: format!(
                "postgres://{user}@{}:{}/{}_{db}",
                self.admin.get_host(),
                self.admin.get_port(),
                self.prefix
            ),
            password: Some(SecretString::new(pw.into())),
            setting: format!("test.{db}"),
        }
    }

    fn settings(&self, user: &str, pw: &str) -> PgSettings {
        PgSettings {
            control: self.target(user, pw, "control"),
            regions: ["eu", "us"]
                .iter()
                .map(|r| (RegionName::parse(r).unwrap(), self.target(user, pw, r)))
                .collect::<BTreeMap<_, _>>(),
            ca_file: None,
            max_connections: 8,
            statement_timeout: Duration::from_secs(30),
            lock_timeout: Duration::from_secs(10),
            acquire_timeout: Duration::from_secs(10),
        }
    }

    async fn app_store(&self) -> PgStore {
        PgStore::open(&self.settings(APP, APP_PW)).await.unwrap()
    }

    /// A superuser connection to one of this cluster's databases (bypasses RLS).
    async fn superuser(&self, db: &str) -> sqlx::PgPool {
        PgPoolOptions::new()
            .max_connections(1)
            .connect_with(
                self.admin
                    .clone()
                    .database(&format!("{}_{db}", self.prefix)),
            )
            .await
            .unwrap()
    }
}

/// A fresh PostgreSQL store (application role) over fresh databases.
struct Postgres {
    store: PgStore,
    cluster: Cluster,
}

#[async_trait]
impl Backend for Postgres {
    async fn fresh() -> Self {
        let cluster = Cluster::new().await;
        Self {
            store: cluster.app_store().await,
            cluster,
        }
    }

    fn store(&self) -> &dyn Store {
        &self.store
    }

    async fn break_audit_appends(&self, scope: &TenantScope) {
        let su = self.cluster.superuser(scope.region().as_str()).await;
        sqlx::raw_sql(
            "CREATE FUNCTION inject_failure() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'injected audit failure'; END $$; \
             CREATE TRIGGER inject_failure BEFORE INSERT ON audit_entries \
             FOR EACH ROW EXECUTE FUNCTION inject_failure();",
        )
        .execute(&su)
        .await
        .unwrap();
    }

    async fn rewrite_audit(&self, scope: &TenantScope) -> Vec<Option<String>> {
        // Twice: as the application role (refused by its privileges), and as the
        // schema's owner with the tenant's RLS setting (refused by the triggers).
        let region = if scope.region().is_platform() {
            "control".to_owned()
        } else {
            scope.region().as_str().to_owned()
        };
        let owner = self.cluster.target(OWNER, OWNER_PW, &region);
        let owner = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(
                PgConnectOptions::from_str(&owner.url)
                    .unwrap()
                    .password(OWNER_PW),
            )
            .await
            .unwrap();
        let mut refused = Vec::new();
        for sql in [
            "UPDATE audit_entries SET action = 'x'",
            "DELETE FROM audit_entries",
            "TRUNCATE audit_entries",
        ] {
            let mut tx = self.store.write(scope).await.unwrap();
            refused.push(
                sqlx::query(sql)
                    .execute(&mut *tx)
                    .await
                    .err()
                    .map(|e| e.to_string()),
            );
            let mut tx = owner.begin().await.unwrap();
            sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
                .bind(tid(scope))
                .execute(&mut *tx)
                .await
                .unwrap();
            refused.push(
                sqlx::query(sql)
                    .execute(&mut *tx)
                    .await
                    .err()
                    .map(|e| e.to_string()),
            );
        }
        refused
    }

    async fn occupy_home(&self, tenant: &Tenant) {
        let su = self.cluster.superuser(tenant.region.as_str()).await;
        sqlx::query("INSERT INTO tenant_homes (tenant_id, slug, created_at) VALUES ($1, $2, 0)")
            .bind(tenant.id.as_uuid().to_string())
            .bind(tenant.slug.as_str())
            .execute(&su)
            .await
            .unwrap();
    }
}

/// Runs `test` only where PostgreSQL is configured.
macro_rules! pg_conformance {
    ($($test:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $test() {
                if admin_url().is_none() {
                    eprintln!("skipped: SR_TEST_POSTGRES is not set");
                    return;
                }
                conformance::$test::<Postgres>().await;
            }
        )+
    };
}

pg_conformance!(
    tenants_live_in_their_region_only,
    duplicate_slugs_conflict_and_leave_no_trace,
    a_failed_region_write_leaves_no_directory_entry,
    pages_follow_slug_order,
    operator_emails_are_unique_case_insensitively,
    signing_keys_come_newest_first_and_can_be_deleted,
    operators_are_disabled_once_and_their_changes_are_in_the_platform_trail,
    revoked_signing_keys_stay_listed_as_revoked,
    the_platform_trail_is_apart_from_every_tenants,
    a_write_whose_audit_append_fails_leaves_no_trace,
    the_database_refuses_to_update_or_delete_audit_entries,
    entries_are_numbered_without_gaps_and_time_never_goes_back,
    audit_queries_filter_and_page,
    erasing_a_subject_destroys_only_its_keys,
    sealed_writes_are_compare_and_swap,
    data_keys_conflict_on_the_same_version_and_shredding_destroys_them,
    invitations_work_once_for_their_address_and_not_after_expiry,
    users_are_unique_per_tenant_and_disabling_revokes_sessions,
    refresh_tokens_rotate_once_and_reuse_revokes_the_session,
    deleting_a_user_removes_their_sessions_grants_and_factors,
    applications_are_stored_and_toggled,
    a_tenant_scope_cannot_reach_another_tenants_rows,
    support_grants_let_one_operator_in_until_revoked_or_expired,
    record_changes_are_compare_and_swap_and_approval_is_final,
    a_record_write_whose_audit_append_fails_leaves_nothing,
    a_tenant_scope_cannot_reach_another_tenants_records,
);

// The same list as `conformance!`: a test added there and not here fails to compile
// nowhere, so this checks the two lists agree.
#[test]
fn every_conformance_test_runs_on_postgres() {
    let here = include_str!("tests.rs");
    let suite = include_str!("../conformance/mod.rs");
    let list = suite
        .split("$crate::conformance::conformance!($backend:")
        .nth(1)
        .and_then(|s| s.split(");").next())
        .unwrap();
    let mut n = 0;
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        n += 1;
        assert!(
            here.contains(&format!("    {name},\n")),
            "{name} does not run on PostgreSQL"
        );
    }
    assert!(n > 20);
}

/// Runs the body only where PostgreSQL is configured.
macro_rules! needs_postgres {
    () => {
        if admin_url().is_none() {
            eprintln!("skipped: SR_TEST_POSTGRES is not set");
            return;
        }
    };
}

/// Raw SQL as the application role, straight against a region database, in one
/// transaction with `setting` as `app.tenant_id` (or none).
async fn as_app(
    cluster: &Cluster,
    region: &str,
    setting: Option<&str>,
    sql: &str,
) -> Result<Vec<sqlx::postgres::PgRow>, sqlx::Error> {
    let target = cluster.target(APP, APP_PW, region);
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(
            PgConnectOptions::from_str(&target.url)
                .unwrap()
                .password(APP_PW),
        )
        .await
        .unwrap();
    let mut tx = pool.begin().await?;
    if let Some(t) = setting {
        sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
            .bind(t)
            .execute(&mut *tx)
            .await?;
    }
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_all(&mut *tx)
        .await;
    tx.commit().await?;
    rows
}

fn count(rows: &[sqlx::postgres::PgRow]) -> i64 {
    sqlx::Row::get(&rows[0], 0)
}

#[tokio::test]
async fn row_level_security_hides_and_refuses_other_tenants_rows() {
    needs_postgres!();
    let b = Postgres::fresh().await;
    let ta = conformance::tenant("alpha", "eu");
    let a = conformance::create(&b.store, &ta).await;
    let tb = conformance::tenant("bravo", "eu");
    let bravo = conformance::create(&b.store, &tb).await;
    b.store.append_audit(&a, &conformance::ev()).await.unwrap();
    let (ida, idb) = (tid(&a), tid(&bravo));
    let su = b.cluster.superuser("eu").await;
    let all: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_entries")
        .fetch_one(&su)
        .await
        .unwrap();
    assert!(all >= 3, "both tenants' entries exist: {all}");

    // No setting: nothing, on every tenant table.
    for table in ["audit_entries", "tenant_homes", "tenant_keks", "users"] {
        let rows = as_app(
            &b.cluster,
            "eu",
            None,
            &format!("SELECT COUNT(*) FROM {table}"),
        )
        .await
        .unwrap();
        assert_eq!(count(&rows), 0, "{table} without a tenant setting");
    }
    // Bravo's setting: bravo's rows only, never alpha's.
    let q = format!("SELECT COUNT(*) FROM audit_entries WHERE tenant_id = '{ida}'");
    assert_eq!(
        count(&as_app(&b.cluster, "eu", Some(&idb), &q).await.unwrap()),
        0
    );
    let q = format!("SELECT COUNT(*) FROM audit_entries WHERE tenant_id = '{idb}'");
    assert!(count(&as_app(&b.cluster, "eu", Some(&idb), &q).await.unwrap()) > 0);
    // …and cannot write into alpha's.
    let insert = format!(
        "INSERT INTO sealed_values (tenant_id, kind, id, version, dek_version, sealed) \
         VALUES ('{ida}', 'tenant-secret', 'x', 1, 1, '\\x00') RETURNING 1"
    );
    let err = as_app(&b.cluster, "eu", Some(&idb), &insert)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("row-level security"), "{err}");
    // An update of alpha's home under bravo's setting matches no row (checked below
    // as the superuser: alpha's home is as it was).
    let update = format!("UPDATE tenant_homes SET keys_destroyed_at = 1 WHERE tenant_id = '{ida}'");
    as_app(&b.cluster, "eu", Some(&idb), &update).await.unwrap();
    let destroyed: Option<i64> =
        sqlx::query_scalar("SELECT keys_destroyed_at FROM tenant_homes WHERE tenant_id = $1")
            .bind(&ida)
            .fetch_one(&su)
            .await
            .unwrap();
    assert_eq!(destroyed, None, "alpha's home is untouched");
}

#[tokio::test]
async fn the_application_role_cannot_change_audit_entries_owns_nothing_and_bypasses_nothing() {
    needs_postgres!();
    let b = Postgres::fresh().await;
    let a = conformance::create(&b.store, &conformance::tenant("alpha", "eu")).await;
    let id = tid(&a);
    for sql in [
        "UPDATE audit_entries SET action = 'x' RETURNING 1",
        "DELETE FROM audit_entries RETURNING 1",
        "TRUNCATE audit_entries",
        "DROP TABLE audit_entries",
        "ALTER TABLE audit_entries DISABLE ROW LEVEL SECURITY",
        "CREATE TABLE mine (x int)",
        // Column grants: the log's signing key and a tenant's slug never change.
        "UPDATE audit_logs SET public_key = public_key RETURNING 1",
        "UPDATE tenant_homes SET slug = slug RETURNING 1",
    ] {
        let err = as_app(&b.cluster, "eu", Some(&id), sql).await.unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("permission denied") || msg.contains("must be owner"),
            "{sql}: {msg}"
        );
    }
    let rows = as_app(
        &b.cluster,
        "eu",
        None,
        "SELECT (SELECT COUNT(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relowner = r.oid AND n.nspname = 'public'), \
                r.rolbypassrls::int::int8, r.rolsuper::int::int8 \
         FROM pg_roles r WHERE r.rolname = current_user",
    )
    .await
    .unwrap();
    let (owned, bypass, su): (i64, i64, i64) = (
        sqlx::Row::get(&rows[0], 0),
        sqlx::Row::get(&rows[0], 1),
        sqlx::Row::get(&rows[0], 2),
    );
    assert_eq!((owned, bypass, su), (0, 0, 0));
}

#[tokio::test]
async fn every_table_with_a_tenant_column_has_forced_row_level_security() {
    needs_postgres!();
    let cluster = Cluster::new().await;
    for db in ["eu", "control"] {
        let su = cluster.superuser(db).await;
        let rows: Vec<(String, bool, bool)> = sqlx::query_as(
            "SELECT c.relname::text, c.relrowsecurity, c.relforcerowsecurity \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' \
             WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 1",
        )
        .fetch_all(&su)
        .await
        .unwrap();
        assert!(
            rows.len() >= if db == "eu" { 20 } else { 4 },
            "{db}: {rows:?}"
        );
        for (table, enabled, forced) in rows {
            assert!(enabled && forced, "{db}.{table}: RLS {enabled}/{forced}");
        }
    }
}

#[tokio::test]
async fn serve_refuses_a_schema_that_is_behind() {
    needs_postgres!();
    let cluster = Cluster::new().await;
    let su = cluster.superuser("eu").await;
    sqlx::query(
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)",
    )
    .execute(&su)
    .await
    .unwrap();
    let err = PgStore::open(&cluster.settings(APP, APP_PW))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("behind") && err.contains("strongroom db migrate"),
        "{err}"
    );
}

#[tokio::test]
async fn a_wrong_password_names_the_setting_and_never_the_secret() {
    needs_postgres!();
    let cluster = Cluster::new().await;
    let mut settings = cluster.settings(APP, "not-the-password-s3cr3t");
    settings.regions.clear();
    let err = PgStore::open(&settings).await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(text.contains("test.control"), "{text}");
    assert!(text.contains("database.password"), "{text}");
    assert!(!text.contains("s3cr3t"), "{text}");
    // A password inside the URL is refused before any connection.
    settings.control.url = settings
        .control
        .url
        .replace("sr_test_app@", "sr_test_app:hunter2@");
    let err = PgStore::open(&settings).await.unwrap_err().to_string();
    assert!(
        err.contains("holds a password") && !err.contains("hunter2"),
        "{err}"
    );
}

#[tokio::test]
async fn two_nodes_appending_to_one_tenant_number_entries_without_gaps() {
    needs_postgres!();
    let cluster = Cluster::new().await;
    let nodes = [
        Arc::new(cluster.app_store().await),
        Arc::new(cluster.app_store().await),
    ];
    let scope = conformance::create(&*nodes[0], &conformance::tenant("alpha", "eu")).await;
    let before = nodes[0].audit_entries(&scope, 0, 1000).await.unwrap().len();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let node = Arc::clone(&nodes[i % 2]);
        let scope = scope.clone();
        tasks.push(tokio::spawn(async move {
            node.append_audit(&scope, &conformance::ev()).await.unwrap()
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap());
    }
    seqs.sort_unstable();
    let want: Vec<u64> = (before as u64..before as u64 + 40).collect();
    assert_eq!(seqs, want, "each append got its own next number");
    let stored = nodes[1].audit_entries(&scope, 0, 1000).await.unwrap();
    assert_eq!(stored.len(), before + 40);
    for (i, e) in stored.iter().enumerate() {
        assert_eq!(e.seq, i as u64);
    }
}

#[tokio::test]
async fn roles_that_could_step_around_row_level_security_are_refused() {
    needs_postgres!();
    let cluster = Cluster::new().await;
    // A grant to PUBLIC (say, by default privileges) that would let the application
    // role truncate a table, which ignores RLS: `serve` refuses to start.
    let su = cluster.superuser("eu").await;
    sqlx::raw_sql("GRANT TRUNCATE ON tenant_keks TO PUBLIC")
        .execute(&su)
        .await
        .unwrap();
    let err = PgStore::open(&cluster.settings(APP, APP_PW))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("may truncate"), "{err}");
    // `db migrate` takes it away again (it revokes from PUBLIC too), and the server
    // starts.
    migrate(&cluster.settings(OWNER, OWNER_PW), APP)
        .await
        .unwrap();
    PgStore::open(&cluster.settings(APP, APP_PW)).await.unwrap();

    // A role that can create roles could grant itself the owner: migrate refuses to
    // grant it anything, and the server refuses to run as it.
    let wide = format!("sr_wide_{}", &cluster.prefix[3..15]);
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(cluster.admin.clone())
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE ROLE {wide} LOGIN PASSWORD 'wide-pw' CREATEROLE IN ROLE {APP}"
    )))
    .execute(&admin)
    .await
    .unwrap();
    let err = migrate(&cluster.settings(OWNER, OWNER_PW), &wide)
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("create roles"), "{err:?}");
    let err = PgStore::open(&cluster.settings(&wide, "wide-pw"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("CREATEROLE"), "{err}");
    // A member of the owner role is refused as well.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "ALTER ROLE {wide} NOCREATEROLE; GRANT {OWNER} TO {wide}"
    )))
    .execute(&admin)
    .await
    .unwrap();
    let err = PgStore::open(&cluster.settings(&wide, "wide-pw"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("owner of"), "{err}");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "REVOKE {OWNER} FROM {wide}; DROP ROLE {wide}"
    )))
    .execute(&admin)
    .await
    .unwrap();
}

#[test]
fn database_urls_off_this_machine_need_verify_full_and_never_hold_a_password() {
    let settings = |url: &str| PgSettings {
        control: PgDatabase {
            url: url.into(),
            password: None,
            setting: "database.control_url".into(),
        },
        regions: BTreeMap::new(),
        ca_file: None,
        max_connections: 1,
        statement_timeout: Duration::from_secs(1),
        lock_timeout: Duration::from_secs(1),
        acquire_timeout: Duration::from_secs(1),
    };
    for url in [
        "postgres://app@db.example:5432/c",
        "postgres://app@db.example:5432/c?sslmode=require",
        "postgres://app@db.example:5432/c?sslmode=verify-ca",
    ] {
        let s = settings(url);
        let err = s.connect_options(&s.control).unwrap_err().to_string();
        assert!(err.contains("verify-full"), "{url}: {err}");
    }
    for url in [
        "postgres://app@db.example:5432/c?sslmode=verify-full",
        "postgres://app@127.0.0.1:5432/c",
    ] {
        let s = settings(url);
        assert!(s.connect_options(&s.control).is_ok(), "{url}");
    }
    for url in [
        "postgres://app:hunter2@db.example/c?sslmode=verify-full",
        "postgres://app@db.example/c?sslmode=verify-full&password=hunter2",
    ] {
        let s = settings(url);
        let err = s.connect_options(&s.control).unwrap_err().to_string();
        assert!(
            err.contains("holds a password") && !err.contains("hunter2"),
            "{err}"
        );
    }
    assert_eq!(
        redacted("postgres://app:pw@db/c?password=pw&sslmode=verify-full"),
        "postgres://app@db/c"
    );
}
