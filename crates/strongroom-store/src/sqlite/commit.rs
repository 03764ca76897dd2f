//! Group commit: concurrent writes to one SQLite database share one transaction and
//! one `fsync`, on a writer thread of the database's own.
//!
//! SQLite allows one writer per database, and with `synchronous=FULL` every commit
//! waits for the disk. One transaction per request therefore caps writes at the
//! disk's flush rate, however little each write does. Here each database has one
//! thread owning its only read-write connection. A write is a closure sent to that
//! thread ([`Writer::write`]); the thread runs it inside a `SAVEPOINT` of the open
//! batch transaction, releases the savepoint if the closure returned `Ok` and rolls
//! it back if not, and takes the next queued write into the same batch. The batch
//! commits (one `COMMIT`, one flush) when no write is queued, when it holds
//! `max_batch` writes, or when it has been open `max_wait`. While it commits, new
//! writes queue up and form the next batch. Every statement of a write runs on the
//! thread without a hop; the caller pays one hop there and one back.
//!
//! Guarantees:
//! - A write is acknowledged (`write` returns `Ok`) only after the `COMMIT` of its
//!   batch returned, i.e. after its rows and its audit entry are on disk.
//! - A write that fails (its closure returns `Err`, or panics) is rolled back to its
//!   savepoint: it fails alone and the other writes in its batch are unaffected.
//! - A write whose caller has gone away (a client disconnected) before the thread
//!   reaches it does not run. One that already ran commits with its batch: it was
//!   never acknowledged, and it is whole, never half-present.
//! - If the batch itself cannot commit (disk full, I/O error, a deferred constraint),
//!   or a savepoint cannot be rolled back, the whole batch is rolled back and every
//!   write in it fails: none of them was acknowledged, none is half-present.
//! - `max_batch = 1` turns group commit off: every write commits alone.
//! - The queue is bounded, and a write that waited longer than the writer's timeout
//!   is refused unrun: an overloaded database answers "busy, retry", it does not
//!   queue without limit.

use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use strongroom_core::store::StoreError;
use tokio::sync::oneshot;

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

/// Writes that may wait for the writer thread at once; more are refused as busy.
const QUEUE: usize = 4096;

const SAVEPOINT: &str = "SAVEPOINT sr_write";
const RELEASE: &str = "RELEASE sr_write";
const ROLLBACK_TO: &str = "ROLLBACK TO sr_write; RELEASE sr_write";

/// How the writer thread tells a write how its batch ended (the driver's error is not
/// `Clone`, so every write of a failed batch gets its message).
type Outcome = Result<(), Arc<str>>;

/// Tells a write's caller its result once its batch's outcome is known.
type Reply = Box<dyn FnOnce(Outcome) + Send>;

