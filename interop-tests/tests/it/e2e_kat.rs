//! Known-answer vectors for every cipher mode, MAC, hash and signature scheme, over real TLS.
//! Randomised schemes (RSA OAEP and PKCS#1 v1.5 encryption, ECDSA) are checked against an
//! independent implementation instead: OpenSSL in this process encrypts or verifies what the
//! server decrypts or signs.

use interop_tests::kmip::*;
use interop_tests::ServerProcess;
use kmip_client::Client;
use kmip_codec::message::{Bytes, Req};
use kmip_codec::ops::*;
use kmip_codec::vocab::enums::{
    block_cipher_mode as bcm, cryptographic_algorithm as alg, hashing_algorithm as ha,
    key_format_type as kft, object_type as ot, operation as op, padding_method as pm,
    validity_indicator,
};
use kmip_codec::vocab::tag;
use kmip_codec::{Ttlv, Value};
use openssl::pkey::PKey;

fn active() -> Ttlv {
    item(tag::ACTIVATION_DATE, Value::DateTime(1))
}

fn params(items: Vec<Ttlv>) -> Option<Ttlv> {
    Some(Ttlv::structure(tag::CRYPTOGRAPHIC_PARAMETERS, items))
}

fn mode(m: u32) -> Ttlv {
    item(tag::BLOCK_CIPHER_MODE, Value::Enumeration(m))
}

fn aes(c: &mut Client, key: &str) -> String {
    let k = h(key);
    let bits = (k.len() * 8) as i32;
    register(
        c,
        ot::SYMMETRIC_KEY,
        key_object(tag::SYMMETRIC_KEY, kft::RAW, alg::AES, bits, k),
        vec![active()],
    )
}

fn asymmetric(c: &mut Client, object_type: u32, algorithm: u32, bits: i32, der: Vec<u8>) -> String {
    let (t, f) = if object_type == ot::PRIVATE_KEY {
        (tag::PRIVATE_KEY, kft::PKCS_8)
    } else {
        (tag::PUBLIC_KEY, kft::X_509)
    };
    register(
        c,
        object_type,
        key_object(t, f, algorithm, bits, der),
        vec![active()],
    )
}

struct CipherCase {
    name: &'static str,
    key: &'static str,
    params: Vec<Ttlv>,
    iv: &'static str,
    aad: &'static str,
    plain: &'static str,
    cipher: &'static str,
    tag: &'static str,
}

#[test]
fn symmetric_modes_match_their_standards() {
    let server = ServerProcess::start(&[]);
    let mut c = server.client("admin");
    let nist = "2b7e151628aed2a6abf7158809cf4f3c";
    let cases = [
        CipherCase {
            name: "SP 800-38A F.1.1 ECB-AES128",
            key: nist,
            params: vec![mode(bcm::ECB)],
            iv: "",
            aad: "",
            plain: "6bc1bee22e409f96e93d7e117393172a",
            cipher: "3ad77bb40d7a3660a89ecaf32466ef97",
            tag: "",
        },
        CipherCase {
            name: "SP 800-38A F.5.1 CTR-AES128",
            key: nist,
            params: vec![mode(bcm::CTR)],
            iv: "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
            aad: "",
            plain: "6bc1bee22e409f96e93d7e117393172a",
            cipher: "874d6191b620e3261bef6864990db6ce",
            tag: "",
        },
        CipherCase {
            name: "SP 800-38A F.2.1 CBC-AES128 with PKCS#5 padding",
            key: nist,
            params: vec![
                mode(bcm::CBC),
                item(tag::PADDING_METHOD, Value::Enumeration(pm::PKCS5)),
            ],
            iv: "000102030405060708090a0b0c0d0e0f",
            aad: "",
            plain: "6bc1bee22e409f96e93d7e117393172a",
            // the first block is the standard's; the second is the padding block
            cipher: "7649abac8119b246cee98e9b12e9197d8964e0b149c10b7b682e6e39aaeb731c",
            tag: "",
        },
        CipherCase {
            name: "GCM test case 4 (McGrew-Viega)",
            key: "feffe9928665731c6d6a8f9467308308",
            params: vec![mode(bcm::GCM)],
            iv: "cafebabefacedbaddecaf888",
            aad: "feedfacedeadbeeffeedfacedeadbeefabaddad2",
            plain: "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
            cipher: "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
            tag: "5bc94fbc3221a5db94fae95ae7121a47",
        },
        CipherCase {
            name: "IEEE 1619 XTS-AES-128 vector 2",
            key: "1111111111111111111111111111111122222222222222222222222222222222",
            params: vec![mode(bcm::XTS)],
            iv: "33333333330000000000000000000000",
            aad: "",
            plain: "4444444444444444444444444444444444444444444444444444444444444444",
            cipher: "c454185e6a16936e39334038acef838bfb186fff7480adc4289382ecd6d394f0",
            tag: "",
        },
    ];
    let opt = |s: &str| (!s.is_empty()).then(|| Bytes(h(s)));
    for case in cases {
        let id = aes(&mut c, case.key);
        let e: EncryptResponse = c
            .op(
                op::ENCRYPT,
                &EncryptRequest {
                    unique_identifier: uid(&id),
                    cryptographic_parameters: params(case.params.clone()),
                    data: Some(Bytes(h(case.plain))),
                    iv_counter_nonce: opt(case.iv),
                    authenticated_encryption_additional_data: opt(case.aad),
                    ..Default::default()
                },
            )
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(e.data.map(|d| d.0), Some(h(case.cipher)), "{}", case.name);
        assert_eq!(
            e.authenticated_encryption_tag,
            opt(case.tag),
            "{}",
            case.name
        );
        let d: DecryptResponse = c
            .op(
                op::DECRYPT,
                &DecryptRequest {
                    unique_identifier: uid(&id),
                    cryptographic_parameters: params(case.params),
                    data: Some(Bytes(h(case.cipher))),
                    iv_counter_nonce: opt(case.iv),
                    authenticated_encryption_additional_data: opt(case.aad),
                    authenticated_encryption_tag: opt(case.tag),
                    ..Default::default()
                },
            )
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(d.data.map(|d| d.0), Some(h(case.plain)), "{}", case.name);
    }
}

