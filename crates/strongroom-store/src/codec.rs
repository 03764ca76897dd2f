//! Column codecs: counts and versions as the signed 64-bit integers both databases
//! store, and tenant ids as text. `tid`, `int`, `as_u32` and `as_u64` are shared by
//! both adapters; `u32_col`/`u64_col` here decode sqlx rows (PostgreSQL), and
//! `sqlite::{u32_col, u64_col}` decode the SQLite adapter's rows with the same rule.

use sqlx::{ColumnIndex, Decode, Row, Type};
use strongroom_core::access::Scoped;
use strongroom_core::store::StoreError;

use crate::error::db;

/// The tenant id a scope binds into every region query.
pub(crate) fn tid(scope: &(impl Scoped + ?Sized)) -> String {
    scope.tenant().as_uuid().to_string()
}

/// A count or version as a signed 64-bit integer.
pub(crate) fn int(n: u64) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::backend(format!("{n} exceeds the storable range")))
}

fn i64_col<R>(r: &R, col: &str) -> Result<i64, StoreError>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    r.try_get(col).map_err(db)
}

/// A non-negative integer column as `u32`; anything else is corruption.
pub(crate) fn u32_col<R>(r: &R, col: &str) -> Result<u32, StoreError>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    as_u32(i64_col(r, col)?, col)
}

/// A non-negative integer column as `u64`; anything else is corruption.
pub(crate) fn u64_col<R>(r: &R, col: &str) -> Result<u64, StoreError>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    as_u64(i64_col(r, col)?, col)
}

/// A stored integer as `u32`; a negative or too large one is corruption (one rule for
/// both adapters' row types).
pub(crate) fn as_u32(v: i64, col: &str) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("{col} = {v}")))
}

/// A stored integer as `u64`; a negative one is corruption.
pub(crate) fn as_u64(v: i64, col: &str) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("{col} = {v}")))
}
