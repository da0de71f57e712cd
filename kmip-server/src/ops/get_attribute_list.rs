use super::Ctx;
use super::{all_attributes, response_attributes};
use crate::error::OpError;
use kmip_codec::message::{FieldValue, Req};
use kmip_codec::ops::{GetAttributeListRequest, GetAttributeListResponse};
use kmip_codec::vocab::tag;
use kmip_codec::{Ttlv, Value};

pub(crate) fn apply(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let req = GetAttributeListRequest::decode(payload)?;
    let id = ctx.uid(req.unique_identifier.as_ref())?;
    let r = ctx.txn.get(&id, ctx.now)?;
    ctx.placeholder = Some(r.id.clone());
    let items = all_attributes(&r);
    let mut resp = GetAttributeListResponse {
        unique_identifier: Req(r.id),
        ..Default::default()
    };
    if ctx.major() >= 2 {
        let mut refs: Vec<Ttlv> = Vec::new();
        for a in response_attributes(ctx, items) {
            let reference = if a.tag == tag::ATTRIBUTE {
                Ttlv::structure(
                    tag::ATTRIBUTE_REFERENCE,
                    a.children()
                        .iter()
                        .filter(|c| c.tag != tag::ATTRIBUTE_VALUE)
                        .cloned()
                        .collect(),
                )
            } else {
                Ttlv::new(tag::ATTRIBUTE_REFERENCE, Value::Enumeration(a.tag.0))
            };
            if !refs.contains(&reference) {
                refs.push(reference);
            }
        }
        resp.attribute_reference = refs;
    } else {
        let mut names: Vec<String> = Vec::new();
        for a in response_attributes(ctx, items) {
            if let Some(n) = a.child(tag::ATTRIBUTE_NAME).and_then(Ttlv::as_text) {
                if !names.iter().any(|x| x == n) {
                    names.push(n.to_owned());
                }
            }
        }
        resp.attribute_name = names;
    }
    Ok(resp.encode(payload.tag))
}
