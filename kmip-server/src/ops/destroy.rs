use super::Ctx;
use crate::error::OpError;
use kmip_codec::message::{FieldValue, Req};
use kmip_codec::ops::{DestroyRequest, DestroyResponse};
use kmip_codec::Ttlv;

pub(crate) fn apply(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let req = DestroyRequest::decode(payload)?;
    let id = ctx.uid(req.unique_identifier.as_ref())?;
    let r = ctx.txn.destroy(&id, ctx.now)?;
    ctx.placeholder = Some(r.id.clone());
    Ok(DestroyResponse {
        unique_identifier: Req(r.id),
    }
    .encode(payload.tag))
}
