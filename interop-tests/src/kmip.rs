//! Small builders for requests our tests send, over the one Rust client.

use kmip_client::Client;
use kmip_codec::message::{Enum, Req};
use kmip_codec::ops::*;
use kmip_codec::vocab::enums::{
    cryptographic_algorithm as alg, object_type as ot, operation as op,
};
use kmip_codec::vocab::tag;
use kmip_codec::{Tag, Ttlv, Value};

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
        .unwrap();
    r.unique_identifier.0
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

pub fn register(c: &mut Client, object_type: u32, object: Ttlv, attrs: Vec<Ttlv>) -> String {
    let mut req = RegisterRequest {
        object_type: Req(Enum(object_type)),
        attributes: attributes(attrs),
        ..Default::default()
    };
    match object.tag {
        tag::SYMMETRIC_KEY => req.symmetric_key = Some(object),
        tag::SECRET_DATA => req.secret_data = Some(object),
        _ => unreachable!(),
    }
    let r: RegisterResponse = c.op(op::REGISTER, &req).unwrap();
    r.unique_identifier.0
}

pub fn activate(c: &mut Client, id: &str) {
    let _: ActivateResponse = c
        .op(
            op::ACTIVATE,
            &ActivateRequest {
                unique_identifier: uid(id),
            },
        )
        .unwrap();
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
        .unwrap();
    match r.attributes {
        Some(a) => a.children().to_vec(),
        None => r.attribute,
    }
}
