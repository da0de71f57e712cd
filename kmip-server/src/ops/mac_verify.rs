use super::multipart::{gather, Gather, StreamFields};
use super::Ctx;
use crate::error::OpError;
use kmip_codec::message::{Bytes, FieldValue, Req};
use kmip_codec::ops::{MACVerifyRequest, MACVerifyResponse};
use kmip_codec::vocab::enums::operation as op;
use kmip_codec::Ttlv;

pub(crate) fn apply(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let req = MACVerifyRequest::decode(payload)?;
    let stream = StreamFields {
        correlation: &req.correlation_value,
        init: req.init_indicator,
        last: req.final_indicator,
    };
    let answer = match gather(
        ctx,
        op::MAC_VERIFY,
        req.unique_identifier.as_ref(),
        &req.cryptographic_parameters,
        &req.data,
        stream,
    )? {
        Gather::Pending { id, correlation } => MACVerifyResponse {
            unique_identifier: Req(id),
            correlation_value: Some(Bytes(correlation)),
            ..Default::default()
        },
        Gather::Ready { id, params, data } => {
            let mac = super::required(&req.mac_data, "MAC Data")?;
            let ok = ctx
                .txn
                .mac_verify(&id, params, data.expose(), mac, ctx.now)?;
            MACVerifyResponse {
                unique_identifier: Req(id),
                validity_indicator: Some(super::validity(ok)),
                ..Default::default()
            }
        }
    };
    Ok(answer.encode(payload.tag))
}
