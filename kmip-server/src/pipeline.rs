//! The way of one request message, whatever carried it (TTLV over TLS, or HTTPS in TTLV, XML
//! or JSON): the message read once, credentials, the caller, the batch, the audit record, the
//! commit. Transport-free: `session` and `https` hand it decoded trees and send back what it
//! answers.

use crate::error::{message_error, OpError};
use crate::Server;
use kmip_codec::message::{FieldValue, RequestMessage};
use kmip_codec::vocab::enums::result_reason as rr;
use kmip_codec::vocab::tag;
use kmip_codec::{decode, encode, DecodeError, Ttlv};
use lifecycle::Stop;
use std::future::Future;
use std::sync::Arc;

/// Versions we speak, in order of preference.
pub const VERSIONS: &[(i32, i32)] = &[(2, 1), (2, 0), (1, 4), (1, 3), (1, 2), (1, 1), (1, 0)];

/// The protocol version a tree claims, if it has one we can read.
pub fn claimed_version(tree: &Ttlv) -> Option<(i32, i32)> {
    let pv = tree
        .child(tag::REQUEST_HEADER)?
        .child(tag::PROTOCOL_VERSION)?;
    Some((
        pv.child(tag::PROTOCOL_VERSION_MAJOR)?.as_i32()?,
        pv.child(tag::PROTOCOL_VERSION_MINOR)?.as_i32()?,
    ))
}

/// The version to answer a tree in when no batch item says otherwise: the one it claims if
/// we speak it, else 1.0.
pub fn reply_version(tree: &Ttlv) -> (i32, i32) {
    claimed_version(tree)
        .filter(|v| VERSIONS.contains(v))
        .unwrap_or((1, 0))
}

/// A request message, read once: the tree (which the audit record quotes) with field clients'
/// quirks read leniently, the typed message or why it is not one, and the version to answer in.
pub struct Message {
    tree: Ttlv,
    typed: Result<RequestMessage, OpError>,
    version: (i32, i32),
}

impl Message {
    pub fn read(tree: Ttlv) -> Message {
        let tree = lenient(&tree).unwrap_or(tree);
        let typed = if tree.tag == tag::REQUEST_MESSAGE {
            RequestMessage::decode(&tree).map_err(OpError::from)
        } else {
            Err(OpError::InvalidMessage("not a Request Message".into()))
        };
        let version = reply_version(&tree);
        Message {
            tree,
            typed,
            version,
        }
    }

    /// The version an answer to the whole message takes.
    pub fn version(&self) -> (i32, i32) {
        self.version
    }

    /// Whether an item may run long or wait (or is not known): answered on the blocking pool.
    fn blocks(&self) -> bool {
        self.typed.as_ref().is_ok_and(|m| {
            m.batch_item
                .iter()
                .any(|b| !crate::ops::on_worker(b.operation.0 .0))
        })
    }

    /// Whether it has more than one batch item. Reads cost little one at a time, but a
    /// thousand RSA-4096 Signs in one message are seconds of a core: such a message leaves
    /// the async workers (two of them stalled every other client) and is canceled when its
    /// client hangs up.
    fn batched(&self) -> bool {
        self.typed.as_ref().is_ok_and(|m| m.batch_item.len() > 1)
    }

    /// What its one item needs fetched beforehand, when it may run on the async worker over
    /// it on a store whose reads wait on a network (see [`lifecycle::store::Prefetched`]): the
    /// object a read or a light write names by its Unique Identifier, or the identifier a
    /// Create will take. `None` for anything else, which runs on the blocking pool.
    fn prefetch(&self) -> Option<(Vec<String>, u64)> {
        let m = self.typed.as_ref().ok()?;
        if self.blocks() || self.batched() || self.authenticates() {
            return None;
        }
        let item = m.batch_item.first()?;
        if item.operation.0 .0 == kmip_codec::vocab::enums::operation::CREATE {
            return Some((Vec::new(), 1));
        }
        let id = item
            .request_payload
            .as_ref()?
            .child(tag::UNIQUE_IDENTIFIER)?
            .as_text()
            // the reads of every connection share one statement at a time: a huge identifier
            // (none that exists is) would hold up everyone's, so it reads on its own
            .filter(|id| id.len() <= MAX_PREFETCHED_ID)?;
        Some((vec![id.to_owned()], 0))
    }

