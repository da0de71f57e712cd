//! Managed objects: creating, registering, reading, changing state and attributes, finding.
//!
//! [`Manager`] is the lifecycle's front door. Each method is one store transaction. Time is
//! passed in (`now`, seconds since the epoch) so that the date-driven transitions can be
//! tested; material goes through the core and nowhere else.

use crate::attributes::{self, same_attribute};
use crate::core::{Core, KeySpec, Secret};
use crate::state::{self, Event, State};
use crate::store::{item_index_key, Change, Record, Store};
use crate::LifecycleError;
use kmip_codec::vocab::enums::{link_type, object_type as ot, revocation_reason_code as rrc};
use kmip_codec::vocab::tag;
use kmip_codec::{Limits, Tag, Ttlv, Value};
use std::sync::Arc;

pub struct Manager {
    store: Arc<dyn Store>,
    core: Arc<Core>,
    caller: Option<Caller>,
    /// State changes the server made on its own (dates reached) while serving this caller.
    automatic: Arc<std::sync::Mutex<Vec<AutomaticChange>>>,
    /// Server policy: Derive Key may start from a Pre-Active object.
    derive_from_pre_active: bool,
}

/// A transition no request asked for: an Activation or Deactivation Date was reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutomaticChange {
    pub id: String,
    pub from: State,
    pub to: State,
}

/// Who is asking. An object belongs to the identity that made it; another identity neither
/// finds it nor uses it (it is Not Found, so its existence does not leak) unless that identity
/// is an administrator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub identity: String,
    pub admin: bool,
    /// The KMIP operation being performed, which a grant must name.
    pub operation: Option<u32>,
    /// Whole object groups this caller was given: (Object Group, operations).
    pub groups: Vec<(String, Vec<u32>)>,
}

impl Caller {
    /// The operations a group grant gives this caller on `r`, if any.
    fn group_ops<'a>(&'a self, r: &'a Record) -> impl Iterator<Item = &'a Vec<u32>> + 'a {
        let groups: Vec<&str> = r
            .attributes
            .iter()
            .filter(|a| a.tag == tag::OBJECT_GROUP)
            .filter_map(Ttlv::as_text)
            .collect();
        self.groups
            .iter()
            .filter(move |(g, _)| groups.contains(&g.as_str()))
            .map(|(_, ops)| ops)
    }
}

fn text(t: Tag, s: &str) -> Ttlv {
    Ttlv::new(t, Value::TextString(s.into()))
}

fn date(t: Tag, v: i64) -> Ttlv {
    Ttlv::new(t, Value::DateTime(v))
}

fn boolean(t: Tag, v: bool) -> Ttlv {
    Ttlv::new(t, Value::Boolean(v))
}

fn link(kind: u32, id: &str) -> Ttlv {
    Ttlv::structure(
        tag::LINK,
        vec![
            Ttlv::new(tag::LINK_TYPE, Value::Enumeration(kind)),
            text(tag::LINKED_OBJECT_IDENTIFIER, id),
        ],
    )
}

/// The object structure tag of an Object Type.
pub fn object_tag(object_type: u32) -> Option<Tag> {
    Some(match object_type {
        ot::CERTIFICATE => tag::CERTIFICATE,
        ot::SYMMETRIC_KEY => tag::SYMMETRIC_KEY,
        ot::PUBLIC_KEY => tag::PUBLIC_KEY,
        ot::PRIVATE_KEY => tag::PRIVATE_KEY,
        ot::SPLIT_KEY => tag::SPLIT_KEY,
        ot::TEMPLATE => tag::TEMPLATE,
        ot::SECRET_DATA => tag::SECRET_DATA,
        ot::OPAQUE_OBJECT => tag::OPAQUE_OBJECT,
        ot::PGP_KEY => tag::PGP_KEY,
        ot::CERTIFICATE_REQUEST => tag::CERTIFICATE_REQUEST,
        _ => return None,
    })
}

fn get_enum(items: &[Ttlv], t: Tag) -> Option<u32> {
    items.iter().find(|a| a.tag == t).and_then(Ttlv::as_enum)
}

fn get_int(items: &[Ttlv], t: Tag) -> Option<i32> {
    items.iter().find(|a| a.tag == t).and_then(Ttlv::as_i32)
}

fn get_date(items: &[Ttlv], t: Tag) -> Option<i64> {
    items
        .iter()
        .find(|a| a.tag == t)
        .and_then(Ttlv::as_datetime)
}

fn set_single(items: &mut Vec<Ttlv>, item: Ttlv) {
    items.retain(|a| a.tag != item.tag);
    items.push(item);
}

