//! Dual control: requests for an operation a quorum guards, and the administrators' approvals
//! and denials of them. Each request is a named value of the store (`approval/<id>`, JSON),
//! written in the message's transaction: it survives restarts, is in backups, is seen by every
//! node of a shared store, and two messages changing one request at once conflict (the later
//! runs again and sees the first's change), so an approval is never counted or used twice.
//!
//! The server decides which operations need a quorum and runs them; this facet keeps the
//! rules that hold whatever the transport: distinct administrators, never the requester, one
//! approval per administrator, expiry, and one use of an approval.

use super::*;
use serde_json::{json, Value as J};

/// Where requests are stored among the store's named values.
pub const APPROVAL_PREFIX: &str = "approval/";

/// Where the identifier of the request a synchronous client's exact request opened is kept
/// (one value per requester, operation, object and payload): the one value two identical
/// requests sent at the same moment both read and write, so that the store lets one of them
/// open a request and runs the other again, to find it.
const SLOT_PREFIX: &str = "approval-slot/";

fn slot_name(requester: &str, what: &NewApproval) -> String {
    let mut h = openssl::sha::Sha256::new();
    for part in [
        requester.as_bytes(),
        &what.operation.to_be_bytes(),
        what.object.as_bytes(),
        what.digest.as_bytes(),
    ] {
        h.update(&(part.len() as u64).to_be_bytes());
        h.update(part);
    }
    format!("{SLOT_PREFIX}{}", hex(&h.finish()))
}

/// Where each request is filed under its requester (`approval-of/<SHA-256 of the
/// requester>/<id>`, empty): a new request counts the requester's own requests against the
/// limits below, where it read every identity's.
const BY_REQUESTER_PREFIX: &str = "approval-of/";

/// Present once the requests stored before [`BY_REQUESTER_PREFIX`] existed are filed there.
const BY_REQUESTER_FILED: &str = "approval-of-filed";

fn by_requester(requester: &str) -> String {
    format!(
        "{BY_REQUESTER_PREFIX}{}/",
        hex(&openssl::sha::sha256(requester.as_bytes()))
    )
}

/// The most open requests one identity may have: a compromised client must not bury the
/// custodians' list.
pub const MAX_OPEN_PER_REQUESTER: usize = 100;

/// The most requests one identity may have kept, open or closed (closed ones are kept for
/// as long as a request may wait, for the custodians' list): each is read by its
/// requester's every new request and by every listing, so an identity opening and canceling
/// requests in a loop would otherwise slow its own requests and the listing without bound.
pub const MAX_KEPT_PER_REQUESTER: usize = 200;

/// The largest request payload a request for approvals keeps (the guarded operations' own
/// payloads are a few hundred bytes): one padded to the message size limit, kept and read by
/// every guarded request, would be work bought cheaply.
pub const MAX_REQUEST_PAYLOAD: usize = 16 * 1024;

fn parse_request(bytes: &[u8]) -> Option<ApprovalRequest> {
    serde_json::from_slice::<J>(bytes)
        .ok()
        .and_then(|v| ApprovalRequest::from_json(&v))
}

/// Where a request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApprovalState {
    /// Waiting for approvals.
    Pending,
    /// Enough administrators approved: the operation may run once.
    Approved,
    /// An administrator refused it.
    Denied,
    /// The requester withdrew it (Cancel).
    Canceled,
    /// It waited too long for approvals, or its approval was not used in time.
    Expired,
    /// The operation ran.
    Executed,
}

impl ApprovalState {
    /// The name in the store, the audit log and the admin CLI.
    pub fn name(self) -> &'static str {
        match self {
            ApprovalState::Pending => "pending",
            ApprovalState::Approved => "approved",
            ApprovalState::Denied => "denied",
            ApprovalState::Canceled => "canceled",
            ApprovalState::Expired => "expired",
            ApprovalState::Executed => "executed",
        }
    }

    fn parse(s: &str) -> Option<ApprovalState> {
        [
            ApprovalState::Pending,
            ApprovalState::Approved,
            ApprovalState::Denied,
            ApprovalState::Canceled,
            ApprovalState::Expired,
            ApprovalState::Executed,
        ]
        .into_iter()
        .find(|st| st.name() == s)
    }

    /// Whether the request can still lead to its operation.
    pub fn open(self) -> bool {
        matches!(self, ApprovalState::Pending | ApprovalState::Approved)
    }
}

