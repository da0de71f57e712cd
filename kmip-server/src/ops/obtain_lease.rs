use super::Ctx;
use crate::error::OpError;
use kmip_codec::message::{DateTime, FieldValue, Interval, Req};
use kmip_codec::ops::{ObtainLeaseRequest, ObtainLeaseResponse};
use kmip_codec::vocab::tag;
use kmip_codec::{Ttlv, Value};

pub(crate) fn apply(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let req = ObtainLeaseRequest::decode(payload)?;
    let id = ctx.uid(req.unique_identifier.as_ref())?;
    let (r, lease) = ctx.txn.lease(&id, ctx.now)?;
    ctx.placeholder = Some(r.id.clone());
    let last_change = match r.attribute(tag::LAST_CHANGE_DATE).map(|a| &a.value) {
        Some(Value::DateTime(t)) => *t,
        _ => ctx.now,
    };
    Ok(ObtainLeaseResponse {
        unique_identifier: Req(r.id),
        lease_time: Req(Interval(lease as u32)),
        last_change_date: Req(DateTime(last_change)),
    }
    .encode(payload.tag))
}
