//! Making objects and reading them: Create, Create Key Pair, Register, Get and export, the
//! server-set attributes of a new object, the name rule, and the dates that move a state.

use super::*;

impl Txn {
    /// The Names in `new`, given to object `id` whose other attributes are `own`, may not
    /// repeat one of its names nor each other. Under `--unique-names` (KMIP 2.1 §4.32, within
    /// one owner's objects) nor may another object of the same owner that is not destroyed
    /// hold one (a destroyed object's name may be taken again); by default objects may share
    /// names, as deployed clients expect.
    pub(super) fn check_names(
        &self,
        id: &str,
        own: &[Ttlv],
        new: &[Ttlv],
    ) -> Result<(), LifecycleError> {
        if !new.iter().any(|a| a.tag == tag::NAME) {
            return Ok(());
        }
        // the owner of `id`, or, for an object not yet stored, the caller who makes it
        let owner = match self.store.names_unique() {
            true => match self.store.peek(id)? {
                Some(r) => r.owner,
                None => self.caller.as_ref().map(|c| c.identity.clone()),
            },
            false => None,
        };
        let value = |n: &Ttlv| {
            n.child(tag::NAME_VALUE)
                .and_then(Ttlv::as_text)
                .map(str::to_owned)
        };
        let names = |items: &[Ttlv]| -> Vec<String> {
            items
                .iter()
                .filter(|a| a.tag == tag::NAME)
                .filter_map(value)
                .collect()
        };
        let mut seen = names(own);
        for n in new.iter().filter(|a| a.tag == tag::NAME) {
            let Some(v) = value(n) else { continue };
            if seen.contains(&v) {
                return Err(LifecycleError::NonUniqueName(v));
            }
            seen.push(v.clone());
            // checked here for a clear answer per batch item; the store checks again inside its
            // write transaction, for requests that raced past this check
            let Some(key) = item_index_key(n).filter(|_| self.store.names_unique()) else {
                continue;
            };
            for other in self.store.lookup(&key)? {
                if other == id {
                    continue;
                }
                let taken = self.store.peek(&other)?.is_some_and(|r| {
                    !r.state.is_destroyed() && r.owner == owner && names(&r.attributes).contains(&v)
                });
                if taken {
                    return Err(LifecycleError::NonUniqueName(v));
                }
            }
        }
        Ok(())
    }

    /// The server-set attributes of a new object, then the client's.
    pub(super) fn new_record(
        &self,
        id: &str,
        object_type: u32,
        mut client: Vec<Ttlv>,
        material: &Material,
        now: i64,
    ) -> Result<Record, LifecycleError> {
        let state = state::initial_state(get_date(&client, tag::ACTIVATION_DATE), now);
        if state == State::Active && get_date(&client, tag::ACTIVATION_DATE).is_none() {
            set_single(&mut client, date(tag::ACTIVATION_DATE, now));
        }
        let sensitive = client
            .iter()
            .find(|a| a.tag == tag::SENSITIVE)
            .and_then(Ttlv::as_bool)
            .unwrap_or(false);
        let extractable = client
            .iter()
            .find(|a| a.tag == tag::EXTRACTABLE)
            .and_then(Ttlv::as_bool)
            .unwrap_or(true);
        // Original Creation Date is the Initial Date unless a client says otherwise, and
        // Always Sensitive and Never Extractable are false unless stored (implicit.rs)
        let mut attrs = vec![
            date(tag::INITIAL_DATE, now),
            date(tag::LAST_CHANGE_DATE, now),
        ];
        if sensitive {
            attrs.push(boolean(tag::ALWAYS_SENSITIVE, true));
        }
        if !extractable {
            attrs.push(boolean(tag::NEVER_EXTRACTABLE, true));
        }
        attrs.extend(client);
        // what the object says of itself, read by the core as it seals it
        let (sealed, facts) = self.core.seal_new(id, material)?;
        // 2.x clients may name the Certificate Type among the attributes (OASIS BL-M-10)
        if let Some(t) = facts.certificate_type {
            if !attrs.iter().any(|a| a.tag == tag::CERTIFICATE_TYPE) {
                attrs.push(t);
            }
        }
        if let Some(v) = &facts.certificate {
            attrs.push(Ttlv::new(
                tag::CERTIFICATE_LENGTH,
                Value::Integer(v.len() as i32),
            ));
            attrs.extend(certify::name_attributes(v));
        }
        // the Digest of a key: SHA-256 of its key material as stored (never for Secret Data,
        // where a digest of a password would invite a dictionary attack)
        if matches!(
            object_type,
            ot::SYMMETRIC_KEY | ot::PRIVATE_KEY | ot::PUBLIC_KEY
        ) {
            attrs.extend(facts.digest);
        }
        // algorithm and length from the key block when the client did not say
        for v in [facts.algorithm, facts.length].into_iter().flatten() {
            if !attrs.iter().any(|a| a.tag == v.tag) {
                attrs.push(v);
            }
        }
        Ok(Record {
            id: id.to_owned(),
            object_type,
            state,
            attributes: attrs,
            sealed: Some(sealed),
            owner: self.caller.as_ref().map(|c| c.identity.clone()),
            grants: Vec::new(),
            generated: false,
        })
    }

