//! Objects belong to their creator: with three identities (owner, stranger, administrator) over
//! real TLS, every operation that names an object answers the owner, hides the object from the
//! stranger (Item Not Found, so its existence does not leak), and serves the administrator.

use interop_tests::kmip::item;
use interop_tests::ServerProcess;
use kmip_client::Client;
use kmip_codec::message::{Bytes, Enum, FieldValue, Req};
use kmip_codec::ops::*;
use kmip_codec::vocab::enums::{
    cryptographic_algorithm as alg, object_type as ot, operation as op, result_reason as rr,
};
use kmip_codec::vocab::tag;
use kmip_codec::{Ttlv, Value};

fn create(c: &mut Client, name: &str) -> String {
    let r: CreateResponse = c
        .op(
            op::CREATE,
            &CreateRequest {
                object_type: Req(Enum(ot::SYMMETRIC_KEY)),
                attributes: Some(Ttlv::structure(
                    tag::ATTRIBUTES,
                    vec![
                        item(tag::CRYPTOGRAPHIC_ALGORITHM, Value::Enumeration(alg::AES)),
                        item(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(128)),
                        item(tag::CRYPTOGRAPHIC_USAGE_MASK, Value::Integer(4 | 8)),
                        Ttlv::structure(
                            tag::NAME,
                            vec![
                                item(tag::NAME_VALUE, Value::TextString(name.into())),
                                item(tag::NAME_TYPE, Value::Enumeration(1)),
                            ],
                        ),
                    ],
                )),
                ..Default::default()
            },
        )
        .unwrap();
    r.unique_identifier.0
}

fn p<T: FieldValue>(f: &T) -> Ttlv {
    f.encode(tag::REQUEST_PAYLOAD)
}

/// Every operation that names an object, as (name, operation, payload for `id`).
fn requests(id: &str) -> Vec<(&'static str, u32, Ttlv)> {
    let u = Some(id.to_owned());
    let desc = |s: &str| {
        Ttlv::structure(
            tag::NEW_ATTRIBUTE,
            vec![item(tag::DESCRIPTION, Value::TextString(s.into()))],
        )
    };
    vec![
        (
            "Get",
            op::GET,
            p(&GetRequest {
                unique_identifier: u.clone(),
                ..Default::default()
            }),
        ),
        (
            "GetAttributes",
            op::GET_ATTRIBUTES,
            p(&GetAttributesRequest {
                unique_identifier: u.clone(),
                ..Default::default()
            }),
        ),
        (
            "GetAttributeList",
            op::GET_ATTRIBUTE_LIST,
            p(&GetAttributeListRequest {
                unique_identifier: u.clone(),
            }),
        ),
        (
            "AddAttribute",
            op::ADD_ATTRIBUTE,
            p(&AddAttributeRequest {
                unique_identifier: u.clone(),
                new_attribute: Some(desc("x")),
                ..Default::default()
            }),
        ),
        (
            "SetAttribute",
            op::SET_ATTRIBUTE,
            p(&SetAttributeRequest {
                unique_identifier: u.clone(),
                new_attribute: Req(desc("y")),
            }),
        ),
        (
            "Check",
            op::CHECK,
            p(&CheckRequest {
                unique_identifier: u.clone(),
                ..Default::default()
            }),
        ),
        (
            "Activate",
            op::ACTIVATE,
            p(&ActivateRequest {
                unique_identifier: u.clone(),
            }),
        ),
        (
            "Encrypt",
            op::ENCRYPT,
            p(&EncryptRequest {
                unique_identifier: u.clone(),
                data: Some(Bytes(b"0123456789abcdef".to_vec())),
                ..Default::default()
            }),
        ),
        (
            "ReKey",
            op::RE_KEY,
            p(&ReKeyRequest {
                unique_identifier: u.clone(),
                ..Default::default()
            }),
        ),
        (
            "Revoke",
            op::REVOKE,
            p(&RevokeRequest {
                unique_identifier: u.clone(),
                revocation_reason: Req(Ttlv::structure(
                    tag::REVOCATION_REASON,
                    vec![item(tag::REVOCATION_REASON_CODE, Value::Enumeration(5))],
                )),
                ..Default::default()
            }),
        ),
        (
            "Destroy",
            op::DESTROY,
            p(&DestroyRequest {
                unique_identifier: u,
            }),
        ),
    ]
}