#[test]
fn macs_and_hashes_match_their_standards() {
    let server = ServerProcess::start(&[]);
    let mut c = server.client("admin");
    // RFC 4493 example 2: AES-CMAC of one block
    let k = aes(&mut c, "2b7e151628aed2a6abf7158809cf4f3c");
    let m: MACResponse = c
        .op(
            op::MAC,
            &MACRequest {
                unique_identifier: uid(&k),
                cryptographic_parameters: params(vec![mode(bcm::CMAC)]),
                data: Some(Bytes(h("6bc1bee22e409f96e93d7e117393172a"))),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        m.mac_data.map(|d| d.0),
        Some(h("070a16b46b4d4144f79bdd9dd04a287c"))
    );
    // FIPS 180-2: SHA-256("abc")
    let d: HashResponse = c
        .op(
            op::HASH,
            &HashRequest {
                cryptographic_parameters: Req(Ttlv::structure(
                    tag::CRYPTOGRAPHIC_PARAMETERS,
                    vec![item(
                        tag::HASHING_ALGORITHM,
                        Value::Enumeration(ha::SHA_256),
                    )],
                )),
                data: Some(Bytes(b"abc".to_vec())),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        d.data.map(|d| d.0),
        Some(h(
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        ))
    );
}

fn verify(c: &mut Client, id: &str, p: Option<Ttlv>, data: &[u8], sig: Vec<u8>) -> u32 {
    let v: SignatureVerifyResponse = c
        .op(
            op::SIGNATURE_VERIFY,
            &SignatureVerifyRequest {
                unique_identifier: uid(id),
                cryptographic_parameters: p,
                data: Some(Bytes(data.to_vec())),
                signature_data: Some(Bytes(sig)),
                ..Default::default()
            },
        )
        .unwrap();
    v.validity_indicator.and_then(|t| t.as_enum()).unwrap()
}

fn sign(c: &mut Client, id: &str, p: Option<Ttlv>, data: &[u8]) -> Vec<u8> {
    let s: SignResponse = c
        .op(
            op::SIGN,
            &SignRequest {
                unique_identifier: uid(id),
                cryptographic_parameters: p,
                data: Some(Bytes(data.to_vec())),
                ..Default::default()
            },
        )
        .unwrap();
    s.signature_data.unwrap().0
}

#[test]
fn signatures_match_their_standards_and_openssl() {
    let server = ServerProcess::start(&[]);
    let mut c = server.client("admin");
    // RFC 8032 section 7.1, test 2: Ed25519 is deterministic
    let ed = PKey::private_key_from_raw_bytes(
        &h("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb"),
        openssl::pkey::Id::ED25519,
    )
    .unwrap();
    let sk = asymmetric(
        &mut c,
        ot::PRIVATE_KEY,
        alg::ED25519,
        256,
        ed.private_key_to_pkcs8().unwrap(),
    );
    let pk = asymmetric(
        &mut c,
        ot::PUBLIC_KEY,
        alg::ED25519,
        256,
        ed.public_key_to_der().unwrap(),
    );
    let sig = sign(&mut c, &sk, None, &[0x72]);
    assert_eq!(sig, h("92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"));
    assert_eq!(
        verify(&mut c, &pk, None, &[0x72], sig.clone()),
        validity_indicator::VALID
    );
    assert_eq!(
        verify(&mut c, &pk, None, &[0x73], sig),
        validity_indicator::INVALID
    );

    // ECDSA P-256 with SHA-256 and RSA PKCS#1 v1.5 with SHA-256: the server's signatures verify
    // in OpenSSL here, and OpenSSL's verify at the server
    let group = openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap();
    let ec = PKey::from_ec_key(openssl::ec::EcKey::generate(&group).unwrap()).unwrap();
    let rsa = PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
    let sha256 = params(vec![item(
        tag::HASHING_ALGORITHM,
        Value::Enumeration(ha::SHA_256),
    )]);
    for (name, key, algorithm, bits) in
        [("ECDSA", &ec, alg::EC, 256), ("RSA", &rsa, alg::RSA, 2048)]
    {
        let sk = asymmetric(
            &mut c,
            ot::PRIVATE_KEY,
            algorithm,
            bits,
            key.private_key_to_pkcs8().unwrap(),
        );
        let pk = asymmetric(
            &mut c,
            ot::PUBLIC_KEY,
            algorithm,
            bits,
            key.public_key_to_der().unwrap(),
        );
        let data = b"sign me";
        let sig = sign(&mut c, &sk, sha256.clone(), data);
        let mut v =
            openssl::sign::Verifier::new(openssl::hash::MessageDigest::sha256(), key).unwrap();
        v.update(data).unwrap();
        assert!(
            v.verify(&sig).unwrap(),
            "{name}: the server's signature verifies in OpenSSL"
        );
        let mut s =
            openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), key).unwrap();
        s.update(data).unwrap();
        let local = s.sign_to_vec().unwrap();
        assert_eq!(
            verify(&mut c, &pk, sha256.clone(), data, local),
            validity_indicator::VALID,
            "{name}"
        );
    }
}

