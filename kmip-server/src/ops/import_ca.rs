//! Our vendor operation Import CA: the certificate an external root issued for a CA key held
//! here (see `kmip_codec::vendor`).

use super::Ctx;
use crate::error::OpError;
use kmip_codec::vocab::tag;
use kmip_codec::{Ttlv, Value};

pub(crate) fn apply(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let given = payload
        .child(tag::UNIQUE_IDENTIFIER)
        .and_then(Ttlv::as_text)
        .map(str::to_owned);
    let public = ctx.uid(given.as_ref())?;
    let der = payload
        .child(tag::CERTIFICATE_VALUE)
        .and_then(Ttlv::as_bytes)
        .ok_or_else(|| OpError::invalid("Import CA needs a Certificate Value"))?;
    let ca = crate::ca::parse_ca_certificate(der)?;
    let r = ctx.txn.import_ca(&public, ca, ctx.now)?;
    ctx.placeholder = Some(r.id.clone());
    Ok(Ttlv::structure(
        payload.tag,
        vec![Ttlv::new(tag::UNIQUE_IDENTIFIER, Value::TextString(r.id))],
    ))
}
