//! One module per KMIP operation. Each decodes its typed request payload (kmip-codec's
//! `ops`), calls the lifecycle, and builds its typed response payload. An operation not
//! listed here answers Operation Not Supported.

mod activate;
mod approvals;
mod archive;
mod attribute_changes;
mod backup;
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

use crate::config::Settings;
use crate::error::OpError;
use kmip_codec::attributes::{to_v1, to_v2};
use kmip_codec::vendor::operation as vendor;
use kmip_codec::vocab::enums::operation as op;
use kmip_codec::vocab::tag;
use kmip_codec::{Ttlv, Value};
use lifecycle::store::Record;
use lifecycle::Txn;

/// What one operation may use: the lifecycle, the caller, the clock and the message's version.
pub(crate) struct Ctx<'a> {
    /// The message's transaction, acting for the caller.
    pub txn: &'a Txn,
    pub identity: &'a str,
    pub now: i64,
    pub version: (i32, i32),
    /// The identifier the previous item of this batch created or named (the ID Placeholder).
    pub placeholder: Option<String>,
    /// The operations the caller's policy allows, if it has one.
    pub allowed: Option<&'a [u32]>,
    pub settings: &'a Settings,
    /// The message's: canceled when the client has gone, and spent --max-locate-secs after
    /// the message began (Locate checks it; one message of many Locates gets no more).
    pub budget: &'a lifecycle::Budget,
    /// The message's Asynchronous Indicator: the client polls for what needs approvals.
    pub asynchronous: bool,
}

impl Ctx<'_> {
    pub(crate) fn major(&self) -> i32 {
        self.version.0
    }

    /// The Unique Identifier of a request, or the ID Placeholder when it is omitted.
    pub(crate) fn uid(&self, given: Option<&String>) -> Result<String, OpError> {
        match given {
            Some(t) => Ok(t.clone()),
            None => self.placeholder.clone().ok_or_else(|| {
                OpError::ItemNotFound("no Unique Identifier and no ID Placeholder".into())
            }),
        }
    }
}

