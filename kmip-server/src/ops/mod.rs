//! One module per KMIP operation. Each decodes its typed request payload (kmip-codec's
//! `ops`), calls the lifecycle, and builds its typed response payload. An operation not
//! listed here answers Operation Not Supported.

mod activate;
mod archive;
mod attribute_changes;
mod cancel;
mod certificate_request;
mod certify;
mod check;
mod create;
mod create_key_pair;
mod crl;
mod decrypt;
mod derive_key;
mod destroy;
mod discover_versions;
mod encrypt;
mod get;
mod get_attribute_list;
mod get_attributes;
mod get_usage_allocation;
mod grant;
mod hash;
mod import_ca;
mod interop;
mod locate;
mod log;
mod mac;
mod mac_verify;
mod multipart;
mod obtain_lease;
mod poll;
mod query;
mod recover;
mod register;
mod rekey;
mod rekey_key_pair;
mod revoke;
mod rng_retrieve;
mod rng_seed;
mod sign;
mod signature_verify;
mod template;

use crate::dispatch::{Ctx, OpError};
use kmip_codec::attributes::{to_v1, to_v2};
use kmip_codec::vocab::enums::{operation as op, result_reason as rr};
use kmip_codec::vocab::tag;
use kmip_codec::{Ttlv, Value};
use lifecycle::store::Record;

/// The standard operations this server implements, for Query. Our vendor operations (grants)
/// are not listed: clients that map the Operation enumeration onto a closed set (PyKMIP) reject
/// values they do not know.
pub const IMPLEMENTED: &[u32] = &[
    op::CREATE,
    op::CREATE_KEY_PAIR,
    op::CERTIFY,
    op::REGISTER,
    op::LOCATE,
    op::GET,
    op::GET_ATTRIBUTES,
    op::GET_ATTRIBUTE_LIST,
    op::ADD_ATTRIBUTE,
    op::MODIFY_ATTRIBUTE,
    op::DELETE_ATTRIBUTE,
    op::SET_ATTRIBUTE,
    op::ACTIVATE,
    op::REVOKE,
    op::DESTROY,
    op::QUERY,
    op::DISCOVER_VERSIONS,
    op::ENCRYPT,
    op::DECRYPT,
    op::SIGN,
    op::SIGNATURE_VERIFY,
    op::MAC,
    op::MAC_VERIFY,
    op::DERIVE_KEY,
    op::RNG_RETRIEVE,
    op::RNG_SEED,
    op::OBTAIN_LEASE,
    op::GET_USAGE_ALLOCATION,
    op::HASH,
    op::RE_KEY,
    op::RE_KEY_KEY_PAIR,
    op::CHECK,
    op::POLL,
    op::CANCEL,
    op::ARCHIVE,
    op::RECOVER,
    op::LOG,
];

