use super::multipart::{gather, Gather, StreamFields};
use super::Ctx;
use crate::error::OpError;
use kmip_codec::message::{Bytes, FieldValue, Req};
use kmip_codec::ops::{SignatureVerifyRequest, SignatureVerifyResponse};
use kmip_codec::vocab::enums::operation as op;
use kmip_codec::Ttlv;

pub(crate) fn apply(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let req = SignatureVerifyRequest::decode(payload)?;
    if req.digested_data.is_some() {
        return Err(OpError::FeatureNotSupported(
            "verifying pre-digested data is not supported".into(),
        ));
    }
    let stream = StreamFields {
        correlation: &req.correlation_value,
        init: req.init_indicator,
        last: req.final_indicator,
    };
    let answer = match gather(
        ctx,
        op::SIGNATURE_VERIFY,
        req.unique_identifier.as_ref(),
        &req.cryptographic_parameters,
        &req.data,
        stream,
    )? {
        Gather::Pending { id, correlation } => SignatureVerifyResponse {
            unique_identifier: Req(id),
            correlation_value: Some(Bytes(correlation)),
            ..Default::default()
        },
        Gather::Ready { id, params, data } => {
            // the signature comes with the last part
            let signature = super::required(&req.signature_data, "Signature Data")?;
            let ok = ctx
                .txn
                .verify(&id, params, data.expose(), signature, ctx.now)?;
            SignatureVerifyResponse {
                unique_identifier: Req(id),
                validity_indicator: Some(super::validity(ok)),
                ..Default::default()
            }
        }
    };
    Ok(answer.encode(payload.tag))
}
