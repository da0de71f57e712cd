use super::Ctx;
use crate::error::OpError;
use kmip_codec::message::{FieldValue, Req};
use kmip_codec::ops::{CancelRequest, CancelResponse};
use kmip_codec::vocab::enums::cancellation_result;
use kmip_codec::vocab::tag;
use kmip_codec::{Ttlv, Value};

/// Only dual control (`crate::quorum`) leaves operations pending, and it answers Cancel of its
/// own requests before this runs: any other correlation value is Unavailable.
pub(crate) fn apply(_ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let req = CancelRequest::decode(payload)?;
    Ok(CancelResponse {
        asynchronous_correlation_value: req.asynchronous_correlation_value,
        cancellation_result: Req(Ttlv::new(
            tag::CANCELLATION_RESULT,
            Value::Enumeration(cancellation_result::UNAVAILABLE),
        )),
    }
    .encode(payload.tag))
}
