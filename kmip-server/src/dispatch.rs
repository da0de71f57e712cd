//! From a request message to a response message: protocol version, batch items, the ID
//! Placeholder, batch error continuation, maximum response size, and the mapping of every
//! error to a Result Reason the client's version knows.

use crate::ops;
use kmip_codec::message::{
    Bytes, DateTime, Enum, FieldValue, ProtocolVersion, Req, RequestBatchItem, RequestMessage,
    ResponseBatchItem, ResponseHeader, ResponseMessage,
};
use kmip_codec::vocab::enums::{
    batch_error_continuation_option as beco, result_reason as rr, result_status,
};
use kmip_codec::vocab::{self, tag};
use kmip_codec::{Limits, Ttlv};
use lifecycle::{LifecycleError, Manager};

/// Versions we speak, in order of preference.
pub const VERSIONS: &[(i32, i32)] = &[(2, 1), (2, 0), (1, 4), (1, 3), (1, 2), (1, 1), (1, 0)];

/// Server-wide settings the dispatcher enforces.
pub struct Settings {
    pub max_batch_items: usize,
    pub decode: Limits,
    pub credentials: crate::policy::Credentials,
    /// Operations each listed identity is limited to; identities not listed may do anything.
    pub policies: std::collections::HashMap<String, Vec<u32>>,
    /// Test mode: the Interop operation answers.
    pub interop: bool,
    /// Certificate profiles for Certify.
    pub profiles: crate::ca::Profiles,
}

/// A failed operation: a Result Reason (as KMIP 2.1 numbers it) and a message.
#[derive(Debug)]
pub struct OpError {
    pub reason: u32,
    pub message: String,
}

impl OpError {
    pub fn new(reason: u32, message: impl Into<String>) -> OpError {
        OpError {
            reason,
            message: message.into(),
        }
    }
    pub fn invalid(message: impl Into<String>) -> OpError {
        OpError::new(rr::INVALID_FIELD, message)
    }
}

impl From<LifecycleError> for OpError {
    fn from(e: LifecycleError) -> OpError {
        OpError::new(e.result_reason(), e.to_string())
    }
}

impl From<kmip_codec::message::ModelError> for OpError {
    fn from(e: kmip_codec::message::ModelError) -> OpError {
        OpError::new(rr::INVALID_MESSAGE, e.to_string())
    }
}

/// What one operation may use: the lifecycle, the caller, the clock and the message's version.
pub struct Ctx<'a> {
    pub manager: &'a Manager,
    pub identity: &'a str,
    pub now: i64,
    pub version: (i32, i32),
    /// The identifier the previous item of this batch created or named (the ID Placeholder).
    pub placeholder: Option<String>,
    /// The operations the caller's policy allows, if it has one.
    pub allowed: Option<&'a [u32]>,
    pub settings: &'a Settings,
}

impl Ctx<'_> {
    pub fn major(&self) -> i32 {
        self.version.0
    }

    /// The Unique Identifier of a request, or the ID Placeholder when it is omitted.
    pub fn uid(&self, given: Option<&String>) -> Result<String, OpError> {
        match given {
            Some(t) => Ok(t.clone()),
            None => self.placeholder.clone().ok_or_else(|| {
                OpError::new(
                    rr::ITEM_NOT_FOUND,
                    "no Unique Identifier and no ID Placeholder",
                )
            }),
        }
    }
}

