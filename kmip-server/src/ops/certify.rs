//! Certify: a certificate for a stored public key or a PKCS#10 request, signed by a CA held
//! here, as its profile allows (see `crate::ca`).

use super::request_attributes;
use super::Ctx;
use crate::ca;
use crate::error::OpError;
use kmip_codec::message::{FieldValue, Req};
use kmip_codec::ops::{CertifyRequest, CertifyResponse};
use kmip_codec::vocab::enums::certificate_request_type as crt;
use kmip_codec::Ttlv;
use lifecycle::object::certify::ToCertify;

pub(crate) fn apply(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let req = CertifyRequest::decode(payload)?;
    let attrs = request_attributes(req.template_attribute.as_ref(), req.attributes.as_ref())?;
    let csr = match &req.certificate_request_value {
        None => None,
        Some(v) => {
            let der = match req.certificate_request_type.map(|t| t.0) {
                Some(crt::PKCS_10) | None => v.0.clone(),
                Some(crt::PEM) => openssl::x509::X509Req::from_pem(&v.0)
                    .and_then(|r| r.to_der())
                    .map_err(|_| OpError::InvalidCsr("not a PEM PKCS#10 request".into()))?,
                Some(other) => {
                    return Err(OpError::FeatureNotSupported(format!(
                        "certificate request type 0x{other:X}"
                    )))
                }
            };
            Some(ca::parse_csr(&der)?)
        }
    };
    let request = ca::request(&ctx.settings.profiles, &attrs, csr.as_ref(), ctx.now)?;
    let key_id;
    let subject = match &csr {
        Some(c) => ToCertify::Request { spki: &c.spki },
        None => {
            key_id = ctx.uid(req.unique_identifier.as_ref())?;
            ToCertify::PublicKey(&key_id)
        }
    };
    let r = ctx
        .txn
        .certify(subject, request.issuer.as_deref(), request.spec, ctx.now)?;
    ctx.placeholder = Some(r.id.clone());
    Ok(CertifyResponse {
        unique_identifier: Req(r.id),
        ..Default::default()
    }
    .encode(payload.tag))
}
