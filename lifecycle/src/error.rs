//! The lifecycle's one error type, and the one place its variants become KMIP Result Reasons.

use crate::core::CoreError;
use crate::state::IllegalTransition;
use crate::store::StoreError;
use kmip_codec::vocab::enums::result_reason as rr;
use kmip_codec::Tag;
use thiserror::Error;

/// Why a lifecycle operation failed. [`LifecycleError::result_reason`] gives the KMIP Result
/// Reason.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LifecycleError {
    /// No object has this identifier, or none the caller may see.
    #[error("object not found")]
    NotFound,
    /// The state machine forbids the change in the object's state.
    #[error(transparent)]
    WrongState(#[from] IllegalTransition),
    /// The object is destroyed.
    #[error("object has been destroyed")]
    Destroyed,
    /// The object is in archival storage.
    #[error("object is archived: recover it first")]
    Archived,
    /// The object's state forbids this use of it.
    #[error("object is not usable in state {0:?} for this operation")]
    NotUsable(crate::state::State),
    /// A field of the request is invalid; the text says which and why.
    #[error("invalid field: {0}")]
    InvalidField(String),
    /// The server alone sets this attribute.
    #[error("attribute {0:?} is set by the server only")]
    ReadOnlyAttribute(Tag),
    /// A second instance of an attribute that allows one.
    #[error("attribute {0:?} may have one instance only")]
    SingleValuedAttribute(Tag),
    /// An attribute this server does not support.
    #[error("attribute {0:?} is not supported")]
    UnsupportedAttribute(Tag),
    /// The attribute asked for is not on the object.
    #[error("attribute not found")]
    AttributeNotFound,
    /// Another object already has this name.
    #[error("the name {0:?} is taken: names are unique within the server")]
    NonUniqueName(String),
    /// A feature or parameter this server does not support.
    #[error("not supported: {0}")]
    NotSupported(String),
    /// The caller may not do this; the text says why.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// No approval request has this identifier.
    #[error("no approval request {0}")]
    ApprovalNotFound(String),
    /// The identity already has this many open approval requests.
    #[error("{0} approval requests of this identity are open or recently closed already: wait for decisions, or cancel some, and try again later")]
    TooManyApprovalRequests(usize),
    /// The key's Extractable attribute is false.
    #[error("the key may not leave the server: it is not extractable")]
    NotExtractable,
    /// The key is sensitive: it leaves the server wrapped, or not at all.
    #[error("the key is sensitive and leaves the server only wrapped")]
    Sensitive,
    /// The key's Cryptographic Usage Mask forbids this operation.
    #[error("the cryptographic usage mask does not allow this operation")]
    IncompatibleUsageMask,
    /// The request asks for a key weaker than the quantum-safe policy allows.
    #[error("the key asked for would not be quantum safe")]
    NotQuantumSafe,
    /// The work ran past the server's time limit for it.
    #[error("stopped after {}s, the server's limit for this work: narrow the request", .0.as_secs_f32())]
    OutOfTime(std::time::Duration),
    /// The client went away; the work stopped.
    #[error("canceled: the client has gone")]
    Canceled,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The key core failed.
    #[error(transparent)]
    Core(CoreError),
}

impl From<CoreError> for LifecycleError {
    fn from(e: CoreError) -> Self {
        // the core enforces the export rule; its refusals are the lifecycle's own
        match e {
            CoreError::NotExtractable => LifecycleError::NotExtractable,
            CoreError::Sensitive => LifecycleError::Sensitive,
            e => LifecycleError::Core(e),
        }
    }
}

impl LifecycleError {
    /// The KMIP 2.1 Result Reason. A server answering a 1.x client maps values that 1.x does
    /// not define (see `kmip-server`).
    pub fn result_reason(&self) -> u32 {
        match self {
            // 2.x says Object Not Found (OASIS BL-M-4); 1.x clients get Item Not Found
            LifecycleError::NotFound => rr::OBJECT_NOT_FOUND,
            LifecycleError::WrongState(t) => t.result_reason(),
            LifecycleError::Destroyed => rr::OBJECT_DESTROYED,
            LifecycleError::Archived => rr::OBJECT_ARCHIVED,
            LifecycleError::NotUsable(_) => rr::WRONG_KEY_LIFECYCLE_STATE,
            LifecycleError::InvalidField(_) => rr::INVALID_FIELD,
            LifecycleError::ReadOnlyAttribute(_) => rr::ATTRIBUTE_READ_ONLY,
            LifecycleError::SingleValuedAttribute(_) => rr::ATTRIBUTE_SINGLE_VALUED,
            LifecycleError::UnsupportedAttribute(_) => rr::UNSUPPORTED_ATTRIBUTE,
            LifecycleError::AttributeNotFound => rr::ATTRIBUTE_NOT_FOUND,
            LifecycleError::NonUniqueName(_) => rr::NON_UNIQUE_NAME_ATTRIBUTE,
            LifecycleError::NotSupported(_) => rr::FEATURE_NOT_SUPPORTED,
            LifecycleError::PermissionDenied(_) => rr::PERMISSION_DENIED,
            LifecycleError::ApprovalNotFound(_) => rr::ITEM_NOT_FOUND,
            LifecycleError::TooManyApprovalRequests(_) => rr::SERVER_LIMIT_EXCEEDED,
            LifecycleError::NotExtractable => rr::NOT_EXTRACTABLE,
            LifecycleError::Sensitive => rr::SENSITIVE,
            LifecycleError::IncompatibleUsageMask => rr::INCOMPATIBLE_CRYPTOGRAPHIC_USAGE_MASK,
            // the OASIS test case QS-M-2 answers so
            LifecycleError::NotQuantumSafe => rr::GENERAL_FAILURE,
            LifecycleError::OutOfTime(_) => rr::SERVER_LIMIT_EXCEEDED,
            LifecycleError::Canceled => rr::OPERATION_CANCELED_BY_REQUESTER,
            LifecycleError::Store(StoreError::NameTaken(_)) => rr::NON_UNIQUE_NAME_ATTRIBUTE,
            LifecycleError::Store(_) => rr::GENERAL_FAILURE,
            LifecycleError::Core(CoreError::KeyFormat { .. }) => rr::KEY_FORMAT_TYPE_NOT_SUPPORTED,
            // the OASIS test cases (CS-BC-M-11) answer a missing IV with Invalid Message
            LifecycleError::Core(CoreError::MissingIv) => rr::INVALID_MESSAGE,
            LifecycleError::Core(CoreError::Unsupported(_)) => rr::FEATURE_NOT_SUPPORTED,
            LifecycleError::Core(CoreError::InvalidCorrelation) => rr::INVALID_CORRELATION_VALUE,
            LifecycleError::Core(CoreError::StreamLimit(_)) => rr::SERVER_LIMIT_EXCEEDED,
            // the OASIS test cases (CS-BC-M-GCM-1) answer an invalid tag length so
            LifecycleError::Core(CoreError::TagLength(_)) => rr::GENERAL_FAILURE,
            LifecycleError::Core(CoreError::BadParameters(_)) => rr::BAD_CRYPTOGRAPHIC_PARAMETERS,
            LifecycleError::Core(CoreError::InvalidField(_)) => rr::INVALID_FIELD,
            LifecycleError::Core(_) => rr::CRYPTOGRAPHIC_FAILURE,
        }
    }
}
