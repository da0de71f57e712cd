use super::Ctx;
use crate::error::OpError;
use kmip_codec::message::{FieldValue, Req};
use kmip_codec::ops::{RevokeRequest, RevokeResponse};
use kmip_codec::vocab::tag;
use kmip_codec::Ttlv;

pub(crate) fn apply(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let req = RevokeRequest::decode(payload)?;
    let id = ctx.uid(req.unique_identifier.as_ref())?;
    let reason = &req.revocation_reason.0;
    let code = reason
        .child(tag::REVOCATION_REASON_CODE)
        .and_then(Ttlv::as_enum)
        .ok_or_else(|| OpError::invalid("Revocation Reason needs a Revocation Reason Code"))?;
    let message = reason
        .child(tag::REVOCATION_MESSAGE)
        .and_then(Ttlv::as_text);
    let r = ctx.txn.revoke(
        &id,
        code,
        message,
        req.compromise_occurrence_date.map(|d| d.0),
        ctx.now,
    )?;
    ctx.placeholder = Some(r.id.clone());
    Ok(RevokeResponse {
        unique_identifier: Req(r.id),
    }
    .encode(payload.tag))
}
