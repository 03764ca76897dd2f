//! Applying the SQLite schema migrations (`migrations/sqlite/{control,region}/`).
//!
//! The files are the ones sqlx's runner applied before the adapter moved to rusqlite
//! (decision 0007), and so is the bookkeeping: the `_sqlx_migrations` table, one row
//! per applied file with its version, description and the SHA-384 of its SQL. A data
//! directory written by an earlier build upgrades in place, and a file changed after it
//! was applied is refused instead of silently diverging.
//!
//! Each migration runs in its own `BEGIN IMMEDIATE` transaction together with its
//! bookkeeping row, and the list of applied versions is re-read inside it, so two
//! processes starting at once (the server and the CLI) apply each file once.

use rusqlite::Connection;

/// One migration file, embedded at build time.
#[derive(Debug)]
pub(crate) struct Migration {
    /// The file's name, `NNNN_description.sql`.
    pub(crate) file: &'static str,
    /// Its SQL.
    pub(crate) sql: &'static str,
}

macro_rules! migration {
    ($dir:literal, $file:literal) => {
        Migration {
            file: $file,
            sql: include_str!(concat!("../../migrations/sqlite/", $dir, "/", $file)),
        }
    };
}

/// The control database's migrations, in order.
pub(crate) static CONTROL: &[Migration] = &[
    migration!("control", "0001_control.sql"),
    migration!("control", "0002_platform_audit.sql"),
    migration!("control", "0003_operator_status.sql"),
];

/// A region database's migrations, in order.
pub(crate) static REGION: &[Migration] = &[
    migration!("region", "0001_region.sql"),
    migration!("region", "0002_keys.sql"),
    migration!("region", "0003_audit.sql"),
    migration!("region", "0004_audit_tree.sql"),
    migration!("region", "0005_audit_query.sql"),
    migration!("region", "0006_users.sql"),
    migration!("region", "0007_applications.sql"),
    migration!("region", "0008_restricted_sessions.sql"),
    migration!("region", "0009_invitations.sql"),
    migration!("region", "0010_full_tiles_are_final.sql"),
    migration!("region", "0011_second_factor_sessions.sql"),
    migration!("region", "0012_support_grants.sql"),
    migration!("region", "0013_records.sql"),
    migration!("region", "0014_work_pending.sql"),
];

/// Why the schema could not be brought up to date.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MigrateError {
    /// A statement failed.
    #[error("migration statement failed: {0}")]
    Sql(#[from] rusqlite::Error),
    /// A file name does not follow `NNNN_description.sql`.
    #[error("migration file {0} is not named NNNN_description.sql")]
    Name(&'static str),
    /// An applied migration's SQL differs from this build's file.
    #[error("migration {0} was applied with different SQL than this build carries")]
    Changed(i64),
    /// The database has a migration this build does not know (a newer build ran).
    #[error(
        "the database has migration {0}, which this build does not know (written by a newer version?)"
    )]
    Unknown(i64),
    /// A migration was recorded as failed half-way.
    #[error("migration {0} is recorded as failed; restore a backup or repair it by hand")]
    Dirty(i64),
}

impl Migration {
    fn version(&self) -> Result<(i64, String), MigrateError> {
        let stem = self
            .file
            .strip_suffix(".sql")
            .ok_or(MigrateError::Name(self.file))?;
        let (number, description) = stem.split_once('_').ok_or(MigrateError::Name(self.file))?;
        let version = number.parse().map_err(|_| MigrateError::Name(self.file))?;
        Ok((version, description.replace('_', " ")))
    }

    fn checksum(&self) -> Vec<u8> {
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA384, self.sql.as_bytes())
            .as_ref()
            .to_vec()
    }
}

const BOOKKEEPING: &str = "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    success BOOLEAN NOT NULL,
    checksum BLOB NOT NULL,
    execution_time BIGINT NOT NULL
)";

