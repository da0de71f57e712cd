//! The PostgreSQL engine: stateless server nodes over one database.
//!
//! Tables (created, and their version checked, on first connect): `kmip_objects` (id,
//! revision, body), `kmip_index` (k, id), `kmip_values` (name, value) and `kmip_meta` (schema
//! version, last identifier reserved). Write transactions lock what they read: every record and
//! value a commit reads is read `FOR UPDATE`, so a writer on another node that changed it
//! first is waited for, and then its revision check sees the change and refuses the stale
//! commit (which the server runs again); the name rule takes an advisory lock per name, so
//! nodes checking one name take turns and each sees the others' commits. (SERIALIZABLE
//! isolation did the same at a fifth of the throughput: its predicate locks on the index
//! pages made concurrent Creates of neighbouring identifiers fail each other.) Deadlocks are
//! retried. Identifiers come from a sequence, so two nodes never share one, and they sort by
//! creation across nodes.
//!
//! Round trips are what a request waits for, and each costs both sides CPU: a write
//! transaction begins with its first read (BEGIN sent with it), holds its writes back and sends
//! them as one statement with its next read or with COMMIT. A Create, which reads nothing (its
//! identifier is new: see [`Records`]), is one statement on its own, durable when answered:
//! with the identifier's `nextval`, two round trips. Creates that commit while another
//! group of them is being written are gathered into the next group: one statement, one
//! transaction ([`Engine::gathers_blind`]). A transaction's fixed cost was most of what a
//! Create cost the database: gathered, its CPU per Create halved (130-165 -> 59-74 us).
//!
//! Connections come from a small pool. One that failed is dropped; the next request connects
//! again, to whichever listed host accepts writes (`target_session_attrs=read-write`), so
//! nodes follow a promoted standby. Every statement has a time limit, and the TCP connection
//! one for unacknowledged data, so a lost database answers an error, not a hang.
//!
//! Transactions block their thread while a statement is out (each connection drives its own
//! I/O on the waiting thread): they must not run on an async worker, which is why
//! [`Engine::remote`] is true and the server runs them on blocking threads. The exception is
//! [`Engine::fetch`] and [`Engine::fetch_ids`], record reads and identifier reservations that
//! a task on an async worker awaits: they go on one connection of their own whose I/O runs
//! on the server's runtime, so that a message of one item that names its object (a Get, an
//! Encrypt) is answered without a thread handoff, and a Create runs without one up to its
//! commit (see [`super::Prefetched`]), which it then awaits in a group written by one
//! blocking thread for all of them.
//!
//! Record reads outside write transactions are gathered, both the blocking ones
//! ([`super::gather`]) and the awaited ones: the records that concurrent messages read while
//! one statement is out are fetched by the next, together.

use super::engine::{Engine, ReadTxn, Stored, WriteTxn};
use super::gather::{FetchFailed, Gather};
use super::{Records, StoreError, SCHEMA_VERSION};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Row, Statement};

/// A store whose records are in PostgreSQL.
pub type PostgresStore = Records<PostgresEngine>;

/// How long a statement may run, and a connection may wait for the database's
/// acknowledgement, before the request gets an error.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle connections kept for the next requests.
const POOL_IDLE: usize = 32;
/// Connections open at once, idle or not: the server's blocking pool is larger (512 threads),
/// and PostgreSQL's own limit (`max_connections`, 100 by default) is shared by every node.
const MAX_OPEN: usize = 64;
/// Each identifier request takes a stride of this many from the sequence, consecutive, of
/// which it uses what it asked for (a key pair takes two).
const ID_STRIDE: u64 = 16;
/// How long a pooled connection may have been idle before a write transaction asks it whether
/// it is still alive (see [`PostgresEngine::write`]).
const IDLE_CHECK: Duration = Duration::from_millis(500);
/// Runs of a write transaction that serialization failures may take before giving up.
const MAX_ATTEMPTS: u32 = 20;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kmip_meta (name text PRIMARY KEY, value bigint NOT NULL);
CREATE TABLE IF NOT EXISTS kmip_objects (id text PRIMARY KEY, revision bigint NOT NULL, body bytea NOT NULL);
CREATE TABLE IF NOT EXISTS kmip_index (k bytea NOT NULL, id text NOT NULL, PRIMARY KEY (k, id));
CREATE TABLE IF NOT EXISTS kmip_values (name text COLLATE \"C\" PRIMARY KEY, value bytea NOT NULL);
CREATE SEQUENCE IF NOT EXISTS kmip_ids INCREMENT BY 16;
";

/// The engine: a connection configuration and a pool.
pub struct PostgresEngine {
    config: tokio_postgres::Config,
    tls: postgres_openssl::MakeTlsConnector,
    pool: Arc<Mutex<Vec<Conn>>>,
    slots: Arc<Slots>,
    /// Record reads of concurrent readers, fetched together.
    reads: Gather<Stored>,
    /// Identifier reservations of concurrent requests, one statement for all (each asker
    /// known by a number of its own, in the order they asked).
    strides: Gather<u64>,
    askers: std::sync::atomic::AtomicU64,
    /// Record reads of tasks on the async workers ([`Engine::fetch`]).
    fetches: Arc<Fetches>,
    /// A printable form of the URL, without its password.
    shown: String,
}

/// Record reads and identifier reservations that tasks on the async workers await
/// ([`Engine::fetch`], [`Engine::fetch_ids`]), on a connection of their own whose I/O runs on
/// the server's runtime: no thread waits for them. Like the blocking readers' (see
/// [`super::gather`]), what is asked for while a statement is out is sent together in the
/// next one (the reads in one statement, the reservations in another, pipelined with it), and
/// a read never joins a statement already sent.
struct Fetches {
    config: tokio_postgres::Config,
    tls: postgres_openssl::MakeTlsConnector,
    /// The blocking transactions' idle connections: a restart this one finds first left
    /// them dead too.
    pool: Arc<Mutex<Vec<Conn>>>,
    queue: Mutex<FetchQueue>,
}

/// What waits for the next statements, and the connection while none is out.
#[derive(Default)]
struct FetchQueue {
    /// A task is sending (it stops when nothing is left).
    sending: bool,
    asked: Asked,
    conn: Option<FetchConn>,
}

/// Reads, each with the identifiers it wants, and reservations of one stride each, in the
/// order they were asked.
#[derive(Default)]
struct Asked {
    reads: Vec<(Vec<String>, FetchAnswer)>,
    strides: Vec<StrideAnswer>,
}

impl Asked {
    fn is_empty(&self) -> bool {
        self.reads.is_empty() && self.strides.is_empty()
    }

    fn fail(self, why: &str) {
        for (_, answer) in self.reads {
            let _ = answer.send(Err(StoreError::Backend(why.into())));
        }
        for answer in self.strides {
            let _ = answer.send(Err(StoreError::Backend(why.into())));
        }
    }
}

type FetchAnswer = tokio::sync::oneshot::Sender<Result<Vec<(String, Stored)>, StoreError>>;
type StrideAnswer = tokio::sync::oneshot::Sender<Result<u64, StoreError>>;

/// The fetching connection and its prepared statements.
struct FetchConn {
    client: Client,
    read: Statement,
    strides: Statement,
}

/// The sending task's asks in hand. Should the task end before it has answered them (a
/// panic, a runtime shutting down), they and the queued ones are answered with an error, and
/// [`FetchQueue::sending`] is cleared, so that the next ask starts another task.
struct Sending<'a> {
    fetches: &'a Fetches,
    taken: Asked,
    /// It stopped with the queue empty, having cleared `sending` itself.
    stopped: bool,
}

const ABANDONED: &str = "the read of the record was abandoned";

impl Drop for Sending<'_> {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        let mut q = self.fetches.lock();
        q.sending = false;
        let asked = std::mem::take(&mut q.asked);
        drop(q);
        std::mem::take(&mut self.taken).fail(ABANDONED);
        asked.fail(ABANDONED);
    }
}

