use super::Ctx;
use super::{all_attributes, response_attributes};
use crate::error::OpError;
use kmip_codec::message::{FieldValue, Req};
use kmip_codec::ops::{GetAttributesRequest, GetAttributesResponse};
use kmip_codec::vocab::tag;
use kmip_codec::{Tag, Ttlv};

/// Which of the requested names (1.x) or references (2.x) attribute item `a` answers, by its
/// position in the request: the answer lists attributes in the order they were asked for.
/// `Some(0)` for every attribute when none were named.
fn wanted(a: &Ttlv, names: &[String], refs: &[Ttlv]) -> Option<usize> {
    if names.is_empty() && refs.is_empty() {
        return Some(0);
    }
    let name = kmip_codec::attributes::attribute_name(a).ok();
    if let Some(i) = names.iter().position(|n| Some(n) == name.as_ref()) {
        return Some(i);
    }
    refs.iter().position(|r| match r.as_enum() {
        Some(t) => Tag(t) == a.tag,
        // a vendor attribute reference: Vendor Identification and Attribute Name
        None => {
            let v = r.child(tag::VENDOR_IDENTIFICATION).and_then(Ttlv::as_text);
            let n = r.child(tag::ATTRIBUTE_NAME).and_then(Ttlv::as_text);
            matches!((v, n), (Some(v), Some(n)) if name.as_deref() == Some(&format!("{v}-{n}")))
        }
    })
}

pub(crate) fn apply(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let req = GetAttributesRequest::decode(payload)?;
    let id = ctx.uid(req.unique_identifier.as_ref())?;
    let r = ctx.txn.get(&id, ctx.now)?;
    ctx.placeholder = Some(r.id.clone());
    let mut ranked: Vec<(usize, Ttlv)> = all_attributes(&r)
        .into_iter()
        .filter_map(|a| {
            Some((
                wanted(&a, &req.attribute_name, &req.attribute_reference)?,
                a,
            ))
        })
        .collect();
    ranked.sort_by_key(|(rank, _)| *rank);
    let items: Vec<Ttlv> = ranked.into_iter().map(|(_, a)| a).collect();
    let items = response_attributes(ctx, items);
    let mut resp = GetAttributesResponse {
        unique_identifier: Req(r.id),
        ..Default::default()
    };
    if ctx.major() >= 2 {
        resp.attributes = Some(Ttlv::structure(tag::ATTRIBUTES, items));
    } else {
        resp.attribute = items;
    }
    Ok(resp.encode(payload.tag))
}
