//! Managed objects: creating, registering, reading, changing state and attributes, finding.
//!
//! [`Manager`] is the lifecycle's front door: it begins a [`Txn`] per message, and every
//! operation is a method of the transaction, in the file of its concern (access, objects,
//! states, attribute changes, locate, usage, certify, rotation, multipart). Time is passed in
//! (`now`, seconds since the epoch) so that the date-driven transitions can be tested;
//! material goes through the core and nowhere else.

use crate::attributes::{self, same_attribute};
use crate::core::{Core, ExportRule, KeySpec, Material, Sealed, Secret};
use crate::state::{self, Event, State};
use crate::store::{item_index_key, Change, Record, Store};
use crate::LifecycleError;
use kmip_codec::vocab::enums::{link_type, object_type as ot, revocation_reason_code as rrc};
use kmip_codec::vocab::tag;
use kmip_codec::{Tag, Ttlv, Value};
use std::sync::Arc;

// one file per concern; each adds methods to Txn
mod access;
/// Dual control: approval requests for the operations a quorum guards.
pub mod approvals;
mod attribute_changes;
mod backup;
pub mod certify;
pub mod implicit;
mod locate;
pub mod multipart;
mod objects;
mod protection;
/// Rotation: Re-key and Re-key Key Pair (KMIP 2.1 sections 6.1.46-47).
pub mod rotation;
mod states;
/// Cryptographic use of stored keys: every use checks state and usage mask first.
pub mod usage;

pub use access::Caller;
pub use approvals::{
    ApprovalEvent, ApprovalExpiry, ApprovalRequest, ApprovalState, NewApproval, APPROVAL_PREFIX,
};
pub use implicit::implicit_attributes;
pub use locate::LocateQuery;
pub use multipart::{Gathered, Part};

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
    /// What happened to approval requests while serving this caller, for the audit log.
    approval_events: Arc<std::sync::Mutex<Vec<ApprovalEvent>>>,
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
    /// The object that changed state.
    pub id: String,
    /// Its state before.
    pub from: State,
    /// Its state now.
    pub to: State,
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

/// Whether an object is in archival storage: Archive sets its Archive Date, Recover removes it.
pub fn is_archived(r: &Record) -> bool {
    r.attribute(tag::ARCHIVE_DATE).is_some()
}

impl Manager {
    /// A manager over `store`, with `core` for key bytes and the default policy.
    pub fn new(store: Arc<dyn Store>, core: Core) -> Manager {
        Manager {
            store,
            core: Arc::new(core),
            policy: Policy::default(),
        }
    }

    /// The manager with `policy` instead of the default.
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

    /// Fetch the records `ids` and reserve `new_ids` identifiers without blocking, for a
    /// message to run over on an async worker ([`Manager::begin_prefetched`]); `None` when
    /// the store has no such path.
    pub async fn prefetch(
        &self,
        ids: Vec<String>,
        new_ids: u64,
    ) -> Option<Arc<crate::store::Prefetched>> {
        crate::store::Prefetched::fetch(&self.store, ids, new_ids)
            .await
            .map(Arc::new)
    }

