//! Group commit: concurrent writes to one SQLite database share one transaction and
//! one `fsync`.
//!
//! SQLite allows one writer per database, and with `synchronous=FULL` every commit
//! waits for the disk. One transaction per request therefore caps writes at the
//! disk's flush rate, however little each write does. Here the database's single
//! writer connection sits behind a lock; each write ([`WriteTx`]) takes the lock,
//! runs inside its own `SAVEPOINT` of the open batch transaction and, on
//! [`WriteTx::commit`], releases the savepoint and waits until the whole batch is
//! durable. The batch commits (one `COMMIT`, one flush) when the write that just
//! finished sees nobody queued behind it, when it holds `max_batch` writes, or when it
//! has been open `max_wait`; a write that waited `max_wait` for its batch commits it
//! itself, so a batch never outlives the writes in it.
//!
//! Guarantees:
//! - A write is acknowledged (its `commit` returns `Ok`) only after the `COMMIT` of its
//!   batch returned, i.e. after its rows and its audit entry are on disk.
//! - A write that fails or is abandoned (dropped without `commit`, as when a client
//!   disconnects) is rolled back to its savepoint: it fails alone and the other writes
//!   in its batch are unaffected.
//! - If the batch itself cannot commit (disk full, I/O error), or a savepoint cannot be
//!   rolled back, the whole batch is rolled back and every write in it fails: none of
//!   them was acknowledged, none is half-present.
//! - `max_batch = 1` turns group commit off: every write commits alone.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sqlx::{Executor, SqliteConnection};
use strongroom_core::store::StoreError;
use tokio::sync::{Mutex, OwnedMutexGuard, oneshot};

/// Bounds on a batch.
#[derive(Debug, Clone, Copy)]
pub struct GroupCommit {
    /// The most writes one transaction carries (1 = every write commits alone).
    pub max_batch: u32,
    /// The longest a batch stays open, and so the most a write waits for others.
    pub max_wait: Duration,
}

impl Default for GroupCommit {
    fn default() -> Self {
        Self {
            max_batch: 128,
            max_wait: Duration::from_millis(10),
        }
    }
}

/// What every write of a failed batch is told (the driver's error is not `Clone`).
type Outcome = Result<(), Arc<str>>;

/// The writer connection and the batch open on it.
pub(crate) struct Batch {
    conn: SqliteConnection,
    /// A batch transaction is open on `conn`.
    open: bool,
    /// A write's savepoint is open (its owner was dropped before cleaning up).
    member_open: bool,
    /// Counts batches, so a write that timed out waiting commits only its own batch.
    id: u64,
    opened: Instant,
    /// Writes that finished in this batch and wait for its commit.
    waiting: Vec<oneshot::Sender<Outcome>>,
}

/// One database's writer: its connection behind a lock, and the batch on it.
#[derive(Clone)]
pub(crate) struct Writer {
    batch: Arc<Mutex<Batch>>,
    /// Writes waiting for the lock: a finishing write hands the open batch on to them
    /// instead of committing while any are queued.
    queued: Arc<AtomicUsize>,
    limits: GroupCommit,
    acquire_timeout: Duration,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Counts a write as queued for as long as it waits for the lock, even if its future
/// is dropped while waiting.
struct Queued<'a>(&'a AtomicUsize);

impl<'a> Queued<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

const SAVEPOINT: &str = "SAVEPOINT sr_write";
const RELEASE: &str = "RELEASE sr_write";
const ROLLBACK_TO: &str = "ROLLBACK TO sr_write";

fn failed(e: &Arc<str>) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::other(format!(
        "the batch this write belonged to did not commit: {e}"
    )))
}

impl Writer {
    /// Takes over `conn` (the database's only writer connection).
    pub(crate) fn new(
        conn: SqliteConnection,
        limits: GroupCommit,
        acquire_timeout: Duration,
    ) -> Self {
        Self {
            batch: Arc::new(Mutex::new(Batch {
                conn,
                open: false,
                member_open: false,
                id: 0,
                opened: Instant::now(),
                waiting: Vec::new(),
            })),
            queued: Arc::new(AtomicUsize::new(0)),
            limits: GroupCommit {
                max_batch: limits.max_batch.max(1),
                max_wait: limits.max_wait,
            },
            acquire_timeout,
        }
    }

