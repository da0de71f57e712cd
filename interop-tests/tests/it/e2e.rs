//! End-to-end tests: a real kmip-server process, real TLS, our Rust client.

use interop_tests::kmip::*;
use interop_tests::ServerProcess;
use kmip_client::{Client, ClientError, Identity};
use kmip_codec::message::{Bytes, Enum, Req};
use kmip_codec::ops::*;
use kmip_codec::vocab::enums::{
    block_cipher_mode as bcm, cryptographic_algorithm as alg, object_type as ot, operation as op,
    padding_method as pm, result_reason as rr, result_status, state,
};
use kmip_codec::vocab::tag;
use kmip_codec::{Tag, Ttlv, Value};
use std::io::{Read, Write};

#[test]
fn tls_is_mutual_and_garbage_is_refused() {
    let server = ServerProcess::start(&[]);
    let ca = server.tls_dir().join("ca.pem");
    // no client certificate: with TLS 1.3 the handshake may finish; the first request fails
    let no_cert = Client::connect(
        "localhost",
        server.port,
        &Identity {
            ca: &ca,
            cert: None,
            key: None,
        },
    );
    if let Ok(mut c) = no_cert {
        let r = c.call(
            op::DISCOVER_VERSIONS,
            Ttlv::structure(tag::REQUEST_PAYLOAD, vec![]),
        );
        assert!(r.is_err(), "a client without a certificate was served");
    }
    // a certificate from another CA
    let other = ServerProcess::start(&[]);
    let od = other.tls_dir();
    let foreign = Client::connect(
        "localhost",
        server.port,
        &Identity {
            ca: &ca,
            cert: Some(&od.join("admin.pem")),
            key: Some(&od.join("admin.key")),
        },
    );
    if let Ok(mut c) = foreign {
        assert!(c
            .call(
                op::DISCOVER_VERSIONS,
                Ttlv::structure(tag::REQUEST_PAYLOAD, vec![])
            )
            .is_err());
    }
    // plain TCP on the TLS port: closed without an answer
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    tcp.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut buf = [0u8; 64];
    let n = tcp.read(&mut buf).unwrap_or(0);
    assert!(n == 0 || buf[0] == 0x15, "plain text got a non-TLS answer");
    // a length of 4 GiB: an Invalid Message answer, then the connection closes
    let mut c = server.client("admin");
    let t = c.raw(&h("420078 01 FFFFFFF0")).unwrap();
    let item = t.child(tag::BATCH_ITEM).unwrap();
    assert_eq!(
        item.child(tag::RESULT_REASON).and_then(Ttlv::as_enum),
        Some(rr::INVALID_MESSAGE)
    );
    assert!(
        c.raw(&h("420078 01 00000000")).is_err(),
        "the connection should be closed"
    );
    // and the server still serves others
    let mut ok = server.client("admin");
    ok.call(op::QUERY, Ttlv::structure(tag::REQUEST_PAYLOAD, vec![]))
        .unwrap();
}

#[test]
fn versions_see_the_same_objects_in_their_own_shapes() {
    let server = ServerProcess::start(&[]);
    let mut v21 = server.client("admin");
    let id = create_aes(&mut v21, 256, vec![name("shared-key"), mask(4 | 8)]);
    activate(&mut v21, &id);
    let two = get_attributes(&mut v21, &id);
    assert!(two
        .iter()
        .any(|a| a.tag == tag::STATE && a.as_enum() == Some(state::ACTIVE)));
    assert!(two
        .iter()
        .all(|a| a.tag != tag::ATTRIBUTE || a.child(tag::VENDOR_IDENTIFICATION).is_some()));
    assert!(
        two.iter().all(|a| a.tag != tag::OPERATION_POLICY_NAME),
        "1.x-only attribute sent to 2.1"
    );
    for (major, minor) in [(1, 0), (1, 2), (1, 4)] {
        let mut c = server.client("admin").version(major, minor);
        let one = get_attributes(&mut c, &id);
        assert!(!one.is_empty());
        assert!(
            one.iter()
                .all(|a| a.tag == tag::ATTRIBUTE && a.child(tag::ATTRIBUTE_NAME).is_some()),
            "{major}.{minor}"
        );
        let names: Vec<&str> = one
            .iter()
            .filter_map(|a| a.child(tag::ATTRIBUTE_NAME)?.as_text())
            .collect();
        assert!(
            names.contains(&"State") && names.contains(&"Name"),
            "{names:?}"
        );
        let resp = c
            .batch(vec![(
                op::QUERY,
                Ttlv::structure(tag::REQUEST_PAYLOAD, vec![]),
            )])
            .unwrap();
        let pv = &resp.header.protocol_version;
        assert_eq!(
            (pv.major.0, pv.minor.0),
            (major, minor),
            "answered in the request's version"
        );
    }
    // an unsupported version is refused with a message in a version we speak
    let mut c = server.client("admin").version(3, 0);
    let err = c
        .call(op::QUERY, Ttlv::structure(tag::REQUEST_PAYLOAD, vec![]))
        .unwrap_err();
    assert!(err.reason().is_some(), "{err}");
}

