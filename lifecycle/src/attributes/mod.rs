//! Which attributes exist and who may set, modify or delete them: one rule per attribute of
//! KMIP 1.4 and 2.1, generated from the specification's rules tables
//! (`tools/gen_attributes.py`), plus the checks that apply them.

mod generated;

use crate::LifecycleError;
use kmip_codec::vocab::tag;
use kmip_codec::{Tag, Ttlv};

/// An attribute's rules as the specification's table gives them.
#[derive(Debug)]
pub struct SpecRule {
    /// The attribute.
    pub tag: Tag,
    /// A client may change it after it is set.
    pub client_modifies: bool,
    /// A client may delete it.
    pub client_deletes: bool,
    /// An object may hold several instances of it.
    pub multiple: bool,
    /// The first major protocol version that defines it.
    pub first: u8,
    /// The last major protocol version that defines it.
    pub last: u8,
}

/// An attribute's rules as this server applies them: the specification's, and which attributes the
/// server alone sets.
#[derive(Debug)]
pub struct Rule {
    /// The attribute.
    pub tag: Tag,
    /// A client may give it when creating or registering an object, or add it later.
    pub client_sets: bool,
    /// A client may change it after it is set.
    pub client_modifies: bool,
    /// A client may delete it.
    pub client_deletes: bool,
    /// An object may hold several instances of it.
    pub multiple: bool,
    /// First and last major protocol version that define the attribute.
    pub first: u8,
    /// The last major protocol version that defines it.
    pub last: u8,
}

/// Attributes the server alone sets, whatever a request says. The specification's rules tables
/// say "Initially set by: Server" also for attributes that the server sets *from* the client's
/// request (Cryptographic Algorithm, Length, Usage Mask are "implicitly set" by Create), so
/// those tables cannot decide this alone; these are the ones a client never supplies.
const SERVER_ONLY: &[Tag] = &[
    tag::UNIQUE_IDENTIFIER,
    tag::OBJECT_TYPE,
    tag::STATE,
    tag::INITIAL_DATE,
    tag::LAST_CHANGE_DATE,
    tag::DESTROY_DATE,
    tag::COMPROMISE_DATE,
    tag::ARCHIVE_DATE,
    tag::DIGEST,
    tag::KEY_VALUE_PRESENT,
    tag::ALWAYS_SENSITIVE,
    tag::NEVER_EXTRACTABLE,
    tag::SHORT_UNIQUE_IDENTIFIER,
    tag::ORIGINAL_CREATION_DATE,
    tag::LEASE_TIME,
    tag::REVOCATION_REASON,
    tag::CERTIFICATE_LENGTH,
    tag::CERTIFICATE_IDENTIFIER,
    tag::CERTIFICATE_ISSUER,
    tag::CERTIFICATE_SUBJECT,
    tag::X_509_CERTIFICATE_IDENTIFIER,
    tag::X_509_CERTIFICATE_ISSUER,
    tag::X_509_CERTIFICATE_SUBJECT,
    tag::DIGITAL_SIGNATURE_ALGORITHM,
];

/// The rules of the attribute with tag `t`; `None` for a tag that names no attribute.
pub fn rule(t: Tag) -> Option<Rule> {
    generated::RULES.iter().find(|r| r.tag == t).map(|r| Rule {
        tag: r.tag,
        client_sets: !SERVER_ONLY.contains(&r.tag),
        client_modifies: r.client_modifies,
        client_deletes: r.client_deletes,
        multiple: r.multiple,
        first: r.first,
        last: r.last,
    })
}

/// The rule for an attribute item; 2.x vendor attributes (`Attribute` with a Vendor
/// Identification) are the clients' (`x`) or the server's (`y`) custom attributes.
pub fn rule_for(item: &Ttlv) -> Result<Rule, LifecycleError> {
    if item.tag == tag::ATTRIBUTE {
        let vendor = item
            .child(tag::VENDOR_IDENTIFICATION)
            .and_then(Ttlv::as_text)
            .ok_or_else(|| {
                LifecycleError::InvalidField(
                    "vendor attribute without Vendor Identification".into(),
                )
            })?;
        let client = vendor != "y";
        return Ok(Rule {
            tag: tag::ATTRIBUTE,
            client_sets: client,
            client_modifies: client,
            client_deletes: client,
            multiple: true,
            first: 1,
            last: 2,
        });
    }
    rule(item.tag).ok_or(LifecycleError::UnsupportedAttribute(item.tag))
}

