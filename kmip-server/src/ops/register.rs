use super::request_attributes;
use super::Ctx;
use crate::error::OpError;
use kmip_codec::message::{FieldValue, Req};
use kmip_codec::ops::{RegisterRequest, RegisterResponse};
use kmip_codec::Ttlv;

pub(crate) fn apply(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let req = RegisterRequest::decode(payload)?;
    let attrs = super::without_object_type(
        request_attributes(req.template_attribute.as_ref(), req.attributes.as_ref())?,
        req.object_type.0 .0,
    )?;
    let object = [
        &req.certificate,
        &req.symmetric_key,
        &req.public_key,
        &req.private_key,
        &req.split_key,
        &req.template,
        &req.secret_data,
        &req.opaque_object,
        &req.pgp_key,
        &req.certificate_request,
    ]
    .into_iter()
    .flatten()
    .next()
    .ok_or_else(|| OpError::invalid("Register needs the object to register"))?;
    let r = ctx
        .txn
        .register(req.object_type.0 .0, object, attrs, ctx.now)?;
    ctx.placeholder = Some(r.id.clone());
    Ok(RegisterResponse {
        unique_identifier: Req(r.id),
        ..Default::default()
    }
    .encode(payload.tag))
}
