//! Add Attribute, Modify Attribute, Delete Attribute and (2.x) Set Attribute.

use super::one_attribute;
use super::Ctx;
use crate::error::OpError;
use kmip_codec::attributes::attribute_to_v1;
use kmip_codec::message::{FieldValue, Req};
use kmip_codec::ops::{
    AddAttributeRequest, AddAttributeResponse, DeleteAttributeRequest, DeleteAttributeResponse,
    ModifyAttributeRequest, ModifyAttributeResponse, SetAttributeRequest, SetAttributeResponse,
};
use kmip_codec::vocab::tag;
use kmip_codec::{Tag, Ttlv, Value};
use lifecycle::attributes::same_attribute;
use lifecycle::store::Record;

/// The 1.x form of the instance `item` of `r`, with its index among instances of its kind.
fn as_v1(r: &Record, item: &Ttlv) -> Result<Ttlv, OpError> {
    let index = r
        .attributes
        .iter()
        .filter(|a| same_attribute(a, item))
        .position(|a| a == item)
        .unwrap_or(0);
    attribute_to_v1(item, index as i32).map_err(|e| OpError::invalid(e.to_string()))
}

pub(crate) fn add(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let req = AddAttributeRequest::decode(payload)?;
    let id = ctx.uid(req.unique_identifier.as_ref())?;
    let item = one_attribute(req.attribute.as_ref(), req.new_attribute.as_ref())?
        .ok_or_else(|| OpError::invalid("no attribute to add"))?;
    let r = ctx.txn.add_attribute(&id, item.clone(), ctx.now)?;
    ctx.placeholder = Some(r.id.clone());
    let attribute = if ctx.major() < 2 {
        Some(as_v1(&r, &item)?)
    } else {
        None
    };
    Ok(AddAttributeResponse {
        unique_identifier: Req(r.id),
        attribute,
    }
    .encode(payload.tag))
}

pub(crate) fn modify(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let req = ModifyAttributeRequest::decode(payload)?;
    let id = ctx.uid(req.unique_identifier.as_ref())?;
    let new = one_attribute(req.attribute.as_ref(), req.new_attribute.as_ref())?
        .ok_or_else(|| OpError::invalid("no new attribute"))?;
    let current = one_attribute(None, req.current_attribute.as_ref())?;
    let index = req
        .attribute
        .as_ref()
        .and_then(|a| a.child(tag::ATTRIBUTE_INDEX))
        .and_then(Ttlv::as_i32)
        .unwrap_or(0);
    if index < 0 {
        return Err(OpError::IndexOutOfBounds("negative Attribute Index".into()));
    }
    let r =
        ctx.txn
            .modify_attribute(&id, current.as_ref(), new.clone(), index as usize, ctx.now)?;
    ctx.placeholder = Some(r.id.clone());
    let attribute = if ctx.major() < 2 {
        Some(as_v1(&r, &new)?)
    } else {
        None
    };
    Ok(ModifyAttributeResponse {
        unique_identifier: Req(r.id),
        attribute,
    }
    .encode(payload.tag))
}

pub(crate) fn delete(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let req = DeleteAttributeRequest::decode(payload)?;
    let id = ctx.uid(req.unique_identifier.as_ref())?;
    let index = req.attribute_index.unwrap_or(0);
    if index < 0 {
        return Err(OpError::IndexOutOfBounds("negative Attribute Index".into()));
    }
    // the attribute to delete: by 1.x name, by 2.x reference, or the exact current value
    let (target, exact) =
        if let Some(current) = one_attribute(None, req.current_attribute.as_ref())? {
            (current, true)
        } else if let Some(name) = &req.attribute_name {
            (target_by_name(name)?, false)
        } else if let Some(reference) = &req.attribute_reference {
            match reference.as_enum() {
                Some(t) => (Ttlv::new(Tag(t), Value::Integer(0)), false),
                None => (
                    Ttlv::structure(tag::ATTRIBUTE, reference.children().to_vec()),
                    false,
                ),
            }
        } else {
            return Err(OpError::invalid("no attribute to delete"));
        };
    let before = ctx.txn.get(&id, ctx.now)?;
    let r = ctx
        .txn
        .delete_attribute(&id, &target, exact, index as usize, ctx.now)?;
    ctx.placeholder = Some(r.id.clone());
    let attribute = if ctx.major() < 2 {
        let deleted = before
            .attributes
            .iter()
            .filter(|a| same_attribute(a, &target))
            .find(|a| !r.attributes.contains(a))
            .cloned();
        deleted
            .map(|d| attribute_to_v1(&d, index))
            .transpose()
            .map_err(|e| OpError::invalid(e.to_string()))?
    } else {
        None
    };
    Ok(DeleteAttributeResponse {
        unique_identifier: Req(r.id),
        attribute,
    }
    .encode(payload.tag))
}

/// An item that names an attribute by its 1.x name: a tag, or a vendor attribute.
fn target_by_name(name: &str) -> Result<Ttlv, OpError> {
    if let Some((vendor, rest)) = name.split_once('-').filter(|(v, _)| *v == "x" || *v == "y") {
        return Ok(Ttlv::structure(
            tag::ATTRIBUTE,
            vec![
                super::text(tag::VENDOR_IDENTIFICATION, vendor),
                super::text(tag::ATTRIBUTE_NAME, rest),
            ],
        ));
    }
    kmip_codec::vocab::tag_by_name(name)
        .map(|t| Ttlv::new(Tag(t), Value::Integer(0)))
        .ok_or_else(|| OpError::invalid(format!("unknown attribute {name:?}")))
}

pub(crate) fn set(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let req = SetAttributeRequest::decode(payload)?;
    let id = ctx.uid(req.unique_identifier.as_ref())?;
    let new = one_attribute(None, Some(&req.new_attribute.0))?
        .ok_or_else(|| OpError::invalid("no new attribute"))?;
    let existing = ctx.txn.get(&id, ctx.now)?;
    let r = if existing.attributes.iter().any(|a| same_attribute(a, &new)) {
        ctx.txn.modify_attribute(&id, None, new, 0, ctx.now)?
    } else {
        ctx.txn.add_attribute(&id, new, ctx.now)?
    };
    ctx.placeholder = Some(r.id.clone());
    Ok(SetAttributeResponse {
        unique_identifier: Req(r.id),
    }
    .encode(payload.tag))
}