    async fn lock(&self) -> Result<OwnedMutexGuard<Batch>, StoreError> {
        let _queued = Queued::enter(&self.queued);
        tokio::time::timeout(self.acquire_timeout, self.batch.clone().lock_owned())
            .await
            .map_err(|_| StoreError::unavailable("the database's writer is busy; retry"))
    }

    /// Starts a write: the lock, the batch transaction (opened if none is), and a
    /// savepoint of this write's own. Runs in a task of its own, so a request dropped
    /// half-way cannot leave the connection between `BEGIN` and its bookkeeping; if
    /// the request is gone by the time the write is open, that task rolls the empty
    /// savepoint back and hands the batch on (or commits it) itself, so SQLite's write
    /// lock is never left held by nobody.
    pub(crate) async fn begin(&self) -> Result<WriteTx, StoreError> {
        let writer = self.clone();
        let (hand, take) = oneshot::channel();
        tokio::spawn(async move {
            let opened = writer.open_write().await;
            if let Err(Ok(mut guard)) = hand.send(opened) {
                recover(&mut guard).await;
                writer.finish(guard);
            }
        });
        let guard = take
            .await
            .map_err(|_| StoreError::unavailable("the database's writer task failed; retry"))??;
        Ok(WriteTx {
            guard: Some(guard),
            writer: self.clone(),
        })
    }

    async fn open_write(&self) -> Result<OwnedMutexGuard<Batch>, StoreError> {
        let mut guard = self.lock().await?;
        recover(&mut guard).await;
        if guard.open && self.full(&guard) {
            commit_batch(&mut guard).await;
        }
        if !guard.open {
            guard
                .conn
                .execute("BEGIN IMMEDIATE")
                .await
                .map_err(crate::error::db)?;
            guard.open = true;
            guard.id = guard.id.wrapping_add(1);
            guard.opened = Instant::now();
        }
        if let Err(e) = guard.conn.execute(SAVEPOINT).await {
            abort_batch(&mut guard, &e.to_string()).await;
            return Err(crate::error::db(e));
        }
        guard.member_open = true;
        Ok(guard)
    }

    /// The open batch must commit before another write joins it.
    fn full(&self, batch: &Batch) -> bool {
        batch.waiting.len() >= self.limits.max_batch as usize
            || batch.opened.elapsed() >= self.limits.max_wait
    }

    /// Commits the open batch, if any, and hands out the bare connection (for
    /// statements that cannot run inside a transaction, like a WAL checkpoint).
    pub(crate) async fn exclusive(&self) -> Result<Exclusive, StoreError> {
        let writer = self.clone();
        let guard = detached(async move {
            let mut guard = writer.lock().await?;
            commit_batch(&mut guard).await;
            Ok::<_, StoreError>(guard)
        })
        .await??;
        Ok(Exclusive(guard))
    }

    /// After a write released its savepoint: commit now, or leave the batch to the
    /// writes queued behind it.
    fn finish(&self, mut guard: OwnedMutexGuard<Batch>) {
        if guard.open && (self.queued.load(Ordering::SeqCst) == 0 || self.full(&guard)) {
            // In a task of its own, so the COMMIT and the news of it cannot be lost
            // with a request whose client went away.
            tokio::spawn(async move { commit_batch(&mut guard).await });
        }
    }

    /// Waits for the batch `id` to commit; if nobody commits it within `max_wait`
    /// (the writes it was left to were abandoned), commits it.
    async fn settle(
        &self,
        id: u64,
        mut done: oneshot::Receiver<Outcome>,
    ) -> Result<(), sqlx::Error> {
        // Never answer before the batch's outcome is known: a write reported as
        // failed must not commit afterwards (a retry would then write it twice).
        let outcome = match tokio::time::timeout(self.limits.max_wait, &mut done).await {
            Ok(outcome) => outcome,
            Err(_) => tokio::select! {
                outcome = &mut done => outcome,
                guard = self.batch.clone().lock_owned() => {
                    // Our batch, or a later one left open by writes that gave up:
                    // commit it rather than wait again.
                    if guard.open && (guard.id == id || self.queued.load(Ordering::SeqCst) == 0) {
                        let mut guard = guard;
                        tokio::spawn(async move { commit_batch(&mut guard).await });
                    }
                    done.await
                }
            },
        };
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(failed(&e)),
            Err(_) => Err(failed(&Arc::from("the writer went away"))),
        }
    }
}

