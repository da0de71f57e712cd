use super::{params, required, single_part, validity};
use crate::dispatch::{Ctx, OpError};
use kmip_codec::message::{FieldValue, Req};
use kmip_codec::ops::{SignatureVerifyRequest, SignatureVerifyResponse};
use kmip_codec::vocab::enums::result_reason as rr;
use kmip_codec::Ttlv;

pub fn apply(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let req = SignatureVerifyRequest::decode(payload)?;
    single_part(
        &req.correlation_value,
        req.init_indicator,
        req.final_indicator,
    )?;
    if req.digested_data.is_some() {
        return Err(OpError::new(
            rr::FEATURE_NOT_SUPPORTED,
            "verifying pre-digested data is not supported",
        ));
    }
    let id = ctx.uid(req.unique_identifier.as_ref())?;
    let ok = ctx.manager.verify(
        &id,
        params(&req.cryptographic_parameters),
        required(&req.data, "Data")?,
        required(&req.signature_data, "Signature Data")?,
        ctx.now,
    )?;
    Ok(SignatureVerifyResponse {
        unique_identifier: Req(id),
        validity_indicator: Some(validity(ok)),
        ..Default::default()
    }
    .encode(payload.tag))
}
