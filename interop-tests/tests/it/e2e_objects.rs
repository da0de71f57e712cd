//! Every object type registered and fetched back, and every key in every Key Format Type the
//! server converts to, over real TLS with our Rust client. Converted keys are checked by
//! OpenSSL (they parse, and a signature made with a key registered in one form verifies with
//! its public key registered in another).

use interop_tests::kmip::*;
use interop_tests::ServerProcess;
use kmip_client::Client;
use kmip_codec::message::Bytes;
use kmip_codec::ops::*;
use kmip_codec::vocab::enums::{
    certificate_type, cryptographic_algorithm as alg, key_format_type as kft, object_type as ot,
    operation as op, result_reason as rr, secret_data_type, split_key_method, validity_indicator,
};
use kmip_codec::vocab::tag;
use kmip_codec::{Tag, Ttlv, Value};
use openssl::pkey::PKey;

fn key(object: Tag, format: u32, algorithm: u32, bits: i32, material: Value) -> Ttlv {
    Ttlv::structure(
        object,
        vec![Ttlv::structure(
            tag::KEY_BLOCK,
            vec![
                item(tag::KEY_FORMAT_TYPE, Value::Enumeration(format)),
                Ttlv::structure(tag::KEY_VALUE, vec![item(tag::KEY_MATERIAL, material)]),
                item(tag::CRYPTOGRAPHIC_ALGORITHM, Value::Enumeration(algorithm)),
                item(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(bits)),
            ],
        )],
    )
}

fn bytes(b: &[u8]) -> Value {
    Value::ByteString(b.to_vec())
}

fn der_of(object: &Ttlv) -> Vec<u8> {
    key_material(object)
        .1
        .as_bytes()
        .expect("DER bytes")
        .to_vec()
}

/// Fetch `id` in each format, and check what comes back says it is in that format.
fn fetch_all(c: &mut Client, id: &str, formats: &[u32]) -> Vec<Ttlv> {
    formats
        .iter()
        .map(|f| {
            let o = get_object(c, id, Some(*f)).unwrap_or_else(|e| panic!("{id} as 0x{f:X}: {e}"));
            assert_eq!(key_material(&o).0, *f);
            o
        })
        .collect()
}