#[test]
fn owner_stranger_and_administrator() {
    let server = ServerProcess::start(&[]);
    server.issue_client_cert("alice");
    server.issue_client_cert("bob");
    let mut alice = server.client("alice");
    let mut bob = server.client("bob");
    let mut admin = server.client("admin");
    let key = create(&mut alice, "alice-key");
    let bobs = create(&mut bob, "bob-key");
    // the stranger: every operation on alice's key is Item Not Found, and changes nothing
    for (name, operation, payload) in requests(&key) {
        let e = bob.call(operation, payload).unwrap_err();
        assert_eq!(e.reason(), Some(rr::OBJECT_NOT_FOUND), "bob {name}: {e}");
    }
    // Locate never shows another identity's objects
    let locate = |c: &mut Client| -> Vec<String> {
        let l: LocateResponse = c.op(op::LOCATE, &LocateRequest::default()).unwrap();
        l.unique_identifier
    };
    assert_eq!(locate(&mut bob), vec![bobs.clone()]);
    assert_eq!(locate(&mut alice), vec![key.clone()]);
    let mut all = locate(&mut admin);
    all.sort();
    let mut want = vec![key.clone(), bobs.clone()];
    want.sort();
    assert_eq!(all, want);
    // the owner: each operation succeeds in turn (Re-key adds a replacement alice owns)
    for (name, operation, payload) in requests(&key) {
        alice
            .call(operation, payload)
            .unwrap_or_else(|e| panic!("alice {name}: {e}"));
    }
    assert_eq!(
        locate(&mut alice).len(),
        1,
        "the destroyed key is gone; its replacement remains"
    );
    assert!(!locate(&mut bob).iter().any(|id| id != &bobs));
    // the administrator: the same operations on bob's key succeed
    for (name, operation, payload) in requests(&bobs) {
        admin
            .call(operation, payload)
            .unwrap_or_else(|e| panic!("admin {name}: {e}"));
    }
    // ... but a non-extractable key does not leave, not even for the administrator
    let locked: CreateResponse = alice
        .op(
            op::CREATE,
            &CreateRequest {
                object_type: Req(Enum(ot::SYMMETRIC_KEY)),
                attributes: Some(Ttlv::structure(
                    tag::ATTRIBUTES,
                    vec![
                        item(tag::CRYPTOGRAPHIC_ALGORITHM, Value::Enumeration(alg::AES)),
                        item(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(128)),
                        item(tag::EXTRACTABLE, Value::Boolean(false)),
                    ],
                )),
                ..Default::default()
            },
        )
        .unwrap();
    let get = GetRequest {
        unique_identifier: Some(locked.unique_identifier.0.clone()),
        ..Default::default()
    };
    let e = admin.op::<_, GetResponse>(op::GET, &get).unwrap_err();
    assert_eq!(e.reason(), Some(rr::NOT_EXTRACTABLE));
}