    /// Whether it carries a credential, which may cost an scrypt.
    fn authenticates(&self) -> bool {
        self.typed
            .as_ref()
            .is_ok_and(|m| m.header.authentication.is_some())
    }
}

/// Who sent a message: the identity its connection's certificate names, the peer's address,
/// and the stop its transport raises when the client leaves before the answer.
#[derive(Clone, Copy)]
pub struct Origin<'a> {
    pub identity: &'a str,
    pub peer: &'a str,
    pub stop: &'a Stop,
}

/// The longest Unique Identifier read through the async workers' shared fetches (see
/// [`Message::prefetch`]): far longer than any this server issues.
const MAX_PREFETCHED_ID: usize = 256;

/// Who a request acts as, from its certificate identity and the Authentication in its header
/// (see `policy::Credentials`); the refusal otherwise.
fn verdict(
    server: &Server,
    identity: &str,
    m: &RequestMessage,
) -> Result<crate::policy::Verdict, OpError> {
    server
        .limits
        .credentials
        .check(identity, m.header.authentication.as_ref())
}

/// FortiOS sends the Credential Type of its Username and Password credential as an Integer,
/// not an Enumeration: the same value, read as the Enumeration it stands for. `None` when the
/// request needs no change.
pub fn lenient(tree: &Ttlv) -> Option<Ttlv> {
    let bare = |c: &Ttlv| {
        c.child(tag::CREDENTIAL_TYPE)
            .is_some_and(|t| matches!(t.value, kmip_codec::Value::Integer(_)))
    };
    let auth = tree
        .child(tag::REQUEST_HEADER)
        .and_then(|h| h.child(tag::AUTHENTICATION))?;
    if !auth.children_with(tag::CREDENTIAL).any(bare) {
        return None;
    }
    let mut fixed = tree.clone();
    let header = fixed
        .children_mut()?
        .iter_mut()
        .find(|c| c.tag == tag::REQUEST_HEADER)?;
    let auth = header
        .children_mut()?
        .iter_mut()
        .find(|c| c.tag == tag::AUTHENTICATION)?;
    for cred in auth.children_mut()?.iter_mut() {
        for t in cred.children_mut().into_iter().flatten() {
            if let (tag::CREDENTIAL_TYPE, kmip_codec::Value::Integer(v)) = (t.tag, &t.value) {
                t.value = kmip_codec::Value::Enumeration(*v as u32);
            }
        }
    }
    Some(fixed)
}

/// A framed message decoded, or what to answer instead: an Invalid Message response, or
/// nothing (close) for bytes that are not TTLV at all.
pub fn decode_request(
    buf: &[u8],
    identity: &str,
    limits: &crate::config::Settings,
) -> Result<Ttlv, Option<Vec<u8>>> {
    match decode(buf, &limits.decode) {
        Ok((tree, _)) => Ok(tree),
        Err(DecodeError::Invalid { offset, kind }) => {
            tracing::info!(identity, offset, %kind, "undecodable message");
            // a structure that decodes no further still earns an Invalid Message answer
            let resp = message_error(
                (1, 0),
                crate::now(),
                OpError::InvalidMessage(format!("invalid TTLV at offset {offset}: {kind}")),
            );
            Err((offset > 0).then(|| encode(&resp)))
        }
        Err(DecodeError::Incomplete { .. }) => Err(None),
        // a failure this server does not know: closed, as bytes that are not TTLV
        Err(_) => Err(None),
    }
}

/// The encoded response to one framed message; `None` when the bytes are not TTLV at all.
/// Synchronous, on the caller's thread: for tests, benchmarks and the fuzzers.
pub fn answer(server: &Server, identity: &str, peer: &str, buf: &[u8]) -> Option<Vec<u8>> {
    match decode_request(buf, identity, &server.limits) {
        Ok(tree) => {
            let stop = Stop::default();
            let origin = Origin {
                identity,
                peer,
                stop: &stop,
            };
            Some(encode(&answer_message(
                server,
                origin,
                &Message::read(tree),
            )))
        }
        Err(early) => early,
    }
}

