//! Our vendor operation Certificate Request: a PKCS#10 request for a stored CA key, signed in
//! the core, for an external root to issue (see `kmip_codec::vendor`).

use super::request_attributes;
use super::Ctx;
use crate::error::OpError;
use kmip_codec::vocab::tag;
use kmip_codec::{Ttlv, Value};

pub(crate) fn apply(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let given = payload
        .child(tag::UNIQUE_IDENTIFIER)
        .and_then(Ttlv::as_text)
        .map(str::to_owned);
    let id = ctx.uid(given.as_ref())?;
    let attrs = request_attributes(None, payload.child(tag::ATTRIBUTES))?;
    let subject = crate::ca::subject_of(&attrs)
        .ok_or_else(|| OpError::invalid("a certificate request needs x-ca-subject"))?;
    let der = ctx.txn.certificate_request(&id, &subject, ctx.now)?;
    Ok(Ttlv::structure(
        payload.tag,
        vec![
            Ttlv::new(tag::UNIQUE_IDENTIFIER, Value::TextString(id)),
            Ttlv::new(tag::DATA, Value::ByteString(der)),
        ],
    ))
}
