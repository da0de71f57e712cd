use super::multipart::StreamFields;
use super::Ctx;
use super::{params, required};
use crate::error::OpError;
use kmip_codec::message::{Bytes, FieldValue, Req};
use kmip_codec::ops::{DecryptRequest, DecryptResponse};
use kmip_codec::vocab::enums::operation as op;
use kmip_codec::Ttlv;
use lifecycle::object::Part;

pub(crate) fn apply(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let req = DecryptRequest::decode(payload)?;
    let part = StreamFields {
        correlation: &req.correlation_value,
        init: req.init_indicator,
        last: req.final_indicator,
    }
    .part()?;
    let iv = req.iv_counter_nonce.as_ref().map(|b| b.0.as_slice());
    let aad = req
        .authenticated_encryption_additional_data
        .as_ref()
        .map(|b| b.0.as_slice());
    let tag = req
        .authenticated_encryption_tag
        .as_ref()
        .map(|b| b.0.as_slice());
    let streamed = req
        .data
        .as_ref()
        .map(|b| b.0.as_slice())
        .unwrap_or_default();
    let (id, plain, correlation) = match part {
        Part::Whole => {
            let id = ctx.uid(req.unique_identifier.as_ref())?;
            let plain = ctx.txn.decrypt(
                &id,
                params(&req.cryptographic_parameters),
                required(&req.data, "Data")?,
                iv,
                aad,
                tag,
                ctx.now,
            )?;
            (id, plain.expose().to_vec(), None)
        }
        Part::First => {
            let id = ctx.uid(req.unique_identifier.as_ref())?;
            let (d, c) = ctx.txn.cipher_first(
                op::DECRYPT,
                &id,
                params(&req.cryptographic_parameters),
                (streamed, iv, aad),
                ctx.now,
            )?;
            (id, d.data, Some(c))
        }
        Part::Next { correlation, last } => {
            let (id, d) =
                ctx.txn
                    .cipher_next(op::DECRYPT, correlation, last, streamed, tag, ctx.now)?;
            (id, d.data, (!last).then(|| correlation.to_vec()))
        }
    };
    Ok(DecryptResponse {
        unique_identifier: Req(id),
        data: Some(Bytes(plain)),
        correlation_value: correlation.map(Bytes),
    }
    .encode(payload.tag))
}