impl Fetches {
    fn lock(&self) -> std::sync::MutexGuard<'_, FetchQueue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue an ask, and start the sending task if none runs.
    fn ask(self: &Arc<Self>, runtime: &tokio::runtime::Handle, queue: impl FnOnce(&mut Asked)) {
        let start = {
            let mut q = self.lock();
            queue(&mut q.asked);
            !std::mem::replace(&mut q.sending, true)
        };
        if start {
            runtime.spawn(self.clone().send_all());
        }
    }

    /// Send what was asked, one round at a time, until nothing is left.
    async fn send_all(self: Arc<Self>) {
        let mut sending = Sending {
            fetches: &self,
            taken: Asked::default(),
            stopped: false,
        };
        loop {
            let mut conn = {
                let mut q = self.lock();
                if q.asked.is_empty() {
                    // under the lock a new ask takes to queue itself and see whether a task
                    // sends: it either was taken above, or finds none and starts one
                    q.sending = false;
                    sending.stopped = true;
                    return;
                }
                sending.taken = std::mem::take(&mut q.asked);
                q.conn.take()
            };
            let mut ids: Vec<&str> = sending
                .taken
                .reads
                .iter()
                .flat_map(|(ids, _)| ids.iter().map(String::as_str))
                .filter(|id| !id.contains('\0'))
                .collect();
            ids.sort_unstable();
            ids.dedup();
            let strides = sending.taken.strides.len();
            let out = self.round(&mut conn, &ids, strides).await;
            self.lock().conn = conn;
            let Asked { reads, strides } = std::mem::take(&mut sending.taken);
            let (rows, firsts) = match out {
                Ok((rows, firsts)) => (Ok(records_of(&rows)), strides_of(&firsts, strides.len())),
                Err(e) => (Err(db_error(&e)), Err(db_error(&e))),
            };
            for (wanted, answer) in reads {
                let mine = rows.as_ref().map_err(Clone::clone).map(|rows| {
                    rows.iter()
                        .filter(|(id, _)| wanted.contains(id))
                        .cloned()
                        .collect()
                });
                let _ = answer.send(mine);
            }
            // in the order asked, the strides in the order the sequence gave them (as many)
            match firsts {
                Ok(firsts) => {
                    for (answer, first) in strides.into_iter().zip(firsts) {
                        let _ = answer.send(Ok(first));
                    }
                }
                Err(e) => {
                    for answer in strides {
                        let _ = answer.send(Err(e.clone()));
                    }
                }
            }
        }
    }

    /// One round on `conn` (connected first if it is not): the rows of the records `ids`
    /// ([`READ_MANY`]) and of `strides` strides ([`NEXT_STRIDES`]). A connection the
    /// database dropped meanwhile is replaced once; one that failed is not kept.
    async fn round(
        &self,
        conn: &mut Option<FetchConn>,
        ids: &[&str],
        strides: usize,
    ) -> Result<(Vec<Row>, Vec<Row>), Fail> {
        // (never near it: one per Create waiting; past it, the last ones hear "too few")
        let count = i32::try_from(strides).unwrap_or(i32::MAX);
        for attempt in 0..2 {
            let fresh = conn.is_none();
            let c = match conn {
                Some(c) => c,
                None => conn.insert(self.connect().await?),
            };
            // both sent before either answer is awaited: one round trip
            let both = async {
                let reads = async {
                    match ids.is_empty() {
                        true => Ok(Vec::new()),
                        false => c.client.query(&c.read, &[&ids]).await,
                    }
                };
                let strides = async {
                    match count {
                        0 => Ok(Vec::new()),
                        _ => c.client.query(&c.strides, &[&count]).await,
                    }
                };
                let (r, s) = tokio::join!(reads, strides);
                Ok::<_, tokio_postgres::Error>((r?, s?))
            };
            return match tokio::time::timeout(STATEMENT_TIMEOUT, both).await {
                Ok(Ok(out)) => Ok(out),
                Ok(Err(e)) => {
                    let e = Fail::Db(e);
                    if broken(&e) {
                        *conn = None;
                    }
                    if stale(&e) && !fresh && attempt == 0 {
                        // the transactions' idle connections died with this one, and a
                        // Create's first statement on one, its commit, could not be retried
                        drop_idle(&self.pool);
                        continue;
                    }
                    Err(e)
                }
                Err(_) => {
                    *conn = None;
                    Err(Fail::TimedOut)
                }
            };
        }
        Err(Fail::NoRuntime("no connection".into()))
    }

    async fn connect(&self) -> Result<FetchConn, Fail> {
        let (client, connection) = tokio::time::timeout(
            CONNECT_TIMEOUT + STATEMENT_TIMEOUT,
            self.config.connect(self.tls.clone()),
        )
        .await
        .map_err(|_| Fail::TimedOut)?
        .map_err(Fail::Db)?;
        // its I/O: a task of the server's runtime, ended when the client is dropped
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let prepare = |sql| {
            let client = &client;
            async move {
                tokio::time::timeout(STATEMENT_TIMEOUT, client.prepare(sql))
                    .await
                    .map_err(|_| Fail::TimedOut)?
                    .map_err(Fail::Db)
            }
        };
        let read = prepare(READ_MANY).await?;
        let strides = prepare(NEXT_STRIDES).await?;
        Ok(FetchConn {
            client,
            read,
            strides,
        })
    }
}

/// Close every idle connection of `pool` (see [`PostgresEngine::drop_idle`]).
fn drop_idle(pool: &Mutex<Vec<Conn>>) {
    let idle = std::mem::take(&mut *pool.lock().unwrap_or_else(|p| p.into_inner()));
    // their slots are given back under the slots' lock: never while holding the pool's
    drop(idle);
}

/// Strides of the identifier sequence, one per row.
const NEXT_STRIDES: &str = "SELECT nextval('kmip_ids') FROM generate_series(1, $1::int4)";

/// The first identifiers of `n` strides, from the rows of [`NEXT_STRIDES`], in the order the
/// sequence gave them.
fn strides_of(rows: &[Row], n: usize) -> Result<Vec<u64>, StoreError> {
    let mut firsts = rows
        .iter()
        .map(|r| {
            u64::try_from(r.get::<_, i64>(0))
                .map_err(|_| StoreError::Backend("kmip_ids is negative".into()))
        })
        .collect::<Result<Vec<u64>, _>>()?;
    firsts.sort_unstable();
    if firsts.len() != n {
        return Err(StoreError::Backend("nextval returned too few".into()));
    }
    Ok(firsts)
}

/// Records by identifier, one statement for all.
const READ_MANY: &str = "SELECT id, body, revision FROM kmip_objects WHERE id = ANY($1)";

/// The records in the rows of [`READ_MANY`], with their identifiers.
fn records_of(rows: &[Row]) -> Vec<(String, Stored)> {
    rows.iter()
        .map(|r| (r.get::<_, String>(0), stored(r, 1)))
        .collect()
}

/// A connection and the statements prepared on it.
struct Conn {
    client: Client,
    prepared: HashMap<&'static str, Statement>,
    /// The statements that send held-back writes, by shape (see [`flush_sql`]).
    flushes: HashMap<u8, Statement>,
    /// The runtime its I/O runs on (`None` once dropped).
    rt: Option<tokio::runtime::Runtime>,
    /// Its place among the [`MAX_OPEN`]; given back however the connection ends.
    _slot: Slot,
    /// When it last went back to the pool (or was made).
    idle_since: Instant,
}

