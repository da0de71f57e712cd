use super::Ctx;
use crate::error::OpError;
use kmip_codec::message::{Enum, FieldValue, Req};
use kmip_codec::ops::{GetRequest, GetResponse};
use kmip_codec::vocab::tag;
use kmip_codec::Ttlv;
use lifecycle::core::CryptoParams;

/// The wrapping key, parameters and Encoding Option of a Key Wrapping Specification. Only the
/// Encrypt method is offered: MAC/sign wrapping is refused.
fn wrapping(spec: &Ttlv) -> Result<(String, CryptoParams, u32), OpError> {
    use kmip_codec::vocab::enums::{encoding_option, wrapping_method};
    let method = spec.child(tag::WRAPPING_METHOD).and_then(Ttlv::as_enum);
    if method != Some(wrapping_method::ENCRYPT)
        || spec.child(tag::MAC_SIGNATURE_KEY_INFORMATION).is_some()
    {
        return Err(OpError::FeatureNotSupported(
            "only the Encrypt wrapping method is supported".into(),
        ));
    }
    // absent, it is TTLV Encoding (KMIP 2.1 §2.1.5)
    let encoding = spec
        .child(tag::ENCODING_OPTION)
        .and_then(Ttlv::as_enum)
        .unwrap_or(encoding_option::TTLV_ENCODING);
    if ![encoding_option::NO_ENCODING, encoding_option::TTLV_ENCODING].contains(&encoding) {
        return Err(OpError::EncodingOption(
            "the Encoding Option is No Encoding or TTLV Encoding".into(),
        ));
    }
    let info = spec
        .child(tag::ENCRYPTION_KEY_INFORMATION)
        .ok_or_else(|| OpError::invalid("Encryption Key Information is required"))?;
    let id = info
        .child(tag::UNIQUE_IDENTIFIER)
        .and_then(Ttlv::as_text)
        .ok_or_else(|| OpError::invalid("the wrapping key's Unique Identifier is required"))?;
    Ok((
        id.to_owned(),
        CryptoParams::from_ttlv(info.child(tag::CRYPTOGRAPHIC_PARAMETERS)),
        encoding,
    ))
}

pub(crate) fn apply(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let req = GetRequest::decode(payload)?;
    let id = ctx.uid(req.unique_identifier.as_ref())?;
    let format = req.key_format_type.map(|f| f.0);
    let (r, object) = match &req.key_wrapping_specification {
        None => ctx.txn.export_as(&id, format, ctx.now)?,
        Some(spec) => {
            if format.is_some() {
                return Err(OpError::KeyFormatTypeNotSupported(
                    "a key is wrapped in its stored format".into(),
                ));
            }
            let (wrapping_id, params, encoding) = wrapping(spec)?;
            ctx.txn
                .export_wrapped(&id, &wrapping_id, params, encoding, ctx.now)?
        }
    };
    ctx.placeholder = Some(r.id.clone());
    let (object_type, id) = (r.object_type, r.id.clone());
    ctx.txn.served(r, ctx.now)?;
    let mut resp = GetResponse {
        object_type: Req(Enum(object_type)),
        unique_identifier: Req(id),
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
