//! Dual control (`--quorum GROUP=M:Operations`): the operations named, on objects of the
//! group, run only once M administrators other than the requester approved. The request goes
//! through KMIP's asynchronous operations when the client sets the Asynchronous Indicator
//! (Operation Pending with a correlation value, then Poll or Cancel); otherwise it is refused
//! with Permission Denied naming the approval request, and the same request from the same
//! identity succeeds once after the approvals. The requests and approvals themselves live in
//! the store (`lifecycle::object::approvals`), so they survive restarts and every node of a
//! shared store sees them.

use crate::error::{guarded, OpError};
use crate::ops::{self, Ctx};
use kmip_codec::message::FieldValue;
use kmip_codec::ops::{CancelRequest, PollRequest};
use kmip_codec::vocab::enums::{asynchronous_indicator, cancellation_result, operation as op};
use kmip_codec::vocab::tag;
use kmip_codec::{Tag, Ttlv, Value};
use lifecycle::object::{ApprovalExpiry, ApprovalRequest, ApprovalState, NewApproval};

/// One `--quorum`: the operations on objects of `group` that need `needed` approvals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub group: String,
    pub needed: usize,
    pub operations: Vec<u32>,
}

/// Every `--quorum`, and how long requests live.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Quorum {
    pub rules: Vec<Rule>,
    pub expiry: ApprovalExpiry,
}

/// Attribute reads: what the quorum never covers (metadata is not the key).
const ATTRIBUTE_READS: &[u32] = &[op::GET_ATTRIBUTES, op::GET_ATTRIBUTE_LIST];

/// The operations that change attributes: changing the custody attributes of an object under
/// a quorum with one of them needs the quorum itself.
const ATTRIBUTE_CHANGES: &[u32] = &[
    op::ADD_ATTRIBUTE,
    op::MODIFY_ATTRIBUTE,
    op::DELETE_ATTRIBUTE,
    op::SET_ATTRIBUTE,
];

/// The attributes whose change would take an object out of its quorum: its group, or what
/// keeps its material from leaving.
const CUSTODY: &[(Tag, &str)] = &[
    (tag::OBJECT_GROUP, "Object Group"),
    (tag::EXTRACTABLE, "Extractable"),
    (tag::SENSITIVE, "Sensitive"),
];

impl Quorum {
    /// `GROUP=M:Operation Operation ...` entries. A quorum larger than the administrators
    /// could never be reached, and one over attribute reads would cover nothing secret: both
    /// refused.
    pub fn parse(
        entries: &[String],
        admins: &[String],
        pending_secs: u64,
        approval_secs: u64,
    ) -> Result<Quorum, String> {
        let secs = |v: u64, option: &str| {
            i64::try_from(v)
                .ok()
                .filter(|v| *v > 0)
                .ok_or_else(|| format!("{option} {v}: between 1 and {}", i64::MAX))
        };
        let expiry = ApprovalExpiry {
            pending: secs(pending_secs, "--quorum-pending-secs")?,
            approved: secs(approval_secs, "--quorum-approval-secs")?,
        };
        let mut rules: Vec<Rule> = Vec::new();
        for e in entries {
            let bad = || format!("quorum {e:?} is not GROUP=M:Operation Operation ...");
            let (group, rest) = e.split_once('=').ok_or_else(bad)?;
            let (m, ops) = rest.split_once(':').ok_or_else(bad)?;
            let group = group.trim();
            if group.is_empty() {
                return Err(bad());
            }
            let needed: usize = m.trim().parse().map_err(|_| bad())?;
            if needed == 0 {
                return Err(format!("quorum of {group:?}: M is at least 1"));
            }
            let mut distinct = admins.to_vec();
            distinct.sort();
            distinct.dedup();
            if needed > distinct.len() {
                return Err(format!(
                    "quorum of {group:?}: {needed} approvals, but only {} administrators \
                     (--admin) could give them",
                    distinct.len()
                ));
            }
            let operations = ops
                .split_whitespace()
                .map(|o| {
                    let code = crate::policy::operation_by_name(o)
                        .ok_or_else(|| format!("quorum of {group:?}: unknown operation {o:?}"))?;
                    if ATTRIBUTE_READS.contains(&code) {
                        return Err(format!(
                            "quorum of {group:?}: {o} reads attributes, which a quorum does \
                             not cover (Get is the key material)"
                        ));
                    }
                    Ok(code)
                })
                .collect::<Result<Vec<u32>, String>>()?;
            if operations.is_empty() {
                return Err(format!("quorum of {group:?} names no operation"));
            }
            if rules.iter().any(|r| r.group == group) {
                return Err(format!("quorum of {group:?} given twice"));
            }
            rules.push(Rule {
                group: group.to_owned(),
                needed,
                operations,
            });
        }
        Ok(Quorum { rules, expiry })
    }
}