fn applied(conn: &Connection) -> Result<Vec<(i64, bool, Vec<u8>)>, MigrateError> {
    let mut st =
        conn.prepare("SELECT version, success, checksum FROM _sqlx_migrations ORDER BY version")?;
    let rows = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Applies every migration of `set` the database does not have yet.
pub(crate) fn run(conn: &Connection, set: &[Migration]) -> Result<(), MigrateError> {
    conn.execute_batch(BOOKKEEPING)?;
    let mut known = Vec::with_capacity(set.len());
    for m in set {
        let (version, description) = m.version()?;
        known.push((version, description, m));
    }
    let check = |rows: &[(i64, bool, Vec<u8>)]| -> Result<(), MigrateError> {
        for (version, success, checksum) in rows {
            if !success {
                return Err(MigrateError::Dirty(*version));
            }
            match known.iter().find(|(v, _, _)| v == version) {
                None => return Err(MigrateError::Unknown(*version)),
                Some((_, _, m)) if m.checksum() != *checksum => {
                    return Err(MigrateError::Changed(*version));
                }
                Some(_) => {}
            }
        }
        Ok(())
    };
    check(&applied(conn)?)?;
    for (version, description, m) in &known {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let done = (|| -> Result<(), MigrateError> {
            // Another process may have applied it since the first look.
            let now = applied(conn)?;
            check(&now)?;
            if now.iter().any(|(v, _, _)| v == version) {
                return Ok(());
            }
            let started = std::time::Instant::now();
            conn.execute_batch(m.sql)?;
            let took = i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX);
            conn.execute(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (?1, ?2, TRUE, ?3, ?4)",
                rusqlite::params![version, description, m.checksum(), took],
            )?;
            Ok(())
        })();
        match done {
            Ok(()) => conn.execute_batch("COMMIT")?,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &str) -> Vec<String> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations/sqlite")
            .join(dir);
        let mut names: Vec<String> = std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn every_migration_file_is_embedded_in_order() {
        for (dir, set) in [("control", CONTROL), ("region", REGION)] {
            let embedded: Vec<String> = set.iter().map(|m| m.file.to_owned()).collect();
            assert_eq!(
                embedded,
                files(dir),
                "{dir}: add the new file to migrate.rs"
            );
            let versions: Vec<i64> = set.iter().map(|m| m.version().unwrap().0).collect();
            let expected: Vec<i64> = (1..=i64::try_from(set.len()).unwrap()).collect();
            assert_eq!(versions, expected, "{dir}: versions are 1..n without gaps");
        }
    }

    #[test]
    fn migrating_twice_applies_nothing_and_a_changed_or_unknown_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("m.db")).unwrap();
        run(&conn, REGION).unwrap();
        let count = |c: &Connection| -> i64 {
            c.query_row("SELECT count(*) FROM _sqlx_migrations", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(count(&conn), i64::try_from(REGION.len()).unwrap());
        run(&conn, REGION).unwrap();
        assert_eq!(count(&conn), i64::try_from(REGION.len()).unwrap());
        // The description sqlx wrote for these files, and the checksum of the file.
        let (description, checksum): (String, Vec<u8>) = conn
            .query_row(
                "SELECT description, checksum FROM _sqlx_migrations WHERE version = 14",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(description, "work pending");
        assert_eq!(checksum.len(), 48);
        conn.execute(
            "UPDATE _sqlx_migrations SET checksum = x'00' WHERE version = 3",
            [],
        )
        .unwrap();
        assert!(matches!(run(&conn, REGION), Err(MigrateError::Changed(3))));
        conn.execute(
            "UPDATE _sqlx_migrations SET checksum = ?1 WHERE version = 3",
            [REGION[2].checksum()],
        )
        .unwrap();
        run(&conn, REGION).unwrap();
        assert!(matches!(
            run(&conn, &REGION[..5]),
            Err(MigrateError::Unknown(6))
        ));
        conn.execute(
            "UPDATE _sqlx_migrations SET success = FALSE WHERE version = 2",
            [],
        )
        .unwrap();
        assert!(matches!(run(&conn, REGION), Err(MigrateError::Dirty(2))));
    }
}