impl Drop for Conn {
    /// Its runtime goes without waiting (a connection dropped after a timeout may wait on a
    /// stalled database for ever), and without blocking: it may be dropped on an async worker.
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// How many connections are open, and a wake-up for requests waiting for one.
#[derive(Default)]
struct Slots {
    open: Mutex<usize>,
    freed: Condvar,
}

struct Slot(Arc<Slots>);

impl Drop for Slot {
    fn drop(&mut self) {
        *self.0.open.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
        self.0.freed.notify_one();
    }
}

fn db_error(fail: &Fail) -> StoreError {
    let text = match fail {
        Fail::TimedOut => format!(
            "PostgreSQL did not answer within {} s",
            STATEMENT_TIMEOUT.as_secs()
        ),
        Fail::NoRuntime(why) => format!("the PostgreSQL client cannot start: {why}"),
        // the server's message and SQLSTATE, never a parameter (no record bytes in errors)
        Fail::Db(e) => match e.as_db_error() {
            Some(d) => format!("PostgreSQL: {} (SQLSTATE {})", d.message(), d.code().code()),
            // the client's own errors name their cause apart (a TLS handshake refused: why)
            None => {
                let mut text = format!("PostgreSQL: {e}");
                let mut cause = std::error::Error::source(e);
                while let Some(c) = cause {
                    text.push_str(&format!(": {c}"));
                    cause = c.source();
                }
                text
            }
        },
    };
    // what one statement did wrong (a value past a limit) is a Backend error: its commit's
    // own, which the record layer may try apart from others
    match unavailable(fail) {
        true => StoreError::Unavailable(text),
        false => StoreError::Backend(text),
    }
}

/// Whether a failure is the database's, not a statement's: no answer in time, a connection
/// refused, closed or lost, the server shutting down or out of connections.
fn unavailable(e: &Fail) -> bool {
    match e {
        Fail::Db(d) => {
            d.as_db_error().is_none() || broken(e) || d.code().is_some_and(|c| waited(c.code()))
        }
        Fail::TimedOut | Fail::NoRuntime(_) => true,
    }
}

/// Whether a SQLSTATE says the database could not serve the statement in time: out of
/// resources (class 53), or the statement canceled by the server's own statement timeout
/// (57014) or lock timeout (55P03), which the node sets to its own timeout and which may fire
/// first (attack round 9: a lock held on the records' table then had gathered Creates tried
/// again one by one, each waiting out the timeout anew: 30 s).
fn waited(sqlstate: &str) -> bool {
    sqlstate.starts_with("53") || sqlstate == "57014" || sqlstate == "55P03"
}

/// Why a statement failed: the database said so, or it said nothing in time.
#[derive(Debug)]
enum Fail {
    Db(tokio_postgres::Error),
    /// No answer within [`STATEMENT_TIMEOUT`]: a database stalled (a paused machine, a frozen
    /// disk) keeps the TCP connection alive, so no socket option notices; this does.
    TimedOut,
    /// The client's threads could not start.
    NoRuntime(String),
}

/// A runtime for one connection: the calling thread drives the connection's I/O while it
/// waits for an answer (no hop to another thread per statement), as the blocking `postgres`
/// crate does, plus a deadline.
fn connection_runtime() -> Result<tokio::runtime::Runtime, Fail> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Fail::NoRuntime(e.to_string()))
}

/// Wait for `f` on the connection's runtime, at most [`STATEMENT_TIMEOUT`].
fn block<T>(
    rt: &Option<tokio::runtime::Runtime>,
    f: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, Fail> {
    let Some(rt) = rt else {
        return Err(Fail::NoRuntime("the connection is closed".into()));
    };
    rt.block_on(async {
        match tokio::time::timeout(STATEMENT_TIMEOUT, f).await {
            Ok(r) => r.map_err(Fail::Db),
            Err(_) => Err(Fail::TimedOut),
        }
    })
}

/// Whether running the transaction again may succeed: it lost a race between nodes.
fn retryable(e: &Fail) -> bool {
    let Fail::Db(e) = e else { return false };
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    )
}

/// Whether the connection is no longer worth keeping: closed, the server going away, or a
/// statement abandoned half-way.
fn broken(e: &Fail) -> bool {
    let Fail::Db(e) = e else { return true };
    e.is_closed()
        || e.code().is_some_and(|c| {
            let c = c.code();
            c.starts_with("08") || c.starts_with("57P")
        })
}

/// Whether one more try, on a new connection, may succeed: a pooled connection the database
/// closed meanwhile. Not a timeout: a database that did not answer in time would make the
/// request wait as long again.
fn stale(e: &Fail) -> bool {
    matches!(e, Fail::Db(_)) && broken(e)
}

fn i64_of(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Backend("a number past PostgreSQL's bigint".into()))
}

type Param<'a> = &'a (dyn tokio_postgres::types::ToSql + Sync);

impl Conn {
    fn statement(&mut self, sql: &'static str) -> Result<Statement, Fail> {
        if let Some(s) = self.prepared.get(sql) {
            return Ok(s.clone());
        }
        let s = block(&self.rt, self.client.prepare(sql))?;
        self.prepared.insert(sql, s.clone());
        Ok(s)
    }

    /// The statement that sends held-back writes of the kinds in `shape`.
    fn flush_statement(&mut self, shape: u8) -> Result<Statement, Fail> {
        if let Some(s) = self.flushes.get(&shape) {
            return Ok(s.clone());
        }
        let s = block(&self.rt, self.client.prepare(&flush_sql(shape)))?;
        self.flushes.insert(shape, s.clone());
        Ok(s)
    }

