use super::Ctx;
use crate::error::OpError;
use crate::pipeline::VERSIONS;
use kmip_codec::message::{FieldValue, ProtocolVersion};
use kmip_codec::ops::{DiscoverVersionsRequest, DiscoverVersionsResponse};
use kmip_codec::vocab::tag;
use kmip_codec::Ttlv;

pub(crate) fn apply(_ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let req = DiscoverVersionsRequest::decode(payload)?;
    let ours = |v: (i32, i32)| ProtocolVersion::new(v.0, v.1).encode(tag::PROTOCOL_VERSION);
    let versions: Vec<Ttlv> = if req.protocol_version.is_empty() {
        VERSIONS.iter().map(|v| ours(*v)).collect()
    } else {
        // those of the client's list that we speak, in the client's order
        let mut out = Vec::new();
        for pv in &req.protocol_version {
            let v = ProtocolVersion::decode(pv)?;
            if VERSIONS.contains(&(v.major.0, v.minor.0)) {
                out.push(ours((v.major.0, v.minor.0)));
            }
        }
        out
    };
    Ok(DiscoverVersionsResponse {
        protocol_version: versions,
    }
    .encode(payload.tag))
}
