//! Log (KMIP 2.1 §6.1.28): a client's message for the server's log. It goes to the server log
//! (as text; the audit log records that the request was made).

use super::Ctx;
use crate::error::OpError;
use kmip_codec::message::FieldValue;
use kmip_codec::ops::{LogRequest, LogResponse};
use kmip_codec::Ttlv;

pub(crate) fn apply(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let req = LogRequest::decode(payload)?;
    tracing::info!(identity = ctx.identity, message = %req.log_message.0, "client log message");
    Ok(LogResponse::default().encode(payload.tag))
}