/// Runs `work` in a task of its own, so dropping the caller does not interrupt it.
pub(crate) async fn detached<T: Send + 'static>(
    work: impl std::future::Future<Output = T> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::spawn(work)
        .await
        .map_err(|_| StoreError::unavailable("the database's writer task failed; retry"))
}

/// The writer connection, outside any transaction, held exclusively.
pub(crate) struct Exclusive(OwnedMutexGuard<Batch>);

impl Deref for Exclusive {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        &self.0.conn
    }
}

impl DerefMut for Exclusive {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.0.conn
    }
}

/// Rolls back a savepoint left open by a write that was dropped mid-way. If even that
/// fails, nothing in the batch can be trusted: it is rolled back whole.
async fn recover(batch: &mut Batch) {
    if !batch.member_open {
        return;
    }
    let undone = async {
        batch.conn.execute(ROLLBACK_TO).await?;
        batch.conn.execute(RELEASE).await
    }
    .await;
    match undone {
        Ok(_) => batch.member_open = false,
        Err(e) => abort_batch(batch, &e.to_string()).await,
    }
}

/// Commits the open batch and tells every write in it.
async fn commit_batch(batch: &mut Batch) {
    recover(batch).await;
    if !batch.open {
        return;
    }
    let outcome: Outcome = match batch.conn.execute("COMMIT").await {
        Ok(_) => Ok(()),
        Err(e) => {
            // SQLite may already have rolled back; a second ROLLBACK only fails.
            let _ = batch.conn.execute("ROLLBACK").await;
            Err(Arc::from(e.to_string()))
        }
    };
    batch.open = false;
    for w in batch.waiting.drain(..) {
        // A write whose request is gone no longer listens; nothing to tell it.
        let _ = w.send(outcome.clone());
    }
}

/// Rolls back the whole batch and fails every write waiting in it.
async fn abort_batch(batch: &mut Batch, why: &str) {
    if batch.open {
        let _ = batch.conn.execute("ROLLBACK").await;
    }
    batch.open = false;
    batch.member_open = false;
    let why: Arc<str> = Arc::from(why);
    for w in batch.waiting.drain(..) {
        let _ = w.send(Err(why.clone()));
    }
}

/// One write in a batch: derefs to the writer connection inside the write's savepoint.
/// Dropped without [`commit`](Self::commit), the write is rolled back alone.
pub(crate) struct WriteTx {
    /// `Some` until `commit` or `drop` hands the lock on.
    guard: Option<OwnedMutexGuard<Batch>>,
    writer: Writer,
}

impl WriteTx {
    /// Keeps this write in its batch and returns once the batch is durable. The
    /// savepoint's release and the hand-over run in a task of their own: a request
    /// dropped half-way through must not leave a released savepoint marked open (the
    /// next writer's rollback of it would fail and take the whole batch down).
    pub(crate) async fn commit(mut self) -> Result<(), sqlx::Error> {
        let Some(mut guard) = self.guard.take() else {
            return Err(failed(&Arc::from("write already finished")));
        };
        let writer = self.writer.clone();
        let joined = tokio::spawn(async move {
            if let Err(e) = guard.conn.execute(RELEASE).await {
                // This write fails alone: its savepoint is rolled back, the batch
                // goes on.
                recover(&mut guard).await;
                writer.finish(guard);
                return Err(e);
            }
            guard.member_open = false;
            let (tell, done) = oneshot::channel();
            guard.waiting.push(tell);
            let id = guard.id;
            writer.finish(guard);
            Ok((id, done))
        })
        .await;
        let (id, done) = match joined {
            Ok(released) => released?,
            Err(_) => return Err(failed(&Arc::from("the writer task failed"))),
        };
        self.writer.settle(id, done).await
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        let Some(mut guard) = self.guard.take() else {
            return;
        };
        let writer = self.writer.clone();
        // Roll the savepoint back now rather than when the next write comes, so the
        // writes already in the batch are not kept waiting. Without a runtime (at
        // shutdown) the next writer, or `settle`'s timeout, cleans up instead.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                recover(&mut guard).await;
                writer.finish(guard);
            });
        }
    }
}