#[test]
fn every_request_is_audited_without_secrets_and_tampering_is_named() {
    let server = ServerProcess::start(&[]);
    let mut c = server.client("admin");
    let id = create(&mut c, "audited");
    let g: GetResponse = c
        .op(
            op::GET,
            &GetRequest {
                unique_identifier: Some(id.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    let key = g
        .symmetric_key
        .unwrap()
        .child(tag::KEY_BLOCK)
        .unwrap()
        .child(tag::KEY_VALUE)
        .unwrap()
        .child(tag::KEY_MATERIAL)
        .unwrap()
        .as_bytes()
        .unwrap()
        .to_vec();
    let e = c
        .call(
            op::DESTROY,
            p(&DestroyRequest {
                unique_identifier: Some("nope".into()),
            }),
        )
        .unwrap_err();
    assert_eq!(e.reason(), Some(rr::OBJECT_NOT_FOUND));
    drop(c);
    let path = server.data_dir.path().join("audit.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let recs: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs[0]["identity"], "admin");
    assert_eq!(recs[0]["items"][0]["operation"], "Create");
    assert_eq!(recs[0]["items"][0]["objects"][0], id.as_str());
    assert_eq!(recs[1]["items"][0]["operation"], "Get");
    assert_eq!(recs[2]["items"][0]["result"], "OperationFailed");
    assert_eq!(recs[2]["items"][0]["reason"], "ObjectNotFound");
    assert!(recs[0]["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    let hex = kmip_codec::text::hex(&key);
    assert!(
        !text.to_lowercase().contains(&hex),
        "key material in the audit log"
    );
    // the verifier accepts the chain and names a changed line
    let verify = ServerProcess::verify_audit;
    let ok = verify(&path);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let tampered = server.data_dir.path().join("tampered.jsonl");
    std::fs::write(&tampered, text.replace("\"Get\"", "\"Check\"")).unwrap();
    let bad = verify(&tampered);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("line 2"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[test]
fn an_unwritable_audit_log_stops_operations() {
    let server = ServerProcess::start(&["--audit-file", "/dev/full"]);
    let mut c = server.client("admin");
    let r: Result<CreateResponse, _> = c.op(
        op::CREATE,
        &CreateRequest {
            object_type: Req(Enum(ot::SYMMETRIC_KEY)),
            attributes: Some(Ttlv::structure(
                tag::ATTRIBUTES,
                vec![
                    item(tag::CRYPTOGRAPHIC_ALGORITHM, Value::Enumeration(alg::AES)),
                    item(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(128)),
                ],
            )),
            ..Default::default()
        },
    );
    assert_eq!(r.unwrap_err().reason(), Some(rr::GENERAL_FAILURE));
    drop(c);
    // with a working log, the refused Create left nothing behind
    let dir = server.stop();
    let server = ServerProcess::try_start_in(dir, &[])
        .map_err(|(_, l)| l)
        .unwrap();
    let mut c = server.client("admin");
    let l: LocateResponse = c.op(op::LOCATE, &LocateRequest::default()).unwrap();
    assert!(l.unique_identifier.is_empty(), "{:?}", l.unique_identifier);
}

#[test]
fn password_credentials_on_top_of_certificates() {
    use kmip_codec::message::Credential;
    use kmip_codec::vocab::enums::credential_type;
    let hash = ServerProcess::hash_password("correct horse");
    let server = ServerProcess::start(&["--password", &format!("alice={hash}")]);
    server.issue_client_cert("alice");
    let mut alice = server.client("alice");
    let query = |c: &mut Client, auth: Option<(&str, &str)>| {
        query_with(
            c,
            (2, 1),
            auth.map(|(u, pw)| Credential {
                credential_type: Req(Enum(credential_type::USERNAME_AND_PASSWORD)),
                credential_value: Req(Ttlv::structure(
                    tag::CREDENTIAL_VALUE,
                    vec![
                        item(tag::USERNAME, Value::TextString(u.into())),
                        item(tag::PASSWORD, Value::TextString(pw.into())),
                    ],
                )),
            }),
        )
    };
    assert_eq!(query(&mut alice, Some(("alice", "correct horse"))), Ok(()));
    assert_eq!(
        query(&mut alice, Some(("alice", "wrong"))),
        Err(rr::AUTHENTICATION_NOT_SUCCESSFUL)
    );
    assert_eq!(
        query(&mut alice, None),
        Err(rr::AUTHENTICATION_NOT_SUCCESSFUL),
        "required for alice"
    );
    // the admin has no password: none needed; a credential for a user the server has no entry
    // for is not verified, and the request acts as the certificate (field_clients.rs)
    let mut admin = server.client("admin");
    assert_eq!(query(&mut admin, None), Ok(()));
    assert_eq!(query(&mut admin, Some(("admin", "anything"))), Ok(()));
    // a configured user is always verified, whatever the certificate
    assert_eq!(
        query(&mut admin, Some(("alice", "wrong"))),
        Err(rr::AUTHENTICATION_NOT_SUCCESSFUL)
    );
}

#[test]
fn grants_and_operation_policies() {
    let server =
        ServerProcess::start(&["--policy", "db=Create Get Encrypt Decrypt Activate Locate"]);
    for n in ["alice", "bob", "db"] {
        server.issue_client_cert(n);
    }
    let mut alice = server.client("alice");
    let mut bob = server.client("bob");
    let key = create(&mut alice, "shared");
    let get = |c: &mut Client| {
        c.op::<_, GetResponse>(
            op::GET,
            &GetRequest {
                unique_identifier: Some(key.clone()),
                ..Default::default()
            },
        )
    };
    assert_eq!(
        get(&mut bob).unwrap_err().reason(),
        Some(rr::OBJECT_NOT_FOUND)
    );
    // the administrative command, against the running server, as the owner
    let admin_cmd = |args: &[&str]| server.admin_command(args);
    admin_cmd(&[
        "grant",
        &key,
        "--to",
        "bob",
        "--operations",
        "Get GetAttributes",
        "--as",
        "alice",
    ]);
    assert!(get(&mut bob).is_ok(), "granted Get works");
    let destroy = bob
        .call(
            op::DESTROY,
            p(&DestroyRequest {
                unique_identifier: Some(key.clone()),
            }),
        )
        .unwrap_err();
    assert_eq!(
        destroy.reason(),
        Some(rr::PERMISSION_DENIED),
        "not granted: denied, the object is known to bob"
    );
    let l: LocateResponse = bob.op(op::LOCATE, &LocateRequest::default()).unwrap();
    assert_eq!(
        l.unique_identifier,
        vec![key.clone()],
        "granted objects are found"
    );
    // a grantee cannot grant further
    let regrant = bob.call(
        interop_tests::kmip::GRANT,
        Ttlv::structure(
            tag::REQUEST_PAYLOAD,
            vec![
                item(tag::UNIQUE_IDENTIFIER, Value::TextString(key.clone())),
                item(
                    interop_tests::kmip::GRANTEE,
                    Value::TextString("eve".into()),
                ),
                item(tag::OPERATION, Value::Enumeration(op::GET)),
            ],
        ),
    );
    assert_eq!(regrant.unwrap_err().reason(), Some(rr::PERMISSION_DENIED));
    let listed = admin_cmd(&["grants", &key]);
    assert_eq!(listed.trim(), "bob: Get GetAttributes");
    admin_cmd(&["revoke-grant", &key, "--from", "bob"]);
    assert_eq!(
        get(&mut bob).unwrap_err().reason(),
        Some(rr::OBJECT_NOT_FOUND),
        "revoked: hidden again"
    );
    assert!(admin_cmd(&["grants", &key]).trim().is_empty());
    // an operation policy: the database identity may create and use keys, never destroy them
    let mut db = server.client("db");
    let k = create(&mut db, "db-key");
    let d = db
        .call(
            op::DESTROY,
            p(&DestroyRequest {
                unique_identifier: Some(k.clone()),
            }),
        )
        .unwrap_err();
    assert_eq!(d.reason(), Some(rr::PERMISSION_DENIED));
    let _: GetResponse = db
        .op(
            op::GET,
            &GetRequest {
                unique_identifier: Some(k),
                ..Default::default()
            },
        )
        .unwrap();
}

/// The vendor operation and tag values of kmip-server's grants (kept here to test the wire).
#[test]
fn automatic_state_changes_are_audited() {
    let server = ServerProcess::start(&[]);
    let mut c = server.client("admin");
    let soon = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        // two seconds ahead: the Create must reach the server before its Activation Date,
        // even on a loaded machine (one second made it arrive late now and then)
        + 2;
    let r: CreateResponse = c
        .op(
            op::CREATE,
            &CreateRequest {
                object_type: Req(Enum(ot::SYMMETRIC_KEY)),
                attributes: Some(Ttlv::structure(
                    tag::ATTRIBUTES,
                    vec![
                        item(tag::CRYPTOGRAPHIC_ALGORITHM, Value::Enumeration(alg::AES)),
                        item(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(128)),
                        item(tag::ACTIVATION_DATE, Value::DateTime(soon)),
                    ],
                )),
                ..Default::default()
            },
        )
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(3100));
    let _: GetAttributesResponse = c
        .op(
            op::GET_ATTRIBUTES,
            &GetAttributesRequest {
                unique_identifier: Some(r.unique_identifier.0.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    let text = std::fs::read_to_string(server.data_dir.path().join("audit.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(
        last["automatic"][0]["object"],
        r.unique_identifier.0.as_str(),
        "{last}"
    );
    assert_eq!(last["automatic"][0]["from"], "PreActive");
    assert_eq!(last["automatic"][0]["to"], "Active");
}

#[test]
fn a_tenant_is_given_a_whole_object_group() {
    let server =
        ServerProcess::start(&["--group-grant", "tenant-a=carol:Get GetAttributes Locate"]);
    for n in ["alice", "carol"] {
        server.issue_client_cert(n);
    }
    let mut alice = server.client("alice");
    let mut carol = server.client("carol");
    let make = |c: &mut Client, group: Option<&str>| -> String {
        let mut attrs = vec![
            item(tag::CRYPTOGRAPHIC_ALGORITHM, Value::Enumeration(alg::AES)),
            item(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(128)),
        ];
        if let Some(g) = group {
            attrs.push(item(tag::OBJECT_GROUP, Value::TextString(g.into())));
        }
        let r: CreateResponse = c
            .op(
                op::CREATE,
                &CreateRequest {
                    object_type: Req(Enum(ot::SYMMETRIC_KEY)),
                    attributes: Some(Ttlv::structure(tag::ATTRIBUTES, attrs)),
                    ..Default::default()
                },
            )
            .unwrap();
        r.unique_identifier.0
    };
    let in_group = make(&mut alice, Some("tenant-a"));
    let outside = make(&mut alice, Some("tenant-b"));
    let get = |c: &mut Client, id: &str| {
        c.op::<_, GetResponse>(
            op::GET,
            &GetRequest {
                unique_identifier: Some(id.into()),
                ..Default::default()
            },
        )
    };
    get(&mut carol, &in_group).unwrap();
    assert_eq!(
        get(&mut carol, &outside).unwrap_err().reason(),
        Some(rr::OBJECT_NOT_FOUND)
    );
    let d = carol
        .call(
            op::DESTROY,
            p(&DestroyRequest {
                unique_identifier: Some(in_group.clone()),
            }),
        )
        .unwrap_err();
    assert_eq!(
        d.reason(),
        Some(rr::PERMISSION_DENIED),
        "the group grant does not include Destroy"
    );
    let l: LocateResponse = carol.op(op::LOCATE, &LocateRequest::default()).unwrap();
    assert_eq!(l.unique_identifier, vec![in_group]);
}

/// An application namespace (Application Specific Information) given to an identity in the
/// configuration: it finds and uses that namespace's objects, and no others.
#[test]
fn a_tenant_is_given_a_whole_application_namespace() {
    let server = ServerProcess::start(&[
        "--namespace-grant",
        "ssl.example.com=dave:Get GetAttributes Locate",
    ]);
    for n in ["alice", "dave"] {
        server.issue_client_cert(n);
    }
    let mut alice = server.client("alice");
    let mut dave = server.client("dave");
    let make = |c: &mut Client, namespace: &str| -> String {
        let attrs = vec![
            item(tag::CRYPTOGRAPHIC_ALGORITHM, Value::Enumeration(alg::AES)),
            item(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(128)),
            Ttlv::structure(
                tag::APPLICATION_SPECIFIC_INFORMATION,
                vec![
                    item(
                        tag::APPLICATION_NAMESPACE,
                        Value::TextString(namespace.into()),
                    ),
                    item(tag::APPLICATION_DATA, Value::TextString("www".into())),
                ],
            ),
        ];
        let r: CreateResponse = c
            .op(
                op::CREATE,
                &CreateRequest {
                    object_type: Req(Enum(ot::SYMMETRIC_KEY)),
                    attributes: Some(Ttlv::structure(tag::ATTRIBUTES, attrs)),
                    ..Default::default()
                },
            )
            .unwrap();
        r.unique_identifier.0
    };
    let inside = make(&mut alice, "ssl.example.com");
    let outside = make(&mut alice, "smime.example.com");
    let get = |c: &mut Client, id: &str| {
        c.op::<_, GetResponse>(
            op::GET,
            &GetRequest {
                unique_identifier: Some(id.into()),
                ..Default::default()
            },
        )
    };
    get(&mut dave, &inside).unwrap();
    assert_eq!(
        get(&mut dave, &outside).unwrap_err().reason(),
        Some(rr::OBJECT_NOT_FOUND)
    );
    let d = dave
        .call(
            op::DESTROY,
            p(&DestroyRequest {
                unique_identifier: Some(inside.clone()),
            }),
        )
        .unwrap_err();
    assert_eq!(d.reason(), Some(rr::PERMISSION_DENIED));
    let l: LocateResponse = dave.op(op::LOCATE, &LocateRequest::default()).unwrap();
    assert_eq!(l.unique_identifier, vec![inside]);
}

/// A storage array that must present its Device credential: right serial, wrong serial,
/// none, and a device credential from an identity without a configured device.
#[test]
fn device_credentials_on_top_of_certificates() {
    use kmip_codec::message::Credential;
    use kmip_codec::vocab::enums::credential_type;
    let server = ServerProcess::start(&["--device", "array=SN-0042-7781"]);
    server.issue_client_cert("array");
    let query = |c: &mut Client, serial: Option<&str>| {
        query_with(
            c,
            (1, 2),
            serial.map(|s| Credential {
                credential_type: Req(Enum(credential_type::DEVICE)),
                credential_value: Req(Ttlv::structure(
                    tag::CREDENTIAL_VALUE,
                    vec![item(tag::DEVICE_SERIAL_NUMBER, Value::TextString(s.into()))],
                )),
            }),
        )
    };
    let mut array = server.client("array");
    assert_eq!(query(&mut array, Some("SN-0042-7781")), Ok(()));
    assert_eq!(
        query(&mut array, Some("SN-0042-7782")),
        Err(rr::AUTHENTICATION_NOT_SUCCESSFUL)
    );
    assert_eq!(
        query(&mut array, None),
        Err(rr::AUTHENTICATION_NOT_SUCCESSFUL),
        "required for the array"
    );
    let mut admin = server.client("admin");
    assert_eq!(query(&mut admin, None), Ok(()));
    assert_eq!(
        query(&mut admin, Some("SN-0042-7781")),
        Err(rr::AUTHENTICATION_NOT_SUCCESSFUL),
        "never ignored"
    );
}

/// A Query with this credential in the request header: Ok, or the Result Reason.
fn query_with(
    c: &mut Client,
    version: (i32, i32),
    credential: Option<kmip_codec::message::Credential>,
) -> Result<(), u32> {
    use kmip_codec::message::{
        Authentication, ProtocolVersion, RequestBatchItem, RequestHeader, RequestMessage,
    };
    use kmip_codec::vocab::enums::result_status;
    let req = RequestMessage {
        header: Req(RequestHeader {
            protocol_version: Req(ProtocolVersion::new(version.0, version.1)),
            authentication: credential.map(|c| Authentication {
                credential: vec![c],
            }),
            batch_count: Req(1),
            ..Default::default()
        }),
        batch_item: vec![RequestBatchItem {
            operation: Req(Enum(op::QUERY)),
            request_payload: Some(p(&QueryRequest::default())),
            ..Default::default()
        }],
    };
    let resp = c.send(&req).unwrap();
    let b = &resp.batch_item[0];
    if b.result_status.0 .0 == result_status::SUCCESS {
        Ok(())
    } else {
        Err(b.result_reason.unwrap().0)
    }
}
