//! What deployed clients send where it differs from the letter of KMIP, against a server
//! started with its defaults: one message sequence of our own per client behaviour (see
//! COMPATIBILITY.md for the clients behind each).

use interop_tests::kmip::{attributes, create_aes, item, name, uid};
use interop_tests::ServerProcess;
use kmip_client::{Client, ClientError};
use kmip_codec::attributes::attribute_to_v1;
use kmip_codec::message::{Enum, FieldValue, Req};
use kmip_codec::ops::*;
use kmip_codec::vocab::enums::{
    cryptographic_algorithm as alg, object_type as ot, operation as op, result_reason as rr,
};
use kmip_codec::vocab::tag;
use kmip_codec::{Ttlv, Value};

fn reason<T: std::fmt::Debug>(r: Result<T, ClientError>) -> Option<u32> {
    r.expect_err("refused").reason()
}

fn aes_attrs(extra: Vec<Ttlv>) -> Vec<Ttlv> {
    let mut a = vec![
        item(tag::CRYPTOGRAPHIC_ALGORITHM, Value::Enumeration(alg::AES)),
        item(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(128)),
    ];
    a.extend(extra);
    a
}

/// A 1.x Template-Attribute holding `items` (2.x attribute items).
fn template(items: &[Ttlv]) -> Ttlv {
    Ttlv::structure(
        tag::TEMPLATE_ATTRIBUTE,
        items
            .iter()
            .map(|a| attribute_to_v1(a, 0).unwrap())
            .collect(),
    )
}

fn try_create(c: &mut Client, attrs: Vec<Ttlv>) -> Result<String, ClientError> {
    let r: CreateResponse = c.op(
        op::CREATE,
        &CreateRequest {
            object_type: Req(Enum(ot::SYMMETRIC_KEY)),
            attributes: attributes(attrs),
            ..Default::default()
        },
    )?;
    Ok(r.unique_identifier.0)
}

fn locate(c: &mut Client, criteria: Vec<Ttlv>) -> Vec<String> {
    let l: LocateResponse = c
        .op(
            op::LOCATE,
            &LocateRequest {
                attributes: attributes(criteria),
                ..Default::default()
            },
        )
        .unwrap();
    l.unique_identifier
}

/// PyKMIP names every registered key "Symmetric Key", a Go client puts one Name in the common
/// attributes of Create Key Pair: by default names repeat across objects (newest first in
/// Locate), never twice on one object.
#[test]
fn names_repeat_across_objects_by_default() {
    let server = ServerProcess::start(&[]);
    let mut c = server.client("admin");
    let first = try_create(&mut c, aes_attrs(vec![name("Symmetric Key")])).unwrap();
    let second = try_create(&mut c, aes_attrs(vec![name("Symmetric Key")])).unwrap();
    assert_eq!(
        locate(&mut c, vec![name("Symmetric Key")]),
        vec![second.clone(), first.clone()],
        "newest first"
    );
    let pair: CreateKeyPairResponse = c
        .op(
            op::CREATE_KEY_PAIR,
            &CreateKeyPairRequest {
                common_attributes: Some(Ttlv::structure(
                    tag::COMMON_ATTRIBUTES,
                    vec![
                        item(tag::CRYPTOGRAPHIC_ALGORITHM, Value::Enumeration(alg::ECDSA)),
                        item(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(256)),
                        name("signing pair"),
                    ],
                )),
                ..Default::default()
            },
        )
        .expect("one common Name names both halves");
    assert_eq!(locate(&mut c, vec![name("signing pair")]).len(), 2);
    let _ = pair;
    // the same name twice on one object is still refused (the 2.1 test case BL-M-8)
    let again = c.op::<_, AddAttributeResponse>(
        op::ADD_ATTRIBUTE,
        &AddAttributeRequest {
            unique_identifier: uid(&first),
            new_attribute: Some(Ttlv::structure(
                tag::NEW_ATTRIBUTE,
                vec![name("Symmetric Key")],
            )),
            ..Default::default()
        },
    );
    assert_eq!(reason(again), Some(rr::NON_UNIQUE_NAME_ATTRIBUTE));
}

/// `--unique-names` gives the specification's rule within one owner's objects: another
/// identity may hold the same name, so a refusal says nothing about other identities' names.
#[test]
fn unique_names_are_unique_per_owner() {
    let server = ServerProcess::start(&["--unique-names"]);
    for n in ["alice", "bob"] {
        server.issue_client_cert(n);
    }
    let mut alice = server.client("alice");
    let mut bob = server.client("bob");
    try_create(&mut alice, aes_attrs(vec![name("payroll")])).unwrap();
    assert_eq!(
        reason(try_create(&mut alice, aes_attrs(vec![name("payroll")]))),
        Some(rr::NON_UNIQUE_NAME_ATTRIBUTE)
    );
    let bobs = try_create(&mut bob, aes_attrs(vec![name("payroll")]))
        .expect("bob cannot probe or squat alice's names");
    assert_eq!(locate(&mut bob, vec![name("payroll")]), vec![bobs]);
}

