//! Interop (KMIP 2.1 §6.1.26): test harnesses mark where a test case begins and ends. The
//! specification says it SHALL NOT be available in a production server, so it answers only
//! when the server runs with `--interop`. Begin and End are recorded (in the audit log, like
//! every request); Reset, which would have to undo a test case's changes, is not offered.

use super::Ctx;
use crate::error::OpError;
use kmip_codec::message::FieldValue;
use kmip_codec::ops::{InteropRequest, InteropResponse};
use kmip_codec::vocab::enums::interop_function as f;
use kmip_codec::Ttlv;

pub(crate) fn apply(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    if !ctx.settings.interop {
        return Err(OpError::OperationNotSupported(
            "Interop is for test servers only (start with --interop)".into(),
        ));
    }
    let req = InteropRequest::decode(payload)?;
    match req.interop_function.0 .0 {
        f::BEGIN | f::END => Ok(InteropResponse::default().encode(payload.tag)),
        f::RESET => Err(OpError::FeatureNotSupported(
            "Interop Reset is not supported".into(),
        )),
        other => Err(OpError::invalid(format!(
            "unknown Interop Function 0x{other:X}"
        ))),
    }
}
