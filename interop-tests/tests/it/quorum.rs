//! Dual control (`--quorum`) against a real server: an application asks, custodians approve
//! with `kmip-admin approvals`, through Poll (the Asynchronous Indicator) or by sending the
//! same request again; self-approval, double approval, denial, cancel, expiry, a restart in
//! the middle, moving an object out of its group, a wrapped Get, racing uses of one approval,
//! a 1.x client, and two nodes of one PostgreSQL store.

use interop_tests::kmip::{activate, create_aes, get_attributes, item, mask, uid, wrapping_spec};
use interop_tests::{output_text, ServerProcess};
use kmip_client::{Client, ClientError};
use kmip_codec::message::{Enum, FieldValue, ResponseBatchItem};
use kmip_codec::ops::*;
use kmip_codec::vocab::enums::{
    asynchronous_indicator, cancellation_result, operation as op, result_reason as rr,
    result_status,
};
use kmip_codec::vocab::tag;
use kmip_codec::{Ttlv, Value};
use serde_json::Value as J;

const ADMINS: &str = "admin,c1,c2,c3";

fn start(extra: &[&str]) -> ServerProcess {
    let mut args = vec!["--admin", ADMINS, "--quorum", "payments=2:Destroy Get"];
    args.extend(extra);
    let server = ServerProcess::start(&args);
    for who in ["app", "c1", "c2", "c3"] {
        server.issue_client_cert(who);
    }
    server
}

fn group(g: &str) -> Ttlv {
    item(tag::OBJECT_GROUP, Value::TextString(g.into()))
}

fn destroy_payload(id: &str) -> Ttlv {
    DestroyRequest {
        unique_identifier: uid(id),
    }
    .encode(tag::REQUEST_PAYLOAD)
}

/// One operation sent with the Asynchronous Indicator: the whole answer item.
fn send_async(c: &mut Client, operation: u32, payload: Ttlv) -> ResponseBatchItem {
    let mut req = c.batch_request(vec![(operation, payload)]);
    req.header.0.asynchronous_indicator = Some(Ttlv::new(
        tag::ASYNCHRONOUS_INDICATOR,
        Value::Enumeration(asynchronous_indicator::OPTIONAL),
    ));
    let mut resp = c.send(&req).expect("an answer");
    resp.batch_item.remove(0)
}

fn correlation(item: &ResponseBatchItem) -> Vec<u8> {
    assert_eq!(
        item.result_status.0 .0,
        result_status::OPERATION_PENDING,
        "{item:?}"
    );
    item.asynchronous_correlation_value
        .clone()
        .expect("an Asynchronous Correlation Value")
        .0
}

fn poll(c: &mut Client, acv: &[u8]) -> ResponseBatchItem {
    let payload = PollRequest {
        asynchronous_correlation_value: kmip_codec::message::Req(kmip_codec::message::Bytes(
            acv.to_vec(),
        )),
    }
    .encode(tag::REQUEST_PAYLOAD);
    let mut resp = c.batch(vec![(op::POLL, payload)]).expect("an answer");
    resp.batch_item.remove(0)
}