/// How long requests live, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApprovalExpiry {
    /// A request waits this long for its approvals.
    pub pending: i64,
    /// An approved request must be used within this long of its last needed approval.
    pub approved: i64,
}

impl Default for ApprovalExpiry {
    fn default() -> ApprovalExpiry {
        ApprovalExpiry {
            pending: 24 * 3600,
            approved: 3600,
        }
    }
}

/// What a new request is for: filled in by the server, which knows the quorum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewApproval {
    /// The KMIP operation.
    pub operation: u32,
    /// The object it acts on.
    pub object: String,
    /// The Object Group whose quorum applies.
    pub group: String,
    /// How many administrators must approve.
    pub needed: usize,
    /// Identifies the exact request (payload and object), so that an approval lets that
    /// request through and no other.
    pub digest: String,
    /// The encoded request payload, which Poll runs once approved.
    pub payload: Vec<u8>,
    /// Whether the client waits with Poll (else it sends the same request again).
    pub asynchronous: bool,
}

/// A request for an operation that needs approvals, and where it stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalRequest {
    /// Random, unguessable: also the Asynchronous Correlation Value.
    pub id: String,
    /// Who asked.
    pub requester: String,
    /// When, in seconds since the epoch.
    pub created: i64,
    /// What for.
    pub what: NewApproval,
    /// Who approved, and when; each administrator once.
    pub approvals: Vec<(String, i64)>,
    /// When the last needed approval came in.
    pub approved_at: Option<i64>,
    /// Where it stands.
    pub state: ApprovalState,
    /// When it left the open states, and who made it leave (an administrator, the requester,
    /// or "server" for an expiry).
    pub finished: Option<(i64, String)>,
}

impl ApprovalRequest {
    /// When it expires if nothing happens: unapproved, or approved and unused.
    pub fn expires(&self, expiry: ApprovalExpiry) -> i64 {
        match self.approved_at {
            Some(at) => at.saturating_add(expiry.approved),
            None => self.created.saturating_add(expiry.pending),
        }
    }

    fn to_json(&self) -> J {
        json!({
            "id": self.id,
            "requester": self.requester,
            "created": self.created,
            "operation": self.what.operation,
            "object": self.what.object,
            "group": self.what.group,
            "needed": self.what.needed,
            "digest": self.what.digest,
            "payload": hex(&self.what.payload),
            "asynchronous": self.what.asynchronous,
            "approvals": self.approvals.iter().map(|(who, at)| json!([who, at])).collect::<Vec<_>>(),
            "approved_at": self.approved_at,
            "state": self.state.name(),
            "finished": self.finished.as_ref().map(|(at, by)| json!([at, by])),
        })
    }

    fn from_json(v: &J) -> Option<ApprovalRequest> {
        let s = |k: &str| v.get(k).and_then(J::as_str).map(str::to_owned);
        let i = |k: &str| v.get(k).and_then(J::as_i64);
        let pair = |p: &J| Some((p.get(1)?.as_str()?.to_owned(), p.get(0)?.as_i64()?));
        Some(ApprovalRequest {
            id: s("id")?,
            requester: s("requester")?,
            created: i("created")?,
            what: NewApproval {
                operation: u32::try_from(i("operation")?).ok()?,
                object: s("object")?,
                group: s("group")?,
                needed: usize::try_from(i("needed")?).ok()?,
                digest: s("digest")?,
                payload: unhex(&s("payload")?)?,
                asynchronous: v.get("asynchronous")?.as_bool()?,
            },
            approvals: v
                .get("approvals")?
                .as_array()?
                .iter()
                .map(|a| Some((a.get(0)?.as_str()?.to_owned(), a.get(1)?.as_i64()?)))
                .collect::<Option<_>>()?,
            approved_at: i("approved_at"),
            state: ApprovalState::parse(&s("state")?)?,
            finished: v
                .get("finished")
                .and_then(|f| pair(f).map(|(by, at)| (at, by))),
        })
    }
}

