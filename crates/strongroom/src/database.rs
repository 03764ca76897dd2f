//! PostgreSQL settings from the configuration, and `strongroom db migrate`.
//!
//! The server connects as the application role named in the URLs (it owns nothing and
//! is subject to row-level security); migrations connect as `database.owner`. Each
//! role's password comes from the configuration, a file, or the environment, and is
//! never printed: errors name the setting to fix instead.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use strongroom_core::config::{Config, DatabaseBackend};
use strongroom_core::secret::{SecretString, read_first_line};
use strongroom_store::postgres::{self, PgDatabase, PgSettings};

/// Which role to connect as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// The application role of the URLs: what `serve` and the CLI use.
    App,
    /// `database.owner`: schema changes only.
    Owner,
}

fn secret(
    value: Option<&SecretString>,
    file: Option<&Path>,
    setting: &str,
) -> anyhow::Result<Option<SecretString>> {
    match (value, file) {
        (Some(v), _) => Ok(Some(v.clone())),
        (None, Some(f)) => read_first_line(f)
            .map(Some)
            .with_context(|| format!("{setting}_file: cannot read {}", f.display())),
        (None, None) => Ok(None),
    }
}

/// The PostgreSQL settings of `config`, for `role`.
pub(crate) fn settings(config: &Config, role: Role) -> anyhow::Result<PgSettings> {
    let d = &config.database;
    if d.backend != DatabaseBackend::Postgres {
        bail!("database.backend is not \"postgres\"");
    }
    let app_password = secret(
        d.password.as_ref(),
        d.password_file.as_deref(),
        "database.password",
    )?;
    let target = |url: &str, setting: String| -> anyhow::Result<PgDatabase> {
        let app = PgDatabase {
            url: url.to_owned(),
            password: app_password.clone(),
            setting,
        };
        Ok(match role {
            Role::App => app,
            Role::Owner => app.as_user(
                &d.owner,
                secret(
                    d.owner_password.as_ref(),
                    d.owner_password_file.as_deref(),
                    "database.owner_password",
                )?,
            ),
        })
    };
    let control = d
        .control_url
        .as_deref()
        .context("database.control_url is not set")?;
    let mut regions = std::collections::BTreeMap::new();
    for (name, r) in &config.regions {
        let url = r
            .database_url
            .as_deref()
            .with_context(|| format!("regions.{name}.database_url is not set"))?;
        regions.insert(
            name.clone(),
            target(url, format!("regions.{name}.database_url"))?,
        );
    }
    Ok(PgSettings {
        control: target(control, "database.control_url".into())?,
        regions,
        ca_file: d.ca_file.clone(),
        max_connections: d.max_connections,
        statement_timeout: Duration::from_millis(d.statement_timeout_ms),
        lock_timeout: Duration::from_millis(d.lock_timeout_ms),
        acquire_timeout: Duration::from_millis(d.acquire_timeout_ms),
    })
}

/// `strongroom db migrate`: brings every database to this binary's schema as the
/// owner role and grants the application role (the user of `database.control_url`)
/// what the server needs. On SQLite, opening the data directory migrates; there is
/// nothing to do here.
pub(crate) async fn migrate(config: &Config) -> anyhow::Result<String> {
    if config.database.backend == DatabaseBackend::Sqlite {
        return Ok("SQLite databases are migrated when the data directory is opened".into());
    }
    let owner = settings(config, Role::Owner)?;
    let app = settings(config, Role::App)?
        .control
        .user()
        .context("database.control_url names no role (postgres://ROLE@host/db)")?;
    if app == config.database.owner {
        bail!(
            "database.control_url connects as the owner role {app:?}: the server must \
             connect as a role that owns nothing (row-level security binds only then)"
        );
    }
    postgres::migrate(&owner, &app).await?;
    Ok(format!(
        "migrated the control database and {} region database(s); granted {app}",
        owner.regions.len()
    ))
}