/// The response to a decoded message, computed where it does not hold up other connections.
/// A message of reads and light writes ([`crate::ops::Operation::worker`]) runs on the async
/// worker itself, which is cheaper than a thread handoff, and awaits its commit in the
/// store's next group without a thread (the group's writer, on the blocking pool, waits for
/// the fsync). Anything else runs on the blocking pool (key pair generation takes long, a
/// credential costs an scrypt, a store over the network waits on every read), where
/// concurrent commits gather into the same groups.
///
/// Work on the blocking pool is canceled when `hangup` completes (the client left): long
/// loops stop at their next check and the batch runs no further item. The answer still waits
/// for that work to end, so a client that reconnects at once cannot pile up work it left.
pub async fn respond(
    server: &Arc<Server>,
    identity: &str,
    peer: &str,
    tree: Ttlv,
    hangup: impl Future<Output = ()>,
) -> Ttlv {
    let message = Message::read(tree);
    let version = message.version();
    // a store over the network (PostgreSQL) waits on every read: a message runs on the async
    // worker only over the records it names, fetched beforehand without a thread
    let fetched = match server.manager.remote() {
        true => match message.prefetch() {
            Some((ids, new_ids)) => server.manager.prefetch(ids, new_ids).await,
            None => None,
        },
        false => None,
    };
    // a message with a credential may cost an scrypt (tens of milliseconds of a core, and a
    // wait for a free slot when wrong passwords pour in): never on the async worker
    let prepared = if message.blocks()
        || message.authenticates()
        || message.batched()
        || (server.manager.remote() && fetched.is_none())
    {
        Rest::Whole
    } else {
        // a panic here would end the connection's task, and the connection, silently: it
        // answers General Failure instead (each operation is guarded on its own as well)
        crate::error::log_panics();
        let caught = || crate::error::panicked(version, crate::now());
        let stop = Stop::default();
        let origin = Origin {
            identity,
            peer,
            stop: &stop,
        };
        let prepared = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let ran = run(server, origin, &message, fetched.as_ref());
            // one that read what was not fetched goes unsaid and unrecorded: it runs again
            // where it may wait on the store
            match fetched.as_ref().is_some_and(|f| f.missed()) {
                true => {
                    tracing::debug!(identity, peer, "read beyond its prefetched records");
                    None
                }
                false => Some(record(server, origin, &message, ran)),
            }
        })) {
            Ok(p) => p,
            Err(_) => return caught(),
        };
        if let Some(prepared) = prepared {
            prepared.audited(server).await;
            if !prepared.commits() {
                return std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    finish(server, origin, &message, prepared)
                }))
                .unwrap_or_else(|_| caught());
            }
            // its commit waits for an fsync, which is not the async worker's to wait for: it
            // awaits the group commit instead, or hands the commit to the blocking pool
            match commit_on_worker(server, prepared).await {
                Ok(Committed {
                    answer,
                    result: Ok(()),
                }) => return answer.response,
                // refused: what follows (another run, a record of no effect) may wait
                Ok(committed) => Rest::Settle(committed),
                Err(prepared) => Rest::Finish(prepared),
            }
        } else {
            Rest::Whole
        }
    };
    let stop = Stop::default();
    let (s, i, p, st) = (
        server.clone(),
        identity.to_owned(),
        peer.to_owned(),
        stop.clone(),
    );
    let blocking = tokio::task::spawn_blocking(move || {
        let origin = Origin {
            identity: &i,
            peer: &p,
            stop: &st,
        };
        match prepared {
            Rest::Whole => answer_message(&s, origin, &message),
            Rest::Finish(prepared) => finish(&s, origin, &message, prepared),
            Rest::Settle(committed) => settle(&s, origin, &message, committed),
        }
    });
    tokio::pin!(blocking);
    let done = tokio::select! {
        biased;
        done = &mut blocking => done,
        () = hangup => {
            tracing::info!(identity, peer, "client left before its answer: its work is canceled");
            stop.raise();
            blocking.await
        }
    };
    done.unwrap_or_else(|_| {
        message_error(
            version,
            crate::now(),
            OpError::GeneralFailure("the request failed".into()),
        )
    })
}

