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
        sqlx::Error::Database(db) if db.code().is_some_and(|c| transient(&c)) => unavailable(e),
        sqlx::Error::Tls(_) | sqlx::Error::WorkerCrashed | sqlx::Error::Protocol(_) => {
            unavailable(e)
        }
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
            StoreError::Corrupt(e.to_string())
        }
        _ => StoreError::Backend {
            context: "database statement failed".into(),
            source: Some(Box::new(e)),
        },
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
