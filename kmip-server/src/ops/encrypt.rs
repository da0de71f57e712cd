use super::multipart::StreamFields;
use super::Ctx;
use super::{params, required};
use crate::error::OpError;
use kmip_codec::message::{Bytes, FieldValue, Req};
use kmip_codec::ops::{EncryptRequest, EncryptResponse};
use kmip_codec::vocab::enums::operation as op;
use kmip_codec::Ttlv;
use lifecycle::object::Part;

pub(crate) fn apply(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let req = EncryptRequest::decode(payload)?;
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
    let streamed = req
        .data
        .as_ref()
        .map(|b| b.0.as_slice())
        .unwrap_or_default();
    let (id, e, correlation) = match part {
        Part::Whole => {
            let id = ctx.uid(req.unique_identifier.as_ref())?;
            let e = ctx.txn.encrypt(
                &id,
                params(&req.cryptographic_parameters),
                required(&req.data, "Data")?,
                iv,
                aad,
                ctx.now,
            )?;
            (id, e, None)
        }
        Part::First => {
            let id = ctx.uid(req.unique_identifier.as_ref())?;
            let (e, c) = ctx.txn.cipher_first(
                op::ENCRYPT,
                &id,
                params(&req.cryptographic_parameters),
                (streamed, iv, aad),
                ctx.now,
            )?;
            (id, e, Some(c))
        }
        Part::Next { correlation, last } => {
            let (id, e) =
                ctx.txn
                    .cipher_next(op::ENCRYPT, correlation, last, streamed, None, ctx.now)?;
            (id, e, (!last).then(|| correlation.to_vec()))
        }
    };
    Ok(EncryptResponse {
        unique_identifier: Req(id),
        data: Some(Bytes(e.data)),
        iv_counter_nonce: e.generated_iv.map(Bytes),
        correlation_value: correlation.map(Bytes),
        authenticated_encryption_tag: e.tag.map(Bytes),
    }
    .encode(payload.tag))
}
