use super::{params, required, single_part};
use crate::dispatch::{Ctx, OpError};
use kmip_codec::message::{Bytes, FieldValue, Req};
use kmip_codec::ops::{EncryptRequest, EncryptResponse};
use kmip_codec::Ttlv;

pub fn apply(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let req = EncryptRequest::decode(payload)?;
    single_part(
        &req.correlation_value,
        req.init_indicator,
        req.final_indicator,
    )?;
    let id = ctx.uid(req.unique_identifier.as_ref())?;
    let e = ctx.manager.encrypt(
        &id,
        params(&req.cryptographic_parameters),
        required(&req.data, "Data")?,
        req.iv_counter_nonce.as_ref().map(|b| b.0.as_slice()),
        req.authenticated_encryption_additional_data
            .as_ref()
            .map(|b| b.0.as_slice()),
        ctx.now,
    )?;
    Ok(EncryptResponse {
        unique_identifier: Req(id),
        data: Some(Bytes(e.data)),
        iv_counter_nonce: e.generated_iv.map(Bytes),
        authenticated_encryption_tag: e.tag.map(Bytes),
        ..Default::default()
    }
    .encode(payload.tag))
}