    fn rows(&mut self, sql: &'static str, params: &[Param<'_>]) -> Result<Vec<Row>, Fail> {
        let s = self.statement(sql)?;
        block(&self.rt, self.client.query(&s, params))
    }

    /// Statements sent at once and answered in order, one round trip for all: BEGIN if
    /// `begin`, the held-back `writes`, the `query`, COMMIT if `commit`. The first error is
    /// the answer (after a failed statement, the rest of the transaction fails, and its
    /// COMMIT rolls it back).
    fn pipeline(
        &mut self,
        begin: bool,
        writes: Option<(&Statement, &[Param<'_>])>,
        query: Option<(&Statement, &[Param<'_>])>,
        commit: bool,
    ) -> Result<Vec<Row>, Fail> {
        let client = &self.client;
        block(&self.rt, async {
            // biased: each future sends its statement when first polled, so they go out in
            // this order
            let (b, w, q, c) = tokio::join!(
                biased;
                async {
                    match begin {
                        true => client.batch_execute(BEGIN).await,
                        false => Ok(()),
                    }
                },
                async {
                    match writes {
                        Some((s, p)) => client.execute(s, p).await.map(|_| ()),
                        None => Ok(()),
                    }
                },
                async {
                    match query {
                        Some((s, p)) => client.query(s, p).await,
                        None => Ok(Vec::new()),
                    }
                },
                async {
                    match commit {
                        true => client.batch_execute("COMMIT").await,
                        false => Ok(()),
                    }
                },
            );
            b?;
            w?;
            let rows = q?;
            c?;
            Ok(rows)
        })
    }
}

/// A write transaction's isolation: what it reads, it locks (see the module's comment).
const BEGIN: &str = "START TRANSACTION ISOLATION LEVEL READ COMMITTED";

/// Writes a write transaction holds back until its next read or its commit, then sends as
/// one statement: a Create's record and index entries are one statement, not three. Per row,
/// the last write wins, so that no statement touches a row twice.
#[derive(Default)]
struct Pending {
    /// Identifier: the revision and bytes to write, or `None` to delete.
    objects: BTreeMap<String, Option<(i64, Vec<u8>)>>,
    /// (key, identifier): filed (true) or removed (false).
    index: BTreeMap<(Vec<u8>, String), bool>,
    /// Name: the value to set, or `None` to delete.
    values: BTreeMap<String, Option<Vec<u8>>>,
    /// Records deleted since the last flush: one written again at its first revision
    /// replaces a row this statement deletes, and is no new row.
    deleted: std::collections::BTreeSet<String>,
}

/// The parts of a flush statement, one bit each in its shape.
const INDEX_DEL: u8 = 1;
const INDEX_ADD: u8 = 2;
const OBJECT_DEL: u8 = 4;
const OBJECT_PUT: u8 = 8;
const VALUE_DEL: u8 = 16;
const VALUE_PUT: u8 = 32;
/// Rows of records written for the first time (a Create's): plain inserts. The record layer
/// writes a first revision only of a record it knows absent, and a row that is there after
/// all fails the statement, where `ON CONFLICT` would have hidden it, and costs PostgreSQL
/// more per row (a Create's statement ran about a fifth faster without it, in pgbench).
const INDEX_NEW: u8 = 64;
const OBJECT_NEW: u8 = 128;

/// The statement for the parts in `shape`: data-modifying CTEs, run on one snapshot, which
/// is why a row may appear in only one part ([`Pending`] sees to it). Fixed text and
/// parameter numbers only.
fn flush_sql(shape: u8) -> String {
    let mut n = 0;
    let mut p = || {
        n += 1;
        n
    };
    let mut parts = Vec::new();
    if shape & INDEX_DEL != 0 {
        let (a, b) = (p(), p());
        parts.push(format!(
            "DELETE FROM kmip_index WHERE (k, id) IN \
             (SELECT * FROM unnest(${a}::bytea[], ${b}::text[]))"
        ));
    }
    if shape & INDEX_ADD != 0 {
        let (a, b) = (p(), p());
        parts.push(format!(
            "INSERT INTO kmip_index (k, id) SELECT * FROM unnest(${a}::bytea[], ${b}::text[]) \
             ON CONFLICT DO NOTHING"
        ));
    }
    if shape & INDEX_NEW != 0 {
        let (a, b) = (p(), p());
        parts.push(format!(
            "INSERT INTO kmip_index (k, id) SELECT * FROM unnest(${a}::bytea[], ${b}::text[])"
        ));
    }
    if shape & OBJECT_DEL != 0 {
        let a = p();
        parts.push(format!(
            "DELETE FROM kmip_objects WHERE id = ANY(${a}::text[])"
        ));
    }
    if shape & OBJECT_PUT != 0 {
        let (a, b, c) = (p(), p(), p());
        parts.push(format!(
            "INSERT INTO kmip_objects (id, revision, body) \
             SELECT * FROM unnest(${a}::text[], ${b}::bigint[], ${c}::bytea[]) \
             ON CONFLICT (id) DO UPDATE SET revision = excluded.revision, body = excluded.body"
        ));
    }
    if shape & OBJECT_NEW != 0 {
        let (a, b, c) = (p(), p(), p());
        parts.push(format!(
            "INSERT INTO kmip_objects (id, revision, body) \
             SELECT * FROM unnest(${a}::text[], ${b}::bigint[], ${c}::bytea[])"
        ));
    }
    if shape & VALUE_DEL != 0 {
        let a = p();
        parts.push(format!(
            "DELETE FROM kmip_values WHERE name = ANY(${a}::text[])"
        ));
    }
    if shape & VALUE_PUT != 0 {
        let (a, b) = (p(), p());
        parts.push(format!(
            "INSERT INTO kmip_values (name, value) SELECT * FROM unnest(${a}::text[], ${b}::bytea[]) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value"
        ));
    }
    let last = parts.pop().unwrap_or_default();
    if parts.is_empty() {
        return last;
    }
    let ctes: Vec<String> = parts
        .into_iter()
        .enumerate()
        .map(|(i, s)| format!("w{i} AS ({s})"))
        .collect();
    format!("WITH {} {last}", ctes.join(", "))
}

/// The parameters of a flush, as arrays, in [`flush_sql`]'s order.
#[derive(Default)]
struct FlushArgs {
    index_del: (Vec<Vec<u8>>, Vec<String>),
    index_add: (Vec<Vec<u8>>, Vec<String>),
    index_new: (Vec<Vec<u8>>, Vec<String>),
    object_del: Vec<String>,
    object_put: (Vec<String>, Vec<i64>, Vec<Vec<u8>>),
    object_new: (Vec<String>, Vec<i64>, Vec<Vec<u8>>),
    value_del: Vec<String>,
    value_put: (Vec<String>, Vec<Vec<u8>>),
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.objects.is_empty() && self.index.is_empty() && self.values.is_empty()
    }

    fn take(&mut self) -> FlushArgs {
        let mut a = FlushArgs::default();
        let deleted = std::mem::take(&mut self.deleted);
        // written at its first revision, and not over a row this statement deletes
        let new: std::collections::BTreeSet<String> = self
            .objects
            .iter()
            .filter(|(id, o)| matches!(o, Some((1, _))) && !deleted.contains(*id))
            .map(|(id, _)| id.clone())
            .collect();
        for ((k, id), filed) in std::mem::take(&mut self.index) {
            let to = match (filed, new.contains(&id)) {
                (true, true) => &mut a.index_new,
                (true, false) => &mut a.index_add,
                (false, _) => &mut a.index_del,
            };
            to.0.push(k);
            to.1.push(id);
        }
        for (id, o) in std::mem::take(&mut self.objects) {
            match o {
                Some((revision, body)) => {
                    let to = match new.contains(&id) {
                        true => &mut a.object_new,
                        false => &mut a.object_put,
                    };
                    to.0.push(id);
                    to.1.push(revision);
                    to.2.push(body);
                }
                None => a.object_del.push(id),
            }
        }
        for (name, v) in std::mem::take(&mut self.values) {
            match v {
                Some(v) => {
                    a.value_put.0.push(name);
                    a.value_put.1.push(v);
                }
                None => a.value_del.push(name),
            }
        }
        a
    }
}

impl FlushArgs {
    fn shape(&self) -> u8 {
        let mut s = 0;
        let mut set = |bit, present: bool| {
            if present {
                s |= bit;
            }
        };
        set(INDEX_DEL, !self.index_del.0.is_empty());
        set(INDEX_ADD, !self.index_add.0.is_empty());
        set(INDEX_NEW, !self.index_new.0.is_empty());
        set(OBJECT_DEL, !self.object_del.is_empty());
        set(OBJECT_PUT, !self.object_put.0.is_empty());
        set(OBJECT_NEW, !self.object_new.0.is_empty());
        set(VALUE_DEL, !self.value_del.is_empty());
        set(VALUE_PUT, !self.value_put.0.is_empty());
        s
    }

    fn params(&self) -> Vec<Param<'_>> {
        let mut p: Vec<Param<'_>> = Vec::new();
        if !self.index_del.0.is_empty() {
            p.push(&self.index_del.0);
            p.push(&self.index_del.1);
        }
        for (ks, ids) in [&self.index_add, &self.index_new] {
            if !ks.is_empty() {
                p.push(ks);
                p.push(ids);
            }
        }
        if !self.object_del.is_empty() {
            p.push(&self.object_del);
        }
        for (ids, revisions, bodies) in [&self.object_put, &self.object_new] {
            if !ids.is_empty() {
                p.push(ids);
                p.push(revisions);
                p.push(bodies);
            }
        }
        if !self.value_del.is_empty() {
            p.push(&self.value_del);
        }
        if !self.value_put.0.is_empty() {
            p.push(&self.value_put.0);
            p.push(&self.value_put.1);
        }
        p
    }
}

/// Reads, and for a write transaction writes, on one connection, keeping the first database
/// error for the engine to judge (retry, drop the connection) once the record layer's
/// closure returns.
///
/// A read transaction runs each statement on its own. A write transaction begins with its
/// first read, BEGIN and the read sent together, and holds its writes back ([`Pending`]) until
/// the next read or the commit, sent with them: a Create, which reads nothing, is one
/// statement, durable when answered, without BEGIN or COMMIT.
struct Session<'c> {
    conn: RefCell<&'c mut Conn>,
    /// Where a reader's record reads join other readers' (none for a write transaction).
    gather: Option<&'c Gather<Stored>>,
    failure: RefCell<Option<Fail>>,
    pending: RefCell<Pending>,
    /// A write transaction: what it reads of records and values, it locks until it ends.
    writing: bool,
    /// BEGIN was sent.
    begun: Cell<bool>,
    /// A statement that may have committed was sent: after a lost connection, whether it did
    /// is unknown, and the transaction is not run again.
    committing: Cell<bool>,
}

impl<'c> Session<'c> {
    fn reader(conn: &'c mut Conn) -> Self {
        Session {
            conn: RefCell::new(conn),
            gather: None,
            failure: RefCell::new(None),
            pending: RefCell::default(),
            writing: false,
            begun: Cell::new(false),
            committing: Cell::new(false),
        }
    }

    /// A reader whose record reads are fetched together with other readers' in `gather`.
    fn gathering(conn: &'c mut Conn, gather: &'c Gather<Stored>) -> Self {
        Session {
            gather: Some(gather),
            ..Session::reader(conn)
        }
    }

    fn writer(conn: &'c mut Conn) -> Self {
        Session {
            writing: true,
            ..Session::reader(conn)
        }
    }