/// FortiOS and VAST (KMIP 1.x) send Locate's filter inside a Template-Attribute.
#[test]
fn locate_reads_a_template_attribute() {
    let server = ServerProcess::start(&[]);
    let mut c = server.client("admin").version(1, 2);
    let wanted = create_aes(&mut c, 128, vec![name("fortigate-key")]);
    let _other = create_aes(&mut c, 128, vec![name("other-key")]);
    let payload = |extra: Vec<Ttlv>| {
        let mut children = vec![template(&[name("fortigate-key")])];
        children.extend(extra);
        Ttlv::structure(tag::REQUEST_PAYLOAD, children)
    };
    let found = LocateResponse::decode(&c.call(op::LOCATE, payload(vec![])).unwrap()).unwrap();
    assert_eq!(found.unique_identifier, vec![wanted.clone()]);
    // a filter the server does not apply is refused, never dropped
    let mut v2 = server.client("admin");
    let default_member = v2.call(
        op::LOCATE,
        Ttlv::structure(
            tag::REQUEST_PAYLOAD,
            vec![
                item(tag::OBJECT_GROUP_MEMBER, Value::Enumeration(2)),
                Ttlv::structure(tag::ATTRIBUTES, vec![name("fortigate-key")]),
            ],
        ),
    );
    assert_eq!(reason(default_member), Some(rr::INVALID_FIELD));
    // no small request buys a scan times thousands of comparisons
    let many: Vec<Ttlv> = (0..1000).map(|i| name(&format!("n{i}"))).collect();
    let flood = v2.call(
        op::LOCATE,
        Ttlv::structure(
            tag::REQUEST_PAYLOAD,
            vec![Ttlv::structure(tag::ATTRIBUTES, many)],
        ),
    );
    assert_eq!(reason(flood), Some(rr::INVALID_FIELD));
}

/// EDB's 2.1 client repeats the Object Type inside the Attributes of Create.
#[test]
fn object_type_inside_the_attributes_of_create() {
    let server = ServerProcess::start(&[]);
    let mut c = server.client("admin");
    let same = item(tag::OBJECT_TYPE, Value::Enumeration(ot::SYMMETRIC_KEY));
    try_create(&mut c, aes_attrs(vec![same])).expect("the same Object Type");
    let other = item(tag::OBJECT_TYPE, Value::Enumeration(ot::SECRET_DATA));
    assert_eq!(
        reason(try_create(&mut c, aes_attrs(vec![other]))),
        Some(rr::INVALID_FIELD)
    );
}

/// VAST creates a key with an Operation Policy Name, then adds the same one.
#[test]
fn adding_the_value_already_there_changes_nothing() {
    let server = ServerProcess::start(&[]);
    let mut c = server.client("admin").version(1, 2);
    let policy = |p: &str| item(tag::OPERATION_POLICY_NAME, Value::TextString(p.into()));
    let r: CreateResponse = c
        .op(
            op::CREATE,
            &CreateRequest {
                object_type: Req(Enum(ot::SYMMETRIC_KEY)),
                template_attribute: Some(template(&aes_attrs(vec![policy("default")]))),
                ..Default::default()
            },
        )
        .unwrap();
    let id = r.unique_identifier.0;
    let add = |c: &mut Client, p: &str| {
        c.op::<_, AddAttributeResponse>(
            op::ADD_ATTRIBUTE,
            &AddAttributeRequest {
                unique_identifier: uid(&id),
                attribute: Some(attribute_to_v1(&policy(p), 0).unwrap()),
                ..Default::default()
            },
        )
    };
    add(&mut c, "default").expect("the value the key already has");
    assert_eq!(
        reason(add(&mut c, "other")),
        Some(rr::PERMISSION_DENIED),
        "a different value: Attribute Single Valued, as 1.x answers it"
    );
}