impl Deref for WriteTx {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        match &self.guard {
            Some(g) => &g.conn,
            None => unreachable!(
                "the lock is handed on only by commit and drop, which consume the write"
            ),
        }
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        match &mut self.guard {
            Some(g) => &mut g.conn,
            None => unreachable!(
                "the lock is handed on only by commit and drop, which consume the write"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::str::FromStr;

    use sqlx::{Connection, Row};

    use super::*;

    async fn writer(dir: &tempfile::TempDir, limits: GroupCommit) -> (Writer, sqlx::SqlitePool) {
        let path = dir.path().join("t.db");
        let options =
            sqlx::sqlite::SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
                .unwrap()
                .create_if_missing(true)
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
        let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, batch INTEGER NOT NULL)")
            .await
            .unwrap();
        conn.execute("INSERT INTO t VALUES (0, 0)").await.unwrap();
        let reader = sqlx::SqlitePool::connect_with(options).await.unwrap();
        (Writer::new(conn, limits, Duration::from_secs(10)), reader)
    }

    async fn rows(reader: &sqlx::SqlitePool) -> BTreeMap<i64, i64> {
        sqlx::query("SELECT id, batch FROM t WHERE id > 0")
            .fetch_all(reader)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    }

    /// Each task inserts its id (tagged with its batch); every third also inserts a
    /// duplicate of row 0 and so fails.
    async fn run(
        w: &Writer,
        reader: &sqlx::SqlitePool,
        n: i64,
    ) -> Vec<(i64, Result<(), sqlx::Error>)> {
        let tasks: Vec<_> = (1..=n)
            .map(|i| {
                let (w, reader) = (w.clone(), reader.clone());
                tokio::spawn(async move {
                    let mut tx = w.begin().await.unwrap();
                    let batch = tx.guard.as_ref().unwrap().id;
                    sqlx::query("INSERT INTO t VALUES (?, ?)")
                        .bind(i)
                        .bind(i64::try_from(batch).unwrap())
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                    tokio::task::yield_now().await;
                    if i % 3 == 0 {
                        let dup = sqlx::query("INSERT INTO t VALUES (0, 0)")
                            .execute(&mut *tx)
                            .await;
                        return (i, dup.map(|_| ()));
                    }
                    let committed = tx.commit().await;
                    if committed.is_ok() {
                        // Acknowledged means committed: another connection sees it now.
                        let seen: Option<i64> = sqlx::query_scalar("SELECT id FROM t WHERE id = ?")
                            .bind(i)
                            .fetch_optional(&reader)
                            .await
                            .unwrap();
                        assert_eq!(seen, Some(i), "write {i} acknowledged but not visible");
                    }
                    (i, committed)
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_share_batches_and_a_failure_stays_alone() {
        let dir = tempfile::tempdir().unwrap();
        let limits = GroupCommit {
            max_batch: 8,
            max_wait: Duration::from_secs(5),
        };
        let (w, reader) = writer(&dir, limits).await;
        let results = run(&w, &reader, 120).await;
        let stored = rows(&reader).await;
        for (i, r) in &results {
            if i % 3 == 0 {
                assert!(r.is_err(), "write {i} inserted a duplicate and must fail");
                assert!(!stored.contains_key(i), "failed write {i} left its row");
            } else {
                r.as_ref().unwrap();
                assert!(stored.contains_key(i), "acknowledged write {i} is missing");
            }
        }
        let mut per_batch = BTreeMap::<i64, u32>::new();
        for b in stored.values() {
            *per_batch.entry(*b).or_default() += 1;
        }
        assert!(per_batch.values().all(|n| *n <= 8), "{per_batch:?}");
        assert!(
            per_batch.len() < stored.len(),
            "80 concurrent writes never shared a commit: {per_batch:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn max_batch_one_commits_every_write_alone() {
        let dir = tempfile::tempdir().unwrap();
        let limits = GroupCommit {
            max_batch: 1,
            max_wait: Duration::from_secs(5),
        };
        let (w, reader) = writer(&dir, limits).await;
        run(&w, &reader, 30).await;
        let stored = rows(&reader).await;
        let batches: std::collections::BTreeSet<_> = stored.values().collect();
        assert_eq!(batches.len(), stored.len(), "{stored:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_abandoned_write_is_undone_and_its_batch_still_commits() {
        let dir = tempfile::tempdir().unwrap();
        let (w, reader) = writer(&dir, GroupCommit::default()).await;
        // `first` holds the writer while a write is dropped half-way (`dropped`) and
        // another is cancelled while it queues (`cancelled`).
        let mut first = w.begin().await.unwrap();
        sqlx::query("INSERT INTO t VALUES (1, 0)")
            .execute(&mut *first)
            .await
            .unwrap();
        let dropped = {
            let w = w.clone();
            tokio::spawn(async move {
                let mut tx = w.begin().await.unwrap();
                sqlx::query("INSERT INTO t VALUES (2, 0)")
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                // Dropped here without commit, like a request whose client left.
            })
        };
        let cancelled = {
            let w = w.clone();
            tokio::spawn(async move {
                let tx = w.begin();
                // The future is dropped while it waits for the lock.
                let _ = tokio::time::timeout(Duration::from_millis(1), tx).await;
            })
        };
        cancelled.await.unwrap();
        first.commit().await.unwrap();
        dropped.await.unwrap();
        // A later write sees a clean connection and commits.
        let mut third = w.begin().await.unwrap();
        sqlx::query("INSERT INTO t VALUES (3, 0)")
            .execute(&mut *third)
            .await
            .unwrap();
        third.commit().await.unwrap();
        let stored = rows(&reader).await;
        assert_eq!(stored.keys().copied().collect::<Vec<_>>(), vec![1, 3]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_whose_commit_fails_fails_every_write_in_it_and_keeps_none() {
        let dir = tempfile::tempdir().unwrap();
        let limits = GroupCommit {
            max_batch: 64,
            max_wait: Duration::from_secs(5),
        };
        let (w, reader) = writer(&dir, limits).await;
        // A deferred foreign key is checked only at COMMIT: one write breaking it makes
        // the batch's COMMIT fail, whichever write the batch commits with.
        let mut setup = w.begin().await.unwrap();
        setup
            .execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
            .await
            .unwrap();
        setup
            .execute("CREATE TABLE child (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)")
            .await
            .unwrap();
        setup.commit().await.unwrap();
        // Hold the writer so the next writes queue into one batch.
        let gate = w.begin().await.unwrap();
        let writes: Vec<_> = (1..=8)
            .map(|i| {
                let w = w.clone();
                tokio::spawn(async move {
                    let mut tx = w.begin().await.unwrap();
                    let parent = if i == 4 { 999 } else { i };
                    if i != 4 {
                        sqlx::query("INSERT INTO parent VALUES (?)")
                            .bind(i)
                            .execute(&mut *tx)
                            .await
                            .unwrap();
                    }
                    sqlx::query("INSERT INTO child VALUES (?, ?)")
                        .bind(i)
                        .bind(parent)
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                    tx.commit().await
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The gate wrote nothing; it shares the batch, so it may fail with it.
        let gate = tokio::spawn(gate.commit());
        let mut failed = 0i64;
        for t in writes {
            if t.await.unwrap().is_err() {
                failed += 1;
            }
        }
        let (children, parents): (i64, i64) =
            sqlx::query_as("SELECT (SELECT count(*) FROM child), (SELECT count(*) FROM parent)")
                .fetch_one(&reader)
                .await
                .unwrap();
        let _ = gate.await.unwrap();
        assert!(failed >= 1, "the batch holding the broken write failed");
        assert!(failed > 1, "the broken write's batch-mates failed with it");
        // Every write that failed left nothing; every acknowledged one is there.
        assert_eq!(children, 8 - failed, "children");
        assert_eq!(parents, 8 - failed, "parents");
    }
}