/// What became of a batch item the quorum looked at.
pub(crate) enum Outcome {
    /// Not the quorum's: the operation runs as usual.
    Run,
    /// Answered: the operation whose result it is (Poll answers the polled operation's), and
    /// the result.
    Done(u32, Result<Ttlv, OpError>),
    /// Operation Pending, with this correlation value.
    Pending(String),
}

/// Whether the request message asks for asynchronous answers: a Boolean in 1.x, an
/// Enumeration in 2.x (Mandatory or Optional; Prohibited is no).
pub(crate) fn asynchronous(indicator: Option<&Ttlv>) -> bool {
    match indicator.map(|t| &t.value) {
        Some(Value::Boolean(b)) => *b,
        Some(Value::Enumeration(e)) => {
            *e == asynchronous_indicator::MANDATORY || *e == asynchronous_indicator::OPTIONAL
        }
        _ => false,
    }
}

/// Look at one batch item before its operation runs: Poll and Cancel of approval requests,
/// and the operations a quorum guards.
pub(crate) fn intercept(ctx: &mut Ctx<'_>, operation: u32, payload: &Ttlv) -> Outcome {
    let out = match operation {
        op::POLL => poll(ctx, payload),
        op::CANCEL => cancel(ctx, payload),
        _ => gate(ctx, operation, payload),
    };
    out.unwrap_or_else(|e| Outcome::Done(operation, Err(e)))
}

/// Whether a request changes a custody attribute, in either version's form: the attribute
/// itself (1.x Attribute Value's tag is the name's, so its name is looked for too), its
/// name, or a 2.x Attribute Reference to it.
fn touches_custody(t: &Ttlv) -> bool {
    let named = |s: &str| CUSTODY.iter().any(|(_, n)| *n == s);
    let tagged = |v: u32| CUSTODY.iter().any(|(t, _)| t.0 == v);
    if CUSTODY.iter().any(|(c, _)| *c == t.tag) {
        return true;
    }
    match &t.value {
        Value::TextString(s) if t.tag == tag::ATTRIBUTE_NAME => named(s),
        Value::Enumeration(v) if t.tag == tag::ATTRIBUTE_REFERENCE => tagged(*v),
        Value::Structure(children) => children.iter().any(touches_custody),
        _ => false,
    }
}

