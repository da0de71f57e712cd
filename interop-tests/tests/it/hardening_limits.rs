//! Small requests must not buy large work: an IV Length makes no large IV, PBKDF2 runs at
//! most the server's maximum of iterations, and one identity's multi-part streams can take
//! neither every slot nor unbounded memory. Over mutual TLS against a real server.

use interop_tests::kmip::*;
use interop_tests::ServerProcess;
use kmip_client::{Client, ClientError};
use kmip_codec::message::{Bytes, Enum, FieldValue, Req};
use kmip_codec::ops::*;
use kmip_codec::vocab::enums::{
    block_cipher_mode as bcm, cryptographic_algorithm as alg, derivation_method as dm,
    hashing_algorithm as ha, object_type as ot, operation as op, result_reason as rr,
};
use kmip_codec::vocab::tag;
use kmip_codec::{Ttlv, Value};
use std::time::Duration;

fn active() -> Ttlv {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    item(tag::ACTIVATION_DATE, Value::DateTime(now - 3600))
}

fn params(mode: u32, iv_length: i32) -> Option<Ttlv> {
    Some(Ttlv::structure(
        tag::CRYPTOGRAPHIC_PARAMETERS,
        vec![
            item(tag::BLOCK_CIPHER_MODE, Value::Enumeration(mode)),
            item(tag::IV_LENGTH, Value::Integer(iv_length)),
        ],
    ))
}

/// Run `f` on its own thread and give up after `limit`: the old server would have worked on
/// some of these requests for hours.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("no answer within {limit:?}"))
}

/// IV Length 2^31-8 made the server build and return a 268 MB IV; -8 panicked (the
/// connection was lost). Only the mode's IV sizes are taken.
#[test]
fn an_iv_length_is_bounded() {
    let server = ServerProcess::start(&[]);
    let mut c = server.client("admin");
    let key = create_aes(&mut c, 256, vec![active()]);
    let encrypt = |c: &mut Client, mode, iv_length| {
        c.op::<_, EncryptResponse>(
            op::ENCRYPT,
            &EncryptRequest {
                unique_identifier: uid(&key),
                cryptographic_parameters: params(mode, iv_length),
                data: Some(Bytes(vec![1; 16])),
                ..Default::default()
            },
        )
    };
    for (mode, iv_length) in [
        (bcm::CBC, i32::MAX - 7),
        (bcm::CBC, -8),
        (bcm::CBC, 64),
        (bcm::CTR, 8),
        (bcm::GCM, i32::MAX - 7),
        (bcm::GCM, -8),
        (bcm::GCM, 0),
        (bcm::GCM, 1032),
    ] {
        let r = encrypt(&mut c, mode, iv_length);
        assert_eq!(
            r.as_ref().err().and_then(ClientError::reason),
            Some(rr::BAD_CRYPTOGRAPHIC_PARAMETERS),
            "mode {mode} IV Length {iv_length}: {r:?}"
        );
    }
    // the mode's own sizes still make an IV of that length
    for (mode, iv_length, bytes) in [
        (bcm::GCM, 96, 12),
        (bcm::GCM, 1024, 128),
        (bcm::CBC, 128, 16),
    ] {
        let e = encrypt(&mut c, mode, iv_length).unwrap();
        assert_eq!(e.iv_counter_nonce.unwrap().0.len(), bytes);
    }
}

/// A PBKDF2 (SHA-256) Derive Key request from `base`.
fn pbkdf2(base: &str, iterations: i32, bits: i32) -> DeriveKeyRequest {
    DeriveKeyRequest {
        object_type: Req(Enum(ot::SYMMETRIC_KEY)),
        unique_identifier: vec![base.to_owned()],
        derivation_method: Req(item(tag::DERIVATION_METHOD, Value::Enumeration(dm::PBKDF2))),
        derivation_parameters: Req(Ttlv::structure(
            tag::DERIVATION_PARAMETERS,
            vec![
                Ttlv::structure(
                    tag::CRYPTOGRAPHIC_PARAMETERS,
                    vec![item(
                        tag::HASHING_ALGORITHM,
                        Value::Enumeration(ha::SHA_256),
                    )],
                ),
                item(tag::SALT, Value::ByteString(b"salt".to_vec())),
                item(tag::ITERATION_COUNT, Value::Integer(iterations)),
            ],
        )),
        attributes: attributes(vec![
            item(tag::CRYPTOGRAPHIC_ALGORITHM, Value::Enumeration(alg::AES)),
            item(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(bits)),
        ]),
        ..Default::default()
    }
}

