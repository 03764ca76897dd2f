//! Times are stored as integer microseconds since the Unix epoch (UTC): exact,
//! sortable, and the same in SQLite and PostgreSQL.

use strongroom_core::store::StoreError;
use time::OffsetDateTime;

/// Encodes a time for storage.
pub(crate) fn to_micros(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

/// Decodes a stored time.
pub(crate) fn from_micros(us: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1_000)
        .map_err(|_| StoreError::Corrupt(format!("timestamp {us} out of range")))
}
