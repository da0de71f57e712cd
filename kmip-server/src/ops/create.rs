use super::request_attributes;
use super::Ctx;
use crate::error::OpError;
use kmip_codec::message::{Enum, FieldValue, Req};
use kmip_codec::ops::{CreateRequest, CreateResponse};
use kmip_codec::Ttlv;

pub(crate) fn apply(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let req = CreateRequest::decode(payload)?;
    let attrs = super::without_object_type(
        request_attributes(req.template_attribute.as_ref(), req.attributes.as_ref())?,
        req.object_type.0 .0,
    )?;
    let r = ctx.txn.create(req.object_type.0 .0, attrs, ctx.now)?;
    ctx.placeholder = Some(r.id.clone());
    Ok(CreateResponse {
        object_type: Req(Enum(r.object_type)),
        unique_identifier: Req(r.id),
        ..Default::default()
    }
    .encode(payload.tag))
}
