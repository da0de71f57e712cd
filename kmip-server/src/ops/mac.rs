use super::{params, required, single_part};
use crate::dispatch::{Ctx, OpError};
use kmip_codec::message::{Bytes, FieldValue, Req};
use kmip_codec::ops::{MACRequest, MACResponse};
use kmip_codec::Ttlv;

pub fn apply(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let req = MACRequest::decode(payload)?;
    single_part(
        &req.correlation_value,
        req.init_indicator,
        req.final_indicator,
    )?;
    let id = ctx.uid(req.unique_identifier.as_ref())?;
    let mac = ctx.manager.mac(
        &id,
        params(&req.cryptographic_parameters),
        required(&req.data, "Data")?,
        ctx.now,
    )?;
    Ok(MACResponse {
        unique_identifier: Req(id),
        mac_data: Some(Bytes(mac)),
        ..Default::default()
    }
    .encode(payload.tag))
}
