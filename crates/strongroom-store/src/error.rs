//! Mapping database errors onto the port's [`StoreError`], keeping the driver's error
//! as the cause (boxed, so no driver type crosses the port).

use strongroom_core::store::StoreError;

/// Maps a driver error; `unique` names the rule a unique violation breaks.
pub(crate) fn map(e: sqlx::Error, unique: &'static str) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict { what: unique }
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => unavailable(e),
        sqlx::Error::Database(db) if db.message().contains("database is locked") => unavailable(e),
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
            StoreError::Corrupt(e.to_string())
        }
        _ => StoreError::Backend {
            context: "database statement failed".into(),
            source: Some(Box::new(e)),
        },
    }
}

fn unavailable(e: sqlx::Error) -> StoreError {
    StoreError::Unavailable {
        context: "database busy or unreachable".into(),
        source: Some(Box::new(e)),
    }
}

/// Maps a driver error where no unique rule applies.
pub(crate) fn db(e: sqlx::Error) -> StoreError {
    map(e, "row")
}