/// What a message left for the blocking pool to do.
enum Rest {
    /// Everything.
    Whole,
    /// Its commit, and what follows.
    Finish(Prepared),
    /// What follows a refused commit.
    Settle(Committed),
}

/// The response to one decoded request message, whatever encoding it came in.
///
/// The message runs atomically with its audit record: its changes are held back until the
/// record is written, and dropped when it cannot be.
pub fn answer_message(server: &Server, origin: Origin<'_>, message: &Message) -> Ttlv {
    let prepared = prepare(server, origin, message);
    finish(server, origin, message, prepared)
}

enum Failed {
    Lifecycle(lifecycle::LifecycleError),
    /// The audit record could not be written (the text says why): nothing was done.
    Audit(String),
}

impl From<lifecycle::LifecycleError> for Failed {
    fn from(e: lifecycle::LifecycleError) -> Failed {
        Failed::Lifecycle(e)
    }
}

/// A message answered and its audit record queued, its changes not yet committed.
pub struct Prepared {
    answer: Answer,
    record: crate::audit::Ticket,
    txn: lifecycle::Txn,
}

/// What answers a message once its commit is made.
struct Answer {
    now: i64,
    /// Who the request acted as (a bound user may act as another identity than its
    /// certificate's): what a later record about it names too.
    acting: String,
    response: Ttlv,
    /// How long running the batch took.
    ran: std::time::Duration,
}

impl Prepared {
    /// Whether finishing it waits for a commit (and its fsync).
    pub fn commits(&self) -> bool {
        !self.txn.changes_nothing()
    }

    /// Wait, without blocking the worker, until its audit record is written; finishing it
    /// then finds the record's outcome at once.
    pub async fn audited(&self, server: &Server) {
        let _ = server.audit.wait(&self.record).await;
    }
}

/// The response and the audit record, without the commit ([`finish`] makes it).
fn prepare(server: &Server, origin: Origin<'_>, message: &Message) -> Prepared {
    let ran = run(server, origin, message, None);
    record(server, origin, message, ran)
}

/// A message run, its audit record not yet made.
struct Ran {
    started: std::time::Instant,
    now: i64,
    /// Who the request acted as (see [`Answer::acting`]).
    acting: String,
    /// What its credential said, for the record.
    note: Option<String>,
    response: Ttlv,
    txn: lifecycle::Txn,
}

/// Run a message's batch in a transaction of its own, over the store or over records
/// fetched for it beforehand (see [`Message::prefetch`]): when it read anything else there
/// ([`lifecycle::store::Prefetched::missed`]), what it answered must be thrown away.
fn run(
    server: &Server,
    origin: Origin<'_>,
    message: &Message,
    fetched: Option<&Arc<lifecycle::store::Prefetched>>,
) -> Ran {
    let started = std::time::Instant::now();
    let now = crate::now();
    // the certificate authenticates the connection; a bound username may make the request
    // act as another identity (policy::Credentials)
    let verdict = message
        .typed
        .as_ref()
        .map_err(OpError::clone)
        .and_then(|m| Ok((m, verdict(server, origin.identity, m)?)));
    let identity = match &verdict {
        Ok((_, v)) => v.identity.as_str(),
        Err(_) => origin.identity,
    };
    let caller = Some(server.caller(identity));
    let txn = match fetched {
        Some(f) => server.manager.begin_prefetched(caller, f.clone()),
        None => server.manager.begin(caller),
    };
    let response = match &verdict {
        Ok((typed, _)) => {
            crate::batch::run(&txn, identity, typed, &server.limits, now, origin.stop)
        }
        Err(e) => message_error(message.version, now, e.clone()),
    };
    Ran {
        started,
        now,
        acting: identity.to_owned(),
        note: verdict.ok().and_then(|(_, v)| v.note),
        response,
        txn,
    }
}