fn derive(c: &mut Client, base: &str, iterations: i32, bits: i32) -> Result<String, ClientError> {
    let r: DeriveKeyResponse = c.op(op::DERIVE_KEY, &pbkdf2(base, iterations, bits))?;
    Ok(r.unique_identifier.0)
}

/// Derive Key took any Iteration Count (2^31-1 is eight hours of a core); now at most
/// --max-pbkdf2-iterations per hash-sized block of output, Invalid Field above.
#[test]
fn pbkdf2_iterations_have_a_configurable_maximum() {
    let server = ServerProcess::start(&["--max-pbkdf2-iterations", "20000"]);
    let mut c = server.client("admin");
    let base = create_aes(&mut c, 256, vec![active()]);
    assert!(derive(&mut c, &base, 20_000, 256).is_ok());
    assert!(derive(&mut c, &base, 10_000, 512).is_ok(), "two blocks");
    for (iterations, bits) in [(20_001, 256), (10_001, 512), (i32::MAX, 256)] {
        assert_eq!(
            derive(&mut c, &base, iterations, bits)
                .unwrap_err()
                .reason(),
            Some(rr::INVALID_FIELD),
            "{iterations} iterations for {bits} bits"
        );
    }
    // the default maximum: 2^31-1 iterations are refused at once
    let server = ServerProcess::start(&[]);
    let mut c = server.client("admin");
    let base = create_aes(&mut c, 256, vec![active()]);
    let r = within(Duration::from_secs(30), move || {
        derive(&mut c, &base, i32::MAX, 256).map_err(|e| e.reason())
    });
    assert_eq!(r.unwrap_err(), Some(rr::INVALID_FIELD));
    drop(server);
}

fn mac_part(
    c: &mut Client,
    key: Option<&str>,
    correlation: Option<&[u8]>,
    data: Vec<u8>,
) -> Result<MACResponse, ClientError> {
    c.op(
        op::MAC,
        &MACRequest {
            unique_identifier: key.map(str::to_owned),
            data: Some(Bytes(data)),
            correlation_value: correlation.map(|c| Bytes(c.to_vec())),
            init_indicator: key.map(|_| true),
            ..Default::default()
        },
    )
}

/// One identity could take all 1,024 stream slots, and every other identity was refused
/// for ten minutes; now each identity has a quota of open streams.
#[test]
fn one_identity_cannot_take_every_stream() {
    let server = ServerProcess::start(&[]);
    server.issue_client_cert("bob");
    let mut admin = server.client("admin");
    let key = create_aes(&mut admin, 256, vec![active()]);
    let mut opened = 0;
    let refusal = loop {
        match mac_part(&mut admin, Some(&key), None, vec![1; 16]) {
            Ok(_) => opened += 1,
            Err(e) => break e,
        }
        assert!(opened < 200, "one identity opened {opened} streams");
    };
    assert_eq!(
        refusal.reason(),
        Some(rr::SERVER_LIMIT_EXCEEDED),
        "{refusal}"
    );
    let mut bob = server.client("bob");
    let bobs = create_aes(&mut bob, 256, vec![active()]);
    let r = mac_part(&mut bob, Some(&bobs), None, vec![1; 16]).unwrap();
    assert!(
        r.correlation_value.is_some(),
        "another identity still opens a stream"
    );
}

