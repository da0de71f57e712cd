//! Stateless server nodes over one PostgreSQL database (`--store postgres://...`), each test
//! with a PostgreSQL cluster of its own: the store suite on PostgreSQL; two nodes seeing each
//! other's writes at once, concurrent writers, a revoke on one node stopping use on the other,
//! names unique across nodes; a node with another master key refused; the database gone and
//! back; a node killed; a primary killed and its synchronous standby promoted.

use interop_tests::kmip::*;
use interop_tests::pg::Postgres;
use interop_tests::ServerProcess;
use kmip_client::Client;
use kmip_codec::message::{Bytes, Enum, Req};
use kmip_codec::ops::*;
use kmip_codec::vocab::enums::{
    block_cipher_mode as bcm, object_type as ot, operation as op, result_reason as rr,
};
use kmip_codec::vocab::tag;
use kmip_codec::{Ttlv, Value};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Reads gathered into one statement: one client's identifier that PostgreSQL's text cannot
/// hold (a NUL byte) is that client's Item Not Found, and every other client's concurrent
/// reads still succeed (the statement with it failed for all of them; attack round 6).
#[test]
fn a_bad_identifier_fails_only_its_own_request() {
    let pg = Postgres::start(&[]);
    let url = pg.new_database("kmip");
    let a = first_node(&url, &[]);
    let key = create_aes(&mut a.client("admin"), 128, vec![]);
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..6)
        .map(|_| {
            let (mut c, key, stop) = (a.client("admin"), key.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    get_object(&mut c, &key, None).expect("a good Get beside a bad one");
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut bad = a.client("admin");
    let started = Instant::now();
    let mut sent = 0;
    while started.elapsed() < Duration::from_secs(3) {
        match get_object(&mut bad, "x\0", None) {
            Err(kmip_client::ClientError::Failed { reason, message }) => {
                assert!(
                    [rr::ITEM_NOT_FOUND, rr::OBJECT_NOT_FOUND].contains(&reason),
                    "{reason:#x} {message}\n{}",
                    pg.log()
                )
            }
            other => panic!("a NUL identifier: {other:?}"),
        }
        sent += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let good: u32 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(sent > 10 && good > 100, "{sent} bad and {good} good Gets");
}

/// A first node over the database at `url`: it makes the master key and the TLS material.
fn first_node(url: &str, extra: &[&str]) -> ServerProcess {
    let mut args = vec!["--store", url, "--node-name", "node-a"];
    args.extend_from_slice(extra);
    ServerProcess::start(&args)
}

/// Copy what a node needs from another to join it: the master key (the same custody) and the
/// TLS material (one CA, one server certificate, as behind one balancer), nothing else.
fn joining_dir(from: &ServerProcess, with_master_key: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    if with_master_key {
        for f in ["master.key", "master.check"] {
            let src = from.data_dir.path().join(f);
            if src.exists() {
                std::fs::copy(&src, dir.path().join(f)).expect("copy the master key");
            }
        }
    }
    copy_dir(&from.tls_dir(), &dir.path().join("tls"));
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read tls dir") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
    }
}

/// A database of its own and two nodes over it, both with `extra` options.
fn two_nodes(extra: &[&str]) -> (Postgres, ServerProcess, ServerProcess) {
    let pg = Postgres::start(&[]);
    let url = pg.new_database("kmip");
    let a = first_node(&url, extra);
    let b = node(&a, &url, "node-b", extra);
    (pg, a, b)
}

fn node(from: &ServerProcess, url: &str, name: &str, extra: &[&str]) -> ServerProcess {
    let mut args = vec!["--store", url, "--node-name", name];
    args.extend_from_slice(extra);
    ServerProcess::try_start_in(joining_dir(from, true), &args)
        .unwrap_or_else(|(_, log)| panic!("node {name} did not start: {log}"))
}

/// A Create of an AES-128 key with `extra` attributes.
fn aes128(extra: Vec<Ttlv>) -> CreateRequest {
    let mut a = vec![
        item(
            tag::CRYPTOGRAPHIC_ALGORITHM,
            Value::Enumeration(kmip_codec::vocab::enums::cryptographic_algorithm::AES),
        ),
        item(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(128)),
    ];
    a.extend(extra);
    CreateRequest {
        object_type: Req(Enum(ot::SYMMETRIC_KEY)),
        attributes: attributes(a),
        ..Default::default()
    }
}

fn usable_aes(c: &mut Client) -> String {
    let id = create_aes(c, 256, vec![mask(0x0C)]);
    activate(c, &id);
    id
}

fn encrypt(c: &mut Client, id: &str) -> Result<EncryptResponse, kmip_client::ClientError> {
    c.op(
        op::ENCRYPT,
        &EncryptRequest {
            unique_identifier: uid(id),
            cryptographic_parameters: Some(Ttlv::structure(
                tag::CRYPTOGRAPHIC_PARAMETERS,
                vec![item(tag::BLOCK_CIPHER_MODE, Value::Enumeration(bcm::ECB))],
            )),
            data: Some(Bytes(vec![0; 16])),
            ..Default::default()
        },
    )
}

fn revoke(c: &mut Client, id: &str) {
    let _: RevokeResponse = c
        .op(
            op::REVOKE,
            &RevokeRequest {
                unique_identifier: uid(id),
                revocation_reason: Req(Ttlv::structure(
                    tag::REVOCATION_REASON,
                    vec![item(tag::REVOCATION_REASON_CODE, Value::Enumeration(5))],
                )),
                ..Default::default()
            },
        )
        .expect("Revoke");
}

fn material_of(c: &mut Client, id: &str) -> Vec<u8> {
    let obj = get_object(c, id, None).unwrap_or_else(|e| panic!("Get {id}: {e}"));
    key_material(&obj)
        .1
        .as_bytes()
        .expect("raw key material")
        .to_vec()
}

fn locate_all(c: &mut Client) -> Vec<String> {
    let r: LocateResponse = c.op(op::LOCATE, &LocateRequest::default()).expect("Locate");
    r.unique_identifier
}

#[test]
fn the_store_suite_runs_on_postgres() {
    let pg = Postgres::start(&[]);
    let n = AtomicU32::new(0);
    lifecycle::store::suite::run_all(&|unique| {
        let i = n.fetch_add(1, Ordering::Relaxed);
        let url = pg.new_database(&format!("suite{i}"));
        lifecycle::store::PostgresStore::connect(&url, Duration::from_secs(5))
            .expect("connect")
            .unique_names(unique)
    });
}

/// The statements a node sends per operation, counted by the database (pg_stat_statements):
/// a Create is its identifier's `nextval` and one statement with the record and its index
/// entries, no BEGIN, no COMMIT, no read of the new record; a Get is one SELECT; an Activate
/// is three round trips: the request's read, then its commit in two (BEGIN with the record's
/// locking read for the revision check, the write with COMMIT).
#[test]
fn statements_per_operation() {
    let pg = Postgres::start(&["shared_preload_libraries = 'pg_stat_statements'"]);
    let url = pg.new_database("kmip");
    pg.sql("kmip", "CREATE EXTENSION pg_stat_statements");
    let a = first_node(&url, &[]);
    let mut c = a.client("admin");
    // connections opened and statements prepared before counting
    let warm = create_aes(&mut c, 128, vec![]);
    get_object(&mut c, &warm, None).expect("Get");
    activate(&mut c, &warm);
    let counted = |pg: &Postgres| -> u64 {
        pg.sql(
            "kmip",
            "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements \
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'kmip') \
             AND query NOT LIKE '%pg_stat_statements%'",
        )
        .parse()
        .expect("a count")
    };
    let reset = |pg: &Postgres| {
        pg.sql("kmip", "SELECT pg_stat_statements_reset()");
    };
    const N: u64 = 10;
    reset(&pg);
    let ids: Vec<String> = (0..N).map(|_| create_aes(&mut c, 128, vec![])).collect();
    let listed = |pg: &Postgres| {
        pg.sql(
            "kmip",
            "SELECT string_agg(calls || ' ' || query, E'\\n') FROM pg_stat_statements",
        )
    };
    assert_eq!(counted(&pg), 2 * N, "Create: {}", listed(&pg));
    // the first Get of a key clears its Fresh attribute, a write: counted apart
    for id in &ids {
        get_object(&mut c, id, None).expect("Get");
    }
    reset(&pg);
    for id in &ids {
        get_object(&mut c, id, None).expect("Get");
    }
    assert_eq!(counted(&pg), N, "Get: {}", listed(&pg));
    reset(&pg);
    for id in &ids {
        activate(&mut c, id);
    }
    assert_eq!(
        counted(&pg),
        5 * N,
        "Activate: SELECT, BEGIN, SELECT FOR UPDATE, the write, COMMIT: {}",
        listed(&pg)
    );
}

/// Creates from many connections at once share transactions (a group's records are inserted
/// by one statement), and every acknowledged Create is there, once.
#[test]
fn concurrent_creates_share_statements() {
    let pg = Postgres::start(&[]);
    let a = first_node(&pg.new_database("kmip"), &[]);
    create_aes(&mut a.client("admin"), 128, vec![]);
    const THREADS: usize = 16;
    const EACH: usize = 25;
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let mut c = a.client("admin");
            std::thread::spawn(move || {
                (0..EACH)
                    .map(|_| create_aes(&mut c, 128, vec![]))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut ids: Vec<String> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("a client thread"))
        .collect();
    // the records a transaction inserted share its identifier (xmin)
    let counts = pg.sql(
        "kmip",
        "SELECT count(*) || ' ' || count(DISTINCT xmin::text) FROM kmip_objects",
    );
    let (records, transactions) = counts.split_once(' ').expect("two counts");
    let (records, transactions): (usize, usize) =
        (records.parse().unwrap(), transactions.parse().unwrap());
    eprintln!("{records} records written by {transactions} transactions");
    assert_eq!(records, THREADS * EACH + 1);
    assert!(
        transactions < records,
        "{transactions} transactions wrote {records} records"
    );
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), THREADS * EACH, "identifiers are unique");
    let mut c = a.client("admin");
    for id in &ids {
        get_object(&mut c, id, None).unwrap_or_else(|e| panic!("Get {id}: {e}"));
    }
}

/// Creates held up by a lock on the records' table (their identifiers still come): each is
/// answered within the statement timeout and a little, whether it waited in the group that
/// hit the lock or queued behind it (attack round 9: those queued behind were answered after
/// 20 s, twice the timeout). Every one that succeeded reads back.
#[test]
fn creates_behind_a_stuck_group_fail_within_the_timeout() {
    let pg = Postgres::start(&[]);
    let url = pg.new_database("kmip");
    let a = first_node(&url, &[]);
    create_aes(&mut a.client("admin"), 128, vec![]);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            pg.sql_unchecked(
                "kmip",
                "BEGIN; LOCK TABLE kmip_objects IN SHARE MODE; SELECT pg_sleep(40); COMMIT;",
            )
        });
        held_up_creates(&pg, &a);
    });
}

