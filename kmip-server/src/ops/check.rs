use super::Ctx;
use crate::error::OpError;
use kmip_codec::message::FieldValue;
use kmip_codec::ops::{CheckRequest, CheckResponse};
use kmip_codec::vocab::tag;
use kmip_codec::Ttlv;

/// Check whether the object could be used as the request says: usage mask, units left in its
/// Usage Limits, and a lease no longer than the server grants.
pub(crate) fn apply(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let req = CheckRequest::decode(payload)?;
    let id = ctx.uid(req.unique_identifier.as_ref())?;
    let r = ctx.txn.get(&id, ctx.now)?;
    ctx.placeholder = Some(r.id.clone());
    if r.state.is_destroyed() {
        return Err(OpError::ObjectDestroyed(
            "the object has been destroyed".into(),
        ));
    }
    if let Some(want) = req.usage_limits_count {
        if lifecycle::object::usage::usage_left(&r).is_some_and(|left| want > left) {
            return Err(OpError::UsageLimitExceeded(
                "fewer units are left in the object's Usage Limits".into(),
            ));
        }
    }
    if let Some(want) = req.lease_time {
        if i64::from(want.0) > lifecycle::object::usage::LEASE_TIME {
            return Err(OpError::PermissionDenied(
                "the server grants shorter leases".into(),
            ));
        }
    }
    if let Some(want) = req.cryptographic_usage_mask {
        let have = r
            .attribute(tag::CRYPTOGRAPHIC_USAGE_MASK)
            .and_then(Ttlv::as_i32)
            .unwrap_or(0);
        if (have as u32) & (want as u32) != want as u32 {
            return Err(OpError::IncompatibleUsageMask(
                "the object's usage mask does not allow that use".into(),
            ));
        }
    }
    Ok(CheckResponse {
        unique_identifier: Some(r.id),
        ..Default::default()
    }
    .encode(payload.tag))
}
