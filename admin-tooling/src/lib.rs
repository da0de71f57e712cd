//! kmip-admin's requests and what it prints: an object inventory (Locate, then Get Attributes
//! in batches), one object's attributes, Revoke, Destroy, and our vendor operations (grants,
//! trusted wrapping keys, Backup, the approvals of dual control). Everything goes over KMIP, so it administers any server
//! its certificate lets it reach; the vendor operations need ours.
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

use kmip_client::{Client, ClientError};
use kmip_codec::message::{DateTime, FieldValue, Req};
use kmip_codec::ops::{
    DestroyRequest, GetAttributesRequest, GetAttributesResponse, LocateRequest, LocateResponse,
    RevokeRequest,
};
use kmip_codec::vendor;
use kmip_codec::vocab::enums::{operation as op, storage_status_mask};
use kmip_codec::vocab::{self, tag};
use kmip_codec::{text, Tag, Ttlv, Value};
use serde_json::{json, Map, Value as J};
use thiserror::Error;

/// What went wrong, for an administrator.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The server refused, or could not be reached.
    #[error("{what}: {source}")]
    Kmip {
        /// The request.
        what: String,
        /// Why.
        source: ClientError,
    },
    /// A value on the command line that names nothing KMIP knows.
    #[error("{option} {value:?}: {reason}")]
    BadValue {
        /// The option.
        option: &'static str,
        /// What was given.
        value: String,
        /// What is accepted.
        reason: String,
    },
    /// An answer without what it must carry.
    #[error("the server's answer to {0} is incomplete")]
    Incomplete(&'static str),
}

fn kmip(what: impl Into<String>) -> impl FnOnce(ClientError) -> AdminError {
    let what = what.into();
    move |source| AdminError::Kmip { what, source }
}