fn held_up_creates(pg: &Postgres, a: &ServerProcess) {
    // the lock is held before the Creates start
    let held = Instant::now();
    while pg.sql("kmip", "SELECT count(*) FROM pg_locks WHERE relation = 'kmip_objects'::regclass AND mode = 'ShareLock' AND granted") != "1" {
        assert!(held.elapsed() < Duration::from_secs(10), "the lock was not taken");
        std::thread::sleep(Duration::from_millis(50));
    }
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let mut c = a.client("admin");
            std::thread::spawn(move || {
                // the first ones form the group that waits on the lock; the later ones queue
                std::thread::sleep(Duration::from_millis(300 * i));
                let started = Instant::now();
                let r: Result<CreateResponse, _> = c.op(op::CREATE, &aes128(vec![]));
                (started.elapsed(), r.map(|r| r.unique_identifier.0))
            })
        })
        .collect();
    let outcomes: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    pg.sql(
        "postgres",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(40)%' \
         AND pid <> pg_backend_pid()",
    );
    let mut c = a.client("admin");
    for (took, r) in &outcomes {
        assert!(
            *took < Duration::from_secs(15),
            "a Create answered after {took:?} ({r:?})"
        );
        match r {
            Ok(id) => {
                get_object(&mut c, id, None).unwrap_or_else(|e| panic!("Get {id}: {e}"));
            }
            Err(e) => assert!(e.reason().is_some(), "a KMIP error: {e}"),
        }
    }
    assert!(
        outcomes.iter().any(|(_, r)| r.is_err()),
        "the lock held no Create up: {outcomes:?}"
    );
}

