//! The SQLite adapter's statements, rows and connections, on rusqlite.
//!
//! Statements are written as with sqlx (`query(sql).bind(v).execute(conn)`), but run
//! synchronously on the calling thread against a `rusqlite::Connection`: a write runs
//! on its database's writer thread (see [`commit`](super::commit)), a read on a
//! pooled read-only connection. Every statement goes through the connection's
//! prepared-statement cache, so the SQL of the hot path is parsed once per
//! connection. Values are always bound, never spliced into SQL: [`query`] takes only
//! `&'static str`, and SQL assembled at run time ([`dynamic`], [`Builder`]) is built
//! from constants by its callers.
//!
//! Decision 0007 (`docs/decisions/0007-sqlite-driver.md`) says why: sqlx's SQLite
//! driver sends every statement across a channel to a thread of its own, which costs
//! a context switch each way per statement.

use std::borrow::Cow;
use std::marker::PhantomData;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::types::{FromSql, ToSqlOutput, Value, ValueRef};
use rusqlite::{Connection, OpenFlags, ToSql};
use strongroom_core::store::StoreError;

/// Prepared statements kept per connection: every statement the adapter has (about
/// 170), with room for the lists whose SQL varies with their filters (a bounded set
/// of shapes: no statement's SQL depends on how many values a request carries).
const STATEMENT_CACHE: usize = 256;

/// The longest one read may run. Reads run on the calling task's thread, so a read
/// the indexes cannot narrow would otherwise hold a runtime worker (and every request
/// queued on it); past this it is interrupted and answered 503.
const READ_LIMIT: Duration = Duration::from_secs(2);

/// SQLite virtual-machine steps between checks of the read deadline.
const READ_CHECK_EVERY: i32 = 10_000;

/// One row, read out of SQLite (values are copied, so the row outlives its
/// statement). Columns are found by name or by position.
#[derive(Debug, Clone)]
pub(crate) struct SqliteRow {
    names: Arc<[String]>,
    values: Vec<Value>,
}

/// A column by name or by position.
pub(crate) trait ColumnIndex {
    /// The position of the column in `row`.
    fn position(&self, row: &SqliteRow) -> rusqlite::Result<usize>;
}

impl ColumnIndex for &str {
    fn position(&self, row: &SqliteRow) -> rusqlite::Result<usize> {
        row.names
            .iter()
            .position(|n| n == self)
            .ok_or_else(|| rusqlite::Error::InvalidColumnName((*self).to_owned()))
    }
}

impl ColumnIndex for usize {
    fn position(&self, row: &SqliteRow) -> rusqlite::Result<usize> {
        if *self < row.values.len() {
            Ok(*self)
        } else {
            Err(rusqlite::Error::InvalidColumnIndex(*self))
        }
    }
}

impl SqliteRow {
    /// The value of a column, decoded; a value of the wrong type is an error (and
    /// becomes [`StoreError::Corrupt`]), never a default.
    pub(crate) fn try_get<T: FromSql, I: ColumnIndex>(&self, index: I) -> rusqlite::Result<T> {
        let i = index.position(self)?;
        let value = ValueRef::from(&self.values[i]);
        T::column_result(value).map_err(|e| match e {
            rusqlite::types::FromSqlError::InvalidType => {
                rusqlite::Error::InvalidColumnType(i, self.names[i].clone(), value.data_type())
            }
            rusqlite::types::FromSqlError::OutOfRange(v) => {
                rusqlite::Error::IntegralValueOutOfRange(i, v)
            }
            other => {
                rusqlite::Error::FromSqlConversionFailure(i, value.data_type(), Box::new(other))
            }
        })
    }
}

/// What a statement that returns no rows did.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Done {
    rows: u64,
}

impl Done {
    /// Rows inserted, updated or deleted.
    pub(crate) fn rows_affected(&self) -> u64 {
        self.rows
    }
}

/// A statement with its bound values.
#[derive(Debug)]
pub(crate) struct Query {
    sql: Cow<'static, str>,
    args: Vec<Value>,
    /// The first value that could not be bound, reported when the statement runs.
    bad: Option<rusqlite::Error>,
}

/// A statement written in the source.
pub(crate) fn query(sql: &'static str) -> Query {
    Query {
        sql: Cow::Borrowed(sql),
        args: Vec::new(),
        bad: None,
    }
}

