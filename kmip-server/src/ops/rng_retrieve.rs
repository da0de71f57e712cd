use super::Ctx;
use crate::error::OpError;
use kmip_codec::message::{Bytes, FieldValue, Req};
use kmip_codec::ops::{RNGRetrieveRequest, RNGRetrieveResponse};
use kmip_codec::Ttlv;

/// Most random bytes one request may ask for.
const MAX: i32 = 1 << 20;

pub(crate) fn apply(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let req = RNGRetrieveRequest::decode(payload)?;
    let n = req.data_length.0;
    if !(1..=MAX).contains(&n) {
        return Err(OpError::invalid(format!(
            "Data Length must be between 1 and {MAX}"
        )));
    }
    let bytes = ctx
        .txn
        .core()
        .random(n as usize)
        .map_err(lifecycle::LifecycleError::from)?;
    Ok(RNGRetrieveResponse {
        data: Req(Bytes(bytes.expose().to_vec())),
    }
    .encode(payload.tag))
}