fn activate(c: &mut Client, id: &str) {
    let _: ActivateResponse = c
        .op(
            op::ACTIVATE,
            &ActivateRequest {
                unique_identifier: Some(id.to_owned()),
            },
        )
        .expect("Activate");
}

/// TLS to the database: a cluster with `ssl = on` and a certificate from a CA of its own.
/// With `sslmode=require` a node encrypts (the database says so) without checking the
/// certificate, as libpq does; with `verify-full` and the CA (`sslrootcert`) it checks the
/// chain and the host name, and refuses another CA's certificate, or one for another host.
#[test]
fn tls_to_the_database() {
    let (pg, ca) = Postgres::start_tls(&[]);
    let url = pg.new_database("kmip");
    let a = first_node(&format!("{url}?sslmode=require"), &[]);
    let mut ca_client = a.client("admin");
    let k = create_aes(&mut ca_client, 128, vec![]);
    get_object(&mut ca_client, &k, None).expect("Get over a TLS store");
    let encrypted = pg.sql(
        "kmip",
        "SELECT bool_and(s.ssl), count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a \
         USING (pid) WHERE a.application_name = 'kmip-server'",
    );
    assert!(encrypted.starts_with("t|"), "{encrypted}");

    let full = format!("{url}?sslmode=verify-full&sslrootcert={}", ca.display());
    let b = node(&a, &full, "node-b", &[]);
    let mut cb = b.client("admin");
    get_object(&mut cb, &k, None).expect("Get through the verifying node");
    let k2 = create_aes(&mut cb, 128, vec![]);
    get_object(&mut ca_client, &k2, None).expect("read back across nodes");

    // another CA: refused, and the message says why
    let other = tempfile::tempdir().unwrap();
    let other_ca = other.path().join("other-ca.pem");
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args([
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=another CA",
        ])
        .args(["-days", "1", "-keyout"])
        .arg(other.path().join("other.key"))
        .arg("-out")
        .arg(&other_ca)
        .output()
        .unwrap();
    assert!(out.status.success());
    let refused = |url: &str| match lifecycle::store::PostgresStore::connect(url, Duration::ZERO) {
        Ok(_) => panic!("connected to {url}"),
        Err(e) => e.to_string(),
    };
    let e = refused(&format!(
        "{url}?sslmode=verify-full&sslrootcert={}",
        other_ca.display()
    ));
    assert!(e.contains("certificate verify failed"), "{e}");
    // the certificate names 127.0.0.1, not localhost
    let by_name = full.replace("127.0.0.1", "localhost");
    let e = refused(&by_name);
    assert!(e.contains("certificate verify failed"), "{e}");
    // verify-ca checks the chain only
    let chain_only = by_name.replace("verify-full", "verify-ca");
    lifecycle::store::PostgresStore::connect(&chain_only, Duration::ZERO)
        .unwrap_or_else(|e| panic!("verify-ca by another name: {e}"));
}

