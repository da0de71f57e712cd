//! The KMIP JSON encoding: `{"tag": "BatchCount", "type": "Integer", "value": 1}`, Structures as
//! `{"tag": "...", "value": [ ... ]}`. Integers, Intervals and Long Integers that fit a JSON
//! number exactly are numbers; everything else uses the same text forms as KMIP XML.

use crate::text::{self, TextError};
use crate::ttlv::{ItemType, Limits, Ttlv, Value};
use serde_json::{json, Map, Value as J};

/// Largest integer a JSON number carries exactly in every parser (2^53).
const EXACT: i64 = 1 << 53;

/// The KMIP JSON encoding of `item`, on one line.
pub fn to_json(item: &Ttlv) -> String {
    to_value(item, &[]).to_string()
}

/// The KMIP JSON encoding of `item`, indented for people to read.
pub fn to_json_pretty(item: &Ttlv) -> String {
    serde_json::to_string_pretty(&to_value(item, &[])).expect("JSON values always serialize")
}

fn to_value(item: &Ttlv, siblings: &[Ttlv]) -> J {
    let mut m = Map::new();
    m.insert("tag".into(), J::String(text::tag_name(item.tag)));
    let names = || text::names(item.tag, text::attribute_name_among(siblings));
    let value = match &item.value {
        Value::Structure(children) => {
            // only preceding siblings name a value, as the parser reads them
            J::Array(
                children
                    .iter()
                    .enumerate()
                    .map(|(i, c)| to_value(c, &children[..i]))
                    .collect(),
            )
        }
        Value::Integer(v) => match text::format_scalar(&item.value, names()) {
            s if s.parse::<i32>().is_ok() => json!(*v),
            s => J::String(s),
        },
        Value::Interval(v) => json!(*v),
        Value::LongInteger(v) if v.abs() < EXACT => json!(*v),
        Value::LongInteger(v) => J::String(format!("0x{:016x}", *v as u64)),
        Value::Boolean(b) => J::Bool(*b),
        Value::BigInteger(b) => J::String(format!("0x{}", text::hex(b))),
        v => J::String(text::format_scalar(v, names())),
    };
    if !matches!(item.value, Value::Structure(_)) {
        m.insert(
            "type".into(),
            J::String(item.value.item_type().xml_name().into()),
        );
    }
    m.insert("value".into(), value);
    J::Object(m)
}

/// A tree from its KMIP JSON encoding, within `limits` (depth and item count).
pub fn from_json(s: &str, limits: &Limits) -> Result<Ttlv, TextError> {
    // serde_json refuses nesting beyond 128 levels on its own; our own limit is checked below
    let v: J = serde_json::from_str(s).map_err(|e| TextError::Json(e.to_string()))?;
    let mut items = 0;
    from_value(&v, &[], 1, &mut items, limits)
}

fn bad(msg: &str) -> TextError {
    TextError::Json(msg.to_owned())
}

fn from_value(
    v: &J,
    siblings: &[Ttlv],
    depth: usize,
    items: &mut usize,
    limits: &Limits,
) -> Result<Ttlv, TextError> {
    *items += 1;
    if *items > limits.max_items {
        return Err(TextError::TooManyItems(limits.max_items));
    }
    if depth > limits.max_depth {
        return Err(TextError::TooDeep(limits.max_depth));
    }
    let o = v
        .as_object()
        .ok_or_else(|| bad("an item must be an object"))?;
    let tag = text::parse_tag(
        o.get("tag")
            .and_then(J::as_str)
            .ok_or_else(|| bad("an item needs a string \"tag\""))?,
    )?;
    let ty = match o.get("type") {
        None => ItemType::Structure,
        Some(J::String(t)) => {
            ItemType::from_xml_name(t).ok_or(TextError::UnknownType(t.clone()))?
        }
        Some(_) => return Err(bad("\"type\" must be a string")),
    };
    let value = o
        .get("value")
        .ok_or_else(|| TextError::MissingValue(text::tag_name(tag)))?;
    if ty == ItemType::Structure {
        let arr = value
            .as_array()
            .ok_or_else(|| bad("a Structure's value must be an array"))?;
        let mut children = Vec::new();
        for c in arr {
            let item = from_value(c, &children, depth + 1, items, limits)?;
            children.push(item);
        }
        return Ok(Ttlv::structure(tag, children));
    }
    let names = text::names(tag, text::attribute_name_among(siblings));
    let wrong = || TextError::BadValue {
        tag: text::tag_name(tag),
        item_type: ty,
        value: value.to_string(),
    };
    let value = match (ty, value) {
        (ItemType::Boolean, J::Bool(b)) => Value::Boolean(*b),
        (ItemType::Integer, J::Number(n)) => Value::Integer(
            n.as_i64()
                .and_then(|x| i32::try_from(x).ok())
                .ok_or_else(wrong)?,
        ),
        (ItemType::Interval, J::Number(n)) => Value::Interval(
            n.as_u64()
                .and_then(|x| u32::try_from(x).ok())
                .ok_or_else(wrong)?,
        ),
        (ItemType::Enumeration, J::Number(n)) => Value::Enumeration(
            n.as_u64()
                .and_then(|x| u32::try_from(x).ok())
                .ok_or_else(wrong)?,
        ),
        (ItemType::LongInteger, J::Number(n)) => Value::LongInteger(n.as_i64().ok_or_else(wrong)?),
        (ItemType::DateTime, J::Number(n)) => Value::DateTime(n.as_i64().ok_or_else(wrong)?),
        (ItemType::DateTimeExtended, J::Number(n)) => {
            Value::DateTimeExtended(n.as_i64().ok_or_else(wrong)?)
        }
        (_, J::String(s)) => text::parse_scalar(tag, ty, s, names)?,
        _ => return Err(wrong()),
    };
    Ok(Ttlv::new(tag, value))
}
