use super::Ctx;
use crate::error::OpError;
use kmip_codec::message::FieldValue;
use kmip_codec::ops::PollRequest;
use kmip_codec::vocab::enums::result_reason as rr;
use kmip_codec::Ttlv;

/// This server answers every request synchronously, so no correlation value is ever pending.
pub(crate) fn apply(_ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    PollRequest::decode(payload)?;
    Err(OpError::new(
        rr::INVALID_ASYNCHRONOUS_CORRELATION_VALUE,
        "no asynchronous operation has this correlation value: the server is synchronous",
    ))
}
