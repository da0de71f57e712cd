//! One client connection: read a framed TTLV message within the read timeout, answer it,
//! repeat until the client leaves or stays idle past the idle timeout.

use crate::dispatch::{self, OpError, Settings};
use crate::Server;
use kmip_codec::vocab::enums::result_reason as rr;
use kmip_codec::{decode, encode, frame_length, DecodeError};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;

/// Timeouts of a session.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// Longest wait for the first byte of the next message.
    pub idle: Duration,
    /// Longest time from a message's first byte to its last: a client that trickles bytes is
    /// cut off.
    pub read: Duration,
}

#[derive(Debug, PartialEq, Eq)]
pub enum End {
    ClientClosed,
    Idle,
    SlowRead,
    /// Framing that can never become a message: closed without an answer.
    Garbage,
    Io,
    /// The server is stopping: closed between two messages.
    Shutdown,
}

/// Serve one connection until it ends.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    server: &std::sync::Arc<Server>,
    stream: &mut S,
    identity: &str,
    peer: &str,
    timeouts: Timeouts,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) -> End {
    let limits = &server.limits;
    let mut header = [0u8; 8];
    loop {
        // the first byte may take up to the idle timeout; the rest of the message must follow
        // within the read timeout
        if *stopping.borrow() {
            return End::Shutdown;
        }
        tokio::select! {
            r = timeout(timeouts.idle, stream.read(&mut header[..1])) => match r {
                Err(_) => return End::Idle,
                Ok(Ok(0)) => return End::ClientClosed,
                Ok(Ok(_)) => {}
                Ok(Err(_)) => return End::Io,
            },
            _ = stopping.changed() => return End::Shutdown,
        }
        let read_rest = async {
            stream.read_exact(&mut header[1..]).await?;
            let total = match frame_length(&header, &limits.decode) {
                Ok(n) => n,
                Err(_) => return Ok(None),
            };
            let mut buf = vec![0u8; total];
            buf[..8].copy_from_slice(&header);
            stream.read_exact(&mut buf[8..]).await?;
            Ok::<_, std::io::Error>(Some(buf))
        };
        let buf = match timeout(timeouts.read, read_rest).await {
            Err(_) => return End::SlowRead,
            Ok(Err(_)) => return End::Io,
            Ok(Ok(None)) => {
                // a length beyond the limit: answer once, then close, since the stream can no
                // longer be framed
                let now = crate::now();
                let resp = dispatch::message_error(
                    (1, 0),
                    now,
                    OpError::new(
                        rr::INVALID_MESSAGE,
                        "message larger than the server's limit",
                    ),
                );
                let _ = stream.write_all(&encode(&resp)).await;
                return End::Garbage;
            }
            Ok(Ok(Some(b))) => b,
        };
        let response = match decode_request(&buf, identity, limits) {
            Ok(tree) => Some(encode(&respond(server, identity, peer, tree).await)),
            Err(early) => early,
        };
        let Some(response) = response else {
            return End::Garbage;
        };
        if stream.write_all(&response).await.is_err() || stream.flush().await.is_err() {
            return End::Io;
        }
    }
}

/// A framed message decoded, or what to answer instead: an Invalid Message response, or
/// nothing (close) for bytes that are not TTLV at all.
pub fn decode_request(
    buf: &[u8],
    identity: &str,
    limits: &Settings,
) -> Result<kmip_codec::Ttlv, Option<Vec<u8>>> {
    match decode(buf, &limits.decode) {
        Ok((tree, _)) => Ok(tree),
        Err(DecodeError::Invalid { offset, kind }) => {
            tracing::info!(identity, offset, %kind, "undecodable message");
            // a structure that decodes no further still earns an Invalid Message answer
            let resp = dispatch::message_error(
                (1, 0),
                crate::now(),
                OpError::new(
                    rr::INVALID_MESSAGE,
                    format!("invalid TTLV at offset {offset}: {kind}"),
                ),
            );
            Err((offset > 0).then(|| encode(&resp)))
        }
        Err(DecodeError::Incomplete { .. }) => Err(None),
    }
}

/// The encoded response to one framed message; `None` when the bytes are not TTLV at all.
pub fn answer(
    server: &Server,
    identity: &str,
    peer: &str,
    buf: &[u8],
    limits: &Settings,
) -> Option<Vec<u8>> {
    match decode_request(buf, identity, limits) {
        Ok(tree) => Some(encode(&answer_message(
            server, identity, peer, &tree, limits,
        ))),
        Err(early) => early,
    }
}

