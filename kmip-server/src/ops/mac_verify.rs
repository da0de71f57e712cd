use super::{params, required, single_part, validity};
use crate::dispatch::{Ctx, OpError};
use kmip_codec::message::{FieldValue, Req};
use kmip_codec::ops::{MACVerifyRequest, MACVerifyResponse};
use kmip_codec::Ttlv;

pub fn apply(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let req = MACVerifyRequest::decode(payload)?;
    single_part(
        &req.correlation_value,
        req.init_indicator,
        req.final_indicator,
    )?;
    let id = ctx.uid(req.unique_identifier.as_ref())?;
    let ok = ctx.manager.mac_verify(
        &id,
        params(&req.cryptographic_parameters),
        required(&req.data, "Data")?,
        required(&req.mac_data, "MAC Data")?,
        ctx.now,
    )?;
    Ok(MACVerifyResponse {
        unique_identifier: Req(id),
        validity_indicator: Some(validity(ok)),
        ..Default::default()
    }
    .encode(payload.tag))
}