/// A KMIP enumeration value from its name, written as KMIP XML does (`SymmetricKey`) or in
/// any case with dashes or underscores (`symmetric-key`, `SYMMETRIC_KEY`).
pub fn enum_value(
    enumeration: &'static str,
    option: &'static str,
    given: &str,
) -> Result<u32, AdminError> {
    let squash = |s: &str| {
        s.chars()
            .filter(|c| !matches!(c, '-' | '_' | ' '))
            .collect::<String>()
            .to_lowercase()
    };
    let def = vocab::enum_def(enumeration).ok_or(AdminError::BadValue {
        option,
        value: given.into(),
        reason: format!("no enumeration {enumeration}"),
    })?;
    def.values
        .iter()
        .find(|e| squash(e.xml) == squash(given))
        .map(|e| e.value)
        .ok_or_else(|| AdminError::BadValue {
            option,
            value: given.into(),
            reason: format!(
                "one of {}",
                def.values
                    .iter()
                    .map(|e| e.xml)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
}

/// What `list` filters on; absent criteria match everything.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub object_type: Option<u32>,
    pub state: Option<u32>,
    pub name: Option<String>,
    pub group: Option<String>,
    /// Destroyed and archived objects too (the Storage Status Mask).
    pub all: bool,
    pub limit: Option<i32>,
}

/// One object of the inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub id: String,
    pub attributes: Vec<Ttlv>,
}

/// Identifiers of the objects the filter matches, then their attributes, a batch of
/// Get Attributes at a time (one round trip per hundred objects rather than per object).
pub fn list(c: &mut Client, f: &Filter) -> Result<Vec<Listed>, AdminError> {
    let mut criteria = Vec::new();
    if let Some(t) = f.object_type {
        criteria.push(Ttlv::new(tag::OBJECT_TYPE, Value::Enumeration(t)));
    }
    if let Some(s) = f.state {
        criteria.push(Ttlv::new(tag::STATE, Value::Enumeration(s)));
    }
    if let Some(n) = &f.name {
        criteria.push(Ttlv::structure(
            tag::NAME,
            vec![Ttlv::new(tag::NAME_VALUE, Value::TextString(n.clone()))],
        ));
    }
    if let Some(g) = &f.group {
        criteria.push(Ttlv::new(tag::OBJECT_GROUP, Value::TextString(g.clone())));
    }
    let storage = if f.all {
        storage_status_mask::ON_LINE_STORAGE
            | storage_status_mask::ARCHIVAL_STORAGE
            | storage_status_mask::DESTROYED_STORAGE
    } else {
        storage_status_mask::ON_LINE_STORAGE
    };
    let req = LocateRequest {
        maximum_items: f
            .limit
            .map(|m| Ttlv::new(tag::MAXIMUM_ITEMS, Value::Integer(m))),
        storage_status_mask: Some(Ttlv::new(
            tag::STORAGE_STATUS_MASK,
            Value::Integer(storage as i32),
        )),
        attributes: (!criteria.is_empty()).then(|| Ttlv::structure(tag::ATTRIBUTES, criteria)),
        ..Default::default()
    };
    let found: LocateResponse = c.op(op::LOCATE, &req).map_err(kmip("Locate"))?;
    let mut out = Vec::with_capacity(found.unique_identifier.len());
    for chunk in found.unique_identifier.chunks(100) {
        let items = chunk
            .iter()
            .map(|id| {
                (
                    op::GET_ATTRIBUTES,
                    GetAttributesRequest {
                        unique_identifier: Some(id.clone()),
                        ..Default::default()
                    }
                    .encode(tag::REQUEST_PAYLOAD),
                )
            })
            .collect();
        let resp = c.batch(items).map_err(kmip("Get Attributes"))?;
        for (id, item) in chunk.iter().zip(resp.batch_item) {
            // an object destroyed between the Locate and now is left out, not an error
            let Some(p) = item.response_payload else {
                continue;
            };
            let a = GetAttributesResponse::decode(&p).map_err(|e| {
                kmip(format!("Get Attributes {id}"))(ClientError::Decode(e.to_string()))
            })?;
            out.push(Listed {
                id: id.clone(),
                attributes: attributes_of(a),
            });
        }
    }
    Ok(out)
}

/// Every attribute of one object.
pub fn show(c: &mut Client, id: &str) -> Result<Listed, AdminError> {
    let a: GetAttributesResponse = c
        .op(
            op::GET_ATTRIBUTES,
            &GetAttributesRequest {
                unique_identifier: Some(id.into()),
                ..Default::default()
            },
        )
        .map_err(kmip(format!("Get Attributes {id}")))?;
    Ok(Listed {
        id: a.unique_identifier.0.clone(),
        attributes: attributes_of(a),
    })
}

/// 2.x Attributes, or a 1.x server's Attribute structures as 2.x items.
fn attributes_of(a: GetAttributesResponse) -> Vec<Ttlv> {
    match a.attributes {
        Some(a) => a.children().to_vec(),
        None => kmip_codec::attributes::to_v2(&a.attribute).unwrap_or(a.attribute),
    }
}

/// Revoke with a Revocation Reason Code; a compromise is dated now.
pub fn revoke(
    c: &mut Client,
    id: &str,
    reason: u32,
    message: Option<&str>,
) -> Result<(), AdminError> {
    use vocab::enums::revocation_reason_code as rrc;
    let mut why = vec![Ttlv::new(
        tag::REVOCATION_REASON_CODE,
        Value::Enumeration(reason),
    )];
    if let Some(m) = message {
        why.push(Ttlv::new(
            tag::REVOCATION_MESSAGE,
            Value::TextString(m.into()),
        ));
    }
    let compromise = reason == rrc::KEY_COMPROMISE || reason == rrc::CA_COMPROMISE;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    c.call(
        op::REVOKE,
        RevokeRequest {
            unique_identifier: Some(id.into()),
            revocation_reason: Req(Ttlv::structure(tag::REVOCATION_REASON, why)),
            compromise_occurrence_date: compromise.then_some(DateTime(now)),
        }
        .encode(tag::REQUEST_PAYLOAD),
    )
    .map_err(kmip(format!("Revoke {id}")))?;
    Ok(())
}

pub fn destroy(c: &mut Client, id: &str) -> Result<(), AdminError> {
    c.call(
        op::DESTROY,
        DestroyRequest {
            unique_identifier: Some(id.into()),
        }
        .encode(tag::REQUEST_PAYLOAD),
    )
    .map_err(kmip(format!("Destroy {id}")))?;
    Ok(())
}

/// The operations named in `names` (KMIP XML names, as the server's --policy takes them:
/// `Get GetAttributes Encrypt`).
pub fn operations(names: &str) -> Result<Vec<u32>, AdminError> {
    names
        .split_whitespace()
        .map(|n| {
            vocab::enum_def("Operation")
                .and_then(|d| d.by_xml(n))
                .map(|e| e.value)
                .ok_or_else(|| AdminError::BadValue {
                    option: "--operations",
                    value: n.into(),
                    reason: "not a KMIP operation (XML names: Get GetAttributes Encrypt ...)"
                        .into(),
                })
        })
        .collect()
}

/// Replace `grantee`'s rights on `id` with `ops`; none withdraws them.
pub fn grant(c: &mut Client, id: &str, grantee: &str, ops: &[u32]) -> Result<(), AdminError> {
    let mut payload = vec![
        Ttlv::new(tag::UNIQUE_IDENTIFIER, Value::TextString(id.into())),
        Ttlv::new(vendor::tag::GRANTEE, Value::TextString(grantee.into())),
    ];
    payload.extend(
        ops.iter()
            .map(|o| Ttlv::new(tag::OPERATION, Value::Enumeration(*o))),
    );
    c.call(
        vendor::operation::GRANT,
        Ttlv::structure(tag::REQUEST_PAYLOAD, payload),
    )
    .map_err(kmip(format!("Grant on {id}")))?;
    Ok(())
}

/// The grants on an object: each grantee and the operations it may perform, by name.
pub fn grants(c: &mut Client, id: &str) -> Result<Vec<(String, Vec<String>)>, AdminError> {
    let r = c
        .call(
            vendor::operation::LIST_GRANTS,
            Ttlv::structure(
                tag::REQUEST_PAYLOAD,
                vec![Ttlv::new(
                    tag::UNIQUE_IDENTIFIER,
                    Value::TextString(id.into()),
                )],
            ),
        )
        .map_err(kmip(format!("List Grants on {id}")))?;
    Ok(r.children_with(vendor::tag::GRANT)
        .map(|g| {
            let who = g
                .child(vendor::tag::GRANTEE)
                .and_then(Ttlv::as_text)
                .unwrap_or("")
                .to_owned();
            let ops = g
                .children_with(tag::OPERATION)
                .filter_map(Ttlv::as_enum)
                .map(|o| {
                    text::format_scalar(&Value::Enumeration(o), text::names(tag::OPERATION, None))
                })
                .collect();
            (who, ops)
        })
        .collect())
}

/// Mark (or unmark) a key as one Sensitive keys may leave wrapped by.
pub fn trust_wrapping_key(c: &mut Client, id: &str, trusted: bool) -> Result<(), AdminError> {
    c.call(
        vendor::operation::TRUST_WRAPPING_KEY,
        Ttlv::structure(
            tag::REQUEST_PAYLOAD,
            vec![
                Ttlv::new(tag::UNIQUE_IDENTIFIER, Value::TextString(id.into())),
                Ttlv::new(vendor::tag::TRUSTED, Value::Boolean(trusted)),
            ],
        ),
    )
    .map_err(kmip(format!("Trust Wrapping Key {id}")))?;
    Ok(())
}

/// One dual-control request, as the server lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// What `approve` and `deny` take (also the requester's correlation value).
    pub id: String,
    /// Who asked.
    pub requester: String,
    /// The operation asked for, by its KMIP name.
    pub operation: String,
    /// The object it acts on.
    pub object: String,
    /// The Object Group whose quorum applies.
    pub group: String,
    /// How many administrators must approve.
    pub needed: i32,
    /// Who approved so far.
    pub approvers: Vec<String>,
    /// When it was asked, seconds since the epoch.
    pub requested: i64,
    /// When it expires if nothing happens.
    pub expires: i64,
    /// pending, approved, denied, ...
    pub state: String,
}

