//! Rotation: Re-key and Re-key Key Pair (KMIP 2.1 sections 6.1.46-47).

use super::*;

/// Attributes a replacement does not inherit (Table 304): the server sets them anew.
const NOT_COPIED: &[Tag] = &[
    tag::INITIAL_DATE,
    tag::LAST_CHANGE_DATE,
    tag::ORIGINAL_CREATION_DATE,
    tag::DESTROY_DATE,
    tag::COMPROMISE_OCCURRENCE_DATE,
    tag::COMPROMISE_DATE,
    tag::REVOCATION_REASON,
    tag::DIGEST,
    tag::LINK,
    tag::RANDOM_NUMBER_GENERATOR,
    tag::ALWAYS_SENSITIVE,
    tag::NEVER_EXTRACTABLE,
    tag::FRESH,
    tag::ACTIVATION_DATE,
    tag::PROCESS_START_DATE,
    tag::PROTECT_STOP_DATE,
    tag::DEACTIVATION_DATE,
];
const DATES: &[Tag] = &[
    tag::ACTIVATION_DATE,
    tag::PROCESS_START_DATE,
    tag::PROTECT_STOP_DATE,
    tag::DEACTIVATION_DATE,
];

/// The replacement's attributes: the existing key's, less those in [`NOT_COPIED`], with
/// dates copied or moved by `offset` (Table 303), then the client's own on top.
fn inherited(old: &Record, offset: Option<u32>, client: Vec<Ttlv>, now: i64) -> Vec<Ttlv> {
    let mut attrs: Vec<Ttlv> = old
        .attributes
        .iter()
        .filter(|a| !NOT_COPIED.contains(&a.tag))
        .cloned()
        .collect();
    let old_activation = get_date(&old.attributes, tag::ACTIVATION_DATE);
    let new_activation = offset.map(|o| now + o as i64);
    for t in DATES {
        let Some(v) = get_date(&old.attributes, *t) else {
            if *t == tag::ACTIVATION_DATE {
                if let Some(a) = new_activation {
                    attrs.push(date(*t, a));
                }
            }
            continue;
        };
        let moved = match (new_activation, old_activation) {
            (Some(a2), _) if *t == tag::ACTIVATION_DATE => a2,
            (Some(a2), Some(a1)) => v + (a2 - a1),
            _ => v,
        };
        attrs.push(date(*t, moved));
    }
    for c in client {
        let single = attributes::rule_for(&c)
            .map(|r| !r.multiple)
            .unwrap_or(false);
        if single {
            attrs.retain(|a| !same_attribute(a, &c));
        }
        attrs.push(c);
    }
    attrs
}

impl Txn {
    /// A replacement for the symmetric key `id`: same algorithm and length, new material;
    /// it takes over the names; the two are linked (Replacement / Replaced Object).
    pub fn rekey(
        &self,
        id: &str,
        offset: Option<u32>,
        client: Vec<Ttlv>,
        now: i64,
    ) -> Result<Record, LifecycleError> {
        attributes::check_client_attributes(&client)?;
        let mut old = self.get(id, now)?;
        if old.object_type != ot::SYMMETRIC_KEY {
            return Err(LifecycleError::InvalidField(
                "Re-key applies to symmetric keys".into(),
            ));
        }
        if old.state.is_destroyed() {
            return Err(LifecycleError::Destroyed);
        }
        for c in &client {
            self.may_change_access(&old, c.tag)?;
        }
        let attrs = inherited(&old, offset, client, now);
        protection::inherit_protection(&old.attributes, &attrs)?;
        let alg = get_enum(&attrs, tag::CRYPTOGRAPHIC_ALGORITHM).ok_or_else(|| {
            LifecycleError::InvalidField("the key has no Cryptographic Algorithm".into())
        })?;
        let len = get_int(&attrs, tag::CRYPTOGRAPHIC_LENGTH).ok_or_else(|| {
            LifecycleError::InvalidField("the key has no Cryptographic Length".into())
        })?;
        let generated = self.core.generate(KeySpec::symmetric(alg, len)?)?;
        let new_id = self.new_ids(1)?.remove(0);
        let mut new = self.new_record(&new_id, ot::SYMMETRIC_KEY, attrs, &generated.object, now)?;
        new.generated = true;
        new.state = state::apply_dates(
            new.state,
            get_date(&new.attributes, tag::ACTIVATION_DATE),
            get_date(&new.attributes, tag::DEACTIVATION_DATE),
            now,
        );
        new.attributes
            .push(link(link_type::REPLACED_OBJECT_LINK, &old.id));
        // the replacement belongs to whoever owned the key it replaces
        new.owner = old.owner.clone();
        old.attributes.retain(|a| a.tag != tag::NAME);
        old.attributes
            .push(link(link_type::REPLACEMENT_OBJECT_LINK, &new_id));
        set_single(&mut old.attributes, date(tag::LAST_CHANGE_DATE, now));
        self.store
            .commit(vec![Change::Put(old), Change::Put(new.clone())])?;
        Ok(new)
    }