/// What happened to a request, for the audit record of the message that made it happen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalEvent {
    /// requested, approved (one administrator's), quorum reached, denied, canceled, expired,
    /// executed.
    pub event: &'static str,
    /// Who did it ("server" for an expiry).
    pub by: String,
    /// The request as it is after the event.
    pub request: ApprovalRequest,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

impl Txn {
    fn identity(&self) -> String {
        self.caller
            .as_ref()
            .map_or_else(|| "server".to_owned(), |c| c.identity.clone())
    }

    fn is_admin(&self) -> bool {
        self.caller.as_ref().is_none_or(|c| c.admin)
    }

    fn event(&self, event: &'static str, by: String, request: &ApprovalRequest) {
        if let Ok(mut v) = self.approval_events.lock() {
            v.push(ApprovalEvent {
                event,
                by,
                request: request.clone(),
            });
        }
    }

    /// What happened to approval requests in this transaction, for the audit log.
    pub fn approval_events(&self) -> Vec<ApprovalEvent> {
        self.approval_events
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default()
    }

    /// File under their requesters the requests stored before requests were filed so (once
    /// per store: a later run finds the mark and reads nothing more).
    fn file_requests_by_requester(&self) -> Result<(), LifecycleError> {
        if self.store.value(BY_REQUESTER_FILED)?.is_some() {
            return Ok(());
        }
        let mut changes: Vec<Change> = self
            .store
            .values_with_prefix(APPROVAL_PREFIX)?
            .iter()
            .filter_map(|(_, bytes)| parse_request(bytes))
            .map(|r| {
                Change::PutValue(
                    format!("{}{}", by_requester(&r.requester), r.id),
                    Vec::new(),
                )
            })
            .collect();
        changes.push(Change::PutValue(BY_REQUESTER_FILED.into(), vec![1]));
        self.store.commit(changes)?;
        Ok(())
    }

    fn save_approval(&self, r: &ApprovalRequest) -> Result<(), LifecycleError> {
        self.save_approval_in(&*self.store, r)
    }

    fn save_approval_in(
        &self,
        store: &dyn Store,
        r: &ApprovalRequest,
    ) -> Result<(), LifecycleError> {
        let bytes = serde_json::to_vec(&r.to_json())
            .map_err(|e| LifecycleError::InvalidField(format!("approval request: {e}")))?;
        store.commit(vec![Change::PutValue(
            format!("{APPROVAL_PREFIX}{}", r.id),
            bytes,
        )])?;
        Ok(())
    }

    /// Whether `object` is one the caller may perform its operation on: only then does a
    /// request for a quorum make sense (an identity that could not do it anyway gets the
    /// operation's own refusal, and learns nothing of the object). The object's groups then.
    pub fn quorum_groups(&self, object: &str) -> Result<Option<Vec<String>>, LifecycleError> {
        let Some(r) = self.store.get(object)? else {
            return Ok(None);
        };
        // a destroyed object has no material left to guard: the operation's own answer
        let destroyed = matches!(r.state, State::Destroyed | State::DestroyedCompromised);
        if destroyed || !self.visible(&r) || !self.permitted(&r) {
            return Ok(None);
        }
        Ok(Some(
            r.attributes
                .iter()
                .filter(|a| a.tag == tag::OBJECT_GROUP)
                .filter_map(Ttlv::as_text)
                .map(str::to_owned)
                .collect(),
        ))
    }

