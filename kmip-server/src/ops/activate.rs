use super::Ctx;
use crate::error::OpError;
use kmip_codec::message::{FieldValue, Req};
use kmip_codec::ops::{ActivateRequest, ActivateResponse};
use kmip_codec::Ttlv;

pub(crate) fn apply(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let req = ActivateRequest::decode(payload)?;
    let id = ctx.uid(req.unique_identifier.as_ref())?;
    let r = ctx.txn.activate(&id, ctx.now)?;
    ctx.placeholder = Some(r.id.clone());
    Ok(ActivateResponse {
        unique_identifier: Req(r.id),
    }
    .encode(payload.tag))
}