impl Approval {
    fn from_ttlv(t: &Ttlv) -> Option<Approval> {
        let text = |f| t.child(f).and_then(Ttlv::as_text).map(str::to_owned);
        let date = |f| t.child(f).and_then(Ttlv::as_datetime);
        Some(Approval {
            id: text(vendor::tag::APPROVAL_ID)?,
            requester: text(vendor::tag::REQUESTER)?,
            operation: t.child(tag::OPERATION).and_then(Ttlv::as_enum).map(|o| {
                text::format_scalar(&Value::Enumeration(o), text::names(tag::OPERATION, None))
            })?,
            object: text(tag::UNIQUE_IDENTIFIER)?,
            group: text(tag::OBJECT_GROUP).unwrap_or_default(),
            needed: t
                .child(vendor::tag::APPROVALS_NEEDED)
                .and_then(Ttlv::as_i32)?,
            approvers: t
                .children_with(vendor::tag::APPROVER)
                .filter_map(Ttlv::as_text)
                .map(str::to_owned)
                .collect(),
            requested: date(vendor::tag::REQUESTED_AT)?,
            expires: date(vendor::tag::EXPIRES_AT)?,
            state: text(vendor::tag::APPROVAL_STATE)?,
        })
    }

    /// `{"id", "requester", "operation", "object", "group", "needed", "approvers",
    /// "requested", "expires", "state"}`, the times as RFC 3339.
    pub fn to_json(&self) -> J {
        json!({
            "id": self.id,
            "requester": self.requester,
            "operation": self.operation,
            "object": self.object,
            "group": self.group,
            "needed": self.needed,
            "approvers": self.approvers,
            "requested": kmip_codec::time::format_secs(self.requested),
            "expires": kmip_codec::time::format_secs(self.expires),
            "state": self.state,
        })
    }