    /// Record a request of the caller for an operation that needs approvals.
    pub fn request_approval(
        &self,
        what: NewApproval,
        now: i64,
    ) -> Result<ApprovalRequest, LifecycleError> {
        let me = self.identity();
        if what.payload.len() > MAX_REQUEST_PAYLOAD {
            return Err(LifecycleError::InvalidField(format!(
                "a request waiting for approvals is at most {MAX_REQUEST_PAYLOAD} bytes"
            )));
        }
        self.file_requests_by_requester()?;
        // the caller's own requests only: their number is bounded below, every identity's
        // is not
        let filed = by_requester(&me);
        let mut mine: Vec<ApprovalState> = Vec::new();
        for (name, _) in self.store.values_with_prefix(&filed)? {
            let id = &name[filed.len()..];
            let Some(bytes) = self.store.value(&format!("{APPROVAL_PREFIX}{id}"))? else {
                continue;
            };
            if let Some(r) = parse_request(&bytes) {
                mine.push(r.state);
            }
        }
        if mine.iter().filter(|s| s.open()).count() >= MAX_OPEN_PER_REQUESTER {
            return Err(LifecycleError::TooManyApprovalRequests(
                MAX_OPEN_PER_REQUESTER,
            ));
        }
        if mine.len() >= MAX_KEPT_PER_REQUESTER {
            return Err(LifecycleError::TooManyApprovalRequests(
                MAX_KEPT_PER_REQUESTER,
            ));
        }
        let id = hex(self.core.random(8)?.expose());
        let r = ApprovalRequest {
            id,
            requester: me,
            created: now,
            what,
            approvals: Vec::new(),
            approved_at: None,
            state: ApprovalState::Pending,
            finished: None,
        };
        // into the message's changes, past any savepoint: a request refused because it waits
        // for approvals fails its item, and an undone batch (Undo) must not take back the
        // approval request its answer names
        let store: &dyn Store = match &self.writes {
            Some(message) => &**message,
            None => &*self.store,
        };
        self.save_approval_in(store, &r)?;
        store.commit(vec![Change::PutValue(
            format!("{filed}{}", r.id),
            Vec::new(),
        )])?;
        if !r.what.asynchronous {
            store.commit(vec![Change::PutValue(
                slot_name(&r.requester, &r.what),
                r.id.clone().into_bytes(),
            )])?;
        }
        self.event("requested", r.requester.clone(), &r);
        Ok(r)
    }

    /// A request by its identifier, expired first if its time has come.
    pub fn approval(
        &self,
        id: &str,
        expiry: ApprovalExpiry,
        now: i64,
    ) -> Result<Option<ApprovalRequest>, LifecycleError> {
        // the identifier becomes part of a store name: nothing that could reach another's
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let Some(bytes) = self.store.value(&format!("{APPROVAL_PREFIX}{id}"))? else {
            return Ok(None);
        };
        let mut r = serde_json::from_slice::<J>(&bytes)
            .ok()
            .as_ref()
            .and_then(ApprovalRequest::from_json)
            .ok_or_else(|| {
                LifecycleError::Store(crate::store::StoreError::Corrupt(format!(
                    "approval request {id}"
                )))
            })?;
        if r.state.open() && now > r.expires(expiry) {
            r.state = ApprovalState::Expired;
            r.finished = Some((now, "server".into()));
            self.save_approval(&r)?;
            self.event("expired", "server".into(), &r);
        }
        Ok(Some(r))
    }

    fn open_approval(
        &self,
        id: &str,
        expiry: ApprovalExpiry,
        now: i64,
    ) -> Result<ApprovalRequest, LifecycleError> {
        let r = self
            .approval(id, expiry, now)?
            .ok_or_else(|| LifecycleError::ApprovalNotFound(id.to_owned()))?;
        if !r.state.open() {
            return Err(LifecycleError::PermissionDenied(format!(
                "approval request {id} is {}",
                r.state.name()
            )));
        }
        Ok(r)
    }

    /// The caller's open request that is exactly this one (same operation, object and
    /// digest), made without Poll: what a client that sends the same request again finds.
    pub fn matching_approval(
        &self,
        what: &NewApproval,
        expiry: ApprovalExpiry,
        now: i64,
    ) -> Result<Option<ApprovalRequest>, LifecycleError> {
        let me = self.identity();
        // read by name, absent or not: a read the commit checks, so that two messages opening
        // or using the one request conflict
        let Some(id) = self.store.value(&slot_name(&me, what))? else {
            return Ok(None);
        };
        let id = String::from_utf8_lossy(&id).into_owned();
        Ok(self.approval(&id, expiry, now)?.filter(|r| {
            r.state.open()
                && r.requester == me
                && !r.what.asynchronous
                && r.what.operation == what.operation
                && r.what.object == what.object
                && r.what.digest == what.digest
        }))
    }

