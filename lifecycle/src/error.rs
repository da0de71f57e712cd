//! The lifecycle's one error type, and the one place its variants become KMIP Result Reasons.

use crate::core::CoreError;
use crate::state::IllegalTransition;
use crate::store::StoreError;
use kmip_codec::vocab::enums::result_reason as rr;
use kmip_codec::Tag;
use thiserror::Error;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LifecycleError {
    #[error("object not found")]
    NotFound,
    #[error(transparent)]
    WrongState(#[from] IllegalTransition),
    #[error("object has been destroyed")]
    Destroyed,
    #[error("object is archived: recover it first")]
    Archived,
    #[error("object is not usable in state {0:?} for this operation")]
    NotUsable(crate::state::State),
    #[error("invalid field: {0}")]
    InvalidField(String),
    #[error("attribute {0:?} is set by the server only")]
    ReadOnlyAttribute(Tag),
    #[error("attribute {0:?} may have one instance only")]
    SingleValuedAttribute(Tag),
    #[error("attribute {0:?} is not supported")]
    UnsupportedAttribute(Tag),
    #[error("attribute not found")]
    AttributeNotFound,
    #[error("the name {0:?} is taken: names are unique within the server")]
    NonUniqueName(String),
    #[error("not supported: {0}")]
    NotSupported(String),
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    #[error("the key may not leave the server: it is not extractable")]
    NotExtractable,
    #[error("the key is sensitive and leaves the server only wrapped")]
    Sensitive,
    #[error("the cryptographic usage mask does not allow this operation")]
    IncompatibleUsageMask,
    #[error("the key asked for would not be quantum safe")]
    NotQuantumSafe,
    #[error("stopped after {}s, the server's limit for this work: narrow the request", .0.as_secs_f32())]
    OutOfTime(std::time::Duration),
    #[error("canceled: the client has gone")]
    Canceled,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Core(#[from] CoreError),
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