type Handler = fn(&mut Ctx<'_>, &Ttlv) -> Result<Ttlv, OpError>;

/// One operation the server answers: the one table that drives dispatch, Query, the
/// read/write classification of a message and the names policies use.
pub(crate) struct Operation {
    pub code: u32,
    /// The KMIP XML name, or ours for a vendor operation: what `--policy`, grants and the
    /// command line say.
    pub name: &'static str,
    /// Answered on the async worker itself, which is cheaper than a handoff to the blocking
    /// pool: it does no long work and waits on nothing but the store's memory-mapped reads and,
    /// when it writes, a group commit that it awaits without a thread (reads, and the writes
    /// of one object's state and attributes; not key pair generation nor a CA's signature).
    /// Not Locate: one may scan every record (a million keys: seconds), and two on the two
    /// workers stalled every client.
    pub worker: bool,
    /// Listed by Query. Our vendor operations are not (PyKMIP maps the enumeration onto a
    /// closed set, and rejects values it does not know), nor is Interop (test servers only).
    pub queried: bool,
    handler: Handler,
}

/// A standard operation, listed by Query.
const fn kmip(code: u32, name: &'static str, worker: bool, handler: Handler) -> Operation {
    Operation {
        code,
        name,
        worker,
        queried: true,
        handler,
    }
}

/// An operation Query does not list.
const fn unlisted(code: u32, name: &'static str, handler: Handler) -> Operation {
    Operation {
        code,
        name,
        worker: false,
        queried: false,
        handler,
    }
}

/// In the order Query lists them.
pub(crate) static OPERATIONS: &[Operation] = &[
    kmip(op::CREATE, "Create", true, create::apply),
    kmip(
        op::CREATE_KEY_PAIR,
        "CreateKeyPair",
        false,
        create_key_pair::apply,
    ),
    kmip(op::CERTIFY, "Certify", false, certify::apply),
    kmip(op::REGISTER, "Register", false, register::apply),
    kmip(op::LOCATE, "Locate", false, locate::apply),
    kmip(op::GET, "Get", true, get::apply),
    kmip(
        op::GET_ATTRIBUTES,
        "GetAttributes",
        true,
        get_attributes::apply,
    ),
    kmip(
        op::GET_ATTRIBUTE_LIST,
        "GetAttributeList",
        true,
        get_attribute_list::apply,
    ),
    kmip(
        op::ADD_ATTRIBUTE,
        "AddAttribute",
        true,
        attribute_changes::add,
    ),
    kmip(
        op::MODIFY_ATTRIBUTE,
        "ModifyAttribute",
        true,
        attribute_changes::modify,
    ),
    kmip(
        op::DELETE_ATTRIBUTE,
        "DeleteAttribute",
        true,
        attribute_changes::delete,
    ),
    kmip(
        op::SET_ATTRIBUTE,
        "SetAttribute",
        true,
        attribute_changes::set,
    ),
    kmip(op::ACTIVATE, "Activate", true, activate::apply),
    kmip(op::REVOKE, "Revoke", true, revoke::apply),
    kmip(op::DESTROY, "Destroy", true, destroy::apply),
    kmip(op::QUERY, "Query", true, query::apply),
    kmip(
        op::DISCOVER_VERSIONS,
        "DiscoverVersions",
        true,
        discover_versions::apply,
    ),
    kmip(op::ENCRYPT, "Encrypt", true, encrypt::apply),
    kmip(op::DECRYPT, "Decrypt", true, decrypt::apply),
    kmip(op::SIGN, "Sign", true, sign::apply),
    kmip(
        op::SIGNATURE_VERIFY,
        "SignatureVerify",
        true,
        signature_verify::apply,
    ),
    kmip(op::MAC, "MAC", true, mac::apply),
    kmip(op::MAC_VERIFY, "MACVerify", true, mac_verify::apply),
    kmip(op::DERIVE_KEY, "DeriveKey", false, derive_key::apply),
    kmip(op::RNG_RETRIEVE, "RNGRetrieve", true, rng_retrieve::apply),
    kmip(op::RNG_SEED, "RNGSeed", false, rng_seed::apply),
    kmip(op::OBTAIN_LEASE, "ObtainLease", true, obtain_lease::apply),
    kmip(
        op::GET_USAGE_ALLOCATION,
        "GetUsageAllocation",
        false,
        get_usage_allocation::apply,
    ),
    kmip(op::HASH, "Hash", true, hash::apply),
    kmip(op::RE_KEY, "ReKey", false, rekey::apply),
    kmip(
        op::RE_KEY_KEY_PAIR,
        "ReKeyKeyPair",
        false,
        rekey_key_pair::apply,
    ),
    kmip(op::CHECK, "Check", true, check::apply),
    kmip(op::POLL, "Poll", true, poll::apply),
    kmip(op::CANCEL, "Cancel", true, cancel::apply),
    kmip(op::ARCHIVE, "Archive", false, archive::apply),
    kmip(op::RECOVER, "Recover", false, recover::apply),
    kmip(op::LOG, "Log", false, log::apply),
    unlisted(op::INTEROP, "Interop", interop::apply),
    unlisted(vendor::GRANT, "Grant", grant::grant),
    unlisted(vendor::LIST_GRANTS, "ListGrants", grant::list),
    unlisted(vendor::CRL, "CRL", crl::apply),
    unlisted(
        vendor::CERTIFICATE_REQUEST,
        "CertificateRequest",
        certificate_request::apply,
    ),
    unlisted(vendor::IMPORT_CA, "ImportCA", import_ca::apply),
    unlisted(
        vendor::TRUST_WRAPPING_KEY,
        "TrustWrappingKey",
        grant::trust_wrapping_key,
    ),
    unlisted(vendor::BACKUP, "Backup", backup::apply),
    unlisted(vendor::LIST_APPROVALS, "ListApprovals", approvals::list),
    unlisted(vendor::APPROVE, "Approve", approvals::approve),
    unlisted(vendor::DENY, "Deny", approvals::deny),
];

pub(crate) fn find(code: u32) -> Option<&'static Operation> {
    OPERATIONS.iter().find(|o| o.code == code)
}

