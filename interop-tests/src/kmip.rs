//! Small builders for requests our tests send, over the one Rust client. Those that return no
//! `Result` panic with the server's answer when it fails: they fail the test that calls them.

use kmip_client::Client;
use kmip_codec::message::{Enum, Req};
use kmip_codec::ops::*;
use kmip_codec::vocab::enums::{
    cryptographic_algorithm as alg, object_type as ot, operation as op,
};
use kmip_codec::vocab::tag;
use kmip_codec::{Tag, Ttlv, Value};

/// Bytes from hex (spaces allowed), for known-answer vectors.
pub fn h(s: &str) -> Vec<u8> {
    kmip_codec::text::unhex(&s.replace(' ', "")).expect("known-answer vectors are written in hex")
}

pub fn item(t: Tag, v: Value) -> Ttlv {
    Ttlv::new(t, v)
}

pub fn name(n: &str) -> Ttlv {
    Ttlv::structure(
        tag::NAME,
        vec![
            item(tag::NAME_VALUE, Value::TextString(n.into())),
            item(tag::NAME_TYPE, Value::Enumeration(1)),
        ],
    )
}

pub fn mask(bits: u32) -> Ttlv {
    item(tag::CRYPTOGRAPHIC_USAGE_MASK, Value::Integer(bits as i32))
}

pub fn attributes(items: Vec<Ttlv>) -> Option<Ttlv> {
    Some(Ttlv::structure(tag::ATTRIBUTES, items))
}

