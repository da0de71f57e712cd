//! Our vendor operations for who may do what: Grant, List Grants and Trust Wrapping Key (see
//! `kmip_codec::vendor`).

use super::Ctx;
use crate::error::OpError;
use kmip_codec::vendor::tag as vendor;
use kmip_codec::vocab::tag;
use kmip_codec::{Ttlv, Value};

fn uid(ctx: &Ctx<'_>, payload: &Ttlv) -> Result<String, OpError> {
    let given = payload
        .child(tag::UNIQUE_IDENTIFIER)
        .and_then(Ttlv::as_text)
        .map(str::to_owned);
    ctx.uid(given.as_ref())
}

pub(crate) fn grant(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let id = uid(ctx, payload)?;
    let grantee = payload
        .child(vendor::GRANTEE)
        .and_then(Ttlv::as_text)
        .filter(|g| !g.is_empty())
        .ok_or_else(|| OpError::invalid("Grant needs a Grantee"))?;
    let ops: Vec<u32> = payload
        .children_with(tag::OPERATION)
        .filter_map(Ttlv::as_enum)
        .collect();
    let r = ctx.txn.grant(&id, grantee, ops, ctx.now)?;
    Ok(Ttlv::structure(
        payload.tag,
        vec![Ttlv::new(tag::UNIQUE_IDENTIFIER, Value::TextString(r.id))],
    ))
}

pub(crate) fn list(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let id = uid(ctx, payload)?;
    let grants = ctx.txn.grants(&id, ctx.now)?;
    let mut out = vec![Ttlv::new(tag::UNIQUE_IDENTIFIER, Value::TextString(id))];
    for (who, ops) in grants {
        let mut g = vec![Ttlv::new(vendor::GRANTEE, Value::TextString(who))];
        g.extend(
            ops.into_iter()
                .map(|o| Ttlv::new(tag::OPERATION, Value::Enumeration(o))),
        );
        out.push(Ttlv::structure(vendor::GRANT, g));
    }
    Ok(Ttlv::structure(payload.tag, out))
}

pub(crate) fn trust_wrapping_key(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let id = uid(ctx, payload)?;
    let trusted = payload
        .child(vendor::TRUSTED)
        .and_then(Ttlv::as_bool)
        .ok_or_else(|| OpError::invalid("Trust Wrapping Key needs Trusted (a Boolean)"))?;
    let r = ctx.txn.trust_wrapping_key(&id, trusted, ctx.now)?;
    Ok(Ttlv::structure(
        payload.tag,
        vec![Ttlv::new(tag::UNIQUE_IDENTIFIER, Value::TextString(r.id))],
    ))
}
