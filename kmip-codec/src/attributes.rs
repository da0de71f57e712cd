//! Lossless conversion between the 1.x attribute structures and 2.x Attributes.
//!
//! 1.x: `Attribute { Attribute Name "Cryptographic Algorithm", Attribute Index?, Attribute
//! Value }`, gathered in a Template-Attribute. 2.x: the attribute is an item with its own tag
//! (`CryptographicAlgorithm`), gathered in Attributes. Custom attributes: the 1.x name
//! `x-ID` is the 2.x vendor attribute `Attribute { Vendor Identification "x", Attribute Name
//! "ID", Attribute Value }` (the specification reserves vendor identification "x" for clients
//! and "y" for servers, as 1.x did with the name prefixes).
//!
//! 2.x has no Attribute Index: instances keep their order, and the index is their position
//! among instances of the same attribute. Indexes that clients send in new attributes are not
//! reliable (PyKMIP sends 0 for every instance), so conversion keeps the message order and
//! does not reorder by index.

use crate::ttlv::{Tag, Ttlv, Value};
use crate::vocab::{self, tag};
use thiserror::Error;

/// Why a tree is not an attribute this crate can read.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum AttributeError {
    /// An Attribute structure without its Attribute Name or Attribute Value.
    #[error("an Attribute needs an Attribute Name and an Attribute Value")]
    Malformed,
    /// A 1.x Attribute Name the vocabulary does not know.
    #[error("unknown attribute {0:?}")]
    UnknownAttribute(String),
    /// A 2.x item whose tag names no attribute.
    #[error("{0:?} is not an attribute")]
    NotAnAttribute(Tag),
}

/// The Linked Object Identifier of the first 2.x Link item of type `kind` among `items`.
pub fn linked(items: &[Ttlv], kind: u32) -> Option<String> {
    items
        .iter()
        .filter(|a| a.tag == tag::LINK)
        .find(|l| l.child(tag::LINK_TYPE).and_then(Ttlv::as_enum) == Some(kind))
        .and_then(|l| {
            l.child(tag::LINKED_OBJECT_IDENTIFIER)?
                .as_text()
                .map(str::to_owned)
        })
}

/// The 2.x item for one 1.x Attribute structure.
pub fn attribute_to_v2(attr: &Ttlv) -> Result<Ttlv, AttributeError> {
    let name = attr
        .child(tag::ATTRIBUTE_NAME)
        .and_then(Ttlv::as_text)
        .ok_or(AttributeError::Malformed)?;
    let value = attr
        .child(tag::ATTRIBUTE_VALUE)
        .ok_or(AttributeError::Malformed)?;
    if let Some((vendor, rest)) = custom_name(name) {
        return Ok(Ttlv::structure(
            tag::ATTRIBUTE,
            vec![
                Ttlv::new(tag::VENDOR_IDENTIFICATION, Value::TextString(vendor.into())),
                Ttlv::new(tag::ATTRIBUTE_NAME, Value::TextString(rest.into())),
                value.clone(),
            ],
        ));
    }
    let t =
        vocab::tag_by_name(name).ok_or_else(|| AttributeError::UnknownAttribute(name.into()))?;
    Ok(Ttlv::new(Tag(t), value.value.clone()))
}

fn custom_name(name: &str) -> Option<(&str, &str)> {
    let (vendor, rest) = name.split_once('-')?;
    (vendor == "x" || vendor == "y").then_some((vendor, rest))
}

/// The 1.x name of a 2.x attribute item ("Cryptographic Algorithm", "x-ID").
pub fn attribute_name(item: &Ttlv) -> Result<String, AttributeError> {
    if item.tag == tag::ATTRIBUTE {
        let vendor = item
            .child(tag::VENDOR_IDENTIFICATION)
            .and_then(Ttlv::as_text);
        let name = item.child(tag::ATTRIBUTE_NAME).and_then(Ttlv::as_text);
        return match (vendor, name) {
            (Some(v), Some(n)) => Ok(format!("{v}-{n}")),
            _ => Err(AttributeError::Malformed),
        };
    }
    item.tag
        .name()
        .map(str::to_owned)
        .ok_or(AttributeError::NotAnAttribute(item.tag))
}