    /// [`Manager::begin`] over records fetched beforehand: a read of anything else fails, and
    /// [`crate::store::Prefetched::missed`] says the message must run again over the store.
    pub fn begin_prefetched(
        &self,
        caller: Option<Caller>,
        fetched: Arc<crate::store::Prefetched>,
    ) -> Txn {
        let writes = Arc::new(crate::store::Overlay::new(fetched));
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
            approval_events: Arc::default(),
            policy: self.policy,
        }
    }

    /// The key core, for work that needs no object (RNG, hashing).
    pub fn core(&self) -> &Core {
        &self.core
    }

    /// Whether the store waits on a network: then no call of the lifecycle may run on an
    /// async worker.
    pub fn remote(&self) -> bool {
        self.store.remote()
    }

    /// How many objects of each Object Type the store holds (destroyed ones included), read
    /// from the Object Type index: one index range per type, no record decoded.
    pub fn object_counts(&self) -> Result<Vec<(u32, usize)>, LifecycleError> {
        let mut out = Vec::new();
        for t in [
            ot::CERTIFICATE,
            ot::SYMMETRIC_KEY,
            ot::PUBLIC_KEY,
            ot::PRIVATE_KEY,
            ot::SPLIT_KEY,
            ot::TEMPLATE,
            ot::SECRET_DATA,
            ot::OPAQUE_OBJECT,
            ot::PGP_KEY,
            ot::CERTIFICATE_REQUEST,
        ] {
            let key = crate::store::index_key(tag::OBJECT_TYPE, &t.to_be_bytes());
            out.push((t, self.store.lookup(&key)?.len()));
        }
        Ok(out)
    }

    /// Whether requests can be served: the store answers a read, and the master key seals
    /// and unseals.
    pub fn ready(&self) -> Result<(), LifecycleError> {
        self.store.peek("readiness probe")?;
        Ok(self.core.ready()?)
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

    /// [`Txn::commit`] once `check` holds, checked by whoever writes the commit just before
    /// its write transaction (see [`crate::store::Precondition`]), or here when there is
    /// nothing to write; when it fails, nothing is written.
    pub fn commit_checked(self, check: crate::store::Precondition) -> Result<(), LifecycleError> {
        let done = match self.writes {
            Some(w) => w.flush_checked(Some(check)),
            None => crate::store::run_check(&check),
        };
        Ok(done?)
    }

    /// Whether [`Txn::commit_queued`] settles without blocking its thread.
    pub fn queues_commits(&self) -> bool {
        self.writes.as_ref().is_none_or(|w| w.queues())
    }

    /// [`Txn::commit_checked`] for a task on an async worker: the commit joins the store's
    /// next group and the future settles when it is written (see
    /// [`crate::store::Store::queue_commit`]); `spawn` runs the queue's writing on a thread
    /// that may block, if it needs a writer (now, or once the thread writing has its
    /// answer). Where the store cannot queue a commit ([`Txn::queues_commits`]), it is made
    /// here, blocking.
    pub fn commit_queued(
        self,
        check: crate::store::Precondition,
        spawn: impl FnOnce(Box<dyn FnOnce() + Send>) + Send + 'static,
    ) -> crate::store::Queued {
        match &self.writes {
            Some(w) if w.queues() => w.flush_queued(check, spawn),
            Some(w) => crate::store::Queued::ready(w.flush_checked(Some(check))),
            None => crate::store::Queued::ready(crate::store::run_check(&check)),
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
            approval_events: self.approval_events.clone(),
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

    /// The key core, for work that needs no object (RNG, hashing).
    pub fn core(&self) -> &Core {
        &self.core
    }

    fn new_ids(&self, n: u64) -> Result<Vec<String>, LifecycleError> {
        let first = self.store.allocate_ids(n)?;
        Ok((first..first + n).map(|i| i.to_string()).collect())
    }

    fn put(&self, r: &Record) -> Result<(), LifecycleError> {
        self.store.commit(vec![Change::Put(r.clone())])?;
        Ok(())
    }
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
        // a grantee may change the object, but not name it: whether the name is taken among
        // the owner's objects would answer for objects the grantee cannot see
        use kmip_codec::vocab::enums::operation as op;
        let shared = alice
            .create(ot::SYMMETRIC_KEY, aes(128, "shared"), 12)
            .unwrap();
        alice
            .grant(
                &shared.id,
                "bob",
                vec![op::ADD_ATTRIBUTE, op::MODIFY_ATTRIBUTE, op::RE_KEY],
                12,
            )
            .unwrap();
        let denied = |r: Result<Record, LifecycleError>| {
            matches!(r, Err(LifecycleError::PermissionDenied(_)))
        };
        for guess in ["db", "never-used"] {
            let add =
                bob.with_operation(op::ADD_ATTRIBUTE)
                    .add_attribute(&shared.id, name(guess), 13);
            assert!(denied(add), "taken or not, the same answer ({guess})");
            let modify = bob.with_operation(op::MODIFY_ATTRIBUTE).modify_attribute(
                &shared.id,
                None,
                name(guess),
                0,
                13,
            );
            assert!(denied(modify), "{guess}");
            let rekey =
                bob.with_operation(op::RE_KEY)
                    .rekey(&shared.id, None, vec![name(guess)], 13);
            assert!(denied(rekey.map(|_| shared.clone())), "{guess}");
        }
        bob.with_operation(op::ADD_ATTRIBUTE)
            .add_attribute(
                &shared.id,
                Ttlv::new(tag::CONTACT_INFORMATION, Value::TextString("ops".into())),
                14,
            )
            .expect("the grant still serves what it grants");
    }

    /// Modify Attribute replaces an instance of the attribute it modifies, never another one:
    /// every rule reads the new value's attribute, so a Current Attribute of another kind would
    /// delete it unchecked (a grantee's Object Group, a read-only Digest).
    #[test]
    fn modify_replaces_only_the_attribute_it_modifies() {
        use kmip_codec::vocab::enums::operation as op;
        let m = manager();
        let text = |t: Tag, v: &str| Ttlv::new(t, Value::TextString(v.into()));
        let mut attrs = aes(128, "k");
        attrs.push(text(tag::OBJECT_GROUP, "shared"));
        let k = m.create(ot::SYMMETRIC_KEY, attrs, 10).unwrap();
        let contact = text(tag::CONTACT_INFORMATION, "was here");
        let group = text(tag::OBJECT_GROUP, "shared");
        let digest = k
            .attributes
            .iter()
            .find(|a| a.tag == tag::DIGEST)
            .cloned()
            .expect("a generated key has a Digest");
        for current in [&group, &digest] {
            let r = m.modify_attribute(&k.id, Some(current), contact.clone(), 0, 11);
            assert!(
                matches!(r, Err(LifecycleError::InvalidField(_))),
                "{:?} replaced: {r:?}",
                current.tag
            );
        }
        let after = m.get(&k.id, 12).unwrap();
        assert!(after.attributes.contains(&group) && after.attributes.contains(&digest));
        // the same attribute's instance is still replaced
        let renamed = m
            .with_operation(op::MODIFY_ATTRIBUTE)
            .modify_attribute(&k.id, Some(&name("k")), name("k2"), 0, 13)
            .unwrap();
        assert!(renamed.attributes.contains(&name("k2")));
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
