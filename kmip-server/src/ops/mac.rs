use super::multipart::{gather, Gather, StreamFields};
use super::Ctx;
use crate::error::OpError;
use kmip_codec::message::{Bytes, FieldValue, Req};
use kmip_codec::ops::{MACRequest, MACResponse};
use kmip_codec::vocab::enums::operation as op;
use kmip_codec::Ttlv;

pub(crate) fn apply(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let req = MACRequest::decode(payload)?;
    let stream = StreamFields {
        correlation: &req.correlation_value,
        init: req.init_indicator,
        last: req.final_indicator,
    };
    let answer = match gather(
        ctx,
        op::MAC,
        req.unique_identifier.as_ref(),
        &req.cryptographic_parameters,
        &req.data,
        stream,
    )? {
        Gather::Pending { id, correlation } => MACResponse {
            unique_identifier: Req(id),
            correlation_value: Some(Bytes(correlation)),
            ..Default::default()
        },
        Gather::Ready { id, params, data } => {
            let mac = ctx.txn.mac(&id, params, data.expose(), ctx.now)?;
            MACResponse {
                unique_identifier: Req(id),
                mac_data: Some(Bytes(mac)),
                ..Default::default()
            }
        }
    };
    Ok(answer.encode(payload.tag))
}
