//! What the KMIP XML and JSON encodings share: tag names, type names and the text form of
//! every scalar value (enumerations and masks by name, hex byte strings, ISO 8601 dates).

use crate::time;
use crate::ttlv::{ItemType, Tag, Ttlv, Value};
use crate::vocab::{self, Names};
use thiserror::Error;

/// Why a KMIP XML or JSON text does not decode.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TextError {
    /// An element or tag name that is neither known nor a `0x42xxxx`/`0x54xxxx` number.
    #[error("unknown tag name {0:?}")]
    UnknownTag(String),
    /// A type attribute that names no item type.
    #[error("unknown item type {0:?}")]
    UnknownType(String),
    /// A value that its item type cannot hold.
    #[error("bad {item_type:?} value {value:?} for {tag}")]
    BadValue {
        /// The element name of the item.
        tag: String,
        /// The item type it declares.
        item_type: ItemType,
        /// The value as written.
        value: String,
    },
    /// An item other than a Structure without a value.
    #[error("{0} has no value")]
    MissingValue(String),
    /// Nested deeper than the limit allows.
    #[error("nesting deeper than {0}")]
    TooDeep(usize),
    /// More items than the limit allows.
    #[error("more than {0} items")]
    TooManyItems(usize),
    /// Not well-formed XML.
    #[error("malformed XML: {0}")]
    Xml(String),
    /// Not well-formed JSON.
    #[error("malformed JSON: {0}")]
    Json(String),
}

/// The element name of a tag: its KMIP name, or `0x54xxxx` for tags we do not know.
pub fn tag_name(tag: Tag) -> String {
    match tag.xml_name() {
        Some(n) => n.to_owned(),
        None => format!("0x{:06X}", tag.0),
    }
}

/// A tag from its element name, or from a hexadecimal `0x42xxxx`/`0x54xxxx`.
pub fn parse_tag(name: &str) -> Result<Tag, TextError> {
    if let Some(v) = vocab::tag_by_xml(name) {
        return Ok(Tag(v));
    }
    match parse_hex_u32(name) {
        Some(v) if (0x42_0000..=0x54_FFFF).contains(&v) => Ok(Tag(v)),
        _ => Err(TextError::UnknownTag(name.to_owned())),
    }
}

fn parse_hex_u32(s: &str) -> Option<u32> {
    let h = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    if h.is_empty() || h.len() > 8 {
        return None;
    }
    u32::from_str_radix(h, 16).ok()
}

/// Lowercase hexadecimal, two digits a byte.
pub fn hex(bytes: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(D[(b >> 4) as usize] as char);
        s.push(D[(b & 15) as usize] as char);
    }
    s
}

/// Bytes from hexadecimal of either case; `None` for an odd length or a non-hex digit.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    let nib = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(nib(p[0])? << 4 | nib(p[1])?))
        .collect()
}

/// How the values of `tag` are named; `attribute_name` is the sibling Attribute Name of a
/// 1.x Attribute Value, which decides what its value means.
pub fn names(tag: Tag, attribute_name: Option<&str>) -> Option<Names> {
    if tag == vocab::tag::ATTRIBUTE_VALUE {
        return attribute_name.and_then(vocab::names_for_attribute);
    }
    vocab::names_for_tag(tag.0)
}

fn name_of(names: Option<Names>, v: u32) -> Option<&'static str> {
    match names? {
        Names::Enum(d) => d.by_value(v).map(|e| e.xml),
        Names::Tags => vocab::tag_entry(v).map(|e| e.xml),
    }
}

fn value_of(names: Option<Names>, name: &str) -> Option<u32> {
    match names? {
        Names::Enum(d) => d.by_xml(name).map(|e| e.value),
        Names::Tags => vocab::tag_by_xml(name),
    }
}

fn mask_def(names: Option<Names>) -> Option<&'static vocab::EnumDef> {
    match names {
        Some(Names::Enum(d)) if d.is_mask() => Some(d),
        _ => None,
    }
}

/// The text form of a scalar value.
pub fn format_scalar(value: &Value, names: Option<Names>) -> String {
    match value {
        Value::Structure(_) => String::new(),
        Value::Integer(v) => match mask_def(names) {
            Some(d) => format_mask(d, *v as u32),
            None => v.to_string(),
        },
        Value::LongInteger(v) => v.to_string(),
        Value::BigInteger(b) => hex(b),
        Value::Enumeration(v) => match name_of(names, *v) {
            Some(n) => n.to_owned(),
            None => format!("0x{v:08X}"),
        },
        Value::Boolean(b) => b.to_string(),
        Value::TextString(s) => s.clone(),
        Value::ByteString(b) => hex(b),
        Value::DateTime(s) => time::format_secs(*s),
        Value::Interval(v) => v.to_string(),
        Value::DateTimeExtended(m) => time::format_micros(*m),
    }
}

