//! A record and its encoding: TTLV, with the object's attributes in their 2.x form.

use super::StoreError;
use crate::state::State;
use kmip_codec::vocab::tag;
use kmip_codec::{Limits, Tag, Ttlv, Value};

// our vendor tags for the stored form (never sent on the wire)
use kmip_codec::vendor::tag::{GENERATED, GRANT, RECORD, SEALED};
pub use kmip_codec::vendor::tag::{GRANTEE, OWNER};

/// One managed object as the store keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// The Unique Identifier.
    pub id: String,
    /// The Object Type.
    pub object_type: u32,
    /// The State.
    pub state: State,
    /// 2.x attribute items (Name, Cryptographic Algorithm, vendor Attribute, ...), without the
    /// Unique Identifier, Object Type and State that are fields of their own.
    pub attributes: Vec<Ttlv>,
    /// The object's material, sealed by the core; `None` once destroyed (or never had any).
    pub sealed: Option<Vec<u8>>,
    /// The identity that created or registered it; `None` for objects made without a caller.
    pub owner: Option<String>,
    /// Other identities' rights: (identity, KMIP Operation values).
    pub grants: Vec<(String, Vec<u32>)>,
    /// The server generated the material (Create, Create Key Pair, Re-key, Certify of a key
    /// it made), rather than a client supplying it.
    pub generated: bool,
}

impl Record {
    /// The stored form: a TTLV structure.
    pub fn encode(&self) -> Vec<u8> {
        let mut items = vec![
            Ttlv::new(tag::UNIQUE_IDENTIFIER, Value::TextString(self.id.clone())),
            Ttlv::new(tag::OBJECT_TYPE, Value::Enumeration(self.object_type)),
            Ttlv::new(tag::STATE, Value::Enumeration(self.state.to_kmip())),
            Ttlv::structure(tag::ATTRIBUTES, self.attributes.clone()),
        ];
        if let Some(s) = &self.sealed {
            items.push(Ttlv::new(SEALED, Value::ByteString(s.clone())));
        }
        if let Some(o) = &self.owner {
            items.push(Ttlv::new(OWNER, Value::TextString(o.clone())));
        }
        if self.generated {
            items.push(Ttlv::new(GENERATED, Value::Boolean(true)));
        }
        for (who, ops) in &self.grants {
            let mut g = vec![Ttlv::new(GRANTEE, Value::TextString(who.clone()))];
            g.extend(
                ops.iter()
                    .map(|o| Ttlv::new(tag::OPERATION, Value::Enumeration(*o))),
            );
            items.push(Ttlv::structure(GRANT, g));
        }
        kmip_codec::encode(&Ttlv::structure(RECORD, items))
    }

    /// A record from its stored form; Corrupt names `id` when the bytes do not decode.
    pub fn decode(id: &str, bytes: &[u8]) -> Result<Record, StoreError> {
        let corrupt = || StoreError::Corrupt(id.to_owned());
        let limits = Limits {
            max_message_bytes: usize::MAX,
            ..Limits::default()
        };
        let (t, _) = kmip_codec::decode(bytes, &limits).map_err(|_| corrupt())?;
        Ok(Record {
            id: t
                .child(tag::UNIQUE_IDENTIFIER)
                .and_then(Ttlv::as_text)
                .ok_or_else(corrupt)?
                .to_owned(),
            object_type: t
                .child(tag::OBJECT_TYPE)
                .and_then(Ttlv::as_enum)
                .ok_or_else(corrupt)?,
            state: t
                .child(tag::STATE)
                .and_then(Ttlv::as_enum)
                .and_then(State::from_kmip)
                .ok_or_else(corrupt)?,
            attributes: t
                .child(tag::ATTRIBUTES)
                .ok_or_else(corrupt)?
                .children()
                .to_vec(),
            sealed: t.child(SEALED).and_then(Ttlv::as_bytes).map(<[u8]>::to_vec),
            owner: t.child(OWNER).and_then(Ttlv::as_text).map(str::to_owned),
            generated: t.child(GENERATED).is_some(),
            grants: t
                .children_with(GRANT)
                .map(|g| {
                    let who = g
                        .child(GRANTEE)
                        .and_then(Ttlv::as_text)
                        .unwrap_or("")
                        .to_owned();
                    let ops = g
                        .children_with(tag::OPERATION)
                        .filter_map(Ttlv::as_enum)
                        .collect();
                    (who, ops)
                })
                .collect(),
        })
    }

