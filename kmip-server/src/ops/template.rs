//! Template objects named in a Template-Attribute (KMIP 1.0-1.2; deprecated in 1.3, still
//! answered by 1.3 and 1.4 servers). Self-encrypting drives and storage arrays register a
//! Template and name it in the Template-Attribute of Create, Create Key Pair, Register, Derive
//! Key and Re-key. Before the operation runs, each name is replaced by the attributes of the
//! Template it names, among the caller's objects: the operation then sees an ordinary
//! Template-Attribute. Attributes given in the request win over the template's.

use super::Ctx;
use crate::error::OpError;
use kmip_codec::vocab::enums::{object_type as ot, operation as op};
use kmip_codec::vocab::tag;
use kmip_codec::{Tag, Ttlv};

/// The Template-Attribute fields of the operations that may name templates.
fn template_fields(operation: u32) -> &'static [Tag] {
    match operation {
        op::CREATE | op::REGISTER | op::DERIVE_KEY | op::RE_KEY => &[tag::TEMPLATE_ATTRIBUTE],
        op::CREATE_KEY_PAIR | op::RE_KEY_KEY_PAIR => &[
            tag::COMMON_TEMPLATE_ATTRIBUTE,
            tag::PRIVATE_KEY_TEMPLATE_ATTRIBUTE,
            tag::PUBLIC_KEY_TEMPLATE_ATTRIBUTE,
        ],
        _ => &[],
    }
}

/// `payload` with every template name replaced by that template's attributes; `None` when
/// it names no template.
pub(crate) fn expand(
    ctx: &Ctx<'_>,
    operation: u32,
    payload: &Ttlv,
) -> Result<Option<Ttlv>, OpError> {
    let fields = template_fields(operation);
    let names = |t: &Ttlv| t.children_with(tag::NAME).count();
    if !payload
        .children()
        .iter()
        .any(|c| fields.contains(&c.tag) && names(c) > 0)
    {
        return Ok(None);
    }
    let mut out = payload.clone();
    for field in out.children_mut().into_iter().flatten() {
        if !fields.contains(&field.tag) || names(field) == 0 {
            continue;
        }
        let given: Vec<Ttlv> = field.children_with(tag::ATTRIBUTE).cloned().collect();
        let mut from_templates = Vec::new();
        for name in field.children_with(tag::NAME) {
            from_templates.extend(attributes_of(ctx, name)?);
        }
        // a request's own single attribute wins over a template's of the same name
        let attribute_name = |a: &Ttlv| {
            a.child(tag::ATTRIBUTE_NAME)
                .and_then(Ttlv::as_text)
                .map(str::to_owned)
        };
        let named: Vec<String> = given.iter().filter_map(attribute_name).collect();
        from_templates
            .retain(|a| attribute_name(a).is_none_or(|n| !named.contains(&n) && n != "Name"));
        *field = Ttlv::structure(field.tag, [from_templates, given].concat());
    }
    Ok(Some(out))
}

/// The 1.x Attributes a Template object holds, found by its Name among the objects the caller
/// may use (the newest, when names repeat).
fn attributes_of(ctx: &Ctx<'_>, name: &Ttlv) -> Result<Vec<Ttlv>, OpError> {
    let value = name
        .child(tag::NAME_VALUE)
        .and_then(Ttlv::as_text)
        .ok_or_else(|| OpError::invalid("a template Name needs a Name Value"))?;
    let by_name = Ttlv::structure(
        tag::NAME,
        vec![Ttlv::new(
            tag::NAME_VALUE,
            kmip_codec::Value::TextString(value.to_owned()),
        )],
    );
    let found = ctx.txn.locate(
        &lifecycle::LocateQuery {
            attributes: vec![
                by_name,
                Ttlv::new(
                    tag::OBJECT_TYPE,
                    kmip_codec::Value::Enumeration(ot::TEMPLATE),
                ),
            ],
            maximum_items: Some(1),
            ..Default::default()
        },
        ctx.now,
    )?;
    let id = found
        .first()
        .ok_or_else(|| OpError::ItemNotFound(format!("no Template named {value:?}")))?;
    let (_, template) = ctx.txn.with_operation(op::GET).export(id, ctx.now)?;
    Ok(template.children_with(tag::ATTRIBUTE).cloned().collect())
}