    /// An administrator approves a request. Another administrator than the requester; one
    /// administrator's second approval changes nothing. Whether this approval counted.
    pub fn approve(
        &self,
        id: &str,
        expiry: ApprovalExpiry,
        now: i64,
    ) -> Result<(ApprovalRequest, bool), LifecycleError> {
        if !self.is_admin() {
            return Err(LifecycleError::PermissionDenied(
                "only an administrator approves requests".into(),
            ));
        }
        let mut r = self.open_approval(id, expiry, now)?;
        let me = self.identity();
        if r.requester == me {
            return Err(LifecycleError::PermissionDenied(format!(
                "approval request {id} is yours: another administrator approves it"
            )));
        }
        if r.approvals.iter().any(|(who, _)| *who == me) || r.state == ApprovalState::Approved {
            return Ok((r, false));
        }
        r.approvals.push((me.clone(), now));
        self.event("approved", me.clone(), &r);
        if r.approvals.len() >= r.what.needed {
            r.state = ApprovalState::Approved;
            r.approved_at = Some(now);
            self.event("quorum reached", me, &r);
        }
        self.save_approval(&r)?;
        Ok((r, true))
    }

    /// An administrator refuses a request; it can no longer lead to its operation.
    pub fn deny(
        &self,
        id: &str,
        expiry: ApprovalExpiry,
        now: i64,
    ) -> Result<ApprovalRequest, LifecycleError> {
        if !self.is_admin() {
            return Err(LifecycleError::PermissionDenied(
                "only an administrator denies requests".into(),
            ));
        }
        let mut r = self.open_approval(id, expiry, now)?;
        let me = self.identity();
        r.state = ApprovalState::Denied;
        r.finished = Some((now, me.clone()));
        self.save_approval(&r)?;
        self.event("denied", me, &r);
        Ok(r)
    }

    /// The requester withdraws an open request. Its state before, or `None` when the caller
    /// has no such request.
    pub fn cancel_approval(
        &self,
        id: &str,
        expiry: ApprovalExpiry,
        now: i64,
    ) -> Result<Option<ApprovalState>, LifecycleError> {
        let me = self.identity();
        let Some(mut r) = self
            .approval(id, expiry, now)?
            .filter(|r| r.requester == me)
        else {
            return Ok(None);
        };
        let before = r.state;
        if before.open() {
            r.state = ApprovalState::Canceled;
            r.finished = Some((now, me.clone()));
            self.save_approval(&r)?;
            self.event("canceled", me, &r);
        }
        Ok(Some(before))
    }

    /// The approved request's operation ran: the approval is used up.
    pub fn consume_approval(
        &self,
        id: &str,
        expiry: ApprovalExpiry,
        now: i64,
    ) -> Result<ApprovalRequest, LifecycleError> {
        let r = self.open_approval(id, expiry, now)?;
        self.consume_read_approval(r, now)
    }

    /// [`Txn::consume_approval`] of the request as this transaction read it (found by
    /// [`Txn::matching_approval`] or by its identifier): not read again, so that a message
    /// whose request another message used meanwhile loses a race on its record (and runs
    /// again, to find the request used), where a second read named the used request in a
    /// refusal.
    pub fn consume_read_approval(
        &self,
        mut r: ApprovalRequest,
        now: i64,
    ) -> Result<ApprovalRequest, LifecycleError> {
        if r.state != ApprovalState::Approved {
            return Err(LifecycleError::PermissionDenied(format!(
                "approval request {} is {}",
                r.id,
                r.state.name()
            )));
        }
        r.state = ApprovalState::Executed;
        r.finished = Some((now, self.identity()));
        self.save_approval(&r)?;
        if !r.what.asynchronous {
            // the request it named has run: the same request again opens a new one
            self.store
                .commit(vec![Change::DeleteValue(slot_name(&r.requester, &r.what))])?;
        }
        self.event("executed", self.identity(), &r);
        Ok(r)
    }

