use super::request_attributes;
use super::Ctx;
use crate::error::OpError;
use kmip_codec::message::{FieldValue, Req};
use kmip_codec::ops::{ReKeyRequest, ReKeyResponse};
use kmip_codec::{Ttlv, Value};

/// The Offset of a Re-key request: an Interval (2.x, and most 1.x clients).
pub(crate) fn offset(t: &Option<Ttlv>) -> Result<Option<u32>, OpError> {
    match t.as_ref().map(|t| &t.value) {
        None => Ok(None),
        Some(Value::Interval(v)) => Ok(Some(*v)),
        Some(_) => Err(OpError::invalid("Offset must be an Interval")),
    }
}

pub(crate) fn apply(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let req = ReKeyRequest::decode(payload)?;
    let id = ctx.uid(req.unique_identifier.as_ref())?;
    let attrs = request_attributes(req.template_attribute.as_ref(), req.attributes.as_ref())?;
    let r = ctx.txn.rekey(&id, offset(&req.offset)?, attrs, ctx.now)?;
    ctx.placeholder = Some(r.id.clone());
    Ok(ReKeyResponse {
        unique_identifier: Req(r.id),
        ..Default::default()
    }
    .encode(payload.tag))
}