/// The Random Number Generator attribute of keys the server generates: OpenSSL 3's default,
/// a CTR-DRBG over AES-256 (NIST SP 800-90A).
fn rng_attribute() -> Ttlv {
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

/// What Locate matches on, besides attribute equality.
#[derive(Clone, Debug, Default)]
pub struct LocateQuery {
    /// 2.x attribute items. Two instances of a date attribute give a range.
    pub attributes: Vec<Ttlv>,
    pub maximum_items: Option<usize>,
    pub offset_items: usize,
    /// Include destroyed objects (the 2.x Storage Status Mask bit "Destroyed storage"); by
    /// default Locate finds only objects that still exist.
    pub include_destroyed: bool,
    /// Include archived objects (Storage Status Mask "Archival storage").
    pub include_archived: bool,
    /// Leave out objects in on-line storage (a Storage Status Mask without "On-line storage").
    pub exclude_online: bool,
}

/// Whether an object is in archival storage: Archive sets its Archive Date, Recover removes it.
pub fn is_archived(r: &Record) -> bool {
    r.attribute(tag::ARCHIVE_DATE).is_some()
}

impl Manager {
    pub fn new(store: Arc<dyn Store>, core: Core) -> Manager {
        Manager {
            store,
            core: Arc::new(core),
            caller: None,
            automatic: Arc::default(),
            derive_from_pre_active: false,
        }
    }

    /// Let Derive Key start from a Pre-Active object (see [`state::Usage::DeriveFromPreActive`]).
    pub fn derive_from_pre_active(mut self, allow: bool) -> Manager {
        self.derive_from_pre_active = allow;
        self
    }

    /// The automatic state changes made so far through this manager (and those derived from
    /// it for the same caller), for the audit log.
    pub fn automatic_changes(&self) -> Vec<AutomaticChange> {
        self.automatic.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// The same objects, seen by `caller`: what it creates is its own, and it reaches only its
    /// own objects unless it is an administrator.
    pub fn for_caller(&self, caller: Caller) -> Manager {
        self.sibling(self.store.clone(), Some(caller), Arc::default())
    }

    /// This manager for one operation of the caller (grants name operations).
    pub fn with_operation(&self, operation: u32) -> Manager {
        let caller = self.caller.clone().map(|c| Caller {
            operation: Some(operation),
            ..c
        });
        self.sibling(self.store.clone(), caller, self.automatic.clone())
    }

    /// A manager over the same core and policy.
    fn sibling(
        &self,
        store: Arc<dyn Store>,
        caller: Option<Caller>,
        automatic: Arc<std::sync::Mutex<Vec<AutomaticChange>>>,
    ) -> Manager {
        Manager {
            store,
            core: self.core.clone(),
            caller,
            automatic,
            derive_from_pre_active: self.derive_from_pre_active,
        }
    }

    /// The grants on an object, for its owner or an administrator.
    pub fn grants(&self, id: &str, now: i64) -> Result<Vec<(String, Vec<u32>)>, LifecycleError> {
        let r = self.get(id, now)?;
        if let Some(c) = &self.caller {
            if !c.admin && r.owner.as_deref() != Some(c.identity.as_str()) {
                return Err(LifecycleError::PermissionDenied(
                    "only the owner or an administrator lists grants".into(),
                ));
            }
        }
        Ok(r.grants)
    }

    /// Whether the caller may know of `r`: its owner, an administrator, or an identity with a
    /// grant on it.
    fn visible(&self, r: &Record) -> bool {
        match &self.caller {
            None => true,
            Some(c) => {
                c.admin
                    || r.owner.as_deref() == Some(c.identity.as_str())
                    || r.grants.iter().any(|(who, _)| *who == c.identity)
                    || c.group_ops(r).next().is_some()
            }
        }
    }

    /// Whether the caller may perform its operation on a visible `r`.
    fn permitted(&self, r: &Record) -> bool {
        match &self.caller {
            None => true,
            Some(c) if c.admin || r.owner.as_deref() == Some(c.identity.as_str()) => true,
            Some(c) => {
                let op_in = |ops: &Vec<u32>| c.operation.is_some_and(|o| ops.contains(&o));
                r.grants
                    .iter()
                    .any(|(who, ops)| *who == c.identity && op_in(ops))
                    || c.group_ops(r).any(op_in)
            }
        }
    }

    /// The owner (or an administrator) lets `grantee` perform `operations` on the object;
    /// `operations` empty withdraws every right `grantee` had.
    pub fn grant(
        &self,
        id: &str,
        grantee: &str,
        operations: Vec<u32>,
        now: i64,
    ) -> Result<Record, LifecycleError> {
        let mut r = self.get(id, now)?;
        if let Some(c) = &self.caller {
            if !c.admin && r.owner.as_deref() != Some(c.identity.as_str()) {
                return Err(LifecycleError::PermissionDenied(
                    "only the owner or an administrator grants".into(),
                ));
            }
        }
        r.grants.retain(|(who, _)| who != grantee);
        if !operations.is_empty() {
            r.grants.push((grantee.to_owned(), operations));
        }
        self.put(&r)?;
        Ok(r)
    }

    /// Run `f` against a manager whose changes are held back and committed in one transaction
    /// when `f` succeeds, or dropped when it fails: an atomic batch. `f` sees its own changes.
    pub fn atomically<T, E>(&self, f: impl FnOnce(&Manager) -> Result<T, E>) -> Result<T, E>
    where
        E: From<LifecycleError>,
    {
        let overlay = Arc::new(crate::store::Overlay::new(self.store.clone()));
        let inner = self.sibling(overlay.clone(), self.caller.clone(), self.automatic.clone());
        let out = f(&inner)?;
        overlay.flush().map_err(LifecycleError::from)?;
        Ok(out)
    }

    pub fn core(&self) -> &Core {
        &self.core
    }

    fn new_ids(&self, n: u64) -> Result<Vec<String>, LifecycleError> {
        let first = self.store.allocate_ids(n)?;
        Ok((first..first + n).map(|i| i.to_string()).collect())
    }

    /// The server-set attributes of a new object, then the client's.
    fn new_record(
        &self,
        id: &str,
        object_type: u32,
        mut client: Vec<Ttlv>,
        material: &Secret,
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
        let mut attrs = vec![
            date(tag::INITIAL_DATE, now),
            date(tag::LAST_CHANGE_DATE, now),
            date(tag::ORIGINAL_CREATION_DATE, now),
            boolean(tag::ALWAYS_SENSITIVE, sensitive),
            boolean(tag::NEVER_EXTRACTABLE, !extractable),
        ];
        // 1.x clients expect every object to name the policy that governs it; ours is the
        // server's access policy, which 1.x calls "default" (2.x dropped the attribute)
        if !client.iter().any(|a| a.tag == tag::OPERATION_POLICY_NAME) {
            attrs.push(text(tag::OPERATION_POLICY_NAME, "default"));
        }
        attrs.extend(client);
        // algorithm and length from the key block when the client did not say
        let (obj, _) = kmip_codec::decode(material.expose(), &Limits::default())
            .map_err(|_| LifecycleError::InvalidField("object".into()))?;
        if obj.tag == tag::CERTIFICATE {
            // 2.x clients may name the Certificate Type among the attributes (OASIS BL-M-10)
            if let (Some(t), false) = (
                obj.child(tag::CERTIFICATE_TYPE),
                attrs.iter().any(|a| a.tag == tag::CERTIFICATE_TYPE),
            ) {
                attrs.push(t.clone());
            }
            if let Some(v) = obj.child(tag::CERTIFICATE_VALUE).and_then(Ttlv::as_bytes) {
                attrs.push(Ttlv::new(
                    tag::CERTIFICATE_LENGTH,
                    Value::Integer(v.len() as i32),
                ));
            }
        }
        // the Digest of a key: SHA-256 of its key material as stored (not for Secret Data,
        // where a digest of a password would invite a dictionary attack)
        if matches!(
            object_type,
            ot::SYMMETRIC_KEY | ot::PRIVATE_KEY | ot::PUBLIC_KEY
        ) {
            let kb = obj.child(tag::KEY_BLOCK);
            let km = kb
                .and_then(|k| k.child(tag::KEY_VALUE))
                .and_then(|v| v.child(tag::KEY_MATERIAL))
                .and_then(Ttlv::as_bytes);
            let format = kb.and_then(|k| k.child(tag::KEY_FORMAT_TYPE)).cloned();
            if let (Some(km), Some(format)) = (km, format) {
                attrs.push(Ttlv::structure(
                    tag::DIGEST,
                    vec![
                        Ttlv::new(
                            tag::HASHING_ALGORITHM,
                            Value::Enumeration(
                                kmip_codec::vocab::enums::hashing_algorithm::SHA_256,
                            ),
                        ),
                        Ttlv::new(
                            tag::DIGEST_VALUE,
                            Value::ByteString(openssl::sha::sha256(km).to_vec()),
                        ),
                        format,
                    ],
                ));
            }
        }
        if let Some(kb) = obj.child(tag::KEY_BLOCK) {
            for t in [tag::CRYPTOGRAPHIC_ALGORITHM, tag::CRYPTOGRAPHIC_LENGTH] {
                if let (Some(v), None) = (kb.child(t), attrs.iter().find(|a| a.tag == t)) {
                    attrs.push(v.clone());
                }
            }
        }
        let mut obj = obj;
        crate::core::zeroize_tree(&mut obj);
        Ok(Record {
            id: id.to_owned(),
            object_type,
            state,
            attributes: attrs,
            sealed: Some(self.core.seal(id, material)?),
            owner: self.caller.as_ref().map(|c| c.identity.clone()),
            grants: Vec::new(),
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
        let generated = self.core.generate(KeySpec::symmetric(alg, len)?)?;
        let id = self.new_ids(1)?.remove(0);
        let mut record = self.new_record(&id, object_type, attrs, &generated.object, now)?;
        record.attributes.push(rng_attribute());
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
        let (generated, public_material) = self.generate_pair(&private)?;
        let ids = self.new_ids(2)?;
        let mut priv_rec =
            self.new_record(&ids[0], ot::PRIVATE_KEY, private, &generated.object, now)?;
        let mut pub_rec =
            self.new_record(&ids[1], ot::PUBLIC_KEY, public, &public_material, now)?;
        priv_rec.attributes.push(rng_attribute());
        pub_rec.attributes.push(rng_attribute());
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
    fn generate_pair(
        &self,
        private: &[Ttlv],
    ) -> Result<(crate::core::Generated, Secret), LifecycleError> {
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
        let material = Secret::new(kmip_codec::encode(object));
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
        // a grantee may only perform the operations it was granted (Locate reads records
        // without this check: a grant of any operation makes an object findable)
        if !self.permitted(&r) {
            return Err(LifecycleError::PermissionDenied(
                "the grant on this object does not include this operation".into(),
            ));
        }
        self.apply_due_dates(&mut r, now)?;
        Ok(r)
    }

    /// The date-driven transitions (Activation and Deactivation Date reached) that are due,
    /// applied and stored.
    fn apply_due_dates(&self, r: &mut Record, now: i64) -> Result<(), LifecycleError> {
        let due = state::apply_dates(
            r.state,
            get_date(&r.attributes, tag::ACTIVATION_DATE),
            get_date(&r.attributes, tag::DEACTIVATION_DATE),
            now,
        );
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

    /// [`Manager::export`] with the key converted to `format` (a Key Format Type).
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
        let flag = |t: Tag| r.attribute(t).and_then(Ttlv::as_bool);
        if flag(tag::EXTRACTABLE) == Some(false) {
            return Err(LifecycleError::NotExtractable);
        }
        if flag(tag::SENSITIVE) == Some(true) {
            return Err(LifecycleError::Sensitive);
        }
        let sealed = r
            .sealed
            .as_ref()
            .ok_or(LifecycleError::NotUsable(r.state))?;
        let mut plain = self.core.unseal(&r.id, sealed)?;
        if let Some(f) = format {
            plain = crate::core::convert::convert(&plain, f)?;
        }
        let (obj, _) = kmip_codec::decode(plain.expose(), &Limits::default())
            .map_err(|_| LifecycleError::InvalidField("stored object".into()))?;
        Ok((r, obj))
    }

    fn put(&self, r: &Record) -> Result<(), LifecycleError> {
        self.store.commit(vec![Change::Put(r.clone())])?;
        Ok(())
    }

    fn change_state(&self, r: &mut Record, event: Event, now: i64) -> Result<(), LifecycleError> {
        r.state = state::transition(r.state, event)?;
        set_single(&mut r.attributes, date(tag::LAST_CHANGE_DATE, now));
        Ok(())
    }

    pub fn activate(&self, id: &str, now: i64) -> Result<Record, LifecycleError> {
        let mut r = self.get(id, now)?;
        self.change_state(&mut r, Event::Activate, now)?;
        set_single(&mut r.attributes, date(tag::ACTIVATION_DATE, now));
        self.put(&r)?;
        Ok(r)
    }

    /// Revoke with a Revocation Reason Code (and message); key and CA compromise compromise the
    /// object, any other reason deactivates it.
    pub fn revoke(
        &self,
        id: &str,
        reason: u32,
        message: Option<&str>,
        compromise_occurrence: Option<i64>,
        now: i64,
    ) -> Result<Record, LifecycleError> {
        let mut r = self.get(id, now)?;
        let compromised = matches!(reason, rrc::KEY_COMPROMISE | rrc::CA_COMPROMISE);
        let event = if compromised {
            Event::Compromise
        } else {
            Event::Deactivate
        };
        self.change_state(&mut r, event, now)?;
        let mut rr = vec![Ttlv::new(
            tag::REVOCATION_REASON_CODE,
            Value::Enumeration(reason),
        )];
        if let Some(m) = message {
            rr.push(text(tag::REVOCATION_MESSAGE, m));
        }
        set_single(
            &mut r.attributes,
            Ttlv::structure(tag::REVOCATION_REASON, rr),
        );
        if compromised {
            set_single(&mut r.attributes, date(tag::COMPROMISE_DATE, now));
            set_single(
                &mut r.attributes,
                date(
                    tag::COMPROMISE_OCCURRENCE_DATE,
                    compromise_occurrence.unwrap_or(now),
                ),
            );
        } else {
            set_single(&mut r.attributes, date(tag::DEACTIVATION_DATE, now));
        }
        self.put(&r)?;
        Ok(r)
    }

    /// Move the object to archival storage: it keeps its metadata and material but cannot be
    /// used or fetched until it is recovered.
    pub fn archive(&self, id: &str, now: i64) -> Result<Record, LifecycleError> {
        let mut r = self.get(id, now)?;
        if r.state.is_destroyed() {
            return Err(LifecycleError::Destroyed);
        }
        set_single(&mut r.attributes, date(tag::ARCHIVE_DATE, now));
        set_single(&mut r.attributes, date(tag::LAST_CHANGE_DATE, now));
        self.put(&r)?;
        Ok(r)
    }

    /// Bring an archived object back on-line.
    pub fn recover(&self, id: &str, now: i64) -> Result<Record, LifecycleError> {
        let mut r = self.get(id, now)?;
        r.attributes.retain(|a| a.tag != tag::ARCHIVE_DATE);
        set_single(&mut r.attributes, date(tag::LAST_CHANGE_DATE, now));
        self.put(&r)?;
        Ok(r)
    }

    /// Destroy: the state changes, the Destroy Date is set, the sealed material is dropped.
    pub fn destroy(&self, id: &str, now: i64) -> Result<Record, LifecycleError> {
        let mut r = self.get(id, now)?;
        self.change_state(&mut r, Event::Destroy, now)?;
        set_single(&mut r.attributes, date(tag::DESTROY_DATE, now));
        r.sealed = None;
        self.put(&r)?;
        Ok(r)
    }

    /// Add one instance of an attribute a client may set.
    pub fn add_attribute(&self, id: &str, item: Ttlv, now: i64) -> Result<Record, LifecycleError> {
        let mut r = self.get(id, now)?;
        let rule = attributes::rule_for(&item)?;
        if !rule.client_sets && !rule.client_modifies {
            return Err(LifecycleError::ReadOnlyAttribute(item.tag));
        }
        if !rule.multiple && r.attributes.iter().any(|a| same_attribute(a, &item)) {
            return Err(LifecycleError::SingleValuedAttribute(item.tag));
        }
        r.attributes.push(item);
        set_single(&mut r.attributes, date(tag::LAST_CHANGE_DATE, now));
        self.put(&r)?;
        Ok(r)
    }

    /// Replace instance `index` (0 when absent) of the attribute, or, with `current`, the
    /// instance equal to it.
    pub fn modify_attribute(
        &self,
        id: &str,
        current: Option<&Ttlv>,
        new: Ttlv,
        index: usize,
        now: i64,
    ) -> Result<Record, LifecycleError> {
        let mut r = self.get(id, now)?;
        let rule = attributes::rule_for(&new)?;
        if !rule.client_modifies {
            return Err(LifecycleError::ReadOnlyAttribute(new.tag));
        }
        let pos = match current {
            Some(c) => r.attributes.iter().position(|a| a == c),
            None => r
                .attributes
                .iter()
                .enumerate()
                .filter(|(_, a)| same_attribute(a, &new))
                .nth(index)
                .map(|(i, _)| i),
        }
        .ok_or(LifecycleError::AttributeNotFound)?;
        if matches!(new.tag, tag::ACTIVATION_DATE | tag::DEACTIVATION_DATE)
            && r.state != State::PreActive
            && !(new.tag == tag::DEACTIVATION_DATE && r.state == State::Active)
        {
            return Err(LifecycleError::NotUsable(r.state));
        }
        r.attributes[pos] = new;
        set_single(&mut r.attributes, date(tag::LAST_CHANGE_DATE, now));
        self.put(&r)?;
        self.get(id, now)
    }

    /// Delete instance `index` of the attribute `target` (matched by tag, or vendor and name),
    /// or the instance equal to `target` when `exact`.
    pub fn delete_attribute(
        &self,
        id: &str,
        target: &Ttlv,
        exact: bool,
        index: usize,
        now: i64,
    ) -> Result<Record, LifecycleError> {
        let mut r = self.get(id, now)?;
        let rule = attributes::rule_for(target)?;
        if !rule.client_deletes {
            return Err(LifecycleError::ReadOnlyAttribute(target.tag));
        }
        let pos = if exact {
            r.attributes.iter().position(|a| a == target)
        } else {
            r.attributes
                .iter()
                .enumerate()
                .filter(|(_, a)| same_attribute(a, target))
                .nth(index)
                .map(|(i, _)| i)
        }
        .ok_or(LifecycleError::AttributeNotFound)?;
        r.attributes.remove(pos);
        set_single(&mut r.attributes, date(tag::LAST_CHANGE_DATE, now));
        self.put(&r)?;
        Ok(r)
    }

    /// Identifiers of the objects that match every criterion, newest first. An indexed
    /// criterion (Name, Object Type, State, algorithm, length, group, certificate type, custom
    /// attribute) narrows the candidates through the index before any record is read.
    pub fn locate(&self, q: &LocateQuery, now: i64) -> Result<Vec<String>, LifecycleError> {
        let scoped = self.caller.as_ref().filter(|c| !c.admin);
        // a Name criterion may omit the Name Type, which the index does not need
        let mut ids = match (q.attributes.iter().find_map(item_index_key), scoped) {
            (Some(k), _) => self.store.lookup(&k)?,
            // only what the caller owns, was granted, or was given by group: index lookups, not
            // a scan
            (None, Some(c)) => {
                let mut v = self.store.lookup(&crate::store::index_key(
                    crate::store::OWNER,
                    c.identity.as_bytes(),
                ))?;
                v.extend(self.store.lookup(&crate::store::index_key(
                    crate::store::GRANTEE,
                    c.identity.as_bytes(),
                ))?);
                for (g, _) in &c.groups {
                    v.extend(
                        self.store
                            .lookup(&crate::store::index_key(tag::OBJECT_GROUP, g.as_bytes()))?,
                    );
                }
                v.sort();
                v.dedup();
                v
            }
            (None, None) => self.store.all_ids()?,
        };
        ids.sort_by_key(|id| std::cmp::Reverse(id.parse::<u64>().unwrap_or(0)));
        let mut out = Vec::new();
        let mut skipped = 0;
        for id in ids {
            let Some(r) = self.store.get(&id)? else {
                continue;
            };
            let mut r = r;
            self.apply_due_dates(&mut r, now)?;
            let storage_ok = if r.state.is_destroyed() {
                q.include_destroyed
            } else if is_archived(&r) {
                q.include_archived
            } else {
                !q.exclude_online
            };
            if !storage_ok || !matches(&r, &q.attributes) {
                continue;
            }
            if skipped < q.offset_items {
                skipped += 1;
                continue;
            }
            out.push(id);
            if q.maximum_items.is_some_and(|m| out.len() >= m) {
                break;
            }
        }
        Ok(out)
    }
}

/// Whether a record meets every criterion.
fn matches(r: &Record, criteria: &[Ttlv]) -> bool {
    let mut done: Vec<Tag> = Vec::new();
    for c in criteria {
        match c.tag {
            tag::UNIQUE_IDENTIFIER => {
                if c.as_text() != Some(r.id.as_str()) {
                    return false;
                }
            }
            tag::OBJECT_TYPE => {
                if c.as_enum() != Some(r.object_type) {
                    return false;
                }
            }
            tag::STATE => {
                if c.as_enum() != Some(r.state.to_kmip()) {
                    return false;
                }
            }
            tag::CRYPTOGRAPHIC_USAGE_MASK => {
                let want = c.as_i32().unwrap_or(0) as u32;
                let have = r.attribute(c.tag).and_then(Ttlv::as_i32).unwrap_or(0) as u32;
                if have & want != want {
                    return false;
                }
            }
            tag::NAME => {
                let want = c.child(tag::NAME_VALUE).and_then(Ttlv::as_text);
                let want_type = c.child(tag::NAME_TYPE).and_then(Ttlv::as_enum);
                let hit = r.attributes.iter().filter(|a| a.tag == tag::NAME).any(|a| {
                    a.child(tag::NAME_VALUE).and_then(Ttlv::as_text) == want
                        && want_type.is_none_or(|t| {
                            a.child(tag::NAME_TYPE).and_then(Ttlv::as_enum) == Some(t)
                        })
                });
                if !hit {
                    return false;
                }
            }
            _ if matches!(c.value, Value::DateTime(_)) => {
                if done.contains(&c.tag) {
                    continue;
                }
                done.push(c.tag);
                // two instances of a date criterion bound a range, one asks for equality
                let bounds: Vec<i64> = criteria
                    .iter()
                    .filter(|x| x.tag == c.tag)
                    .filter_map(Ttlv::as_datetime)
                    .collect();
                let (lo, hi) = match bounds.as_slice() {
                    [a, b] => (*a.min(b), *a.max(b)),
                    _ => (bounds[0], bounds[0]),
                };
                let Some(have) = r.attribute(c.tag).and_then(Ttlv::as_datetime) else {
                    return false;
                };
                if have < lo || have > hi {
                    return false;
                }
            }
            _ => {
                if !r.attributes.iter().any(|a| a == c) {
                    return false;
                }
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::MasterKey;
    use crate::store::{MemoryStore, RedbStore};
    use kmip_codec::vocab::enums::cryptographic_algorithm as alg;

    fn manager() -> Manager {
        Manager::new(
            Arc::new(MemoryStore::new()),
            Core::new(MasterKey::generate().unwrap()),
        )
    }

    fn name(n: &str) -> Ttlv {
        Ttlv::structure(
            tag::NAME,
            vec![
                text(tag::NAME_VALUE, n),
                Ttlv::new(tag::NAME_TYPE, Value::Enumeration(1)),
            ],
        )
    }

    fn aes(bits: i32, n: &str) -> Vec<Ttlv> {
        vec![
            Ttlv::new(tag::CRYPTOGRAPHIC_ALGORITHM, Value::Enumeration(alg::AES)),
            Ttlv::new(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(bits)),
            Ttlv::new(tag::CRYPTOGRAPHIC_USAGE_MASK, Value::Integer(4 | 8)),
            name(n),
        ]
    }

    fn key_bytes(obj: &Ttlv) -> Vec<u8> {
        obj.child(tag::KEY_BLOCK)
            .and_then(|k| k.child(tag::KEY_VALUE))
            .and_then(|v| v.child(tag::KEY_MATERIAL))
            .and_then(Ttlv::as_bytes)
            .unwrap()
            .to_vec()
    }

    #[test]
    fn whole_lifecycle() {
        let m = manager();
        let r = m.create(ot::SYMMETRIC_KEY, aes(256, "k"), 1000).unwrap();
        assert_eq!(r.state, State::PreActive);
        let (_, obj) = m.export(&r.id, 1001).unwrap();
        assert_eq!(key_bytes(&obj).len(), 32);
        // an Active key may not be destroyed; it must be revoked first
        assert!(
            m.destroy(&r.id, 1002).is_ok(),
            "Pre-Active may be destroyed"
        );
        let r = m.create(ot::SYMMETRIC_KEY, aes(128, "k2"), 1000).unwrap();
        assert_eq!(m.activate(&r.id, 1001).unwrap().state, State::Active);
        assert!(matches!(
            m.activate(&r.id, 1002),
            Err(LifecycleError::WrongState(_))
        ));
        assert!(matches!(
            m.destroy(&r.id, 1002),
            Err(LifecycleError::WrongState(_))
        ));
        let rv = m
            .revoke(&r.id, rrc::CESSATION_OF_OPERATION, Some("done"), None, 1003)
            .unwrap();
        assert_eq!(rv.state, State::Deactivated);
        assert_eq!(
            rv.attribute(tag::DEACTIVATION_DATE)
                .and_then(Ttlv::as_datetime),
            Some(1003)
        );
        let d = m.destroy(&r.id, 1004).unwrap();
        assert_eq!(d.state, State::Destroyed);
        assert!(d.sealed.is_none(), "material is dropped");
        assert_eq!(
            d.attribute(tag::DESTROY_DATE).and_then(Ttlv::as_datetime),
            Some(1004)
        );
        assert!(matches!(
            m.export(&r.id, 1005),
            Err(LifecycleError::Destroyed)
        ));
        let dc = m
            .revoke(&r.id, rrc::KEY_COMPROMISE, None, Some(900), 1006)
            .unwrap();
        assert_eq!(dc.state, State::DestroyedCompromised);
        assert!(matches!(m.get("999", 0), Err(LifecycleError::NotFound)));
    }

    #[test]
    fn activation_dates_drive_the_state() {
        let m = manager();
        let mut past = aes(128, "past");
        past.push(date(tag::ACTIVATION_DATE, 10));
        assert_eq!(
            m.create(ot::SYMMETRIC_KEY, past, 100).unwrap().state,
            State::Active
        );
        let mut future = aes(128, "future");
        future.push(date(tag::ACTIVATION_DATE, 200));
        future.push(date(tag::DEACTIVATION_DATE, 300));
        let r = m.create(ot::SYMMETRIC_KEY, future, 100).unwrap();
        assert_eq!(r.state, State::PreActive);
        assert_eq!(m.get(&r.id, 250).unwrap().state, State::Active);
        assert_eq!(m.get(&r.id, 350).unwrap().state, State::Deactivated);
        let changes = m.automatic_changes();
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert_eq!(
            (changes[1].from, changes[1].to),
            (State::Active, State::Deactivated)
        );
    }

    #[test]
    fn export_policy() {
        let m = manager();
        let mut a = aes(128, "locked");
        a.push(boolean(tag::EXTRACTABLE, false));
        let r = m.create(ot::SYMMETRIC_KEY, a, 1).unwrap();
        assert!(matches!(
            m.export(&r.id, 2),
            Err(LifecycleError::NotExtractable)
        ));
        assert_eq!(
            r.attribute(tag::NEVER_EXTRACTABLE).and_then(Ttlv::as_bool),
            Some(true)
        );
        let mut s = aes(128, "sensitive");
        s.push(boolean(tag::SENSITIVE, true));
        let r = m.create(ot::SYMMETRIC_KEY, s, 1).unwrap();
        assert!(matches!(m.export(&r.id, 2), Err(LifecycleError::Sensitive)));
    }

    #[test]
    fn key_pairs_link_each_other() {
        let m = manager();
        let common = vec![
            Ttlv::new(tag::CRYPTOGRAPHIC_ALGORITHM, Value::Enumeration(alg::RSA)),
            Ttlv::new(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(2048)),
        ];
        let (p, q) = m
            .create_key_pair(common, vec![name("priv")], vec![name("pub")], 5)
            .unwrap();
        assert_eq!(
            (p.object_type, q.object_type),
            (ot::PRIVATE_KEY, ot::PUBLIC_KEY)
        );
        let linked = |r: &Record| {
            r.attribute(tag::LINK)
                .and_then(|l| l.child(tag::LINKED_OBJECT_IDENTIFIER))
                .and_then(Ttlv::as_text)
                .unwrap()
                .to_owned()
        };
        assert_eq!(linked(&p), q.id);
        assert_eq!(linked(&q), p.id);
    }

    #[test]
    fn register_and_attributes() {
        let m = manager();
        let obj = Ttlv::structure(
            tag::SECRET_DATA,
            vec![
                Ttlv::new(tag::SECRET_DATA_TYPE, Value::Enumeration(2)),
                Ttlv::structure(
                    tag::KEY_BLOCK,
                    vec![
                        Ttlv::new(tag::KEY_FORMAT_TYPE, Value::Enumeration(2)),
                        Ttlv::structure(
                            tag::KEY_VALUE,
                            vec![Ttlv::new(
                                tag::KEY_MATERIAL,
                                Value::ByteString(b"pass".to_vec()),
                            )],
                        ),
                    ],
                ),
            ],
        );
        assert!(
            m.register(ot::SYMMETRIC_KEY, &obj, vec![], 1).is_err(),
            "type mismatch"
        );
        let r = m
            .register(ot::SECRET_DATA, &obj, vec![name("s")], 1)
            .unwrap();
        assert_eq!(m.export(&r.id, 2).unwrap().1, obj);
        let r = m.add_attribute(&r.id, name("s2"), 3).unwrap();
        assert_eq!(
            r.attributes.iter().filter(|a| a.tag == tag::NAME).count(),
            2
        );
        assert!(matches!(
            m.add_attribute(&r.id, Ttlv::new(tag::STATE, Value::Enumeration(2)), 3),
            Err(LifecycleError::ReadOnlyAttribute(_))
        ));
        let r = m
            .modify_attribute(&r.id, None, name("renamed"), 1, 4)
            .unwrap();
        assert!(r.attributes.contains(&name("renamed")) && !r.attributes.contains(&name("s2")));
        let r = m.delete_attribute(&r.id, &name("s"), true, 0, 5).unwrap();
        assert!(!r.attributes.contains(&name("s")));
        assert!(matches!(
            m.delete_attribute(&r.id, &name("s"), true, 0, 5),
            Err(LifecycleError::AttributeNotFound)
        ));
    }

    #[test]
    fn locate_filters_and_orders() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(RedbStore::open(&dir.path().join("k.redb")).unwrap());
        let m = Manager::new(store, Core::new(MasterKey::generate().unwrap()));
        let a = m.create(ot::SYMMETRIC_KEY, aes(128, "a"), 10).unwrap();
        let b = m.create(ot::SYMMETRIC_KEY, aes(256, "b"), 20).unwrap();
        let c = m.create(ot::SYMMETRIC_KEY, aes(256, "a"), 30).unwrap();
        m.activate(&c.id, 31).unwrap();
        let q = |attrs: Vec<Ttlv>| LocateQuery {
            attributes: attrs,
            ..Default::default()
        };
        let by_name = Ttlv::structure(tag::NAME, vec![text(tag::NAME_VALUE, "a")]);
        assert_eq!(
            m.locate(&q(vec![by_name.clone()]), 40).unwrap(),
            vec![c.id.clone(), a.id.clone()]
        );
        let len256 = Ttlv::new(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(256));
        assert_eq!(
            m.locate(&q(vec![len256.clone()]), 40).unwrap(),
            vec![c.id.clone(), b.id.clone()]
        );
        let active = Ttlv::new(tag::STATE, Value::Enumeration(State::Active.to_kmip()));
        assert_eq!(
            m.locate(&q(vec![len256, active]), 40).unwrap(),
            vec![c.id.clone()]
        );
        let mask = Ttlv::new(tag::CRYPTOGRAPHIC_USAGE_MASK, Value::Integer(4));
        assert_eq!(
            m.locate(&q(vec![mask]), 40).unwrap().len(),
            3,
            "superset match"
        );
        let range = vec![date(tag::INITIAL_DATE, 15), date(tag::INITIAL_DATE, 25)];
        assert_eq!(m.locate(&q(range), 40).unwrap(), vec![b.id.clone()]);
        let page = LocateQuery {
            maximum_items: Some(1),
            offset_items: 1,
            ..Default::default()
        };
        assert_eq!(m.locate(&page, 40).unwrap(), vec![b.id.clone()]);
        m.revoke(&c.id, rrc::UNSPECIFIED, None, None, 41).unwrap();
        m.destroy(&a.id, 41).unwrap();
        assert!(
            !m.locate(&q(vec![]), 42).unwrap().contains(&a.id),
            "destroyed objects are gone"
        );
        let all = LocateQuery {
            include_destroyed: true,
            ..Default::default()
        };
        assert!(m.locate(&all, 42).unwrap().contains(&a.id));
    }
}

/// Cryptographic use of stored keys: every use checks state and usage mask first.
pub mod usage {
    use super::*;
    use crate::core::crypto::{
        self, CipherInput, CryptoParams, Derivation, Encrypted, KeyMaterial,
    };
    use crate::state::{may_use, Usage};
    use kmip_codec::vocab::enums::cryptographic_usage_mask as um;

    impl Manager {
        /// The key of `id` for one use: it must exist, be in a state that allows the use, and
        /// have the usage-mask bit (when it has a mask at all).
        fn key_for(
            &self,
            id: &str,
            usage: Usage,
            mask_bit: u32,
            now: i64,
        ) -> Result<(Record, KeyMaterial), LifecycleError> {
            let r = self.get(id, now)?;
            if r.state.is_destroyed() {
                return Err(LifecycleError::Destroyed);
            }
            if is_archived(&r) {
                return Err(LifecycleError::Archived);
            }
            if !may_use(r.state, usage) {
                return Err(LifecycleError::NotUsable(r.state));
            }
            // the Protect Stop Date ends protection, the Process Start Date begins processing
            // (KMIP 1.4 §3.25-26)
            let window = match usage {
                Usage::Protect | Usage::DeriveFromPreActive => {
                    get_date(&r.attributes, tag::PROTECT_STOP_DATE).is_none_or(|d| now < d)
                }
                Usage::Process => {
                    get_date(&r.attributes, tag::PROCESS_START_DATE).is_none_or(|d| now >= d)
                }
            };
            if !window {
                // Wrong Key Lifecycle State in 2.x, Permission Denied for 1.x clients (the OASIS
                // test cases CS-BC-M-14 of both versions)
                return Err(LifecycleError::NotUsable(r.state));
            }
            if let Some(mask) = r
                .attribute(tag::CRYPTOGRAPHIC_USAGE_MASK)
                .and_then(Ttlv::as_i32)
            {
                if (mask as u32) & mask_bit == 0 {
                    return Err(LifecycleError::IncompatibleUsageMask);
                }
            }
            let sealed = r.sealed.as_ref().ok_or(LifecycleError::Destroyed)?;
            let plain = self.core.unseal(&r.id, sealed)?;
            let key = crypto::key_material(&plain)?;
            Ok((r, key))
        }

        /// The key of `id` for a protecting use of `bytes` bytes (encrypt, sign, MAC): checked
        /// as [`Manager::key_for`] does, then counted against its Usage Limits.
        fn key_to_protect(
            &self,
            id: &str,
            mask_bit: u32,
            bytes: usize,
            now: i64,
        ) -> Result<(Record, KeyMaterial), LifecycleError> {
            let (r, key) = self.key_for(id, Usage::Protect, mask_bit, now)?;
            Ok((self.count_use(r, bytes)?, key))
        }

        /// Count one protecting use of `bytes` bytes against the key's Usage Limits, if it has
        /// any: the count goes down by the bytes or by one object; a use that would exceed it
        /// is refused (Permission Denied, as the OASIS test cases say).
        fn count_use(&self, mut r: Record, bytes: usize) -> Result<Record, LifecycleError> {
            use kmip_codec::vocab::enums::usage_limits_unit;
            let Some(pos) = r.attributes.iter().position(|a| a.tag == tag::USAGE_LIMITS) else {
                return Ok(r);
            };
            let limits = &r.attributes[pos];
            let long = |t| match limits.child(t).map(|v| &v.value) {
                Some(Value::LongInteger(n)) => Some(*n),
                _ => None,
            };
            let total = long(tag::USAGE_LIMITS_TOTAL).unwrap_or(0);
            let left = long(tag::USAGE_LIMITS_COUNT).unwrap_or(total);
            let unit = limits.child(tag::USAGE_LIMITS_UNIT).and_then(Ttlv::as_enum);
            let cost = if unit == Some(usage_limits_unit::BYTE) {
                bytes as i64
            } else {
                1
            };
            if cost > left {
                return Err(LifecycleError::PermissionDenied(
                    "the key's usage limit is exhausted".into(),
                ));
            }
            let mut children: Vec<Ttlv> = limits
                .children()
                .iter()
                .filter(|c| c.tag != tag::USAGE_LIMITS_COUNT)
                .cloned()
                .collect();
            children.push(Ttlv::new(
                tag::USAGE_LIMITS_COUNT,
                Value::LongInteger(left - cost),
            ));
            r.attributes[pos] = Ttlv::structure(tag::USAGE_LIMITS, children);
            self.put(&r)?;
            Ok(r)
        }

        /// The request's parameters, completed from the key's Cryptographic Parameters.
        fn params(r: &Record, given: CryptoParams) -> CryptoParams {
            given.or(&CryptoParams::from_ttlv(
                r.attribute(tag::CRYPTOGRAPHIC_PARAMETERS),
            ))
        }

        pub fn encrypt(
            &self,
            id: &str,
            params: CryptoParams,
            data: &[u8],
            iv: Option<&[u8]>,
            aad: Option<&[u8]>,
            now: i64,
        ) -> Result<Encrypted, LifecycleError> {
            let (r, key) = self.key_to_protect(id, um::ENCRYPT, data.len(), now)?;
            let p = Self::params(&r, params);
            Ok(crypto::encrypt(
                &key,
                &CipherInput {
                    params: &p,
                    data,
                    iv,
                    aad,
                    tag: None,
                },
            )?)
        }

        #[allow(clippy::too_many_arguments)]
        pub fn decrypt(
            &self,
            id: &str,
            params: CryptoParams,
            data: &[u8],
            iv: Option<&[u8]>,
            aad: Option<&[u8]>,
            auth_tag: Option<&[u8]>,
            now: i64,
        ) -> Result<Secret, LifecycleError> {
            let (r, key) = self.key_for(id, Usage::Process, um::DECRYPT, now)?;
            let p = Self::params(&r, params);
            Ok(crypto::decrypt(
                &key,
                &CipherInput {
                    params: &p,
                    data,
                    iv,
                    aad,
                    tag: auth_tag,
                },
            )?)
        }

        pub fn sign(
            &self,
            id: &str,
            params: CryptoParams,
            data: &[u8],
            now: i64,
        ) -> Result<Vec<u8>, LifecycleError> {
            let (r, key) = self.key_to_protect(id, um::SIGN, data.len(), now)?;
            Ok(crypto::sign(&key, &Self::params(&r, params), data)?)
        }

        pub fn verify(
            &self,
            id: &str,
            params: CryptoParams,
            data: &[u8],
            signature: &[u8],
            now: i64,
        ) -> Result<bool, LifecycleError> {
            let (r, key) = self.key_for(id, Usage::Process, um::VERIFY, now)?;
            Ok(crypto::verify(
                &key,
                &Self::params(&r, params),
                data,
                signature,
            )?)
        }

        pub fn mac(
            &self,
            id: &str,
            params: CryptoParams,
            data: &[u8],
            now: i64,
        ) -> Result<Vec<u8>, LifecycleError> {
            let (r, key) = self.key_to_protect(id, um::MAC_GENERATE, data.len(), now)?;
            Ok(crypto::mac(&key, &Self::params(&r, params), data)?)
        }

        pub fn mac_verify(
            &self,
            id: &str,
            params: CryptoParams,
            data: &[u8],
            expected: &[u8],
            now: i64,
        ) -> Result<bool, LifecycleError> {
            let (r, key) = self.key_for(id, Usage::Process, um::MAC_VERIFY, now)?;
            let got = crypto::mac(&key, &Self::params(&r, params), data)?;
            Ok(got.len() == expected.len() && openssl::memcmp::eq(&got, expected))
        }

        /// Derive a new Symmetric Key or Secret Data from the key (or password) `base`.
        pub fn derive_key(
            &self,
            object_type: u32,
            base: &str,
            d: &Derivation<'_>,
            attrs: Vec<Ttlv>,
            now: i64,
        ) -> Result<Record, LifecycleError> {
            attributes::check_client_attributes(&attrs)?;
            let usage = if self.derive_from_pre_active {
                Usage::DeriveFromPreActive
            } else {
                Usage::Protect
            };
            let (_, key) = self.key_for(base, usage, um::DERIVE_KEY, now)?;
            let bytes = crypto::derive(&key, d)?;
            let bits = (bytes.len() * 8) as u32;
            let material = match object_type {
                ot::SYMMETRIC_KEY => {
                    let algorithm = attrs
                        .iter()
                        .find(|a| a.tag == tag::CRYPTOGRAPHIC_ALGORITHM)
                        .and_then(Ttlv::as_enum)
                        .ok_or_else(|| {
                            LifecycleError::InvalidField(
                                "Cryptographic Algorithm is required".into(),
                            )
                        })?;
                    crate::core::key_object(
                        tag::SYMMETRIC_KEY,
                        kmip_codec::vocab::enums::key_format_type::RAW,
                        bytes.expose(),
                        algorithm,
                        bits,
                    )
                }
                ot::SECRET_DATA => crate::core::secret_data_object(bytes.expose()),
                other => {
                    return Err(LifecycleError::InvalidField(format!(
                        "Derive Key makes Symmetric Keys or Secret Data, not 0x{other:X}"
                    )))
                }
            };
            let mut attrs = attrs;
            if !attrs.iter().any(|a| a.tag == tag::CRYPTOGRAPHIC_LENGTH)
                && object_type == ot::SYMMETRIC_KEY
            {
                attrs.push(Ttlv::new(
                    tag::CRYPTOGRAPHIC_LENGTH,
                    Value::Integer(bits as i32),
                ));
            }
            let id = self.new_ids(1)?.remove(0);
            let record = self.new_record(&id, object_type, attrs, &material, now)?;
            self.store.commit(vec![Change::Put(record.clone())])?;
            Ok(record)
        }

        /// Get with a Key Wrapping Specification (Encrypt): the object with its Key Value
        /// wrapped under the wrapping key, and the Key Wrapping Data that says how.
        pub fn export_wrapped(
            &self,
            id: &str,
            wrapping_id: &str,
            params: CryptoParams,
            now: i64,
        ) -> Result<(Record, Ttlv), LifecycleError> {
            let r = self.get(id, now)?;
            if r.state.is_destroyed() {
                return Err(LifecycleError::Destroyed);
            }
            if r.attribute(tag::EXTRACTABLE).and_then(Ttlv::as_bool) == Some(false) {
                return Err(LifecycleError::NotExtractable);
            }
            let (wr, wkey) = self.key_for(wrapping_id, Usage::Protect, um::WRAP_KEY, now)?;
            let p = Self::params(&wr, params.clone());
            let sealed = r.sealed.as_ref().ok_or(LifecycleError::Destroyed)?;
            let plain = self.core.unseal(&r.id, sealed)?;
            let inner = crypto::key_material(&plain)?;
            let wrapped = crypto::wrap(&wkey, &p, inner.bytes.expose())?;
            let (mut obj, _) = kmip_codec::decode(plain.expose(), &Limits::default())
                .map_err(|_| LifecycleError::InvalidField("stored object".into()))?;
            let mut cp = Vec::new();
            if let Some(m) = p.block_cipher_mode {
                cp.push(Ttlv::new(tag::BLOCK_CIPHER_MODE, Value::Enumeration(m)));
            }
            let wrapping_data = Ttlv::structure(
                tag::KEY_WRAPPING_DATA,
                vec![
                    Ttlv::new(
                        tag::WRAPPING_METHOD,
                        Value::Enumeration(kmip_codec::vocab::enums::wrapping_method::ENCRYPT),
                    ),
                    Ttlv::structure(
                        tag::ENCRYPTION_KEY_INFORMATION,
                        vec![
                            text(tag::UNIQUE_IDENTIFIER, wrapping_id),
                            Ttlv::structure(tag::CRYPTOGRAPHIC_PARAMETERS, cp),
                        ],
                    ),
                    Ttlv::new(
                        tag::ENCODING_OPTION,
                        Value::Enumeration(kmip_codec::vocab::enums::encoding_option::NO_ENCODING),
                    ),
                ],
            );
            if let Some(kb) = obj
                .children_mut()
                .and_then(|c| c.iter_mut().find(|c| c.tag == tag::KEY_BLOCK))
            {
                let children = kb.children_mut().expect("a key block is a structure");
                // No Encoding (KMIP 1.4 §2.1.5): the Key Value stays a structure and only its
                // Key Material is replaced by the wrapped bytes
                for kv in children.iter_mut().filter(|c| c.tag == tag::KEY_VALUE) {
                    for km in kv
                        .children_mut()
                        .into_iter()
                        .flatten()
                        .filter(|c| c.tag == tag::KEY_MATERIAL)
                    {
                        crate::core::zeroize_tree(km);
                        *km = Ttlv::new(tag::KEY_MATERIAL, Value::ByteString(wrapped.clone()));
                    }
                }
                children.push(wrapping_data);
            }
            Ok((r, obj))
        }
    }
}

#[cfg(test)]
mod erase_tests {
    use super::*;
    use crate::core::MasterKey;
    use crate::store::RedbStore;

    fn find(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    /// After Destroy and compaction neither the key's plaintext nor its sealed bytes are in
    /// the data file; before Destroy the sealed bytes are, and the plaintext never is.
    #[test]
    fn destroyed_material_leaves_the_data_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.redb");
        let master_bytes = [7u8; 32];
        let open = || {
            let store = Arc::new(RedbStore::open(&path).unwrap());
            Manager::new(
                store,
                Core::new(MasterKey::from_bytes(&master_bytes).unwrap()),
            )
        };
        let m = open();
        let attrs = vec![
            Ttlv::new(
                tag::CRYPTOGRAPHIC_ALGORITHM,
                Value::Enumeration(kmip_codec::vocab::enums::cryptographic_algorithm::AES),
            ),
            Ttlv::new(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(256)),
        ];
        let r = m.create(ot::SYMMETRIC_KEY, attrs.clone(), 1).unwrap();
        // neighbours, so that the destroyed record's page is not simply the only one
        for _ in 0..200 {
            m.create(ot::SYMMETRIC_KEY, attrs.clone(), 1).unwrap();
        }
        let (_, obj) = m.export(&r.id, 1).unwrap();
        let plain = obj
            .child(tag::KEY_BLOCK)
            .unwrap()
            .child(tag::KEY_VALUE)
            .unwrap()
            .child(tag::KEY_MATERIAL)
            .unwrap()
            .as_bytes()
            .unwrap()
            .to_vec();
        let sealed = r.sealed.clone().unwrap();
        drop(m);
        let file = std::fs::read(&path).unwrap();
        assert!(find(&file, &sealed[13..45]), "the sealed bytes are stored");
        assert!(!find(&file, &plain), "plaintext never reaches the file");
        let m = open();
        m.destroy(&r.id, 2).unwrap();
        drop(m);
        // (with these neighbours the freed page still holds the sealed bytes here; compaction
        // is what removes them)
        let mut store = RedbStore::open(&path).unwrap();
        // compaction may need more than one pass to move every page
        while store.compact().unwrap() {}
        drop(store);
        let file = std::fs::read(&path).unwrap();
        assert!(!find(&file, &plain));
        assert!(
            !find(&file, &sealed[13..45]),
            "sealed bytes of a destroyed key remain in the file"
        );
        // the object's metadata is still there
        assert_eq!(open().get(&r.id, 3).unwrap().state, State::Destroyed);
    }
}

/// Rotation: Re-key and Re-key Key Pair (KMIP 2.1 sections 6.1.46-47).
pub mod rotation {
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

    impl Manager {
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
            let attrs = inherited(&old, offset, client, now);
            let alg = get_enum(&attrs, tag::CRYPTOGRAPHIC_ALGORITHM).ok_or_else(|| {
                LifecycleError::InvalidField("the key has no Cryptographic Algorithm".into())
            })?;
            let len = get_int(&attrs, tag::CRYPTOGRAPHIC_LENGTH).ok_or_else(|| {
                LifecycleError::InvalidField("the key has no Cryptographic Length".into())
            })?;
            let generated = self.core.generate(KeySpec::symmetric(alg, len)?)?;
            let new_id = self.new_ids(1)?.remove(0);
            let mut new =
                self.new_record(&new_id, ot::SYMMETRIC_KEY, attrs, &generated.object, now)?;
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
            let public_id = old_priv
                .attributes
                .iter()
                .filter(|a| a.tag == tag::LINK)
                .find(|l| {
                    l.child(tag::LINK_TYPE).and_then(Ttlv::as_enum)
                        == Some(link_type::PUBLIC_KEY_LINK)
                })
                .and_then(|l| l.child(tag::LINKED_OBJECT_IDENTIFIER))
                .and_then(Ttlv::as_text)
                .map(str::to_owned)
                .ok_or_else(|| {
                    LifecycleError::InvalidField("the private key has no Public Key Link".into())
                })?;
            let mut old_pub = self.get(&public_id, now)?;
            let with_common = |c: Vec<Ttlv>| {
                let mut all = common.clone();
                all.extend(c);
                all
            };
            let (private, public) = (with_common(private), with_common(public));
            attributes::check_client_attributes(&private)?;
            attributes::check_client_attributes(&public)?;
            let priv_attrs = inherited(&old_priv, offset, private, now);
            let pub_attrs = inherited(&old_pub, offset, public, now);
            let (generated, public_material) = self.generate_pair(&priv_attrs)?;
            let ids = self.new_ids(2)?;
            let mut np =
                self.new_record(&ids[0], ot::PRIVATE_KEY, priv_attrs, &generated.object, now)?;
            let mut nq =
                self.new_record(&ids[1], ot::PUBLIC_KEY, pub_attrs, &public_material, now)?;
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

        fn linked(r: &Record, kind: u32) -> Option<String> {
            r.attributes
                .iter()
                .filter(|a| a.tag == tag::LINK)
                .find(|l| l.child(tag::LINK_TYPE).and_then(Ttlv::as_enum) == Some(kind))
                .and_then(|l| {
                    l.child(tag::LINKED_OBJECT_IDENTIFIER)?
                        .as_text()
                        .map(str::to_owned)
                })
        }

        #[test]
        fn rekey_moves_names_links_and_dates() {
            let m = Manager::new(
                Arc::new(MemoryStore::new()),
                Core::new(MasterKey::generate().unwrap()),
            );
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
            );
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
}

#[cfg(test)]
mod ownership_tests {
    use super::*;
    use crate::core::MasterKey;
    use crate::store::MemoryStore;

    #[test]
    fn objects_belong_to_their_creator() {
        let base = Manager::new(
            Arc::new(MemoryStore::new()),
            Core::new(MasterKey::generate().unwrap()),
        );
        let who = |n: &str, admin| {
            base.for_caller(Caller {
                identity: n.into(),
                admin,
                operation: None,
                groups: Vec::new(),
            })
        };
        let (alice, bob, admin) = (who("alice", false), who("bob", false), who("root", true));
        let attrs = vec![
            Ttlv::new(
                tag::CRYPTOGRAPHIC_ALGORITHM,
                Value::Enumeration(kmip_codec::vocab::enums::cryptographic_algorithm::AES),
            ),
            Ttlv::new(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(128)),
        ];
        let a = alice.create(ot::SYMMETRIC_KEY, attrs.clone(), 1).unwrap();
        assert_eq!(a.owner.as_deref(), Some("alice"));
        let b = bob.create(ot::SYMMETRIC_KEY, attrs, 1).unwrap();
        assert!(matches!(bob.get(&a.id, 2), Err(LifecycleError::NotFound)));
        assert!(matches!(
            bob.export(&a.id, 2),
            Err(LifecycleError::NotFound)
        ));
        assert!(matches!(
            bob.destroy(&a.id, 2),
            Err(LifecycleError::NotFound)
        ));
        assert!(alice.get(&a.id, 2).is_ok());
        assert!(admin.get(&a.id, 2).is_ok());
        let all = LocateQuery::default();
        assert_eq!(alice.locate(&all, 2).unwrap(), vec![a.id.clone()]);
        assert_eq!(bob.locate(&all, 2).unwrap(), vec![b.id.clone()]);
        assert_eq!(admin.locate(&all, 2).unwrap().len(), 2);
        // a replacement made by the administrator still belongs to alice
        let r = admin.rekey(&a.id, None, vec![], 3).unwrap();
        assert_eq!(r.owner.as_deref(), Some("alice"));
        assert!(alice.get(&r.id, 3).is_ok() && bob.get(&r.id, 3).is_err());
    }
}

#[cfg(test)]
mod archive_tests {
    use super::*;
    use crate::core::MasterKey;
    use crate::store::MemoryStore;

    #[test]
    fn archived_objects_rest_until_recovered() {
        let m = Manager::new(
            Arc::new(MemoryStore::new()),
            Core::new(MasterKey::generate().unwrap()),
        );
        let attrs = vec![
            Ttlv::new(
                tag::CRYPTOGRAPHIC_ALGORITHM,
                Value::Enumeration(kmip_codec::vocab::enums::cryptographic_algorithm::AES),
            ),
            Ttlv::new(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(128)),
        ];
        let r = m.create(ot::SYMMETRIC_KEY, attrs, 1).unwrap();
        m.archive(&r.id, 2).unwrap();
        assert!(matches!(m.export(&r.id, 3), Err(LifecycleError::Archived)));
        assert!(m.locate(&LocateQuery::default(), 3).unwrap().is_empty());
        let archived = LocateQuery {
            include_archived: true,
            exclude_online: true,
            ..Default::default()
        };
        assert_eq!(m.locate(&archived, 3).unwrap(), vec![r.id.clone()]);
        m.recover(&r.id, 4).unwrap();
        assert!(m.export(&r.id, 5).is_ok());
        assert!(m.locate(&archived, 5).unwrap().is_empty());
        assert_eq!(m.locate(&LocateQuery::default(), 5).unwrap(), vec![r.id]);
    }
}

#[cfg(test)]
mod usage_limit_tests {
    use super::*;
    use crate::core::crypto::CryptoParams;
    use crate::core::MasterKey;
    use crate::store::MemoryStore;
    use kmip_codec::vocab::enums::{block_cipher_mode, usage_limits_unit};

    #[test]
    fn usage_limits_are_counted() {
        let m = Manager::new(
            Arc::new(MemoryStore::new()),
            Core::new(MasterKey::generate().unwrap()),
        );
        let limits = Ttlv::structure(
            tag::USAGE_LIMITS,
            vec![
                Ttlv::new(tag::USAGE_LIMITS_TOTAL, Value::LongInteger(2)),
                Ttlv::new(
                    tag::USAGE_LIMITS_UNIT,
                    Value::Enumeration(usage_limits_unit::OBJECT),
                ),
            ],
        );
        let attrs = vec![
            Ttlv::new(
                tag::CRYPTOGRAPHIC_ALGORITHM,
                Value::Enumeration(kmip_codec::vocab::enums::cryptographic_algorithm::AES),
            ),
            Ttlv::new(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(128)),
            date(tag::ACTIVATION_DATE, 1),
            limits,
        ];
        let r = m.create(ot::SYMMETRIC_KEY, attrs, 2).unwrap();
        let p = || CryptoParams {
            block_cipher_mode: Some(block_cipher_mode::ECB),
            ..Default::default()
        };
        let block = [0u8; 16];
        assert!(m.encrypt(&r.id, p(), &block, None, None, 3).is_ok());
        assert!(m.encrypt(&r.id, p(), &block, None, None, 3).is_ok());
        assert!(matches!(
            m.encrypt(&r.id, p(), &block, None, None, 3),
            Err(LifecycleError::PermissionDenied(_))
        ));
        // processing is not counted
        assert!(m.decrypt(&r.id, p(), &block, None, None, None, 3).is_ok());
        let count = m
            .get(&r.id, 4)
            .unwrap()
            .attribute(tag::USAGE_LIMITS)
            .unwrap()
            .child(tag::USAGE_LIMITS_COUNT)
            .cloned();
        assert_eq!(count.map(|c| c.value), Some(Value::LongInteger(0)));
    }
}

#[cfg(test)]
mod derive_policy_tests {
    use super::*;
    use crate::core::crypto::{CryptoParams, Derivation};
    use crate::core::MasterKey;
    use crate::store::MemoryStore;
    use kmip_codec::vocab::enums::{
        cryptographic_algorithm as alg, derivation_method, hashing_algorithm,
    };

    /// A Pre-Active base key is refused unless the server policy allows it.
    #[test]
    fn derive_from_pre_active_only_under_the_policy() {
        let aes = |len: i32| {
            vec![
                Ttlv::new(tag::CRYPTOGRAPHIC_ALGORITHM, Value::Enumeration(alg::AES)),
                Ttlv::new(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(len)),
            ]
        };
        let d = Derivation {
            method: derivation_method::HMAC,
            params: CryptoParams {
                hashing_algorithm: Some(hashing_algorithm::SHA_256),
                ..Default::default()
            },
            iv: None,
            data: Some(b"context"),
            salt: None,
            iterations: None,
            length: 16,
        };
        for allow in [false, true] {
            let m = Manager::new(
                Arc::new(MemoryStore::new()),
                Core::new(MasterKey::generate().unwrap()),
            )
            .derive_from_pre_active(allow);
            let base = m.create(ot::SYMMETRIC_KEY, aes(256), 1).unwrap();
            assert_eq!(base.state, State::PreActive);
            let got = m.derive_key(ot::SYMMETRIC_KEY, &base.id, &d, aes(128), 2);
            assert_eq!(got.is_ok(), allow, "policy {allow}: {got:?}");
            // an Active base works either way; a Deactivated one never does
            m.activate(&base.id, 3).unwrap();
            assert!(m
                .derive_key(ot::SYMMETRIC_KEY, &base.id, &d, aes(128), 4)
                .is_ok());
            m.revoke(&base.id, rrc::CESSATION_OF_OPERATION, None, None, 5)
                .unwrap();
            assert!(m
                .derive_key(ot::SYMMETRIC_KEY, &base.id, &d, aes(128), 6)
                .is_err());
        }
    }
}