/// A Result Reason as the client's version answers it. 1.x lacks many of 2.x's reasons; each
/// maps to the nearest 1.x one (the 1.4 error tables answer state and attribute errors with
/// Permission Denied or Invalid Field). 2.0 defines Wrong Key Lifecycle State but its test
/// cases answer a key used outside its state or window, and an attribute change its state
/// forbids, with Permission Denied, as 1.x does; 2.1's answer Wrong Key Lifecycle State.
pub fn reason_for_version(reason: u32, (major, minor): (i32, i32)) -> u32 {
    if (major, minor) == (2, 0) && reason == rr::WRONG_KEY_LIFECYCLE_STATE {
        return rr::PERMISSION_DENIED;
    }
    let defined = vocab::enum_def("ResultReason")
        .and_then(|d| d.by_value(reason))
        .is_some_and(|e| e.in_major(major));
    if defined {
        return reason;
    }
    match reason {
        rr::WRONG_KEY_LIFECYCLE_STATE
        | rr::ATTRIBUTE_READ_ONLY
        | rr::READ_ONLY_ATTRIBUTE
        | rr::ATTRIBUTE_SINGLE_VALUED
        | rr::INCOMPATIBLE_CRYPTOGRAPHIC_USAGE_MASK
        | rr::NOT_AUTHORISED
        | rr::USAGE_LIMIT_EXCEEDED => rr::PERMISSION_DENIED,
        rr::UNSUPPORTED_ATTRIBUTE
        | rr::ATTRIBUTE_NOT_FOUND
        | rr::ATTRIBUTE_INSTANCE_NOT_FOUND
        | rr::INVALID_ATTRIBUTE
        | rr::INVALID_ATTRIBUTE_VALUE
        | rr::INVALID_DATA_TYPE
        | rr::INVALID_OBJECT_TYPE
        | rr::UNKNOWN_ENUMERATION
        | rr::UNKNOWN_TAG
        | rr::INVALID_CORRELATION_VALUE
        | rr::INVALID_CSR => rr::INVALID_FIELD,
        rr::OBJECT_NOT_FOUND | rr::OBJECT_DESTROYED => rr::ITEM_NOT_FOUND,
        rr::UNSUPPORTED_PROTOCOL_VERSION | rr::CODEC_ERROR => rr::INVALID_MESSAGE,
        rr::UNSUPPORTED_CRYPTOGRAPHIC_PARAMETERS | rr::BAD_CRYPTOGRAPHIC_PARAMETERS => {
            rr::INVALID_FIELD
        }
        _ => rr::GENERAL_FAILURE,
    }
}

fn failed(
    op: Option<Enum>,
    id: Option<Bytes>,
    e: OpError,
    version: (i32, i32),
) -> ResponseBatchItem {
    ResponseBatchItem {
        operation: op,
        unique_batch_item_id: id,
        result_status: Req(Enum(result_status::OPERATION_FAILED)),
        result_reason: Some(Enum(reason_for_version(e.reason, version))),
        result_message: Some(e.message),
        ..Default::default()
    }
}

/// A response header. The Client Correlation Value is not echoed: KMIP 2.1 §9.5 has it in the
/// request for client-to-server operations and in the response only for server-to-client ones.
fn header(version: (i32, i32), now: i64, count: usize) -> ResponseHeader {
    ResponseHeader {
        protocol_version: Req(ProtocolVersion::new(version.0, version.1)),
        time_stamp: Req(DateTime(now)),
        batch_count: Req(count as i32),
        ..Default::default()
    }
}

/// A whole-message failure (the request could not be read as a request).
pub fn message_error(version: (i32, i32), now: i64, e: OpError) -> Ttlv {
    let item = failed(None, None, e, version);
    ResponseMessage {
        header: Req(header(version, now, 1)),
        batch_item: vec![item],
    }
    .to_ttlv()
}

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

