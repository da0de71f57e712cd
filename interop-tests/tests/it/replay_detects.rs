//! The replayer can fail: `kmip-replay` pointed at a server with a known defect (here a TLS
//! proxy in front of a real server that answers every error with the wrong Result Reason)
//! reports the file as failed and names the difference; pointed at the server itself, the same
//! file passes.

use interop_tests::testcases;
use interop_tests::ServerProcess;
use kmip_codec::vocab::enums::result_reason as rr;
use kmip_codec::vocab::tag;
use kmip_codec::{Limits, Ttlv, Value};
use std::io::{Read, Write};
use std::process::Command;

/// One TTLV message from `s`: the 8-byte tag-type-length head, then the value.
fn read_message(s: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut m = vec![0u8; 8];
    s.read_exact(&mut m)?;
    let len = u32::from_be_bytes(m[4..8].try_into().unwrap()) as usize;
    m.resize(8 + len, 0);
    s.read_exact(&mut m[8..])?;
    Ok(m)
}

/// The defect: every Result Reason becomes Item Not Found.
fn break_reasons(t: &mut Ttlv) {
    if t.tag == tag::RESULT_REASON {
        t.value = Value::Enumeration(rr::ITEM_NOT_FOUND);
    }
    for c in t.children_mut().into_iter().flatten() {
        break_reasons(c);
    }
}

/// A proxy on a port of its own, relaying each client connection to `server` as `admin`.
fn defective_proxy(server: &ServerProcess) -> u16 {
    let d = server.tls_dir();
    let acceptor = kmip_server::listener::acceptor(
        &d.join("server.pem"),
        &d.join("server.key"),
        &d.join("ca.pem"),
    )
    .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let upstream: Vec<_> = (0..4)
        .map(|_| server.tls_stream("admin").unwrap())
        .collect();
    std::thread::spawn(move || {
        for (tcp, mut up) in listener.incoming().zip(upstream) {
            let Ok(mut client) = acceptor.accept(tcp.unwrap()) else {
                continue;
            };
            while let Ok(request) = read_message(&mut client) {
                up.write_all(&request).unwrap();
                let response = read_message(&mut up).unwrap();
                let (mut tree, _) = kmip_codec::decode(&response, &Limits::default()).unwrap();
                break_reasons(&mut tree);
                client.write_all(&kmip_codec::encode(&tree)).unwrap();
            }
        }
    });
    port
}

fn replay(server: &ServerProcess, port: u16, file: &std::path::Path) -> (bool, String) {
    let d = server.tls_dir();
    let out = Command::new(env!("CARGO_BIN_EXE_kmip-replay"))
        .args(["--host", "localhost", "--port", &port.to_string()])
        .arg("--ca")
        .arg(d.join("ca.pem"))
        .arg("--cert")
        .arg(d.join("admin.pem"))
        .arg("--key")
        .arg(d.join("admin.key"))
        .arg(file)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn the_replayer_reports_a_wrong_result_reason() {
    // Get of a destroyed object answers Object Not Found, among others
    let file = testcases::dir().join("v2.1/mandatory/BL-M-4-21.xml");
    let server = ServerProcess::start(&["--interop"]);
    let (ok, out) = replay(&server, server.port, &file);
    assert!(ok && out.contains("1 passed, 0 failed"), "{out}");

    let server = ServerProcess::start(&["--interop"]);
    let proxy = defective_proxy(&server);
    let (ok, out) = replay(&server, proxy, &file);
    assert!(!ok, "{out}");
    assert!(out.contains("0 passed, 1 failed"), "{out}");
    assert!(
        out.contains("FAIL") && out.contains("ResultReason") && out.contains("ObjectNotFound"),
        "names the file, the path and the difference: {out}"
    );
    println!("{out}");
}
