//! The KMIP vocabulary: tags, enumerations and masks of KMIP 1.0 to 2.1.
//!
//! `generated.rs` is produced from the specification text by `tools/gen_vocab.py`; this module
//! indexes it, and owns the `Tag` type its constants are of. It uses nothing else of the crate:
//! the TTLV tree takes its tags from here (`ttlv::Tag` is this one).

// the tags and values carry the specification's own names, which are their documentation
#[allow(missing_docs)]
mod generated;

pub use generated::{enums, tag};

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

/// A KMIP tag: three bytes on the wire, 0x42xxxx for the specification, 0x54xxxx for extensions.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(pub u32);

impl Tag {
    /// The specification's name ("Unique Identifier"), if the tag is known.
    pub fn name(self) -> Option<&'static str> {
        tag_entry(self.0).map(|e| e.name)
    }

    /// The KMIP XML/JSON element name ("UniqueIdentifier"), if the tag is known.
    pub fn xml_name(self) -> Option<&'static str> {
        tag_entry(self.0).map(|e| e.xml)
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.xml_name() {
            Some(n) => write!(f, "{n}"),
            None => write!(f, "0x{:06X}", self.0),
        }
    }
}

/// One named value of a table of the specification.
#[derive(Debug)]
pub struct VocabEntry {
    /// The code: a tag, or the value of an enumeration or mask bit.
    pub value: u32,
    /// As the specification writes it ("Pre-Active").
    pub name: &'static str,
    /// As the KMIP XML and JSON encodings write it ("PreActive").
    pub xml: &'static str,
    /// First and last major protocol version that define it (1 = 1.x, 2 = 2.x).
    pub first: u8,
    /// The last major version that defines it.
    pub last: u8,
}

impl VocabEntry {
    /// Whether protocol version `major`.x defines this entry.
    pub fn in_major(&self, major: i32) -> bool {
        (self.first as i32..=self.last as i32).contains(&major)
    }
}

/// One enumeration or mask table.
#[derive(Debug)]
pub struct EnumDef {
    /// The table's name as the specification writes it ("Cryptographic Algorithm").
    pub name: &'static str,
    /// The table's name in KMIP XML and JSON ("CryptographicAlgorithm").
    pub xml: &'static str,
    /// Sorted by value.
    pub values: &'static [VocabEntry],
}

impl EnumDef {
    /// The entry for `value`, if the table has one.
    pub fn by_value(&self, value: u32) -> Option<&'static VocabEntry> {
        self.values
            .binary_search_by_key(&value, |e| e.value)
            .ok()
            .map(|i| &self.values[i])
    }

    /// The entry named `name` in KMIP XML/JSON form.
    pub fn by_xml(&self, name: &str) -> Option<&'static VocabEntry> {
        self.values.iter().find(|e| e.xml == name)
    }

    /// Masks are Integers whose bits are named; the rest are Enumerations.
    pub fn is_mask(&self) -> bool {
        self.name.ends_with("Mask")
    }
}

/// How the values of an item with a given tag are named in XML and JSON.
#[derive(Clone, Copy, Debug)]
pub enum Names {
    /// Values named by this table.
    Enum(&'static EnumDef),
    /// 2.x Attribute Reference: the value is a tag.
    Tags,
}

/// Every tag of KMIP 1.0 to 2.1, sorted by value.
pub fn tags() -> &'static [VocabEntry] {
    generated::TAGS
}

/// Every enumeration and mask table.
pub fn enum_defs() -> &'static [EnumDef] {
    generated::ENUMS
}

/// The tag whose value is `value`, if the specification defines one.
pub fn tag_entry(value: u32) -> Option<&'static VocabEntry> {
    let t = generated::TAGS;
    t.binary_search_by_key(&value, |e| e.value)
        .ok()
        .map(|i| &t[i])
}