/// The gathered data of Sign and MAC streams could reach 1,024 x 16 MiB; one identity now
/// holds at most 32 MiB, and others keep gathering.
#[test]
fn gathered_data_is_bounded_per_identity() {
    let server = ServerProcess::start(&["--max-message-bytes", "9000000"]);
    server.issue_client_cert("bob");
    let mut admin = server.client("admin");
    let key = create_aes(&mut admin, 256, vec![active()]);
    let part = 8 * 1024 * 1024;
    for _ in 0..2 {
        let first = mac_part(&mut admin, Some(&key), None, vec![2; part]).unwrap();
        let corr = first.correlation_value.unwrap().0;
        mac_part(&mut admin, None, Some(&corr), vec![3; part]).unwrap();
    }
    let refused = mac_part(&mut admin, Some(&key), None, vec![4; 1024 * 1024]).unwrap_err();
    assert_eq!(
        refused.reason(),
        Some(rr::SERVER_LIMIT_EXCEEDED),
        "{refused}"
    );
    let mut bob = server.client("bob");
    let bobs = create_aes(&mut bob, 256, vec![active()]);
    assert!(mac_part(&mut bob, Some(&bobs), None, vec![5; 1024 * 1024]).is_ok());
}

/// SIGTERM stops the server within a deadline whatever runs: a derivation of hours on the
/// blocking pool held the exit for as long as it ran.
#[test]
fn sigterm_stops_the_server_within_a_deadline() {
    let mut server = ServerProcess::start(&[
        "--max-pbkdf2-iterations",
        "2147483647",
        "--read-timeout-secs",
        "2",
    ]);
    let mut c = server.client("admin");
    let base = create_aes(&mut c, 256, vec![active()]);
    let worker = std::thread::spawn(move || {
        // hours of a core; the answer never comes
        let _ = derive(&mut c, &base, i32::MAX, 256);
    });
    std::thread::sleep(Duration::from_millis(500));
    let t = std::time::Instant::now();
    let status = server.terminate(Duration::from_secs(30));
    assert!(status.is_some(), "still running 30 s after SIGTERM");
    println!("stopped {:?} after SIGTERM", t.elapsed());
    let _ = worker.join();
}

/// The server's memory, keys among it, is locked out of swap where the platform allows it
/// (root here, as in CI); `--lock-memory false` leaves it unlocked.
#[test]
fn key_memory_stays_out_of_swap() {
    let locked_kib = |pid: u32| -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmLck:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap()
    };
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    if !root {
        println!("SKIPPED: memory is locked only where RLIMIT_MEMLOCK has no bound (root)");
        return;
    }
    let server = ServerProcess::start(&[]);
    let mut c = server.client("admin");
    create_aes(&mut c, 256, vec![active()]);
    assert!(locked_kib(server.pid()) > 0, "memory locked");
    let server = ServerProcess::start(&["--lock-memory", "false"]);
    let mut c = server.client("admin");
    create_aes(&mut c, 256, vec![active()]);
    assert_eq!(locked_kib(server.pid()), 0);
}

/// CPU seconds the process has used so far (user and system).
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