/// What the thread does with a queued write.
enum Start<'a> {
    /// Run it on the connection, inside its savepoint.
    Run(&'a Connection),
    /// Refuse it unrun, with this reason.
    Refuse(&'a str),
}

/// A queued write: run (or refused), it says whether it succeeded and how to answer
/// its caller; `None` when it did not run.
type Work = Box<dyn FnOnce(Start<'_>) -> Option<(bool, Reply)> + Send>;

enum Job {
    Write {
        work: Work,
        queued: Instant,
    },
    /// Runs outside any transaction, after the open batch committed.
    Exclusive(Box<dyn FnOnce(&Connection) + Send>),
}

/// One database's writer thread, and the queue to it. Cloning shares the thread; it
/// ends when the last clone is dropped (after finishing the batch it is in).
#[derive(Clone)]
pub(crate) struct Writer {
    jobs: SyncSender<Job>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

thread_local! {
    /// Counts the batches of the writer thread this runs on (tests tell batches
    /// apart by it).
    static BATCH: Cell<u64> = const { Cell::new(0) };
}

/// The batch the calling write runs in (on a writer thread).
#[cfg(test)]
pub(crate) fn current_batch() -> u64 {
    BATCH.with(Cell::get)
}

fn busy(why: &str) -> StoreError {
    StoreError::unavailable(format!("the database's writer {why}; retry"))
}

fn batch_failed(why: &str) -> StoreError {
    StoreError::unavailable(format!(
        "the batch this write belonged to did not commit: {why}"
    ))
}

impl Writer {
    /// Starts the writer thread on `conn` (the database's only read-write
    /// connection). A write that waited `stale_after` in the queue is refused.
    pub(crate) fn start(
        conn: Connection,
        limits: GroupCommit,
        stale_after: Duration,
        name: &str,
    ) -> Result<Self, StoreError> {
        let (jobs, queue) = std::sync::mpsc::sync_channel(QUEUE);
        let limits = GroupCommit {
            max_batch: limits.max_batch.max(1),
            max_wait: limits.max_wait,
        };
        std::thread::Builder::new()
            .name(format!("sqlite writer {name}"))
            .spawn(move || serve(&conn, &queue, limits, stale_after))
            .map_err(|e| StoreError::Unavailable {
                context: "starting the database's writer thread".into(),
                source: Some(Box::new(e)),
            })?;
        Ok(Self { jobs })
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        self.jobs.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => busy("has too many writes queued"),
            TrySendError::Disconnected(_) => busy("has stopped"),
        })
    }

    /// Runs `f` as one write and returns once it is durable (or failed). `f` runs on
    /// the writer thread inside a savepoint of the open batch: returning `Err` rolls
    /// back everything it did, and nothing else.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (tell, answer) = oneshot::channel::<Result<T, StoreError>>();
        let work: Work = Box::new(move |start| {
            let conn = match start {
                Start::Run(conn) if !tell.is_closed() => conn,
                // Nobody waits for it any more: it does not run.
                Start::Run(_) => return None,
                Start::Refuse(why) => {
                    let _ = tell.send(Err(busy(why)));
                    return None;
                }
            };
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| f(conn)))
                .unwrap_or_else(|_| Err(StoreError::backend("a write failed unexpectedly")));
            let ok = result.is_ok();
            let reply: Reply = Box::new(move |batch: Outcome| {
                let answer = match (result, batch) {
                    (Err(e), _) => Err(e),
                    (Ok(v), Ok(())) => Ok(v),
                    (Ok(_), Err(why)) => Err(batch_failed(&why)),
                };
                // A caller that went away no longer listens.
                let _ = tell.send(answer);
            });
            Some((ok, reply))
        });
        self.send(Job::Write {
            work,
            queued: Instant::now(),
        })?;
        answer.await.map_err(|_| busy("stopped"))?
    }

    /// Runs `f` on the writer connection outside any transaction (for statements
    /// that cannot run in one, like a WAL checkpoint), after the open batch
    /// committed; no write runs meanwhile.
    pub(crate) async fn exclusive<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (tell, answer) = oneshot::channel::<Result<T, StoreError>>();
        self.send(Job::Exclusive(Box::new(move |conn| {
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| f(conn)))
                .unwrap_or_else(|_| Err(StoreError::backend("a maintenance step failed")));
            let _ = tell.send(result);
        })))?;
        answer.await.map_err(|_| busy("stopped"))?
    }
}