#[test]
fn cryptography_over_the_wire_matches_known_answers() {
    let server = ServerProcess::start(&[]);
    let mut c = server.client("admin");
    // NIST SP 800-38A F.2.1: CBC-AES128
    let k = register(
        &mut c,
        ot::SYMMETRIC_KEY,
        key_object(
            tag::SYMMETRIC_KEY,
            1,
            alg::AES,
            128,
            h("2b7e151628aed2a6abf7158809cf4f3c"),
        ),
        vec![mask(4 | 8)],
    );
    let params = Some(Ttlv::structure(
        tag::CRYPTOGRAPHIC_PARAMETERS,
        vec![
            item(tag::BLOCK_CIPHER_MODE, Value::Enumeration(bcm::CBC)),
            item(tag::PADDING_METHOD, Value::Enumeration(pm::NONE)),
        ],
    ));
    let enc = EncryptRequest {
        unique_identifier: uid(&k),
        cryptographic_parameters: params.clone(),
        data: Some(Bytes(h("6bc1bee22e409f96e93d7e117393172a"))),
        iv_counter_nonce: Some(Bytes(h("000102030405060708090a0b0c0d0e0f"))),
        ..Default::default()
    };
    // Pre-Active keys are not used
    let e = c.op::<_, EncryptResponse>(op::ENCRYPT, &enc).unwrap_err();
    assert_eq!(e.reason(), Some(rr::WRONG_KEY_LIFECYCLE_STATE));
    activate(&mut c, &k);
    let r: EncryptResponse = c.op(op::ENCRYPT, &enc).unwrap();
    assert_eq!(r.data.unwrap().0, h("7649abac8119b246cee98e9b12e9197d"));
    let d: DecryptResponse = c
        .op(
            op::DECRYPT,
            &DecryptRequest {
                unique_identifier: uid(&k),
                cryptographic_parameters: params,
                data: Some(Bytes(h("7649abac8119b246cee98e9b12e9197d"))),
                iv_counter_nonce: Some(Bytes(h("000102030405060708090a0b0c0d0e0f"))),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(d.data.unwrap().0, h("6bc1bee22e409f96e93d7e117393172a"));
    // a key without the Sign bit may not sign
    let s = c.op::<_, SignResponse>(
        op::SIGN,
        &SignRequest {
            unique_identifier: uid(&k),
            data: Some(Bytes(b"x".to_vec())),
            ..Default::default()
        },
    );
    assert!(s.is_err());
    // RFC 4231 test case 2: HMAC-SHA256 with key "Jefe"
    let m = register(
        &mut c,
        ot::SYMMETRIC_KEY,
        key_object(
            tag::SYMMETRIC_KEY,
            1,
            alg::HMAC_SHA256,
            32,
            b"Jefe".to_vec(),
        ),
        vec![mask(0x80 | 0x100)],
    );
    activate(&mut c, &m);
    let mac: MACResponse = c
        .op(
            op::MAC,
            &MACRequest {
                unique_identifier: uid(&m),
                data: Some(Bytes(b"what do ya want for nothing?".to_vec())),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        mac.mac_data.unwrap().0,
        h("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    );
    // PBKDF2-HMAC-SHA1, RFC 6070 (the vector PyKMIP's suite uses), from an active password
    let pw = register(
        &mut c,
        ot::SECRET_DATA,
        Ttlv::structure(
            tag::SECRET_DATA,
            vec![
                item(tag::SECRET_DATA_TYPE, Value::Enumeration(1)),
                Ttlv::structure(
                    tag::KEY_BLOCK,
                    vec![
                        item(tag::KEY_FORMAT_TYPE, Value::Enumeration(2)),
                        Ttlv::structure(
                            tag::KEY_VALUE,
                            vec![item(
                                tag::KEY_MATERIAL,
                                Value::ByteString(b"password".to_vec()),
                            )],
                        ),
                    ],
                ),
            ],
        ),
        vec![mask(0x200)],
    );
    activate(&mut c, &pw);
    let dk: DeriveKeyResponse = c
        .op(
            op::DERIVE_KEY,
            &DeriveKeyRequest {
                object_type: Req(Enum(ot::SYMMETRIC_KEY)),
                unique_identifier: vec![pw],
                derivation_method: Req(item(
                    tag::DERIVATION_METHOD,
                    Value::Enumeration(kmip_codec::vocab::enums::derivation_method::PBKDF2),
                )),
                derivation_parameters: Req(Ttlv::structure(
                    tag::DERIVATION_PARAMETERS,
                    vec![
                        Ttlv::structure(
                            tag::CRYPTOGRAPHIC_PARAMETERS,
                            vec![item(
                                tag::HASHING_ALGORITHM,
                                Value::Enumeration(
                                    kmip_codec::vocab::enums::hashing_algorithm::SHA_1,
                                ),
                            )],
                        ),
                        item(tag::SALT, Value::ByteString(b"salt".to_vec())),
                        item(tag::ITERATION_COUNT, Value::Integer(4096)),
                    ],
                )),
                attributes: attributes(vec![
                    item(tag::CRYPTOGRAPHIC_ALGORITHM, Value::Enumeration(alg::AES)),
                    item(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(160)),
                ]),
                ..Default::default()
            },
        )
        .unwrap();
    let g: GetResponse = c
        .op(
            op::GET,
            &GetRequest {
                unique_identifier: uid(&dk.unique_identifier.0),
                ..Default::default()
            },
        )
        .unwrap();
    let material = g.symmetric_key.unwrap();
    let bytes = material
        .child(tag::KEY_BLOCK)
        .unwrap()
        .child(tag::KEY_VALUE)
        .unwrap()
        .child(tag::KEY_MATERIAL)
        .unwrap()
        .as_bytes()
        .unwrap()
        .to_vec();
    assert_eq!(bytes, h("4b007901b765489abead49d926f721d065a429c1"));
    // RSA-2048 PSS signature from a generated pair verifies, and fails on other data
    let (sk, pk) = create_rsa_pair(&mut c, 2048, vec![], Some((1, 2)));
    activate(&mut c, &sk);
    activate(&mut c, &pk);
    let pss = Some(Ttlv::structure(
        tag::CRYPTOGRAPHIC_PARAMETERS,
        vec![
            item(tag::PADDING_METHOD, Value::Enumeration(pm::PSS)),
            item(
                tag::HASHING_ALGORITHM,
                Value::Enumeration(kmip_codec::vocab::enums::hashing_algorithm::SHA_256),
            ),
        ],
    ));
    let sig: SignResponse = c
        .op(
            op::SIGN,
            &SignRequest {
                unique_identifier: uid(&sk),
                cryptographic_parameters: pss.clone(),
                data: Some(Bytes(b"message".to_vec())),
                ..Default::default()
            },
        )
        .unwrap();
    let sig = sig.signature_data.unwrap();
    for (data, valid) in [(b"message".to_vec(), true), (b"massage".to_vec(), false)] {
        let v: SignatureVerifyResponse = c
            .op(
                op::SIGNATURE_VERIFY,
                &SignatureVerifyRequest {
                    unique_identifier: uid(&pk),
                    cryptographic_parameters: pss.clone(),
                    data: Some(Bytes(data)),
                    signature_data: Some(sig.clone()),
                    ..Default::default()
                },
            )
            .unwrap();
        let expected = if valid { 1 } else { 2 };
        assert_eq!(v.validity_indicator.unwrap().as_enum(), Some(expected));
    }
}

#[test]
fn non_extractable_keys_never_leave() {
    let server = ServerProcess::start(&[]);
    let mut c = server.client("admin");
    let locked = create_aes(
        &mut c,
        256,
        vec![item(tag::EXTRACTABLE, Value::Boolean(false))],
    );
    let e = c
        .op::<_, GetResponse>(
            op::GET,
            &GetRequest {
                unique_identifier: uid(&locked),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.reason(), Some(rr::NOT_EXTRACTABLE));
    // not wrapped either
    let kek = create_aes(&mut c, 256, vec![mask(0x10 | 0x20)]);
    activate(&mut c, &kek);
    let spec = Ttlv::structure(
        tag::KEY_WRAPPING_SPECIFICATION,
        vec![
            item(tag::WRAPPING_METHOD, Value::Enumeration(1)),
            Ttlv::structure(
                tag::ENCRYPTION_KEY_INFORMATION,
                vec![item(tag::UNIQUE_IDENTIFIER, Value::TextString(kek.clone()))],
            ),
        ],
    );
    let wrapped = GetRequest {
        unique_identifier: uid(&locked),
        key_wrapping_specification: Some(spec.clone()),
        ..Default::default()
    };
    assert_eq!(
        c.op::<_, GetResponse>(op::GET, &wrapped)
            .unwrap_err()
            .reason(),
        Some(rr::NOT_EXTRACTABLE)
    );
    // an extractable key leaves wrapped under the KEK (RFC 3394), by default as its whole
    // Key Value structure TTLV-encoded, with No Encoding as its Key Material alone
    let open = create_aes(&mut c, 256, vec![]);
    let plain = key_material(&get_object(&mut c, &open, None).unwrap()).1;
    let kek_bytes = key_material(&get_object(&mut c, &kek, None).unwrap()).1;
    let unwrap = |wrapped: &[u8]| {
        let k = openssl::aes::AesKey::new_decrypt(kek_bytes.as_bytes().unwrap()).unwrap();
        let mut out = vec![0u8; wrapped.len() - 8];
        openssl::aes::unwrap_key(&k, None, &mut out, wrapped).expect("unwraps under the KEK");
        out
    };
    let get_wrapped = |c: &mut Client, encoding: Option<u32>| {
        let mut spec = spec.clone();
        if let (Some(e), Some(children)) = (encoding, spec.children_mut()) {
            children.push(item(tag::ENCODING_OPTION, Value::Enumeration(e)));
        }
        let g: GetResponse = c
            .op(
                op::GET,
                &GetRequest {
                    unique_identifier: uid(&open),
                    key_wrapping_specification: Some(spec),
                    ..Default::default()
                },
            )
            .unwrap();
        let kb = g
            .symmetric_key
            .unwrap()
            .child(tag::KEY_BLOCK)
            .unwrap()
            .clone();
        assert!(kb.child(tag::KEY_WRAPPING_DATA).is_some());
        kb.child(tag::KEY_VALUE).unwrap().clone()
    };
    let ttlv = get_wrapped(&mut c, None);
    let encoded = unwrap(ttlv.as_bytes().expect("the Key Value is a Byte String"));
    let (kv, _) = kmip_codec::decode(&encoded, &kmip_codec::Limits::default()).unwrap();
    assert_eq!(kv.tag, tag::KEY_VALUE);
    assert_eq!(kv.child(tag::KEY_MATERIAL), Some(&plain));
    let raw = get_wrapped(&mut c, Some(1));
    let km = raw.child(tag::KEY_MATERIAL).unwrap().as_bytes().unwrap();
    assert_eq!(km.len(), 40);
    assert_eq!(Some(unwrap(km).as_slice()), plain.as_bytes());
}

#[test]
fn batches_use_the_id_placeholder() {
    let server = ServerProcess::start(&[]);
    let mut c = server.client("admin");
    let create = CreateRequest {
        object_type: Req(Enum(ot::SYMMETRIC_KEY)),
        attributes: attributes(vec![
            item(tag::CRYPTOGRAPHIC_ALGORITHM, Value::Enumeration(alg::AES)),
            item(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(128)),
        ]),
        ..Default::default()
    };
    use kmip_codec::message::FieldValue;
    let p = |t: &dyn Fn(Tag) -> Ttlv| t(tag::REQUEST_PAYLOAD);
    let resp = c
        .batch(vec![
            (op::CREATE, p(&|t| create.encode(t))),
            (op::ACTIVATE, p(&|t| ActivateRequest::default().encode(t))),
            (
                op::GET_ATTRIBUTES,
                p(&|t| GetAttributesRequest::default().encode(t)),
            ),
            (op::DESTROY, p(&|t| DestroyRequest::default().encode(t))),
            (op::QUERY, p(&|t| QueryRequest::default().encode(t))),
        ])
        .unwrap();
    let st: Vec<u32> = resp
        .batch_item
        .iter()
        .map(|b| b.result_status.0 .0)
        .collect();
    // Destroy of an Active key fails, and with the default Stop option nothing after it runs
    assert_eq!(
        st,
        vec![
            result_status::SUCCESS,
            result_status::SUCCESS,
            result_status::SUCCESS,
            result_status::OPERATION_FAILED
        ]
    );
    assert_eq!(
        resp.batch_item[3].result_reason.map(|r| r.0),
        Some(rr::WRONG_KEY_LIFECYCLE_STATE)
    );
    let ids: Vec<Vec<u8>> = resp
        .batch_item
        .iter()
        .map(|b| b.unique_batch_item_id.clone().unwrap().0)
        .collect();
    assert_eq!(
        ids,
        vec![vec![0], vec![1], vec![2], vec![3]],
        "Unique Batch Item IDs echoed"
    );
    let attrs = resp.batch_item[2]
        .response_payload
        .as_ref()
        .unwrap()
        .child(tag::ATTRIBUTES)
        .unwrap();
    assert_eq!(
        attrs.child(tag::STATE).and_then(Ttlv::as_enum),
        Some(state::ACTIVE)
    );
    // an unknown operation is Operation Not Supported, never faked
    let e = c
        .call(0x8000_0042, Ttlv::structure(tag::REQUEST_PAYLOAD, vec![]))
        .unwrap_err();
    assert_eq!(e.reason(), Some(rr::OPERATION_NOT_SUPPORTED));
}

#[test]
fn client_identities_come_from_the_same_ca() {
    let server = ServerProcess::start(&[]);
    server.issue_client_cert("alice");
    let mut alice = server.client("alice");
    let r: DiscoverVersionsResponse = alice
        .op(op::DISCOVER_VERSIONS, &DiscoverVersionsRequest::default())
        .unwrap();
    assert_eq!(r.protocol_version.len(), 7);
    let err: Result<CreateResponse, ClientError> = alice.op(
        op::CREATE,
        &CreateRequest {
            object_type: Req(Enum(ot::SYMMETRIC_KEY)),
            ..Default::default()
        },
    );
    assert_eq!(
        err.unwrap_err().reason(),
        Some(rr::INVALID_FIELD),
        "no algorithm given"
    );
}

#[test]
fn shamir_shares_unseal_the_same_store_and_fewer_do_not() {
    let server = ServerProcess::start(&[]);
    let mut c = server.client("admin");
    let id = create_aes(&mut c, 256, vec![]);
    let get = |c: &mut Client| -> Ttlv {
        let g: GetResponse = c
            .op(
                op::GET,
                &GetRequest {
                    unique_identifier: uid(&id),
                    ..Default::default()
                },
            )
            .unwrap();
        g.symmetric_key.unwrap()
    };
    let before = get(&mut c);
    drop(c);
    let dir = server.stop();
    let out = std::process::Command::new(ServerProcess::binary())
        .args([
            "master-split",
            "--threshold",
            "3",
            "--shares",
            "5",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shares: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(shares.len(), 5);
    assert!(
        !dir.path().join("master.key").exists(),
        "the key file is gone after the split"
    );
    // no shares, or M-1 shares: the server refuses to start
    let mut dir = dir;
    for given in [vec![], vec![&shares[0], &shares[3]]] {
        let args: Vec<String> = given
            .iter()
            .flat_map(|s| ["--unseal-share".to_owned(), (*s).clone()])
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match ServerProcess::try_start_in(dir, &args) {
            Err((d, log)) => {
                assert!(
                    log.contains("split into shares") || log.contains("does not open"),
                    "{log}"
                );
                dir = d;
            }
            Ok(_) => panic!("started with {} shares", given.len()),
        }
    }
    // any three shares unseal it, and the key is the same
    let args = [
        "--unseal-share",
        &shares[1],
        "--unseal-share",
        &shares[4],
        "--unseal-share",
        &shares[2],
    ];
    let server = ServerProcess::try_start_in(dir, &args)
        .map_err(|(_, log)| log)
        .unwrap();
    let mut c = server.client("admin");
    assert_eq!(get(&mut c), before);
}

#[test]
fn rekey_check_poll_and_cancel() {
    let server = ServerProcess::start(&[]);
    let mut c = server.client("admin");
    let old = create_aes(&mut c, 128, vec![name("rotating"), mask(4 | 8)]);
    let r: ReKeyResponse = c
        .op(
            op::RE_KEY,
            &ReKeyRequest {
                unique_identifier: uid(&old),
                offset: Some(item(tag::OFFSET, Value::Interval(0))),
                ..Default::default()
            },
        )
        .unwrap();
    let new = r.unique_identifier.0;
    assert_ne!(new, old);
    // the name moved to the replacement, which is already Active (offset 0)
    let l: LocateResponse = c
        .op(
            op::LOCATE,
            &LocateRequest {
                attributes: attributes(vec![Ttlv::structure(
                    tag::NAME,
                    vec![item(tag::NAME_VALUE, Value::TextString("rotating".into()))],
                )]),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(l.unique_identifier, vec![new.clone()]);
    let attrs = get_attributes(&mut c, &new);
    assert!(attrs
        .iter()
        .any(|a| a.tag == tag::STATE && a.as_enum() == Some(state::ACTIVE)));
    // Check: the Encrypt bit is there, the Sign bit is not
    let ok: CheckResponse = c
        .op(
            op::CHECK,
            &CheckRequest {
                unique_identifier: uid(&new),
                cryptographic_usage_mask: Some(4),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(ok.unique_identifier.as_deref(), Some(new.as_str()));
    let bad = c.op::<_, CheckResponse>(
        op::CHECK,
        &CheckRequest {
            unique_identifier: uid(&new),
            cryptographic_usage_mask: Some(1),
            ..Default::default()
        },
    );
    assert_eq!(
        bad.unwrap_err().reason(),
        Some(rr::INCOMPATIBLE_CRYPTOGRAPHIC_USAGE_MASK)
    );
    // a correlation value no request of this client has: nothing to poll or cancel
    let p = c.op::<_, PollResponse>(
        op::POLL,
        &PollRequest {
            asynchronous_correlation_value: Req(Bytes(vec![1, 2])),
        },
    );
    assert_eq!(
        p.unwrap_err().reason(),
        Some(rr::INVALID_ASYNCHRONOUS_CORRELATION_VALUE)
    );
    let cr: CancelResponse = c
        .op(
            op::CANCEL,
            &CancelRequest {
                asynchronous_correlation_value: Req(Bytes(vec![1, 2])),
            },
        )
        .unwrap();
    assert_eq!(
        cr.cancellation_result.as_enum(),
        Some(kmip_codec::vocab::enums::cancellation_result::UNAVAILABLE)
    );
}

#[test]
fn sigterm_stops_cleanly_and_data_survives() {
    let mut server = ServerProcess::start(&[]);
    let mut c = server.client("admin");
    let id = create_aes(&mut c, 128, vec![]);
    // an idle client must not hold the shutdown until its idle timeout (300 s by default)
    let status = server
        .terminate(std::time::Duration::from_secs(5))
        .expect("stopped after SIGTERM");
    assert!(status.success(), "{status:?}: {}", server.log());
    assert!(server.log().contains("stopped"), "{}", server.log());
    let dir = server.stop();
    let server = ServerProcess::try_start_in(dir, &[])
        .map_err(|(_, l)| l)
        .unwrap();
    let mut c = server.client("admin");
    let attrs = get_attributes(&mut c, &id);
    assert!(attrs.iter().any(|a| a.tag == tag::UNIQUE_IDENTIFIER));
}

#[test]
fn get_converts_key_formats() {
    use kmip_codec::vocab::enums::key_format_type as kft;
    let server = ServerProcess::start(&[]);
    let mut c = server.client("admin");
    let (sk, pk) = create_rsa_pair(&mut c, 2048, vec![], None);
    let get = |c: &mut Client, id: &str, f: u32| -> Result<Ttlv, ClientError> {
        let g: GetResponse = c.op(
            op::GET,
            &GetRequest {
                unique_identifier: uid(id),
                key_format_type: Some(Enum(f)),
                ..Default::default()
            },
        )?;
        let obj = g.private_key.or(g.public_key).or(g.symmetric_key).unwrap();
        let kb = obj.child(tag::KEY_BLOCK).unwrap();
        assert_eq!(
            kb.child(tag::KEY_FORMAT_TYPE).and_then(Ttlv::as_enum),
            Some(f)
        );
        Ok(kb
            .child(tag::KEY_VALUE)
            .unwrap()
            .child(tag::KEY_MATERIAL)
            .unwrap()
            .clone())
    };
    for f in [kft::PKCS_1, kft::PKCS_8, kft::TRANSPARENT_RSA_PRIVATE_KEY] {
        get(&mut c, &sk, f).unwrap();
    }
    let spki = get(&mut c, &pk, kft::X_509).unwrap();
    assert_eq!(
        spki.as_bytes().unwrap()[0],
        0x30,
        "DER SubjectPublicKeyInfo"
    );
    let t = get(&mut c, &pk, kft::TRANSPARENT_RSA_PUBLIC_KEY).unwrap();
    assert!(t.child(tag::MODULUS).is_some() && t.child(tag::PUBLIC_EXPONENT).is_some());
    let aes = create_aes(&mut c, 128, vec![]);
    let e = get(&mut c, &aes, kft::PKCS_8).unwrap_err();
    assert_eq!(e.reason(), Some(rr::KEY_FORMAT_TYPE_NOT_SUPPORTED));
    get(&mut c, &aes, kft::TRANSPARENT_SYMMETRIC_KEY).unwrap();
}

#[test]
fn undo_batches_are_all_or_nothing() {
    use kmip_codec::message::{
        FieldValue, ProtocolVersion, RequestBatchItem, RequestHeader, RequestMessage,
    };
    use kmip_codec::vocab::enums::batch_error_continuation_option as beco;
    let server = ServerProcess::start(&[]);
    let mut c = server.client("admin");
    let create = CreateRequest {
        object_type: Req(Enum(ot::SYMMETRIC_KEY)),
        attributes: attributes(vec![
            item(tag::CRYPTOGRAPHIC_ALGORITHM, Value::Enumeration(alg::AES)),
            item(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(128)),
            name("undone"),
        ]),
        ..Default::default()
    };
    let batch = |second: RequestBatchItem| RequestMessage {
        header: Req(RequestHeader {
            protocol_version: Req(ProtocolVersion::new(2, 1)),
            batch_error_continuation_option: Some(Enum(beco::UNDO)),
            batch_count: Req(3),
            ..Default::default()
        }),
        batch_item: vec![
            RequestBatchItem {
                operation: Req(Enum(op::CREATE)),
                request_payload: Some(create.encode(tag::REQUEST_PAYLOAD)),
                ..Default::default()
            },
            RequestBatchItem {
                operation: Req(Enum(op::ACTIVATE)),
                request_payload: Some(ActivateRequest::default().encode(tag::REQUEST_PAYLOAD)),
                ..Default::default()
            },
            second,
        ],
    };
    let locate = |c: &mut Client| -> Vec<String> {
        let l: LocateResponse = c
            .op(
                op::LOCATE,
                &LocateRequest {
                    attributes: attributes(vec![Ttlv::structure(
                        tag::NAME,
                        vec![item(tag::NAME_VALUE, Value::TextString("undone".into()))],
                    )]),
                    ..Default::default()
                },
            )
            .unwrap();
        l.unique_identifier
    };
    // the third item fails (an Active key cannot be destroyed): the whole batch is undone
    let destroy = RequestBatchItem {
        operation: Req(Enum(op::DESTROY)),
        request_payload: Some(DestroyRequest::default().encode(tag::REQUEST_PAYLOAD)),
        ..Default::default()
    };
    let resp = c.send(&batch(destroy)).unwrap();
    let st: Vec<u32> = resp
        .batch_item
        .iter()
        .map(|b| b.result_status.0 .0)
        .collect();
    assert_eq!(
        st,
        vec![
            result_status::OPERATION_UNDONE,
            result_status::OPERATION_UNDONE,
            result_status::OPERATION_FAILED
        ]
    );
    assert!(
        locate(&mut c).is_empty(),
        "nothing of an undone batch remains"
    );
    // the same batch without a failing item is kept, all of it
    let get = RequestBatchItem {
        operation: Req(Enum(op::GET_ATTRIBUTES)),
        request_payload: Some(GetAttributesRequest::default().encode(tag::REQUEST_PAYLOAD)),
        ..Default::default()
    };
    let resp = c.send(&batch(get)).unwrap();
    assert!(resp
        .batch_item
        .iter()
        .all(|b| b.result_status.0 .0 == result_status::SUCCESS));
    let found = locate(&mut c);
    assert_eq!(found.len(), 1);
    assert!(get_attributes(&mut c, &found[0])
        .iter()
        .any(|a| a.tag == tag::STATE && a.as_enum() == Some(state::ACTIVE)));
}

#[test]
fn archive_and_recover() {
    let server = ServerProcess::start(&[]);
    let mut c = server.client("admin");
    let id = create_aes(&mut c, 128, vec![name("cold")]);
    let _: ArchiveResponse = c
        .op(
            op::ARCHIVE,
            &ArchiveRequest {
                unique_identifier: uid(&id),
            },
        )
        .unwrap();
    let e = c
        .op::<_, GetResponse>(
            op::GET,
            &GetRequest {
                unique_identifier: uid(&id),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.reason(), Some(rr::OBJECT_ARCHIVED));
    let mut v1 = server.client("admin").version(1, 2);
    let e = v1
        .op::<_, GetResponse>(
            op::GET,
            &GetRequest {
                unique_identifier: uid(&id),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(
        e.reason(),
        Some(rr::OBJECT_ARCHIVED),
        "1.x has Object Archived too"
    );
    let find = |c: &mut Client, mask: Option<i32>| -> Vec<String> {
        let l: LocateResponse = c
            .op(
                op::LOCATE,
                &LocateRequest {
                    storage_status_mask: mask
                        .map(|m| item(tag::STORAGE_STATUS_MASK, Value::Integer(m))),
                    ..Default::default()
                },
            )
            .unwrap();
        l.unique_identifier
    };
    assert!(
        find(&mut c, None).is_empty(),
        "archived objects are not on-line"
    );
    assert_eq!(find(&mut c, Some(2)), vec![id.clone()]);
    let _: RecoverResponse = c
        .op(
            op::RECOVER,
            &RecoverRequest {
                unique_identifier: uid(&id),
            },
        )
        .unwrap();
    assert_eq!(find(&mut c, None), vec![id.clone()]);
    let _: GetResponse = c
        .op(
            op::GET,
            &GetRequest {
                unique_identifier: uid(&id),
                ..Default::default()
            },
        )
        .unwrap();
}

fn state_of(c: &mut Client, id: &str) -> u32 {
    get_attributes(c, id)
        .into_iter()
        .find(|a| a.tag == tag::STATE)
        .and_then(|a| a.as_enum())
        .expect("a State attribute")
}

fn revoke(c: &mut Client, id: &str, reason: u32) -> Result<RevokeResponse, ClientError> {
    c.op(
        op::REVOKE,
        &RevokeRequest {
            unique_identifier: uid(id),
            revocation_reason: Req(Ttlv::structure(
                tag::REVOCATION_REASON,
                vec![item(
                    tag::REVOCATION_REASON_CODE,
                    Value::Enumeration(reason),
                )],
            )),
            compromise_occurrence_date: (reason
                == kmip_codec::vocab::enums::revocation_reason_code::KEY_COMPROMISE)
                .then_some(kmip_codec::message::DateTime(1)),
        },
    )
}

fn destroy(c: &mut Client, id: &str) -> Result<DestroyResponse, ClientError> {
    c.op(
        op::DESTROY,
        &DestroyRequest {
            unique_identifier: uid(id),
        },
    )
}

/// Every transition of the state machine a client can cause, with the state read back after
/// each step and the uses each state allows tried.
#[test]
fn the_whole_lifecycle_step_by_step() {
    use kmip_codec::vocab::enums::revocation_reason_code as rrc;
    let server = ServerProcess::start(&[]);
    let mut c = server.client("admin");
    let ecb = || {
        Some(Ttlv::structure(
            tag::CRYPTOGRAPHIC_PARAMETERS,
            vec![item(tag::BLOCK_CIPHER_MODE, Value::Enumeration(bcm::ECB))],
        ))
    };
    let encrypt = |c: &mut Client, id: &str| {
        c.op::<_, EncryptResponse>(
            op::ENCRYPT,
            &EncryptRequest {
                unique_identifier: uid(id),
                cryptographic_parameters: ecb(),
                data: Some(Bytes(vec![0; 16])),
                ..Default::default()
            },
        )
    };
    let decrypt = |c: &mut Client, id: &str| {
        c.op::<_, DecryptResponse>(
            op::DECRYPT,
            &DecryptRequest {
                unique_identifier: uid(id),
                cryptographic_parameters: ecb(),
                data: Some(Bytes(vec![0; 16])),
                ..Default::default()
            },
        )
    };
    // 1: created Pre-Active; no use, no deactivation
    let k = create_aes(&mut c, 128, vec![]);
    assert_eq!(state_of(&mut c, &k), state::PRE_ACTIVE);
    assert_eq!(
        encrypt(&mut c, &k).unwrap_err().reason(),
        Some(rr::WRONG_KEY_LIFECYCLE_STATE)
    );
    // 4: Activate
    activate(&mut c, &k);
    assert_eq!(state_of(&mut c, &k), state::ACTIVE);
    assert!(encrypt(&mut c, &k).is_ok() && decrypt(&mut c, &k).is_ok());
    // an Active key is not destroyed
    assert_eq!(
        destroy(&mut c, &k).unwrap_err().reason(),
        Some(rr::WRONG_KEY_LIFECYCLE_STATE)
    );
    // 6: Revoke (not compromised) deactivates: it still decrypts, never encrypts
    revoke(&mut c, &k, rrc::CESSATION_OF_OPERATION).unwrap();
    assert_eq!(state_of(&mut c, &k), state::DEACTIVATED);
    assert_eq!(
        encrypt(&mut c, &k).unwrap_err().reason(),
        Some(rr::WRONG_KEY_LIFECYCLE_STATE)
    );
    assert!(decrypt(&mut c, &k).is_ok());
    // 8: Deactivated to Compromised
    revoke(&mut c, &k, rrc::KEY_COMPROMISE).unwrap();
    assert_eq!(state_of(&mut c, &k), state::COMPROMISED);
    assert!(decrypt(&mut c, &k).is_ok());
    // 9: Compromised to Destroyed Compromised; the material is gone, the metadata stays
    destroy(&mut c, &k).unwrap();
    assert_eq!(state_of(&mut c, &k), state::DESTROYED_COMPROMISED);
    assert!(decrypt(&mut c, &k).is_err());
    assert!(get_object(&mut c, &k, None).is_err());

    // 2: Pre-Active to Destroyed, then 10: Destroyed to Destroyed Compromised
    let p = create_aes(&mut c, 128, vec![]);
    destroy(&mut c, &p).unwrap();
    assert_eq!(state_of(&mut c, &p), state::DESTROYED);
    revoke(&mut c, &p, rrc::KEY_COMPROMISE).unwrap();
    assert_eq!(state_of(&mut c, &p), state::DESTROYED_COMPROMISED);
    // 3: Pre-Active to Compromised; 5: Active to Compromised; 7: Deactivated to Destroyed
    let q = create_aes(&mut c, 128, vec![]);
    revoke(&mut c, &q, rrc::KEY_COMPROMISE).unwrap();
    assert_eq!(state_of(&mut c, &q), state::COMPROMISED);
    let r = create_aes(&mut c, 128, vec![]);
    activate(&mut c, &r);
    revoke(&mut c, &r, rrc::KEY_COMPROMISE).unwrap();
    assert_eq!(state_of(&mut c, &r), state::COMPROMISED);
    let s = create_aes(&mut c, 128, vec![]);
    activate(&mut c, &s);
    revoke(&mut c, &s, rrc::SUPERSEDED).unwrap();
    destroy(&mut c, &s).unwrap();
    assert_eq!(state_of(&mut c, &s), state::DESTROYED);
    // a second Activate is refused
    let t = create_aes(&mut c, 128, vec![]);
    activate(&mut c, &t);
    let again = c.op::<_, ActivateResponse>(
        op::ACTIVATE,
        &ActivateRequest {
            unique_identifier: uid(&t),
        },
    );
    assert_eq!(
        again.unwrap_err().reason(),
        Some(rr::WRONG_KEY_LIFECYCLE_STATE)
    );
}

/// Clients that change one object at the same moment: every acknowledged change is kept (a
/// request that lost the race for the object runs again on the object as it now is).
#[test]
fn concurrent_changes_to_one_object_are_all_kept() {
    let server = ServerProcess::start(&[]);
    let mut c = server.client("admin");
    let id = create_aes(&mut c, 128, vec![]);
    let per_client = 10;
    std::thread::scope(|s| {
        for t in 0..8 {
            let (server, id) = (&server, &id);
            s.spawn(move || {
                let mut c = server.client("admin");
                for i in 0..per_client {
                    let group = Ttlv::structure(
                        tag::NEW_ATTRIBUTE,
                        vec![item(
                            tag::OBJECT_GROUP,
                            Value::TextString(format!("g-{t}-{i}")),
                        )],
                    );
                    let _: AddAttributeResponse = c
                        .op(
                            op::ADD_ATTRIBUTE,
                            &AddAttributeRequest {
                                unique_identifier: uid(id),
                                new_attribute: Some(group),
                                ..Default::default()
                            },
                        )
                        .unwrap_or_else(|e| panic!("{e}: {}", server.log()));
                }
            });
        }
    });
    let groups = get_attributes(&mut c, &id)
        .into_iter()
        .filter(|a| a.tag == tag::OBJECT_GROUP)
        .count();
    assert_eq!(
        groups,
        8 * per_client,
        "every acknowledged Add Attribute is there"
    );
}
