use super::Ctx;
use crate::error::OpError;
use kmip_codec::message::{FieldValue, Req};
use kmip_codec::ops::{GetUsageAllocationRequest, GetUsageAllocationResponse};
use kmip_codec::Ttlv;

pub(crate) fn apply(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let req = GetUsageAllocationRequest::decode(payload)?;
    let id = ctx.uid(req.unique_identifier.as_ref())?;
    let r = ctx
        .txn
        .allocate_usage(&id, req.usage_limits_count.0, ctx.now)?;
    ctx.placeholder = Some(r.id.clone());
    Ok(GetUsageAllocationResponse {
        unique_identifier: Req(r.id),
    }
    .encode(payload.tag))
}
