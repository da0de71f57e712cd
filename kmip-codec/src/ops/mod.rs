//! One request and one response payload type per KMIP operation.
//!
//! The payload structures are generated from the specification's payload tables
//! (`tools/gen_ops.py`); this module dispatches on the Operation enumeration. An operation the
//! model does not know keeps its payload as a generic tree.

macro_rules! payload_enum {
    ($name:ident, $kind:ident, [ $( ($variant:ident, $ty:ident, $op:literal) ),* $(,)? ]) => {
        #[doc = concat!("The ", stringify!($kind), " Payload, typed by operation.")]
        #[derive(Clone, Debug, PartialEq)]
        pub enum $name {
            $( $variant($ty), )*
            /// An operation without a typed payload: the tree as received.
            Other(crate::ttlv::Ttlv),
        }

        impl $name {
            /// Decode the payload of `operation`.
            pub fn decode(operation: u32, payload: &Ttlv) -> Result<$name, crate::message::ModelError> {
                Ok(match operation {
                    $( $op => $name::$variant(<$ty as crate::message::FieldValue>::decode(payload)?), )*
                    _ => $name::Other(payload.clone()),
                })
            }

            /// Encode as a Request Payload or Response Payload structure.
            pub fn encode(&self) -> crate::ttlv::Ttlv {
                let tag = paste_tag!($kind);
                match self {
                    $( $name::$variant(p) => crate::message::FieldValue::encode(p, tag), )*
                    $name::Other(t) => crate::ttlv::Ttlv::new(tag, t.value.clone()),
                }
            }
        }
    };
}

macro_rules! paste_tag {
    (Request) => {
        crate::vocab::tag::REQUEST_PAYLOAD
    };
    (Response) => {
        crate::vocab::tag::RESPONSE_PAYLOAD
    };
}

// the payload fields and variants carry the names of the specification's payload tables, which
// are their documentation
#[allow(missing_docs)]
mod generated;

pub use generated::*;
