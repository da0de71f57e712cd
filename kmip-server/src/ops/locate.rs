use super::request_attributes;
use super::Ctx;
use crate::error::OpError;
use kmip_codec::attributes::to_v2;
use kmip_codec::message::FieldValue;
use kmip_codec::ops::{LocateRequest, LocateResponse};
use kmip_codec::vocab::enums::{object_group_member, storage_status_mask};
use kmip_codec::vocab::tag;
use kmip_codec::{Ttlv, Value};
use lifecycle::LocateQuery;

/// Criteria one Locate may carry: every candidate is matched against each of them, so a small
/// request must not buy a scan times tens of thousands of comparisons. Real clients send a
/// handful.
pub(crate) const MAX_CRITERIA: usize = 64;

pub(crate) fn apply(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    // KMIP 1.x clients in the field (FortiOS, VAST) send the filter inside a
    // Template-Attribute, which Locate does not define: it is read as the 1.x Attributes it
    // holds, never dropped
    let (template, rest): (Vec<&Ttlv>, Vec<&Ttlv>) = payload
        .children()
        .iter()
        .partition(|c| c.tag == tag::TEMPLATE_ATTRIBUTE);
    let template = match template.as_slice() {
        [] => None,
        [one] => Some(*one),
        _ => return Err(OpError::invalid("more than one Template-Attribute")),
    };
    let req = LocateRequest::decode(&Ttlv::structure(
        payload.tag,
        rest.into_iter().cloned().collect(),
    ))?;
    let int = |t: &Option<Ttlv>| t.as_ref().and_then(Ttlv::as_i32);
    let mut attributes = request_attributes(template, req.attributes.as_ref())?;
    attributes.extend(to_v2(&req.attribute).map_err(|e| OpError::invalid(e.to_string()))?);
    // a filter the server does not apply is refused, never dropped: a dropped Name filter
    // hands out the wrong key
    match req.object_group_member.as_ref().map(Ttlv::as_enum) {
        None => {}
        Some(Some(object_group_member::GROUP_MEMBER_FRESH)) => {
            attributes.push(Ttlv::new(tag::FRESH, Value::Boolean(true)))
        }
        Some(_) => {
            return Err(OpError::invalid(
                "Object Group Member: only Group Member Fresh is supported",
            ))
        }
    }
    if attributes.len() > MAX_CRITERIA {
        return Err(OpError::invalid(format!(
            "a Locate carries at most {MAX_CRITERIA} criteria"
        )));
    }
    let max = int(&req.maximum_items);
    let offset = int(&req.offset_items).unwrap_or(0);
    if max.is_some_and(|m| m < 0) || offset < 0 {
        return Err(OpError::invalid(
            "Maximum Items and Offset Items may not be negative",
        ));
    }
    // absent, the mask means on-line storage only
    let storage = int(&req.storage_status_mask)
        .map(|m| m as u32)
        .unwrap_or(storage_status_mask::ON_LINE_STORAGE);
    let q = LocateQuery {
        attributes,
        maximum_items: max.map(|m| m as usize),
        offset_items: offset as usize,
        include_destroyed: storage & storage_status_mask::DESTROYED_STORAGE != 0,
        include_archived: storage & storage_status_mask::ARCHIVAL_STORAGE != 0,
        exclude_online: storage & storage_status_mask::ON_LINE_STORAGE == 0,
        budget: ctx.budget.clone(),
    };
    let ids = ctx.txn.locate(&q, ctx.now)?;
    if let Some(first) = ids.first() {
        ctx.placeholder = Some(first.clone());
    }
    // Located Items is optional (KMIP 1.4 §4.9), and the test cases' servers omit it
    Ok(LocateResponse {
        located_items: None,
        unique_identifier: ids,
    }
    .encode(payload.tag))
}
