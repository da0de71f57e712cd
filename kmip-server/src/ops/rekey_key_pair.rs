use super::Ctx;
use super::{key_pair_attributes, text};
use crate::error::OpError;
use kmip_codec::message::{FieldValue, Req};
use kmip_codec::ops::{ReKeyKeyPairRequest, ReKeyKeyPairResponse};
use kmip_codec::vocab::tag;
use kmip_codec::Ttlv;

pub(crate) fn apply(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let req = ReKeyKeyPairRequest::decode(payload)?;
    let given = req
        .private_key_unique_identifier
        .as_ref()
        .map(|t| {
            t.as_text().map(str::to_owned).ok_or_else(|| {
                OpError::invalid("Private Key Unique Identifier must be a Text String")
            })
        })
        .transpose()?;
    let id = ctx.uid(given.as_ref())?;
    let (common, private, public) = key_pair_attributes(
        (
            req.common_template_attribute.as_ref(),
            req.common_attributes.as_ref(),
        ),
        (
            req.private_key_template_attribute.as_ref(),
            req.private_key_attributes.as_ref(),
        ),
        (
            req.public_key_template_attribute.as_ref(),
            req.public_key_attributes.as_ref(),
        ),
    )?;
    let offset = super::rekey::offset(&req.offset)?;
    let (p, q) = ctx
        .txn
        .rekey_key_pair(&id, offset, common, private, public, ctx.now)?;
    ctx.placeholder = Some(p.id.clone());
    Ok(ReKeyKeyPairResponse {
        private_key_unique_identifier: Req(text(tag::PRIVATE_KEY_UNIQUE_IDENTIFIER, &p.id)),
        public_key_unique_identifier: Req(text(tag::PUBLIC_KEY_UNIQUE_IDENTIFIER, &q.id)),
        ..Default::default()
    }
    .encode(payload.tag))
}
