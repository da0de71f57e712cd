//! Managed objects: creating, registering, reading, changing state and attributes, finding.
//!
//! [`Txn`] is the lifecycle's front door. Each method is one store transaction. Time is
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

/// The lifecycle of one server: the store, the core and the policy. Long-lived and shared;
/// every request works through a [`Txn`] it begins.
pub struct Manager {
    store: Arc<dyn Store>,
    core: Arc<Core>,
    policy: Policy,
}

/// One message's transaction, for one caller: every operation of the lifecycle is a method of
/// it. Reads see its own changes; nothing reaches the store until [`Txn::commit`], which is
/// refused when a record it read has changed meanwhile (the message then runs again).
pub struct Txn {
    /// Reads and writes go here: the held-back changes over the store.
    store: Arc<dyn Store>,
    /// The same, to commit; `None` when each change commits by itself ([`Manager::autocommit`]).
    writes: Option<Arc<crate::store::Overlay>>,
    core: Arc<Core>,
    caller: Option<Caller>,
    /// State changes the server made on its own (dates reached) while serving this caller.
    automatic: Arc<std::sync::Mutex<Vec<AutomaticChange>>>,
    policy: Policy,
}

/// Where a server departs from the specification because clients rely on it (PyKMIP's own
/// server and suite): off by default.
#[derive(Clone, Copy, Debug, Default)]
pub struct Policy {
    /// Derive Key may start from a Pre-Active object (see [`state::Usage::DeriveFromPreActive`]).
    pub derive_from_pre_active: bool,
    /// Beyond KMIP (as PKCS#11's CKA_WRAP_WITH_TRUSTED): a Sensitive key leaves only wrapped
    /// by a key an administrator marked trusted (see `protection.rs`). KMIP lets a Sensitive
    /// key leave wrapped by any key the caller may use, one it registered itself included.
    pub wrap_trusted_only: bool,
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
    /// Whole application namespaces this caller was given: (the Application Namespace of
    /// Application Specific Information, operations).
    pub namespaces: Vec<(String, Vec<u32>)>,
}

impl Caller {
    /// The operations a group or namespace grant gives this caller on `r`, if any.
    fn group_ops<'a>(&'a self, r: &'a Record) -> impl Iterator<Item = &'a Vec<u32>> + 'a {
        let groups: Vec<&str> = r
            .attributes
            .iter()
            .filter(|a| a.tag == tag::OBJECT_GROUP)
            .filter_map(Ttlv::as_text)
            .collect();
        let namespaces: Vec<&str> = r
            .attributes
            .iter()
            .filter(|a| a.tag == tag::APPLICATION_SPECIFIC_INFORMATION)
            .filter_map(|a| a.child(tag::APPLICATION_NAMESPACE).and_then(Ttlv::as_text))
            .collect();
        let by_group = self
            .groups
            .iter()
            .filter(move |(g, _)| groups.contains(&g.as_str()))
            .map(|(_, ops)| ops);
        let by_namespace = self
            .namespaces
            .iter()
            .filter(move |(n, _)| namespaces.contains(&n.as_str()))
            .map(|(_, ops)| ops);
        by_group.chain(by_namespace)
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

/// The identifier a record links to with link type `kind`.
pub(crate) fn linked(r: &Record, kind: u32) -> Option<String> {
    kmip_codec::attributes::linked(&r.attributes, kind)
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
    /// Checked between records: a scan stops when its time is up or its client has gone.
    pub budget: crate::Budget,
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
            policy: Policy::default(),
        }
    }

    pub fn policy(mut self, policy: Policy) -> Manager {
        self.policy = policy;
        self
    }

    /// A message's transaction, acting for `caller` (`None`: the server itself, which reaches
    /// every object): what it creates is the caller's, and it reaches only the caller's own
    /// objects unless the caller is an administrator or holds a grant.
    pub fn begin(&self, caller: Option<Caller>) -> Txn {
        let writes = Arc::new(crate::store::Overlay::new(self.store.clone()));
        self.txn(writes.clone(), Some(writes), caller)
    }

    /// A transaction whose every change commits by itself, at once: for tools and tests.
    /// Never for a request, whose changes must wait for its audit record.
    pub fn autocommit(&self, caller: Option<Caller>) -> Txn {
        self.txn(self.store.clone(), None, caller)
    }

    fn txn(
        &self,
        store: Arc<dyn Store>,
        writes: Option<Arc<crate::store::Overlay>>,
        caller: Option<Caller>,
    ) -> Txn {
        Txn {
            store,
            writes,
            core: self.core.clone(),
            caller,
            automatic: Arc::default(),
            policy: self.policy,
        }
    }

    pub fn core(&self) -> &Core {
        &self.core
    }
}

