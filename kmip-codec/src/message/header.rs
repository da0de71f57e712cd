//! Message envelopes: headers, batch items, and the request and response messages.

use super::{Bytes, DateTime, Enum, ModelError, Req};
use crate::kmip_struct;
use crate::ttlv::Ttlv;
use crate::vocab::tag;

kmip_struct! {
    /// A KMIP protocol version, as the header of every message carries it.
    pub struct ProtocolVersion {
        /// 1 or 2.
        major: Req<i32> = PROTOCOL_VERSION_MAJOR,
        /// 0 to 4 for 1.x, 0 or 1 for 2.x.
        minor: Req<i32> = PROTOCOL_VERSION_MINOR,
    }
}

impl ProtocolVersion {
    /// The version `major`.`minor`.
    pub fn new(major: i32, minor: i32) -> ProtocolVersion {
        ProtocolVersion {
            major: Req(major),
            minor: Req(minor),
        }
    }
}

kmip_struct! {
    /// One credential of a request: who the client says it is.
    pub struct Credential {
        /// Username and Password, Device, Attestation, or a vendor's.
        credential_type: Req<Enum> = CREDENTIAL_TYPE,
        /// Its shape depends on the Credential Type (Username and Password, Device, ...).
        credential_value: Req<Ttlv> = CREDENTIAL_VALUE,
    }
}

kmip_struct! {
    /// The credentials of a request.
    pub struct Authentication {
        /// One or more; a server uses those it understands.
        credential: Vec<Credential> = CREDENTIAL,
    }
}

kmip_struct! {
    /// What a request says about all of its batch items.
    pub struct RequestHeader {
        /// The version the request speaks, and the answer must.
        protocol_version: Req<ProtocolVersion> = PROTOCOL_VERSION,
        /// The largest response, in bytes, the client accepts.
        maximum_response_size: Option<i32> = MAXIMUM_RESPONSE_SIZE,
        /// The client's own value, echoed in the response.
        client_correlation_value: Option<String> = CLIENT_CORRELATION_VALUE,
        /// The server's value for this exchange, given back by the client (2.x).
        server_correlation_value: Option<String> = SERVER_CORRELATION_VALUE,
        /// A Boolean in 1.x, an Enumeration in 2.x.
        asynchronous_indicator: Option<Ttlv> = ASYNCHRONOUS_INDICATOR,
        /// The client can take an attestation challenge.
        attestation_capable_indicator: Option<bool> = ATTESTATION_CAPABLE_INDICATOR,
        /// The kinds of attestation the client can give.
        attestation_type: Vec<Enum> = ATTESTATION_TYPE,
        /// Who the client claims to be, beyond its TLS certificate.
        authentication: Option<Authentication> = AUTHENTICATION,
        /// What to do after a failed batch item: Stop, Continue or Undo.
        batch_error_continuation_option: Option<Enum> = BATCH_ERROR_CONTINUATION_OPTION,
        /// Whether the items must run in order.
        batch_order_option: Option<bool> = BATCH_ORDER_OPTION,
        /// When the client sent the request.
        time_stamp: Option<DateTime> = TIME_STAMP,
        /// How many batch items follow.
        batch_count: Req<i32> = BATCH_COUNT,
    }
}

kmip_struct! {
    /// What a response says about all of its batch items.
    pub struct ResponseHeader {
        /// The version of the answer.
        protocol_version: Req<ProtocolVersion> = PROTOCOL_VERSION,
        /// When the server answered.
        time_stamp: Req<DateTime> = TIME_STAMP,
        /// A nonce the client returns in an attestation.
        nonce: Option<Ttlv> = NONCE,
        /// Hash(Time Stamp, S1, Hash(S2)), when the client used a Hashed Password credential.
        server_hashed_password: Option<Bytes> = SERVER_HASHED_PASSWORD,
        /// The kinds of attestation the server accepts.
        attestation_type: Vec<Enum> = ATTESTATION_TYPE,
        /// The request's Client Correlation Value.
        client_correlation_value: Option<String> = CLIENT_CORRELATION_VALUE,
        /// The server's value for this exchange.
        server_correlation_value: Option<String> = SERVER_CORRELATION_VALUE,
        /// How many batch items follow.
        batch_count: Req<i32> = BATCH_COUNT,
    }
}

