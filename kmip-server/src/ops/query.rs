use super::Ctx;
use super::OPERATIONS;
use crate::error::OpError;
use kmip_codec::message::{Enum, FieldValue};
use kmip_codec::ops::{QueryRequest, QueryResponse};
use kmip_codec::vocab::enums::{object_type as ot, query_function as qf};
use kmip_codec::vocab::{self, tag};
use kmip_codec::Ttlv;

/// Object types the store keeps; answered per version (Template and PGP Key are 1.x/2.x only
/// as the vocabulary says).
const OBJECTS: &[u32] = &[
    ot::CERTIFICATE,
    ot::SYMMETRIC_KEY,
    ot::PUBLIC_KEY,
    ot::PRIVATE_KEY,
    ot::SPLIT_KEY,
    ot::SECRET_DATA,
    ot::OPAQUE_OBJECT,
];

fn defined(table: &str, v: u32, major: i32) -> bool {
    vocab::enum_def(table)
        .and_then(|d| d.by_value(v))
        .is_some_and(|e| e.in_major(major))
}

pub(crate) fn apply(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let req = QueryRequest::decode(payload)?;
    let major = ctx.major();
    let mut resp = QueryResponse::default();
    for f in &req.query_function {
        match f.as_enum().unwrap_or(0) {
            qf::QUERY_OPERATIONS => {
                resp.operation = OPERATIONS
                    .iter()
                    .filter(|o| o.queried && defined("Operation", o.code, major))
                    .map(|o| Enum(o.code))
                    .collect()
            }
            qf::QUERY_OBJECTS => {
                resp.object_type = OBJECTS
                    .iter()
                    .filter(|o| defined("ObjectType", **o, major))
                    .map(|o| Enum(*o))
                    .collect()
            }
            qf::QUERY_SERVER_INFORMATION => {
                resp.vendor_identification = Some("kmip-rs".into());
                if major >= 2 {
                    resp.server_information = Some(Ttlv::structure(
                        tag::SERVER_INFORMATION,
                        vec![
                            super::text(tag::SERVER_NAME, "kmip-server"),
                            super::text(tag::SERVER_VERSION, env!("CARGO_PKG_VERSION")),
                        ],
                    ));
                }
            }
            qf::QUERY_CAPABILITIES => {
                let flag = |t, v| Ttlv::new(t, kmip_codec::Value::Boolean(v));
                resp.capability_information = vec![Ttlv::structure(
                    tag::CAPABILITY_INFORMATION,
                    vec![
                        flag(tag::STREAMING_CAPABILITY, true),
                        flag(tag::ASYNCHRONOUS_CAPABILITY, false),
                        flag(tag::ATTESTATION_CAPABILITY, false),
                        flag(tag::BATCH_UNDO_CAPABILITY, true),
                        flag(tag::BATCH_CONTINUE_CAPABILITY, true),
                    ],
                )];
            }
            // namespaces, extensions, attestation, RNGs, profiles, capabilities...: we have
            // none to report, and an empty answer says so
            _ => {}
        }
    }
    Ok(resp.encode(payload.tag))
}