/// A database that does not speak TLS, and a node that requires it: the node does not start,
/// and says why.
#[test]
fn tls_required_of_a_database_without_it_is_refused() {
    let pg = Postgres::start(&[]);
    let url = format!("{}?sslmode=require", pg.new_database("kmip"));
    let (_, log) = ServerProcess::try_start_in(
        tempfile::tempdir().unwrap(),
        &["--store", &url, "--store-connect-secs", "1"],
    )
    .err()
    .expect("no TLS, no server");
    assert!(log.contains("server does not support TLS"), "{log}");
}

/// Two nodes, one database: what one acknowledged the other sees at once, in both
/// directions; a key revoked through one cannot be used through the other; writers on both
/// nodes at once get unique identifiers and lose nothing.
#[test]
fn two_nodes_serve_one_database() {
    let (_pg, a, b) = two_nodes(&[]);
    let (mut ca, mut cb) = (a.client("admin"), b.client("admin"));

    // read after write, both ways
    let k1 = create_aes(&mut ca, 256, vec![]);
    let k2 = create_aes(&mut cb, 128, vec![]);
    assert_ne!(k1, k2, "identifiers are unique across nodes");
    assert_eq!(material_of(&mut cb, &k1), material_of(&mut ca, &k1));
    assert_eq!(material_of(&mut ca, &k2).len(), 16);

    // newest first across nodes: a key made later through either node is found before
    let named = |c: &mut Client, n: &str| create_aes(c, 128, vec![name(n)]);
    let older = named(&mut cb, "rotated");
    let newer = named(&mut ca, "rotated");
    let newest = named(&mut cb, "rotated");
    let r: LocateResponse = ca
        .op(
            op::LOCATE,
            &LocateRequest {
                attributes: attributes(vec![name("rotated")]),
                ..Default::default()
            },
        )
        .expect("Locate");
    assert_eq!(r.unique_identifier, vec![newest, newer, older]);

    // revoke on one node, use on the other
    let k = usable_aes(&mut ca);
    encrypt(&mut cb, &k).expect("an active key encrypts on the other node");
    revoke(&mut ca, &k);
    let e = encrypt(&mut cb, &k).expect_err("a revoked key is not used, on any node");
    assert_eq!(e.reason(), Some(rr::WRONG_KEY_LIFECYCLE_STATE), "{e}");

    // concurrent writers on both nodes
    let made = Arc::new(Mutex::new(Vec::new()));
    std::thread::scope(|s| {
        for server in [&a, &b] {
            for _ in 0..3 {
                let made = made.clone();
                s.spawn(move || {
                    let mut c = server.client("admin");
                    for _ in 0..20 {
                        let id = create_aes(&mut c, 128, vec![]);
                        let m = material_of(&mut c, &id);
                        made.lock().unwrap().push((id, m));
                    }
                });
            }
        }
    });
    let made = made.lock().unwrap().clone();
    let mut ids: Vec<&String> = made.iter().map(|(id, _)| id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 120, "every Create got its own identifier");
    assert_keys_intact(&mut ca, &made);
    assert_keys_intact(&mut cb, &made);
    let (on_a, on_b) = (locate_all(&mut ca), locate_all(&mut cb));
    assert_eq!(on_a.len(), 126);
    assert_eq!(
        {
            let mut x = on_a.clone();
            x.sort();
            x
        },
        {
            let mut x = on_b.clone();
            x.sort();
            x
        }
    );
    // each node keeps an audit chain of its own, with its name in every record
    let audit = std::fs::read_to_string(b.data_dir.path().join("audit.jsonl")).unwrap();
    assert!(audit.contains("\"node\":\"node-b\""), "{audit:.400}");
    a.assert_audit_chain();
    b.assert_audit_chain();
}

