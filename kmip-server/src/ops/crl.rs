//! Our vendor operation CRL { Unique Identifier of a CA certificate } -> { Unique Identifier,
//! Data: the CA's new CRL, DER }. KMIP has no operation for CRLs; the CA's key signs them here.

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
    let der = ctx.txn.crl(&id, ctx.now)?;
    Ok(Ttlv::structure(
        payload.tag,
        vec![
            Ttlv::new(tag::UNIQUE_IDENTIFIER, Value::TextString(id)),
            Ttlv::new(tag::DATA, Value::ByteString(der)),
        ],
    ))
}