pub(crate) fn by_name(name: &str) -> Option<&'static Operation> {
    OPERATIONS.iter().find(|o| o.name == name)
}

/// Whether the operation is answered on the async worker (see [`Operation::worker`]); an
/// unknown one is not.
pub(crate) fn on_worker(code: u32) -> bool {
    find(code).is_some_and(|o| o.worker)
}

pub(crate) fn apply(ctx: &mut Ctx<'_>, operation: u32, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let Some(o) = find(operation) else {
        return Err(OpError::OperationNotSupported(format!(
            "operation 0x{operation:X} is not supported"
        )));
    };
    let expanded = template::expand(ctx, operation, payload)?;
    (o.handler)(ctx, expanded.as_ref().unwrap_or(payload))
}

/// The attributes of a request as 2.x items: from a 1.x Template-Attribute or 2.x Attributes.
pub(crate) fn request_attributes(
    template_attribute: Option<&Ttlv>,
    attributes: Option<&Ttlv>,
) -> Result<Vec<Ttlv>, OpError> {
    let mut out = Vec::new();
    if let Some(t) = template_attribute {
        if t.child(tag::NAME).is_some() {
            return Err(OpError::FeatureNotSupported(
                "templates are named in Create, Create Key Pair, Register, Derive Key and Re-key"
                    .into(),
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
pub(crate) fn without_object_type(
    attrs: Vec<Ttlv>,
    object_type: u32,
) -> Result<Vec<Ttlv>, OpError> {
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
pub(crate) type AttributeSources<'a> = (Option<&'a Ttlv>, Option<&'a Ttlv>);

/// The common, private-key and public-key attributes of Create Key Pair and Re-key Key Pair.
pub(crate) type KeyPairAttributes = (Vec<Ttlv>, Vec<Ttlv>, Vec<Ttlv>);

/// [`KeyPairAttributes`] from each part's Template-Attribute or Attributes.
pub(crate) fn key_pair_attributes(
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
pub(crate) fn one_attribute(
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
pub(crate) fn all_attributes(r: &Record) -> Vec<Ttlv> {
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
pub(crate) fn response_attributes(ctx: &Ctx<'_>, items: Vec<Ttlv>) -> Vec<Ttlv> {
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

pub(crate) fn text(t: kmip_codec::Tag, s: &str) -> Ttlv {
    Ttlv::new(t, Value::TextString(s.into()))
}

/// For operations without multi-part support (Hash): a request that starts or continues a
/// stream is refused rather than treated as single-part.
pub(crate) fn single_part(
    correlation: &Option<kmip_codec::message::Bytes>,
    init: Option<bool>,
    fin: Option<bool>,
) -> Result<(), OpError> {
    if correlation.is_some()
        || init == Some(true) && fin != Some(true)
        || fin == Some(true) && init != Some(true)
    {
        return Err(OpError::FeatureNotSupported(
            "multi-part cryptographic operations are not supported".into(),
        ));
    }
    Ok(())
}

pub(crate) fn params(t: &Option<Ttlv>) -> lifecycle::core::CryptoParams {
    lifecycle::core::CryptoParams::from_ttlv(t.as_ref())
}

pub(crate) fn required<'a>(
    data: &'a Option<kmip_codec::message::Bytes>,
    what: &str,
) -> Result<&'a [u8], OpError> {
    data.as_ref()
        .map(|b| b.0.as_slice())
        .ok_or_else(|| OpError::MissingData(what.to_owned()))
}

pub(crate) fn validity(valid: bool) -> Ttlv {
    use kmip_codec::vocab::enums::validity_indicator as vi;
    Ttlv::new(
        tag::VALIDITY_INDICATOR,
        Value::Enumeration(if valid { vi::VALID } else { vi::INVALID }),
    )
}