    /// Tab-separated: id, state, operation, object, group, requester, approvals/needed and
    /// who approved, requested, expires.
    pub fn line(&self) -> String {
        format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}/{} {}\t{}\t{}",
            self.id,
            self.state,
            self.operation,
            self.object,
            self.group,
            self.requester,
            self.approvers.len(),
            self.needed,
            self.approvers.join(","),
            kmip_codec::time::format_secs(self.requested),
            kmip_codec::time::format_secs(self.expires),
        )
    }
}

fn approvals_of(r: &Ttlv, what: &'static str) -> Result<Vec<Approval>, AdminError> {
    r.children_with(vendor::tag::APPROVAL_REQUEST)
        .map(|a| Approval::from_ttlv(a).ok_or(AdminError::Incomplete(what)))
        .collect()
}

/// The open dual-control requests (an administrator only), oldest first.
pub fn approvals(c: &mut Client) -> Result<Vec<Approval>, AdminError> {
    let r = c
        .call(
            vendor::operation::LIST_APPROVALS,
            Ttlv::structure(tag::REQUEST_PAYLOAD, vec![]),
        )
        .map_err(kmip("List Approvals"))?;
    approvals_of(&r, "List Approvals")
}

fn decide(
    c: &mut Client,
    operation: u32,
    what: &'static str,
    id: &str,
) -> Result<Approval, AdminError> {
    let r = c
        .call(
            operation,
            Ttlv::structure(
                tag::REQUEST_PAYLOAD,
                vec![Ttlv::new(
                    vendor::tag::APPROVAL_ID,
                    Value::TextString(id.into()),
                )],
            ),
        )
        .map_err(kmip(format!("{what} {id}")))?;
    approvals_of(&r, what)?
        .into_iter()
        .next()
        .ok_or(AdminError::Incomplete(what))
}