fn xml_index() -> &'static HashMap<&'static str, u32> {
    static INDEX: OnceLock<HashMap<&'static str, u32>> = OnceLock::new();
    INDEX.get_or_init(|| generated::TAGS.iter().map(|e| (e.xml, e.value)).collect())
}

/// A tag by its XML/JSON element name ("UniqueIdentifier").
pub fn tag_by_xml(name: &str) -> Option<u32> {
    xml_index().get(name).copied()
}

/// A tag by its specification name ("Unique Identifier"), as 1.x Attribute Names carry them.
pub fn tag_by_name(name: &str) -> Option<u32> {
    static INDEX: OnceLock<HashMap<&'static str, u32>> = OnceLock::new();
    INDEX
        .get_or_init(|| generated::TAGS.iter().map(|e| (e.name, e.value)).collect())
        .get(name)
        .copied()
}

/// A table by its KMIP XML/JSON name ("CryptographicAlgorithm").
pub fn enum_def(xml_name: &str) -> Option<&'static EnumDef> {
    generated::ENUMS.iter().find(|e| e.xml == xml_name)
}

/// The table that names the values of items with this tag, if any.
pub fn names_for_tag(tag: u32) -> Option<Names> {
    static INDEX: OnceLock<HashMap<u32, Names>> = OnceLock::new();
    INDEX
        .get_or_init(|| {
            let mut m = HashMap::new();
            for t in generated::TAGS {
                if let Some(d) = enum_def(t.xml) {
                    m.insert(t.value, Names::Enum(d));
                }
            }
            // tags whose values come from a table of another name
            let aliases = [
                (tag::MASK_GENERATOR_HASHING_ALGORITHM, "HashingAlgorithm"),
                (tag::PROTECTION_STORAGE_MASK, "ProtectionStorageMask"),
            ];
            for (t, e) in aliases {
                if let Some(d) = enum_def(e) {
                    m.insert(t.0, Names::Enum(d));
                }
            }
            m.insert(tag::ATTRIBUTE_REFERENCE.0, Names::Tags);
            m
        })
        .get(&tag)
        .copied()
}

/// The table for a 1.x Attribute Value, named by its sibling Attribute Name ("State").
pub fn names_for_attribute(attribute_name: &str) -> Option<Names> {
    tag_by_name(attribute_name).and_then(names_for_tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_sorted_and_unique() {
        assert!(tags().windows(2).all(|w| w[0].value < w[1].value));
        assert!(tags().len() > 300, "{} tags", tags().len());
    }

    #[test]
    fn enums_are_sorted_and_unique() {
        for d in enum_defs() {
            assert!(
                d.values.windows(2).all(|w| w[0].value < w[1].value),
                "{}",
                d.name
            );
        }
    }

    #[test]
    fn known_values() {
        assert_eq!(tag_by_xml("UniqueIdentifier"), Some(0x420094));
        assert_eq!(tag_by_xml("TemplateAttribute"), Some(0x420091));
        assert_eq!(
            tag_entry(0x420091).unwrap().last,
            1,
            "Template-Attribute is 1.x only"
        );
        assert_eq!(tag_by_name("Cryptographic Usage Mask"), Some(0x42002C));
        let Some(Names::Enum(state)) = names_for_tag(tag::STATE.0) else {
            panic!("State has a table")
        };
        assert_eq!(
            state.by_xml("PreActive").unwrap().value,
            enums::state::PRE_ACTIVE
        );
        assert_eq!(enums::cryptographic_algorithm::AES, 3);
        assert_eq!(enums::operation::DISCOVER_VERSIONS, 0x1E);
        let alg = enum_def("CryptographicAlgorithm").unwrap();
        assert_eq!(alg.by_xml("HMAC_SHA256").unwrap().value, 0x09);
        assert_eq!(alg.by_xml("DES3").unwrap().value, 0x02);
        assert!(enum_def("CryptographicUsageMask").unwrap().is_mask());
    }
}
