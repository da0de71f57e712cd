//! The TTLV tree: one item is a tag, a type and a value; a Structure holds items.
//!
//! The tree keeps every value exactly as it travels on the wire (enumerations as `u32`, tags
//! as `u32`), so vendor extensions and values from newer specifications round-trip intact.

mod decode;
mod encode;

pub use decode::{decode, frame_length, DecodeError, InvalidKind, Limits};
pub use encode::{encode, encode_into, encoded_len};

// a tag is vocabulary: `vocab` owns the type and its names, and needs nothing of the tree
pub use crate::vocab::Tag;

use std::fmt;

/// The item types of KMIP, with their wire codes.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum ItemType {
    Structure = 0x01,
    Integer = 0x02,
    LongInteger = 0x03,
    BigInteger = 0x04,
    Enumeration = 0x05,
    Boolean = 0x06,
    TextString = 0x07,
    ByteString = 0x08,
    DateTime = 0x09,
    Interval = 0x0A,
    DateTimeExtended = 0x0B,
}

impl ItemType {
    pub fn from_code(code: u8) -> Option<ItemType> {
        use ItemType::*;
        Some(match code {
            0x01 => Structure,
            0x02 => Integer,
            0x03 => LongInteger,
            0x04 => BigInteger,
            0x05 => Enumeration,
            0x06 => Boolean,
            0x07 => TextString,
            0x08 => ByteString,
            0x09 => DateTime,
            0x0A => Interval,
            0x0B => DateTimeExtended,
            _ => return None,
        })
    }

    /// The name used by the KMIP XML and JSON encodings.
    pub fn xml_name(self) -> &'static str {
        use ItemType::*;
        match self {
            Structure => "Structure",
            Integer => "Integer",
            LongInteger => "LongInteger",
            BigInteger => "BigInteger",
            Enumeration => "Enumeration",
            Boolean => "Boolean",
            TextString => "TextString",
            ByteString => "ByteString",
            DateTime => "DateTime",
            Interval => "Interval",
            DateTimeExtended => "DateTimeExtended",
        }
    }

    pub fn from_xml_name(name: &str) -> Option<ItemType> {
        use ItemType::*;
        [
            Structure,
            Integer,
            LongInteger,
            BigInteger,
            Enumeration,
            Boolean,
            TextString,
            ByteString,
            DateTime,
            Interval,
            DateTimeExtended,
        ]
        .into_iter()
        .find(|t| t.xml_name() == name)
    }
}

/// A value as it is on the wire.
///
/// Byte strings are not printed by `Debug` beyond their length: a tree may carry key material.
#[derive(Clone, PartialEq, Eq)]
pub enum Value {
    Structure(Vec<Ttlv>),
    Integer(i32),
    LongInteger(i64),
    /// Big-endian two's complement, a multiple of 8 bytes as on the wire.
    BigInteger(Vec<u8>),
    Enumeration(u32),
    Boolean(bool),
    TextString(String),
    ByteString(Vec<u8>),
    /// Seconds since the Unix epoch.
    DateTime(i64),
    /// Seconds.
    Interval(u32),
    /// Microseconds since the Unix epoch.
    DateTimeExtended(i64),
}

impl Value {
    pub fn item_type(&self) -> ItemType {
        match self {
            Value::Structure(_) => ItemType::Structure,
            Value::Integer(_) => ItemType::Integer,
            Value::LongInteger(_) => ItemType::LongInteger,
            Value::BigInteger(_) => ItemType::BigInteger,
            Value::Enumeration(_) => ItemType::Enumeration,
            Value::Boolean(_) => ItemType::Boolean,
            Value::TextString(_) => ItemType::TextString,
            Value::ByteString(_) => ItemType::ByteString,
            Value::DateTime(_) => ItemType::DateTime,
            Value::Interval(_) => ItemType::Interval,
            Value::DateTimeExtended(_) => ItemType::DateTimeExtended,
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Structure(items) => f.debug_list().entries(items).finish(),
            Value::Integer(v) => write!(f, "Integer({v})"),
            Value::LongInteger(v) => write!(f, "LongInteger({v})"),
            Value::BigInteger(v) => write!(f, "BigInteger(<{} bytes>)", v.len()),
            Value::Enumeration(v) => write!(f, "Enumeration(0x{v:08X})"),
            Value::Boolean(v) => write!(f, "Boolean({v})"),
            Value::TextString(v) => write!(f, "TextString({v:?})"),
            Value::ByteString(v) => write!(f, "ByteString(<{} bytes>)", v.len()),
            Value::DateTime(v) => write!(f, "DateTime({v})"),
            Value::Interval(v) => write!(f, "Interval({v})"),
            Value::DateTimeExtended(v) => write!(f, "DateTimeExtended({v})"),
        }
    }
}

/// One TTLV item.
#[derive(Clone, PartialEq, Eq)]
pub struct Ttlv {
    pub tag: Tag,
    pub value: Value,
}

impl fmt::Debug for Ttlv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {:?}", self.tag, self.value)
    }
}

impl Ttlv {
    pub fn new(tag: Tag, value: Value) -> Ttlv {
        Ttlv { tag, value }
    }

    pub fn structure(tag: Tag, items: Vec<Ttlv>) -> Ttlv {
        Ttlv::new(tag, Value::Structure(items))
    }

    /// The children of a Structure; empty for any other type.
    pub fn children(&self) -> &[Ttlv] {
        match &self.value {
            Value::Structure(items) => items,
            _ => &[],
        }
    }

    pub fn children_mut(&mut self) -> Option<&mut Vec<Ttlv>> {
        match &mut self.value {
            Value::Structure(items) => Some(items),
            _ => None,
        }
    }

    /// The first child with this tag.
    pub fn child(&self, tag: Tag) -> Option<&Ttlv> {
        self.children().iter().find(|c| c.tag == tag)
    }

    /// Every child with this tag, in order.
    pub fn children_with(&self, tag: Tag) -> impl Iterator<Item = &Ttlv> {
        self.children().iter().filter(move |c| c.tag == tag)
    }

    pub fn as_text(&self) -> Option<&str> {
        match &self.value {
            Value::TextString(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_i32(&self) -> Option<i32> {
        match self.value {
            Value::Integer(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_enum(&self) -> Option<u32> {
        match self.value {
            Value::Enumeration(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self.value {
            Value::Boolean(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&[u8]> {
        match &self.value {
            Value::ByteString(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_datetime(&self) -> Option<i64> {
        match self.value {
            Value::DateTime(v) => Some(v),
            _ => None,
        }
    }

    /// Number of items in this tree, this one included.
    pub fn item_count(&self) -> usize {
        1 + self.children().iter().map(Ttlv::item_count).sum::<usize>()
    }
}

/// An empty Structure. Typed fields that hold a tree re-tag it when encoding, so the tag of a
/// default value never reaches the wire.
impl Default for Ttlv {
    fn default() -> Self {
        Ttlv::structure(Tag(0x42_0000), Vec::new())
    }
}

#[cfg(test)]
mod tests;
