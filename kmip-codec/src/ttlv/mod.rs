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
    /// Items nested in a length-prefixed container.
    Structure = 0x01,
    /// A signed 32-bit integer.
    Integer = 0x02,
    /// A signed 64-bit integer.
    LongInteger = 0x03,
    /// An arbitrary-precision signed integer.
    BigInteger = 0x04,
    /// A 32-bit value named by one of the specification's tables.
    Enumeration = 0x05,
    /// True or false, on 8 bytes.
    Boolean = 0x06,
    /// UTF-8 text.
    TextString = 0x07,
    /// Bytes.
    ByteString = 0x08,
    /// Seconds since the epoch, signed 64-bit.
    DateTime = 0x09,
    /// An unsigned 32-bit number of seconds.
    Interval = 0x0A,
    /// Microseconds since the epoch, signed 64-bit (KMIP 2.x).
    DateTimeExtended = 0x0B,
}

impl ItemType {
    /// The type of a wire code; `None` for codes KMIP does not define.
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

    /// The type of a KMIP XML/JSON type name ("TextString").
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
    /// The children, in order.
    Structure(Vec<Ttlv>),
    /// An Integer, or a mask of named bits.
    Integer(i32),
    /// A Long Integer.
    LongInteger(i64),
    /// Big-endian two's complement, a multiple of 8 bytes as on the wire.
    BigInteger(Vec<u8>),
    /// An Enumeration value, kept as a number: values from vendors and newer specifications pass
    /// through.
    Enumeration(u32),
    /// A Boolean.
    Boolean(bool),
    /// A Text String.
    TextString(String),
    /// A Byte String; `Debug` prints its length only.
    ByteString(Vec<u8>),
    /// Seconds since the Unix epoch.
    DateTime(i64),
    /// Seconds.
    Interval(u32),
    /// Microseconds since the Unix epoch.
    DateTimeExtended(i64),
}

impl Value {
    /// The item type that carries this value.
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
    /// What the item is.
    pub tag: Tag,
    /// Its value, which also gives its type.
    pub value: Value,
}

impl fmt::Debug for Ttlv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {:?}", self.tag, self.value)
    }
}

impl Ttlv {
    /// An item with tag `tag` and `value`.
    pub fn new(tag: Tag, value: Value) -> Ttlv {
        Ttlv { tag, value }
    }

    /// A Structure with these children.
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

    /// The children of a Structure, to change; `None` for any other type.
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

    /// The text of a Text String.
    pub fn as_text(&self) -> Option<&str> {
        match &self.value {
            Value::TextString(s) => Some(s),
            _ => None,
        }
    }

    /// The value of an Integer.
    pub fn as_i32(&self) -> Option<i32> {
        match self.value {
            Value::Integer(v) => Some(v),
            _ => None,
        }
    }

    /// The value of an Enumeration.
    pub fn as_enum(&self) -> Option<u32> {
        match self.value {
            Value::Enumeration(v) => Some(v),
            _ => None,
        }
    }

    /// The value of a Boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match self.value {
            Value::Boolean(v) => Some(v),
            _ => None,
        }
    }

    /// The bytes of a Byte String.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match &self.value {
            Value::ByteString(v) => Some(v),
            _ => None,
        }
    }

    /// The seconds of a Date-Time.
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