/// A read-modify-write on both nodes at once (attributes added to one object): none lost.
#[test]
fn concurrent_changes_of_one_object_on_two_nodes_lose_nothing() {
    let (_pg, a, b) = two_nodes(&[]);
    let id = create_aes(&mut a.client("admin"), 128, vec![]);
    std::thread::scope(|s| {
        for (n, server) in [&a, &b].into_iter().enumerate() {
            let id = id.clone();
            s.spawn(move || {
                let mut c = server.client("admin");
                for i in 0..25 {
                    let _: AddAttributeResponse = c
                        .op(
                            op::ADD_ATTRIBUTE,
                            &AddAttributeRequest {
                                unique_identifier: uid(&id),
                                new_attribute: Some(Ttlv::structure(
                                    tag::NEW_ATTRIBUTE,
                                    vec![name(&format!("n{n}-{i}"))],
                                )),
                                ..Default::default()
                            },
                        )
                        .expect("Add Attribute");
                }
            });
        }
    });
    let names = get_attributes(&mut b.client("admin"), &id)
        .into_iter()
        .filter(|a| a.tag == tag::NAME)
        .count();
    assert_eq!(names, 50, "every acknowledged Add Attribute is there");
}

/// `--unique-names` across nodes: the same name registered through both nodes at once is
/// taken once.
#[test]
fn names_stay_unique_across_nodes() {
    let (_pg, a, b) = two_nodes(&["--unique-names"]);
    for round in 0..10 {
        let won = AtomicU32::new(0);
        std::thread::scope(|s| {
            for server in [&a, &b] {
                let won = &won;
                s.spawn(move || {
                    let mut c = server.client("admin");
                    let r: Result<CreateResponse, _> =
                        c.op(op::CREATE, &aes128(vec![name(&format!("shared-{round}"))]));
                    match r {
                        Ok(_) => {
                            won.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            assert_eq!(e.reason(), Some(rr::NON_UNIQUE_NAME_ATTRIBUTE), "{e}")
                        }
                    }
                });
            }
        });
        assert_eq!(won.into_inner(), 1, "round {round}: one node's Create wins");
    }
}

/// A node whose master key is not the one the database was set up with is refused, says
/// why, and exits non-zero.
#[test]
fn a_node_with_another_master_key_does_not_start() {
    let pg = Postgres::start(&[]);
    let url = pg.new_database("kmip");
    let a = first_node(&url, &[]);
    let _ = create_aes(&mut a.client("admin"), 128, vec![]);
    let args = ["--store", url.as_str()];
    let (_, log) = ServerProcess::try_start_in(joining_dir(&a, false), &args)
        .err()
        .expect("a node with its own master key is refused");
    assert!(log.contains("another master key"), "{log}");
    assert!(!log.contains("listening"), "{log}");
}