/// Whether protocol version `major`.x defines the attribute of this item.
pub fn defined_in(item: &Ttlv, major: i32) -> bool {
    match rule_for(item) {
        Ok(r) => (r.first as i32..=r.last as i32).contains(&major),
        Err(_) => false,
    }
}

/// Vendor attributes are told apart by vendor and name, the rest by tag.
pub fn same_attribute(a: &Ttlv, b: &Ttlv) -> bool {
    if a.tag != b.tag {
        return false;
    }
    if a.tag != tag::ATTRIBUTE {
        return true;
    }
    let key = |t: &Ttlv| {
        (
            t.child(tag::VENDOR_IDENTIFICATION)
                .and_then(Ttlv::as_text)
                .map(str::to_owned),
            t.child(tag::ATTRIBUTE_NAME)
                .and_then(Ttlv::as_text)
                .map(str::to_owned),
        )
    };
    key(a) == key(b)
}

/// Check the attributes a client gives when creating or registering: each must exist, be
/// settable by a client, and appear once unless it may have several instances.
pub fn check_client_attributes(items: &[Ttlv]) -> Result<(), LifecycleError> {
    for (i, item) in items.iter().enumerate() {
        let r = rule_for(item)?;
        if !r.client_sets {
            return Err(LifecycleError::ReadOnlyAttribute(item.tag));
        }
        if !r.multiple && items[..i].iter().any(|p| same_attribute(p, item)) {
            return Err(LifecycleError::SingleValuedAttribute(item.tag));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmip_codec::Value;

    #[test]
    fn rules_from_the_specification() {
        let state = rule(tag::STATE).unwrap();
        assert!(!state.client_sets && !state.client_modifies && !state.multiple);
        let name = rule(tag::NAME).unwrap();
        assert!(name.client_sets && name.client_deletes && name.multiple);
        let tmpl = rule(tag::OPERATION_POLICY_NAME).unwrap();
        assert_eq!((tmpl.first, tmpl.last), (1, 1), "1.x only");
        assert_eq!(
            rule(tag::SHORT_UNIQUE_IDENTIFIER).unwrap().first,
            2,
            "2.x only"
        );
        assert!(generated::RULES.len() >= 55, "{}", generated::RULES.len());
    }

    #[test]
    fn client_attribute_checks() {
        let alg = Ttlv::new(tag::CRYPTOGRAPHIC_ALGORITHM, Value::Enumeration(3));
        assert!(check_client_attributes(std::slice::from_ref(&alg)).is_ok());
        assert!(matches!(
            check_client_attributes(&[alg.clone(), alg]),
            Err(LifecycleError::SingleValuedAttribute(_))
        ));
        let st = Ttlv::new(tag::STATE, Value::Enumeration(2));
        assert!(matches!(
            check_client_attributes(&[st]),
            Err(LifecycleError::ReadOnlyAttribute(_))
        ));
        let server_custom = Ttlv::structure(
            tag::ATTRIBUTE,
            vec![
                Ttlv::new(tag::VENDOR_IDENTIFICATION, Value::TextString("y".into())),
                Ttlv::new(tag::ATTRIBUTE_NAME, Value::TextString("owner".into())),
                Ttlv::new(tag::ATTRIBUTE_VALUE, Value::TextString("me".into())),
            ],
        );
        assert!(check_client_attributes(&[server_custom]).is_err());
        let unknown = Ttlv::new(Tag(0x54_0001), Value::Integer(1));
        assert!(matches!(
            check_client_attributes(&[unknown]),
            Err(LifecycleError::UnsupportedAttribute(_))
        ));
    }
}