fn format_mask(d: &vocab::EnumDef, v: u32) -> String {
    let mut names = Vec::new();
    let mut rest = v;
    for e in d.values {
        if e.value != 0 && v & e.value == e.value {
            names.push(e.xml);
            rest &= !e.value;
        }
    }
    if rest != 0 || names.is_empty() {
        return format!("0x{v:08X}");
    }
    names.join(" ")
}

/// Parse the text form of a scalar of type `item_type`.
pub fn parse_scalar(
    tag: Tag,
    item_type: ItemType,
    text: &str,
    names: Option<Names>,
) -> Result<Value, TextError> {
    let bad = || TextError::BadValue {
        tag: tag_name(tag),
        item_type,
        value: text.to_owned(),
    };
    Ok(match item_type {
        ItemType::Structure => return Err(bad()),
        ItemType::Integer => {
            if let Some(v) = parse_hex_u32(text) {
                Value::Integer(v as i32)
            } else if let Ok(v) = text.parse::<i32>() {
                Value::Integer(v)
            } else {
                let d = mask_def(names).ok_or_else(bad)?;
                let mut v = 0u32;
                for part in text.split(|c: char| c == '|' || c.is_whitespace()) {
                    if part.is_empty() {
                        continue;
                    }
                    v |= match parse_hex_u32(part) {
                        Some(x) => x,
                        None => d.by_xml(part).ok_or_else(bad)?.value,
                    };
                }
                Value::Integer(v as i32)
            }
        }
        ItemType::LongInteger => Value::LongInteger(match text.strip_prefix("0x") {
            Some(h) if h.len() <= 16 => u64::from_str_radix(h, 16).map_err(|_| bad())? as i64,
            Some(_) => return Err(bad()),
            None => text.parse().map_err(|_| bad())?,
        }),
        ItemType::BigInteger => {
            let h = text.strip_prefix("0x").unwrap_or(text);
            let b = unhex(h).filter(|b| !b.is_empty()).ok_or_else(bad)?;
            Value::BigInteger(sign_extend(b))
        }
        ItemType::Enumeration => Value::Enumeration(match parse_hex_u32(text) {
            Some(v) => v,
            None => value_of(names, text).ok_or_else(bad)?,
        }),
        ItemType::Boolean => Value::Boolean(match text {
            "true" => true,
            "false" => false,
            _ => return Err(bad()),
        }),
        ItemType::TextString => Value::TextString(text.to_owned()),
        ItemType::ByteString => Value::ByteString(unhex(text).ok_or_else(bad)?),
        ItemType::DateTime => Value::DateTime(match parse_hex_u64(text) {
            Some(v) => v as i64,
            None => time::parse_secs(text).map_err(|_| bad())?,
        }),
        ItemType::Interval => Value::Interval(match parse_hex_u32(text) {
            Some(v) => v,
            None => text.parse().map_err(|_| bad())?,
        }),
        ItemType::DateTimeExtended => Value::DateTimeExtended(match parse_hex_u64(text) {
            Some(v) => v as i64,
            None => time::parse_micros(text).map_err(|_| bad())?,
        }),
    })
}

fn parse_hex_u64(s: &str) -> Option<u64> {
    let h = s.strip_prefix("0x")?;
    if h.is_empty() || h.len() > 16 {
        return None;
    }
    u64::from_str_radix(h, 16).ok()
}

/// Big Integers travel in multiples of eight bytes; widen on the left keeping the sign.
pub fn sign_extend(b: Vec<u8>) -> Vec<u8> {
    let want = b.len().div_ceil(8) * 8;
    if want == b.len() {
        return b;
    }
    let fill = if b[0] & 0x80 != 0 { 0xFF } else { 0 };
    let mut out = vec![fill; want - b.len()];
    out.extend_from_slice(&b);
    out
}

/// The Attribute Name that gives meaning to a 1.x Attribute Value among `siblings`.
pub fn attribute_name_among(siblings: &[Ttlv]) -> Option<&str> {
    siblings
        .iter()
        .find(|s| s.tag == vocab::tag::ATTRIBUTE_NAME)
        .and_then(Ttlv::as_text)
}