    fn note(&self, e: Fail) -> StoreError {
        let out = db_error(&e);
        self.failure.borrow_mut().get_or_insert(e);
        out
    }

    /// Run `query` (prepared as `statement`), preceded by what the transaction has not sent
    /// yet, and followed by COMMIT if `commit`.
    fn send(
        &self,
        statement: Option<Statement>,
        params: &[Param<'_>],
        commit: bool,
    ) -> Result<Vec<Row>, StoreError> {
        let mut conn = self.conn.borrow_mut();
        let args = self.pending.borrow_mut().take();
        let shape = args.shape();
        let flush = match shape {
            0 => None,
            _ => Some(conn.flush_statement(shape).map_err(|e| self.note(e))?),
        };
        let flush_params = args.params();
        // a write's first statement begins it, unless it is the only one: a lone statement
        // is a transaction of its own
        let begin = self.writing && !self.begun.get() && !(commit && statement.is_none());
        if !self.writing && statement.is_none() {
            return Ok(Vec::new());
        }
        if begin {
            self.begun.set(true);
        }
        let commit = commit && self.begun.get();
        if commit || (self.writing && !self.begun.get()) {
            self.committing.set(true);
        }
        let out = conn.pipeline(
            begin,
            flush.as_ref().map(|s| (s, flush_params.as_slice())),
            statement.as_ref().map(|s| (s, params)),
            commit,
        );
        out.map_err(|e| self.note(e))
    }

    fn rows(&self, sql: &'static str, params: &[Param<'_>]) -> Result<Vec<Row>, StoreError> {
        let statement = {
            let mut conn = self.conn.borrow_mut();
            conn.statement(sql).map_err(|e| self.note(e))?
        };
        self.send(Some(statement), params, false)
    }

    /// Send what is held back, and COMMIT if the transaction began.
    fn commit(&self) -> Result<(), StoreError> {
        if self.begun.get() || !self.pending.borrow().is_empty() {
            self.send(None, &[], true)?;
        }
        Ok(())
    }

    fn ids(&self, sql: &'static str, params: &[Param<'_>]) -> Result<Vec<String>, StoreError> {
        Ok(self
            .rows(sql, params)?
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect())
    }
}

/// The search as one statement. With the caller's reach (`any`): its objects, each checked
/// against every key of `all` through the primary key, so that the work is bounded by what the
/// caller may see. Without: the `INTERSECT` of one select per key. Built from fixed text and
/// parameter numbers only.
fn search_sql(all: usize, any: bool) -> String {
    if any {
        let mut sql = String::from("SELECT DISTINCT r.id FROM kmip_index r WHERE r.k = ANY($1)");
        for i in 2..=all + 1 {
            sql.push_str(&format!(
                " AND EXISTS (SELECT 1 FROM kmip_index x WHERE x.k = ${i} AND x.id = r.id)"
            ));
        }
        return sql;
    }
    (1..=all)
        .map(|i| format!("SELECT id FROM kmip_index WHERE k = ${i}"))
        .collect::<Vec<_>>()
        .join(" INTERSECT ")
}

impl Session<'_> {
    fn object_alone(&self, id: &str) -> Result<Option<Stored>, StoreError> {
        let sql = match self.writing {
            true => "SELECT body, revision FROM kmip_objects WHERE id = $1 FOR UPDATE",
            false => "SELECT body, revision FROM kmip_objects WHERE id = $1",
        };
        let rows = self.rows(sql, &[&id])?;
        Ok(rows.first().map(|r| stored(r, 0)))
    }
}

/// The record in `row`'s columns `at` (body) and `at + 1` (revision).
fn stored(row: &Row, at: usize) -> Stored {
    Stored {
        bytes: row.get(at),
        revision: u64::try_from(row.get::<_, i64>(at + 1)).unwrap_or(0),
    }
}

impl ReadTxn for Session<'_> {
    fn object(&self, id: &str) -> Result<Option<Stored>, StoreError> {
        if self.writing {
            // a record this transaction writes: as it will be (a read would flush it first)
            if let Some(o) = self.pending.borrow().objects.get(id) {
                return Ok(o.as_ref().map(|(revision, body)| Stored {
                    bytes: body.clone(),
                    revision: u64::try_from(*revision).unwrap_or(0),
                }));
            }
        }
        // PostgreSQL's text cannot hold a NUL, so no stored name has one (and a statement
        // with one fails: for every reader gathered with it); so in `has` and `value` too
        if id.contains('\0') {
            return Ok(None);
        }
        if let Some(gather) = self.gather {
            // one statement for the records every reader asked for meanwhile; should it fail,
            // each reads on its own, so that a stale connection is retried as before
            return gather.read(
                id,
                &mut |ids| {
                    let rows = self.rows(READ_MANY, &[&ids]).map_err(|error| FetchFailed {
                        error,
                        // the statement failed, perhaps for one reader's value, or its
                        // connection: each reads on its own, and only a reader whose own
                        // read fails sees an error. A database that did not answer would
                        // not answer them either.
                        alone: !matches!(*self.failure.borrow(), Some(Fail::TimedOut)),
                    })?;
                    Ok(records_of(&rows).into_iter().collect())
                },
                &mut || self.object_alone(id),
            );
        }
        self.object_alone(id)
    }

    fn ids_with(&self, key: &[u8]) -> Result<Vec<String>, StoreError> {
        self.ids("SELECT id FROM kmip_index WHERE k = $1", &[&key])
    }

    fn has(&self, key: &[u8], id: &str) -> Result<bool, StoreError> {
        if id.contains('\0') {
            return Ok(false);
        }
        let rows = self.rows(
            "SELECT 1 FROM kmip_index WHERE k = $1 AND id = $2",
            &[&key, &id],
        )?;
        Ok(!rows.is_empty())
    }

    fn search(&self, all: &[Vec<u8>], any: Option<&[Vec<u8>]>) -> Result<Vec<String>, StoreError> {
        if all.is_empty() && any.is_none() {
            return self.all_ids();
        }
        let sql = search_sql(all.len(), any.is_some());
        let any_keys: Vec<&[u8]> = any.unwrap_or(&[]).iter().map(Vec::as_slice).collect();
        let mut params: Vec<Param<'_>> = Vec::new();
        if any.is_some() {
            params.push(&any_keys);
        }
        params.extend(all.iter().map(|k| k as Param<'_>));
        // not a cached statement: its text depends on the number of keys
        let statement = {
            let mut conn = self.conn.borrow_mut();
            let conn = &mut **conn;
            block(&conn.rt, conn.client.prepare(&sql)).map_err(|e| self.note(e))?
        };
        Ok(self
            .send(Some(statement), &params, false)?
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect())
    }

    fn all_ids(&self) -> Result<Vec<String>, StoreError> {
        self.ids("SELECT id FROM kmip_objects", &[])
    }

    fn value(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if name.contains('\0') {
            return Ok(None);
        }
        if self.writing {
            if let Some(v) = self.pending.borrow().values.get(name) {
                return Ok(v.clone());
            }
        }
        let sql = match self.writing {
            true => "SELECT value FROM kmip_values WHERE name = $1 FOR UPDATE",
            false => "SELECT value FROM kmip_values WHERE name = $1",
        };
        let rows = self.rows(sql, &[&name])?;
        Ok(rows.first().map(|r| r.get(0)))
    }

    fn values_with_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        if prefix.contains('\0') {
            return Ok(Vec::new());
        }
        let rows = self.rows(
            "SELECT name, value FROM kmip_values WHERE starts_with(name, $1) ORDER BY name",
            &[&prefix],
        )?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}

impl WriteTxn for Session<'_> {
    fn put_object(&mut self, id: &str, stored: &Stored) -> Result<(), StoreError> {
        let revision = i64_of(stored.revision)?;
        self.pending
            .get_mut()
            .objects
            .insert(id.to_owned(), Some((revision, stored.bytes.clone())));
        Ok(())
    }

    fn delete_object(&mut self, id: &str) -> Result<(), StoreError> {
        let pending = self.pending.get_mut();
        pending.objects.insert(id.to_owned(), None);
        pending.deleted.insert(id.to_owned());
        Ok(())
    }

    fn add_index(&mut self, key: &[u8], id: &str) -> Result<(), StoreError> {
        self.pending
            .get_mut()
            .index
            .insert((key.to_vec(), id.to_owned()), true);
        Ok(())
    }

    fn remove_index(&mut self, key: &[u8], id: &str) -> Result<(), StoreError> {
        self.pending
            .get_mut()
            .index
            .insert((key.to_vec(), id.to_owned()), false);
        Ok(())
    }

    fn put_value(&mut self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        self.pending
            .get_mut()
            .values
            .insert(name.to_owned(), Some(value.to_vec()));
        Ok(())
    }

    fn delete_value(&mut self, name: &str) -> Result<(), StoreError> {
        self.pending.get_mut().values.insert(name.to_owned(), None);
        Ok(())
    }

    /// A transaction-scoped advisory lock on the key's digest: the transactions of every node
    /// that check one name take turns, and each sees the ones before it committed.
    fn lock_key(&mut self, key: &[u8]) -> Result<(), StoreError> {
        let d = openssl::sha::sha256(key);
        let n = i64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
        self.rows("SELECT pg_advisory_xact_lock($1)", &[&n])
            .map(|_| ())
    }
}