/// The 1.x Attribute structure for one 2.x item, with its Attribute Index. The index is
/// optional in 1.x (0 when absent) but clients such as PyKMIP read it unconditionally.
pub fn attribute_to_v1(item: &Ttlv, index: i32) -> Result<Ttlv, AttributeError> {
    let name = attribute_name(item)?;
    let value = if item.tag == tag::ATTRIBUTE {
        item.child(tag::ATTRIBUTE_VALUE)
            .ok_or(AttributeError::Malformed)?
            .value
            .clone()
    } else {
        item.value.clone()
    };
    let mut children = vec![Ttlv::new(tag::ATTRIBUTE_NAME, Value::TextString(name))];
    children.push(Ttlv::new(tag::ATTRIBUTE_INDEX, Value::Integer(index)));
    children.push(Ttlv::new(tag::ATTRIBUTE_VALUE, value));
    Ok(Ttlv::structure(tag::ATTRIBUTE, children))
}

/// 1.x Attribute structures (the Attribute children of a Template-Attribute, or the Attributes
/// of a 1.x Get Attributes response) as the children of a 2.x Attributes structure.
pub fn to_v2(attributes: &[Ttlv]) -> Result<Vec<Ttlv>, AttributeError> {
    attributes
        .iter()
        .filter(|a| a.tag == tag::ATTRIBUTE)
        .map(attribute_to_v2)
        .collect()
}

/// 2.x attribute items as 1.x Attribute structures, with indexes for repeated attributes.
pub fn to_v1(items: &[Ttlv]) -> Result<Vec<Ttlv>, AttributeError> {
    let mut out = Vec::with_capacity(items.len());
    let mut names: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let name = attribute_name(item)?;
        let index = names.iter().filter(|n| **n == name).count() as i32;
        out.push(attribute_to_v1(item, index)?);
        names.push(name);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(t: Tag, s: &str) -> Ttlv {
        Ttlv::new(t, Value::TextString(s.into()))
    }

    fn v1(name: &str, value: Value) -> Ttlv {
        Ttlv::structure(
            tag::ATTRIBUTE,
            vec![
                text(tag::ATTRIBUTE_NAME, name),
                Ttlv::new(tag::ATTRIBUTE_VALUE, value),
            ],
        )
    }

    #[test]
    fn both_ways() {
        let name = Value::Structure(vec![
            text(tag::NAME_VALUE, "k1"),
            Ttlv::new(tag::NAME_TYPE, Value::Enumeration(1)),
        ]);
        let one = vec![
            v1("Cryptographic Algorithm", Value::Enumeration(3)),
            v1("Name", name.clone()),
            v1("Name", Value::Structure(vec![text(tag::NAME_VALUE, "k2")])),
            v1("x-ID", Value::TextString("CS-BC-M-6".into())),
        ];
        let two = to_v2(&one).unwrap();
        assert_eq!(
            two[0],
            Ttlv::new(tag::CRYPTOGRAPHIC_ALGORITHM, Value::Enumeration(3))
        );
        assert_eq!(two[1], Ttlv::new(tag::NAME, name));
        assert_eq!(
            two[3],
            Ttlv::structure(
                tag::ATTRIBUTE,
                vec![
                    text(tag::VENDOR_IDENTIFICATION, "x"),
                    text(tag::ATTRIBUTE_NAME, "ID"),
                    Ttlv::new(tag::ATTRIBUTE_VALUE, Value::TextString("CS-BC-M-6".into())),
                ]
            )
        );
        let back = to_v1(&two).unwrap();
        // the second Name gets its index back
        assert_eq!(
            back[2].child(tag::ATTRIBUTE_INDEX).and_then(Ttlv::as_i32),
            Some(1)
        );
        assert_eq!(to_v2(&back).unwrap(), two);
        let index = |a: &Ttlv| a.child(tag::ATTRIBUTE_INDEX).and_then(Ttlv::as_i32);
        assert_eq!(index(&back[0]), Some(0));
        assert_eq!(
            back[0].child(tag::ATTRIBUTE_VALUE),
            one[0].child(tag::ATTRIBUTE_VALUE)
        );
        assert_eq!(
            back[3].child(tag::ATTRIBUTE_NAME),
            one[3].child(tag::ATTRIBUTE_NAME)
        );
    }

    #[test]
    fn rejects() {
        assert_eq!(
            to_v2(&[v1("No Such Attribute", Value::Integer(1))]),
            Err(AttributeError::UnknownAttribute("No Such Attribute".into()))
        );
        let mut indexed = v1("Name", Value::Structure(vec![]));
        indexed
            .children_mut()
            .unwrap()
            .insert(1, Ttlv::new(tag::ATTRIBUTE_INDEX, Value::Integer(3)));
        // message order decides, not the index
        assert_eq!(
            to_v2(&[indexed]).unwrap()[0],
            Ttlv::structure(tag::NAME, vec![])
        );
        assert!(to_v1(&[Ttlv::new(Tag(0x54_0001), Value::Integer(1))]).is_err());
    }
}
