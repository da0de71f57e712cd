//! Wrong passwords cost the server little and lock no one else out: after a few failures in a
//! row, a certificate (and a user) waits out a backoff and its attempts are refused without an
//! scrypt; scrypts run off the async workers, a few at a time.

use interop_tests::kmip::{create_aes, item, uid};
use interop_tests::ServerProcess;
use kmip_client::Client;
use kmip_codec::message::{Authentication, Credential, Enum, Req};
use kmip_codec::ops::*;
use kmip_codec::vocab::enums::{
    credential_type, operation as op, result_reason as rr, result_status,
};
use kmip_codec::vocab::tag;
use kmip_codec::{Ttlv, Value};
use std::time::{Duration, Instant};

/// A Query as `user`/`pw`: Ok, or the Result Reason and message.
fn query(c: &mut Client, user: &str, pw: &str) -> Result<(), (u32, String)> {
    let mut req = kmip_client::request_message(
        (2, 1),
        vec![(op::QUERY, Ttlv::structure(tag::REQUEST_PAYLOAD, vec![]))],
    );
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
    let resp = c.send(&req).unwrap();
    let b = &resp.batch_item[0];
    if b.result_status.0 .0 == result_status::SUCCESS {
        Ok(())
    } else {
        Err((
            b.result_reason.map(|r| r.0).unwrap_or(0),
            b.result_message.clone().unwrap_or_default(),
        ))
    }
}

#[test]
fn wrong_passwords_are_throttled_and_lock_no_one_else_out() {
    let hash = ServerProcess::hash_password("correct horse");
    let server = ServerProcess::start(&["--password", &format!("alice={hash}")]);
    server.issue_client_cert("alice");
    let mut stolen = server.client("alice");
    for _ in 0..3 {
        let e = query(&mut stolen, "alice", "guess").unwrap_err();
        assert_eq!(e.0, rr::AUTHENTICATION_NOT_SUCCESSFUL);
    }
    // the fourth attempt is refused before its password is even checked
    let e = query(&mut stolen, "alice", "correct horse").unwrap_err();
    assert!(e.1.contains("too many failed attempts"), "{e:?}");
    std::thread::sleep(Duration::from_millis(1200));
    query(&mut stolen, "alice", "correct horse").expect("after the backoff");

    // eight connections pour wrong passwords in while another client works
    let mut admin = server.client("admin");
    let key = create_aes(&mut admin, 128, vec![]);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let mut latencies = Vec::new();
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                let mut c = server.client("alice");
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 2000 {
                    let _ = query(&mut c, "alice", "guess");
                    n += 1;
                }
            });
        }
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            let t = Instant::now();
            let _: GetResponse = admin
                .op(
                    op::GET,
                    &GetRequest {
                        unique_identifier: uid(&key),
                        ..Default::default()
                    },
                )
                .unwrap();
            latencies.push(t.elapsed());
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    latencies.sort();
    let p90 = latencies[latencies.len() * 9 / 10];
    println!(
        "{} Gets during the flood: p50 {:?}, p90 {:?}",
        latencies.len(),
        latencies[latencies.len() / 2],
        p90
    );
    // unthrottled, eight connections of wrong passwords pushed this p90 to 1.6 s
    assert!(p90 < Duration::from_millis(500), "p90 {p90:?}");
}
