//! The typed KMIP message model: headers, batch items and one payload type per operation.
//!
//! Every typed structure is declared with [`kmip_struct!`](crate::kmip_struct): its fields in
//! specification order, each with its tag and how many times it may appear. Decoding accepts the
//! fields in any order but rejects unknown or duplicated ones; encoding writes them in
//! specification order. Values whose shape the model does not pin down (attributes, managed
//! objects, vendor extensions) stay generic [`Ttlv`] trees, so nothing is lost.

mod header;

pub use header::*;

use crate::ttlv::{ItemType, Tag, Ttlv, Value};
use thiserror::Error;

/// Why a tree does not fit the typed message model.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A required field is absent.
    #[error("{structure}: missing required field {field}")]
    Missing {
        /// The structure it is missing from.
        structure: &'static str,
        /// The specification's name of the missing field.
        field: &'static str,
    },
    /// A field that may appear once appears more often.
    #[error("{structure}: field {field} appears more than once")]
    Duplicate {
        /// The structure it repeats in.
        structure: &'static str,
        /// The specification's name of the repeated field.
        field: &'static str,
    },
    /// A field the structure does not have.
    #[error("{structure}: unexpected field {tag:?}")]
    Unexpected {
        /// The structure it appears in.
        structure: &'static str,
        /// The tag of the field.
        tag: Tag,
    },
    /// A field has the wrong item type.
    #[error("{tag:?}: expected {expected:?}, found {found:?}")]
    WrongType {
        /// The tag of the field.
        tag: Tag,
        /// The type the model expects for it.
        expected: ItemType,
        /// The type it came with.
        found: ItemType,
    },
    /// The outermost item is neither a Request Message nor a Response Message.
    #[error("{0:?} is neither a Request Message nor a Response Message")]
    NotAMessage(Tag),
}

impl ModelError {
    /// The tag of the offending field, where there is one.
    pub fn tag(&self) -> Option<Tag> {
        match self {
            ModelError::Unexpected { tag, .. } | ModelError::WrongType { tag, .. } => Some(*tag),
            _ => None,
        }
    }
}

/// A value that one field of a typed structure can hold.
pub trait FieldValue: Sized {
    /// Read the value from one item, whatever its tag.
    fn decode(item: &Ttlv) -> Result<Self, ModelError>;
    /// Write the value as one item with tag `tag`.
    fn encode(&self, tag: Tag) -> Ttlv;
}

fn wrong(item: &Ttlv, expected: ItemType) -> ModelError {
    ModelError::WrongType {
        tag: item.tag,
        expected,
        found: item.value.item_type(),
    }
}

macro_rules! scalar_field {
    ($t:ty, $variant:ident) => {
        impl FieldValue for $t {
            fn decode(item: &Ttlv) -> Result<Self, ModelError> {
                match &item.value {
                    Value::$variant(v) => Ok(v.clone()),
                    _ => Err(wrong(item, ItemType::$variant)),
                }
            }
            fn encode(&self, tag: Tag) -> Ttlv {
                Ttlv::new(tag, Value::$variant(self.clone()))
            }
        }
    };
}

/// An Enumeration value, kept as the wire's u32 so that unknown values survive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Enum(pub u32);
/// A Date-Time: seconds since the epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct DateTime(pub i64);
/// An Interval: seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Interval(pub u32);
/// A Byte String.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Bytes(pub Vec<u8>);

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bytes(<{} bytes>)", self.0.len())
    }
}

scalar_field!(i32, Integer);
scalar_field!(i64, LongInteger);
scalar_field!(bool, Boolean);
scalar_field!(String, TextString);

macro_rules! newtype_field {
    ($t:ident, $variant:ident) => {
        impl FieldValue for $t {
            fn decode(item: &Ttlv) -> Result<Self, ModelError> {
                match &item.value {
                    Value::$variant(v) => Ok($t(v.clone())),
                    _ => Err(wrong(item, ItemType::$variant)),
                }
            }
            fn encode(&self, tag: Tag) -> Ttlv {
                Ttlv::new(tag, Value::$variant(self.0.clone()))
            }
        }
    };
}
newtype_field!(Enum, Enumeration);
newtype_field!(DateTime, DateTime);
newtype_field!(Interval, Interval);
newtype_field!(Bytes, ByteString);

/// A field kept as a generic tree: its tag is the field's own.
impl FieldValue for Ttlv {
    fn decode(item: &Ttlv) -> Result<Self, ModelError> {
        Ok(item.clone())
    }
    fn encode(&self, tag: Tag) -> Ttlv {
        Ttlv::new(tag, self.value.clone())
    }
}