/// The response to a decoded message, computed where it does not hold up other connections:
/// a message that writes waits for its group commit's fsync (and key generation takes long),
/// so it runs on the blocking pool, where concurrent commits gather into one transaction; a
/// read runs on the async worker itself, which is cheaper than a thread handoff, and hands
/// only its commit over when it turned out to change something.
pub async fn respond(
    server: &std::sync::Arc<Server>,
    identity: &str,
    peer: &str,
    tree: kmip_codec::Ttlv,
) -> kmip_codec::Ttlv {
    // a message with a credential may cost an scrypt (tens of milliseconds of a core, and a
    // wait for a free slot when wrong passwords pour in): never on the async worker
    let authenticates = tree
        .child(kmip_codec::vocab::tag::REQUEST_HEADER)
        .is_some_and(|h| h.child(kmip_codec::vocab::tag::AUTHENTICATION).is_some());
    let prepared = if writes(&tree) || authenticates {
        None
    } else {
        // a panic here would end the connection's task, and the connection, silently: it
        // answers General Failure instead (each operation is guarded on its own as well)
        dispatch::log_panics();
        let caught = || dispatch::panicked(dispatch::reply_version(&tree), crate::now());
        let prepared = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            prepare_message(server, identity, peer, &tree, &server.limits)
        })) {
            Ok(p) => p,
            Err(_) => return caught(),
        };
        prepared.audited(server).await;
        if !prepared.commits() {
            return std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                finish_message(server, identity, peer, &tree, &server.limits, prepared)
            }))
            .unwrap_or_else(|_| caught());
        }
        // a read that changed something (a first Get clears Fresh; a usage count): its
        // commit waits for an fsync, which is not the async worker's to wait for
        Some(prepared)
    };
    let version = dispatch::reply_version(&tree);
    let (s, i, p) = (server.clone(), identity.to_owned(), peer.to_owned());
    let blocking = tokio::task::spawn_blocking(move || match prepared {
        None => answer_message(&s, &i, &p, &tree, &s.limits),
        Some(prepared) => finish_message(&s, &i, &p, &tree, &s.limits, prepared),
    });
    blocking.await.unwrap_or_else(|_| {
        dispatch::message_error(
            version,
            crate::now(),
            OpError::new(rr::GENERAL_FAILURE, "the request failed"),
        )
    })
}

/// Whether a request message has an operation that writes (or is not known to only read).
pub fn writes(tree: &kmip_codec::Ttlv) -> bool {
    use kmip_codec::vocab::tag;
    tree.children_with(tag::BATCH_ITEM).any(|b| {
        b.child(tag::OPERATION)
            .and_then(kmip_codec::Ttlv::as_enum)
            .is_none_or(|o| !crate::ops::reads(o))
    })
}

/// The response to one decoded request message, whatever encoding it came in.
///
/// The message runs atomically with its audit record: its changes are held back until the
/// record is written, and dropped when it cannot be.
pub fn answer_message(
    server: &Server,
    identity: &str,
    peer: &str,
    tree: &kmip_codec::Ttlv,
    limits: &Settings,
) -> kmip_codec::Ttlv {
    let prepared = prepare_message(server, identity, peer, tree, limits);
    finish_message(server, identity, peer, tree, limits, prepared)
}

enum Failed {
    Lifecycle(lifecycle::LifecycleError),
    Audit(crate::audit::AuditError),
}

impl From<lifecycle::LifecycleError> for Failed {
    fn from(e: lifecycle::LifecycleError) -> Failed {
        Failed::Lifecycle(e)
    }
}

/// A message answered and its audit record queued, its changes not yet committed.
pub struct Prepared {
    now: i64,
    outcome: Result<
        (
            (kmip_codec::Ttlv, crate::audit::Ticket),
            lifecycle::object::Pending,
        ),
        Failed,
    >,
}

impl Prepared {
    /// Whether finishing it waits for a commit (and its fsync).
    pub fn commits(&self) -> bool {
        matches!(&self.outcome, Ok((_, pending)) if !pending.is_empty())
    }

    /// Wait, without blocking the worker, until its audit record is written; finishing it
    /// then finds the record's outcome at once.
    pub async fn audited(&self, server: &Server) {
        if let Ok(((_, ticket), _)) = &self.outcome {
            let _ = server.audit.wait(ticket).await;
        }
    }
}