    /// A replacement key pair for the private key `private_id` and its linked public key.
    pub fn rekey_key_pair(
        &self,
        private_id: &str,
        offset: Option<u32>,
        common: Vec<Ttlv>,
        private: Vec<Ttlv>,
        public: Vec<Ttlv>,
        now: i64,
    ) -> Result<(Record, Record), LifecycleError> {
        let mut old_priv = self.get(private_id, now)?;
        if old_priv.object_type != ot::PRIVATE_KEY {
            return Err(LifecycleError::InvalidField(
                "Re-key Key Pair names a private key".into(),
            ));
        }
        let public_id = linked(&old_priv, link_type::PUBLIC_KEY_LINK).ok_or_else(|| {
            LifecycleError::InvalidField("the private key has no Public Key Link".into())
        })?;
        let mut old_pub = self.get(&public_id, now)?;
        let with_common = |c: Vec<Ttlv>| {
            let mut all = common.clone();
            all.extend(c);
            all
        };
        let (private, public) = (with_common(private), with_common(public));
        for c in private.iter().chain(public.iter()) {
            self.may_change_access(&old_priv, c.tag)?;
        }
        attributes::check_client_attributes(&private)?;
        attributes::check_client_attributes(&public)?;
        let priv_attrs = inherited(&old_priv, offset, private, now);
        let pub_attrs = inherited(&old_pub, offset, public, now);
        protection::inherit_protection(&old_priv.attributes, &priv_attrs)?;
        protection::inherit_protection(&old_pub.attributes, &pub_attrs)?;
        let (generated, public_material) = self.generate_pair(&priv_attrs)?;
        let ids = self.new_ids(2)?;
        let mut np =
            self.new_record(&ids[0], ot::PRIVATE_KEY, priv_attrs, &generated.object, now)?;
        let mut nq = self.new_record(&ids[1], ot::PUBLIC_KEY, pub_attrs, &public_material, now)?;
        np.generated = true;
        nq.generated = true;
        np.owner = old_priv.owner.clone();
        nq.owner = old_pub.owner.clone();
        np.attributes
            .push(link(link_type::PUBLIC_KEY_LINK, &ids[1]));
        np.attributes
            .push(link(link_type::REPLACED_OBJECT_LINK, &old_priv.id));
        nq.attributes
            .push(link(link_type::PRIVATE_KEY_LINK, &ids[0]));
        nq.attributes
            .push(link(link_type::REPLACED_OBJECT_LINK, &old_pub.id));
        for (old, new_id) in [(&mut old_priv, &ids[0]), (&mut old_pub, &ids[1])] {
            old.attributes.retain(|a| a.tag != tag::NAME);
            old.attributes
                .push(link(link_type::REPLACEMENT_OBJECT_LINK, new_id));
            set_single(&mut old.attributes, date(tag::LAST_CHANGE_DATE, now));
        }
        self.store.commit(vec![
            Change::Put(old_priv),
            Change::Put(old_pub),
            Change::Put(np.clone()),
            Change::Put(nq.clone()),
        ])?;
        Ok((np, nq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::MasterKey;
    use crate::store::MemoryStore;
    use kmip_codec::vocab::enums::cryptographic_algorithm as alg;

    #[test]
    fn rekey_moves_names_links_and_dates() {
        let m = Manager::new(
            Arc::new(MemoryStore::new()),
            Core::new(MasterKey::generate().unwrap()),
        )
        .autocommit(None);
        let name = Ttlv::structure(tag::NAME, vec![text(tag::NAME_VALUE, "db-key")]);
        let attrs = vec![
            Ttlv::new(tag::CRYPTOGRAPHIC_ALGORITHM, Value::Enumeration(alg::AES)),
            Ttlv::new(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(256)),
            Ttlv::new(tag::CRYPTOGRAPHIC_USAGE_MASK, Value::Integer(12)),
            name.clone(),
            date(tag::ACTIVATION_DATE, 100),
            date(tag::DEACTIVATION_DATE, 1_100),
        ];
        let old = m.create(ot::SYMMETRIC_KEY, attrs, 50).unwrap();
        let new = m.rekey(&old.id, Some(10), vec![], 500).unwrap();
        let old = m.get(&old.id, 500).unwrap();
        assert_eq!(
            linked(&old, link_type::REPLACEMENT_OBJECT_LINK).as_deref(),
            Some(new.id.as_str())
        );
        assert_eq!(
            linked(&new, link_type::REPLACED_OBJECT_LINK).as_deref(),
            Some(old.id.as_str())
        );
        assert!(
            new.attributes.contains(&name) && !old.attributes.contains(&name),
            "names move"
        );
        assert_eq!(
            get_date(&new.attributes, tag::ACTIVATION_DATE),
            Some(510),
            "IT2 + Offset"
        );
        assert_eq!(
            get_date(&new.attributes, tag::DEACTIVATION_DATE),
            Some(1_510),
            "DT1 + (AT2 - AT1)"
        );
        assert_eq!(
            get_int(&new.attributes, tag::CRYPTOGRAPHIC_USAGE_MASK),
            Some(12),
            "copied"
        );
        assert_eq!(new.state, State::PreActive);
        assert_eq!(m.get(&new.id, 520).unwrap().state, State::Active);
        let (_, a) = m.export(&old.id, 500).unwrap();
        let (_, b) = m.export(&new.id, 500).unwrap();
        assert_ne!(a, b, "new material");
        // without an offset the dates are copied
        let third = m.rekey(&new.id, None, vec![], 600).unwrap();
        assert_eq!(get_date(&third.attributes, tag::ACTIVATION_DATE), Some(510));
    }

    #[test]
    fn rekey_key_pair_links_both_halves() {
        let m = Manager::new(
            Arc::new(MemoryStore::new()),
            Core::new(MasterKey::generate().unwrap()),
        )
        .autocommit(None);
        let common = vec![
            Ttlv::new(tag::CRYPTOGRAPHIC_ALGORITHM, Value::Enumeration(alg::ECDSA)),
            Ttlv::new(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(256)),
        ];
        let (p, q) = m.create_key_pair(common, vec![], vec![], 1).unwrap();
        let (np, nq) = m
            .rekey_key_pair(&p.id, None, vec![], vec![], vec![], 2)
            .unwrap();
        assert_eq!(
            linked(&np, link_type::PUBLIC_KEY_LINK).as_deref(),
            Some(nq.id.as_str())
        );
        assert_eq!(
            linked(&nq, link_type::REPLACED_OBJECT_LINK).as_deref(),
            Some(q.id.as_str())
        );
        let p = m.get(&p.id, 3).unwrap();
        assert_eq!(
            linked(&p, link_type::REPLACEMENT_OBJECT_LINK).as_deref(),
            Some(np.id.as_str())
        );
        assert!(
            m.rekey_key_pair(&q.id, None, vec![], vec![], vec![], 3)
                .is_err(),
            "names a private key"
        );
    }
}
