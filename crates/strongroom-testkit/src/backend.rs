//! The storage a test server runs on: SQLite in its data directory (the default), or,
//! with `SR_TEST_BACKEND=postgres`, fresh PostgreSQL databases and a fresh prefix in
//! an S3 bucket, so the same integration tests run against the scale-out backends.
//!
//! The PostgreSQL cluster and the S3 server are started by `.ci/run`, which sets:
//! `SR_TEST_POSTGRES` (a superuser URL), and `SR_TEST_S3_ENDPOINT`,
//! `SR_TEST_S3_KEY_ID`, `SR_TEST_S3_SECRET`, `SR_TEST_S3_BUCKET` (optional: without
//! them, blobs stay in the data directory).

use std::path::Path;
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// The schema owner role tests migrate with.
pub const PG_OWNER: &str = "sr_it_owner";
/// The application role test servers connect as.
pub const PG_APP: &str = "sr_it_app";
/// Their passwords (test clusters only).
pub const PG_OWNER_PASSWORD: &str = "it-owner-password";
/// The application role's password.
pub const PG_APP_PASSWORD: &str = "it-app-password";

#[allow(clippy::disallowed_methods)] // test configuration comes from the environment
fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Whether test servers run on PostgreSQL (and S3, when configured).
pub fn postgres_selected() -> bool {
    var("SR_TEST_BACKEND").as_deref() == Some("postgres")
}

/// The superuser URL of the test cluster.
pub fn postgres_admin_url() -> Option<String> {
    var("SR_TEST_POSTGRES")
}

/// The environment of a test server: the backend's settings (none for SQLite), then
/// the test's own, which win.
pub(crate) async fn env(
    bin: &Path,
    root: &Path,
    options: &crate::Options,
) -> Vec<(String, String)> {
    let mut env = Vec::new();
    if options.postgres || postgres_selected() {
        env = postgres_env(bin, root, options.config.as_deref()).await;
    }
    env.extend(options.env.iter().cloned());
    env
}

/// The regions a config file declares (`local` when it declares none).
fn regions_of(config: Option<&str>) -> Vec<String> {
    let declared: Vec<String> = config
        .and_then(|c| toml::from_str::<toml::Table>(c).ok())
        .and_then(|t| t.get("regions").and_then(|r| r.as_table()).cloned())
        .map(|r| r.keys().cloned().collect())
        .unwrap_or_default();
    if declared.is_empty() {
        vec!["local".into()]
    } else {
        declared
    }
}

