use super::Ctx;
use super::{key_pair_attributes, text};
use crate::error::OpError;
use kmip_codec::message::{FieldValue, Req};
use kmip_codec::ops::{CreateKeyPairRequest, CreateKeyPairResponse};
use kmip_codec::vocab::tag;
use kmip_codec::Ttlv;

pub(crate) fn apply(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let req = CreateKeyPairRequest::decode(payload)?;
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
    let (p, q) = ctx.txn.create_key_pair(common, private, public, ctx.now)?;
    // the ID Placeholder names the private key (KMIP 1.4 section 4.2)
    ctx.placeholder = Some(p.id.clone());
    Ok(CreateKeyPairResponse {
        private_key_unique_identifier: Req(text(tag::PRIVATE_KEY_UNIQUE_IDENTIFIER, &p.id)),
        public_key_unique_identifier: Req(text(tag::PUBLIC_KEY_UNIQUE_IDENTIFIER, &q.id)),
        ..Default::default()
    }
    .encode(payload.tag))
}