#[test]
fn rsa_encryption_interoperates_with_openssl() {
    let server = ServerProcess::start(&[]);
    let mut c = server.client("admin");
    let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
    let key = PKey::from_rsa(rsa.clone()).unwrap();
    let sk = asymmetric(
        &mut c,
        ot::PRIVATE_KEY,
        alg::RSA,
        2048,
        key.private_key_to_pkcs8().unwrap(),
    );
    let pk = asymmetric(
        &mut c,
        ot::PUBLIC_KEY,
        alg::RSA,
        2048,
        key.public_key_to_der().unwrap(),
    );
    let secret = b"a data key, wrapped".to_vec();
    for (name, padding, kmip_padding) in [
        ("OAEP (SHA-1)", openssl::rsa::Padding::PKCS1_OAEP, pm::OAEP),
        ("PKCS#1 v1.5", openssl::rsa::Padding::PKCS1, pm::PKCS1_V1_5),
    ] {
        let p = params(vec![item(
            tag::PADDING_METHOD,
            Value::Enumeration(kmip_padding),
        )]);
        // OpenSSL encrypts here, the server decrypts
        let mut ct = vec![0u8; rsa.size() as usize];
        let n = rsa.public_encrypt(&secret, &mut ct, padding).unwrap();
        ct.truncate(n);
        let d: DecryptResponse = c
            .op(
                op::DECRYPT,
                &DecryptRequest {
                    unique_identifier: uid(&sk),
                    cryptographic_parameters: p.clone(),
                    data: Some(Bytes(ct)),
                    ..Default::default()
                },
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(d.data.map(|b| b.0), Some(secret.clone()), "{name}");
        // the server encrypts, OpenSSL decrypts
        let e: EncryptResponse = c
            .op(
                op::ENCRYPT,
                &EncryptRequest {
                    unique_identifier: uid(&pk),
                    cryptographic_parameters: p,
                    data: Some(Bytes(secret.clone())),
                    ..Default::default()
                },
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut pt = vec![0u8; rsa.size() as usize];
        let n = rsa
            .private_decrypt(&e.data.unwrap().0, &mut pt, padding)
            .unwrap();
        assert_eq!(&pt[..n], &secret[..], "{name}");
    }
}
