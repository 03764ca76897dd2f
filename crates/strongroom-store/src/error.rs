//! Mapping database errors onto the port's [`StoreError`].

use strongroom_core::store::StoreError;

/// Maps a driver error; `unique` names the rule a unique violation breaks.
pub(crate) fn map(e: sqlx::Error, unique: &'static str) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict { what: unique }
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StoreError::Unavailable(e.to_string())
        }
        sqlx::Error::Database(db) if db.message().contains("database is locked") => {
            StoreError::Unavailable(e.to_string())
        }
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
            StoreError::Corrupt(e.to_string())
        }
        _ => StoreError::Backend(e.to_string()),
    }
}

/// Maps a driver error where no unique rule applies.
pub(crate) fn db(e: sqlx::Error) -> StoreError {
    map(e, "row")
}
