use crate::dispatch::{Ctx, OpError};
use kmip_codec::message::{Enum, FieldValue, Req};
use kmip_codec::ops::{GetRequest, GetResponse};
use kmip_codec::vocab::enums::result_reason as rr;
use kmip_codec::vocab::tag;
use kmip_codec::Ttlv;

pub fn apply(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let req = GetRequest::decode(payload)?;
    let id = ctx.uid(req.unique_identifier.as_ref())?;
    if req.key_wrapping_specification.is_some() {
        return Err(OpError::new(
            rr::FEATURE_NOT_SUPPORTED,
            "key wrapping on Get is not supported yet",
        ));
    }
    let (r, object) = ctx.manager.export(&id, ctx.now)?;
    if let Some(want) = req.key_format_type {
        let have = object
            .child(tag::KEY_BLOCK)
            .and_then(|k| k.child(tag::KEY_FORMAT_TYPE))
            .and_then(Ttlv::as_enum);
        if have.is_some_and(|h| h != want.0) {
            return Err(OpError::new(
                rr::KEY_FORMAT_TYPE_NOT_SUPPORTED,
                "conversion between key format types is not supported yet",
            ));
        }
    }
    ctx.placeholder = Some(r.id.clone());
    let mut resp = GetResponse {
        object_type: Req(Enum(r.object_type)),
        unique_identifier: Req(r.id),
        ..Default::default()
    };
    let slot = match object.tag {
        tag::CERTIFICATE => &mut resp.certificate,
        tag::SYMMETRIC_KEY => &mut resp.symmetric_key,
        tag::PUBLIC_KEY => &mut resp.public_key,
        tag::PRIVATE_KEY => &mut resp.private_key,
        tag::SPLIT_KEY => &mut resp.split_key,
        tag::TEMPLATE => &mut resp.template,
        tag::SECRET_DATA => &mut resp.secret_data,
        tag::OPAQUE_OBJECT => &mut resp.opaque_object,
        tag::PGP_KEY => &mut resp.pgp_key,
        _ => &mut resp.certificate_request,
    };
    *slot = Some(object);
    Ok(resp.encode(payload.tag))
}
