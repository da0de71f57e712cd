use super::request_attributes;
use super::Ctx;
use crate::error::OpError;
use kmip_codec::message::{FieldValue, Req};
use kmip_codec::ops::{DeriveKeyRequest, DeriveKeyResponse};
use kmip_codec::vocab::tag;
use kmip_codec::Ttlv;
use lifecycle::core::{CryptoParams, Derivation};

pub(crate) fn apply(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let req = DeriveKeyRequest::decode(payload)?;
    let attrs = request_attributes(req.template_attribute.as_ref(), req.attributes.as_ref())?;
    let base = match req.unique_identifier.as_slice() {
        [one] => one.clone(),
        [] => ctx.uid(None)?,
        _ => {
            return Err(OpError::FeatureNotSupported(
                "derivation from several objects is not supported".into(),
            ))
        }
    };
    let method = req
        .derivation_method
        .as_enum()
        .ok_or_else(|| OpError::invalid("Derivation Method must be an Enumeration"))?;
    let dp = &req.derivation_parameters.0;
    let bytes = |t| dp.child(t).and_then(Ttlv::as_bytes);
    let length_bits = attrs
        .iter()
        .find(|a| a.tag == tag::CRYPTOGRAPHIC_LENGTH)
        .and_then(Ttlv::as_i32)
        .ok_or_else(|| OpError::invalid("Cryptographic Length is required"))?;
    if length_bits <= 0 || length_bits % 8 != 0 || length_bits > 8192 {
        return Err(OpError::invalid(
            "Cryptographic Length must be a positive number of bytes, at most 8192 bits",
        ));
    }
    // the base object is always given here, so HASH may not also take Derivation Data
    // (KMIP 1.4 §4.15 and its error table: Invalid Message)
    if method == kmip_codec::vocab::enums::derivation_method::HASH
        && dp.child(tag::DERIVATION_DATA).is_some()
    {
        return Err(OpError::InvalidMessage(
            "HASH derivation takes a base object or Derivation Data, not both".into(),
        ));
    }
    let d = Derivation {
        method,
        params: CryptoParams::from_ttlv(dp.child(tag::CRYPTOGRAPHIC_PARAMETERS)),
        iv: bytes(tag::INITIALIZATION_VECTOR),
        data: bytes(tag::DERIVATION_DATA),
        salt: bytes(tag::SALT),
        iterations: dp.child(tag::ITERATION_COUNT).and_then(Ttlv::as_i32),
        length: (length_bits / 8) as usize,
    };
    let r = ctx
        .txn
        .derive_key(req.object_type.0 .0, &base, &d, attrs, ctx.now)?;
    ctx.placeholder = Some(r.id.clone());
    Ok(DeriveKeyResponse {
        unique_identifier: Req(r.id),
        ..Default::default()
    }
    .encode(payload.tag))
}
