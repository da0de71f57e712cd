//! Our vendor operations for dual control (`--quorum`): List Approvals, Approve and Deny,
//! for administrators (see `kmip_codec::vendor` and `crate::quorum`).

use super::Ctx;
use crate::error::OpError;
use kmip_codec::vendor::tag as vendor;
use kmip_codec::vocab::tag;
use kmip_codec::{Ttlv, Value};
use lifecycle::object::ApprovalRequest;

fn text(t: kmip_codec::Tag, s: &str) -> Ttlv {
    Ttlv::new(t, Value::TextString(s.to_owned()))
}

/// One request as the admin CLI shows it: who asked, for what, since when, who approved.
fn encoded(ctx: &Ctx<'_>, r: &ApprovalRequest) -> Ttlv {
    let mut v = vec![
        text(vendor::APPROVAL_ID, &r.id),
        text(vendor::REQUESTER, &r.requester),
        Ttlv::new(tag::OPERATION, Value::Enumeration(r.what.operation)),
        text(tag::UNIQUE_IDENTIFIER, &r.what.object),
        text(tag::OBJECT_GROUP, &r.what.group),
        Ttlv::new(
            vendor::APPROVALS_NEEDED,
            Value::Integer(i32::try_from(r.what.needed).unwrap_or(i32::MAX)),
        ),
    ];
    v.extend(
        r.approvals
            .iter()
            .map(|(who, _)| text(vendor::APPROVER, who)),
    );
    v.push(Ttlv::new(vendor::REQUESTED_AT, Value::DateTime(r.created)));
    v.push(Ttlv::new(
        vendor::EXPIRES_AT,
        Value::DateTime(r.expires(ctx.settings.quorum.expiry)),
    ));
    v.push(text(vendor::APPROVAL_STATE, r.state.name()));
    Ttlv::structure(vendor::APPROVAL_REQUEST, v)
}

fn approval_id(payload: &Ttlv) -> Result<&str, OpError> {
    payload
        .child(vendor::APPROVAL_ID)
        .and_then(Ttlv::as_text)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| OpError::invalid("an Approval ID (text) is required"))
}

pub(crate) fn list(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let open = ctx
        .txn
        .open_approvals(ctx.settings.quorum.expiry, ctx.now)?;
    Ok(Ttlv::structure(
        payload.tag,
        open.iter().map(|r| encoded(ctx, r)).collect(),
    ))
}

pub(crate) fn approve(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let id = approval_id(payload)?;
    let (r, _) = ctx.txn.approve(id, ctx.settings.quorum.expiry, ctx.now)?;
    Ok(Ttlv::structure(payload.tag, vec![encoded(ctx, &r)]))
}

pub(crate) fn deny(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let id = approval_id(payload)?;
    let r = ctx.txn.deny(id, ctx.settings.quorum.expiry, ctx.now)?;
    Ok(Ttlv::structure(payload.tag, vec![encoded(ctx, &r)]))
}