    /// Create a symmetric key from its attributes (Cryptographic Algorithm and Length).
    pub fn create(
        &self,
        object_type: u32,
        attrs: Vec<Ttlv>,
        now: i64,
    ) -> Result<Record, LifecycleError> {
        attributes::check_client_attributes(&attrs)?;
        if object_type != ot::SYMMETRIC_KEY {
            return Err(LifecycleError::NotSupported(format!(
                "Create of object type 0x{object_type:X}"
            )));
        }
        let alg = get_enum(&attrs, tag::CRYPTOGRAPHIC_ALGORITHM).ok_or_else(|| {
            LifecycleError::InvalidField("Cryptographic Algorithm is required".into())
        })?;
        let len = get_int(&attrs, tag::CRYPTOGRAPHIC_LENGTH).ok_or_else(|| {
            LifecycleError::InvalidField("Cryptographic Length is required".into())
        })?;
        // Quantum Safe asks for a key that resists a quantum computer: of symmetric keys, AES
        // of 256 bits (Grover's search halves the strength of 128)
        let quantum_safe = attrs
            .iter()
            .any(|a| a.tag == tag::QUANTUM_SAFE && a.as_bool() == Some(true));
        if quantum_safe
            && !(alg == kmip_codec::vocab::enums::cryptographic_algorithm::AES && len >= 256)
        {
            return Err(LifecycleError::NotQuantumSafe);
        }
        self.check_names("", &[], &attrs)?;
        let generated = self.core.generate(KeySpec::symmetric(alg, len)?)?;
        let id = self.new_ids(1)?.remove(0);
        let mut record = self.new_record(&id, object_type, attrs, &generated.object, now)?;
        record.generated = true;
        self.store.commit(vec![Change::Put(record.clone())])?;
        Ok(record)
    }

    /// Create a key pair; the private key's attributes are `common` then `private`, the
    /// public key's `common` then `public`. Each links to the other.
    pub fn create_key_pair(
        &self,
        common: Vec<Ttlv>,
        private: Vec<Ttlv>,
        public: Vec<Ttlv>,
        now: i64,
    ) -> Result<(Record, Record), LifecycleError> {
        // no key pair this server makes (RSA, EC) resists a quantum computer
        if common
            .iter()
            .chain(private.iter())
            .chain(public.iter())
            .any(|a| a.tag == tag::QUANTUM_SAFE && a.as_bool() == Some(true))
        {
            return Err(LifecycleError::NotQuantumSafe);
        }
        let merge = |specific: Vec<Ttlv>| {
            let mut all: Vec<Ttlv> = common
                .iter()
                .filter(|c| {
                    let multi = attributes::rule_for(c).map(|r| r.multiple).unwrap_or(true);
                    multi || !specific.iter().any(|s| same_attribute(s, c))
                })
                .cloned()
                .collect();
            all.extend(specific);
            all
        };
        let (private, public) = (merge(private), merge(public));
        attributes::check_client_attributes(&private)?;
        attributes::check_client_attributes(&public)?;
        // each half on its own: one Name in the common attributes names both (a Go client
        // does so); under --unique-names the store refuses the pair
        self.check_names("", &[], &private)?;
        self.check_names("", &[], &public)?;
        let (generated, public_material) = self.generate_pair(&private)?;
        let ids = self.new_ids(2)?;
        let mut priv_rec =
            self.new_record(&ids[0], ot::PRIVATE_KEY, private, &generated.object, now)?;
        let mut pub_rec =
            self.new_record(&ids[1], ot::PUBLIC_KEY, public, &public_material, now)?;
        priv_rec.generated = true;
        pub_rec.generated = true;
        priv_rec
            .attributes
            .push(link(link_type::PUBLIC_KEY_LINK, &ids[1]));
        pub_rec
            .attributes
            .push(link(link_type::PRIVATE_KEY_LINK, &ids[0]));
        self.store.commit(vec![
            Change::Put(priv_rec.clone()),
            Change::Put(pub_rec.clone()),
        ])?;
        Ok((priv_rec, pub_rec))
    }