/// A client that sends costly work and leaves takes the work with it: a batch of 120
/// derivations of 1,000,000 PBKDF2 iterations each (a minute of a core) stops at the item
/// running when the client hangs up. The previous server ran the whole batch for nobody.
#[test]
fn a_client_that_leaves_takes_its_work_with_it() {
    let server = ServerProcess::start(&[]);
    let mut c = server.client("admin");
    let base = create_aes(&mut c, 256, vec![active()]);
    // short items (0.5 s each on an idle core), so that the one running when the client leaves
    // ends well inside the wait below even on a loaded machine
    let one = pbkdf2(&base, 1_000_000, 256).encode(tag::REQUEST_PAYLOAD);
    let batch = c.batch_request((0..120).map(|_| (op::DERIVE_KEY, one.clone())).collect());
    let mut stream = server.tls_stream("admin").unwrap();
    std::io::Write::write_all(&mut stream, &kmip_codec::encode(&batch.to_ttlv())).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let busy_before = cpu_secs(server.pid());
    drop(stream);
    // the item running when the client left ends (0.5 s of a core), then nothing runs
    std::thread::sleep(Duration::from_secs(4));
    let settled = cpu_secs(server.pid());
    std::thread::sleep(Duration::from_secs(3));
    let idle = cpu_secs(server.pid()) - settled;
    println!(
        "CPU: {:.2} s before the client left, {:.2} s in the 3 s after its work stopped",
        busy_before, idle
    );
    assert!(
        idle < 0.6,
        "the server still works for a client that left: {idle:.2} s of CPU in 3 s"
    );
    assert!(server.log().contains("client left before its answer"));
    // what ran is recorded; what did not run says so
    let audit = std::fs::read_to_string(server.data_dir.path().join("audit.jsonl")).unwrap();
    assert!(audit.contains("OperationCanceledByRequester"), "{audit}");
    // the server serves the next client at once
    let mut again = server.client("admin");
    within(Duration::from_secs(5), move || {
        create_aes(&mut again, 128, vec![])
    });
}

/// A Locate stops at --max-locate-secs with Server Limit Exceeded (General Failure in 1.x);
/// an index-narrowed Locate with Maximum Items ends sooner and is not affected.
#[test]
fn a_locate_stops_at_its_time_budget() {
    let server = ServerProcess::start(&["--max-locate-secs", "0"]);
    let mut c = server.client("admin");
    create_aes(&mut c, 128, vec![]);
    let locate = |c: &mut Client| {
        c.op::<_, LocateResponse>(
            op::LOCATE,
            &LocateRequest {
                attributes: attributes(vec![item(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(128))]),
                ..Default::default()
            },
        )
    };
    let e = locate(&mut c).unwrap_err();
    assert_eq!(e.reason(), Some(rr::SERVER_LIMIT_EXCEEDED), "{e}");
    let mut old = server.client("admin").version(1, 4);
    let e = old
        .op::<_, LocateResponse>(op::LOCATE, &LocateRequest::default())
        .unwrap_err();
    assert_eq!(e.reason(), Some(rr::GENERAL_FAILURE), "{e}");
    let server = ServerProcess::start(&[]);
    let mut c = server.client("admin");
    create_aes(&mut c, 128, vec![]);
    assert_eq!(locate(&mut c).unwrap().unique_identifier.len(), 1);
}