    /// The first attribute item with this tag.
    pub fn attribute(&self, t: Tag) -> Option<&Ttlv> {
        self.attributes.iter().find(|a| a.tag == t)
    }
}

/// An index key: the attribute's tag (3 bytes) then a value key. What is indexed: Name,
/// Object Type, Object Group, Certificate Type, Application Namespace and custom (vendor)
/// attributes with text values. Not State, Cryptographic Algorithm or Length: with a few
/// values shared by most objects they rarely narrow a search, and cost an entry per object
/// (and a rewrite at every state change).
pub fn index_key(t: Tag, value: &[u8]) -> Vec<u8> {
    let mut k = t.0.to_be_bytes()[1..].to_vec();
    k.extend_from_slice(value);
    k
}

/// The index key of an attribute item, if its attribute is indexed.
pub fn item_index_key(item: &Ttlv) -> Option<Vec<u8>> {
    match item.tag {
        tag::NAME => item
            .child(tag::NAME_VALUE)
            .and_then(Ttlv::as_text)
            .map(|n| index_key(tag::NAME, n.as_bytes())),
        tag::CERTIFICATE_TYPE | tag::OBJECT_TYPE => item
            .as_enum()
            .map(|v| index_key(item.tag, &v.to_be_bytes())),
        tag::OBJECT_GROUP => item.as_text().map(|g| index_key(item.tag, g.as_bytes())),
        tag::APPLICATION_SPECIFIC_INFORMATION => item
            .child(tag::APPLICATION_NAMESPACE)
            .and_then(Ttlv::as_text)
            .map(|n| index_key(item.tag, n.as_bytes())),
        tag::ATTRIBUTE => {
            let vendor = item
                .child(tag::VENDOR_IDENTIFICATION)
                .and_then(Ttlv::as_text)?;
            let name = item.child(tag::ATTRIBUTE_NAME).and_then(Ttlv::as_text)?;
            let value = item.child(tag::ATTRIBUTE_VALUE).and_then(Ttlv::as_text)?;
            // each part length-prefixed: vendor `y-ca` with name `issuer` must not file under
            // the server's own `y` / `ca-issuer` (which a CRL reads)
            let mut k = Vec::new();
            for part in [vendor, name] {
                k.extend_from_slice(&(part.len() as u32).to_be_bytes());
                k.extend_from_slice(part.as_bytes());
            }
            k.extend_from_slice(value.as_bytes());
            Some(index_key(tag::ATTRIBUTE, &k))
        }
        _ => None,
    }
}

/// Every index key of a record.
pub fn index_keys(r: &Record) -> Vec<Vec<u8>> {
    let mut keys = vec![index_key(tag::OBJECT_TYPE, &r.object_type.to_be_bytes())];
    keys.extend(r.attributes.iter().filter_map(item_index_key));
    if let Some(o) = &r.owner {
        keys.push(index_key(OWNER, o.as_bytes()));
    }
    for (who, _) in &r.grants {
        keys.push(index_key(GRANTEE, who.as_bytes()));
    }
    keys.sort();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    fn custom(vendor: &str, name: &str, value: &str) -> Ttlv {
        Ttlv::structure(
            tag::ATTRIBUTE,
            vec![
                Ttlv::new(tag::VENDOR_IDENTIFICATION, Value::TextString(vendor.into())),
                Ttlv::new(tag::ATTRIBUTE_NAME, Value::TextString(name.into())),
                Ttlv::new(tag::ATTRIBUTE_VALUE, Value::TextString(value.into())),
            ],
        )
    }

    /// A client's `y-ca` / `issuer` must not file where the server's `y` / `ca-issuer` does
    /// (a CRL reads that index).
    #[test]
    fn custom_attribute_keys_are_unambiguous() {
        let server = item_index_key(&custom("y", "ca-issuer", "12")).unwrap();
        let client = item_index_key(&custom("y-ca", "issuer", "12")).unwrap();
        assert_ne!(server, client);
        assert_ne!(
            item_index_key(&custom("a", "b\0c", "d")),
            item_index_key(&custom("a", "b", "c\0d"))
        );
    }
}