/// Two first nodes with different master keys starting at once over an empty database: one
/// serves, the other reads the first's check value and is refused (not both writing theirs).
#[test]
fn two_first_nodes_with_different_keys_one_is_refused() {
    let pg = Postgres::start(&[]);
    for round in 0..3 {
        let url = pg.new_database(&format!("race{round}"));
        let started: Vec<_> = std::thread::scope(|s| {
            let tries: Vec<_> = (0..2)
                .map(|_| {
                    let url = url.clone();
                    s.spawn(move || {
                        ServerProcess::try_start_in(
                            tempfile::tempdir().unwrap(),
                            &["--store", &url],
                        )
                    })
                })
                .collect();
            tries.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let serving = started.iter().filter(|r| r.is_ok()).count();
        assert_eq!(serving, 1, "round {round}: exactly one first node serves");
        let refused = started.iter().find_map(|r| r.as_ref().err()).unwrap();
        assert!(refused.1.contains("another master key"), "{}", refused.1);
    }
}

/// master-rotate re-seals a redb directory's records: over a PostgreSQL store it refuses,
/// and changes nothing (it used to rotate an empty local file and replace the key file).
#[test]
fn master_rotate_refuses_a_postgres_store() {
    let pg = Postgres::start(&[]);
    let url = pg.new_database("kmip");
    let a = first_node(&url, &[]);
    let key = std::fs::read(a.data_dir.path().join("master.key")).unwrap();
    let dir = a.stop();
    let out = interop_tests::kmip_server_command(dir.path(), &["master-rotate", "--store", &url]);
    assert!(!out.status.success());
    let text = interop_tests::output_text(&out);
    assert!(text.contains("not supported"), "{text}");
    assert_eq!(std::fs::read(dir.path().join("master.key")).unwrap(), key);
    assert!(!dir.path().join("kmip.redb").exists());
}

/// A database that is not there at start: a clear error after the bounded retries, and a
/// non-zero exit; the password of the URL is never printed.
#[test]
fn an_unreachable_database_at_start_is_a_clear_error() {
    let port = interop_tests::free_port();
    let url = format!("postgres://kmip:hunter2secret@127.0.0.1:{port}/kmip");
    let started = Instant::now();
    let (dir, log) = ServerProcess::try_start_in(
        tempfile::tempdir().unwrap(),
        &["--store", &url, "--store-connect-secs", "2"],
    )
    .err()
    .expect("no database, no server");
    assert!(started.elapsed() < Duration::from_secs(20));
    let (dir, log) = (dir, log);
    // nothing made for nothing: the database is reached before the master key and the CA
    for made in ["master.key", "master.check", "tls"] {
        assert!(!dir.path().join(made).exists(), "{made} was made: {log}");
    }
    assert!(log.contains("PostgreSQL"), "{log}");
    assert!(log.contains("trying again"), "{log}");
    assert!(log.contains(&format!("127.0.0.1:{port}/kmip")), "{log}");
    assert!(!log.contains("hunter2secret"), "{log}");
}

/// The database stops while the nodes serve: requests get a KMIP error, promptly, not a
/// hang; once it is back, the same connections are served again within seconds.
#[test]
fn the_database_gone_and_back() {
    through_an_outage(|pg| pg.pg_stop("immediate"), |pg| pg.pg_start(), 15);
}

/// The database stalls (SIGSTOP: a paused machine, a frozen disk), so its connections stay
/// open and nothing answers: a request gets a KMIP error within the statement deadline (10 s),
/// not a hang, and once the database goes on, the node serves again.
#[test]
fn a_stalled_database_answers_an_error_not_a_hang() {
    through_an_outage(|pg| pg.freeze(true), |pg| pg.freeze(false), 15);
}

/// A node serving a client while the database is interrupted, then resumed: KMIP errors
/// within `within_secs` meanwhile (a read and a write), and the same connection served again
/// within 10 s of the database's return.
fn through_an_outage(interrupt: fn(&Postgres), resume: fn(&Postgres), within_secs: u64) {
    let pg = Postgres::start(&[]);
    let url = pg.new_database("kmip");
    let a = first_node(&url, &[]);
    let mut c = a.client("admin");
    let before = create_aes(&mut c, 128, vec![]);
    interrupt(&pg);
    let started = Instant::now();
    let read = get_object(&mut c, &before, None);
    let waited = started.elapsed();
    let write: Result<CreateResponse, _> = c.op(op::CREATE, &aes128(vec![]));
    resume(&pg);
    let e = read.expect_err("no database, no answer");
    assert!(
        e.reason().is_some(),
        "a KMIP error, not a dropped connection: {e}"
    );
    assert!(
        waited < Duration::from_secs(within_secs),
        "answered after {waited:?}"
    );
    assert!(write.is_err(), "no write without the database");
    let back = Instant::now();
    while let Err(e) = get_object(&mut c, &before, None) {
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "not served again 10 s after the database came back: {e}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = create_aes(&mut c, 128, vec![]);
}

/// Writers on two nodes; one node is killed with SIGKILL; everything either node
/// acknowledged reads back through the survivor.
#[test]
fn a_node_killed_loses_nothing_acknowledged() {
    let (_pg, a, b) = two_nodes(&[]);
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for server in [&a, &b] {
            let (acked, stop) = (acked.clone(), &stop);
            s.spawn(move || {
                let mut c = server.client("admin");
                while !stop.load(Ordering::Relaxed) {
                    let r: Result<CreateResponse, _> = c.op(op::CREATE, &aes128(vec![]));
                    match r {
                        Ok(r) => acked.lock().unwrap().push(r.unique_identifier.0),
                        Err(_) => break,
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_millis(1500));
        std::process::Command::new("kill")
            .args(["-KILL", &b.pid().to_string()])
            .status()
            .unwrap();
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, Ordering::Relaxed);
    });
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 20, "only {} writes", acked.len());
    let mut c = a.client("admin");
    for id in &acked {
        get_object(&mut c, id, None).unwrap_or_else(|e| panic!("acknowledged {id} lost: {e}"));
    }
}

/// A primary with a synchronous standby; nodes list both hosts with
/// `target_session_attrs=read-write`. The primary is killed under load and the standby
/// promoted: the nodes follow it, and no acknowledged write is lost.
#[test]
fn a_primary_killed_and_its_standby_promoted() {
    let primary = Postgres::start(&["wal_level = replica"]);
    primary.sql("postgres", "CREATE DATABASE kmip");
    let standby = primary.standby();
    // synchronous once the standby is there (before, every commit would wait for it); only
    // the primary has it, so the promoted standby does not wait for a standby of its own
    primary.sql(
        "postgres",
        "ALTER SYSTEM SET synchronous_standby_names = '*'",
    );
    primary.sql(
        "postgres",
        "ALTER SYSTEM SET synchronous_commit = remote_apply",
    );
    primary.sql("postgres", "SELECT pg_reload_conf()");
    let url = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/kmip?target_session_attrs=read-write&connect_timeout=2",
        primary.port, standby.port
    );
    let a = first_node(&url, &[]);
    let b = node(&a, &url, "node-b", &[]);
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = AtomicBool::new(false);
    let failed = AtomicU32::new(0);
    std::thread::scope(|s| {
        for server in [&a, &b] {
            let (acked, stop, failed) = (acked.clone(), &stop, &failed);
            s.spawn(move || {
                let mut c = server.client("admin");
                while !stop.load(Ordering::Relaxed) {
                    let r: Result<CreateResponse, _> = c.op(op::CREATE, &aes128(vec![]));
                    match r {
                        Ok(r) => acked.lock().unwrap().push(r.unique_identifier.0),
                        // during the failover: a KMIP error, and the connection goes on
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_millis(1500));
        let t = Instant::now();
        primary.kill();
        eprintln!("primary killed in {:?}", t.elapsed());
        standby.promote();
        eprintln!("standby promoted after {:?}", t.elapsed());
        // writes resume on the promoted standby
        let resumed = Instant::now();
        let before = acked.lock().unwrap().len();
        eprintln!("{before} acknowledged before the failover");
        while acked.lock().unwrap().len() < before + 20
            && resumed.elapsed() < Duration::from_secs(30)
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        stop.store(true, Ordering::Relaxed);
        assert!(
            acked.lock().unwrap().len() >= before + 20,
            "writes did not resume after the promotion ({} failed): node a: {}\nstandby: {}",
            failed.load(Ordering::Relaxed),
            a.log(),
            standby.log()
        );
    });
    let acked = acked.lock().unwrap().clone();
    let mut c = b.client("admin");
    for id in &acked {
        get_object(&mut c, id, None)
            .unwrap_or_else(|e| panic!("acknowledged {id} lost in the failover: {e}"));
    }
    eprintln!(
        "{} writes acknowledged, {} failed during the failover",
        acked.len(),
        failed.load(Ordering::Relaxed)
    );
}

/// A TCP relay to PostgreSQL that, once a client sends a statement holding `marker`, passes
/// it on and then cuts that connection without relaying the answer: a commit the database
/// made whose acknowledgement never reaches the node.
fn cutting_relay(pg_port: u16, marker: &'static [u8]) -> u16 {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let Ok(server) = TcpStream::connect(("127.0.0.1", pg_port)) else {
                continue;
            };
            let cut = Arc::new(AtomicBool::new(false));
            let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let up_cut = cut.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = c_in.read(&mut buf) {
                    if n == 0 || s_out.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    if buf[..n].windows(marker.len()).any(|w| w == marker) {
                        up_cut.store(true, Ordering::SeqCst);
                    }
                }
            });
            let (mut s_in, mut c_out) = (server, client);
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = s_in.read(&mut buf) {
                    if n == 0 || cut.load(Ordering::SeqCst) {
                        break;
                    }
                    if c_out.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = c_out.shutdown(Shutdown::Both);
                let _ = s_in.shutdown(Shutdown::Both);
            });
        }
    });
    port
}