fn admin_json(server: &ServerProcess, args: &[&str]) -> J {
    let o = server.admin(args);
    assert!(o.status.success(), "{args:?}: {}", output_text(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", output_text(&o)))
}

fn open_requests(server: &ServerProcess) -> Vec<J> {
    admin_json(server, &["approvals", "list", "--json", "--as", "c3"])
        .as_array()
        .expect("an array")
        .clone()
}

/// `kmip-admin approvals approve ID --as WHO`, expected to succeed: what it printed.
fn approve(server: &ServerProcess, who: &str, id: &str) -> String {
    server.admin_command(&["approvals", "approve", id, "--as", who])
}

/// The approval request a synchronous refusal names.
fn named_request(e: &ClientError) -> String {
    assert_eq!(e.reason(), Some(rr::PERMISSION_DENIED), "{e}");
    let text = e.to_string();
    let after = text
        .split("approval request ")
        .nth(1)
        .unwrap_or_else(|| panic!("no approval request named: {text}"));
    after.chars().take_while(char::is_ascii_hexdigit).collect()
}

fn destroy(c: &mut Client, id: &str) -> Result<DestroyResponse, ClientError> {
    c.op(
        op::DESTROY,
        &DestroyRequest {
            unique_identifier: uid(id),
        },
    )
}

fn get(c: &mut Client, id: &str) -> Result<GetResponse, ClientError> {
    c.op(
        op::GET,
        &GetRequest {
            unique_identifier: uid(id),
            ..Default::default()
        },
    )
}

/// The object's State (attribute reads need no approval).
fn state(c: &mut Client, id: &str) -> Option<u32> {
    get_attributes(c, id)
        .iter()
        .find(|a| a.tag == tag::STATE)
        .and_then(Ttlv::as_enum)
}

fn audit_events(server: &ServerProcess) -> Vec<J> {
    let text =
        std::fs::read_to_string(server.data_dir.path().join("audit.jsonl")).expect("the audit log");
    text.lines()
        .filter_map(|l| serde_json::from_str::<J>(l).ok())
        .filter_map(|r| r.get("approvals").and_then(J::as_array).cloned())
        .flatten()
        .collect()
}

#[test]
fn two_of_three_destroy_through_poll() {
    let server = start(&[]);
    let mut app = server.client("app");
    let key = create_aes(&mut app, 256, vec![group("payments")]);
    let free = create_aes(&mut app, 256, vec![]);
    // outside the group nothing waits
    destroy(&mut app, &free).expect("no quorum outside the group");

    let pending = send_async(&mut app, op::DESTROY, destroy_payload(&key));
    let acv = correlation(&pending);
    let id = String::from_utf8(acv.clone()).expect("a textual correlation value");
    assert_eq!(correlation(&poll(&mut app, &acv)), acv, "still pending");

    let listed = open_requests(&server);
    assert_eq!(listed.len(), 1, "{listed:?}");
    let r = &listed[0];
    assert_eq!(r["id"], id.as_str());
    assert_eq!(r["requester"], "app");
    assert_eq!(r["operation"], "Destroy");
    assert_eq!(r["object"], key.as_str());
    assert_eq!(r["group"], "payments");
    assert_eq!(r["needed"], 2);
    assert_eq!(r["state"], "pending");
    let (requested, expires) = (r["requested"].as_str(), r["expires"].as_str());
    assert!(requested.is_some_and(|t| t.ends_with("+00:00")), "{r}");
    // a day to wait for approvals, by default
    assert!(requested < expires, "{r}");
    let text = server.admin_command(&["approvals", "list", "--as", "c1"]);
    assert!(
        text.starts_with(&format!(
            "{id}\tpending\tDestroy\t{key}\tpayments\tapp\t0/2"
        )),
        "{text}"
    );

    assert!(approve(&server, "c1", &id).contains("pending (1 of 2"));
    // a second approval by the same custodian counts once
    assert!(approve(&server, "c1", &id).contains("pending (1 of 2"));
    assert_eq!(
        correlation(&poll(&mut app, &acv)),
        acv,
        "one custodian is not two"
    );
    assert_eq!(state(&mut app, &key), Some(1), "Pre-Active, untouched");
    assert!(approve(&server, "c2", &id).contains("approved (2 of 2 approvals: c1, c2)"));

    // another identity cannot collect the result
    let mut c3 = server.client("c3");
    let stolen = poll(&mut c3, &acv);
    assert_eq!(
        stolen.result_reason.map(|r| r.0),
        Some(rr::INVALID_ASYNCHRONOUS_CORRELATION_VALUE)
    );
    let done = poll(&mut app, &acv);
    assert_eq!(done.result_status.0 .0, result_status::SUCCESS, "{done:?}");
    assert_eq!(done.operation, Some(Enum(op::DESTROY)));
    let r = DestroyResponse::decode(done.response_payload.as_ref().expect("a payload"))
        .expect("Destroy's response");
    assert_eq!(r.unique_identifier.0, key);
    assert_eq!(state(&mut app, &key), Some(5), "destroyed");
    // a destroyed key has nothing left to guard: Get answers so, and makes no request
    let gone = get(&mut server.client("admin"), &key).unwrap_err();
    assert_eq!(gone.reason(), Some(rr::OBJECT_DESTROYED), "{gone}");
    let again = poll(&mut app, &acv);
    assert_eq!(
        again.result_reason.map(|r| r.0),
        Some(rr::INVALID_ASYNCHRONOUS_CORRELATION_VALUE),
        "it ran once"
    );
    let left = open_requests(&server);
    assert!(left.is_empty(), "{left:?}");

    // every step is in the audit log, with who did it
    let events: Vec<(String, String)> = audit_events(&server)
        .iter()
        .filter(|e| e["request"] == id.as_str())
        .map(|e| {
            (
                e["event"].as_str().unwrap_or("").to_owned(),
                e["by"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("requested", "app"),
        ("approved", "c1"),
        ("approved", "c2"),
        ("quorum reached", "c2"),
        ("executed", "app"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(events, expected);
    server.assert_audit_chain();
}

#[test]
fn cancel_withdraws_a_pending_request() {
    let server = start(&[]);
    let mut app = server.client("app");
    let key = create_aes(&mut app, 256, vec![group("payments")]);
    let acv = correlation(&send_async(&mut app, op::DESTROY, destroy_payload(&key)));
    let cancel = |c: &mut Client| {
        let payload = CancelRequest {
            asynchronous_correlation_value: kmip_codec::message::Req(kmip_codec::message::Bytes(
                acv.clone(),
            )),
        }
        .encode(tag::REQUEST_PAYLOAD);
        let r: CancelResponse = CancelResponse::decode(&c.call(op::CANCEL, payload).unwrap())
            .expect("Cancel's response");
        r.cancellation_result.0.as_enum()
    };
    // only the requester withdraws it
    assert_eq!(
        cancel(&mut server.client("c1")),
        Some(cancellation_result::UNAVAILABLE)
    );
    assert_eq!(cancel(&mut app), Some(cancellation_result::CANCELED));
    let polled = poll(&mut app, &acv);
    assert_eq!(
        polled.result_reason.map(|r| r.0),
        Some(rr::OPERATION_CANCELED_BY_REQUESTER)
    );
    let id = String::from_utf8(acv).unwrap();
    let late = server.admin(&["approvals", "approve", &id, "--as", "c1"]);
    assert!(!late.status.success());
    assert!(
        output_text(&late).contains("canceled"),
        "{}",
        output_text(&late)
    );
    assert_eq!(state(&mut app, &key), Some(1));
}

#[test]
fn the_synchronous_path_names_the_request_and_succeeds_once() {
    let server = start(&[]);
    let mut app = server.client("app");
    let key = create_aes(&mut app, 256, vec![group("payments")]);
    let refused = get(&mut app, &key).expect_err("needs approvals");
    let id = named_request(&refused);
    assert!(refused.to_string().contains("needs 2"), "{refused}");
    // the same request again finds the same approval request, and makes no second one
    assert_eq!(named_request(&get(&mut app, &key).unwrap_err()), id);
    assert_eq!(open_requests(&server).len(), 1);
    approve(&server, "c1", &id);
    approve(&server, "c3", &id);
    // another request (another format) is not the one approved
    let other = c_get_raw(&mut app, &key).expect_err("not the approved request");
    assert_ne!(named_request(&other), id);
    let got = get(&mut app, &key).expect("approved");
    assert!(got.symmetric_key.is_some());
    let again = get(&mut app, &key).expect_err("an approval is used once");
    let next = named_request(&again);
    assert_ne!(next, id);
    let events = audit_events(&server);
    assert!(events
        .iter()
        .any(|e| e["request"] == id.as_str() && e["event"] == "executed" && e["by"] == "app"));
}

/// Get in the Raw format: another request than a plain Get.
fn c_get_raw(c: &mut Client, id: &str) -> Result<GetResponse, ClientError> {
    c.op(
        op::GET,
        &GetRequest {
            unique_identifier: uid(id),
            key_format_type: Some(Enum(kmip_codec::vocab::enums::key_format_type::RAW)),
            ..Default::default()
        },
    )
}

#[test]
fn a_requester_never_approves_their_own_request_and_a_denial_is_final() {
    let server = start(&[]);
    // a custodian asking: the other custodians decide
    let mut c1 = server.client("c1");
    let key = create_aes(&mut c1, 256, vec![group("payments")]);
    let acv = correlation(&send_async(&mut c1, op::DESTROY, destroy_payload(&key)));
    let id = String::from_utf8(acv.clone()).unwrap();
    let own = server.admin(&["approvals", "approve", &id, "--as", "c1"]);
    assert!(!own.status.success());
    assert!(output_text(&own).contains("yours"), "{}", output_text(&own));
    // not an administrator: not a custodian
    let app = server.admin(&["approvals", "approve", &id, "--as", "app"]);
    assert!(!app.status.success());
    let listed = server.admin(&["approvals", "list", "--as", "app"]);
    assert!(
        !listed.status.success(),
        "only administrators list requests"
    );
    approve(&server, "c2", &id);
    assert_eq!(
        open_requests(&server)[0]["approvers"],
        serde_json::json!(["c2"])
    );
    assert!(server
        .admin_command(&["approvals", "deny", &id, "--as", "c3"])
        .contains("denied"));
    let polled = poll(&mut c1, &acv);
    assert_eq!(
        polled.result_reason.map(|r| r.0),
        Some(rr::PERMISSION_DENIED)
    );
    assert!(
        polled
            .result_message
            .as_deref()
            .is_some_and(|m| m.contains("denied by c3")),
        "{polled:?}"
    );
    let late = server.admin(&["approvals", "approve", &id, "--as", "admin"]);
    assert!(!late.status.success());
    assert_eq!(state(&mut c1, &key), Some(1));
    assert!(audit_events(&server)
        .iter()
        .any(|e| e["request"] == id.as_str() && e["event"] == "denied" && e["by"] == "c3"));
}

#[test]
fn requests_and_approvals_expire() {
    let server = start(&["--quorum-pending-secs", "1", "--quorum-approval-secs", "1"]);
    let mut app = server.client("app");
    let key = create_aes(&mut app, 256, vec![group("payments")]);
    let id = named_request(&get(&mut app, &key).unwrap_err());
    // the server expires it, and says so, with no one looking at it
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !audit_events(&server)
        .iter()
        .any(|e| e["request"] == id.as_str() && e["event"] == "expired" && e["by"] == "server")
    {
        assert!(std::time::Instant::now() < deadline, "no expiry audited");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let late = server.admin(&["approvals", "approve", &id, "--as", "c1"]);
    assert!(!late.status.success());
    assert!(
        output_text(&late).contains("expired"),
        "{}",
        output_text(&late)
    );
    assert!(open_requests(&server).is_empty());

    // approved, but not used in time
    let id = named_request(&get(&mut app, &key).unwrap_err());
    approve(&server, "c1", &id);
    approve(&server, "c2", &id);
    std::thread::sleep(std::time::Duration::from_millis(2200));
    let fresh = named_request(&get(&mut app, &key).unwrap_err());
    assert_ne!(fresh, id, "the expired approval is not used");
    let expired: Vec<J> = audit_events(&server)
        .into_iter()
        .filter(|e| e["event"] == "expired")
        .collect();
    assert!(
        expired
            .iter()
            .any(|e| e["request"] == id.as_str() && e["by"] == "server"),
        "{expired:?}"
    );
    server.assert_audit_chain();
}

#[test]
fn approvals_survive_a_restart() {
    let args = ["--admin", ADMINS, "--quorum", "payments=2:Destroy Get"];
    let server = start(&[]);
    let mut app = server.client("app");
    let key = create_aes(&mut app, 256, vec![group("payments")]);
    let acv = correlation(&send_async(&mut app, op::DESTROY, destroy_payload(&key)));
    let id = String::from_utf8(acv.clone()).unwrap();
    approve(&server, "c1", &id);
    drop(app);
    let dir = server.stop();
    let server =
        ServerProcess::try_start_in(dir, &args).unwrap_or_else(|(_, log)| panic!("restart: {log}"));
    let listed = open_requests(&server);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["approvers"], serde_json::json!(["c1"]));
    approve(&server, "c2", &id);
    let mut app = server.client("app");
    let done = poll(&mut app, &acv);
    assert_eq!(done.result_status.0 .0, result_status::SUCCESS, "{done:?}");
    assert_eq!(state(&mut app, &key), Some(5), "destroyed");
}

/// Approval requests and the approvals given are store values, which backups carry: in a
/// directory restored from a backup, the approval given before the backup still counts.
#[test]
fn approvals_survive_a_backup_and_restore() {
    let args = ["--admin", ADMINS, "--quorum", "payments=2:Destroy Get"];
    let server = start(&[]);
    let mut app = server.client("app");
    let key = create_aes(&mut app, 256, vec![group("payments")]);
    let id = named_request(&get(&mut app, &key).unwrap_err());
    approve(&server, "c1", &id);
    let work = tempfile::tempdir().unwrap();
    let backup = work.path().join("quorum.kmipbak");
    server.admin_command(&["backup", "--out", backup.to_str().unwrap()]);
    drop(app);
    let old = server.stop();
    // the operator brings the master key and the TLS material; the backup carries the rest
    let restored = tempfile::tempdir().unwrap();
    let r =
        interop_tests::kmip_server_command(restored.path(), &["restore", backup.to_str().unwrap()]);
    assert!(r.status.success(), "{}", output_text(&r));
    std::fs::copy(
        old.path().join("master.key"),
        restored.path().join("master.key"),
    )
    .unwrap();
    let tls = restored.path().join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    for f in std::fs::read_dir(old.path().join("tls")).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), tls.join(f.file_name())).unwrap();
    }
    let server = ServerProcess::try_start_in(restored, &args)
        .unwrap_or_else(|(_, log)| panic!("restored: {log}"));
    let listed = open_requests(&server);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["approvers"], serde_json::json!(["c1"]));
    approve(&server, "c2", &id);
    let mut app = server.client("app");
    assert!(get(&mut app, &key)
        .expect("approved")
        .symmetric_key
        .is_some());
}

/// The same request sent by several connections of one client at the same moment opens one
/// approval request, which every one of them is told to wait for.
#[test]
fn identical_requests_at_once_open_one_approval_request() {
    let server = start(&[]);
    let key = create_aes(&mut server.client("app"), 256, vec![group("payments")]);
    let clients: Vec<Client> = (0..8).map(|_| server.client("app")).collect();
    let start = std::sync::Barrier::new(clients.len());
    let named: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = clients
            .into_iter()
            .map(|mut app| {
                let (start, key) = (&start, &key);
                s.spawn(move || {
                    start.wait();
                    named_request(&get(&mut app, key).expect_err("needs approvals"))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(open_requests(&server).len(), 1, "{named:?}");
    assert!(named.iter().all(|n| *n == named[0]), "{named:?}");
}

#[test]
fn an_object_leaves_its_group_only_with_the_quorum() {
    let server = start(&[]);
    let mut app = server.client("app");
    let key = create_aes(&mut app, 256, vec![group("payments")]);
    let move_out = |c: &mut Client| -> Result<ModifyAttributeResponse, ClientError> {
        c.op(
            op::MODIFY_ATTRIBUTE,
            &ModifyAttributeRequest {
                unique_identifier: uid(&key),
                current_attribute: Some(Ttlv::structure(
                    tag::CURRENT_ATTRIBUTE,
                    vec![group("payments")],
                )),
                new_attribute: Some(Ttlv::structure(
                    tag::NEW_ATTRIBUTE,
                    vec![group("elsewhere")],
                )),
                ..Default::default()
            },
        )
    };
    let id = named_request(&move_out(&mut app).unwrap_err());
    // nor may it become extractable in the open without the quorum
    let unprotect = app.op::<_, SetAttributeResponse>(
        op::SET_ATTRIBUTE,
        &SetAttributeRequest {
            unique_identifier: uid(&key),
            new_attribute: kmip_codec::message::Req(Ttlv::structure(
                tag::NEW_ATTRIBUTE,
                vec![item(tag::SENSITIVE, Value::Boolean(false))],
            )),
        },
    );
    named_request(&unprotect.unwrap_err());
    // other attributes change freely
    app.op::<_, SetAttributeResponse>(
        op::SET_ATTRIBUTE,
        &SetAttributeRequest {
            unique_identifier: uid(&key),
            new_attribute: kmip_codec::message::Req(Ttlv::structure(
                tag::NEW_ATTRIBUTE,
                vec![item(
                    tag::CONTACT_INFORMATION,
                    Value::TextString("ops@example.com".into()),
                )],
            )),
        },
    )
    .expect("not a custody attribute");
    let listed = open_requests(&server);
    assert!(listed
        .iter()
        .any(|r| r["id"] == id.as_str() && r["operation"] == "ModifyAttribute"));
    approve(&server, "c1", &id);
    approve(&server, "c2", &id);
    move_out(&mut app).expect("approved");
    // out of the group, the quorum no longer applies
    get(&mut app, &key).expect("no longer in payments");
    destroy(&mut app, &key).expect("no longer in payments");
}

#[test]
fn a_wrapped_get_waits_for_the_quorum_too() {
    let server = start(&[]);
    let mut app = server.client("app");
    let key = create_aes(&mut app, 256, vec![group("payments")]);
    let kek = create_aes(&mut app, 256, vec![mask(0x10 | 0x20)]);
    activate(&mut app, &kek);
    let wrapped = GetRequest {
        unique_identifier: uid(&key),
        key_wrapping_specification: Some(wrapping_spec(&kek, vec![])),
        ..Default::default()
    }
    .encode(tag::REQUEST_PAYLOAD);
    let acv = correlation(&send_async(&mut app, op::GET, wrapped));
    let id = String::from_utf8(acv.clone()).unwrap();
    assert_eq!(open_requests(&server)[0]["operation"], "Get");
    approve(&server, "c2", &id);
    approve(&server, "c3", &id);
    let done = poll(&mut app, &acv);
    assert_eq!(done.result_status.0 .0, result_status::SUCCESS, "{done:?}");
    assert_eq!(done.operation, Some(Enum(op::GET)));
    let g = GetResponse::decode(done.response_payload.as_ref().expect("a payload"))
        .expect("Get's response");
    let block = g
        .symmetric_key
        .as_ref()
        .and_then(|k| k.child(tag::KEY_BLOCK))
        .expect("a key block");
    assert!(
        block.child(tag::KEY_WRAPPING_DATA).is_some(),
        "the key left wrapped"
    );
    // the approval was for the wrapped Get: the plain key still waits
    named_request(&get(&mut app, &key).unwrap_err());
}

#[test]
fn one_approval_lets_one_of_two_racing_requests_through() {
    let server = start(&[]);
    let mut app = server.client("app");
    let key = create_aes(&mut app, 256, vec![group("payments")]);
    let id = named_request(&get(&mut app, &key).unwrap_err());
    approve(&server, "c1", &id);
    approve(&server, "c2", &id);
    let server = &server;
    let key = &key;
    let results: Vec<Result<GetResponse, ClientError>> = std::thread::scope(|s| {
        let racers: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(move || {
                    let mut c = server.client("app");
                    get(&mut c, key)
                })
            })
            .collect();
        racers
            .into_iter()
            .map(|r| r.join().expect("a racer"))
            .collect()
    });
    let through = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(through, 1, "{results:?}");
    for refused in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_ne!(
            named_request(refused),
            id,
            "the used approval is named no more"
        );
    }
}

#[test]
fn a_1_x_client_sets_the_boolean_indicator_and_polls() {
    let server = start(&[]);
    let mut app = server.client("app").version(1, 4);
    let key = create_aes(&mut app, 128, vec![]);
    // 1.x names the group through a Template-Attribute: set it after, as the owner
    let _: AddAttributeResponse = app
        .op(
            op::ADD_ATTRIBUTE,
            &AddAttributeRequest {
                unique_identifier: uid(&key),
                attribute: Some(Ttlv::structure(
                    tag::ATTRIBUTE,
                    vec![
                        item(
                            tag::ATTRIBUTE_NAME,
                            Value::TextString("Object Group".into()),
                        ),
                        item(tag::ATTRIBUTE_VALUE, Value::TextString("payments".into())),
                    ],
                )),
                ..Default::default()
            },
        )
        .expect("into the group: no quorum to join one");
    let mut req = app.batch_request(vec![(op::DESTROY, destroy_payload(&key))]);
    req.header.0.asynchronous_indicator =
        Some(Ttlv::new(tag::ASYNCHRONOUS_INDICATOR, Value::Boolean(true)));
    let item = app.send(&req).expect("an answer").batch_item.remove(0);
    let acv = correlation(&item);
    let id = String::from_utf8(acv.clone()).unwrap();
    approve(&server, "c1", &id);
    approve(&server, "admin", &id);
    let done = poll(&mut app, &acv);
    assert_eq!(done.result_status.0 .0, result_status::SUCCESS, "{done:?}");
    assert_eq!(state(&mut server.client("app"), &key), Some(5));
}

#[test]
fn every_node_of_a_shared_store_sees_the_requests() {
    let pg = interop_tests::pg::Postgres::start(&[]);
    let url = pg.new_database("kmip");
    let a = start(&["--store", &url, "--node-name", "node-a"]);
    // node b: the same master key and TLS material (client certificates included)
    let dir = tempfile::tempdir().expect("temporary directory");
    for f in ["master.key", "master.check"] {
        let src = a.data_dir.path().join(f);
        if src.exists() {
            std::fs::copy(&src, dir.path().join(f)).expect("copy the master key");
        }
    }
    let tls = dir.path().join("tls");
    std::fs::create_dir_all(&tls).expect("mkdir");
    for e in std::fs::read_dir(a.tls_dir()).expect("tls dir") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), tls.join(e.file_name())).expect("copy");
    }
    let b = ServerProcess::try_start_in(
        dir,
        &[
            "--admin",
            ADMINS,
            "--quorum",
            "payments=2:Destroy Get",
            "--store",
            &url,
            "--node-name",
            "node-b",
        ],
    )
    .unwrap_or_else(|(_, log)| panic!("node b: {log}"));

    let mut on_a = a.client("app");
    let key = create_aes(&mut on_a, 256, vec![group("payments")]);
    let acv = correlation(&send_async(&mut on_a, op::DESTROY, destroy_payload(&key)));
    let id = String::from_utf8(acv.clone()).unwrap();
    assert_eq!(open_requests(&b)[0]["id"], id.as_str());
    approve(&a, "c1", &id);
    assert!(
        approve(&b, "c1", &id).contains("1 of 2"),
        "counted once on any node"
    );
    approve(&b, "c2", &id);
    let done = poll(&mut b.client("app"), &acv);
    assert_eq!(done.result_status.0 .0, result_status::SUCCESS, "{done:?}");
    let again = poll(&mut on_a, &acv);
    assert_eq!(
        again.result_reason.map(|r| r.0),
        Some(rr::INVALID_ASYNCHRONOUS_CORRELATION_VALUE),
        "it ran once, whichever node asks"
    );
}

#[test]
fn the_quorum_from_the_configuration_file_and_one_no_one_could_reach() {
    let conf = tempfile::NamedTempFile::new().expect("a file");
    std::fs::write(
        conf.path(),
        "admin = [\"admin\", \"c1\", \"c2\", \"c3\"]\n\
         quorum = [\"payments=3:Get\", \"root=1:Destroy\"]\n\
         quorum-approval-secs = 600\n",
    )
    .expect("write the configuration");
    let config = conf.path().to_str().expect("a UTF-8 path");
    let server = ServerProcess::start(&["--config", config]);
    server.issue_client_cert("app");
    let mut app = server.client("app");
    let key = create_aes(&mut app, 256, vec![group("payments")]);
    let refused = get(&mut app, &key).unwrap_err();
    named_request(&refused);
    assert!(refused.to_string().contains("needs 3"), "{refused}");
    assert!(refused.to_string().contains("within 600 s"), "{refused}");
    let root = create_aes(&mut app, 256, vec![group("root")]);
    get(&mut app, &root).expect("Get is not guarded in root");

    // three approvals where two administrators could give them: refused at start, and said
    let unreachable = ServerProcess::try_start_in(
        tempfile::tempdir().expect("a directory"),
        &["--admin", "admin,c1", "--quorum", "payments=3:Get"],
    );
    let (_, log) = unreachable.err().expect("the server refuses to start");
    assert!(log.contains("only 2 administrators"), "{log}");
}
