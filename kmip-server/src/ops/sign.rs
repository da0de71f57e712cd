use super::{params, required, single_part};
use crate::dispatch::{Ctx, OpError};
use kmip_codec::message::{Bytes, FieldValue, Req};
use kmip_codec::ops::{SignRequest, SignResponse};
use kmip_codec::vocab::enums::result_reason as rr;
use kmip_codec::Ttlv;

pub fn apply(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let req = SignRequest::decode(payload)?;
    single_part(
        &req.correlation_value,
        req.init_indicator,
        req.final_indicator,
    )?;
    if req.digested_data.is_some() {
        return Err(OpError::new(
            rr::FEATURE_NOT_SUPPORTED,
            "signing pre-digested data is not supported",
        ));
    }
    let id = ctx.uid(req.unique_identifier.as_ref())?;
    let sig = ctx.manager.sign(
        &id,
        params(&req.cryptographic_parameters),
        required(&req.data, "Data")?,
        ctx.now,
    )?;
    Ok(SignResponse {
        unique_identifier: Req(id),
        signature_data: Some(Bytes(sig)),
        ..Default::default()
    }
    .encode(payload.tag))
}