/// The database commits a Create and the connection drops before its answer reaches the
/// node: the node cannot know whether it was made. It says so, and audits it so, rather than
/// "nothing was done" (after which a client would make the key twice); the key is there.
#[test]
fn a_commit_whose_answer_is_lost_is_not_said_undone() {
    let pg = Postgres::start(&[]);
    let url = pg.new_database("kmip");
    let a = first_node(&url, &[]);
    let relay = cutting_relay(pg.port, b"cut-here-7f3a");
    let through_relay = url.replace(&format!(":{}/", pg.port), &format!(":{relay}/"));
    let b = node(&a, &through_relay, "node-b", &[]);
    let refused = b
        .client("admin")
        .op::<_, CreateResponse>(op::CREATE, &aes128(vec![name("cut-here-7f3a")]))
        .expect_err("the answer was cut");
    let said = refused.to_string();
    assert!(said.contains("may have been made"), "{said}");
    assert!(!said.contains("nothing was done"), "{said}");
    let found: LocateResponse = a
        .client("admin")
        .op(
            op::LOCATE,
            &LocateRequest {
                attributes: attributes(vec![name("cut-here-7f3a")]),
                ..Default::default()
            },
        )
        .expect("Locate");
    assert_eq!(
        found.unique_identifier.len(),
        1,
        "the database made the key"
    );
    let audit = std::fs::read_to_string(b.data_dir.path().join("audit.jsonl")).unwrap();
    assert!(
        audit.lines().any(|l| l.contains("\"commit\":\"unknown")),
        "the audit log says the outcome is unknown"
    );
}