/// Approve a request (an administrator other than its requester): the request as it now is.
pub fn approve(c: &mut Client, id: &str) -> Result<Approval, AdminError> {
    decide(c, vendor::operation::APPROVE, "Approve", id)
}

/// Deny a request: it will not run.
pub fn deny(c: &mut Client, id: &str) -> Result<Approval, AdminError> {
    decide(c, vendor::operation::DENY, "Deny", id)
}

/// What the server's Backup made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    /// The file's name in the server's `DATA_DIR/backups/`.
    pub file: String,
    /// `key=value` lines: objects, store schema, digest.
    pub manifest: String,
}

/// Have the server write a backup of its store into its data directory.
pub fn backup(c: &mut Client) -> Result<Backup, AdminError> {
    let r = c
        .call(
            vendor::operation::BACKUP,
            Ttlv::structure(tag::REQUEST_PAYLOAD, vec![]),
        )
        .map_err(kmip("Backup"))?;
    let file = r
        .child(vendor::tag::BACKUP_FILE)
        .and_then(Ttlv::as_text)
        // the name is joined to a directory: nothing that leaves it
        .filter(|n| !n.is_empty() && !n.starts_with('.') && !n.contains(['/', '\\']))
        .ok_or(AdminError::Incomplete("Backup"))?
        .to_owned();
    let manifest = r
        .child(vendor::tag::BACKUP_MANIFEST)
        .and_then(Ttlv::as_text)
        .unwrap_or("")
        .to_owned();
    Ok(Backup { file, manifest })
}

/// An attribute's name as the specification writes it, and its value.
fn named(a: &Ttlv) -> (String, &Ttlv) {
    let name = kmip_codec::attributes::attribute_name(a).unwrap_or_else(|_| text::tag_name(a.tag));
    // a custom attribute carries its value inside
    let value = if a.tag == tag::ATTRIBUTE {
        a.child(tag::ATTRIBUTE_VALUE).unwrap_or(a)
    } else {
        a
    };
    (name, value)
}

/// A value as JSON: numbers and booleans as themselves, enumerations and masks by name, a
/// structure as an object of its fields (a field seen twice as an array).
pub fn value_json(item: &Ttlv) -> J {
    match &item.value {
        Value::Structure(children) => {
            let mut m = Map::new();
            for c in children {
                let v = value_json(c);
                match m.get_mut(&text::tag_name(c.tag)) {
                    Some(J::Array(a)) => a.push(v),
                    Some(prev) => *prev = J::Array(vec![prev.take(), v]),
                    None => {
                        m.insert(text::tag_name(c.tag), v);
                    }
                }
            }
            J::Object(m)
        }
        Value::Boolean(b) => J::Bool(*b),
        Value::LongInteger(v) => json!(v),
        Value::Interval(v) => json!(v),
        v => {
            let s = text::format_scalar(v, text::names(item.tag, None));
            match (v, s.parse::<i64>()) {
                (Value::Integer(_), Ok(n)) => json!(n),
                _ => J::String(s),
            }
        }
    }
}

/// A value on one line: a structure as `Field=value` pairs. Text any client chose (a Name, a
/// group) comes out with its control characters escaped, so that it cannot forge lines of the
/// inventory or drive the administrator's terminal.
pub fn value_text(item: &Ttlv) -> String {
    match &item.value {
        Value::Structure(children) => children
            .iter()
            .map(|c| format!("{}={}", text::tag_name(c.tag), value_text(c)))
            .collect::<Vec<_>>()
            .join(" "),
        v => printable(&text::format_scalar(v, text::names(item.tag, None))),
    }
}

/// `s` with every control character (newline, tab, escape, ...) written as `\u{..}`.
pub fn printable(s: &str) -> String {
    s.chars()
        .map(|c| match c.is_control() {
            true => c.escape_unicode().to_string(),
            false => c.to_string(),
        })
        .collect()
}

