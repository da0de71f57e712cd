use super::Ctx;
use crate::error::OpError;
use kmip_codec::message::{FieldValue, Req};
use kmip_codec::ops::{RNGSeedRequest, RNGSeedResponse};
use kmip_codec::Ttlv;

/// The seed is mixed into OpenSSL's generator (credited with no entropy) and all of it is
/// reported used.
pub(crate) fn apply(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let req = RNGSeedRequest::decode(payload)?;
    let used = ctx.txn.core().seed(&req.data.0 .0);
    Ok(RNGSeedResponse {
        data_length: Req(i32::try_from(used).unwrap_or(i32::MAX)),
    }
    .encode(payload.tag))
}
