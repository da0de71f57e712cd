use super::Ctx;
use crate::error::OpError;
use kmip_codec::message::FieldValue;
use kmip_codec::ops::PollRequest;
use kmip_codec::vocab::enums::result_reason as rr;
use kmip_codec::Ttlv;

/// Only dual control (`crate::quorum`) leaves operations pending, and it answers Poll of its
/// own requests before this runs: any other correlation value names nothing.
pub(crate) fn apply(_ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    PollRequest::decode(payload)?;
    Err(OpError::new(
        rr::INVALID_ASYNCHRONOUS_CORRELATION_VALUE,
        "no asynchronous operation of yours has this correlation value",
    ))
}
