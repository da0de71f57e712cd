//! Hostile network input against a running server, while a well-behaved client keeps working
//! and must see no error: truncated messages, a 4 GiB length, 100,000 levels of nesting, a
//! million batch items, invalid UTF-8, a client that sends a byte a second, 5,000 connections
//! left idle, TLS with an expired certificate, with one from another CA, without one, and plain
//! TCP. Each gets a KMIP error or a clean close within the configured timeouts, and the
//! server's memory stays under 300 MB.

use interop_tests::kmip::*;
use interop_tests::ServerProcess;
use kmip_client::Client;
use kmip_codec::vocab::enums::{operation as op, result_reason as rr};
use kmip_codec::vocab::tag;
use kmip_codec::Ttlv;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const READ_TIMEOUT: u64 = 2;
const MEMORY_BOUND_KIB: u64 = 300 * 1024;

/// TTLV bytes: tag, type, length, then the value.
fn item(tag: u32, kind: u8, value: &[u8]) -> Vec<u8> {
    let mut v = tag.to_be_bytes()[1..].to_vec();
    v.push(kind);
    v.extend_from_slice(&(value.len() as u32).to_be_bytes());
    v.extend_from_slice(value);
    while v.len() % 8 != 0 {
        v.push(0);
    }
    v
}

fn structure(tag: u32, children: &[Vec<u8>]) -> Vec<u8> {
    item(tag, 0x01, &children.concat())
}

fn header(major: i32, count: i32) -> Vec<u8> {
    let int = |t: u32, v: i32| item(t, 0x02, &v.to_be_bytes());
    structure(
        tag::REQUEST_HEADER.0,
        &[
            structure(
                tag::PROTOCOL_VERSION.0,
                &[
                    int(tag::PROTOCOL_VERSION_MAJOR.0, major),
                    int(tag::PROTOCOL_VERSION_MINOR.0, 0),
                ],
            ),
            int(tag::BATCH_COUNT.0, count),
        ],
    )
}

fn query_item() -> Vec<u8> {
    structure(
        tag::BATCH_ITEM.0,
        &[
            item(tag::OPERATION.0, 0x05, &op::QUERY.to_be_bytes()),
            structure(tag::REQUEST_PAYLOAD.0, &[]),
        ],
    )
}

/// What the server answered to `bytes` on a fresh connection: a response, or nothing (a
/// clean close), within the deadline.
fn send(server: &ServerProcess, bytes: &[u8]) -> Option<Ttlv> {
    let mut s = server.tls_stream("admin").unwrap();
    let _ = s.write_all(bytes);
    let _ = s.flush();
    let mut head = [0u8; 8];
    let t0 = Instant::now();
    if s.read_exact(&mut head).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(READ_TIMEOUT + 5),
            "no close in time"
        );
        return None;
    }
    let len = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    let mut all = head.to_vec();
    all.extend(body);
    Some(
        kmip_codec::decode(&all, &kmip_codec::Limits::default())
            .unwrap()
            .0,
    )
}

fn reason(resp: &Ttlv) -> Option<u32> {
    resp.child(tag::BATCH_ITEM)?
        .child(tag::RESULT_REASON)?
        .as_enum()
}