impl PostgresEngine {
    /// Connect to the database at `url` (a `postgres://` URL: several hosts, `sslmode`,
    /// `target_session_attrs` as libpq reads them), trying again for `retry_for` while it is
    /// unreachable, and create or check the schema.
    pub fn connect(url: &str, retry_for: Duration) -> Result<PostgresEngine, StoreError> {
        let (url, verify) = tls_options(url)?;
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Backend(format!("the PostgreSQL URL does not parse: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(10))
            .keepalives_interval(Duration::from_secs(2))
            .keepalives_retries(3)
            .tcp_user_timeout(STATEMENT_TIMEOUT);
        let timeouts = format!(
            "-c statement_timeout={ms} -c lock_timeout={ms} -c idle_in_transaction_session_timeout={ms}",
            ms = STATEMENT_TIMEOUT.as_millis()
        );
        let options = match config.get_options() {
            Some(o) => format!("{o} {timeouts}"),
            None => timeouts,
        };
        config.options(&options);
        if config.get_application_name().is_none() {
            config.application_name("kmip-server");
        }
        let tls = tls_connector(&verify)?;
        let shown = shown(&config);
        let pool = Arc::new(Mutex::new(Vec::new()));
        let engine = PostgresEngine {
            config: config.clone(),
            tls: tls.clone(),
            pool: pool.clone(),
            reads: Gather::default(),
            strides: Gather::default(),
            askers: std::sync::atomic::AtomicU64::new(0),
            fetches: Arc::new(Fetches {
                config,
                tls,
                pool,
                queue: Mutex::default(),
            }),
            slots: Arc::default(),
            shown,
        };
        let started = Instant::now();
        let mut wait = Duration::from_millis(200);
        loop {
            match engine.prepare_schema() {
                Ok(()) => return Ok(engine),
                Err(e) if started.elapsed() + wait < retry_for => {
                    eprintln!(
                        "kmip-server: PostgreSQL at {} not ready ({e}); trying again in {} ms",
                        engine.shown,
                        wait.as_millis()
                    );
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    return Err(StoreError::Backend(format!(
                        "PostgreSQL at {}: {e} (gave up after {} s)",
                        engine.shown,
                        started.elapsed().as_secs()
                    )))
                }
            }
        }
    }

    /// Where the database is, without the password: for messages.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    fn prepare_schema(&self) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let fail = |e: Fail| db_error(&e);
        let rt = &conn.rt;
        let tx = block(rt, conn.client.transaction()).map_err(fail)?;
        // nodes starting together: one creates, the others wait for it and check
        block(
            rt,
            tx.batch_execute("SELECT pg_advisory_xact_lock(7254010)"),
        )
        .map_err(fail)?;
        block(rt, tx.batch_execute(SCHEMA)).map_err(fail)?;
        let version = i64_of(SCHEMA_VERSION)?;
        block(
            rt,
            tx.execute(
                "INSERT INTO kmip_meta (name, value) VALUES ('schema_version', $1) \
             ON CONFLICT (name) DO NOTHING",
                &[&version],
            ),
        )
        .map_err(fail)?;
        let found: i64 = block(
            rt,
            tx.query_one(
                "SELECT value FROM kmip_meta WHERE name = 'schema_version'",
                &[],
            ),
        )
        .map_err(fail)?
        .get(0);
        block(rt, tx.commit()).map_err(fail)?;
        if found != version {
            return Err(StoreError::Schema {
                found: u64::try_from(found).unwrap_or(0),
                expected: SCHEMA_VERSION,
            });
        }
        self.give_back(conn);
        Ok(())
    }

    /// The first identifiers of `n` strides of the sequence, in the order it gave them: a
    /// sequence takes no lock between nodes, never gives a value twice (after a crash too),
    /// and gives them in the order the nodes asked, so that identifiers sort by creation across
    /// nodes (Locate answers newest first).
    fn next_strides(&self, n: usize) -> Result<Vec<u64>, StoreError> {
        let count = i32::try_from(n).map_err(|_| StoreError::Backend("too many strides".into()))?;
        for attempt in 0..2 {
            let mut conn = self.conn()?;
            let out = conn.rows(NEXT_STRIDES, &[&count]);
            match out {
                Ok(rows) => {
                    self.give_back(conn);
                    return strides_of(&rows, n);
                }
                Err(e) if stale(&e) && attempt == 0 => {
                    self.drop_idle();
                    continue;
                }
                Err(e) => return Err(db_error(&e)),
            }
        }
        Err(StoreError::Backend("PostgreSQL: no connection".into()))
    }

    fn conn(&self) -> Result<Conn, StoreError> {
        let deadline = Instant::now() + STATEMENT_TIMEOUT;
        let mut open = self.slots.open.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let idle = self.pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
            match idle {
                Some(c) if !c.client.is_closed() => return Ok(c),
                // a closed one gives its slot back as it goes
                Some(closed) => {
                    drop(open);
                    drop(closed);
                    open = self.slots.open.lock().unwrap_or_else(|p| p.into_inner());
                    continue;
                }
                None => {}
            }
            if *open < MAX_OPEN {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(StoreError::Backend(format!(
                    "all {MAX_OPEN} connections to PostgreSQL are busy"
                )));
            }
            open = self
                .slots
                .freed
                .wait_timeout(open, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        *open += 1;
        drop(open);
        let slot = Slot(self.slots.clone());
        let rt = Some(connection_runtime().map_err(|e| db_error(&e))?);
        let (client, connection) =
            block(&rt, self.config.connect(self.tls.clone())).map_err(|e| db_error(&e))?;
        // the connection's I/O: a task of the connection's runtime, run whenever a statement
        // waits for its answer
        if let Some(rt) = &rt {
            rt.spawn(async move {
                let _ = connection.await;
            });
        }
        Ok(Conn {
            client,
            prepared: HashMap::new(),
            flushes: HashMap::new(),
            rt,
            _slot: slot,
            idle_since: Instant::now(),
        })
    }

    /// Close every idle connection: one the database dropped (a restart) says the others
    /// went with it, and each would fail a request of its own before the pool was fresh.
    fn drop_idle(&self) {
        drop_idle(&self.pool);
    }

    fn give_back(&self, mut conn: Conn) {
        conn.idle_since = Instant::now();
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < POOL_IDLE && !conn.client.is_closed() {
            pool.push(conn);
            drop(pool);
            // a request waiting for a free slot takes this one
            self.slots.freed.notify_one();
        } else {
            // its slot is given back under the slots' lock: never while holding the pool's
            drop(pool);
            drop(conn);
        }
    }
}

/// How the database's certificate is checked, as libpq's `sslmode` and `sslrootcert` say.
#[derive(Debug, PartialEq, Eq)]
struct Verify {
    /// The certificate chains to a trusted CA (`verify-ca`, `verify-full`, or `require` and
    /// `prefer` given `sslrootcert`, as libpq does).
    chain: bool,
    /// And names the host connected to (`verify-full`).
    host: bool,
    /// The trusted CAs (PEM) instead of the system's (`sslrootcert=FILE`).
    roots: Option<String>,
}

/// The URL without what the PostgreSQL client does not read itself (`sslmode=verify-ca` and
/// `verify-full`, which it reads as `require`, and `sslrootcert`), and how to check the
/// certificate.
fn tls_options(url: &str) -> Result<(String, Verify), StoreError> {
    let mut verify = Verify {
        chain: false,
        host: false,
        roots: None,
    };
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), verify));
    };
    let mut kept = Vec::new();
    for param in query.split('&') {
        let (key, value) = param.split_once('=').unwrap_or((param, ""));
        match (key, value) {
            ("sslmode", "verify-ca") => {
                verify.chain = true;
                kept.push("sslmode=require".to_owned());
            }
            ("sslmode", "verify-full") => {
                (verify.chain, verify.host) = (true, true);
                kept.push("sslmode=require".to_owned());
            }
            ("sslrootcert", file) => {
                verify.chain = true;
                verify.roots = Some(percent_decoded(file).ok_or_else(|| {
                    StoreError::Backend("the PostgreSQL URL's sslrootcert does not parse".into())
                })?);
            }
            _ => kept.push(param.to_owned()),
        }
    }
    let url = match kept.is_empty() {
        true => base.to_owned(),
        false => format!("{base}?{}", kept.join("&")),
    };
    Ok((url, verify))
}