pub fn apply(ctx: &mut Ctx<'_>, operation: u32, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let expanded = template::expand(ctx, operation, payload)?;
    let payload = expanded.as_ref().unwrap_or(payload);
    match operation {
        op::CREATE => create::apply(ctx, payload),
        op::CREATE_KEY_PAIR => create_key_pair::apply(ctx, payload),
        op::REGISTER => register::apply(ctx, payload),
        op::LOCATE => locate::apply(ctx, payload),
        op::GET => get::apply(ctx, payload),
        op::GET_ATTRIBUTES => get_attributes::apply(ctx, payload),
        op::GET_ATTRIBUTE_LIST => get_attribute_list::apply(ctx, payload),
        op::ADD_ATTRIBUTE => attribute_changes::add(ctx, payload),
        op::MODIFY_ATTRIBUTE => attribute_changes::modify(ctx, payload),
        op::DELETE_ATTRIBUTE => attribute_changes::delete(ctx, payload),
        op::SET_ATTRIBUTE => attribute_changes::set(ctx, payload),
        op::ACTIVATE => activate::apply(ctx, payload),
        op::REVOKE => revoke::apply(ctx, payload),
        op::DESTROY => destroy::apply(ctx, payload),
        op::QUERY => query::apply(ctx, payload),
        op::DISCOVER_VERSIONS => discover_versions::apply(ctx, payload),
        op::ENCRYPT => encrypt::apply(ctx, payload),
        op::DECRYPT => decrypt::apply(ctx, payload),
        op::SIGN => sign::apply(ctx, payload),
        op::SIGNATURE_VERIFY => signature_verify::apply(ctx, payload),
        op::MAC => mac::apply(ctx, payload),
        op::MAC_VERIFY => mac_verify::apply(ctx, payload),
        op::DERIVE_KEY => derive_key::apply(ctx, payload),
        op::RNG_RETRIEVE => rng_retrieve::apply(ctx, payload),
        op::RNG_SEED => rng_seed::apply(ctx, payload),
        op::OBTAIN_LEASE => obtain_lease::apply(ctx, payload),
        op::GET_USAGE_ALLOCATION => get_usage_allocation::apply(ctx, payload),
        op::HASH => hash::apply(ctx, payload),
        op::RE_KEY => rekey::apply(ctx, payload),
        op::RE_KEY_KEY_PAIR => rekey_key_pair::apply(ctx, payload),
        op::CHECK => check::apply(ctx, payload),
        op::POLL => poll::apply(ctx, payload),
        op::CANCEL => cancel::apply(ctx, payload),
        op::ARCHIVE => archive::apply(ctx, payload),
        op::RECOVER => recover::apply(ctx, payload),
        op::INTEROP => interop::apply(ctx, payload),
        op::LOG => log::apply(ctx, payload),
        crate::policy::vendor::GRANT => grant::grant(ctx, payload),
        crate::policy::vendor::LIST_GRANTS => grant::list(ctx, payload),
        crate::policy::vendor::CRL => crl::apply(ctx, payload),
        crate::policy::vendor::CERTIFICATE_REQUEST => certificate_request::apply(ctx, payload),
        crate::policy::vendor::IMPORT_CA => import_ca::apply(ctx, payload),
        crate::policy::vendor::TRUST_WRAPPING_KEY => grant::trust_wrapping_key(ctx, payload),
        op::CERTIFY => certify::apply(ctx, payload),
        other => Err(OpError::new(
            rr::OPERATION_NOT_SUPPORTED,
            format!("operation 0x{other:X} is not supported"),
        )),
    }
}

/// The attributes of a request as 2.x items: from a 1.x Template-Attribute or 2.x Attributes.
pub fn request_attributes(
    template_attribute: Option<&Ttlv>,
    attributes: Option<&Ttlv>,
) -> Result<Vec<Ttlv>, OpError> {
    let mut out = Vec::new();
    if let Some(t) = template_attribute {
        if t.child(tag::NAME).is_some() {
            return Err(OpError::new(
                rr::FEATURE_NOT_SUPPORTED,
                "templates are named in Create, Create Key Pair, Register, Derive Key and Re-key",
            ));
        }
        out.extend(to_v2(t.children()).map_err(|e| OpError::invalid(e.to_string()))?);
    }
    if let Some(a) = attributes {
        out.extend(a.children().iter().cloned());
    }
    Ok(out)
}

/// `attrs` without an Object Type among them: EDB's 2.1 client repeats the request's Object
/// Type inside the Attributes of Create. The same value is accepted (and dropped: it is the
/// request's field); another is Invalid Field.
pub fn without_object_type(attrs: Vec<Ttlv>, object_type: u32) -> Result<Vec<Ttlv>, OpError> {
    if attrs
        .iter()
        .any(|a| a.tag == tag::OBJECT_TYPE && a.as_enum() != Some(object_type))
    {
        return Err(OpError::invalid(
            "the Object Type among the attributes differs from the request's",
        ));
    }
    Ok(attrs
        .into_iter()
        .filter(|a| a.tag != tag::OBJECT_TYPE)
        .collect())
}

/// A 1.x Template-Attribute and a 2.x Attributes structure, either of which may be present.
pub type AttributeSources<'a> = (Option<&'a Ttlv>, Option<&'a Ttlv>);

/// The common, private-key and public-key attributes of Create Key Pair and Re-key Key Pair.
pub type KeyPairAttributes = (Vec<Ttlv>, Vec<Ttlv>, Vec<Ttlv>);

