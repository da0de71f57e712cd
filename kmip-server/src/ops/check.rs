use crate::dispatch::{Ctx, OpError};
use kmip_codec::message::FieldValue;
use kmip_codec::ops::{CheckRequest, CheckResponse};
use kmip_codec::vocab::enums::result_reason as rr;
use kmip_codec::vocab::tag;
use kmip_codec::Ttlv;

/// Check whether the object could be used as the request says. Usage limits and leases are not
/// kept by this server, so a request that asks about them is refused rather than approved.
pub fn apply(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let req = CheckRequest::decode(payload)?;
    let id = ctx.uid(req.unique_identifier.as_ref())?;
    let r = ctx.manager.get(&id, ctx.now)?;
    ctx.placeholder = Some(r.id.clone());
    if r.state.is_destroyed() {
        return Err(OpError::new(
            rr::OBJECT_DESTROYED,
            "the object has been destroyed",
        ));
    }
    if req.usage_limits_count.is_some() || req.lease_time.is_some() {
        return Err(OpError::new(
            rr::FEATURE_NOT_SUPPORTED,
            "usage limits and leases are not supported",
        ));
    }
    if let Some(want) = req.cryptographic_usage_mask {
        let have = r
            .attribute(tag::CRYPTOGRAPHIC_USAGE_MASK)
            .and_then(Ttlv::as_i32)
            .unwrap_or(0);
        if (have as u32) & (want as u32) != want as u32 {
            return Err(OpError::new(
                rr::INCOMPATIBLE_CRYPTOGRAPHIC_USAGE_MASK,
                "the object's usage mask does not allow that use",
            ));
        }
    }
    Ok(CheckResponse {
        unique_identifier: Some(r.id),
        ..Default::default()
    }
    .encode(payload.tag))
}
