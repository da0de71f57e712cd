//! kmip-server: the mutual-TLS KMIP service. One request takes one way, each step a module:
//! `listener` (TLS, budgets) -> `session` or `https` (framing) -> `pipeline` (credentials,
//! caller, audit, commit) -> `batch` (the items) -> `ops` (one module per operation, in one
//! table) -> the lifecycle crate. `error` maps failures to each version's Result Reasons.
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod audit;
pub mod backup;
mod batch;
pub mod ca;
pub mod config;
pub mod error;
pub mod https;
pub mod listener;
pub mod metrics;
mod ops;
pub mod pipeline;
pub mod pki;
pub mod policy;
pub mod quorum;
pub mod session;

use lifecycle::Manager;

/// What every connection shares.
pub struct Server {
    pub manager: Manager,
    pub limits: config::Settings,
    /// Identities that reach every object.
    pub admins: Vec<String>,
    /// Whole object groups given to identities: identity -> (Object Group, operations).
    pub group_grants: policy::GroupGrants,
    /// Whole application namespaces given to identities: identity -> (namespace, operations).
    pub namespace_grants: policy::GroupGrants,
    pub audit: std::sync::Arc<audit::Audit>,
}

impl Server {
    /// The caller a client certificate's identity makes.
    pub fn caller(&self, identity: &str) -> lifecycle::Caller {
        lifecycle::Caller {
            identity: identity.to_owned(),
            admin: self.admins.iter().any(|a| a == identity),
            operation: None,
            groups: self.group_grants.get(identity).cloned().unwrap_or_default(),
            namespaces: self
                .namespace_grants
                .get(identity)
                .cloned()
                .unwrap_or_default(),
        }
    }
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