/// `%XX` escapes decoded (a file name in a URL).
fn percent_decoded(s: &str) -> Option<String> {
    let mut out = Vec::new();
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next()?, bytes.next()?];
            out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

/// The TLS client for connections to the database (used when the server offers TLS, and
/// required with `sslmode=require` and above). Like libpq, `require` alone encrypts without
/// checking the certificate: name the CA (`sslrootcert`) or use `verify-full`.
fn tls_connector(verify: &Verify) -> Result<postgres_openssl::MakeTlsConnector, StoreError> {
    use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
    let tls_error =
        |e: openssl::error::ErrorStack| StoreError::Backend(format!("TLS for PostgreSQL: {e}"));
    let mut builder = SslConnector::builder(SslMethod::tls()).map_err(tls_error)?;
    if verify.chain {
        builder.set_verify(SslVerifyMode::PEER);
        if let Some(file) = &verify.roots {
            let pem = std::fs::read(file).map_err(|e| {
                StoreError::Backend(format!("PostgreSQL's CA file (sslrootcert) {file}: {e}"))
            })?;
            let certs = openssl::x509::X509::stack_from_pem(&pem).map_err(tls_error)?;
            if certs.is_empty() {
                return Err(StoreError::Backend(format!(
                    "PostgreSQL's CA file (sslrootcert) {file} holds no certificate"
                )));
            }
            // these CAs only, not the system's as well
            let mut store = openssl::x509::store::X509StoreBuilder::new().map_err(tls_error)?;
            for c in certs {
                store.add_cert(c).map_err(tls_error)?;
            }
            builder.set_cert_store(store.build());
        }
    } else {
        builder.set_verify(SslVerifyMode::NONE);
    }
    let mut tls = postgres_openssl::MakeTlsConnector::new(builder.build());
    let host = verify.host;
    tls.set_callback(move |c, _| {
        c.set_verify_hostname(host);
        Ok(())
    });
    Ok(tls)
}

/// The URL's hosts, ports and database, for messages: never the password.
fn shown(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let host = match h {
                tokio_postgres::config::Host::Tcp(h) => h.clone(),
                tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
            };
            let port = config
                .get_ports()
                .get(i)
                .or(config.get_ports().first())
                .copied()
                .unwrap_or(5432);
            format!("{host}:{port}")
        })
        .collect();
    format!(
        "{}/{}",
        hosts.join(","),
        config.get_dbname().unwrap_or_default()
    )
}

impl Engine for PostgresEngine {
    fn read(
        &self,
        f: &mut dyn FnMut(&dyn ReadTxn) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        // a pooled connection the database has dropped fails its first statement: one more
        // try, on a new connection
        for attempt in 0..2 {
            let mut conn = self.conn()?;
            let session = Session::gathering(&mut conn, &self.reads);
            let out = f(&session);
            let failure = session.failure.into_inner();
            match failure {
                Some(e) if stale(&e) && attempt == 0 => {
                    self.drop_idle();
                    continue;
                }
                Some(e) if broken(&e) => return Err(db_error(&e)),
                _ => {
                    self.give_back(conn);
                    return out;
                }
            }
        }
        Err(StoreError::Backend("PostgreSQL: no connection".into()))
    }

    fn write(
        &self,
        f: &mut dyn FnMut(&mut dyn WriteTxn) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut conn = self.conn()?;
            // a connection that sat idle may have died with a database restart, and a
            // Create's first statement is its commit, which could not be run again: one that
            // was idle a while is asked first (under load, none is, and none pays the round
            // trip)
            if conn.idle_since.elapsed() > IDLE_CHECK {
                if let Err(e) = block(&conn.rt, conn.client.simple_query("")) {
                    if stale(&e) && attempt < 2 {
                        self.drop_idle();
                        continue;
                    }
                    return Err(db_error(&e));
                }
            }
            let run = locking(&mut conn, f);
            match run {
                Ok(()) => {
                    self.give_back(conn);
                    return Ok(());
                }
                Err(Failed {
                    failure: Some(e), ..
                }) if retryable(&e) && attempt < MAX_ATTEMPTS => {
                    self.give_back(conn);
                    // another node won the race: back off a little, longer each time
                    std::thread::sleep(Duration::from_millis(u64::from(attempt) * 3));
                }
                // a stale pooled connection: the server ended the transaction, and no COMMIT
                // was sent, so nothing was written
                Err(Failed {
                    failure: Some(e),
                    committing: false,
                    ..
                }) if stale(&e) && attempt < 2 => self.drop_idle(),
                Err(Failed {
                    error,
                    failure,
                    committing,
                    ..
                }) => {
                    let lost = failure.as_ref().is_some_and(broken);
                    if lost {
                        // the others idle beside it likely went the same way
                        self.drop_idle();
                    } else {
                        self.give_back(conn);
                    }
                    // the COMMIT went out and no answer came back: it may have been made,
                    // and saying "nothing was done" would have the client do it twice
                    if committing && lost {
                        return Err(StoreError::OutcomeUnknown(error.to_string()));
                    }
                    return Err(error);
                }
            }
        }
    }

    fn reserve_ids(&self, n: u64) -> Result<u64, StoreError> {
        if n > ID_STRIDE {
            return Err(StoreError::Backend(format!(
                "at most {ID_STRIDE} identifiers at once on PostgreSQL"
            )));
        }
        // zero-padded: the askers sort in the order they asked, and take strides in that order
        let asker = format!(
            "{:020}",
            self.askers
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let first = self.strides.read(
            &asker,
            &mut |askers| {
                let firsts = self
                    .next_strides(askers.len())
                    .map_err(|error| FetchFailed {
                        error,
                        alone: false,
                    })?;
                Ok(askers.iter().map(|a| a.to_string()).zip(firsts).collect())
            },
            &mut || self.next_strides(1).map(|f| f.first().copied()),
        )?;
        first.ok_or_else(|| StoreError::Backend("nextval returned nothing".into()))
    }
    /// One identifier block per request: a node reserving a thousand ahead would hand out
    /// identifiers that sort before another node's older ones.
    fn id_block(&self) -> u64 {
        1
    }

    fn remote(&self) -> bool {
        true
    }

    fn one_writer(&self) -> bool {
        false
    }

    fn gathers_blind(&self) -> bool {
        true
    }

    fn fetch(&self, ids: Vec<String>) -> Option<super::Awaited<'static, Vec<(String, Stored)>>> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let (answer, answered) = tokio::sync::oneshot::channel();
        self.fetches
            .ask(&runtime, |asked| asked.reads.push((ids, answer)));
        Some(Box::pin(answer_of(answered)))
    }

    fn fetch_ids(&self, n: u64) -> Option<super::Awaited<'static, u64>> {
        if n > ID_STRIDE {
            return None;
        }
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let (answer, answered) = tokio::sync::oneshot::channel();
        self.fetches
            .ask(&runtime, |asked| asked.strides.push(answer));
        Some(Box::pin(answer_of(answered)))
    }
}