/// Queue the audit record of a message that ran: what it is answered with once written.
fn record(server: &Server, origin: Origin<'_>, message: &Message, ran: Ran) -> Prepared {
    let identity = ran.acting.as_str();
    if tracing::enabled!(tracing::Level::DEBUG) {
        // operations and outcomes only: payloads may hold keys and plaintext
        let enums = |t: &Ttlv, field| -> Vec<u32> {
            t.children_with(tag::BATCH_ITEM)
                .filter_map(|b| b.child(field).and_then(Ttlv::as_enum))
                .collect()
        };
        tracing::debug!(
            identity,
            peer = origin.peer,
            operations = ?enums(&message.tree, tag::OPERATION),
            results = ?enums(&ran.response, tag::RESULT_STATUS),
            reasons = ?enums(&ran.response, tag::RESULT_REASON),
            "request"
        );
    }
    let mut record =
        crate::audit::request_record(ran.now, identity, origin.peer, &message.tree, &ran.response);
    if identity != origin.identity {
        record.insert("certificate", origin.identity);
    }
    if let Some(note) = ran.note {
        record.insert("credential", note);
    }
    crate::audit::add_automatic_changes(&mut record, &ran.txn.automatic_changes());
    crate::audit::add_approval_events(&mut record, &ran.txn.approval_events());
    Prepared {
        answer: Answer {
            now: ran.now,
            acting: ran.acting,
            response: ran.response,
            ran: ran.started.elapsed(),
        },
        record: server.audit.append(record),
        txn: ran.txn,
    }
}

/// How many times a message of `items` batch items runs before its lost races are the
/// client's to retry: its runs together come to at most [`RERUN_ITEMS`] batch items (and
/// 32 runs), so that a large contended batch does not buy many times its own work.
fn attempts(items: usize) -> usize {
    (RERUN_ITEMS / items.max(1)).clamp(2, 32)
}

/// The batch items a message may run, all its runs together, when it keeps losing races.
const RERUN_ITEMS: usize = 256;

/// The time a message's runs may take together before a lost race is the client's to retry:
/// what bounds the work of costly items (a PBKDF2 derivation of millions of iterations runs
/// once or twice, not 32 times), where counting items does not.
const RERUN_TIME: std::time::Duration = std::time::Duration::from_millis(500);

/// How long a message that lost a race waits for the object before it runs again anyway.
const AGAIN_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The objects some message is running again for, after it lost a race for them.
static AGAIN: (
    std::sync::Mutex<std::collections::BTreeSet<String>>,
    std::sync::Condvar,
) = (
    std::sync::Mutex::new(std::collections::BTreeSet::new()),
    std::sync::Condvar::new(),
);

/// A message's turn to run again alone for one object; the next one's when it drops.
struct Again(String);

impl Drop for Again {
    fn drop(&mut self) {
        let mut busy = AGAIN.0.lock().unwrap_or_else(|p| p.into_inner());
        busy.remove(&self.0);
        AGAIN.1.notify_all();
    }
}

/// Wait (at most `wait`) until no other message runs again for object `id`, and take the
/// turn: messages that lost a race for one object run again one at a time, so that they stop
/// losing to each other (8 clients changing one object at once). Keyed by the object itself,
/// so that only requests that may change that very object ever wait; bounded, so that even
/// they wait no longer than `wait` for a message that keeps losing (`None`: run anyway).
fn run_again_alone(id: &str, wait: std::time::Duration) -> Option<Again> {
    let deadline = std::time::Instant::now() + wait;
    let mut busy = AGAIN.0.lock().unwrap_or_else(|p| p.into_inner());
    while busy.contains(id) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return None;
        }
        busy = AGAIN
            .1
            .wait_timeout(busy, left)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
    busy.insert(id.to_owned());
    Some(Again(id.to_owned()))
}

/// Commit a prepared message's changes: its response, or the error that nothing was done.
/// A message that lost a race for an object (another request changed it between this one's
/// read and its commit) is run again on the object as it now is, a few times at most.
fn finish(server: &Server, origin: Origin<'_>, message: &Message, prepared: Prepared) -> Ttlv {
    let committed = commit(server, prepared);
    settle(server, origin, message, committed)
}