impl Listed {
    fn first(&self, t: Tag) -> Option<&Ttlv> {
        self.attributes.iter().find(|a| a.tag == t)
    }

    fn texts(&self, t: Tag, field: Option<Tag>) -> Vec<String> {
        self.attributes
            .iter()
            .filter(|a| a.tag == t)
            .filter_map(|a| match field {
                Some(f) => a.child(f),
                None => Some(a),
            })
            .map(value_text)
            .collect()
    }

    /// `{"id", "object_type", "state", "names", "groups", "algorithm", "length"}`: the
    /// inventory's columns.
    pub fn summary_json(&self) -> J {
        let one = |t: Tag| self.first(t).map(value_json).unwrap_or(J::Null);
        json!({
            "id": self.id,
            "object_type": one(tag::OBJECT_TYPE),
            "state": one(tag::STATE),
            "names": self.texts(tag::NAME, Some(tag::NAME_VALUE)),
            "groups": self.texts(tag::OBJECT_GROUP, None),
            "algorithm": one(tag::CRYPTOGRAPHIC_ALGORITHM),
            "length": one(tag::CRYPTOGRAPHIC_LENGTH),
        })
    }

    /// The inventory's columns on one line, tab-separated.
    pub fn summary_line(&self) -> String {
        let one = |t: Tag| self.first(t).map(value_text).unwrap_or_else(|| "-".into());
        let many = |v: Vec<String>| {
            if v.is_empty() {
                "-".into()
            } else {
                v.join(",")
            }
        };
        format!(
            "{}\t{}\t{}\t{}\t{}",
            printable(&self.id),
            one(tag::OBJECT_TYPE),
            one(tag::STATE),
            many(self.texts(tag::NAME, Some(tag::NAME_VALUE))),
            many(self.texts(tag::OBJECT_GROUP, None)),
        )
    }

    /// `{"id", "attributes": {XmlName: value, or [values] for several instances}}`.
    pub fn attributes_json(&self) -> J {
        let mut m = Map::new();
        for a in &self.attributes {
            let (name, value) = named(a);
            // KMIP JSON's names (CryptographicAlgorithm), and a custom attribute's own
            let key = if a.tag == tag::ATTRIBUTE {
                name
            } else {
                text::tag_name(a.tag)
            };
            let v = value_json(value);
            match m.get_mut(&key) {
                Some(J::Array(arr)) => arr.push(v),
                Some(prev) => *prev = J::Array(vec![prev.take(), v]),
                None => {
                    m.insert(key, v);
                }
            }
        }
        json!({"id": self.id, "attributes": J::Object(m)})
    }