/// A batch of reads (a thousand RSA Signs are seconds of a core) runs off the async workers:
/// another client's requests go on being answered meanwhile, and a client that leaves takes
/// the batch with it. The previous server ran such batches on the async worker itself, where
/// two of them stalled every connection (a Query took 19.6 s) and hangups were not noticed.
#[test]
fn a_batch_of_reads_leaves_the_async_workers() {
    let server = ServerProcess::start(&[]);
    let mut c = server.client("admin");
    let (sk, _) = create_rsa_pair(&mut c, 4096, vec![active()], Some((1, 2)));
    let sign = SignRequest {
        unique_identifier: uid(&sk),
        cryptographic_parameters: Some(Ttlv::structure(
            tag::CRYPTOGRAPHIC_PARAMETERS,
            vec![
                item(
                    tag::PADDING_METHOD,
                    Value::Enumeration(kmip_codec::vocab::enums::padding_method::PKCS1_V1_5),
                ),
                item(tag::HASHING_ALGORITHM, Value::Enumeration(ha::SHA_256)),
            ],
        )),
        data: Some(Bytes(vec![7; 32])),
        ..Default::default()
    }
    .encode(tag::REQUEST_PAYLOAD);
    let batch = c.batch_request((0..1000).map(|_| (op::SIGN, sign.clone())).collect());
    let bytes = kmip_codec::encode(&batch.to_ttlv());
    // two such batches, one per async worker of this 2-core machine, from clients that leave
    let leavers: Vec<_> = (0..2)
        .map(|_| {
            let mut s = server.tls_stream("admin").unwrap();
            std::io::Write::write_all(&mut s, &bytes).unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // another client connects and is answered at once meanwhile (the old server: 19.6 s for
    // a Query)
    let t = std::time::Instant::now();
    let mut other = server.client("admin");
    for _ in 0..5 {
        get_attributes(&mut other, &sk);
    }
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "another client waited {:?}",
        t.elapsed()
    );
    drop(leavers);
    // the Signs running when they left end (a few ms each), then nothing runs
    std::thread::sleep(Duration::from_secs(1));
    let settled = cpu_secs(server.pid());
    std::thread::sleep(Duration::from_secs(2));
    let idle = cpu_secs(server.pid()) - settled;
    assert!(
        idle < 0.4,
        "the server still signs for clients that left: {idle:.2} s of CPU in 2 s"
    );
}

/// One message cannot build a huge answer: a thousand RNG Retrieves of a MiB each built a GiB
/// (and 4 GB resident) from a 48 KB request. Once the answer is past --max-response-bytes
/// the items left answer Response Too Large, unrun.
#[test]
fn a_message_builds_a_bounded_answer() {
    let server = ServerProcess::start(&["--max-response-bytes", "100000"]);
    let mut c = server.client("admin");
    let rng = RNGRetrieveRequest {
        data_length: Req(60_000),
    }
    .encode(tag::REQUEST_PAYLOAD);
    let mut batch = c.batch_request((0..5).map(|_| (op::RNG_RETRIEVE, rng.clone())).collect());
    batch.header.0.batch_error_continuation_option = Some(Enum(
        kmip_codec::vocab::enums::batch_error_continuation_option::CONTINUE,
    ));
    let r = c.send(&batch).unwrap();
    let reasons: Vec<Option<u32>> = r
        .batch_item
        .iter()
        .map(|b| b.result_reason.map(|e| e.0))
        .collect();
    assert_eq!(
        reasons,
        vec![
            None,
            None,
            Some(rr::RESPONSE_TOO_LARGE),
            Some(rr::RESPONSE_TOO_LARGE),
            Some(rr::RESPONSE_TOO_LARGE)
        ]
    );
    // a message within the bound is whole
    let mut small = c.batch_request((0..2).map(|_| (op::RNG_RETRIEVE, rng.clone())).collect());
    small.header.0.batch_error_continuation_option = batch.header.0.batch_error_continuation_option;
    assert!(c
        .send(&small)
        .unwrap()
        .batch_item
        .iter()
        .all(|b| b.result_reason.is_none()));
}

/// --max-locate-secs bounds the Locates of a whole message, not each: a message of a hundred
/// Locates got ten seconds each. Here a derivation takes the message past a one-second
/// budget, and its Locate then answers Server Limit Exceeded; alone, the Locate succeeds.
#[test]
fn the_locate_budget_is_the_messages() {
    let server = ServerProcess::start(&["--max-locate-secs", "1"]);
    let mut c = server.client("admin");
    let base = create_aes(&mut c, 256, vec![active()]);
    let locate = LocateRequest::default().encode(tag::REQUEST_PAYLOAD);
    let mut batch = c.batch_request(vec![
        (
            op::DERIVE_KEY,
            pbkdf2(&base, 5_000_000, 256).encode(tag::REQUEST_PAYLOAD),
        ),
        (op::LOCATE, locate.clone()),
    ]);
    batch.header.0.batch_error_continuation_option = Some(Enum(
        kmip_codec::vocab::enums::batch_error_continuation_option::CONTINUE,
    ));
    let r = c.send(&batch).unwrap();
    assert_eq!(
        r.batch_item[0].result_reason, None,
        "the derivation succeeds"
    );
    assert_eq!(
        r.batch_item[1].result_reason.map(|e| e.0),
        Some(rr::SERVER_LIMIT_EXCEEDED)
    );
    let alone: LocateResponse = c.op(op::LOCATE, &LocateRequest::default()).unwrap();
    assert!(!alone.unique_identifier.is_empty());
}
