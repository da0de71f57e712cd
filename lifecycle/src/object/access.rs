//! Who reaches what: the caller, ownership, grants (direct, by group, by namespace), and the
//! one check each operation and Locate make before touching a record.

use super::*;

/// Who is asking. An object belongs to the identity that made it; another identity neither
/// finds it nor uses it (it is Not Found, so its existence does not leak) unless that identity
/// is an administrator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The identity of the client certificate.
    pub identity: String,
    /// An administrator reaches every object.
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

impl Txn {
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
    pub(super) fn visible(&self, r: &Record) -> bool {
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
    pub(super) fn findable(&self, r: &Record) -> bool {
        use kmip_codec::vocab::enums::operation as op;
        self.granted(r, |ops| {
            ops.contains(&op::LOCATE) || ops.contains(&op::GET_ATTRIBUTES)
        })
    }

    /// Whether the caller may perform its operation on a visible `r`.
    pub(super) fn permitted(&self, r: &Record) -> bool {
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
    pub(super) fn granted(&self, r: &Record, allows: impl Fn(&Vec<u32>) -> bool) -> bool {
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

    /// The index keys under which a caller that is not an administrator finds what it may
    /// know of (owner, grantee, group and namespace); `None` when it reaches everything.
    pub(super) fn reach_keys(&self) -> Option<Vec<Vec<u8>>> {
        use crate::store::{index_key, GRANTEE, OWNER};
        let c = self.caller.as_ref().filter(|c| !c.admin)?;
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
        Some(keys)
    }
}
