//! Mapping database errors onto the port's [`StoreError`], keeping the driver's error
//! as the cause (boxed, so no driver type crosses the port). Two drivers: sqlx for
//! PostgreSQL and rusqlite for SQLite (decision 0007); one mapping per driver, one
//! name for callers.

use strongroom_core::store::StoreError;

/// A driver error the adapters map onto [`StoreError`].
pub(crate) trait DriverError: std::error::Error + Send + Sync + Sized + 'static {
    /// The port's error; `unique` names the rule a unique violation breaks.
    fn into_store(self, unique: &'static str) -> StoreError;
}

/// Maps a driver error; `unique` names the rule a unique violation breaks.
pub(crate) fn map(e: impl DriverError, unique: &'static str) -> StoreError {
    e.into_store(unique)
}

/// Maps a driver error where no unique rule applies.
pub(crate) fn db(e: impl DriverError) -> StoreError {
    e.into_store("row")
}

impl DriverError for sqlx::Error {
    fn into_store(self, unique: &'static str) -> StoreError {
        let e = self;
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict { what: unique }
            }
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                unavailable(e)
            }
            sqlx::Error::Database(db) if db.code().is_some_and(|c| transient(&c)) => unavailable(e),
            sqlx::Error::Tls(_) | sqlx::Error::WorkerCrashed | sqlx::Error::Protocol(_) => {
                unavailable(e)
            }
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
                StoreError::Corrupt(e.to_string())
            }
            _ => backend(e),
        }
    }
}

impl DriverError for rusqlite::Error {
    fn into_store(self, unique: &'static str) -> StoreError {
        use rusqlite::ffi;
        let e = self;
        match &e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE
                    || f.extended_code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
            {
                StoreError::Conflict { what: unique }
            }
            // Another process holds the lock past the busy timeout, the disk is full
            // or failing, the file cannot be opened, is damaged or was replaced, or a
            // read ran past its deadline: not the client's doing; a 503.
            rusqlite::Error::SqliteFailure(f, _)
                if matches!(
                    f.code,
                    ffi::ErrorCode::DatabaseBusy
                        | ffi::ErrorCode::DatabaseLocked
                        | ffi::ErrorCode::SystemIoFailure
                        | ffi::ErrorCode::DiskFull
                        | ffi::ErrorCode::CannotOpen
                        | ffi::ErrorCode::OutOfMemory
                        | ffi::ErrorCode::DatabaseCorrupt
                        | ffi::ErrorCode::NotADatabase
                        | ffi::ErrorCode::ReadOnly
                        | ffi::ErrorCode::FileLockingProtocolFailed
                        | ffi::ErrorCode::OperationInterrupted
                ) =>
            {
                unavailable(e)
            }
            rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::IntegralValueOutOfRange(..)
            | rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::Utf8Error(..) => StoreError::Corrupt(e.to_string()),
            _ => backend(e),
        }
    }
}

/// PostgreSQL SQLSTATEs that say "try again" rather than "this statement is wrong":
/// the connection was lost or the server is going away (08, 57P01-57P03), it is out
/// of resources (53), a lock or statement timeout fired (55P03, 57014), or the
/// transaction lost a serialisation race or a deadlock (40001, 40P01). Each becomes a
/// 503 at the edge, never a 500.
fn transient(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "55P03" | "57014" | "40001" | "40P01"
        )
}

fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Unavailable {
        context: "database busy or unreachable".into(),
        source: Some(Box::new(e)),
    }
}

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Backend {
        context: "database statement failed".into(),
        source: Some(Box::new(e)),
    }
}