/// The writer thread: batches until every [`Writer`] is dropped.
fn serve(conn: &Connection, queue: &Receiver<Job>, limits: GroupCommit, stale_after: Duration) {
    let mut next: Option<Job> = None;
    loop {
        let job = match next.take() {
            Some(job) => job,
            None => match queue.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        match job {
            Job::Exclusive(f) => f(conn),
            Job::Write { work, queued } => {
                next = batch(conn, queue, limits, stale_after, work, queued);
            }
        }
    }
}

/// Rolls a write's savepoint back.
fn undo(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(ROLLBACK_TO)
}

/// Rolls back the whole batch and fails every write waiting in it.
fn abort(conn: &Connection, waiting: Vec<Reply>, why: &str) {
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    let why: Arc<str> = Arc::from(why);
    for reply in waiting {
        reply(Err(why.clone()));
    }
}

/// Runs one write in its savepoint. `Err` means the batch can no longer be trusted
/// (a savepoint could not be opened or rolled back): the caller aborts it.
fn run_one(conn: &Connection, work: Work, waiting: &mut Vec<Reply>) -> Result<(), String> {
    if let Err(e) = conn.execute_batch(SAVEPOINT) {
        let why = e.to_string();
        work(Start::Refuse(&why));
        return Err(why);
    }
    match work(Start::Run(conn)) {
        // It did not run: its savepoint is empty.
        None => conn.execute_batch(RELEASE).map_err(|e| e.to_string()),
        Some((true, reply)) => {
            if let Err(e) = conn.execute_batch(RELEASE) {
                // This write fails alone, unless even its rollback fails.
                if let Err(e2) = undo(conn) {
                    waiting.push(reply);
                    return Err(e2.to_string());
                }
                reply(Err(Arc::from(e.to_string())));
            } else {
                waiting.push(reply);
            }
            Ok(())
        }
        Some((false, reply)) => {
            if let Err(e) = undo(conn) {
                // Nothing in the batch can be trusted any more.
                waiting.push(reply);
                return Err(e.to_string());
            }
            // Its own error is its answer; it does not wait for the batch.
            reply(Ok(()));
            Ok(())
        }
    }
}

/// Runs one batch, starting with `work`; returns an exclusive job that arrived while
/// it ran (it runs after the batch's commit).
fn batch(
    conn: &Connection,
    queue: &Receiver<Job>,
    limits: GroupCommit,
    stale_after: Duration,
    work: Work,
    queued: Instant,
) -> Option<Job> {
    BATCH.with(|b| b.set(b.get().wrapping_add(1)));
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        work(Start::Refuse(&format!(
            "could not start a transaction ({e})"
        )));
        return None;
    }
    let opened = Instant::now();
    let mut waiting: Vec<Reply> = Vec::new();
    let mut after = None;
    let mut current = Some((work, queued));
    while let Some((work, queued)) = current.take() {
        if queued.elapsed() > stale_after {
            work(Start::Refuse("is busy"));
        } else if let Err(why) = run_one(conn, work, &mut waiting) {
            abort(conn, waiting, &why);
            return None;
        }
        if waiting.len() >= limits.max_batch as usize || opened.elapsed() >= limits.max_wait {
            break;
        }
        match queue.try_recv() {
            Ok(Job::Write { work, queued }) => current = Some((work, queued)),
            Ok(exclusive) => {
                after = Some(exclusive);
                break;
            }
            Err(_) => break,
        }
    }
    let outcome: Outcome = match conn.execute_batch("COMMIT") {
        Ok(()) => Ok(()),
        Err(e) => {
            // SQLite may already have rolled back; a second ROLLBACK only fails.
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            Err(Arc::from(e.to_string()))
        }
    };
    for reply in waiting {
        reply(outcome.clone());
    }
    after
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::connection::{query, query_scalar};
    use super::*;
    use crate::error::db;

    fn writer(dir: &tempfile::TempDir, limits: GroupCommit) -> (Writer, Connection) {
        let path = dir.path().join("t.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, batch INTEGER NOT NULL); INSERT INTO t VALUES (0, 0);",
        )
        .unwrap();
        let reader = Connection::open(&path).unwrap();
        (
            Writer::start(conn, limits, Duration::from_secs(60), "test").unwrap(),
            reader,
        )
    }

    fn rows(reader: &Connection) -> BTreeMap<i64, i64> {
        query("SELECT id, batch FROM t WHERE id > 0")
            .fetch_all(reader)
            .unwrap()
            .iter()
            .map(|r| (r.try_get(0usize).unwrap(), r.try_get(1usize).unwrap()))
            .collect()
    }

    /// Holds the writer thread until the returned sender is dropped or sent to, so
    /// the writes queued meanwhile are all waiting when it lets go.
    fn gate(w: &Writer) -> std::sync::mpsc::Sender<()> {
        let (open, wait) = std::sync::mpsc::channel::<()>();
        w.send(Job::Exclusive(Box::new(move |_| {
            let _ = wait.recv();
        })))
        .unwrap();
        open
    }

    async fn settle() {
        // Let the spawned tasks reach the queue (no assertion depends on timing:
        // late writes only make smaller batches).
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    /// Each task inserts its id (tagged with its batch); every third also inserts a
    /// duplicate of row 0 and so fails.
    async fn run(w: &Writer, n: i64) -> Vec<(i64, Result<(), StoreError>)> {
        let open = gate(w);
        let tasks: Vec<_> = (1..=n)
            .map(|i| {
                let w = w.clone();
                tokio::spawn(async move {
                    let r = w
                        .write(move |c| {
                            let batch = i64::try_from(current_batch()).unwrap();
                            query("INSERT INTO t VALUES (?, ?)")
                                .bind(i)
                                .bind(batch)
                                .execute(c)
                                .map_err(db)?;
                            if i % 3 == 0 {
                                query("INSERT INTO t VALUES (0, 0)")
                                    .execute(c)
                                    .map_err(db)?;
                            }
                            Ok(())
                        })
                        .await;
                    (i, r)
                })
            })
            .collect();
        settle().await;
        drop(open);
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
        let (w, reader) = writer(&dir, limits);
        let results = run(&w, 120).await;
        let stored = rows(&reader);
        for (i, r) in &results {
            if i % 3 == 0 {
                assert!(
                    matches!(r, Err(StoreError::Conflict { .. })),
                    "write {i} inserted a duplicate and must fail: {r:?}"
                );
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
            "80 queued writes never shared a commit: {per_batch:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_acknowledged_write_is_visible_to_another_connection() {
        let dir = tempfile::tempdir().unwrap();
        let (w, reader) = writer(&dir, GroupCommit::default());
        for i in 1..=20i64 {
            w.write(move |c| {
                query("INSERT INTO t VALUES (?, 0)")
                    .bind(i)
                    .execute(c)
                    .map_err(db)
                    .map(|_| ())
            })
            .await
            .unwrap();
            let seen: Option<i64> = query_scalar("SELECT id FROM t WHERE id = ?")
                .bind(i)
                .fetch_optional(&reader)
                .unwrap();
            assert_eq!(seen, Some(i), "write {i} acknowledged but not visible");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn max_batch_one_commits_every_write_alone() {
        let dir = tempfile::tempdir().unwrap();
        let limits = GroupCommit {
            max_batch: 1,
            max_wait: Duration::from_secs(5),
        };
        let (w, reader) = writer(&dir, limits);
        run(&w, 30).await;
        let stored = rows(&reader);
        let batches: std::collections::BTreeSet<_> = stored.values().collect();
        assert_eq!(batches.len(), stored.len(), "{stored:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_abandoned_or_panicking_write_is_undone_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let (w, reader) = writer(&dir, GroupCommit::default());
        let open = gate(&w);
        // Queued behind the gate, then abandoned by its caller: it never runs.
        let abandoned = {
            let w = w.clone();
            tokio::spawn(async move {
                w.write(|c| {
                    query("INSERT INTO t VALUES (2, 0)")
                        .execute(c)
                        .map_err(db)
                        .map(|_| ())
                })
                .await
            })
        };
        // Writes, then panics: rolled back alone.
        let panicking = {
            let w = w.clone();
            tokio::spawn(async move {
                w.write(|c| -> Result<(), StoreError> {
                    query("INSERT INTO t VALUES (4, 0)")
                        .execute(c)
                        .map_err(db)?;
                    panic!("a bug in a write");
                })
                .await
            })
        };
        let kept = {
            let w = w.clone();
            tokio::spawn(async move {
                w.write(|c| {
                    query("INSERT INTO t VALUES (1, 0)")
                        .execute(c)
                        .map_err(db)
                        .map(|_| ())
                })
                .await
            })
        };
        settle().await;
        abandoned.abort();
        let _ = abandoned.await;
        drop(open);
        assert!(panicking.await.unwrap().is_err());
        kept.await.unwrap().unwrap();
        w.write(|c| {
            query("INSERT INTO t VALUES (3, 0)")
                .execute(c)
                .map_err(db)
                .map(|_| ())
        })
        .await
        .unwrap();
        let stored = rows(&reader);
        assert_eq!(stored.keys().copied().collect::<Vec<_>>(), vec![1, 3]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_whose_commit_fails_fails_every_write_in_it_and_keeps_none() {
        let dir = tempfile::tempdir().unwrap();
        let limits = GroupCommit {
            max_batch: 64,
            max_wait: Duration::from_secs(5),
        };
        let (w, reader) = writer(&dir, limits);
        // A deferred foreign key is checked only at COMMIT: one write breaking it makes
        // the batch's COMMIT fail, whichever writes the batch holds.
        w.write(|c| {
            c.execute_batch(
                "CREATE TABLE parent (id INTEGER PRIMARY KEY); CREATE TABLE child (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);",
            )
            .map_err(db)
        })
        .await
        .unwrap();
        // foreign_keys cannot change inside a transaction: set it on the connection.
        w.exclusive(|c| c.execute_batch("PRAGMA foreign_keys = ON").map_err(db))
            .await
            .unwrap();
        let open = gate(&w);
        let writes: Vec<_> = (1..=8i64)
            .map(|i| {
                let w = w.clone();
                tokio::spawn(async move {
                    w.write(move |c| {
                        let parent = if i == 4 { 999 } else { i };
                        if i != 4 {
                            query("INSERT INTO parent VALUES (?)")
                                .bind(i)
                                .execute(c)
                                .map_err(db)?;
                        }
                        query("INSERT INTO child VALUES (?, ?)")
                            .bind(i)
                            .bind(parent)
                            .execute(c)
                            .map_err(db)?;
                        Ok(())
                    })
                    .await
                })
            })
            .collect();
        settle().await;
        drop(open);
        let mut failed = 0i64;
        for t in writes {
            if t.await.unwrap().is_err() {
                failed += 1;
            }
        }
        let children: i64 = query_scalar("SELECT count(*) FROM child")
            .fetch_one(&reader)
            .unwrap();
        let parents: i64 = query_scalar("SELECT count(*) FROM parent")
            .fetch_one(&reader)
            .unwrap();
        assert!(failed >= 1, "the batch holding the broken write failed");
        assert!(failed > 1, "the broken write's batch-mates failed with it");
        // Every write that failed left nothing; every acknowledged one is there.
        assert_eq!(children, 8 - failed, "children");
        assert_eq!(parents, 8 - failed, "parents");
    }

    #[tokio::test]
    async fn a_full_queue_is_refused_as_busy_not_queued_without_limit() {
        let dir = tempfile::tempdir().unwrap();
        let (w, _reader) = writer(&dir, GroupCommit::default());
        let open = gate(&w);
        settle().await;
        let mut refused = false;
        let mut held = Vec::new();
        for _ in 0..=QUEUE + 1 {
            let (tell, _answer) = oneshot::channel::<()>();
            let job = Job::Exclusive(Box::new(move |_| drop(tell)));
            match w.send(job) {
                Ok(()) => held.push(()),
                Err(e) => {
                    assert!(matches!(e, StoreError::Unavailable { .. }), "{e:?}");
                    refused = true;
                    break;
                }
            }
        }
        assert!(refused, "{} jobs were queued without a bound", held.len());
        drop(open);
    }
}
