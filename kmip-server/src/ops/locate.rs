use super::request_attributes;
use crate::dispatch::{Ctx, OpError};
use kmip_codec::attributes::to_v2;
use kmip_codec::message::FieldValue;
use kmip_codec::ops::{LocateRequest, LocateResponse};
use kmip_codec::vocab::enums::storage_status_mask;
use kmip_codec::Ttlv;
use lifecycle::LocateQuery;

pub fn apply(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let req = LocateRequest::decode(payload)?;
    let int = |t: &Option<Ttlv>| t.as_ref().and_then(Ttlv::as_i32);
    let mut attributes = request_attributes(None, req.attributes.as_ref())?;
    attributes.extend(to_v2(&req.attribute).map_err(|e| OpError::invalid(e.to_string()))?);
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
    };
    let ids = ctx.manager.locate(&q, ctx.now)?;
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