/// A prepared message after its commit: the answer if it was made, and what refused it if not.
struct Committed {
    answer: Answer,
    result: Result<(), Failed>,
}

/// The changes take effect only once the record saying so is written: checked by whoever
/// writes the commit, just before its write transaction, so that one write of the log
/// serves every commit gathered with this one.
fn written(server: &Server, record: crate::audit::Ticket) -> lifecycle::store::Precondition {
    let audit = server.audit.clone();
    std::sync::Arc::new(move || audit.wait_blocking(&record).map_err(|e| e.to_string()))
}

fn committed(answer: Answer, result: Result<(), lifecycle::LifecycleError>) -> Committed {
    let result = match result {
        Ok(()) => Ok(()),
        Err(lifecycle::LifecycleError::Store(lifecycle::store::StoreError::Precondition(e))) => {
            Err(Failed::Audit(e))
        }
        Err(e) => Err(Failed::from(e)),
    };
    Committed { answer, result }
}

/// Commit a prepared message, on a thread that may wait for the commit's fsync.
fn commit(server: &Server, prepared: Prepared) -> Committed {
    let started = std::time::Instant::now();
    let result = prepared
        .txn
        .commit_checked(written(server, prepared.record));
    crate::metrics::get().committed(started.elapsed());
    committed(prepared.answer, result)
}

/// [`commit`] on the async worker: the commit joins the store's next group and is awaited
/// without a thread (a writer is started on the blocking pool only when no one writes). The
/// prepared message comes back when its store cannot queue a commit that way.
async fn commit_on_worker(server: &Server, prepared: Prepared) -> Result<Committed, Prepared> {
    if !prepared.txn.queues_commits() {
        return Err(prepared);
    }
    let started = std::time::Instant::now();
    // the writer may be started later, from a thread outside the runtime's context
    let runtime = tokio::runtime::Handle::current();
    let spawn = move |write: Box<dyn FnOnce() + Send>| drop(runtime.spawn_blocking(write));
    let queued = prepared
        .txn
        .commit_queued(written(server, prepared.record), spawn);
    let result = queued.await.map_err(lifecycle::LifecycleError::from);
    crate::metrics::get().committed(started.elapsed());
    Ok(committed(prepared.answer, result))
}

