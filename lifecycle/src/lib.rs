//! lifecycle: where keys live. Managed objects and their attributes, the KMIP state machine,
//! the store, and the hardened core that alone holds key bytes. It knows nothing of networks.
// the one module that calls C (core/ffi.rs) allows it and says why
#![deny(unsafe_code)]
#![warn(unreachable_pub, missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod attributes;
mod budget;
pub mod core;
mod error;
pub mod object;

pub use budget::{Budget, Stop};
pub use error::LifecycleError;
pub use object::{Caller, LocateQuery, Manager, Txn};
pub mod state;
pub mod store;
