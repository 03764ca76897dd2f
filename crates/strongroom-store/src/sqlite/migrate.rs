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
        known.push((version, description, m.checksum(), m));
    }
    let check = |rows: &[(i64, bool, Vec<u8>)]| -> Result<(), MigrateError> {
        for (version, success, checksum) in rows {
            if !success {
                return Err(MigrateError::Dirty(*version));
            }
            match known.iter().find(|(v, ..)| v == version) {
                None => return Err(MigrateError::Unknown(*version)),
                Some((_, _, sum, _)) if sum != checksum => {
                    return Err(MigrateError::Changed(*version));
                }
                Some(_) => {}
            }
        }
        Ok(())
    };
    let first = applied(conn)?;
    check(&first)?;
    for (version, description, checksum, m) in &known {
        if first.iter().any(|(v, ..)| v == version) {
            continue;
        }
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let done = (|| -> Result<(), MigrateError> {
            // Another process may have applied it since the first look.
            let now = applied(conn)?;
            check(&now)?;
            if now.iter().any(|(v, ..)| v == version) {
                return Ok(());
            }
            let started = std::time::Instant::now();
            conn.execute_batch(m.sql)?;
            let took = i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX);
            conn.execute(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (?1, ?2, TRUE, ?3, ?4)",
                rusqlite::params![version, description, checksum, took],
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

    /// The SHA-384 of every file as sqlx's runner recorded it (sqlx-core 0.9 hashes the
    /// file's text as it is): a data directory migrated by an earlier build must match,
    /// and a file already applied somewhere must never change.
    #[test]
    #[allow(clippy::too_many_lines)] // the pinned list
    fn checksums_are_the_ones_sqlx_recorded() {
        let pinned = [
            (
                "control/0001_control.sql",
                "a0349ddcddc4f3f64ee97433ca9e4c2bf9c323c7e695dc9665f4a73f72bc3bf9e80581a145582a2a391c410f0860304e",
            ),
            (
                "control/0002_platform_audit.sql",
                "813b4c4c132a8c962c0fe19a343a16e78f0bea37fa822761c02319e146d0a52344db708c3191e232f8c0d16db1f3320c",
            ),
            (
                "control/0003_operator_status.sql",
                "ef921bef93c63e7115bd20e8a0e79ff9bd6ed2303d2a2d534135e38b0e264f32edcb2dfd804b4452a4948486e8f7f61d",
            ),
            (
                "region/0001_region.sql",
                "63cc2d5b418500054b0b4e284d7444ff0d7ff51a0086791a1fdbf87e183d18bc8c877fd746ae54df2fceeb03d454dd59",
            ),
            (
                "region/0002_keys.sql",
                "911f55d682ead032f299c6f1d7e73e0f64d4d9e9374318bbd8c50c7afe55c84c57b41cbc038fdea4d057612dc61acfbe",
            ),
            (
                "region/0003_audit.sql",
                "eb11d2092c54f292506d7bfeda986b421088bfca94d4c3713786b968c6aad1056dba811a1aa33193b0b284d4c99a87e2",
            ),
            (
                "region/0004_audit_tree.sql",
                "8e75172aecb7c3b447604594787175e984ff5b7f8149f5a35ce79e9a7fa287c576182405336534a2cea2eda4bb7cc76f",
            ),
            (
                "region/0005_audit_query.sql",
                "43c809d825046ea4de1e88a9ac6ba16a0673304cfebde30b6e6a617625c550989aff6c8c554abfa899161897d853a484",
            ),
            (
                "region/0006_users.sql",
                "01cda52eb66d279dd3a9e357a6510e39af8ab052a975557575cd57f86e83e5e5d77716c160a7f8e4cf47c0e85bcdd50f",
            ),
            (
                "region/0007_applications.sql",
                "48903d503f0827fb44b8bcf8ea26bf9033d40b938cbad3954ab3a85b6aea5253f472e027bdd99755fb500d56d4bfecf9",
            ),
            (
                "region/0008_restricted_sessions.sql",
                "8c60ff5f711b2b26d11f35396b40d4311ef34ea4e35ba966c46c38c3c582cb4b4944b354d5220d8873bbe65807c48609",
            ),
            (
                "region/0009_invitations.sql",
                "547a7be157a57b802dd7754a34bcc2dc25d1945f6c26840612da86757d381b17ec6326bd993158ca318b775a117e199c",
            ),
            (
                "region/0010_full_tiles_are_final.sql",
                "6b921a04d9b60248409bc4d5e4ee133a57a671d52fcaa9994e41c9d070f2d3d9ad67bf4b95ecc651ac06df57592ab641",
            ),
            (
                "region/0011_second_factor_sessions.sql",
                "010858919f019a120a46c91a2c02e47f85d2352af631f056c671ee1900aa9c44e2147565ab93b70a7a39e66923798f55",
            ),
            (
                "region/0012_support_grants.sql",
                "43a0f7b4ae67dc3d309aec291fa9f2cc8dc0e4b82be1e79505626ea31d3555952c3e84ff5f1f4dffbd5d67b370818a35",
            ),
            (
                "region/0013_records.sql",
                "1bf294905d51589cc804308ed06368179b0ecd228a28176b1d951db70a12e01176e28b9a6c7d284e1792d0adf1b6373c",
            ),
            (
                "region/0014_work_pending.sql",
                "1c8420786fbfdf2193746f9892a102240f3002203ab7a2806eac17a10a4f0f72472ca36616ef5bdcc2bf7fb82b1402e4",
            ),
        ];
        let ours: Vec<(String, String)> = [("control", CONTROL), ("region", REGION)]
            .iter()
            .flat_map(|(dir, set)| {
                set.iter().map(move |m| {
                    let hex: String = m.checksum().iter().map(|b| format!("{b:02x}")).collect();
                    (format!("{dir}/{}", m.file), hex)
                })
            })
            .collect();
        let pinned: Vec<(String, String)> = pinned
            .iter()
            .map(|(f, h)| ((*f).to_owned(), (*h).to_owned()))
            .collect();
        assert_eq!(
            ours, pinned,
            "an applied migration changed, or a new one is not pinned here"
        );
    }

    #[test]
    fn an_older_schema_gets_only_the_missing_migrations() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("m.db")).unwrap();
        run(&conn, &REGION[..REGION.len() - 1]).unwrap();
        let installed = |c: &Connection| -> Vec<i64> {
            let mut st = c
                .prepare("SELECT version FROM _sqlx_migrations ORDER BY version")
                .unwrap();
            st.query_map([], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        let before = installed(&conn);
        run(&conn, REGION).unwrap();
        let after = installed(&conn);
        assert_eq!(after.len(), before.len() + 1);
        assert_eq!(after[..before.len()], before[..]);
    }

    #[test]
    fn a_failing_migration_leaves_neither_its_tables_nor_its_row() {
        static BROKEN: &[Migration] = &[Migration {
            file: "0001_broken.sql",
            sql: "CREATE TABLE half (id INTEGER); INSERT INTO nowhere VALUES (1);",
        }];
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("m.db")).unwrap();
        assert!(matches!(run(&conn, BROKEN), Err(MigrateError::Sql(_))));
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'half'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM _sqlx_migrations", [], |r| r.get(0))
            .unwrap();
        assert_eq!((tables, rows), (0, 0));
    }
}