/// Creates (once per data directory; a restart reuses them) the databases for a
/// server whose config is `config`, migrates them with `strongroom db migrate`, and
/// returns the environment that points the server at them and at its S3 prefix.
pub async fn postgres_env(bin: &Path, root: &Path, config: Option<&str>) -> Vec<(String, String)> {
    let admin_url = postgres_admin_url().expect("SR_TEST_BACKEND=postgres needs SR_TEST_POSTGRES");
    let admin = PgConnectOptions::from_str(&admin_url).expect("SR_TEST_POSTGRES");
    let marker = root.join("pg-prefix");
    let regions = regions_of(config);
    let (prefix, fresh) = match std::fs::read_to_string(&marker) {
        Ok(p) => (p.trim().to_owned(), false),
        Err(_) => {
            let p = format!("it_{}", uuid::Uuid::new_v4().simple());
            std::fs::write(&marker, &p).expect("write pg-prefix");
            (p, true)
        }
    };
    let url = |db: &str| {
        format!(
            "postgres://{PG_APP}@{}:{}/{prefix}_{db}",
            admin.get_host(),
            admin.get_port()
        )
    };
    let mut env = vec![
        ("STRONGROOM_DATABASE__BACKEND".into(), "postgres".into()),
        ("STRONGROOM_DATABASE__CONTROL_URL".into(), url("control")),
        (
            "STRONGROOM_DATABASE__PASSWORD".into(),
            PG_APP_PASSWORD.into(),
        ),
        ("STRONGROOM_DATABASE__OWNER".into(), PG_OWNER.into()),
        // Tests start many servers on one cluster at once: a small pool each.
        ("STRONGROOM_DATABASE__MAX_CONNECTIONS".into(), "4".into()),
        (
            "STRONGROOM_DATABASE__OWNER_PASSWORD".into(),
            PG_OWNER_PASSWORD.into(),
        ),
    ];
    for r in &regions {
        let key = r.to_uppercase().replace('-', "_");
        env.push((format!("STRONGROOM_REGIONS__{key}__DATABASE_URL"), url(r)));
        if let Some(s3) = s3_env(&key, &prefix, r) {
            env.extend(s3);
        }
    }
    if fresh {
        create_databases(&admin, &prefix, &regions).await;
        let out = crate::run_cli(
            bin,
            &root.join("data"),
            None,
            &env,
            &["db", "migrate"],
            None,
        )
        .await;
        assert!(
            out.status.success(),
            "db migrate failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    env
}

fn s3_env(key: &str, prefix: &str, region: &str) -> Option<Vec<(String, String)>> {
    let endpoint = var("SR_TEST_S3_ENDPOINT")?;
    let s = |k: &str| format!("STRONGROOM_REGIONS__{key}__S3__{k}");
    Some(vec![
        (s("ENDPOINT"), endpoint),
        (s("BUCKET"), var("SR_TEST_S3_BUCKET")?),
        (s("ACCESS_KEY_ID"), var("SR_TEST_S3_KEY_ID")?),
        (s("SECRET_ACCESS_KEY"), var("SR_TEST_S3_SECRET")?),
        (s("PATH_STYLE"), "true".into()),
        (s("ALLOW_HTTP"), "true".into()),
        (s("PREFIX"), format!("{prefix}/{region}/")),
    ])
}

async fn create_databases(admin: &PgConnectOptions, prefix: &str, regions: &[String]) {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(admin.clone())
        .await
        .expect("connect to SR_TEST_POSTGRES");
    for (role, pw) in [(PG_OWNER, PG_OWNER_PASSWORD), (PG_APP, PG_APP_PASSWORD)] {
        // Tests start servers in parallel: a role created twice must fail neither.
        let sql = format!(
            "DO $$ BEGIN CREATE ROLE {role} LOGIN PASSWORD '{pw}'; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&pool)
            .await
            .expect("create test roles");
    }
    for db in std::iter::once("control").chain(regions.iter().map(String::as_str)) {
        let sql = format!(
            "CREATE DATABASE {prefix}_{} OWNER {PG_OWNER}",
            db.replace('-', "_")
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&pool)
            .await
            .expect("create test database");
    }
    pool.close().await;
}

/// A psql connection URI for one of a test server's databases, as the superuser.
fn superuser_uri(root: &Path, db: &str) -> String {
    let admin = postgres_admin_url().expect("SR_TEST_POSTGRES");
    let prefix = std::fs::read_to_string(root.join("pg-prefix")).expect("a PostgreSQL test server");
    let (base, _) = admin.rsplit_once('/').expect("a URL with a database");
    format!("{base}/{}_{}", prefix.trim(), db.replace('-', "_"))
}

/// Rows of `sql` run as the superuser (RLS bypassed) on a test server's region
/// database, each column as text, byte strings as lower-case hex (as the SQLite
/// helpers print them). `root` is the server's temporary directory (the data
/// directory's parent).
pub fn region_rows(root: &Path, region: &str, sql: &str) -> Vec<Vec<String>> {
    let out = std::process::Command::new("psql")
        .args(["-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1"])
        .arg(superuser_uri(root, region))
        .arg("-c")
        .arg(sql)
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            l.split('\t')
                .map(|v| v.strip_prefix("\\x").unwrap_or(v).to_owned())
                .collect()
        })
        .collect()
}

/// Every row of a test server's region database as `pg_dump` writes it: what someone
/// who copied the database would hold.
pub fn dump_region(root: &Path, region: &str) -> Vec<u8> {
    let out = std::process::Command::new("pg_dump")
        .args(["--data-only", "--no-owner"])
        .arg(superuser_uri(root, region))
        .output()
        .expect("pg_dump");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Whether test servers keep their streams in the S3 test bucket.
pub fn s3_configured() -> bool {
    var("SR_TEST_S3_ENDPOINT").is_some()
}

/// The name of a test server's database for `region` (or `control`).
pub fn database_name(root: &Path, region: &str) -> String {
    let prefix = std::fs::read_to_string(root.join("pg-prefix")).expect("a PostgreSQL test server");
    format!("{}_{}", prefix.trim(), region.replace('-', "_"))
}

/// Every object under a test server's prefix in the S3 test bucket, downloaded with
/// a stock client (boto3); `None` when the suite runs without S3.
pub fn bucket_objects(root: &Path) -> Option<Vec<Vec<u8>>> {
    if !s3_configured() {
        return None;
    }
    let prefix = std::fs::read_to_string(root.join("pg-prefix")).expect("a PostgreSQL test server");
    let script = "import boto3, os, sys\n\
        c = boto3.client('s3', endpoint_url=os.environ['SR_TEST_S3_ENDPOINT'], region_name='us-east-1', aws_access_key_id=os.environ['SR_TEST_S3_KEY_ID'], aws_secret_access_key=os.environ['SR_TEST_S3_SECRET'])\n\
        b = os.environ['SR_TEST_S3_BUCKET']\n\
        for page in c.get_paginator('list_objects_v2').paginate(Bucket=b, Prefix=sys.argv[1]):\n\
        \x20   for o in page.get('Contents', []):\n\
        \x20       sys.stdout.write(c.get_object(Bucket=b, Key=o['Key'])['Body'].read().hex() + '\\n')\n";
    let out = std::process::Command::new("python3")
        // No trailing '/': moto miscomputes the signature of a prefix that ends in one.
        .args(["-c", script, prefix.trim()])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|hex| {
                (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
                    .collect()
            })
            .collect(),
    )
}