/// The database restarts while the node holds a pool of idle connections, all of them dead
/// now: once it is back, the first request finds one dead, the node drops them all, and no
/// request fails (each dead one used to fail a request of its own).
#[test]
fn after_a_database_restart_no_request_fails() {
    let pg = Postgres::start(&[]);
    let url = pg.new_database("kmip");
    let a = first_node(&url, &[]);
    let key = create_aes(&mut a.client("admin"), 128, vec![]);
    // several connections busy at once leave several idle in the pool, all dead once the
    // database restarts
    let restart_with_a_full_pool = || {
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    let mut c = a.client("admin");
                    for _ in 0..20 {
                        get_object(&mut c, &key, None).expect("Get");
                    }
                });
            }
        });
        pg.pg_stop("fast");
        pg.pg_start();
    };
    restart_with_a_full_pool();
    let mut c = a.client("admin");
    let failed: Vec<String> = (0..20)
        .filter_map(|_| get_object(&mut c, &key, None).err().map(|e| e.to_string()))
        .collect();
    assert!(
        failed.is_empty(),
        "{} Gets failed: {failed:?}",
        failed.len()
    );
    // again, and Creates first (each takes an identifier from the sequence before it writes)
    restart_with_a_full_pool();
    let failed: Vec<String> = (0..10)
        .filter_map(|_| {
            c.op::<_, CreateResponse>(op::CREATE, &aes128(vec![]))
                .err()
                .map(|e| e.to_string())
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} Creates failed: {failed:?}",
        failed.len()
    );
}

/// A message on an async worker runs over the records it names, fetched beforehand without a
/// thread; one that reads anything else (here the wrapping key of a Get) is thrown away before
/// it is recorded and runs again on a blocking thread: its answer is right, and the audit log
/// has one record of it, not two.
#[test]
fn a_message_that_reads_beyond_what_was_fetched_runs_again_once() {
    let pg = Postgres::start(&[]);
    let url = pg.new_database("kmip");
    let a = first_node(&url, &[]);
    let mut c = a.client("admin");
    let kek = create_aes(&mut c, 256, vec![mask(0x10 | 0x20)]);
    activate(&mut c, &kek);
    let key = create_aes(&mut c, 256, vec![]);
    let plain = get_object(&mut c, &key, None).expect("Get");
    let audit = || std::fs::read_to_string(a.data_dir.path().join("audit.jsonl")).unwrap();
    let gets_of_key = || {
        audit()
            .lines()
            .filter(|l| l.contains("\"Get\"") && l.contains(&format!("\"{key}\"")))
            .count()
    };
    assert_eq!(gets_of_key(), 1, "one record of the plain Get");
    let spec = Ttlv::structure(
        tag::KEY_WRAPPING_SPECIFICATION,
        vec![
            Ttlv::new(tag::WRAPPING_METHOD, Value::Enumeration(1)),
            Ttlv::structure(
                tag::ENCRYPTION_KEY_INFORMATION,
                vec![Ttlv::new(
                    tag::UNIQUE_IDENTIFIER,
                    Value::TextString(kek.clone()),
                )],
            ),
        ],
    );
    let wrapped: GetResponse = c
        .op(
            op::GET,
            &GetRequest {
                unique_identifier: Some(key.clone()),
                key_wrapping_specification: Some(spec),
                ..Default::default()
            },
        )
        .expect("Get wrapped under the KEK");
    let block = wrapped.symmetric_key.unwrap();
    let block = block.child(tag::KEY_BLOCK).unwrap();
    assert!(block.child(tag::KEY_WRAPPING_DATA).is_some(), "wrapped");
    assert_ne!(
        block.child(tag::KEY_VALUE),
        plain
            .child(tag::KEY_BLOCK)
            .and_then(|b| b.child(tag::KEY_VALUE)),
        "not the plain key value"
    );
    assert_eq!(gets_of_key(), 2, "one record of the wrapped Get, not two");
    // and a Get of an object that does not exist is answered from the fetch
    let e = get_object(&mut c, "999999", None).unwrap_err();
    assert_eq!(e.reason(), Some(rr::OBJECT_NOT_FOUND));
}

/// A database restart while the node is idle, its pool full of connections that only ever
/// committed Creates (batched ones, on the blocking pool, so that the connection for the
/// async workers' reads never saw the restart): the next single Create, whose only statement
/// is its commit, must not be sent on a dead connection, where its outcome would be unknown
/// (attack round 8: the first Create after such a restart answered "lost while committing").
#[test]
fn a_create_after_a_restart_while_idle_succeeds() {
    let pg = Postgres::start(&[]);
    let url = pg.new_database("kmip");
    let a = first_node(&url, &[]);
    let payload = || -> Ttlv {
        kmip_codec::message::FieldValue::encode(&aes128(vec![]), tag::REQUEST_PAYLOAD)
    };
    for _ in 0..3 {
        // one client at a time: the connection that commits is the one on top of the pool
        let mut c = a.client("admin");
        for _ in 0..5 {
            let r = c
                .batch(vec![(op::CREATE, payload()), (op::CREATE, payload())])
                .expect("a batch of Creates");
            assert_eq!(r.batch_item.len(), 2);
        }
        pg.pg_stop("fast");
        pg.pg_start();
        // the node has been idle since before the restart
        std::thread::sleep(Duration::from_millis(600));
        let mut c = a.client("admin");
        let created: Result<CreateResponse, _> = c.op(op::CREATE, &aes128(vec![]));
        let id = created
            .expect("the first Create after the restart")
            .unique_identifier;
        get_object(&mut c, &id.0, None).expect("and it is there");
    }
}