#[test]
fn hostile_input_does_not_disturb_a_working_client() {
    let server = ServerProcess::start(&[
        "--read-timeout-secs",
        &READ_TIMEOUT.to_string(),
        "--idle-timeout-secs",
        "10",
        "--max-connections",
        "8192",
    ]);
    let mut setup = server.client("admin");
    let key = create_aes(&mut setup, 256, vec![]);
    let stop = AtomicBool::new(false);
    let (served, failed) = (AtomicU64::new(0), AtomicU64::new(0));
    std::thread::scope(|s| {
        // the well-behaved client: a Get at a time, all along
        s.spawn(|| {
            let mut c: Client = server.client("admin");
            while !stop.load(Ordering::Relaxed) {
                match get_object(&mut c, &key, None) {
                    Ok(_) => served.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        eprintln!("the working client failed: {e}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
                std::thread::sleep(Duration::from_millis(5));
            }
        });

        // truncated: half a message, then silence, then a close
        let full = structure(tag::REQUEST_MESSAGE.0, &[header(2, 1), query_item()]);
        assert!(send(&server, &full[..full.len() / 2]).is_none());
        // a length of 4 GiB
        let r =
            send(&server, &[0x42, 0x00, 0x78, 0x01, 0xFF, 0xFF, 0xFF, 0xFF]).expect("an answer");
        assert_eq!(reason(&r), Some(rr::INVALID_MESSAGE));
        // 100,000 levels of nesting (800 KB, inside the size limit)
        let mut nested = Vec::new();
        for _ in 0..100_000 {
            let len = nested.len() as u32;
            let mut n = vec![0x42, 0x00, 0x78, 0x01];
            n.extend_from_slice(&len.to_be_bytes());
            n.extend(nested);
            nested = n;
        }
        let r = send(&server, &nested).expect("an answer");
        assert_eq!(reason(&r), Some(rr::INVALID_MESSAGE));
        // a million batch items: far over the size limit, refused before it is read
        let items: Vec<Vec<u8>> = (0..1_000_000).map(|_| query_item()).collect();
        let huge = structure(
            tag::REQUEST_MESSAGE.0,
            &[header(2, 1_000_000), items.concat()],
        );
        if let Some(r) = send(&server, &huge) {
            assert_eq!(reason(&r), Some(rr::INVALID_MESSAGE));
        }
        // more batch items than allowed, inside the size limit
        let many: Vec<Vec<u8>> = (0..5_000).map(|_| query_item()).collect();
        let r = send(
            &server,
            &structure(tag::REQUEST_MESSAGE.0, &[header(2, 5_000), many.concat()]),
        )
        .expect("an answer");
        assert!(
            reason(&r).is_some(),
            "too many batch items is an error: {r:?}"
        );
        // invalid UTF-8 in a Text String
        let bad = structure(
            tag::REQUEST_MESSAGE.0,
            &[
                header(2, 1),
                structure(
                    tag::BATCH_ITEM.0,
                    &[
                        item(tag::OPERATION.0, 0x05, &op::GET.to_be_bytes()),
                        structure(
                            tag::REQUEST_PAYLOAD.0,
                            &[item(tag::UNIQUE_IDENTIFIER.0, 0x07, &[0xC3, 0x28, 0xFF])],
                        ),
                    ],
                ),
            ],
        );
        let r = send(&server, &bad).expect("an answer");
        assert_eq!(reason(&r), Some(rr::INVALID_MESSAGE));

        // a byte a second: cut off after the read timeout
        let mut slow = server.tls_stream("admin").unwrap();
        let t0 = Instant::now();
        let mut closed = false;
        for b in &full {
            if slow.write_all(&[*b]).and_then(|_| slow.flush()).is_err() {
                closed = true;
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
            if t0.elapsed() > Duration::from_secs(READ_TIMEOUT + 4) {
                break;
            }
        }
        if !closed {
            let mut buf = [0u8; 8];
            closed = matches!(slow.read(&mut buf), Ok(0) | Err(_));
        }
        assert!(closed, "a trickling client was not cut off");
        assert!(t0.elapsed() < Duration::from_secs(READ_TIMEOUT + 6));

        // 5,000 connections opened and left idle (no TLS handshake)
        let idle: Vec<std::net::TcpStream> = (0..5_000)
            .filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", server.port)).ok())
            .collect();
        assert!(
            idle.len() >= 4_900,
            "only {} connections opened",
            idle.len()
        );
        std::thread::sleep(Duration::from_millis(500));
        let rss = server.rss_kib();
        assert!(
            rss < MEMORY_BOUND_KIB,
            "server memory {rss} KiB with 5,000 idle connections"
        );
        println!(
            "server memory with {} idle connections: {} MiB",
            idle.len(),
            rss / 1024
        );
        // they are closed within the handshake (read) timeout
        std::thread::sleep(Duration::from_secs(READ_TIMEOUT + 2));
        let still_open = idle
            .iter()
            .filter(|c| {
                c.set_read_timeout(Some(Duration::from_millis(50))).ok();
                let mut b = [0u8; 1];
                matches!((&**c).read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut)
            })
            .count();
        assert_eq!(still_open, 0, "idle connections outlived the timeout");
        drop(idle);

        // TLS: an expired certificate from the right CA, none at all, plain TCP
        let tls = server.tls_dir();
        expired_client_cert(&tls);
        let expired = Client::connect(
            "localhost",
            server.port,
            &kmip_client::Identity {
                ca: &tls.join("ca.pem"),
                cert: Some(&tls.join("expired.pem")),
                key: Some(&tls.join("expired.key")),
            },
        );
        if let Ok(mut c) = expired {
            assert!(
                c.call(op::QUERY, Ttlv::structure(tag::REQUEST_PAYLOAD, vec![]))
                    .is_err(),
                "an expired certificate was accepted"
            );
        }
        let mut tcp = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(READ_TIMEOUT + 5)))
            .unwrap();
        let _ = tcp.write_all(&full);
        let mut buf = [0u8; 64];
        let n = tcp.read(&mut buf).unwrap_or(0);
        assert!(n == 0 || buf[0] == 0x15, "plain TCP got a non-TLS answer");

        std::thread::sleep(Duration::from_millis(200));
        stop.store(true, Ordering::Relaxed);
    });
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "the working client saw errors"
    );
    assert!(
        served.load(Ordering::Relaxed) > 50,
        "the working client was served"
    );
    let rss = server.rss_kib();
    assert!(rss < MEMORY_BOUND_KIB, "server memory {rss} KiB at the end");
    println!(
        "working client: {} Gets served, 0 failed; server memory at the end {} MiB",
        served.load(Ordering::Relaxed),
        rss / 1024
    );
}

/// A client certificate from the server's own CA that expired yesterday.
fn expired_client_cert(tls: &std::path::Path) {
    use openssl::asn1::Asn1Time;
    use openssl::pkey::PKey;
    use openssl::x509::{X509Builder, X509NameBuilder, X509};
    let ca = X509::from_pem(&std::fs::read(tls.join("ca.pem")).unwrap()).unwrap();
    let ca_key = PKey::private_key_from_pem(&std::fs::read(tls.join("ca.key")).unwrap()).unwrap();
    let key = PKey::from_ec_key(
        openssl::ec::EcKey::generate(
            &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "admin").unwrap();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name.build()).unwrap();
    b.set_issuer_name(ca.subject_name()).unwrap();
    b.set_pubkey(&key).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    b.set_not_before(&Asn1Time::from_unix(now - 10 * 86_400).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix(now - 86_400).unwrap())
        .unwrap();
    b.append_extension(
        openssl::x509::extension::ExtendedKeyUsage::new()
            .client_auth()
            .build()
            .unwrap(),
    )
    .unwrap();
    b.sign(&ca_key, openssl::hash::MessageDigest::sha256())
        .unwrap();
    std::fs::write(tls.join("expired.pem"), b.build().to_pem().unwrap()).unwrap();
    std::fs::write(
        tls.join("expired.key"),
        key.private_key_to_pem_pkcs8().unwrap(),
    )
    .unwrap();
}