/// A statement assembled at run time. Its caller builds it from constants (table and
/// column names the code chooses); values still go through [`Query::bind`].
pub(crate) fn dynamic(sql: String) -> Query {
    Query {
        sql: Cow::Owned(sql),
        args: Vec::new(),
        bad: None,
    }
}

/// Copies a value out of SQLite.
fn owned(v: ValueRef<'_>) -> rusqlite::Result<Value> {
    Ok(match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => Value::Text(
            std::str::from_utf8(t)
                .map_err(rusqlite::Error::from)?
                .to_owned(),
        ),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    })
}

/// Where a statement runs: the writer's connection inside a write (`&Connection`), or
/// a pooled read-only one (`db.read()?`, or `&conn` to run several on one).
pub(crate) trait Executor {
    /// The connection.
    fn conn(&self) -> &Connection;
}

impl Executor for &Connection {
    fn conn(&self) -> &Connection {
        self
    }
}

impl Executor for ReadConn<'_> {
    fn conn(&self) -> &Connection {
        self
    }
}

impl Executor for &ReadConn<'_> {
    fn conn(&self) -> &Connection {
        self
    }
}

fn to_value(v: &dyn ToSql) -> rusqlite::Result<Value> {
    Ok(match v.to_sql()? {
        ToSqlOutput::Borrowed(r) => owned(r)?,
        ToSqlOutput::Owned(v) => v,
        _ => {
            return Err(rusqlite::Error::ToSqlConversionFailure(
                "a value of a kind this adapter does not bind".into(),
            ));
        }
    })
}

impl Query {
    /// Binds the next `?`.
    #[must_use]
    pub(crate) fn bind<T: ToSql>(mut self, v: T) -> Self {
        match to_value(&v) {
            Ok(v) => self.args.push(v),
            Err(e) => {
                self.bad.get_or_insert(e);
            }
        }
        self
    }

    fn checked(&mut self) -> rusqlite::Result<()> {
        match self.bad.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Runs a statement that returns no rows.
    pub(crate) fn execute(mut self, c: impl Executor) -> rusqlite::Result<Done> {
        self.checked()?;
        let mut st = c.conn().prepare_cached(&self.sql)?;
        let rows = st.execute(rusqlite::params_from_iter(self.args.iter()))?;
        Ok(Done {
            rows: u64::try_from(rows).unwrap_or(u64::MAX),
        })
    }

    /// The rows, up to `max` of them.
    fn rows(mut self, c: impl Executor, max: usize) -> rusqlite::Result<Vec<SqliteRow>> {
        self.checked()?;
        let mut st = c.conn().prepare_cached(&self.sql)?;
        let names: Arc<[String]> = st.column_names().into_iter().map(String::from).collect();
        let width = names.len();
        let mut rows = st.query(rusqlite::params_from_iter(self.args.iter()))?;
        let mut out = Vec::new();
        while out.len() < max {
            let Some(r) = rows.next()? else { break };
            let mut values = Vec::with_capacity(width);
            for i in 0..width {
                values.push(owned(r.get_ref(i)?)?);
            }
            out.push(SqliteRow {
                names: names.clone(),
                values,
            });
        }
        Ok(out)
    }

    /// Every row.
    pub(crate) fn fetch_all(self, c: impl Executor) -> rusqlite::Result<Vec<SqliteRow>> {
        self.rows(c, usize::MAX)
    }

    /// The first row, if there is one.
    pub(crate) fn fetch_optional(self, c: impl Executor) -> rusqlite::Result<Option<SqliteRow>> {
        Ok(self.rows(c, 1)?.pop())
    }

    /// The first row; none is an error.
    pub(crate) fn fetch_one(self, c: impl Executor) -> rusqlite::Result<SqliteRow> {
        self.fetch_optional(c)?
            .ok_or(rusqlite::Error::QueryReturnedNoRows)
    }
}

/// A statement whose rows are read for their first column only.
#[derive(Debug)]
pub(crate) struct Scalar<T> {
    query: Query,
    out: PhantomData<fn() -> T>,
}

/// A statement written in the source, read for its first column.
pub(crate) fn query_scalar<T: FromSql>(sql: &'static str) -> Scalar<T> {
    Scalar {
        query: query(sql),
        out: PhantomData,
    }
}

impl<T: FromSql> Scalar<T> {
    /// Binds the next `?`.
    #[must_use]
    pub(crate) fn bind<V: ToSql>(mut self, v: V) -> Self {
        self.query = self.query.bind(v);
        self
    }