pub fn create_aes(c: &mut Client, bits: i32, extra: Vec<Ttlv>) -> String {
    let mut a = vec![
        item(tag::CRYPTOGRAPHIC_ALGORITHM, Value::Enumeration(alg::AES)),
        item(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(bits)),
    ];
    a.extend(extra);
    let r: CreateResponse = c
        .op(
            op::CREATE,
            &CreateRequest {
                object_type: Req(Enum(ot::SYMMETRIC_KEY)),
                attributes: attributes(a),
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("Create AES-{bits}: {e}"));
    r.unique_identifier.0
}

/// Create an RSA key pair of `bits` with `common` attributes besides algorithm and length,
/// and the usage masks `(private, public)` when given; its (private, public) identifiers.
pub fn create_rsa_pair(
    c: &mut Client,
    bits: i32,
    common: Vec<Ttlv>,
    masks: Option<(u32, u32)>,
) -> (String, String) {
    let mut attrs = vec![
        item(tag::CRYPTOGRAPHIC_ALGORITHM, Value::Enumeration(alg::RSA)),
        item(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(bits)),
    ];
    attrs.extend(common);
    let kp: CreateKeyPairResponse = c
        .op(
            op::CREATE_KEY_PAIR,
            &CreateKeyPairRequest {
                common_attributes: attributes(attrs),
                private_key_attributes: masks.and_then(|(sk, _)| attributes(vec![mask(sk)])),
                public_key_attributes: masks.and_then(|(_, pk)| attributes(vec![mask(pk)])),
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("Create Key Pair: {e}"));
    let id = |t: &Ttlv| t.as_text().expect("an identifier").to_owned();
    (
        id(&kp.private_key_unique_identifier),
        id(&kp.public_key_unique_identifier),
    )
}

pub fn uid(id: &str) -> Option<String> {
    Some(id.to_owned())
}

pub fn key_object(object: Tag, format: u32, algorithm: u32, bits: i32, material: Vec<u8>) -> Ttlv {
    Ttlv::structure(
        object,
        vec![Ttlv::structure(
            tag::KEY_BLOCK,
            vec![
                item(tag::KEY_FORMAT_TYPE, Value::Enumeration(format)),
                Ttlv::structure(
                    tag::KEY_VALUE,
                    vec![item(tag::KEY_MATERIAL, Value::ByteString(material))],
                ),
                item(tag::CRYPTOGRAPHIC_ALGORITHM, Value::Enumeration(algorithm)),
                item(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(bits)),
            ],
        )],
    )
}

/// Register `object` (any object type, by its tag) with `attrs`.
pub fn try_register(
    c: &mut Client,
    object_type: u32,
    object: Ttlv,
    attrs: Vec<Ttlv>,
) -> Result<String, kmip_client::ClientError> {
    let mut req = RegisterRequest {
        object_type: Req(Enum(object_type)),
        attributes: attributes(attrs),
        ..Default::default()
    };
    let slot = match object.tag {
        tag::SYMMETRIC_KEY => &mut req.symmetric_key,
        tag::SECRET_DATA => &mut req.secret_data,
        tag::PUBLIC_KEY => &mut req.public_key,
        tag::PRIVATE_KEY => &mut req.private_key,
        tag::CERTIFICATE => &mut req.certificate,
        tag::SPLIT_KEY => &mut req.split_key,
        tag::OPAQUE_OBJECT => &mut req.opaque_object,
        tag::PGP_KEY => &mut req.pgp_key,
        tag::CERTIFICATE_REQUEST => &mut req.certificate_request,
        other => panic!("no Register slot for {other:?}"),
    };
    *slot = Some(object);
    let r: RegisterResponse = c.op(op::REGISTER, &req)?;
    Ok(r.unique_identifier.0)
}

pub fn register(c: &mut Client, object_type: u32, object: Ttlv, attrs: Vec<Ttlv>) -> String {
    try_register(c, object_type, object, attrs).unwrap_or_else(|e| panic!("Register: {e}"))
}

/// Get an object, in `format` when given; the object structure whatever its type.
pub fn get_object(
    c: &mut Client,
    id: &str,
    format: Option<u32>,
) -> Result<Ttlv, kmip_client::ClientError> {
    let g: GetResponse = c.op(
        op::GET,
        &GetRequest {
            unique_identifier: uid(id),
            key_format_type: format.map(Enum),
            ..Default::default()
        },
    )?;
    Ok([
        g.symmetric_key,
        g.public_key,
        g.private_key,
        g.certificate,
        g.secret_data,
        g.split_key,
        g.opaque_object,
        g.pgp_key,
        g.certificate_request,
        g.template,
    ]
    .into_iter()
    .flatten()
    .next()
    .expect("Get returned an object"))
}

/// The Key Format Type and Key Material of a key object.
/// Every acknowledged (identifier, key material) pair reads back with that material.
pub fn assert_keys_intact(c: &mut Client, stored: &[(String, Vec<u8>)]) {
    for (id, m) in stored {
        let obj = get_object(c, id, None).unwrap_or_else(|e| panic!("{id} lost: {e}"));
        assert_eq!(
            key_material(&obj).1.as_bytes(),
            Some(m.as_slice()),
            "{id} changed"
        );
    }
}

pub fn key_material(object: &Ttlv) -> (u32, Ttlv) {
    let kb = object.child(tag::KEY_BLOCK).expect("Key Block");
    let f = kb
        .child(tag::KEY_FORMAT_TYPE)
        .and_then(Ttlv::as_enum)
        .expect("Key Format Type");
    let km = kb
        .child(tag::KEY_VALUE)
        .and_then(|v| v.child(tag::KEY_MATERIAL))
        .expect("Key Material");
    (f, km.clone())
}

pub fn activate(c: &mut Client, id: &str) {
    let _: ActivateResponse = c
        .op(
            op::ACTIVATE,
            &ActivateRequest {
                unique_identifier: uid(id),
            },
        )
        .unwrap_or_else(|e| panic!("Activate {id}: {e}"));
}

pub fn get_attributes(c: &mut Client, id: &str) -> Vec<Ttlv> {
    let r: GetAttributesResponse = c
        .op(
            op::GET_ATTRIBUTES,
            &GetAttributesRequest {
                unique_identifier: uid(id),
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("Get Attributes {id}: {e}"));
    match r.attributes {
        Some(a) => a.children().to_vec(),
        None => r.attribute,
    }
}

/// Our vendor Grant operation and its Grantee tag.
pub use kmip_codec::vendor::operation::GRANT;
pub use kmip_codec::vendor::tag::GRANTEE;

/// `owner` lets `grantee` perform `operations` on `id` (none: withdraws every right).
pub fn grant(owner: &mut Client, id: &str, grantee: &str, operations: &[u32]) {
    let mut items = vec![
        item(tag::UNIQUE_IDENTIFIER, Value::TextString(id.into())),
        item(GRANTEE, Value::TextString(grantee.into())),
    ];
    items.extend(
        operations
            .iter()
            .map(|o| item(tag::OPERATION, Value::Enumeration(*o))),
    );
    owner
        .call(GRANT, Ttlv::structure(tag::REQUEST_PAYLOAD, items))
        .unwrap_or_else(|e| panic!("Grant {id} to {grantee}: {e}"));
}

/// A Key Wrapping Specification: the Encrypt method under `kek`, with these Cryptographic
/// Parameters (none: the server's default, NIST Key Wrap).
pub fn wrapping_spec(kek: &str, params: Vec<Ttlv>) -> Ttlv {
    let mut info = vec![item(tag::UNIQUE_IDENTIFIER, Value::TextString(kek.into()))];
    if !params.is_empty() {
        info.push(Ttlv::structure(tag::CRYPTOGRAPHIC_PARAMETERS, params));
    }
    Ttlv::structure(
        tag::KEY_WRAPPING_SPECIFICATION,
        vec![
            item(tag::WRAPPING_METHOD, Value::Enumeration(1)),
            Ttlv::structure(tag::ENCRYPTION_KEY_INFORMATION, info),
        ],
    )
}