/// The request payload with its object named: an ID Placeholder means nothing once the
/// message is over, and Poll runs it in another message.
fn with_object(payload: &Ttlv, object: &str) -> Ttlv {
    let mut p = payload.clone();
    if p.child(tag::UNIQUE_IDENTIFIER).is_none() {
        if let Some(children) = p.children_mut() {
            children.insert(0, ops::text(tag::UNIQUE_IDENTIFIER, object));
        }
    }
    p
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn operation_name(code: u32) -> String {
    ops::find(code).map_or_else(|| format!("operation 0x{code:X}"), |o| o.name.to_owned())
}

/// The refusal a client without asynchronous answers gets: what to do next, and for whom.
fn waiting(r: &ApprovalRequest, expiry: ApprovalExpiry) -> OpError {
    OpError::PermissionDenied(format!(
        "dual control: {} of object {} (Object Group {:?}) needs {} administrators' \
             approval, {} so far: approval request {} (kmip-admin approvals approve {}); \
             send the same request again once approved, within {} s of the last approval",
        operation_name(r.what.operation),
        r.what.object,
        r.what.group,
        r.what.needed,
        r.approvals.len(),
        r.id,
        r.id,
        expiry.approved
    ))
}

fn gate(ctx: &mut Ctx<'_>, operation: u32, payload: &Ttlv) -> Result<Outcome, OpError> {
    let q = &ctx.settings.quorum;
    if q.rules.is_empty() {
        return Ok(Outcome::Run);
    }
    let custody = ATTRIBUTE_CHANGES.contains(&operation) && touches_custody(payload);
    if !custody && !q.rules.iter().any(|r| r.operations.contains(&operation)) {
        return Ok(Outcome::Run);
    }
    let given = payload
        .child(tag::UNIQUE_IDENTIFIER)
        .and_then(Ttlv::as_text)
        .map(str::to_owned);
    let Some(object) = given.or_else(|| ctx.placeholder.clone()) else {
        return Ok(Outcome::Run);
    };
    // an object the caller could not act on anyway gets the operation's own refusal
    let Some(groups) = ctx.txn.quorum_groups(&object)? else {
        return Ok(Outcome::Run);
    };
    // the strictest quorum of the object's groups that covers the operation
    let Some(rule) = q
        .rules
        .iter()
        .filter(|r| groups.contains(&r.group) && (custody || r.operations.contains(&operation)))
        .max_by_key(|r| r.needed)
    else {
        return Ok(Outcome::Run);
    };
    let stored = with_object(payload, &object);
    let encoded = kmip_codec::encode(&stored);
    let what = NewApproval {
        operation,
        object,
        group: rule.group.clone(),
        needed: rule.needed,
        digest: hex(&openssl::sha::sha256(&encoded)),
        payload: encoded,
        asynchronous: ctx.asynchronous,
    };
    let expiry = q.expiry;
    if ctx.asynchronous {
        let r = ctx.txn.request_approval(what, ctx.now)?;
        return Ok(Outcome::Pending(r.id));
    }
    match ctx.txn.matching_approval(&what, expiry, ctx.now)? {
        Some(r) if r.state == ApprovalState::Approved => {
            let out = guarded(|| ops::apply(ctx, operation, payload));
            // an approval is for the operation's effect: one that failed (a Destroy of an
            // active key) leaves it for the request to be sent again
            if out.is_ok() {
                ctx.txn.consume_read_approval(r, ctx.now)?;
            }
            Ok(Outcome::Done(operation, out))
        }
        Some(r) => Err(waiting(&r, expiry)),
        None => {
            let r = ctx.txn.request_approval(what, ctx.now)?;
            Err(waiting(&r, expiry))
        }
    }
}

/// The approval request a correlation value names, if it is the caller's.
fn own_request(ctx: &Ctx<'_>, correlation: &[u8]) -> Result<Option<ApprovalRequest>, OpError> {
    let Ok(id) = std::str::from_utf8(correlation) else {
        return Ok(None);
    };
    Ok(ctx
        .txn
        .approval(id, ctx.settings.quorum.expiry, ctx.now)?
        .filter(|r| r.requester == ctx.identity && r.what.asynchronous))
}

fn poll(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Outcome, OpError> {
    let req = PollRequest::decode(payload)?;
    let Some(r) = own_request(ctx, &req.asynchronous_correlation_value.0 .0)? else {
        // the synchronous server's answer: no such operation
        return Ok(Outcome::Run);
    };
    let by = || {
        r.finished
            .as_ref()
            .map(|(_, who)| who.clone())
            .unwrap_or_default()
    };
    let refused = |e: OpError| Err(e);
    match r.state {
        ApprovalState::Pending => Ok(Outcome::Pending(r.id)),
        ApprovalState::Approved => {
            let operation = r.what.operation;
            if ctx.allowed.is_some_and(|a| !a.contains(&operation)) {
                return refused(OpError::PermissionDenied(
                    "the identity's policy does not allow this operation".into(),
                ));
            }
            let (stored, _) =
                kmip_codec::decode(&r.what.payload, &kmip_codec::Limits::default())
                    .map_err(|_| OpError::GeneralFailure("the stored request is corrupt".into()))?;
            let scoped = ctx.txn.with_operation(operation);
            let mut sub = Ctx {
                txn: &scoped,
                identity: ctx.identity,
                now: ctx.now,
                version: ctx.version,
                placeholder: None,
                allowed: ctx.allowed,
                settings: ctx.settings,
                budget: ctx.budget,
                asynchronous: false,
            };
            let out = guarded(|| ops::apply(&mut sub, operation, &stored));
            ctx.placeholder = sub.placeholder;
            if out.is_ok() {
                ctx.txn.consume_read_approval(r.clone(), ctx.now)?;
            }
            Ok(Outcome::Done(operation, out))
        }
        ApprovalState::Denied => refused(OpError::PermissionDenied(format!(
            "approval request {} was denied by {}",
            r.id,
            by()
        ))),
        ApprovalState::Expired => refused(OpError::PermissionDenied(format!(
            "approval request {} expired before it was {}",
            r.id,
            if r.approved_at.is_some() {
                "used"
            } else {
                "approved"
            }
        ))),
        ApprovalState::Canceled => refused(OpError::CanceledByRequester(format!(
            "approval request {} was canceled",
            r.id
        ))),
        ApprovalState::Executed => refused(OpError::AsynchronousCorrelation(format!(
            "approval request {} has run: its result was answered",
            r.id
        ))),
    }
}

fn cancel(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Outcome, OpError> {
    let req = CancelRequest::decode(payload)?;
    let Ok(id) = std::str::from_utf8(&req.asynchronous_correlation_value.0 .0) else {
        return Ok(Outcome::Run);
    };
    let Some(before) = ctx
        .txn
        .cancel_approval(id, ctx.settings.quorum.expiry, ctx.now)?
    else {
        return Ok(Outcome::Run);
    };
    let result = match before {
        ApprovalState::Pending | ApprovalState::Approved | ApprovalState::Canceled => {
            cancellation_result::CANCELED
        }
        ApprovalState::Executed => cancellation_result::COMPLETED,
        ApprovalState::Denied | ApprovalState::Expired => cancellation_result::FAILED,
    };
    Ok(Outcome::Done(
        op::CANCEL,
        Ok(kmip_codec::ops::CancelResponse {
            asynchronous_correlation_value: req.asynchronous_correlation_value,
            cancellation_result: kmip_codec::message::Req(Ttlv::new(
                tag::CANCELLATION_RESULT,
                Value::Enumeration(result),
            )),
        }
        .encode(payload.tag)),
    ))
}

/// How often the server looks for requests whose time has come: often enough that an
/// expiry is in the audit log about when it happens, never more than once a second.
pub fn sweep_interval(expiry: ApprovalExpiry) -> std::time::Duration {
    let secs = expiry.pending.min(expiry.approved).clamp(1, 60);
    std::time::Duration::from_secs(secs.unsigned_abs())
}

/// Expire the requests whose time has come, and audit each expiry, without waiting for a
/// client or an administrator to look at them. Blocking: a commit. Several nodes of one store
/// may sweep at once: one commits, the others' commits conflict and change nothing (their
/// record says so).
pub fn sweep(server: &crate::Server) {
    let now = crate::now();
    let expiry = server.limits.quorum.expiry;
    let txn = server.manager.begin(None);
    if let Err(e) = txn.open_approvals(expiry, now) {
        tracing::warn!(error = %e, "approval requests: the expiry sweep failed");
        return;
    }
    let events = txn.approval_events();
    if txn.changes_nothing() {
        return;
    }
    let mut record = crate::audit::Record::new();
    record.insert_str("time", &kmip_codec::time::format_secs(now));
    record.insert_str("identity", "server");
    // expiries, and closed requests forgotten a day after (no event: the record says only
    // that the sweep changed the store)
    record.insert_str("event", "approvals-sweep");
    crate::audit::add_approval_events(&mut record, &events);
    if let Err(e) = server.audit.record(record) {
        tracing::error!(error = %e, "audit log unavailable: expiries not recorded");
        return;
    }
    if let Err(e) = txn.commit() {
        tracing::info!(error = %e, "approval requests: expiry sweep lost a race");
        let mut record = serde_json::Map::new();
        record.insert("time".into(), kmip_codec::time::format_secs(now).into());
        record.insert("identity".into(), "server".into());
        record.insert(
            "commit".into(),
            "failed: the previous record did not take effect".into(),
        );
        if let Err(e) = server.audit.record(record) {
            tracing::error!(error = %e, "audit log unavailable");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admins(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("a{i}")).collect()
    }

    #[test]
    fn quorums_parse_and_nonsense_is_refused() {
        let q = Quorum::parse(
            &[
                "payments=2:Destroy Get Revoke".into(),
                "root = 3 :Get".into(),
            ],
            &admins(3),
            60,
            2,
        )
        .unwrap();
        assert_eq!(
            q.rules[0],
            Rule {
                group: "payments".into(),
                needed: 2,
                operations: vec![op::DESTROY, op::GET, op::REVOKE],
            }
        );
        assert_eq!((q.rules[1].group.as_str(), q.rules[1].needed), ("root", 3));
        assert_eq!(
            q.expiry,
            ApprovalExpiry {
                pending: 60,
                approved: 2
            }
        );
        for (bad, says) in [
            ("payments", "GROUP=M"),
            ("payments=two:Get", "GROUP=M"),
            ("payments=0:Get", "at least 1"),
            ("payments=4:Get", "only 3 administrators"),
            ("payments=2:Fetch", "unknown operation"),
            ("payments=2:GetAttributes", "reads attributes"),
            ("payments=2:", "names no operation"),
        ] {
            let e = Quorum::parse(&[bad.into()], &admins(3), 1, 1).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let twice = ["g=1:Get".to_owned(), "g=2:Destroy".to_owned()];
        assert!(Quorum::parse(&twice, &admins(3), 1, 1).is_err());
        assert!(Quorum::parse(&[], &admins(3), 0, 1).is_err());
    }

    #[test]
    fn custody_attributes_are_found_in_either_version() {
        let v1 = Ttlv::structure(
            tag::REQUEST_PAYLOAD,
            vec![Ttlv::structure(
                tag::ATTRIBUTE,
                vec![
                    ops::text(tag::ATTRIBUTE_NAME, "Object Group"),
                    ops::text(tag::ATTRIBUTE_VALUE, "elsewhere"),
                ],
            )],
        );
        assert!(touches_custody(&v1));
        let v2 = Ttlv::structure(
            tag::REQUEST_PAYLOAD,
            vec![Ttlv::structure(
                tag::NEW_ATTRIBUTE,
                vec![Ttlv::new(tag::EXTRACTABLE, Value::Boolean(true))],
            )],
        );
        assert!(touches_custody(&v2));
        let reference = Ttlv::structure(
            tag::REQUEST_PAYLOAD,
            vec![Ttlv::new(
                tag::ATTRIBUTE_REFERENCE,
                Value::Enumeration(tag::SENSITIVE.0),
            )],
        );
        assert!(touches_custody(&reference));
        let other = Ttlv::structure(
            tag::REQUEST_PAYLOAD,
            vec![Ttlv::structure(
                tag::ATTRIBUTE,
                vec![
                    ops::text(tag::ATTRIBUTE_NAME, "Contact Information"),
                    ops::text(tag::ATTRIBUTE_VALUE, "Object Group"),
                ],
            )],
        );
        assert!(!touches_custody(&other));
    }

    #[test]
    fn the_asynchronous_indicator_in_either_version() {
        let t = |v| Ttlv::new(tag::ASYNCHRONOUS_INDICATOR, v);
        assert!(asynchronous(Some(&t(Value::Boolean(true)))));
        assert!(!asynchronous(Some(&t(Value::Boolean(false)))));
        assert!(asynchronous(Some(&t(Value::Enumeration(
            asynchronous_indicator::OPTIONAL
        )))));
        assert!(!asynchronous(Some(&t(Value::Enumeration(
            asynchronous_indicator::PROHIBITED
        )))));
        assert!(!asynchronous(None));
    }
}