    /// The first column of every row.
    pub(crate) fn fetch_all(self, c: impl Executor) -> rusqlite::Result<Vec<T>> {
        self.query
            .fetch_all(c)?
            .iter()
            .map(|r| r.try_get(0usize))
            .collect()
    }

    /// The first column of the first row, if there is one.
    pub(crate) fn fetch_optional(self, c: impl Executor) -> rusqlite::Result<Option<T>> {
        self.query
            .fetch_optional(c)?
            .map(|r| r.try_get(0usize))
            .transpose()
    }

    /// The first column of the first row; none is an error.
    pub(crate) fn fetch_one(self, c: impl Executor) -> rusqlite::Result<T> {
        self.query.fetch_one(c)?.try_get(0usize)
    }
}

/// SQL assembled from constant pieces, with a `?` and a bound value for every
/// value. For lists whose filters vary.
#[derive(Debug)]
pub(crate) struct Builder {
    query: Query,
}

impl Builder {
    /// Starts with `sql` (a constant, or built from constants).
    pub(crate) fn new(sql: impl Into<String>) -> Self {
        Self {
            query: dynamic(sql.into()),
        }
    }

    /// Appends SQL (constants only: never a value).
    pub(crate) fn push(&mut self, sql: impl std::fmt::Display) -> &mut Self {
        use std::fmt::Write as _;
        let _ = write!(self.query.sql.to_mut(), "{sql}");
        self
    }

    /// Appends a `?` and binds `v` to it.
    pub(crate) fn push_bind<V: ToSql>(&mut self, v: V) -> &mut Self {
        self.query.sql.to_mut().push('?');
        let q = std::mem::replace(&mut self.query, query(""));
        self.query = q.bind(v);
        self
    }

    /// The statement.
    pub(crate) fn build(&mut self) -> Query {
        std::mem::replace(&mut self.query, query(""))
    }
}

/// Connection settings, applied on every connection:
///
/// 1. `journal_mode=WAL` (writer) — readers never block the writer and vice versa.
/// 2. `synchronous=FULL` — a committed, acknowledged write survives power loss
///    (`NORMAL` when so configured: it survives the process crashing, and a power
///    loss may lose the last commits but never corrupts the database).
/// 3. `foreign_keys=ON` — declared references are enforced.
/// 4. `busy_timeout` — wait for another process's lock instead of failing at once.
/// 5. `secure_delete=ON` — deleted content is overwritten, so erased or shredded data
///    does not linger in free pages.
/// 6. `trusted_schema=OFF` — schema content cannot call application functions.
fn configure(c: &Connection, writer: bool, full: bool, busy: Duration) -> rusqlite::Result<()> {
    // First, so that the pragmas below wait for another process's lock too.
    c.busy_timeout(busy)?;
    if writer {
        let mode: String = c.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(rusqlite::Error::ToSqlConversionFailure(
                format!("journal_mode is {mode}, not WAL").into(),
            ));
        }
    }
    c.pragma_update(None, "synchronous", if full { "FULL" } else { "NORMAL" })?;
    c.pragma_update(None, "foreign_keys", "ON")?;
    c.pragma_update(None, "secure_delete", "ON")?;
    c.pragma_update(None, "trusted_schema", "OFF")?;
    c.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(())
}

fn opened(path: &Path, e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable {
        context: format!("opening {}", path.display()),
        source: Some(Box::new(e)),
    }
}

/// Opens (creating if needed) the one read-write connection of a database.
pub(crate) fn open_writer(
    path: &Path,
    full: bool,
    busy: Duration,
) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let c = Connection::open_with_flags(path, flags).map_err(|e| opened(path, e))?;
    configure(&c, true, full, busy).map_err(|e| opened(path, e))?;
    Ok(c)
}

/// A database's read-only connections: taken for one port call on the caller's
/// thread and put back after. Reads are short (indexed lookups and bounded pages), so
/// they run where they are asked for instead of paying a thread hop; each connection
/// carries a deadline ([`READ_LIMIT`] from when it was taken) that interrupts a read
/// running longer.
#[derive(Debug)]
pub(crate) struct Readers {
    path: PathBuf,
    busy: Duration,
    /// Connections kept open between reads, with their deadlines.
    idle: Mutex<Vec<Pooled>>,
    keep: usize,
    /// What deadlines are measured from.
    epoch: Instant,
}