/// How often a field may appear: exactly once (`T`), at most once (`Option<T>`) or any number
/// of times (`Vec<T>`).
pub trait Multiplicity: Sized {
    /// Take the field's value from the items with its tag; `structure` and `field` name it in
    /// errors.
    fn take(
        structure: &'static str,
        field: &'static str,
        items: &[&Ttlv],
    ) -> Result<Self, ModelError>;
    /// Append the value (none, one or several items) with tag `tag` to `out`.
    fn put(&self, tag: Tag, out: &mut Vec<Ttlv>);
}

impl<T: FieldValue> Multiplicity for Option<T> {
    fn take(
        structure: &'static str,
        field: &'static str,
        items: &[&Ttlv],
    ) -> Result<Self, ModelError> {
        match items {
            [] => Ok(None),
            [one] => Ok(Some(T::decode(one)?)),
            _ => Err(ModelError::Duplicate { structure, field }),
        }
    }
    fn put(&self, tag: Tag, out: &mut Vec<Ttlv>) {
        if let Some(v) = self {
            out.push(v.encode(tag));
        }
    }
}

impl<T: FieldValue> Multiplicity for Vec<T> {
    fn take(_: &'static str, _: &'static str, items: &[&Ttlv]) -> Result<Self, ModelError> {
        items.iter().map(|i| T::decode(i)).collect()
    }
    fn put(&self, tag: Tag, out: &mut Vec<Ttlv>) {
        out.extend(self.iter().map(|v| v.encode(tag)));
    }
}

/// A required field.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Req<T>(pub T);

impl<T: FieldValue> Multiplicity for Req<T> {
    fn take(
        structure: &'static str,
        field: &'static str,
        items: &[&Ttlv],
    ) -> Result<Self, ModelError> {
        match items {
            [] => Err(ModelError::Missing { structure, field }),
            [one] => Ok(Req(T::decode(one)?)),
            _ => Err(ModelError::Duplicate { structure, field }),
        }
    }
    fn put(&self, tag: Tag, out: &mut Vec<Ttlv>) {
        out.push(self.0.encode(tag));
    }
}

impl<T> std::ops::Deref for Req<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Declare a typed KMIP structure. Each field: `name: Multiplicity<Type> = TAG_CONSTANT`.
#[macro_export]
macro_rules! kmip_struct {
    ($(#[$m:meta])* pub struct $name:ident { $( $(#[$fm:meta])* $field:ident : $ty:ty = $tag:ident ),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Debug, PartialEq, Default)]
        pub struct $name { $( $(#[$fm])* pub $field: $ty, )* }

        impl $name {
            /// Decode from the children of a Structure.
            pub fn from_children(children: &[$crate::ttlv::Ttlv]) -> Result<Self, $crate::message::ModelError> {
                #[allow(unused_imports)]
                use $crate::message::Multiplicity;
                const KNOWN: &[$crate::ttlv::Tag] = &[$( $crate::vocab::tag::$tag ),*];
                if let Some(c) = children.iter().find(|c| !KNOWN.contains(&c.tag)) {
                    return Err($crate::message::ModelError::Unexpected { structure: stringify!($name), tag: c.tag });
                }
                Ok($name { $(
                    $field: <$ty as $crate::message::Multiplicity>::take(
                        stringify!($name),
                        $crate::vocab::tag::$tag.name().unwrap_or(stringify!($tag)),
                        &children.iter().filter(|c| c.tag == $crate::vocab::tag::$tag).collect::<Vec<_>>(),
                    )?,
                )* })
            }

            /// Encode as the children of a Structure, in specification order.
            pub fn to_children(&self) -> Vec<$crate::ttlv::Ttlv> {
                #[allow(unused_imports)]
                use $crate::message::Multiplicity;
                #[allow(unused_mut)]
                let mut out = Vec::new();
                $( <$ty as $crate::message::Multiplicity>::put(&self.$field, $crate::vocab::tag::$tag, &mut out); )*
                out
            }
        }

        impl $crate::message::FieldValue for $name {
            fn decode(item: &$crate::ttlv::Ttlv) -> Result<Self, $crate::message::ModelError> {
                match &item.value {
                    $crate::ttlv::Value::Structure(c) => $name::from_children(c),
                    v => Err($crate::message::ModelError::WrongType {
                        tag: item.tag,
                        expected: $crate::ttlv::ItemType::Structure,
                        found: v.item_type(),
                    }),
                }
            }
            fn encode(&self, tag: $crate::ttlv::Tag) -> $crate::ttlv::Ttlv {
                $crate::ttlv::Ttlv::structure(tag, self.to_children())
            }
        }
    };
}