    /// `Attribute Name: value` lines, in the server's order.
    pub fn attributes_text(&self) -> String {
        let mut out = format!("Unique Identifier: {}\n", printable(&self.id));
        for a in &self.attributes {
            let (name, value) = named(a);
            out.push_str(&format!("{}: {}\n", printable(&name), value_text(value)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vocab::enums::{object_type, state};

    #[test]
    fn a_name_cannot_forge_inventory_lines_or_drive_the_terminal() {
        let l = Listed {
            id: "7".into(),
            attributes: vec![Ttlv::structure(
                tag::NAME,
                vec![
                    Ttlv::new(
                        tag::NAME_VALUE,
                        Value::TextString("k\n8\tSymmetricKey\tDestroyed\x1b[2J".into()),
                    ),
                    Ttlv::new(tag::NAME_TYPE, Value::Enumeration(1)),
                ],
            )],
        };
        let line = l.summary_line();
        assert_eq!(line.lines().count(), 1, "{line}");
        assert!(!line.contains('\x1b'), "{line}");
        assert_eq!(line.matches('\t').count(), 4, "{line}");
        assert!(!l.attributes_text().contains('\x1b'));
    }

    #[test]
    fn enumeration_names_in_any_spelling() {
        for s in ["SymmetricKey", "symmetric-key", "SYMMETRIC_KEY"] {
            assert_eq!(
                enum_value("ObjectType", "--type", s).unwrap(),
                object_type::SYMMETRIC_KEY
            );
        }
        assert_eq!(
            enum_value("State", "--state", "pre-active").unwrap(),
            state::PRE_ACTIVE
        );
        let e = enum_value("State", "--state", "gone")
            .unwrap_err()
            .to_string();
        assert!(e.contains("--state") && e.contains("Deactivated"), "{e}");
        assert!(operations("Get Nope").is_err());
        assert_eq!(operations("Get Encrypt").unwrap(), [op::GET, op::ENCRYPT]);
    }

    #[test]
    fn attributes_as_json_and_text() {
        let l = Listed {
            id: "7".into(),
            attributes: vec![
                Ttlv::new(
                    tag::OBJECT_TYPE,
                    Value::Enumeration(object_type::SYMMETRIC_KEY),
                ),
                Ttlv::new(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(256)),
                Ttlv::structure(
                    tag::NAME,
                    vec![Ttlv::new(tag::NAME_VALUE, Value::TextString("a".into()))],
                ),
                Ttlv::structure(
                    tag::NAME,
                    vec![Ttlv::new(tag::NAME_VALUE, Value::TextString("b".into()))],
                ),
            ],
        };
        let j = l.attributes_json();
        assert_eq!(j["attributes"]["ObjectType"], "SymmetricKey");
        assert_eq!(j["attributes"]["CryptographicLength"], 256);
        assert_eq!(j["attributes"]["Name"][1]["NameValue"], "b");
        let s = l.summary_json();
        assert_eq!(s["names"], json!(["a", "b"]));
        assert_eq!(s["state"], J::Null);
        assert_eq!(l.summary_line(), "7\tSymmetricKey\t-\ta,b\t-");
        assert!(l.attributes_text().contains("Cryptographic Length: 256\n"));
    }
    #[test]
    fn an_approval_request_as_the_server_lists_it() {
        let t = |tag, s: &str| Ttlv::new(tag, Value::TextString(s.into()));
        let listed = Ttlv::structure(
            tag::RESPONSE_PAYLOAD,
            vec![Ttlv::structure(
                vendor::tag::APPROVAL_REQUEST,
                vec![
                    t(vendor::tag::APPROVAL_ID, "00ff"),
                    t(vendor::tag::REQUESTER, "app"),
                    Ttlv::new(tag::OPERATION, Value::Enumeration(op::DESTROY)),
                    t(tag::UNIQUE_IDENTIFIER, "7"),
                    t(tag::OBJECT_GROUP, "payments"),
                    Ttlv::new(vendor::tag::APPROVALS_NEEDED, Value::Integer(2)),
                    t(vendor::tag::APPROVER, "ana"),
                    Ttlv::new(vendor::tag::REQUESTED_AT, Value::DateTime(0)),
                    Ttlv::new(vendor::tag::EXPIRES_AT, Value::DateTime(86_400)),
                    t(vendor::tag::APPROVAL_STATE, "pending"),
                ],
            )],
        );
        let a = approvals_of(&listed, "List Approvals").unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(
            a[0].line(),
            "00ff\tpending\tDestroy\t7\tpayments\tapp\t1/2 ana\t\
             1970-01-01T00:00:00+00:00\t1970-01-02T00:00:00+00:00"
        );
        assert_eq!(a[0].to_json()["approvers"], json!(["ana"]));
        // an answer without what a request must carry is an error, not a guess
        let incomplete = Ttlv::structure(
            tag::RESPONSE_PAYLOAD,
            vec![Ttlv::structure(
                vendor::tag::APPROVAL_REQUEST,
                vec![t(vendor::tag::APPROVAL_ID, "00ff")],
            )],
        );
        assert!(approvals_of(&incomplete, "List Approvals").is_err());
    }
}
