//! kmip-codec: the KMIP wire formats (TTLV, KMIP XML, KMIP JSON) and the KMIP 1.0-2.1 message
//! model. It knows nothing of servers, stores or keys.
#![forbid(unsafe_code)]
#![warn(unreachable_pub, missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod ttlv;
pub mod vocab;

pub use ttlv::{ItemType, Tag, Ttlv, Value};
pub mod attributes;
pub mod json;
pub mod message;
pub mod ops;
pub mod text;
pub mod time;
pub mod vendor;
pub mod xml;

pub use text::TextError;
pub use ttlv::{decode, encode, frame_length, DecodeError, Limits};
