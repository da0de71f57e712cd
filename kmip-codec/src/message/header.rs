//! Message envelopes: headers, batch items, and the request and response messages.

use super::{Bytes, DateTime, Enum, ModelError, Req};
use crate::kmip_struct;
use crate::ttlv::Ttlv;
use crate::vocab::tag;

kmip_struct! {
    pub struct ProtocolVersion {
        major: Req<i32> = PROTOCOL_VERSION_MAJOR,
        minor: Req<i32> = PROTOCOL_VERSION_MINOR,
    }
}

impl ProtocolVersion {
    pub fn new(major: i32, minor: i32) -> ProtocolVersion {
        ProtocolVersion {
            major: Req(major),
            minor: Req(minor),
        }
    }
}

kmip_struct! {
    pub struct Credential {
        credential_type: Req<Enum> = CREDENTIAL_TYPE,
        /// Its shape depends on the Credential Type (Username and Password, Device, ...).
        credential_value: Req<Ttlv> = CREDENTIAL_VALUE,
    }
}

kmip_struct! {
    pub struct Authentication {
        credential: Vec<Credential> = CREDENTIAL,
    }
}

kmip_struct! {
    pub struct RequestHeader {
        protocol_version: Req<ProtocolVersion> = PROTOCOL_VERSION,
        maximum_response_size: Option<i32> = MAXIMUM_RESPONSE_SIZE,
        client_correlation_value: Option<String> = CLIENT_CORRELATION_VALUE,
        server_correlation_value: Option<String> = SERVER_CORRELATION_VALUE,
        /// A Boolean in 1.x, an Enumeration in 2.x.
        asynchronous_indicator: Option<Ttlv> = ASYNCHRONOUS_INDICATOR,
        attestation_capable_indicator: Option<bool> = ATTESTATION_CAPABLE_INDICATOR,
        attestation_type: Vec<Enum> = ATTESTATION_TYPE,
        authentication: Option<Authentication> = AUTHENTICATION,
        batch_error_continuation_option: Option<Enum> = BATCH_ERROR_CONTINUATION_OPTION,
        batch_order_option: Option<bool> = BATCH_ORDER_OPTION,
        time_stamp: Option<DateTime> = TIME_STAMP,
        batch_count: Req<i32> = BATCH_COUNT,
    }
}

kmip_struct! {
    pub struct ResponseHeader {
        protocol_version: Req<ProtocolVersion> = PROTOCOL_VERSION,
        time_stamp: Req<DateTime> = TIME_STAMP,
        nonce: Option<Ttlv> = NONCE,
        server_hashed_password: Option<Bytes> = SERVER_HASHED_PASSWORD,
        attestation_type: Vec<Enum> = ATTESTATION_TYPE,
        client_correlation_value: Option<String> = CLIENT_CORRELATION_VALUE,
        server_correlation_value: Option<String> = SERVER_CORRELATION_VALUE,
        batch_count: Req<i32> = BATCH_COUNT,
    }
}

kmip_struct! {
    /// One operation of a request. The payload stays a tree here: its shape depends on the
    /// operation, and [`crate::ops::RequestPayload`] gives it a type.
    pub struct RequestBatchItem {
        operation: Req<Enum> = OPERATION,
        ephemeral: Option<bool> = EPHEMERAL,
        unique_batch_item_id: Option<Bytes> = UNIQUE_BATCH_ITEM_ID,
        request_payload: Option<Ttlv> = REQUEST_PAYLOAD,
        message_extension: Vec<Ttlv> = MESSAGE_EXTENSION,
    }
}

kmip_struct! {
    pub struct ResponseBatchItem {
        operation: Option<Enum> = OPERATION,
        unique_batch_item_id: Option<Bytes> = UNIQUE_BATCH_ITEM_ID,
        result_status: Req<Enum> = RESULT_STATUS,
        result_reason: Option<Enum> = RESULT_REASON,
        result_message: Option<String> = RESULT_MESSAGE,
        asynchronous_correlation_value: Option<Bytes> = ASYNCHRONOUS_CORRELATION_VALUE,
        response_payload: Option<Ttlv> = RESPONSE_PAYLOAD,
        message_extension: Option<Ttlv> = MESSAGE_EXTENSION,
    }
}

kmip_struct! {
    pub struct RequestMessage {
        header: Req<RequestHeader> = REQUEST_HEADER,
        batch_item: Vec<RequestBatchItem> = BATCH_ITEM,
    }
}

kmip_struct! {
    pub struct ResponseMessage {
        header: Req<ResponseHeader> = RESPONSE_HEADER,
        batch_item: Vec<ResponseBatchItem> = BATCH_ITEM,
    }
}

/// Either kind of message.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    Request(RequestMessage),
    Response(ResponseMessage),
}

impl Message {
    pub fn from_ttlv(item: &Ttlv) -> Result<Message, ModelError> {
        use super::FieldValue;
        match item.tag {
            tag::REQUEST_MESSAGE => Ok(Message::Request(RequestMessage::decode(item)?)),
            tag::RESPONSE_MESSAGE => Ok(Message::Response(ResponseMessage::decode(item)?)),
            t => Err(ModelError::NotAMessage(t)),
        }
    }

    pub fn to_ttlv(&self) -> Ttlv {
        match self {
            Message::Request(m) => Ttlv::structure(tag::REQUEST_MESSAGE, m.to_children()),
            Message::Response(m) => Ttlv::structure(tag::RESPONSE_MESSAGE, m.to_children()),
        }
    }
}

impl RequestMessage {
    pub fn to_ttlv(&self) -> Ttlv {
        Ttlv::structure(tag::REQUEST_MESSAGE, self.to_children())
    }
}

impl ResponseMessage {
    pub fn to_ttlv(&self) -> Ttlv {
        Ttlv::structure(tag::RESPONSE_MESSAGE, self.to_children())
    }
}

/// The protocol version a message speaks.
pub fn version_of(header: &ProtocolVersion) -> (i32, i32) {
    (header.major.0, header.minor.0)
}