/// Who a request acts as, from its certificate identity and the Authentication in its header
/// (see `policy::Credentials`); the refusal, answered in the request's version, otherwise.
pub fn verdict(
    identity: &str,
    tree: &Ttlv,
    limits: &Settings,
    now: i64,
) -> Result<crate::policy::Verdict, Ttlv> {
    let auth = tree
        .child(tag::REQUEST_HEADER)
        .and_then(|h| h.child(tag::AUTHENTICATION));
    let checked = match auth.map(kmip_codec::message::Authentication::decode) {
        Some(Err(e)) => Err(OpError::from(e)),
        Some(Ok(a)) => limits.credentials.check(identity, Some(&a)),
        None => limits.credentials.check(identity, None),
    };
    checked.map_err(|e| message_error(reply_version(tree), now, e))
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

/// Answer one decoded request tree (its credentials already checked: [`verdict`]).
pub fn handle(manager: &Manager, identity: &str, tree: &Ttlv, limits: &Settings, now: i64) -> Ttlv {
    let fallback = reply_version(tree);
    if tree.tag != tag::REQUEST_MESSAGE {
        return message_error(
            fallback,
            now,
            OpError::new(rr::INVALID_MESSAGE, "not a Request Message"),
        );
    }
    let req = match RequestMessage::decode(tree) {
        Ok(r) => r,
        Err(e) => return message_error(fallback, now, e.into()),
    };
    let pv = &req.header.protocol_version;
    let version = (pv.major.0, pv.minor.0);
    if !VERSIONS.contains(&version) {
        // answer in the highest version we share with the client's major, else 1.0
        let v = VERSIONS
            .iter()
            .copied()
            .find(|v| v.0 == version.0)
            .unwrap_or((1, 0));
        return message_error(
            v,
            now,
            OpError::new(
                rr::UNSUPPORTED_PROTOCOL_VERSION,
                format!("protocol version {}.{}", version.0, version.1),
            ),
        );
    }
    if req.batch_item.len() > limits.max_batch_items {
        return message_error(
            version,
            now,
            OpError::new(
                rr::INVALID_MESSAGE,
                format!("more than {} batch items", limits.max_batch_items),
            ),
        );
    }
    if req.batch_item.len() != req.header.batch_count.0 as usize {
        return message_error(
            version,
            now,
            OpError::new(
                rr::INVALID_MESSAGE,
                "Batch Count disagrees with the batch items",
            ),
        );
    }
    let continuation = req
        .header
        .batch_error_continuation_option
        .map(|e| e.0)
        .unwrap_or(beco::STOP);
    let base = Ctx {
        manager,
        identity,
        now,
        version,
        placeholder: None,
        allowed: limits.policies.get(identity).map(Vec::as_slice),
        settings: limits,
    };
    let items = if continuation == beco::UNDO {
        match run_atomically(base, &req.batch_item) {
            Ok(items) => items,
            Err(e) => return message_error(version, now, e),
        }
    } else {
        run_items(base, &req.batch_item, continuation == beco::STOP).0
    };
    let mut resp = ResponseMessage {
        header: Req(header(version, now, items.len())),
        batch_item: items,
    };
    if let Some(max) = req.header.maximum_response_size {
        if kmip_codec::ttlv::encoded_len(&resp.to_ttlv()) > max.max(0) as usize {
            for b in &mut resp.batch_item {
                *b = failed(
                    b.operation,
                    b.unique_batch_item_id.clone(),
                    OpError::new(
                        rr::RESPONSE_TOO_LARGE,
                        "the response exceeds the Maximum Response Size",
                    ),
                    version,
                );
            }
        }
    }
    resp.to_ttlv()
}

/// Run the items in order; with `stop`, none after the first failure. Whether one failed.
fn run_items(
    mut ctx: Ctx<'_>,
    batch: &[RequestBatchItem],
    stop: bool,
) -> (Vec<ResponseBatchItem>, bool) {
    let mut items = Vec::with_capacity(batch.len());
    for item in batch {
        let out = run_item(&mut ctx, item);
        let failed = out.result_status.0 .0 != result_status::SUCCESS;
        items.push(out);
        if failed && stop {
            return (items, true);
        }
    }
    (items, false)
}

/// Batch Error Continuation Option Undo: every change of the batch is held back and committed
/// together; when an item fails nothing is kept, the items before it answer Operation Undone
/// (with the payload they had produced, as the OASIS test case BL-M-2 expects) and those after
/// it are not run.
fn run_atomically(
    ctx: Ctx<'_>,
    batch: &[RequestBatchItem],
) -> Result<Vec<ResponseBatchItem>, OpError> {
    enum Abort {
        Undone(Vec<ResponseBatchItem>),
        Store(LifecycleError),
    }
    impl From<LifecycleError> for Abort {
        fn from(e: LifecycleError) -> Abort {
            Abort::Store(e)
        }
    }
    let (now, version, identity, allowed, settings) = (
        ctx.now,
        ctx.version,
        ctx.identity,
        ctx.allowed,
        ctx.settings,
    );
    let outcome = ctx.manager.atomically(|m| {
        let inner = Ctx {
            manager: m,
            identity,
            now,
            version,
            placeholder: None,
            allowed,
            settings,
        };
        match run_items(inner, batch, true) {
            (items, false) => Ok(items),
            (items, true) => Err(Abort::Undone(items)),
        }
    });
    match outcome {
        Ok(items) => Ok(items),
        Err(Abort::Undone(mut items)) => {
            let last = items.len() - 1;
            // an undone item answers that it was undone, with the identifier it named (as
            // the test case BL-M-2 shows) and no result: a ciphertext, a signature or a
            // derived value would outlive the rollback of what paid for it (a Usage Limits
            // count), and Undo would buy unlimited uses
            for b in &mut items[..last] {
                b.result_status = Req(Enum(result_status::OPERATION_UNDONE));
                if let Some(p) = b.response_payload.as_mut().and_then(Ttlv::children_mut) {
                    p.retain(|c| c.tag == tag::UNIQUE_IDENTIFIER);
                }
            }
            Ok(items)
        }
        Err(Abort::Store(e)) => Err(e.into()),
    }
}

fn run_item(ctx: &mut Ctx<'_>, item: &RequestBatchItem) -> ResponseBatchItem {
    let op = item.operation.0;
    let id = item.unique_batch_item_id.clone();
    let empty = Ttlv::structure(tag::REQUEST_PAYLOAD, Vec::new());
    let payload = item.request_payload.as_ref().unwrap_or(&empty);
    let result = if ctx.allowed.is_some_and(|a| !a.contains(&op.0)) {
        Err(OpError::new(
            rr::PERMISSION_DENIED,
            "the identity's policy does not allow this operation",
        ))
    } else {
        // grants name operations: the lifecycle checks them against this one
        let scoped = ctx.manager.with_operation(op.0);
        let mut sub = Ctx {
            manager: &scoped,
            identity: ctx.identity,
            now: ctx.now,
            version: ctx.version,
            placeholder: ctx.placeholder.take(),
            allowed: ctx.allowed,
            settings: ctx.settings,
        };
        let r = guarded(|| ops::apply(&mut sub, op.0, payload));
        ctx.placeholder = sub.placeholder;
        r
    };
    match result {
        Ok(p) => ResponseBatchItem {
            operation: Some(op),
            unique_batch_item_id: id,
            result_status: Req(Enum(result_status::SUCCESS)),
            response_payload: Some(p.encode(tag::RESPONSE_PAYLOAD)),
            ..Default::default()
        },
        Err(e) => {
            tracing::debug!(operation = op.0, reason = e.reason, "operation failed");
            failed(Some(op), id, e, ctx.version)
        }
    }
}

/// Run one operation; a panic in it (a bug, or an assertion in a library such as OpenSSL's
/// bindings) becomes a General Failure for this batch item, logged with its backtrace, and
/// the connection and the rest of the batch go on.
pub fn guarded<T>(operation: impl FnOnce() -> Result<T, OpError>) -> Result<T, OpError> {
    log_panics();
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(operation))
        .unwrap_or_else(|_| Err(panic_error()))
}