/// A key used outside its state: 2.1 answers Wrong Key Lifecycle State, 2.0 and 1.x
/// Permission Denied, as each version's test cases do.
#[test]
fn each_version_gets_its_own_reasons() {
    let server = ServerProcess::start(&[]);
    let mut c = server.client("admin");
    let pre_active = create_aes(&mut c, 128, vec![]);
    for ((major, minor), want) in [
        ((2, 1), rr::WRONG_KEY_LIFECYCLE_STATE),
        ((2, 0), rr::PERMISSION_DENIED),
        ((1, 4), rr::PERMISSION_DENIED),
    ] {
        let mut v = server.client("admin").version(major, minor);
        let e = v.op::<_, EncryptResponse>(
            op::ENCRYPT,
            &EncryptRequest {
                unique_identifier: uid(&pre_active),
                data: Some(kmip_codec::message::Bytes(vec![0; 16])),
                ..Default::default()
            },
        );
        assert_eq!(reason(e), Some(want), "{major}.{minor}");
    }
}

/// One batch item with a Username and Password credential in the header; the Credential Type
/// as FortiOS sometimes sends it, a bare Integer, when `bare`.
fn with_credential(
    c: &mut Client,
    user: &str,
    pw: &str,
    bare: bool,
    operation: u32,
    payload: Ttlv,
) -> Result<Ttlv, u32> {
    use kmip_codec::message::{Authentication, Credential};
    use kmip_codec::vocab::enums::{credential_type, result_status};
    let mut req = kmip_client::request_message((1, 2), vec![(operation, payload)]);
    req.header.0.authentication = Some(Authentication {
        credential: vec![Credential {
            credential_type: Req(Enum(credential_type::USERNAME_AND_PASSWORD)),
            credential_value: Req(Ttlv::structure(
                tag::CREDENTIAL_VALUE,
                vec![
                    item(tag::USERNAME, Value::TextString(user.into())),
                    item(tag::PASSWORD, Value::TextString(pw.into())),
                ],
            )),
        }],
    });
    let mut tree = req.to_ttlv();
    if bare {
        fn rewrite(t: &mut Ttlv) {
            if t.tag == tag::CREDENTIAL_TYPE {
                if let Value::Enumeration(v) = t.value {
                    t.value = Value::Integer(v as i32);
                }
            }
            for c in t.children_mut().into_iter().flatten() {
                rewrite(c);
            }
        }
        rewrite(&mut tree);
    }
    let resp = c.raw(&kmip_codec::encode(&tree)).unwrap();
    let b = resp.child(tag::BATCH_ITEM).unwrap();
    if b.child(tag::RESULT_STATUS).and_then(Ttlv::as_enum) == Some(result_status::SUCCESS) {
        Ok(b.child(tag::RESPONSE_PAYLOAD).cloned().unwrap_or_default())
    } else {
        Err(b
            .child(tag::RESULT_REASON)
            .and_then(Ttlv::as_enum)
            .unwrap_or(0))
    }
}

/// FortiOS sends its own KMIP user's credential on every Locate, sometimes with a bare
/// Integer Credential Type. An unknown user is not verified (the request acts as the
/// certificate, and the audit record says so); a configured one is always verified, and may
/// be bound, on one certificate, to the identity it acts as.
#[test]
fn credentials_as_fortios_sends_them() {
    let hash = ServerProcess::hash_password("fortinet");
    let server = ServerProcess::start(&[
        "--password",
        &format!("fg-client={hash}"),
        "--bind-user",
        "fg-client@fortigate-1=firewalls",
    ]);
    for n in ["fortigate-1", "bob"] {
        server.issue_client_cert(n);
    }
    let mut bob = server.client("bob").version(1, 2);
    let bobs = create_aes(&mut bob, 128, vec![name("bob-key")]);
    let locate = || Ttlv::structure(tag::REQUEST_PAYLOAD, vec![template(&[name("bob-key")])]);
    for bare in [false, true] {
        let found = with_credential(&mut bob, "fortigate-kmip", "x", bare, op::LOCATE, locate())
            .expect("an unknown user is not an error");
        assert_eq!(
            LocateResponse::decode(&found).unwrap().unique_identifier,
            vec![bobs.clone()],
            "acts as the certificate, bob"
        );
    }
    assert_eq!(
        with_credential(&mut bob, "fg-client", "guess", true, op::LOCATE, locate()),
        Err(rr::AUTHENTICATION_NOT_SUCCESSFUL)
    );
    // the bound user acts as the identity the operator chose: its objects are not the
    // certificate's own
    let mut fg = server.client("fortigate-1").version(1, 2);
    let create = Ttlv::structure(
        tag::REQUEST_PAYLOAD,
        vec![
            item(tag::OBJECT_TYPE, Value::Enumeration(ot::SYMMETRIC_KEY)),
            template(&aes_attrs(vec![name("fw-key")])),
        ],
    );
    with_credential(&mut fg, "fg-client", "fortinet", true, op::CREATE, create).unwrap();
    let by_name = || Ttlv::structure(tag::REQUEST_PAYLOAD, vec![template(&[name("fw-key")])]);
    let as_bound = with_credential(
        &mut fg,
        "fg-client",
        "fortinet",
        false,
        op::LOCATE,
        by_name(),
    )
    .unwrap();
    assert_eq!(
        LocateResponse::decode(&as_bound)
            .unwrap()
            .unique_identifier
            .len(),
        1
    );
    let plain = LocateResponse::decode(&fg.call(op::LOCATE, by_name()).unwrap()).unwrap();
    assert!(
        plain.unique_identifier.is_empty(),
        "the certificate alone acts as fortigate-1"
    );
    // the audit log says which credential was not verified, and who acted for whom
    let audit = std::fs::read_to_string(server.data_dir.path().join("audit.jsonl")).unwrap();
    assert!(audit.contains("not verified"), "{audit}");
    assert!(audit.contains("\"certificate\":\"fortigate-1\""), "{audit}");
    server.assert_audit_chain();
}