/// A read connection and its deadline (nanoseconds after the pool's epoch).
#[derive(Debug)]
struct Pooled {
    conn: Connection,
    deadline: Arc<AtomicU64>,
}

fn since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

impl Readers {
    /// A pool over the database at `path`, keeping up to `keep` idle connections
    /// (more are opened while more reads run at once, and closed after).
    pub(crate) fn new(path: &Path, busy: Duration, keep: usize) -> Self {
        Self {
            path: path.to_owned(),
            busy,
            idle: Mutex::new(Vec::new()),
            keep,
            epoch: Instant::now(),
        }
    }

    /// A read-only connection for as long as the guard lives.
    pub(crate) fn get(&self) -> Result<ReadConn<'_>, StoreError> {
        let pooled = self.idle.lock().map(|mut idle| idle.pop()).unwrap_or(None);
        let pooled = match pooled {
            Some(p) => p,
            None => self.open()?,
        };
        let limit = u64::try_from(READ_LIMIT.as_nanos()).unwrap_or(u64::MAX);
        pooled
            .deadline
            .store(since(self.epoch).saturating_add(limit), Ordering::Relaxed);
        Ok(ReadConn {
            conn: Some(pooled),
            pool: self,
        })
    }

    fn open(&self) -> Result<Pooled, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn =
            Connection::open_with_flags(&self.path, flags).map_err(|e| opened(&self.path, e))?;
        configure(&conn, false, true, self.busy).map_err(|e| opened(&self.path, e))?;
        let deadline = Arc::new(AtomicU64::new(u64::MAX));
        let (watch, epoch) = (deadline.clone(), self.epoch);
        // Returning true interrupts the statement (SQLITE_INTERRUPT, a 503).
        conn.progress_handler(
            READ_CHECK_EVERY,
            Some(move || since(epoch) > watch.load(Ordering::Relaxed)),
        )
        .map_err(|e| opened(&self.path, e))?;
        Ok(Pooled { conn, deadline })
    }

    /// Answers `SELECT 1`, or says why the database cannot be read.
    pub(crate) fn ping(&self) -> Result<(), StoreError> {
        let c = self.get()?;
        query_scalar::<i64>("SELECT 1")
            .fetch_one(&c)
            .map(|_| ())
            .map_err(|e| StoreError::Unavailable {
                context: self.path.display().to_string(),
                source: Some(Box::new(e)),
            })
    }
}

/// A pooled read-only connection.
pub(crate) struct ReadConn<'a> {
    conn: Option<Pooled>,
    pool: &'a Readers,
}

impl Deref for ReadConn<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        match &self.conn {
            Some(p) => &p.conn,
            None => unreachable!("the connection leaves only when the guard is dropped"),
        }
    }
}

impl Drop for ReadConn<'_> {
    fn drop(&mut self) {
        let Some(c) = self.conn.take() else { return };
        // A connection left inside a transaction (a read that failed half-way) is
        // closed, not reused.
        if !c.conn.is_autocommit() {
            return;
        }
        if let Ok(mut idle) = self.pool.idle.lock()
            && idle.len() < self.pool.keep
        {
            idle.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::db;

    #[test]
    fn a_read_that_never_ends_is_interrupted_and_answered_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        drop(open_writer(&path, true, Duration::from_secs(1)).unwrap());
        let readers = Readers::new(&path, Duration::from_secs(1), 1);
        let endless = query_scalar::<i64>(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
        )
        .fetch_one(readers.get().unwrap())
        .map_err(db);
        assert!(
            matches!(endless, Err(StoreError::Unavailable { .. })),
            "{endless:?}"
        );
        // The interrupted connection went back to the pool and serves the next read.
        let one = query_scalar::<i64>("SELECT 1")
            .fetch_one(readers.get().unwrap())
            .unwrap();
        assert_eq!(one, 1);
    }

    #[test]
    fn a_value_of_the_wrong_type_is_corruption_not_a_default() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let c = open_writer(&path, true, Duration::from_secs(1)).unwrap();
        let row = query("SELECT 'text' AS t, 7 AS n, NULL AS z")
            .fetch_one(&c)
            .unwrap();
        assert!(matches!(
            row.try_get::<i64, _>("t").map_err(db),
            Err(StoreError::Corrupt(_))
        ));
        assert_eq!(row.try_get::<i64, _>("n").unwrap(), 7);
        assert_eq!(row.try_get::<Option<String>, _>("z").unwrap(), None);
        assert!(row.try_get::<i64, _>("missing").is_err());
    }
}