/// The answer to a committed message: its response, or, when the commit was refused, an
/// error (and a record saying nothing was done), or another run when it lost a race.
fn settle(server: &Server, origin: Origin<'_>, message: &Message, first: Committed) -> Ttlv {
    let identity = origin.identity;
    let items = message.typed.as_ref().map_or(1, |m| m.batch_item.len());
    let attempts = attempts(items);
    let mut spent = std::time::Duration::ZERO;
    // the object this message runs again alone for: one at most, so that no message holds
    // one turn while it waits for another
    let mut again: Option<Again> = None;
    let mut committed = first;
    for attempt in 1.. {
        let Committed {
            answer:
                Answer {
                    now,
                    acting,
                    response,
                    ran,
                },
            result,
        } = committed;
        spent += ran;
        let (refused, audited): (OpError, Option<&str>) = match result {
            Ok(()) => return response,
            Err(Failed::Lifecycle(lifecycle::LifecycleError::Store(
                lifecycle::store::StoreError::Conflict(id),
            ))) if attempt < attempts && spent < RERUN_TIME => {
                tracing::debug!(identity, object = %id, attempt, "lost a race: run again");
                crate::metrics::get().conflict();
                let resp = message_error(
                    message.version,
                    now,
                    OpError::GeneralFailure("object changed meanwhile: run again".into()),
                );
                no_effect(server, now, origin, &acting, message, &resp, NO_EFFECT);
                if again.as_ref().is_none_or(|a| a.0 != id) {
                    drop(again.take());
                    again = run_again_alone(&id, AGAIN_WAIT);
                }
                committed = commit(server, prepare(server, origin, message));
                continue;
            }
            // another request changed the object every time this one ran: not a failure of
            // the store (nor an alert), the client's to send again
            Err(Failed::Lifecycle(lifecycle::LifecycleError::Store(
                lifecycle::store::StoreError::Conflict(id),
            ))) => {
                tracing::info!(identity, object = %id, attempt, "lost every race: refused");
                let why = "the object changed meanwhile every time this message ran: nothing \
                           was done; send it again";
                (OpError::GeneralFailure(why.into()), Some(NO_EFFECT))
            }
            Err(Failed::Audit(e)) => {
                tracing::error!(error = %e, "audit log unavailable: request refused");
                let why = "the audit log cannot be written: nothing was done";
                (OpError::GeneralFailure(why.into()), None)
            }
            // the database took the commit and its answer was lost: the record before says
            // what may have been done, this one that no one knows whether it was
            Err(Failed::Lifecycle(lifecycle::LifecycleError::Store(
                lifecycle::store::StoreError::OutcomeUnknown(e),
            ))) => {
                tracing::error!(error = %e, "store connection lost while committing");
                let why = "the connection to the database was lost while committing: the \
                           changes may have been made; look before sending it again";
                (
                    OpError::GeneralFailure(why.into()),
                    Some("unknown: the previous record may or may not have taken effect"),
                )
            }
            // refused by the store's own check at commit (a name another request took
            // meanwhile): the client's error, not the store's
            Err(Failed::Lifecycle(e)) if e.result_reason() != rr::GENERAL_FAILURE => (
                OpError::Lifecycle {
                    reason: e.result_reason(),
                    message: format!("{e}: nothing was done"),
                },
                Some(NO_EFFECT),
            ),
            Err(Failed::Lifecycle(e)) => {
                tracing::error!(error = %e, "store failure");
                let why = "the store failed: nothing was done";
                (OpError::GeneralFailure(why.into()), Some(NO_EFFECT))
            }
        };
        let resp = message_error(message.version, now, refused);
        if let Some(commit) = audited {
            no_effect(server, now, origin, &acting, message, &resp, commit);
        }
        return resp;
    }
    unreachable!("the loop returns")
}

/// What the record after a failed commit says of the one before it.
const NO_EFFECT: &str = "failed: the previous record did not take effect";

/// The record written before a commit that failed says what would have been done: this one
/// says what was (nothing).
fn no_effect(
    server: &Server,
    now: i64,
    origin: Origin<'_>,
    acting: &str,
    message: &Message,
    resp: &Ttlv,
    commit: &str,
) {
    let mut record = crate::audit::request_record(now, acting, origin.peer, &message.tree, resp);
    if acting != origin.identity {
        record.insert("certificate", origin.identity);
    }
    record.insert("commit", commit);
    if let Err(e) = server.audit.record(record) {
        tracing::error!(error = %e, "audit log unavailable");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_batch_runs_again_fewer_times() {
        assert_eq!(attempts(1), 32, "one item: as many runs as before");
        assert_eq!(attempts(16), 16);
        assert_eq!(attempts(1000), 2, "a large batch still gets one more run");
        for items in [1, 3, 16, 100, 1000] {
            assert!(
                (attempts(items) - 1) * items <= RERUN_ITEMS.max(items),
                "{items}"
            );
        }
    }

    /// One object's turn leaves every other object's free, and a turn is waited for no longer
    /// than asked: an identity's contended object does not queue another's requests.
    #[test]
    fn running_again_for_one_object_leaves_others_free() {
        use std::time::Duration;
        let held = run_again_alone("pipeline-test-7", Duration::ZERO).expect("free");
        let other =
            std::thread::spawn(|| run_again_alone("pipeline-test-8", Duration::ZERO).is_some());
        assert!(other.join().unwrap(), "another object: no wait");
        let same = std::thread::spawn(|| {
            run_again_alone("pipeline-test-7", Duration::from_millis(50)).is_some()
        });
        assert!(
            !same.join().unwrap(),
            "the same object: waited, then ran anyway"
        );
        drop(held);
        assert!(run_again_alone("pipeline-test-7", Duration::ZERO).is_some());
    }
}
