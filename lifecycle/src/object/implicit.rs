//! Attributes the server maintains without storing them in every record: their value follows
//! from the record (Short Unique Identifier, a hash of the Unique Identifier) or from server
//! policy (Lease Time, Protection Storage Mask), or they hold their default until something
//! changes them (Sensitive, Extractable, Fresh), and only a changed value is stored. A million
//! objects do not carry a million copies of the same defaults.

use super::*;
use kmip_codec::vocab::enums::protection_storage_mask;

/// The Operation Policy Name of an object that names none: the server's access policy.
pub const DEFAULT_POLICY: &str = "default";

/// What the record does not store of the attributes every object has.
pub fn implicit_attributes(r: &Record) -> Vec<Ttlv> {
    let mut v = Vec::with_capacity(6);
    for (t, default) in [
        (tag::SENSITIVE, false),
        (tag::EXTRACTABLE, true),
        (tag::FRESH, true),
    ] {
        if r.attribute(t).is_none() {
            v.push(boolean(t, default));
        }
    }
    // the lease Obtain Lease grants
    v.push(Ttlv::new(
        tag::LEASE_TIME,
        Value::Interval(usage::LEASE_TIME as u32),
    ));
    // keys are sealed by this process's software, never by a hardware module
    v.push(Ttlv::new(
        tag::PROTECTION_STORAGE_MASK,
        Value::Integer(protection_storage_mask::SOFTWARE as i32),
    ));
    v.push(Ttlv::new(
        tag::SHORT_UNIQUE_IDENTIFIER,
        Value::ByteString(openssl::sha::sha256(r.id.as_bytes()).to_vec()),
    ));
    v
}

/// Whether the object has `criterion` among its attributes, stored or implicit.
pub(super) fn has_attribute(r: &Record, criterion: &Ttlv) -> bool {
    if criterion.tag == tag::OPERATION_POLICY_NAME && r.attribute(criterion.tag).is_none() {
        return criterion.as_text() == Some(DEFAULT_POLICY);
    }
    r.attributes.iter().any(|a| a == criterion)
        || implicit_attributes(r).iter().any(|a| a == criterion)
}

impl Manager {
    /// An object was served by Get: it is no longer Fresh (stored once, on the first Get).
    pub fn served(&self, mut r: Record, now: i64) -> Result<(), LifecycleError> {
        if r.attribute(tag::FRESH).and_then(Ttlv::as_bool) == Some(false) {
            return Ok(());
        }
        set_single(&mut r.attributes, boolean(tag::FRESH, false));
        set_single(&mut r.attributes, date(tag::LAST_CHANGE_DATE, now));
        self.put(&r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(attributes: Vec<Ttlv>) -> Record {
        Record {
            id: "42".into(),
            object_type: ot::SYMMETRIC_KEY,
            state: State::Active,
            attributes,
            sealed: None,
            owner: None,
            grants: vec![],
        }
    }

    #[test]
    fn defaults_give_way_to_stored_values() {
        let r = record(vec![boolean(tag::SENSITIVE, true)]);
        let v = implicit_attributes(&r);
        assert!(!v.iter().any(|a| a.tag == tag::SENSITIVE));
        assert!(v.contains(&boolean(tag::EXTRACTABLE, true)));
        assert!(v.contains(&boolean(tag::FRESH, true)));
        let short = v
            .iter()
            .find(|a| a.tag == tag::SHORT_UNIQUE_IDENTIFIER)
            .and_then(Ttlv::as_bytes)
            .unwrap();
        assert_eq!(short, openssl::sha::sha256(b"42"));
    }

    #[test]
    fn an_object_without_a_policy_name_is_under_the_default_policy() {
        let plain = record(vec![]);
        let named = record(vec![text(tag::OPERATION_POLICY_NAME, "strict")]);
        let default = text(tag::OPERATION_POLICY_NAME, DEFAULT_POLICY);
        assert!(has_attribute(&plain, &default));
        assert!(!has_attribute(&named, &default));
        assert!(has_attribute(
            &named,
            &text(tag::OPERATION_POLICY_NAME, "strict")
        ));
        assert!(has_attribute(&plain, &boolean(tag::FRESH, true)));
        assert!(!has_attribute(&plain, &boolean(tag::FRESH, false)));
    }
}
