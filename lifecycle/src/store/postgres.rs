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
//! Connections come from a small pool. One that failed is dropped; the next request connects
//! again, to whichever listed host accepts writes (`target_session_attrs=read-write`), so
//! nodes follow a promoted standby. Every statement has a time limit, and the TCP connection
//! one for unacknowledged data, so a lost database answers an error, not a hang.
//!
//! The client is the blocking `postgres` crate: it must not run on an async worker, which is
//! why [`Engine::remote`] is true and the server serves every message from blocking threads.

use super::engine::{Engine, ReadTxn, Stored, WriteTxn};
use super::{Records, StoreError, SCHEMA_VERSION};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, IsolationLevel, Statement};

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
    pool: Mutex<Vec<Conn>>,
    slots: Arc<Slots>,
    /// A printable form of the URL, without its password.
    shown: String,
}

/// A connection and the statements prepared on it.
struct Conn {
    client: Client,
    prepared: HashMap<&'static str, Statement>,
    /// The runtime its I/O runs on (`None` once dropped).
    rt: Option<tokio::runtime::Runtime>,
    /// Its place among the [`MAX_OPEN`]; given back however the connection ends.
    _slot: Slot,
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

fn db_error(e: &Fail) -> StoreError {
    let e = match e {
        Fail::TimedOut => {
            return StoreError::Backend(format!(
                "PostgreSQL did not answer within {} s",
                STATEMENT_TIMEOUT.as_secs()
            ))
        }
        Fail::NoRuntime(why) => {
            return StoreError::Backend(format!("the PostgreSQL client cannot start: {why}"))
        }
        Fail::Db(e) => e,
    };
    // the server's message and SQLSTATE, never a parameter (no record bytes in errors)
    match e.as_db_error() {
        Some(d) => StoreError::Backend(format!(
            "PostgreSQL: {} (SQLSTATE {})",
            d.message(),
            d.code().code()
        )),
        None => StoreError::Backend(format!("PostgreSQL: {e}")),
    }
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

impl Conn {
    fn statement(&mut self, sql: &'static str) -> Result<Statement, Fail> {
        if let Some(s) = self.prepared.get(sql) {
            return Ok(s.clone());
        }
        let s = block(&self.rt, self.client.prepare(sql))?;
        self.prepared.insert(sql, s.clone());
        Ok(s)
    }
}

/// Something statements run on: a connection, or a transaction on one.
trait Run {
    fn rows(
        &mut self,
        sql: &'static str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, Fail>;
    fn exec(
        &mut self,
        sql: &'static str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, Fail>;
    /// A statement whose text is built at run time (a search): prepared each time.
    fn rows_text(
        &mut self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, Fail>;
}

impl Run for Conn {
    fn rows(
        &mut self,
        sql: &'static str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, Fail> {
        let s = self.statement(sql)?;
        block(&self.rt, self.client.query(&s, params))
    }

    fn exec(
        &mut self,
        sql: &'static str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, Fail> {
        let s = self.statement(sql)?;
        block(&self.rt, self.client.execute(&s, params))
    }

    fn rows_text(
        &mut self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, Fail> {
        block(&self.rt, self.client.query(sql, params))
    }
}

/// A transaction: the statements are prepared on its connection beforehand (a transaction
/// borrows the client, so the cache is read through a copy).
struct Tx<'c> {
    tx: tokio_postgres::Transaction<'c>,
    prepared: &'c mut HashMap<&'static str, Statement>,
    rt: &'c Option<tokio::runtime::Runtime>,
}

impl Run for Tx<'_> {
    fn rows(
        &mut self,
        sql: &'static str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, Fail> {
        let s = match self.prepared.get(sql) {
            Some(s) => s.clone(),
            None => {
                let s = block(self.rt, self.tx.prepare(sql))?;
                self.prepared.insert(sql, s.clone());
                s
            }
        };
        block(self.rt, self.tx.query(&s, params))
    }

    fn exec(
        &mut self,
        sql: &'static str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, Fail> {
        let s = match self.prepared.get(sql) {
            Some(s) => s.clone(),
            None => {
                let s = block(self.rt, self.tx.prepare(sql))?;
                self.prepared.insert(sql, s.clone());
                s
            }
        };
        block(self.rt, self.tx.execute(&s, params))
    }

    fn rows_text(
        &mut self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, Fail> {
        block(self.rt, self.tx.query(sql, params))
    }
}

/// Reads and writes through a [`Run`], keeping the first database error for the engine to
/// judge (retry, drop the connection) once the record layer's closure returns.
struct Session<R> {
    run: RefCell<R>,
    failure: RefCell<Option<Fail>>,
    /// Index entries to add and remove, sent as one statement each before the next read and
    /// before the commit: a Create files its record under several keys, and each statement is
    /// a round trip.
    adds: RefCell<(Vec<Vec<u8>>, Vec<String>)>,
    removes: RefCell<(Vec<Vec<u8>>, Vec<String>)>,
    /// A write transaction: what it reads of records and values, it locks until it ends.
    writing: bool,
}

impl<R: Run> Session<R> {
    fn new(run: R) -> Self {
        Session {
            run: RefCell::new(run),
            failure: RefCell::new(None),
            adds: RefCell::default(),
            removes: RefCell::default(),
            writing: false,
        }
    }

    fn writer(run: R) -> Self {
        Session {
            writing: true,
            ..Session::new(run)
        }
    }

    /// Send the index entries held back.
    fn flush(&self) -> Result<(), StoreError> {
        let removes = std::mem::take(&mut *self.removes.borrow_mut());
        if !removes.0.is_empty() {
            let out = self.run.borrow_mut().exec(
                "DELETE FROM kmip_index WHERE (k, id) IN \
                 (SELECT * FROM unnest($1::bytea[], $2::text[]))",
                &[&removes.0, &removes.1],
            );
            out.map_err(|e| self.note(e))?;
        }
        let adds = std::mem::take(&mut *self.adds.borrow_mut());
        if !adds.0.is_empty() {
            let out = self.run.borrow_mut().exec(
                "INSERT INTO kmip_index (k, id) SELECT * FROM unnest($1::bytea[], $2::text[]) \
                 ON CONFLICT DO NOTHING",
                &[&adds.0, &adds.1],
            );
            out.map_err(|e| self.note(e))?;
        }
        Ok(())
    }

    fn note(&self, e: Fail) -> StoreError {
        let out = db_error(&e);
        self.failure.borrow_mut().get_or_insert(e);
        out
    }

    fn rows(
        &self,
        sql: &'static str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        self.flush()?;
        let out = self.run.borrow_mut().rows(sql, params);
        out.map_err(|e| self.note(e))
    }

    fn exec(
        &self,
        sql: &'static str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<(), StoreError> {
        let out = self.run.borrow_mut().exec(sql, params);
        out.map(|_| ()).map_err(|e| self.note(e))
    }

    fn ids(
        &self,
        sql: &'static str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<String>, StoreError> {
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

impl<R: Run> ReadTxn for Session<R> {
    fn object(&self, id: &str) -> Result<Option<Stored>, StoreError> {
        let sql = match self.writing {
            true => "SELECT body, revision FROM kmip_objects WHERE id = $1 FOR UPDATE",
            false => "SELECT body, revision FROM kmip_objects WHERE id = $1",
        };
        let rows = self.rows(sql, &[&id])?;
        Ok(rows.first().map(|r| Stored {
            bytes: r.get(0),
            revision: u64::try_from(r.get::<_, i64>(1)).unwrap_or(0),
        }))
    }

    fn ids_with(&self, key: &[u8]) -> Result<Vec<String>, StoreError> {
        self.ids("SELECT id FROM kmip_index WHERE k = $1", &[&key])
    }

    fn has(&self, key: &[u8], id: &str) -> Result<bool, StoreError> {
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
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = Vec::new();
        if any.is_some() {
            params.push(&any_keys);
        }
        params.extend(
            all.iter()
                .map(|k| k as &(dyn tokio_postgres::types::ToSql + Sync)),
        );
        self.flush()?;
        // not a cached statement: its text depends on the number of keys
        let mut run = self.run.borrow_mut();
        let out = run.rows_text(&sql, &params);
        drop(run);
        Ok(out
            .map_err(|e| self.note(e))?
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect())
    }

    fn all_ids(&self) -> Result<Vec<String>, StoreError> {
        self.ids("SELECT id FROM kmip_objects", &[])
    }

    fn value(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let sql = match self.writing {
            true => "SELECT value FROM kmip_values WHERE name = $1 FOR UPDATE",
            false => "SELECT value FROM kmip_values WHERE name = $1",
        };
        let rows = self.rows(sql, &[&name])?;
        Ok(rows.first().map(|r| r.get(0)))
    }

    fn values_with_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let rows = self.rows(
            "SELECT name, value FROM kmip_values WHERE starts_with(name, $1) ORDER BY name",
            &[&prefix],
        )?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}

impl<R: Run> WriteTxn for Session<R> {
    fn put_object(&mut self, id: &str, stored: &Stored) -> Result<(), StoreError> {
        let revision = i64_of(stored.revision)?;
        self.exec(
            "INSERT INTO kmip_objects (id, revision, body) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET revision = excluded.revision, body = excluded.body",
            &[&id, &revision, &stored.bytes],
        )
    }

    fn delete_object(&mut self, id: &str) -> Result<(), StoreError> {
        self.exec("DELETE FROM kmip_objects WHERE id = $1", &[&id])
    }

    fn add_index(&mut self, key: &[u8], id: &str) -> Result<(), StoreError> {
        let mut adds = self.adds.borrow_mut();
        adds.0.push(key.to_vec());
        adds.1.push(id.to_owned());
        Ok(())
    }

    fn remove_index(&mut self, key: &[u8], id: &str) -> Result<(), StoreError> {
        let mut removes = self.removes.borrow_mut();
        removes.0.push(key.to_vec());
        removes.1.push(id.to_owned());
        Ok(())
    }

    fn put_value(&mut self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO kmip_values (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            &[&name, &value],
        )
    }

    fn delete_value(&mut self, name: &str) -> Result<(), StoreError> {
        self.exec("DELETE FROM kmip_values WHERE name = $1", &[&name])
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
        let mut builder = openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls())
            .map_err(|e| StoreError::Backend(format!("TLS for PostgreSQL: {e}")))?;
        builder.set_verify(openssl::ssl::SslVerifyMode::PEER);
        let tls = postgres_openssl::MakeTlsConnector::new(builder.build());
        let shown = shown(&config);
        let engine = PostgresEngine {
            config,
            tls,
            pool: Mutex::new(Vec::new()),
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
            rt,
            _slot: slot,
        })
    }

    fn give_back(&self, conn: Conn) {
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
            let conn = self.conn()?;
            let session = Session::new(conn);
            let out = f(&session);
            let failure = session.failure.into_inner();
            let conn = session.run.into_inner();
            match failure {
                Some(e) if stale(&e) && attempt == 0 => continue,
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
            match locking(&mut conn, f) {
                Ok(()) => {
                    self.give_back(conn);
                    return Ok(());
                }
                // a stale pooled connection failed at BEGIN: nothing was sent, nothing committed
                Err(Failed::Begin(e)) if stale(&e) && attempt < 2 => continue,
                Err(Failed::Begin(e)) => return Err(db_error(&e)),
                Err(Failed::Run(_, Some(e))) if retryable(&e) && attempt < MAX_ATTEMPTS => {
                    self.give_back(conn);
                    // another node won the race: back off a little, longer each time
                    std::thread::sleep(Duration::from_millis(u64::from(attempt) * 3));
                }
                Err(Failed::Run(e, failure)) => {
                    if !failure.as_ref().is_some_and(broken) {
                        self.give_back(conn);
                    }
                    return Err(e);
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
        for attempt in 0..2 {
            let mut conn = self.conn()?;
            // a sequence: no lock between nodes, never the same value twice (after a crash
            // too), and in the order the nodes asked, so that identifiers sort by creation
            // across nodes (Locate answers newest first)
            let out = conn.rows("SELECT nextval('kmip_ids')", &[]);
            match out {
                Ok(rows) => {
                    self.give_back(conn);
                    let first: i64 = rows
                        .first()
                        .map(|r| r.get(0))
                        .ok_or_else(|| StoreError::Backend("nextval returned nothing".into()))?;
                    return u64::try_from(first)
                        .map_err(|_| StoreError::Backend("kmip_ids is negative".into()));
                }
                Err(e) if stale(&e) && attempt == 0 => continue,
                Err(e) => return Err(db_error(&e)),
            }
        }
        Err(StoreError::Backend("PostgreSQL: no connection".into()))
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
}

/// How a write transaction failed.
enum Failed {
    /// It did not begin.
    Begin(Fail),
    /// It ran and was rolled back, or its commit failed; with the database's error if any.
    Run(StoreError, Option<Fail>),
}

/// One run of `f` in a transaction on `conn`, committed if it succeeds. READ COMMITTED, with
/// what it reads locked (see the module's comment).
fn locking(
    conn: &mut Conn,
    f: &mut dyn FnMut(&mut dyn WriteTxn) -> Result<(), StoreError>,
) -> Result<(), Failed> {
    let rt = &conn.rt;
    let tx = block(
        rt,
        conn.client
            .build_transaction()
            .isolation_level(IsolationLevel::ReadCommitted)
            .start(),
    )
    .map_err(Failed::Begin)?;
    let mut session = Session::writer(Tx {
        tx,
        prepared: &mut conn.prepared,
        rt,
    });
    let out = f(&mut session).and_then(|()| session.flush());
    let failure = session.failure.into_inner();
    let tx = session.run.into_inner().tx;
    match (out, failure) {
        (Ok(()), None) => block(rt, tx.commit()).map_err(|e| Failed::Run(db_error(&e), Some(e))),
        // dropping the transaction rolls it back
        (Err(e), failure) => Err(Failed::Run(e, failure)),
        (Ok(()), Some(e)) => Err(Failed::Run(db_error(&e), Some(e))),
    }
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