    /// The open requests, for an administrator, oldest first. Those whose time has come
    /// expire on the way (and are audited so); those closed longer ago than a request may
    /// wait are forgotten.
    pub fn open_approvals(
        &self,
        expiry: ApprovalExpiry,
        now: i64,
    ) -> Result<Vec<ApprovalRequest>, LifecycleError> {
        if !self.is_admin() {
            return Err(LifecycleError::PermissionDenied(
                "only an administrator lists approval requests".into(),
            ));
        }
        let mut out = Vec::new();
        for (name, _) in self.store.values_with_prefix(APPROVAL_PREFIX)? {
            let id = name.trim_start_matches(APPROVAL_PREFIX);
            let Some(r) = self.approval(id, expiry, now)? else {
                continue;
            };
            match r.finished {
                _ if r.state.open() => out.push(r),
                Some((at, _)) if now > at.saturating_add(expiry.pending) => {
                    self.store.commit(vec![
                        Change::DeleteValue(name.clone()),
                        Change::DeleteValue(format!("{}{}", by_requester(&r.requester), r.id)),
                    ])?;
                }
                _ => {}
            }
        }
        out.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::MasterKey;
    use crate::store::MemoryStore;
    use kmip_codec::vocab::enums::operation as op;

    const EXPIRY: ApprovalExpiry = ApprovalExpiry {
        pending: 100,
        approved: 10,
    };

    fn manager() -> Manager {
        Manager::new(
            Arc::new(MemoryStore::new()),
            Core::new(MasterKey::generate().unwrap()),
        )
    }

    fn caller(who: &str, admin: bool) -> Caller {
        Caller {
            identity: who.into(),
            admin,
            operation: None,
            groups: vec![],
            namespaces: vec![],
        }
    }

    fn what() -> NewApproval {
        NewApproval {
            operation: op::DESTROY,
            object: "7".into(),
            group: "payments".into(),
            needed: 2,
            digest: "d1".into(),
            payload: vec![1, 2, 3],
            asynchronous: false,
        }
    }

    fn as_(m: &Manager, who: &str, admin: bool) -> Txn {
        m.autocommit(Some(caller(who, admin)))
    }

    /// Two identical synchronous requests in two messages at once: each finds no request and
    /// opens one, but both read and write the one slot, so the store lets one commit and the
    /// other (run again by the server) finds that request.
    #[test]
    fn two_identical_requests_at_once_open_one() {
        let m = manager();
        let message = || m.begin(Some(caller("alice", false)));
        let (a, b) = (message(), message());
        for t in [&a, &b] {
            assert!(t.matching_approval(&what(), EXPIRY, 10).unwrap().is_none());
            t.request_approval(what(), 10).unwrap();
        }
        a.commit().unwrap();
        assert!(
            matches!(
                b.commit(),
                Err(LifecycleError::Store(crate::store::StoreError::Conflict(_)))
            ),
            "the second request was opened beside the first"
        );
        let found = message().matching_approval(&what(), EXPIRY, 11).unwrap();
        assert!(
            found.is_some(),
            "the request sent again finds the one opened"
        );
        let other = NewApproval {
            digest: "d2".into(),
            ..what()
        };
        assert!(message()
            .matching_approval(&other, EXPIRY, 11)
            .unwrap()
            .is_none());
    }

    #[test]
    fn two_distinct_administrators_approve_never_the_requester_and_once_each() {
        let m = manager();
        let r = as_(&m, "alice", true).request_approval(what(), 0).unwrap();
        assert_eq!(r.id.len(), 16);
        let own = as_(&m, "alice", true).approve(&r.id, EXPIRY, 1);
        assert!(matches!(own, Err(LifecycleError::PermissionDenied(_))));
        let not_admin = as_(&m, "mallory", false).approve(&r.id, EXPIRY, 1);
        assert!(matches!(
            not_admin,
            Err(LifecycleError::PermissionDenied(_))
        ));
        let (r1, counted) = as_(&m, "bob", true).approve(&r.id, EXPIRY, 2).unwrap();
        assert!(counted);
        let (r2, counted) = as_(&m, "bob", true).approve(&r.id, EXPIRY, 3).unwrap();
        assert!(!counted);
        assert_eq!(r1, r2);
        assert_eq!(r2.state, ApprovalState::Pending);
        let (r3, counted) = as_(&m, "carol", true).approve(&r.id, EXPIRY, 4).unwrap();
        assert!(counted);
        assert_eq!(r3.state, ApprovalState::Approved);
        assert_eq!(r3.approved_at, Some(4));
        assert_eq!(
            r3.approvals,
            vec![("bob".to_owned(), 2), ("carol".to_owned(), 4)]
        );
        // the requester finds it by the same request, and uses it once
        let alice = as_(&m, "alice", true);
        let found = alice
            .matching_approval(&what(), EXPIRY, 5)
            .unwrap()
            .unwrap();
        assert_eq!(found.id, r.id);
        let other = NewApproval {
            digest: "d2".into(),
            ..what()
        };
        assert!(alice
            .matching_approval(&other, EXPIRY, 5)
            .unwrap()
            .is_none());
        assert!(as_(&m, "bob", true)
            .matching_approval(&what(), EXPIRY, 5)
            .unwrap()
            .is_none());
        alice.consume_approval(&r.id, EXPIRY, 6).unwrap();
        assert!(alice.consume_approval(&r.id, EXPIRY, 6).is_err());
        assert!(alice
            .matching_approval(&what(), EXPIRY, 7)
            .unwrap()
            .is_none());
    }

    #[test]
    fn requests_expire_unapproved_and_approved_unused() {
        let m = manager();
        let alice = as_(&m, "alice", false);
        let r = alice.request_approval(what(), 0).unwrap();
        let admin = as_(&m, "bob", true);
        assert_eq!(admin.open_approvals(EXPIRY, 100).unwrap().len(), 1);
        assert!(admin.open_approvals(EXPIRY, 101).unwrap().is_empty());
        let after = admin.approval(&r.id, EXPIRY, 101).unwrap().unwrap();
        assert_eq!(after.state, ApprovalState::Expired);
        assert!(admin.approve(&r.id, EXPIRY, 101).is_err());

        let r = alice.request_approval(what(), 200).unwrap();
        as_(&m, "bob", true).approve(&r.id, EXPIRY, 201).unwrap();
        as_(&m, "carol", true).approve(&r.id, EXPIRY, 202).unwrap();
        assert!(alice.consume_approval(&r.id, EXPIRY, 213).is_err());
        let events = alice.approval_events();
        assert!(events.iter().any(|e| e.event == "expired"), "{events:?}");
    }

    #[test]
    fn deny_and_cancel_close_a_request() {
        let m = manager();
        let alice = as_(&m, "alice", false);
        let r = alice.request_approval(what(), 0).unwrap();
        assert!(as_(&m, "alice", false).deny(&r.id, EXPIRY, 1).is_err());
        let denied = as_(&m, "bob", true).deny(&r.id, EXPIRY, 1).unwrap();
        assert_eq!(denied.state, ApprovalState::Denied);
        assert!(as_(&m, "carol", true).approve(&r.id, EXPIRY, 2).is_err());
        let r = alice.request_approval(what(), 3).unwrap();
        assert_eq!(
            as_(&m, "eve", false)
                .cancel_approval(&r.id, EXPIRY, 4)
                .unwrap(),
            None
        );
        assert_eq!(
            alice.cancel_approval(&r.id, EXPIRY, 4).unwrap(),
            Some(ApprovalState::Pending)
        );
        let closed = as_(&m, "bob", true).approval(&r.id, EXPIRY, 5).unwrap();
        assert_eq!(closed.map(|r| r.state), Some(ApprovalState::Canceled));
        // an identifier that could name another value is none
        assert!(alice.approval("../x", EXPIRY, 5).unwrap().is_none());
    }

    #[test]
    fn one_identity_has_a_bounded_number_of_open_requests() {
        let m = manager();
        let alice = as_(&m, "alice", false);
        let first = alice.request_approval(what(), 0).unwrap();
        for _ in 1..MAX_OPEN_PER_REQUESTER {
            alice.request_approval(what(), 0).unwrap();
        }
        assert!(matches!(
            alice.request_approval(what(), 0),
            Err(LifecycleError::TooManyApprovalRequests(_))
        ));
        // others are not held back by alice, and a closed request makes room
        as_(&m, "bob", false).request_approval(what(), 0).unwrap();
        as_(&m, "carol", true).deny(&first.id, EXPIRY, 1).unwrap();
        alice.request_approval(what(), 1).unwrap();
        // requests opened and canceled in a loop: closed ones count too, up to a bound, as
        // every guarded request and every listing reads them
        let bob = as_(&m, "bob", false);
        let mut refused = None;
        for i in 0..MAX_KEPT_PER_REQUESTER + 1 {
            match bob.request_approval(what(), 2) {
                Ok(r) => {
                    bob.cancel_approval(&r.id, EXPIRY, 2).unwrap();
                }
                Err(e) => {
                    refused = Some((i, e));
                    break;
                }
            }
        }
        assert!(
            matches!(refused, Some((n, LifecycleError::TooManyApprovalRequests(_))) if n == MAX_KEPT_PER_REQUESTER - 1),
            "{refused:?}"
        );
        // and a request padded past any guarded operation's payload is not kept
        let padded = NewApproval {
            payload: vec![0; MAX_REQUEST_PAYLOAD + 1],
            ..what()
        };
        assert!(matches!(
            as_(&m, "carol", false).request_approval(padded, 3),
            Err(LifecycleError::InvalidField(_))
        ));
    }

    /// Requests stored before they were filed by requester count against their requester's
    /// limit all the same, and requests forgotten make room again.
    #[test]
    fn a_new_request_counts_the_requesters_own_requests_stored_before_the_index() {
        let store = Arc::new(MemoryStore::new());
        let m = Manager::new(store.clone(), Core::new(MasterKey::generate().unwrap()));
        // as an older server stored them: the record alone
        let legacy: Vec<Change> = (0..MAX_KEPT_PER_REQUESTER)
            .map(|i| {
                let r = ApprovalRequest {
                    id: format!("{i:016x}"),
                    requester: "alice".into(),
                    created: 0,
                    what: what(),
                    approvals: Vec::new(),
                    approved_at: None,
                    state: ApprovalState::Canceled,
                    finished: Some((0, "alice".into())),
                };
                Change::PutValue(
                    format!("{APPROVAL_PREFIX}{}", r.id),
                    serde_json::to_vec(&r.to_json()).unwrap(),
                )
            })
            .collect();
        store.commit(legacy).unwrap();
        assert!(matches!(
            as_(&m, "alice", false).request_approval(what(), 1),
            Err(LifecycleError::TooManyApprovalRequests(_))
        ));
        assert!(store.value(BY_REQUESTER_FILED).unwrap().is_some());
        assert_eq!(
            store
                .values_with_prefix(&by_requester("alice"))
                .unwrap()
                .len(),
            MAX_KEPT_PER_REQUESTER
        );
        // bob's count is his own
        let bob = as_(&m, "bob", false).request_approval(what(), 1).unwrap();
        assert_eq!(
            store.values_with_prefix(&by_requester("bob")).unwrap(),
            vec![(format!("{}{}", by_requester("bob"), bob.id), Vec::new())]
        );
        // once closed longer than a request may wait, alice's are forgotten, with their
        // filing, and she may ask again
        as_(&m, "carol", true)
            .open_approvals(EXPIRY, EXPIRY.pending + 1)
            .unwrap();
        let left = store.values_with_prefix(&by_requester("alice")).unwrap();
        assert!(
            left.is_empty(),
            "{} left, first {:?}",
            left.len(),
            left.first()
        );
        as_(&m, "alice", false)
            .request_approval(what(), EXPIRY.pending + 2)
            .unwrap();
    }

    #[test]
    fn a_request_outlives_an_undone_batch() {
        let m = manager();
        let txn = m.begin(Some(caller("alice", false)));
        let made: Result<(), LifecycleError> = txn.undoable(|inner| {
            inner.request_approval(what(), 0)?;
            Err(LifecycleError::PermissionDenied(
                "waits for approvals".into(),
            ))
        });
        assert!(made.is_err());
        txn.commit().unwrap();
        let admin = as_(&m, "bob", true);
        assert_eq!(admin.open_approvals(EXPIRY, 1).unwrap().len(), 1);
    }

    #[test]
    fn a_stored_request_reads_back_as_it_was() {
        let r = ApprovalRequest {
            id: "00ff".into(),
            requester: "alice".into(),
            created: 5,
            what: what(),
            approvals: vec![("bob".into(), 6)],
            approved_at: Some(6),
            state: ApprovalState::Approved,
            finished: Some((7, "server".into())),
        };
        assert_eq!(ApprovalRequest::from_json(&r.to_json()), Some(r));
        assert_eq!(unhex("0g"), None);
        assert_eq!(unhex("abc"), None);
    }
}