kmip_struct! {
    /// One operation of a request. The payload stays a tree here: its shape depends on the
    /// operation, and [`crate::ops::RequestPayload`] gives it a type.
    pub struct RequestBatchItem {
        /// Which operation.
        operation: Req<Enum> = OPERATION,
        /// The Data output of the operation is not to be returned to the client (2.x).
        ephemeral: Option<bool> = EPHEMERAL,
        /// Set by the client to match the response item to this one.
        unique_batch_item_id: Option<Bytes> = UNIQUE_BATCH_ITEM_ID,
        /// The operation's request payload.
        request_payload: Option<Ttlv> = REQUEST_PAYLOAD,
        /// Vendor extensions for this item.
        message_extension: Vec<Ttlv> = MESSAGE_EXTENSION,
    }
}

kmip_struct! {
    /// The answer to one batch item.
    pub struct ResponseBatchItem {
        /// The operation answered.
        operation: Option<Enum> = OPERATION,
        /// The request item's Unique Batch Item ID.
        unique_batch_item_id: Option<Bytes> = UNIQUE_BATCH_ITEM_ID,
        /// Success, Operation Failed, Operation Pending or Operation Undone.
        result_status: Req<Enum> = RESULT_STATUS,
        /// Why it failed.
        result_reason: Option<Enum> = RESULT_REASON,
        /// A human-readable explanation of the failure.
        result_message: Option<String> = RESULT_MESSAGE,
        /// What the client polls with when the operation is pending.
        asynchronous_correlation_value: Option<Bytes> = ASYNCHRONOUS_CORRELATION_VALUE,
        /// The operation's response payload.
        response_payload: Option<Ttlv> = RESPONSE_PAYLOAD,
        /// A vendor extension for this item.
        message_extension: Option<Ttlv> = MESSAGE_EXTENSION,
    }
}

kmip_struct! {
    /// A request: one header and its batch items.
    pub struct RequestMessage {
        /// What the whole request says.
        header: Req<RequestHeader> = REQUEST_HEADER,
        /// The operations, each answered in the response.
        batch_item: Vec<RequestBatchItem> = BATCH_ITEM,
    }
}

kmip_struct! {
    /// A response: one header and one answer per request item.
    pub struct ResponseMessage {
        /// What the whole response says.
        header: Req<ResponseHeader> = RESPONSE_HEADER,
        /// The answers.
        batch_item: Vec<ResponseBatchItem> = BATCH_ITEM,
    }
}

/// Either kind of message.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// A Request Message, as a client sends it.
    Request(RequestMessage),
    /// A Response Message, as a server answers.
    Response(ResponseMessage),
}

impl Message {
    /// Decode either kind, by the tag of the outer structure.
    pub fn from_ttlv(item: &Ttlv) -> Result<Message, ModelError> {
        use super::FieldValue;
        match item.tag {
            tag::REQUEST_MESSAGE => Ok(Message::Request(RequestMessage::decode(item)?)),
            tag::RESPONSE_MESSAGE => Ok(Message::Response(ResponseMessage::decode(item)?)),
            t => Err(ModelError::NotAMessage(t)),
        }
    }

    /// The message as a tree, with its own outer tag.
    pub fn to_ttlv(&self) -> Ttlv {
        match self {
            Message::Request(m) => Ttlv::structure(tag::REQUEST_MESSAGE, m.to_children()),
            Message::Response(m) => Ttlv::structure(tag::RESPONSE_MESSAGE, m.to_children()),
        }
    }
}

impl RequestMessage {
    /// The message as a Request Message tree.
    pub fn to_ttlv(&self) -> Ttlv {
        Ttlv::structure(tag::REQUEST_MESSAGE, self.to_children())
    }
}

impl ResponseMessage {
    /// The message as a Response Message tree.
    pub fn to_ttlv(&self) -> Ttlv {
        Ttlv::structure(tag::RESPONSE_MESSAGE, self.to_children())
    }
}

/// The protocol version a message speaks.
pub fn version_of(header: &ProtocolVersion) -> (i32, i32) {
    (header.major.0, header.minor.0)
}
