//! Errors as the client sees them: a failed operation's Result Reason and message, mapped in
//! one place to the reasons each protocol version defines, and panics turned into answers.

use kmip_codec::message::{
    Bytes, DateTime, Enum, ProtocolVersion, Req, ResponseBatchItem, ResponseHeader, ResponseMessage,
};
use kmip_codec::vocab;
use kmip_codec::vocab::enums::{result_reason as rr, result_status};
use kmip_codec::Ttlv;
use lifecycle::LifecycleError;

/// A failed operation: a Result Reason (as KMIP 2.1 numbers it) and a message.
#[derive(Clone, Debug)]
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

pub(crate) fn failed(
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
pub(crate) fn header(version: (i32, i32), now: i64, count: usize) -> ResponseHeader {
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