/// The response and the audit record, without the commit ([`finish_message`] makes it).
pub fn prepare_message(
    server: &Server,
    identity: &str,
    peer: &str,
    tree: &kmip_codec::Ttlv,
    limits: &Settings,
) -> Prepared {
    let now = crate::now();
    let fixed = dispatch::lenient(tree);
    let tree = fixed.as_ref().unwrap_or(tree);
    // the certificate authenticates the connection; a bound username may make the request
    // act as another identity (policy::Credentials)
    let verdict = dispatch::verdict(identity, tree, limits, now);
    let certificate = identity;
    let identity = match &verdict {
        Ok(v) => v.identity.as_str(),
        Err(_) => certificate,
    };
    let manager = server.manager.for_caller(server.caller(identity));
    let outcome = manager.prepare(|m| {
        let resp = match &verdict {
            Ok(_) => dispatch::handle(m, identity, tree, limits, now),
            Err(refusal) => refusal.clone(),
        };
        if tracing::enabled!(tracing::Level::DEBUG) {
            // operations and outcomes only: payloads may hold keys and plaintext
            let enums = |t: &kmip_codec::Ttlv, field| -> Vec<u32> {
                t.children_with(kmip_codec::vocab::tag::BATCH_ITEM)
                    .filter_map(|b| b.child(field).and_then(kmip_codec::Ttlv::as_enum))
                    .collect()
            };
            tracing::debug!(
                identity,
                peer,
                operations = ?enums(tree, kmip_codec::vocab::tag::OPERATION),
                results = ?enums(&resp, kmip_codec::vocab::tag::RESULT_STATUS),
                reasons = ?enums(&resp, kmip_codec::vocab::tag::RESULT_REASON),
                "request"
            );
        }
        let mut record = crate::audit::request_record(now, identity, peer, tree, &resp);
        if identity != certificate {
            record.insert("certificate".into(), certificate.into());
        }
        if let Some(note) = verdict.as_ref().ok().and_then(|v| v.note.clone()) {
            record.insert("credential".into(), note.into());
        }
        crate::audit::add_automatic_changes(&mut record, &manager.automatic_changes());
        Ok((resp, server.audit.append(record)))
    });
    Prepared { now, outcome }
}

/// Commit a prepared message's changes: its response, or the error that nothing was done.
/// A message that lost a race for an object (another request changed it between this one's
/// read and its commit) is run again on the object as it now is, a few times at most.
pub fn finish_message(
    server: &Server,
    identity: &str,
    peer: &str,
    tree: &kmip_codec::Ttlv,
    limits: &Settings,
    mut prepared: Prepared,
) -> kmip_codec::Ttlv {
    const ATTEMPTS: usize = 32;
    // after two lost races a message runs again under this lock, so that requests running
    // again do not keep losing to each other (8 clients changing one object at once)
    static AGAIN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let mut _again = None;
    for attempt in 1.. {
        let now = prepared.now;
        // the changes take effect only once the record saying so is written
        let result = prepared.outcome.and_then(|((resp, ticket), pending)| {
            server.audit.wait_blocking(&ticket).map_err(Failed::Audit)?;
            pending.commit().map(|()| resp).map_err(Failed::from)
        });
        let (reason, why, audited) = match result {
            Ok(r) => return r,
            Err(Failed::Lifecycle(lifecycle::LifecycleError::Store(
                lifecycle::store::StoreError::Conflict(id),
            ))) if attempt < ATTEMPTS => {
                tracing::debug!(identity, object = %id, attempt, "lost a race: run again");
                let resp = dispatch::message_error(
                    dispatch::reply_version(tree),
                    now,
                    OpError::new(rr::GENERAL_FAILURE, "object changed meanwhile: run again"),
                );
                no_effect(server, now, identity, peer, tree, &resp);
                if attempt >= 2 && _again.is_none() {
                    _again = Some(AGAIN.lock().unwrap_or_else(|p| p.into_inner()));
                }
                prepared = prepare_message(server, identity, peer, tree, limits);
                continue;
            }
            Err(Failed::Audit(e)) => {
                tracing::error!(error = %e, "audit log unavailable: request refused");
                let why = "the audit log cannot be written: nothing was done";
                (rr::GENERAL_FAILURE, why.to_owned(), false)
            }
            // refused by the store's own check at commit (a name another request took
            // meanwhile): the client's error, not the store's
            Err(Failed::Lifecycle(e)) if e.result_reason() != rr::GENERAL_FAILURE => {
                (e.result_reason(), format!("{e}: nothing was done"), true)
            }
            Err(Failed::Lifecycle(e)) => {
                tracing::error!(error = %e, "store failure");
                let why = "the store failed: nothing was done";
                (rr::GENERAL_FAILURE, why.to_owned(), true)
            }
        };
        let resp = dispatch::message_error(
            dispatch::reply_version(tree),
            now,
            OpError::new(reason, why),
        );
        if audited {
            no_effect(server, now, identity, peer, tree, &resp);
        }
        return resp;
    }
    unreachable!("the loop returns")
}

/// The record written before a commit that failed says what would have been done: this one
/// says what was (nothing).
fn no_effect(
    server: &Server,
    now: i64,
    identity: &str,
    peer: &str,
    tree: &kmip_codec::Ttlv,
    resp: &kmip_codec::Ttlv,
) {
    let mut record = crate::audit::request_record(now, identity, peer, tree, resp);
    record.insert(
        "commit".into(),
        serde_json::Value::String("failed: the previous record did not take effect".into()),
    );
    if let Err(e) = server.audit.record(record) {
        tracing::error!(error = %e, "audit log unavailable");
    }
}