impl Txn {
    /// Make every change of the transaction at once, or none: refused when a record it read
    /// was changed meanwhile by another transaction (`StoreError::Conflict`).
    pub fn commit(self) -> Result<(), LifecycleError> {
        match self.writes {
            Some(w) => Ok(w.flush()?),
            None => Ok(()),
        }
    }

    /// Whether a commit has nothing to write: a message that only read.
    pub fn changes_nothing(&self) -> bool {
        self.writes.as_ref().is_none_or(|w| w.is_empty())
    }

    /// The automatic state changes made so far in this transaction, for the audit log.
    pub fn automatic_changes(&self) -> Vec<AutomaticChange> {
        self.automatic.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// The same transaction acting for another caller: for tools and tests.
    pub fn for_caller(&self, caller: Caller) -> Txn {
        self.sibling(self.store.clone(), Some(caller))
    }

    /// The same transaction for one operation of the caller (grants name operations).
    pub fn with_operation(&self, operation: u32) -> Txn {
        let caller = self.caller.clone().map(|c| Caller {
            operation: Some(operation),
            ..c
        });
        self.sibling(self.store.clone(), caller)
    }

    /// The same transaction over another store (a savepoint's), sharing its automatic changes.
    fn sibling(&self, store: Arc<dyn Store>, caller: Option<Caller>) -> Txn {
        Txn {
            store,
            writes: self.writes.clone(),
            core: self.core.clone(),
            caller,
            automatic: self.automatic.clone(),
            policy: self.policy,
        }
    }

    /// Run `f` from a savepoint: its changes join the transaction when it succeeds and are
    /// dropped when it fails (Batch Error Continuation Option Undo). `f` sees its own changes
    /// and the transaction's.
    pub fn undoable<T, E>(&self, f: impl FnOnce(&Txn) -> Result<T, E>) -> Result<T, E>
    where
        E: From<LifecycleError>,
    {
        let savepoint = Arc::new(crate::store::Overlay::new(self.store.clone()));
        let inner = self.sibling(savepoint.clone(), self.caller.clone());
        let out = f(&inner)?;
        savepoint.flush().map_err(LifecycleError::from)?;
        Ok(out)
    }

    /// The grants on an object, for its owner or an administrator.
    pub fn grants(&self, id: &str, now: i64) -> Result<Vec<(String, Vec<u32>)>, LifecycleError> {
        let r = self.get(id, now)?;
        if !self.owns(&r) {
            return Err(LifecycleError::PermissionDenied(
                "only the owner or an administrator lists grants".into(),
            ));
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

    /// Whether Locate may list `r` for the caller: its owner, an administrator, or a grantee
    /// whose grant (direct or by group) includes Locate or Get Attributes. Locate matches
    /// every attribute, so listing an object answers questions about its values (a usage
    /// mask bit by bit) that only Get Attributes should.
    fn findable(&self, r: &Record) -> bool {
        use kmip_codec::vocab::enums::operation as op;
        self.granted(r, |ops| {
            ops.contains(&op::LOCATE) || ops.contains(&op::GET_ATTRIBUTES)
        })
    }

    /// Whether the caller may perform its operation on a visible `r`.
    fn permitted(&self, r: &Record) -> bool {
        let operation = self.caller.as_ref().and_then(|c| c.operation);
        self.granted(r, |ops| operation.is_some_and(|o| ops.contains(&o)))
    }

    /// Whether the caller owns `r` (or is an administrator, or the server itself): the
    /// authority over who may use it (grants, groups, links) and, for a CA key, over making
    /// new CA records for it (a grantee issues under the owner's, never makes its own).
    pub(super) fn owns(&self, r: &Record) -> bool {
        match &self.caller {
            None => true,
            Some(c) => c.admin || r.owner.as_deref() == Some(c.identity.as_str()),
        }
    }

    /// Whether the caller owns `r` ([`Txn::owns`]) or holds a grant on it, direct or by
    /// group, whose operations `allows`.
    fn granted(&self, r: &Record, allows: impl Fn(&Vec<u32>) -> bool) -> bool {
        match &self.caller {
            Some(c) if !self.owns(r) => {
                r.grants
                    .iter()
                    .any(|(who, ops)| *who == c.identity && allows(ops))
                    || c.group_ops(r).any(&allows)
            }
            _ => true,
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
        if !self.owns(&r) {
            return Err(LifecycleError::PermissionDenied(
                "only the owner or an administrator grants".into(),
            ));
        }
        r.grants.retain(|(who, _)| who != grantee);
        if !operations.is_empty() {
            r.grants.push((grantee.to_owned(), operations));
        }
        self.put(&r)?;
        Ok(r)
    }

    pub fn core(&self) -> &Core {
        &self.core
    }

    fn new_ids(&self, n: u64) -> Result<Vec<String>, LifecycleError> {
        let first = self.store.allocate_ids(n)?;
        Ok((first..first + n).map(|i| i.to_string()).collect())
    }

    /// The Names in `new`, given to object `id` whose other attributes are `own`, may not
    /// repeat one of its names nor each other. Under `--unique-names` (KMIP 2.1 §4.32, within
    /// one owner's objects) nor may another object of the same owner that is not destroyed
    /// hold one (a destroyed object's name may be taken again); by default objects may share
    /// names, as deployed clients expect.
    fn check_names(&self, id: &str, own: &[Ttlv], new: &[Ttlv]) -> Result<(), LifecycleError> {
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
                attrs.extend(certify::name_attributes(v));
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
        self.check_names("", &[], &attrs)?;
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
    fn due_state(r: &Record, now: i64) -> State {
        state::apply_dates(
            r.state,
            get_date(&r.attributes, tag::ACTIVATION_DATE),
            get_date(&r.attributes, tag::DEACTIVATION_DATE),
            now,
        )
    }

    fn dates_due(&self, r: &Record, now: i64) -> bool {
        Self::due_state(r, now) != r.state
    }

    /// The date-driven transitions (Activation and Deactivation Date reached) that are due,
    /// applied and stored.
    fn apply_due_dates(&self, r: &mut Record, now: i64) -> Result<(), LifecycleError> {
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
        if let Some(sealed) = r.sealed.take() {
            // the core's parsed copy goes with the material
            if let Ok(plain) = self.core.unseal(&r.id, &sealed) {
                crate::core::crypto::forget_parsed(&plain);
            }
        }
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
            // VAST adds the Operation Policy Name it created the key with: adding the value
            // the object already has changes nothing and succeeds
            if r.attributes.contains(&item) {
                return Ok(r);
            }
            return Err(LifecycleError::SingleValuedAttribute(item.tag));
        }
        self.may_change_access(&r, item.tag)?;
        self.check_names(id, &r.attributes, std::slice::from_ref(&item))?;
        let before = r.attributes.clone();
        r.attributes.push(item);
        protection::only_tightens(&before, &r.attributes)?;
        implicit::follow_flags(&mut r.attributes);
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
        self.may_change_access(&r, new.tag)?;
        let mut others = r.attributes.clone();
        others.remove(pos);
        self.check_names(id, &others, std::slice::from_ref(&new))?;
        let before = r.attributes.clone();
        r.attributes[pos] = new;
        protection::only_tightens(&before, &r.attributes)?;
        implicit::follow_flags(&mut r.attributes);
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
        self.may_change_access(&r, target.tag)?;
        let before = r.attributes.clone();
        r.attributes.remove(pos);
        protection::only_tightens(&before, &r.attributes)?;
        set_single(&mut r.attributes, date(tag::LAST_CHANGE_DATE, now));
        self.put(&r)?;
        Ok(r)
    }

    /// The identifiers a caller that is not an administrator may know of, from the owner,
    /// grantee, group and namespace indexes; `None` when the caller reaches everything.
    fn reachable(&self) -> Result<Option<Vec<String>>, LifecycleError> {
        use crate::store::{index_key, GRANTEE, OWNER};
        let Some(c) = self.caller.as_ref().filter(|c| !c.admin) else {
            return Ok(None);
        };
        let mut keys = vec![
            index_key(OWNER, c.identity.as_bytes()),
            index_key(GRANTEE, c.identity.as_bytes()),
        ];
        keys.extend(
            c.groups
                .iter()
                .map(|(g, _)| index_key(tag::OBJECT_GROUP, g.as_bytes())),
        );
        keys.extend(
            c.namespaces
                .iter()
                .map(|(n, _)| index_key(tag::APPLICATION_SPECIFIC_INFORMATION, n.as_bytes())),
        );
        let mut v = Vec::new();
        for k in keys {
            v.extend(self.store.lookup(&k)?);
        }
        v.sort();
        v.dedup();
        Ok(Some(v))
    }

    /// Identifiers of the objects that match every criterion, newest first. An indexed
    /// criterion (Name, Object Type, State, algorithm, length, group, certificate type, custom
    /// attribute) narrows the candidates through the index before any record is read.
    pub fn locate(&self, q: &LocateQuery, now: i64) -> Result<Vec<String>, LifecycleError> {
        // a Name criterion may omit the Name Type, which the index does not need
        let narrowed = match q.attributes.iter().find_map(item_index_key) {
            Some(k) => Some(self.store.lookup(&k)?),
            None => None,
        };
        // a caller that is not an administrator reaches only what it owns, was granted, or
        // was given by group: its candidates are cut to those through the indexes, so a
        // foreign record is never read, matched or counted (no oracle on others' values,
        // nor on their existence through time)
        let mut ids = match (self.reachable()?, narrowed) {
            (Some(reach), Some(found)) => {
                let reach: std::collections::HashSet<String> = reach.into_iter().collect();
                found.into_iter().filter(|id| reach.contains(id)).collect()
            }
            (Some(reach), None) => reach,
            (None, Some(found)) => found,
            (None, None) => self.store.all_ids()?,
        };
        ids.sort_by_key(|id| std::cmp::Reverse(id.parse::<u64>().unwrap_or(0)));
        let mut out = Vec::new();
        if q.maximum_items == Some(0) {
            return Ok(out);
        }
        let mut skipped = 0;
        for (n, id) in ids.into_iter().enumerate() {
            if n % 64 == 0 {
                q.budget.check()?;
            }
            let Some(mut r) = self.store.peek(&id)? else {
                continue;
            };
            if self.dates_due(&r, now) {
                // written back: read as a change's base
                let Some(fresh) = self.store.get(&id)? else {
                    continue;
                };
                r = fresh;
                self.apply_due_dates(&mut r, now)?;
            }
            let storage_ok = if r.state.is_destroyed() {
                q.include_destroyed
            } else if is_archived(&r) {
                q.include_archived
            } else {
                !q.exclude_online
            };
            if !self.findable(&r) || !storage_ok || !matches(&r, &q.attributes) {
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
                if !implicit::has_attribute(r, c) {
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

    fn manager() -> Txn {
        Manager::new(
            Arc::new(MemoryStore::new()),
            Core::new(MasterKey::generate().unwrap()),
        )
        .autocommit(None)
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

    /// A manager over a redb store whose names are unique per owner (`--unique-names`).
    fn unique_names_manager() -> Txn {
        let dir = tempfile::tempdir().unwrap().keep();
        let store = RedbStore::open(&dir.join("k.redb"))
            .unwrap()
            .unique_names(true);
        Manager::new(Arc::new(store), Core::new(MasterKey::generate().unwrap())).autocommit(None)
    }

    #[test]
    fn names_are_unique_among_objects_not_destroyed() {
        let m = unique_names_manager();
        let taken = |r: Result<Record, LifecycleError>| matches!(r, Err(LifecycleError::NonUniqueName(n)) if n == "a");
        let a = m.create(ot::SYMMETRIC_KEY, aes(128, "a"), 10).unwrap();
        assert!(taken(m.create(ot::SYMMETRIC_KEY, aes(128, "a"), 11)));
        let b = m.create(ot::SYMMETRIC_KEY, aes(128, "b"), 12).unwrap();
        assert!(taken(m.add_attribute(&b.id, name("a"), 13)));
        assert!(
            taken(m.add_attribute(&a.id, name("a"), 13)),
            "twice on one object"
        );
        assert!(taken(m.modify_attribute(&b.id, None, name("a"), 0, 14)));
        // a replacement takes the name over from the key it replaces
        let a2 = m.rekey(&a.id, None, vec![], 15).unwrap();
        assert!(a2.attributes.contains(&name("a")));
        m.destroy(&a2.id, 16).unwrap();
        m.create(ot::SYMMETRIC_KEY, aes(128, "a"), 17)
            .expect("a destroyed object's name may be taken again");
        // by default objects share names; one object still may not carry a name twice
        let lax = manager();
        let first = lax.create(ot::SYMMETRIC_KEY, aes(128, "a"), 10).unwrap();
        lax.create(ot::SYMMETRIC_KEY, aes(128, "a"), 10)
            .expect("shared names by default");
        assert!(taken(lax.add_attribute(&first.id, name("a"), 11)));
    }

    /// Under --unique-names a name is unique among one owner's objects: another identity may
    /// use it, and learns nothing of it.
    #[test]
    fn unique_names_are_per_owner() {
        let m = unique_names_manager();
        let caller = |who: &str| Caller {
            identity: who.into(),
            admin: false,
            operation: None,
            groups: vec![],
            namespaces: vec![],
        };
        let (alice, bob) = (m.for_caller(caller("alice")), m.for_caller(caller("bob")));
        alice.create(ot::SYMMETRIC_KEY, aes(128, "db"), 10).unwrap();
        bob.create(ot::SYMMETRIC_KEY, aes(128, "db"), 10)
            .expect("bob's own name space");
        assert!(matches!(
            alice.create(ot::SYMMETRIC_KEY, aes(128, "db"), 11),
            Err(LifecycleError::NonUniqueName(_))
        ));
    }

    /// Requests that each find a name free before either commits: the store's check inside
    /// the write transaction lets one of them have it.
    #[test]
    fn concurrent_creates_of_one_name_leave_one_holder() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            RedbStore::open(&dir.path().join("k.redb"))
                .unwrap()
                .unique_names(true),
        );
        let m = Manager::new(store, Core::new(MasterKey::generate().unwrap())).autocommit(None);
        for round in 0..5 {
            let n = format!("race-{round}");
            let outcomes: Vec<Result<Record, LifecycleError>> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..8)
                    .map(|_| s.spawn(|| m.create(ot::SYMMETRIC_KEY, aes(128, &n), 10)))
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 1, "{n}");
            for e in outcomes.into_iter().filter_map(Result::err) {
                assert_eq!(
                    e.result_reason(),
                    kmip_codec::vocab::enums::result_reason::NON_UNIQUE_NAME_ATTRIBUTE,
                    "{e}"
                );
            }
            let holders = m
                .locate(
                    &LocateQuery {
                        attributes: vec![name(&n)],
                        ..Default::default()
                    },
                    11,
                )
                .unwrap();
            assert_eq!(holders.len(), 1);
        }
    }

    /// Two requests read one object, each changes it: the second to commit is refused
    /// (Conflict) rather than writing over the first one's change.
    #[test]
    fn a_racing_read_modify_write_is_refused_not_lost() {
        for store in [
            Arc::new(MemoryStore::new()) as Arc<dyn crate::store::Store>,
            Arc::new(RedbStore::open(&tempfile::tempdir().unwrap().keep().join("k.redb")).unwrap()),
        ] {
            let manager = Manager::new(store, Core::new(MasterKey::generate().unwrap()));
            let m = manager.autocommit(None);
            let r = m.create(ot::SYMMETRIC_KEY, aes(128, "shared"), 10).unwrap();
            let add = |n: &str| {
                let t = manager.begin(None);
                t.add_attribute(&r.id, text(tag::OBJECT_GROUP, n), 11)
                    .unwrap();
                t
            };
            let (first, second) = (add("g1"), add("g2"));
            first.commit().unwrap();
            assert!(matches!(
                second.commit(),
                Err(LifecycleError::Store(crate::store::StoreError::Conflict(_)))
            ));
            let groups: Vec<_> = m
                .get(&r.id, 12)
                .unwrap()
                .attributes
                .into_iter()
                .filter(|a| a.tag == tag::OBJECT_GROUP)
                .collect();
            assert_eq!(groups, vec![text(tag::OBJECT_GROUP, "g1")]);
        }
    }

    /// A Locate scan stops at its budget: when its client has gone (Canceled) or its time is
    /// up (OutOfTime); Maximum Items still ends it first.
    #[test]
    fn locate_stops_at_its_budget() {
        let m = manager();
        for i in 0..3 {
            m.create(ot::SYMMETRIC_KEY, aes(128, &format!("k{i}")), 10)
                .unwrap();
        }
        let stop = crate::Stop::default();
        let q = |budget| LocateQuery {
            budget,
            ..Default::default()
        };
        let minute = std::time::Duration::from_secs(60);
        assert_eq!(
            m.locate(&q(crate::Budget::new(minute, stop.clone())), 20)
                .unwrap()
                .len(),
            3
        );
        stop.raise();
        assert!(matches!(
            m.locate(&q(crate::Budget::new(minute, stop)), 20),
            Err(LifecycleError::Canceled)
        ));
        let spent = crate::Budget::new(std::time::Duration::ZERO, crate::Stop::default());
        assert!(matches!(
            m.locate(&q(spent), 20),
            Err(LifecycleError::OutOfTime(_))
        ));
    }

    #[test]
    fn locate_filters_and_orders() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("k.redb")).unwrap();
        let m = Manager::new(Arc::new(store), Core::new(MasterKey::generate().unwrap()))
            .autocommit(None);
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
pub mod usage;

/// Rotation: Re-key and Re-key Key Pair (KMIP 2.1 sections 6.1.46-47).
pub mod rotation;

pub mod certify;
pub mod multipart;
pub use multipart::{Gathered, Part};
pub mod implicit;
mod protection;
pub use implicit::implicit_attributes;

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
            .autocommit(None)
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
        )
        .autocommit(None);
        let who = |n: &str, admin| {
            base.for_caller(Caller {
                identity: n.into(),
                admin,
                operation: None,
                groups: Vec::new(),
                namespaces: Vec::new(),
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
        )
        .autocommit(None);
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
mod quantum_safe_tests {
    use super::*;
    use crate::core::MasterKey;
    use crate::store::MemoryStore;
    use kmip_codec::vocab::enums::cryptographic_algorithm as alg;

    #[test]
    fn only_keys_that_resist_a_quantum_computer_are_made_quantum_safe() {
        let m = Manager::new(
            Arc::new(MemoryStore::new()),
            Core::new(MasterKey::generate().unwrap()),
        )
        .autocommit(None);
        let aes = |bits: i32| {
            vec![
                Ttlv::new(tag::CRYPTOGRAPHIC_ALGORITHM, Value::Enumeration(alg::AES)),
                Ttlv::new(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(bits)),
                boolean(tag::QUANTUM_SAFE, true),
            ]
        };
        assert!(m.create(ot::SYMMETRIC_KEY, aes(256), 1).is_ok());
        assert!(matches!(
            m.create(ot::SYMMETRIC_KEY, aes(128), 1),
            Err(LifecycleError::NotQuantumSafe)
        ));
        let rsa = vec![
            Ttlv::new(tag::CRYPTOGRAPHIC_ALGORITHM, Value::Enumeration(alg::RSA)),
            Ttlv::new(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(2048)),
            boolean(tag::QUANTUM_SAFE, true),
        ];
        assert!(matches!(
            m.create_key_pair(rsa, vec![], vec![], 1),
            Err(LifecycleError::NotQuantumSafe)
        ));
    }
}
