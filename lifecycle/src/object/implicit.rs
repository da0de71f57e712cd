//! Attributes the server maintains without storing them in every record: their value follows
//! from the record (Short Unique Identifier, a hash of the Unique Identifier; Original Creation
//! Date, the Initial Date; Random Number Generator, ours when we generated the material) or
//! from server policy (Lease Time, Protection Storage Mask), or they hold their default until
//! something changes them (Sensitive, Extractable, Fresh, Always Sensitive, Never Extractable),
//! and only a value other than the default is stored. A million objects do not carry a million
//! copies of the same defaults.

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
        (tag::ALWAYS_SENSITIVE, false),
        (tag::NEVER_EXTRACTABLE, false),
    ] {
        if r.attribute(t).is_none() {
            v.push(boolean(t, default));
        }
    }
    if let (None, Some(initial)) = (
        r.attribute(tag::ORIGINAL_CREATION_DATE),
        r.attribute(tag::INITIAL_DATE),
    ) {
        v.push(Ttlv::new(
            tag::ORIGINAL_CREATION_DATE,
            initial.value.clone(),
        ));
    }
    if r.generated && r.attribute(tag::RANDOM_NUMBER_GENERATOR).is_none() {
        v.push(our_rng());
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
        Value::ByteString(crate::core::sha256(r.id.as_bytes()).to_vec()),
    ));
    v
}

/// The generator of every key this server makes: OpenSSL 3's default, a CTR-DRBG over
/// AES-256 (NIST SP 800-90A).
fn our_rng() -> Ttlv {
    use kmip_codec::vocab::enums::{cryptographic_algorithm, drbg_algorithm, rng_algorithm};
    Ttlv::structure(
        tag::RANDOM_NUMBER_GENERATOR,
        vec![
            Ttlv::new(tag::RNG_ALGORITHM, Value::Enumeration(rng_algorithm::DRBG)),
            Ttlv::new(
                tag::CRYPTOGRAPHIC_ALGORITHM,
                Value::Enumeration(cryptographic_algorithm::AES),
            ),
            Ttlv::new(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(256)),
            Ttlv::new(tag::DRBG_ALGORITHM, Value::Enumeration(drbg_algorithm::CTR)),
        ],
    )
}

/// Always Sensitive and Never Extractable hold only while Sensitive stays true and
/// Extractable false: called after a client changes either.
pub(super) fn follow_flags(attrs: &mut Vec<Ttlv>) {
    let flag = |attrs: &[Ttlv], t| attrs.iter().find(|a| a.tag == t).and_then(Ttlv::as_bool);
    if flag(attrs, tag::SENSITIVE) != Some(true) {
        attrs.retain(|a| a.tag != tag::ALWAYS_SENSITIVE);
    }
    if flag(attrs, tag::EXTRACTABLE) != Some(false) {
        attrs.retain(|a| a.tag != tag::NEVER_EXTRACTABLE);
    }
}

/// Whether the object has `criterion` among its attributes, stored or implicit.
pub(super) fn has_attribute(r: &Record, criterion: &Ttlv) -> bool {
    if criterion.tag == tag::OPERATION_POLICY_NAME && r.attribute(criterion.tag).is_none() {
        return criterion.as_text() == Some(DEFAULT_POLICY);
    }
    r.attributes.iter().any(|a| a == criterion)
        || implicit_attributes(r).iter().any(|a| a == criterion)
}

impl Txn {
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
            generated: false,
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
    fn always_sensitive_and_never_extractable_hold_only_while_true() {
        let m = Manager::new(
            Arc::new(crate::store::MemoryStore::new()),
            Core::new(crate::core::MasterKey::generate().unwrap()),
        )
        .autocommit(None);
        let mut attrs = vec![
            Ttlv::new(tag::CRYPTOGRAPHIC_ALGORITHM, Value::Enumeration(3)),
            Ttlv::new(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(128)),
            boolean(tag::SENSITIVE, true),
        ];
        let r = m.create(ot::SYMMETRIC_KEY, attrs.clone(), 10).unwrap();
        let all = |r: &Record| [r.attributes.clone(), implicit_attributes(r)].concat();
        assert!(all(&r).contains(&boolean(tag::ALWAYS_SENSITIVE, true)));
        assert!(all(&r).contains(&boolean(tag::NEVER_EXTRACTABLE, false)));
        assert!(all(&r)
            .iter()
            .any(|a| a.tag == tag::RANDOM_NUMBER_GENERATOR));
        assert!(all(&r).contains(&date(tag::ORIGINAL_CREATION_DATE, 10)));
        // Sensitive never goes back (protection.rs), so Always Sensitive stays true
        assert!(m
            .modify_attribute(&r.id, None, boolean(tag::SENSITIVE, false), 0, 11)
            .is_err());
        assert!(all(&m.get(&r.id, 11).unwrap()).contains(&boolean(tag::ALWAYS_SENSITIVE, true)));
        // a key made Sensitive later was not always so
        let mut later = attrs.clone();
        later.retain(|a| a.tag != tag::SENSITIVE);
        later.push(boolean(tag::SENSITIVE, false));
        let r = m.create(ot::SYMMETRIC_KEY, later, 11).unwrap();
        let r = m
            .modify_attribute(&r.id, None, boolean(tag::SENSITIVE, true), 0, 12)
            .unwrap();
        assert!(
            all(&r).contains(&boolean(tag::ALWAYS_SENSITIVE, false)),
            "not always"
        );
        // registered material is not ours: no generator is claimed for it
        attrs.push(boolean(tag::EXTRACTABLE, false));
        let key = Ttlv::structure(
            tag::SYMMETRIC_KEY,
            vec![Ttlv::structure(
                tag::KEY_BLOCK,
                vec![
                    Ttlv::new(tag::KEY_FORMAT_TYPE, Value::Enumeration(1)),
                    Ttlv::structure(
                        tag::KEY_VALUE,
                        vec![Ttlv::new(tag::KEY_MATERIAL, Value::ByteString(vec![7; 16]))],
                    ),
                ],
            )],
        );
        let r = m.register(ot::SYMMETRIC_KEY, &key, attrs, 13).unwrap();
        assert!(!all(&r)
            .iter()
            .any(|a| a.tag == tag::RANDOM_NUMBER_GENERATOR));
        assert!(all(&r).contains(&boolean(tag::NEVER_EXTRACTABLE, true)));
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
