use super::Ctx;
use super::{required, single_part};
use crate::error::OpError;
use kmip_codec::message::{Bytes, FieldValue};
use kmip_codec::ops::{HashRequest, HashResponse};
use kmip_codec::vocab::enums::hashing_algorithm as ha;
use kmip_codec::vocab::tag;
use kmip_codec::Ttlv;
use openssl::hash::MessageDigest;

pub(crate) fn apply(_ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let req = HashRequest::decode(payload)?;
    single_part(
        &req.correlation_value,
        req.init_indicator,
        req.final_indicator,
    )?;
    let md = match req
        .cryptographic_parameters
        .child(tag::HASHING_ALGORITHM)
        .and_then(Ttlv::as_enum)
    {
        Some(ha::SHA_1) => MessageDigest::sha1(),
        Some(ha::SHA_224) => MessageDigest::sha224(),
        Some(ha::SHA_256) => MessageDigest::sha256(),
        Some(ha::SHA_384) => MessageDigest::sha384(),
        Some(ha::SHA_512) => MessageDigest::sha512(),
        Some(ha::SHA3_256) => MessageDigest::sha3_256(),
        Some(ha::SHA3_384) => MessageDigest::sha3_384(),
        Some(ha::SHA3_512) => MessageDigest::sha3_512(),
        _ => {
            return Err(OpError::InvalidField(
                "a supported Hashing Algorithm is required".into(),
            ))
        }
    };
    let h = openssl::hash::hash(md, required(&req.data, "Data")?)
        .map_err(|_| OpError::CryptographicFailure("hash".into()))?;
    Ok(HashResponse {
        data: Some(Bytes(h.to_vec())),
        ..Default::default()
    }
    .encode(payload.tag))
}