/// Self-encrypting drives and storage arrays (KMIP 1.0-1.2) register a Template and name it in
/// the Template-Attribute of Create; the Template is an object like any other (Get, Get
/// Attributes, Locate, Destroy), and belongs to its owner.
#[test]
fn templates_registered_and_named() {
    let server = ServerProcess::start(&[]);
    server.issue_client_cert("bob");
    let mut c = server.client("admin").version(1, 2);
    let content = Ttlv::structure(
        tag::TEMPLATE,
        aes_attrs(vec![item(
            tag::CRYPTOGRAPHIC_USAGE_MASK,
            Value::Integer(4 | 8),
        )])
        .iter()
        .map(|a| attribute_to_v1(a, 0).unwrap())
        .collect(),
    );
    let r: RegisterResponse = c
        .op(
            op::REGISTER,
            &RegisterRequest {
                object_type: Req(Enum(ot::TEMPLATE)),
                template_attribute: Some(template(&[name("sed-template")])),
                template: Some(content.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    let tid = r.unique_identifier.0;
    let got: GetResponse = c
        .op(
            op::GET,
            &GetRequest {
                unique_identifier: uid(&tid),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(got.template, Some(content));
    assert_eq!(
        locate(
            &mut server.client("admin"),
            vec![item(tag::OBJECT_TYPE, Value::Enumeration(ot::TEMPLATE))]
        ),
        vec![tid.clone()]
    );
    // Create naming the template (a Name child of the Template-Attribute), with a Name of
    // its own and a length that wins over the template's
    let by_template = |length: Option<i32>| {
        let mut t = vec![name("sed-template")];
        t.push(attribute_to_v1(&name("drive-0"), 0).unwrap());
        if let Some(l) = length {
            t.push(
                attribute_to_v1(&item(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(l)), 0).unwrap(),
            );
        }
        Ttlv::structure(
            tag::REQUEST_PAYLOAD,
            vec![
                item(tag::OBJECT_TYPE, Value::Enumeration(ot::SYMMETRIC_KEY)),
                Ttlv::structure(tag::TEMPLATE_ATTRIBUTE, t),
            ],
        )
    };
    let created = CreateResponse::decode(&c.call(op::CREATE, by_template(Some(256))).unwrap())
        .unwrap()
        .unique_identifier
        .0;
    let mut v2 = server.client("admin");
    let attrs = interop_tests::kmip::get_attributes(&mut v2, &created);
    assert!(attrs.contains(&item(
        tag::CRYPTOGRAPHIC_ALGORITHM,
        Value::Enumeration(alg::AES)
    )));
    assert!(attrs.contains(&item(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(256))));
    assert!(attrs.contains(&item(tag::CRYPTOGRAPHIC_USAGE_MASK, Value::Integer(4 | 8))));
    assert!(attrs.contains(&name("drive-0")));
    // another identity does not find the template by its name
    let mut bob = server.client("bob").version(1, 2);
    assert_eq!(
        reason(bob.call(op::CREATE, by_template(None))),
        Some(rr::ITEM_NOT_FOUND)
    );
    // destroyed, it names nothing
    c.call(
        op::DESTROY,
        Ttlv::structure(
            tag::REQUEST_PAYLOAD,
            vec![item(tag::UNIQUE_IDENTIFIER, Value::TextString(tid))],
        ),
    )
    .unwrap();
    assert_eq!(
        reason(c.call(op::CREATE, by_template(None))),
        Some(rr::ITEM_NOT_FOUND)
    );
}