/// The answer to an ask of [`Fetches`], within its own deadline: one queued behind a
/// statement the database never answers waits no longer than one that was sent.
async fn answer_of<T>(
    answered: tokio::sync::oneshot::Receiver<Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(STATEMENT_TIMEOUT, answered).await {
        Ok(Ok(out)) => out,
        Ok(Err(_)) => Err(StoreError::Backend(ABANDONED.into())),
        Err(_) => Err(db_error(&Fail::TimedOut)),
    }
}

/// How a write transaction failed: the error for the caller, the database's if any, and
/// whether a statement that may have committed was sent.
struct Failed {
    error: StoreError,
    failure: Option<Fail>,
    committing: bool,
    /// A transaction was begun and not ended: the connection must roll it back.
    open: bool,
}

/// One run of `f` in a transaction on `conn`, committed if it succeeds. READ COMMITTED, with
/// what it reads locked (see the module's comment).
fn locking(
    conn: &mut Conn,
    f: &mut dyn FnMut(&mut dyn WriteTxn) -> Result<(), StoreError>,
) -> Result<(), Failed> {
    let mut session = Session::writer(conn);
    let out = f(&mut session).and_then(|()| session.commit());
    let committing = session.committing.get();
    let open = session.begun.get() && !committing;
    let failure = session.failure.into_inner();
    let out = match (out, failure) {
        (Ok(()), None) => return Ok(()),
        (Err(error), failure) => Failed {
            error,
            failure,
            committing,
            open,
        },
        (Ok(()), Some(e)) => Failed {
            error: db_error(&e),
            failure: Some(e),
            committing,
            open,
        },
    };
    if out.open && !out.failure.as_ref().is_some_and(broken) {
        // the transaction failed (a conflict, a name taken, a statement refused): ended here,
        // so that the connection goes back to the pool outside any transaction
        if let Err(e) = block(&conn.rt, conn.client.batch_execute("ROLLBACK")) {
            return Err(Failed {
                failure: Some(e),
                ..out
            });
        }
    }
    Err(out)
}

impl Records<PostgresEngine> {
    /// A store in the database at `url` (see [`PostgresEngine::connect`]).
    pub fn connect(url: &str, retry_for: Duration) -> Result<PostgresStore, StoreError> {
        Ok(Records::over(PostgresEngine::connect(url, retry_for)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_is_one_statement_of_numbered_parameters() {
        assert_eq!(
            search_sql(2, false),
            "SELECT id FROM kmip_index WHERE k = $1 INTERSECT SELECT id FROM kmip_index WHERE k = $2"
        );
        assert_eq!(
            search_sql(1, true),
            "SELECT DISTINCT r.id FROM kmip_index r WHERE r.k = ANY($1) AND EXISTS \
             (SELECT 1 FROM kmip_index x WHERE x.k = $2 AND x.id = r.id)"
        );
        assert_eq!(
            search_sql(0, true),
            "SELECT DISTINCT r.id FROM kmip_index r WHERE r.k = ANY($1)"
        );
    }

    #[test]
    fn held_back_writes_are_one_statement_touching_each_row_once() {
        assert_eq!(
            flush_sql(OBJECT_PUT),
            "INSERT INTO kmip_objects (id, revision, body) SELECT * FROM unnest($1::text[], \
             $2::bigint[], $3::bytea[]) ON CONFLICT (id) DO UPDATE SET revision = \
             excluded.revision, body = excluded.body"
        );
        let all = flush_sql(63);
        assert!(
            all.starts_with("WITH w0 AS (DELETE FROM kmip_index"),
            "{all}"
        );
        assert!(all.contains("w4 AS (DELETE FROM kmip_values WHERE name = ANY($9::text[]))"));
        assert!(all.ends_with("ON CONFLICT (name) DO UPDATE SET value = excluded.value"));
        assert!(all.contains("$11::bytea[]") && !all.contains("$12"));

        let mut p = Pending::default();
        let key = (b"k".to_vec(), "7".to_owned());
        p.index.insert(key.clone(), true);
        p.index.insert(key, false);
        p.objects.insert("7".into(), Some((1, vec![1])));
        p.objects.insert("7".into(), None);
        p.values.insert("v".into(), Some(vec![2]));
        let a = p.take();
        assert!(p.is_empty());
        assert_eq!(
            a.shape(),
            INDEX_DEL | OBJECT_DEL | VALUE_PUT,
            "the last write wins"
        );
        assert_eq!(a.params().len(), 2 + 1 + 2);

        // a record written for the first time is inserted plainly, its index entries too;
        // one deleted in the same statement and written again is not new
        let all = flush_sql(255);
        assert!(
            all.contains("$16::bytea[]") && !all.contains("$17"),
            "{all}"
        );
        let mut p = Pending::default();
        p.objects.insert("8".into(), Some((1, vec![1])));
        p.index.insert((b"k".to_vec(), "8".into()), true);
        p.objects.insert("9".into(), Some((1, vec![1])));
        p.index.insert((b"k".to_vec(), "9".into()), true);
        p.deleted.insert("9".into());
        p.objects.insert("10".into(), Some((2, vec![1])));
        p.index.insert((b"j".to_vec(), "10".into()), true);
        let a = p.take();
        assert_eq!(a.object_new.0, vec!["8"]);
        assert_eq!(a.index_new.1, vec!["8"]);
        assert_eq!(a.object_put.0, vec!["10", "9"]);
        assert_eq!(a.index_add.1, vec!["10", "9"]);
        assert_eq!(a.shape(), INDEX_ADD | INDEX_NEW | OBJECT_PUT | OBJECT_NEW);
        assert_eq!(a.params().len(), 2 + 2 + 3 + 3);
        assert!(p.deleted.is_empty());
    }

    #[test]
    fn tls_options_as_libpq_reads_them() {
        let (url, v) = tls_options("postgres://u@h/db").unwrap();
        assert_eq!(url, "postgres://u@h/db");
        assert!(!v.chain && !v.host && v.roots.is_none());
        let (url, v) = tls_options(
            "postgres://u@h/db?sslmode=verify-full&sslrootcert=/etc/pg%20ca.pem&target_session_attrs=read-write",
        )
        .unwrap();
        assert_eq!(
            url,
            "postgres://u@h/db?sslmode=require&target_session_attrs=read-write"
        );
        assert_eq!(
            v,
            Verify {
                chain: true,
                host: true,
                roots: Some("/etc/pg ca.pem".into())
            }
        );
        let (url, v) = tls_options("postgres://u@h/db?sslmode=verify-ca").unwrap();
        assert_eq!(url, "postgres://u@h/db?sslmode=require");
        assert!(v.chain && !v.host);
        // require checks nothing, unless told which CA to trust
        let (_, v) = tls_options("postgres://u@h/db?sslmode=require").unwrap();
        assert!(!v.chain);
        let (_, v) = tls_options("postgres://u@h/db?sslmode=require&sslrootcert=ca.pem").unwrap();
        assert!(v.chain && !v.host);
        assert!(tls_options("postgres://u@h/db?sslrootcert=%zz").is_err());
    }

    #[test]
    fn a_statement_the_server_timed_out_is_the_database_unavailable() {
        for code in ["57014", "55P03", "53300", "53200"] {
            assert!(waited(code), "{code}");
        }
        // a statement's own fault: one commit's, which the record layer tries apart
        for code in ["54000", "23505", "22021", "40001"] {
            assert!(!waited(code), "{code}");
        }
    }

    #[test]
    fn messages_never_show_the_password() {
        let c: tokio_postgres::Config =
            "postgres://u:secret@db1:5433,db2/kmip?target_session_attrs=read-write"
                .parse()
                .unwrap();
        let s = shown(&c);
        assert_eq!(s, "db1:5433,db2:5432/kmip");
        assert!(!s.contains("secret"));
    }
}