/// [`KeyPairAttributes`] from each part's Template-Attribute or Attributes.
pub fn key_pair_attributes(
    common: AttributeSources<'_>,
    private: AttributeSources<'_>,
    public: AttributeSources<'_>,
) -> Result<KeyPairAttributes, OpError> {
    Ok((
        request_attributes(common.0, common.1)?,
        request_attributes(private.0, private.1)?,
        request_attributes(public.0, public.1)?,
    ))
}

/// One attribute of a request: a 1.x Attribute structure, or the single item inside a 2.x
/// New Attribute / Current Attribute wrapper.
pub fn one_attribute(
    v1: Option<&Ttlv>,
    v2_wrapper: Option<&Ttlv>,
) -> Result<Option<Ttlv>, OpError> {
    if let Some(a) = v1 {
        return kmip_codec::attributes::attribute_to_v2(a)
            .map(Some)
            .map_err(|e| OpError::invalid(e.to_string()));
    }
    match v2_wrapper.map(Ttlv::children) {
        None => Ok(None),
        Some([one]) => Ok(Some(one.clone())),
        Some(_) => Err(OpError::invalid("expected exactly one attribute")),
    }
}

/// Every attribute of a record as 2.x items, the record's own fields first.
pub fn all_attributes(r: &Record) -> Vec<Ttlv> {
    let mut v = vec![
        Ttlv::new(tag::UNIQUE_IDENTIFIER, Value::TextString(r.id.clone())),
        Ttlv::new(tag::OBJECT_TYPE, Value::Enumeration(r.object_type)),
        Ttlv::new(tag::STATE, Value::Enumeration(r.state.to_kmip())),
    ];
    v.extend(r.attributes.iter().cloned());
    v.extend(lifecycle::object::implicit_attributes(r));
    // 2.x names a key's Key Format Type among its attributes: the one its Digest was taken in
    if let Some(f) = r
        .attribute(tag::DIGEST)
        .and_then(|d| d.child(tag::KEY_FORMAT_TYPE))
    {
        v.push(f.clone());
    }
    v
}

/// Attributes for a response in the client's version: only those its version defines, as
/// 1.x Attribute structures or 2.x items.
pub fn response_attributes(ctx: &Ctx<'_>, items: Vec<Ttlv>) -> Vec<Ttlv> {
    let major = ctx.major();
    let kept: Vec<Ttlv> = items
        .into_iter()
        .filter(|i| {
            i.tag == tag::UNIQUE_IDENTIFIER
                || i.tag == tag::OBJECT_TYPE
                || lifecycle::attributes::defined_in(i, major)
        })
        .collect();
    if major >= 2 {
        kept
    } else {
        to_v1(&kept).unwrap_or_default()
    }
}

pub fn text(t: kmip_codec::Tag, s: &str) -> Ttlv {
    Ttlv::new(t, Value::TextString(s.into()))
}

/// For operations without multi-part support (Hash): a request that starts or continues a
/// stream is refused rather than treated as single-part.
pub fn single_part(
    correlation: &Option<kmip_codec::message::Bytes>,
    init: Option<bool>,
    fin: Option<bool>,
) -> Result<(), OpError> {
    if correlation.is_some()
        || init == Some(true) && fin != Some(true)
        || fin == Some(true) && init != Some(true)
    {
        return Err(OpError::new(
            rr::FEATURE_NOT_SUPPORTED,
            "multi-part cryptographic operations are not supported",
        ));
    }
    Ok(())
}

pub fn params(t: &Option<Ttlv>) -> lifecycle::core::crypto::CryptoParams {
    lifecycle::core::crypto::CryptoParams::from_ttlv(t.as_ref())
}

pub fn required<'a>(
    data: &'a Option<kmip_codec::message::Bytes>,
    what: &str,
) -> Result<&'a [u8], OpError> {
    data.as_ref()
        .map(|b| b.0.as_slice())
        .ok_or_else(|| OpError::new(rr::MISSING_DATA, format!("{what} is required")))
}

pub fn validity(valid: bool) -> Ttlv {
    use kmip_codec::vocab::enums::validity_indicator as vi;
    Ttlv::new(
        tag::VALIDITY_INDICATOR,
        Value::Enumeration(if valid { vi::VALID } else { vi::INVALID }),
    )
}
