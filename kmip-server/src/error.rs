//! Errors as the client sees them: a failed operation's Result Reason and message, mapped in
//! one place to the reasons each protocol version defines, and panics turned into answers.

use kmip_codec::message::{
    Bytes, DateTime, Enum, ProtocolVersion, Req, ResponseBatchItem, ResponseHeader, ResponseMessage,
};
use kmip_codec::vocab;
use kmip_codec::vocab::enums::{result_reason as rr, result_status};
use kmip_codec::Ttlv;
use lifecycle::LifecycleError;

/// A failed operation, as the client is told: each kind has its Result Reason (as KMIP 2.1
/// numbers it) in [`OpError::reason`], and each version's nearest one in
/// [`reason_for_version`]. The message is the Result Message.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpError {
    /// The message cannot be read or answered as a whole (framing, batch rules, limits).
    #[error("{0}")]
    InvalidMessage(String),
    /// A field's value is not one the operation takes.
    #[error("{0}")]
    InvalidField(String),
    /// A field the operation needs is absent.
    #[error("{0} is required")]
    MissingData(String),
    /// No such operation here.
    #[error("{0}")]
    OperationNotSupported(String),
    /// The operation, but not this use of it.
    #[error("{0}")]
    FeatureNotSupported(String),
    /// The caller may not, by policy, grant, state or server rule.
    #[error("{0}")]
    PermissionDenied(String),
    /// A credential that does not authenticate.
    #[error("{0}")]
    AuthenticationFailed(String),
    /// Nothing by that identifier or name.
    #[error("{0}")]
    ItemNotFound(String),
    /// The client's protocol version, which this server does not speak.
    #[error("protocol version {}.{}", .0.0, .0.1)]
    UnsupportedVersion((i32, i32)),
    /// The answer would be larger than the client or the server allows.
    #[error("{0}")]
    ResponseTooLarge(String),
    /// A Poll, Cancel or Check named no operation of the caller's.
    #[error("{0}")]
    AsynchronousCorrelation(String),
    /// The operation waited for approval and its requester canceled it.
    #[error("{0}")]
    CanceledByRequester(String),
    /// A certificate request that does not parse.
    #[error("{0}")]
    InvalidCsr(String),
    /// An attribute index out of range.
    #[error("{0}")]
    IndexOutOfBounds(String),
    /// An Encoding Option other than None or TTLV.
    #[error("{0}")]
    EncodingOption(String),
    /// A Key Format Type the operation cannot answer in.
    #[error("{0}")]
    KeyFormatTypeNotSupported(String),
    /// Check: the object is destroyed.
    #[error("{0}")]
    ObjectDestroyed(String),
    /// Check: fewer units are left than asked for.
    #[error("{0}")]
    UsageLimitExceeded(String),
    /// Check: the usage mask does not allow the use asked about.
    #[error("{0}")]
    IncompatibleUsageMask(String),
    /// The cryptographic library failed.
    #[error("{0}")]
    CryptographicFailure(String),
    /// The server could not do what it should have (the store, the audit log, a panic).
    #[error("{0}")]
    GeneralFailure(String),
    /// The lifecycle's refusal, with the reason it gives it (`LifecycleError::result_reason`).
    #[error("{message}")]
    Lifecycle {
        /// The Result Reason.
        reason: u32,
        /// What the lifecycle said.
        message: String,
    },
}

impl OpError {
    /// The Result Reason, as KMIP 2.1 numbers it.
    pub fn reason(&self) -> u32 {
        match self {
            OpError::InvalidMessage(_) => rr::INVALID_MESSAGE,
            OpError::InvalidField(_) => rr::INVALID_FIELD,
            OpError::MissingData(_) => rr::MISSING_DATA,
            OpError::OperationNotSupported(_) => rr::OPERATION_NOT_SUPPORTED,
            OpError::FeatureNotSupported(_) => rr::FEATURE_NOT_SUPPORTED,
            OpError::PermissionDenied(_) => rr::PERMISSION_DENIED,
            OpError::AuthenticationFailed(_) => rr::AUTHENTICATION_NOT_SUCCESSFUL,
            OpError::ItemNotFound(_) => rr::ITEM_NOT_FOUND,
            OpError::UnsupportedVersion(_) => rr::UNSUPPORTED_PROTOCOL_VERSION,
            OpError::ResponseTooLarge(_) => rr::RESPONSE_TOO_LARGE,
            OpError::AsynchronousCorrelation(_) => rr::INVALID_ASYNCHRONOUS_CORRELATION_VALUE,
            OpError::CanceledByRequester(_) => rr::OPERATION_CANCELED_BY_REQUESTER,
            OpError::InvalidCsr(_) => rr::INVALID_CSR,
            OpError::IndexOutOfBounds(_) => rr::INDEX_OUT_OF_BOUNDS,
            OpError::EncodingOption(_) => rr::ENCODING_OPTION_ERROR,
            OpError::KeyFormatTypeNotSupported(_) => rr::KEY_FORMAT_TYPE_NOT_SUPPORTED,
            OpError::ObjectDestroyed(_) => rr::OBJECT_DESTROYED,
            OpError::UsageLimitExceeded(_) => rr::USAGE_LIMIT_EXCEEDED,
            OpError::IncompatibleUsageMask(_) => rr::INCOMPATIBLE_CRYPTOGRAPHIC_USAGE_MASK,
            OpError::CryptographicFailure(_) => rr::CRYPTOGRAPHIC_FAILURE,
            OpError::GeneralFailure(_) => rr::GENERAL_FAILURE,
            OpError::Lifecycle { reason, .. } => *reason,
        }
    }

    /// An Invalid Field with this message.
    pub fn invalid(message: impl Into<String>) -> OpError {
        OpError::InvalidField(message.into())
    }
}

impl From<LifecycleError> for OpError {
    fn from(e: LifecycleError) -> OpError {
        OpError::Lifecycle {
            reason: e.result_reason(),
            message: e.to_string(),
        }
    }
}

impl From<kmip_codec::message::ModelError> for OpError {
    fn from(e: kmip_codec::message::ModelError) -> OpError {
        OpError::InvalidMessage(e.to_string())
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
        result_reason: Some(Enum(reason_for_version(e.reason(), version))),
        result_message: Some(e.to_string()),
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
    OpError::GeneralFailure("the operation failed inside the server (logged)".into())
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
        assert_eq!(r.unwrap_err().reason(), rr::GENERAL_FAILURE);
        assert_eq!(guarded(|| Ok(7)).unwrap(), 7);
    }
}
