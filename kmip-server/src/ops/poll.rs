use super::Ctx;
use crate::error::OpError;
use kmip_codec::message::FieldValue;
use kmip_codec::ops::PollRequest;
use kmip_codec::Ttlv;

/// Only dual control (`crate::quorum`) leaves operations pending, and it answers Poll of its
/// own requests before this runs: any other correlation value names nothing.
pub(crate) fn apply(_ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    PollRequest::decode(payload)?;
    Err(OpError::AsynchronousCorrelation(
        "no asynchronous operation of yours has this correlation value".into(),
    ))
}