    /// A new key pair as the private key's attributes describe it (algorithm, and length or
    /// curve): the private key object and the public one.
    pub(super) fn generate_pair(
        &self,
        private: &[Ttlv],
    ) -> Result<(crate::core::Generated, Material), LifecycleError> {
        let alg = get_enum(private, tag::CRYPTOGRAPHIC_ALGORITHM).ok_or_else(|| {
            LifecycleError::InvalidField("Cryptographic Algorithm is required".into())
        })?;
        let len = get_int(private, tag::CRYPTOGRAPHIC_LENGTH);
        let curve = private
            .iter()
            .find(|a| a.tag == tag::CRYPTOGRAPHIC_DOMAIN_PARAMETERS)
            .and_then(|d| d.child(tag::RECOMMENDED_CURVE))
            .and_then(Ttlv::as_enum);
        let mut generated = self.core.generate(KeySpec::key_pair(alg, len, curve)?)?;
        let public = generated
            .public
            .take()
            .ok_or_else(|| LifecycleError::NotSupported("key pair without a public key".into()))?;
        Ok((generated, public))
    }

    /// Register an object the client supplies (`object` is its structure, e.g. Symmetric Key).
    pub fn register(
        &self,
        object_type: u32,
        object: &Ttlv,
        attrs: Vec<Ttlv>,
        now: i64,
    ) -> Result<Record, LifecycleError> {
        attributes::check_client_attributes(&attrs)?;
        let expected = object_tag(object_type).ok_or_else(|| {
            LifecycleError::InvalidField(format!("object type 0x{object_type:X}"))
        })?;
        if object.tag != expected {
            return Err(LifecycleError::InvalidField(
                "the object does not match the Object Type".into(),
            ));
        }
        self.check_names("", &[], &attrs)?;
        let material = Material::of_object(object);
        let id = self.new_ids(1)?.remove(0);
        let record = self.new_record(&id, object_type, attrs, &material, now)?;
        self.store.commit(vec![Change::Put(record.clone())])?;
        Ok(record)
    }

    /// The record, with the date-driven transitions that are due applied (and stored).
    pub fn get(&self, id: &str, now: i64) -> Result<Record, LifecycleError> {
        let mut r = self
            .store
            .get(id)?
            .filter(|r| self.visible(r))
            .ok_or(LifecycleError::NotFound)?;
        // a grantee may only perform the operations it was granted (Locate lists what a
        // grant of Locate or Get Attributes makes findable: `findable`)
        if !self.permitted(&r) {
            return Err(LifecycleError::PermissionDenied(
                "the grant on this object does not include this operation".into(),
            ));
        }
        self.apply_due_dates(&mut r, now)?;
        Ok(r)
    }

    /// The state the record's Activation and Deactivation Dates call for at `now`.
    pub(super) fn due_state(r: &Record, now: i64) -> State {
        state::apply_dates(
            r.state,
            get_date(&r.attributes, tag::ACTIVATION_DATE),
            get_date(&r.attributes, tag::DEACTIVATION_DATE),
            now,
        )
    }

    pub(super) fn dates_due(&self, r: &Record, now: i64) -> bool {
        Self::due_state(r, now) != r.state
    }

    /// The date-driven transitions (Activation and Deactivation Date reached) that are due,
    /// applied and stored.
    pub(super) fn apply_due_dates(&self, r: &mut Record, now: i64) -> Result<(), LifecycleError> {
        let due = Self::due_state(r, now);
        if due != r.state {
            if let Ok(mut v) = self.automatic.lock() {
                v.push(AutomaticChange {
                    id: r.id.clone(),
                    from: r.state,
                    to: due,
                });
            }
            r.state = due;
            set_single(&mut r.attributes, date(tag::LAST_CHANGE_DATE, now));
            self.store.commit(vec![Change::Put(r.clone())])?;
        }
        Ok(())
    }

    /// The object's structure, for Get. Export policy: a key with Extractable false never
    /// leaves; a Sensitive one leaves only wrapped (wrapping is not offered yet, so never).
    pub fn export(&self, id: &str, now: i64) -> Result<(Record, Ttlv), LifecycleError> {
        self.export_as(id, None, now)
    }

    /// [`Txn::export`] with the key converted to `format` (a Key Format Type).
    pub fn export_as(
        &self,
        id: &str,
        format: Option<u32>,
        now: i64,
    ) -> Result<(Record, Ttlv), LifecycleError> {
        let r = self.get(id, now)?;
        if r.state.is_destroyed() {
            return Err(LifecycleError::Destroyed);
        }
        if is_archived(&r) {
            return Err(LifecycleError::Archived);
        }
        let rule = ExportRule::of(&r.attributes);
        rule.permits(false)?;
        let sealed = r
            .sealed
            .as_ref()
            .ok_or(LifecycleError::NotUsable(r.state))?;
        let obj = self
            .core
            .export(&Sealed::new(&r.id, sealed.clone()), rule, format)?;
        Ok((r, obj))
    }
}