fn sign_verify(c: &mut Client, private: &str, public: &str) {
    let params = Some(Ttlv::structure(
        tag::CRYPTOGRAPHIC_PARAMETERS,
        vec![item(
            tag::HASHING_ALGORITHM,
            Value::Enumeration(kmip_codec::vocab::enums::hashing_algorithm::SHA_256),
        )],
    ));
    let s: SignResponse = c
        .op(
            op::SIGN,
            &SignRequest {
                unique_identifier: uid(private),
                cryptographic_parameters: params.clone(),
                data: Some(Bytes(b"registered in one form".to_vec())),
                ..Default::default()
            },
        )
        .unwrap();
    let v: SignatureVerifyResponse = c
        .op(
            op::SIGNATURE_VERIFY,
            &SignatureVerifyRequest {
                unique_identifier: uid(public),
                cryptographic_parameters: params,
                data: Some(Bytes(b"registered in one form".to_vec())),
                signature_data: s.signature_data,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        v.validity_indicator.and_then(|t| t.as_enum()),
        Some(validity_indicator::VALID)
    );
}

fn active() -> Ttlv {
    item(tag::ACTIVATION_DATE, Value::DateTime(1))
}

#[test]
fn symmetric_keys_in_every_format() {
    let server = ServerProcess::start(&[]);
    let mut c = server.client("admin");
    let raw: Vec<u8> = (1..=32).collect();
    let id = register(
        &mut c,
        ot::SYMMETRIC_KEY,
        key(tag::SYMMETRIC_KEY, kft::RAW, alg::AES, 256, bytes(&raw)),
        vec![],
    );
    let got = fetch_all(&mut c, &id, &[kft::RAW, kft::TRANSPARENT_SYMMETRIC_KEY]);
    assert_eq!(key_material(&got[0]).1.as_bytes(), Some(&raw[..]));
    let transparent = key_material(&got[1]).1;
    assert_eq!(
        transparent.child(tag::KEY).and_then(Ttlv::as_bytes),
        Some(&raw[..])
    );
    // registered transparent, fetched raw
    let t = register(
        &mut c,
        ot::SYMMETRIC_KEY,
        key(
            tag::SYMMETRIC_KEY,
            kft::TRANSPARENT_SYMMETRIC_KEY,
            alg::AES,
            256,
            transparent.value.clone(),
        ),
        vec![],
    );
    let back = get_object(&mut c, &t, Some(kft::RAW)).unwrap();
    assert_eq!(key_material(&back).1.as_bytes(), Some(&raw[..]));
    // an Opaque key comes back as it went in, and converts to nothing
    let o = register(
        &mut c,
        ot::SYMMETRIC_KEY,
        key(
            tag::SYMMETRIC_KEY,
            kft::OPAQUE,
            alg::AES,
            128,
            bytes(&raw[..16]),
        ),
        vec![],
    );
    let back = get_object(&mut c, &o, None).unwrap();
    assert_eq!(
        key_material(&back),
        (kft::OPAQUE, item(tag::KEY_MATERIAL, bytes(&raw[..16])))
    );
    let e = get_object(&mut c, &o, Some(kft::RAW)).unwrap_err();
    assert_eq!(e.reason(), Some(rr::KEY_FORMAT_TYPE_NOT_SUPPORTED));
    // and a symmetric key has no PKCS#8 form
    let e = get_object(&mut c, &id, Some(kft::PKCS_8)).unwrap_err();
    assert_eq!(e.reason(), Some(rr::KEY_FORMAT_TYPE_NOT_SUPPORTED));
}

#[test]
fn rsa_keys_in_every_format() {
    let server = ServerProcess::start(&[]);
    let mut c = server.client("admin");
    let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
    let pkcs1 = rsa.private_key_to_der().unwrap();
    let spki = PKey::from_rsa(rsa.clone())
        .unwrap()
        .public_key_to_der()
        .unwrap();
    let sk = register(
        &mut c,
        ot::PRIVATE_KEY,
        key(tag::PRIVATE_KEY, kft::PKCS_1, alg::RSA, 2048, bytes(&pkcs1)),
        vec![],
    );
    let got = fetch_all(
        &mut c,
        &sk,
        &[kft::PKCS_1, kft::PKCS_8, kft::TRANSPARENT_RSA_PRIVATE_KEY],
    );
    assert_eq!(der_of(&got[0]), pkcs1);
    let p8 = PKey::private_key_from_pkcs8(&der_of(&got[1])).unwrap();
    assert_eq!(p8.rsa().unwrap().n(), rsa.n());
    let t = key_material(&got[2]).1;
    for part in [
        tag::MODULUS,
        tag::PUBLIC_EXPONENT,
        tag::PRIVATE_EXPONENT,
        tag::P,
        tag::Q,
    ] {
        assert!(t.child(part).is_some(), "{part:?}");
    }
    // the transparent form registers, converts back to the same PKCS#1, and signs
    let sk_t = register(
        &mut c,
        ot::PRIVATE_KEY,
        key(
            tag::PRIVATE_KEY,
            kft::TRANSPARENT_RSA_PRIVATE_KEY,
            alg::RSA,
            2048,
            t.value.clone(),
        ),
        vec![active()],
    );
    assert_eq!(
        der_of(&get_object(&mut c, &sk_t, Some(kft::PKCS_1)).unwrap()),
        pkcs1
    );

    let pk = register(
        &mut c,
        ot::PUBLIC_KEY,
        key(tag::PUBLIC_KEY, kft::X_509, alg::RSA, 2048, bytes(&spki)),
        vec![],
    );
    let got = fetch_all(
        &mut c,
        &pk,
        &[kft::X_509, kft::PKCS_1, kft::TRANSPARENT_RSA_PUBLIC_KEY],
    );
    assert_eq!(der_of(&got[0]), spki);
    assert_eq!(
        openssl::rsa::Rsa::public_key_from_der_pkcs1(&der_of(&got[1]))
            .unwrap()
            .n(),
        rsa.n()
    );
    let pk_t = register(
        &mut c,
        ot::PUBLIC_KEY,
        key(
            tag::PUBLIC_KEY,
            kft::TRANSPARENT_RSA_PUBLIC_KEY,
            alg::RSA,
            2048,
            key_material(&got[2]).1.value,
        ),
        vec![active()],
    );
    assert_eq!(
        der_of(&get_object(&mut c, &pk_t, Some(kft::X_509)).unwrap()),
        spki
    );
    sign_verify(&mut c, &sk_t, &pk_t);
}

#[test]
fn ec_keys_in_every_format() {
    let server = ServerProcess::start(&[]);
    let mut c = server.client("admin");
    let group = openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap();
    let ec = openssl::ec::EcKey::generate(&group).unwrap();
    let sec1 = ec.private_key_to_der().unwrap();
    let spki = PKey::from_ec_key(ec.clone())
        .unwrap()
        .public_key_to_der()
        .unwrap();
    let sk = register(
        &mut c,
        ot::PRIVATE_KEY,
        key(
            tag::PRIVATE_KEY,
            kft::ECPRIVATEKEY,
            alg::EC,
            256,
            bytes(&sec1),
        ),
        vec![],
    );
    let got = fetch_all(
        &mut c,
        &sk,
        &[
            kft::ECPRIVATEKEY,
            kft::PKCS_8,
            kft::TRANSPARENT_EC_PRIVATE_KEY,
        ],
    );
    let p8 = PKey::private_key_from_pkcs8(&der_of(&got[1])).unwrap();
    assert_eq!(p8.ec_key().unwrap().private_key(), ec.private_key());
    let sk_t = register(
        &mut c,
        ot::PRIVATE_KEY,
        key(
            tag::PRIVATE_KEY,
            kft::TRANSPARENT_EC_PRIVATE_KEY,
            alg::EC,
            256,
            key_material(&got[2]).1.value,
        ),
        vec![active()],
    );
    let back = der_of(&get_object(&mut c, &sk_t, Some(kft::PKCS_8)).unwrap());
    assert_eq!(
        PKey::private_key_from_pkcs8(&back)
            .unwrap()
            .ec_key()
            .unwrap()
            .private_key(),
        ec.private_key()
    );

    let pk = register(
        &mut c,
        ot::PUBLIC_KEY,
        key(tag::PUBLIC_KEY, kft::X_509, alg::EC, 256, bytes(&spki)),
        vec![],
    );
    let got = fetch_all(&mut c, &pk, &[kft::X_509, kft::TRANSPARENT_EC_PUBLIC_KEY]);
    assert_eq!(der_of(&got[0]), spki);
    let pk_t = register(
        &mut c,
        ot::PUBLIC_KEY,
        key(
            tag::PUBLIC_KEY,
            kft::TRANSPARENT_EC_PUBLIC_KEY,
            alg::EC,
            256,
            key_material(&got[1]).1.value,
        ),
        vec![active()],
    );
    assert_eq!(
        der_of(&get_object(&mut c, &pk_t, Some(kft::X_509)).unwrap()),
        spki
    );
    sign_verify(&mut c, &sk_t, &pk_t);
}

#[test]
fn every_other_object_type_comes_back_as_registered() {
    let server = ServerProcess::start(&[]);
    let mut c = server.client("admin");
    let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
    let pkey = PKey::from_rsa(rsa).unwrap();
    let mut name = openssl::x509::X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "e2e").unwrap();
    let name = name.build();
    let mut b = openssl::x509::X509Builder::new().unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&pkey).unwrap();
    b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    b.sign(&pkey, openssl::hash::MessageDigest::sha256())
        .unwrap();
    let cert = b.build().to_der().unwrap();

    let objects = [
        (
            ot::CERTIFICATE,
            Ttlv::structure(
                tag::CERTIFICATE,
                vec![
                    item(
                        tag::CERTIFICATE_TYPE,
                        Value::Enumeration(certificate_type::X_509),
                    ),
                    item(tag::CERTIFICATE_VALUE, bytes(&cert)),
                ],
            ),
        ),
        (
            ot::SECRET_DATA,
            Ttlv::structure(
                tag::SECRET_DATA,
                vec![
                    item(
                        tag::SECRET_DATA_TYPE,
                        Value::Enumeration(secret_data_type::PASSWORD),
                    ),
                    Ttlv::structure(
                        tag::KEY_BLOCK,
                        vec![
                            item(tag::KEY_FORMAT_TYPE, Value::Enumeration(kft::OPAQUE)),
                            Ttlv::structure(
                                tag::KEY_VALUE,
                                vec![item(tag::KEY_MATERIAL, bytes(b"correct horse"))],
                            ),
                        ],
                    ),
                ],
            ),
        ),
        (
            ot::OPAQUE_OBJECT,
            Ttlv::structure(
                tag::OPAQUE_OBJECT,
                vec![
                    item(tag::OPAQUE_DATA_TYPE, Value::Enumeration(0x8000_0001)),
                    item(tag::OPAQUE_DATA_VALUE, bytes(b"\x00\x01opaque")),
                ],
            ),
        ),
        (
            ot::SPLIT_KEY,
            Ttlv::structure(
                tag::SPLIT_KEY,
                vec![
                    item(tag::SPLIT_KEY_PARTS, Value::Integer(3)),
                    item(tag::KEY_PART_IDENTIFIER, Value::Integer(1)),
                    item(tag::SPLIT_KEY_THRESHOLD, Value::Integer(2)),
                    item(
                        tag::SPLIT_KEY_METHOD,
                        Value::Enumeration(split_key_method::XOR),
                    ),
                    key(
                        tag::SYMMETRIC_KEY,
                        kft::RAW,
                        alg::AES,
                        128,
                        bytes(&[7u8; 16]),
                    )
                    .children()[0]
                        .clone(),
                ],
            ),
        ),
    ];
    for (object_type, object) in objects {
        let id = register(&mut c, object_type, object.clone(), vec![]);
        let back = get_object(&mut c, &id, None).unwrap();
        assert_eq!(back, object, "object type 0x{object_type:X}");
        // the server keeps the type: Get Attributes says so
        let attrs = get_attributes(&mut c, &id);
        assert!(attrs
            .iter()
            .any(|a| a.tag == tag::OBJECT_TYPE && a.as_enum() == Some(object_type)));
    }
}

/// Fresh (KMIP 2.1 §4.24): true until the object is first served by Get, then false for good,
/// across a restart (a Get is a read, but this one commits before it is answered).
#[test]
fn the_first_get_clears_fresh_durably() {
    let server = ServerProcess::start(&[]);
    let mut c = server.client("admin");
    let id = create_aes(&mut c, 128, vec![]);
    let fresh = |c: &mut Client| {
        get_attributes(c, &id)
            .iter()
            .find(|a| a.tag == tag::FRESH)
            .and_then(Ttlv::as_bool)
    };
    assert_eq!(fresh(&mut c), Some(true));
    get_object(&mut c, &id, None).unwrap();
    assert_eq!(fresh(&mut c), Some(false));
    get_object(&mut c, &id, None).unwrap();
    drop(c);
    let server = ServerProcess::try_start_in(server.stop(), &[])
        .unwrap_or_else(|(_, log)| panic!("restart: {log}"));
    let mut c = server.client("admin");
    assert_eq!(fresh(&mut c), Some(false));
}
