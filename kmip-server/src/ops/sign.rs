use super::multipart::{gather, Gather, StreamFields};
use super::Ctx;
use crate::error::OpError;
use kmip_codec::message::{Bytes, FieldValue, Req};
use kmip_codec::ops::{SignRequest, SignResponse};
use kmip_codec::vocab::enums::operation as op;
use kmip_codec::Ttlv;

pub(crate) fn apply(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let req = SignRequest::decode(payload)?;
    if req.digested_data.is_some() {
        return Err(OpError::FeatureNotSupported(
            "signing pre-digested data is not supported".into(),
        ));
    }
    let stream = StreamFields {
        correlation: &req.correlation_value,
        init: req.init_indicator,
        last: req.final_indicator,
    };
    let answer = match gather(
        ctx,
        op::SIGN,
        req.unique_identifier.as_ref(),
        &req.cryptographic_parameters,
        &req.data,
        stream,
    )? {
        Gather::Pending { id, correlation } => SignResponse {
            unique_identifier: Req(id),
            correlation_value: Some(Bytes(correlation)),
            ..Default::default()
        },
        Gather::Ready { id, params, data } => {
            let sig = ctx.txn.sign(&id, params, data.expose(), ctx.now)?;
            SignResponse {
                unique_identifier: Req(id),
                signature_data: Some(Bytes(sig)),
                ..Default::default()
            }
        }
    };
    Ok(answer.encode(payload.tag))
}