fn panic_error() -> OpError {
    OpError::new(
        rr::GENERAL_FAILURE,
        "the operation failed inside the server (logged)",
    )
}

/// The answer to a whole message whose handling panicked outside any one operation.
pub fn panicked(version: (i32, i32), now: i64) -> Ttlv {
    message_error(version, now, panic_error())
}

/// Log every panic (the thread, the message, the backtrace) as an error, once installed; a
/// caught panic still leaves its trace in the log.
pub fn log_panics() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let backtrace = std::backtrace::Backtrace::force_capture();
            let thread = std::thread::current();
            tracing::error!(
                thread = thread.name().unwrap_or("unnamed"),
                %backtrace,
                "{info}"
            );
        }));
    });
}

#[cfg(test)]
mod panic_tests {
    use super::*;

    /// OpenSSL's bindings assert on an IV shorter than the mode's: such a panic answers
    /// General Failure for its item instead of ending the connection.
    #[test]
    fn a_panic_becomes_a_general_failure() {
        let r: Result<(), OpError> = guarded(|| {
            use openssl::symm::{Cipher, Crypter, Mode};
            let _c = Crypter::new(Cipher::aes_128_cbc(), Mode::Encrypt, &[0u8; 16], Some(&[]));
            Ok(())
        });
        assert_eq!(r.unwrap_err().reason, rr::GENERAL_FAILURE);
        assert_eq!(guarded(|| Ok(7)).unwrap(), 7);
    }
}
