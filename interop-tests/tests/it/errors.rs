//! Errors that help: a refused TLS handshake is logged with OpenSSL's reason and the subject and
//! issuer of the certificate the client presented; certificate and key files that do not load
//! are named with their option, without OpenSSL's error stack; data directory errors name the
//! path.

use interop_tests::certs::{certificate, new_key, write_identity, Kind};
use interop_tests::ServerProcess;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// `kmip-server` started with these flags on a fresh data directory, expected to exit.
fn refused_start(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(ServerProcess::binary())
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .output()
        .expect("run kmip-server")
}

#[test]
fn certificate_and_key_errors_name_the_option_and_the_file() {
    let pki = tempfile::tempdir().unwrap();
    let paths = kmip_server::pki::Paths::new(pki.path());
    kmip_server::pki::ensure(&paths).unwrap();
    let (cert, key, ca) = (paths.server_cert(), paths.server_key(), paths.ca_cert());
    let garbage = pki.path().join("garbage.key");
    std::fs::write(&garbage, "this is not a key\n").unwrap();
    let missing = pki.path().join("missing.pem");
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    let data = tempfile::tempdir().unwrap();
    for (cert, key, option, file, says) in [
        (s(&cert), s(&garbage), "--tls-key", s(&garbage), "not PEM"),
        (
            s(&missing),
            s(&key),
            "--tls-cert",
            s(&missing),
            "No such file",
        ),
        // another identity's key: a pair that does not match
        (
            s(&cert),
            s(&paths.client_key("admin")),
            "--tls-key",
            s(&paths.client_key("admin")),
            "does not match the certificate",
        ),
    ] {
        let o = refused_start(
            data.path(),
            &[
                "--tls-cert",
                &cert,
                "--tls-key",
                &key,
                "--client-ca",
                &s(&ca),
            ],
        );
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(&format!("{option} {file}: ")), "{err}");
        assert!(err.contains(says), "{err}");
        // OpenSSL's stack: "error:0A080009:SSL routines:...:crypto/pem/..."
        assert!(
            !err.contains("routines") && !err.contains("error:"),
            "{err}"
        );
    }
}

#[test]
fn data_directory_errors_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-directory");
    std::fs::write(&file, b"").unwrap();
    let o = refused_start(&file, &[]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("data directory {}", file.display())),
        "{err}"
    );
}

/// Wait (at most 10 s) for the server's log to hold a line with every one of `words`.
fn log_line(server: &ServerProcess, words: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = server.log();
        if let Some(l) = log.lines().find(|l| words.iter().all(|w| l.contains(w))) {
            return l.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no line with {words:?} in:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_refused_handshake_is_logged_with_the_reason_and_the_certificate() {
    let server = ServerProcess::start(&[]);
    // a client of a CA the server does not trust, its files beside the server's identities
    let evil_key = new_key();
    let evil = certificate("Evil CA", &evil_key, None, Kind::Ca);
    let eve_key = new_key();
    let eve = certificate("eve", &eve_key, Some((&evil, &evil_key)), Kind::Client);
    write_identity(&server.tls_dir(), "eve", &eve, &eve_key);
    assert!(!server.serves("eve"));
    let line = log_line(&server, &["client certificate refused", "CN=eve"]);
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("CN=Evil CA"), "the issuer: {line}");
    assert!(
        line.contains("unable to get local issuer certificate"),
        "the verification's reason: {line}"
    );

    // no certificate at all: OpenSSL's reason
    use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    b.set_ca_file(server.tls_dir().join("ca.pem")).unwrap();
    b.set_verify(SslVerifyMode::PEER);
    let tcp = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    if let Ok(mut s) = b.build().connect("localhost", tcp) {
        // TLS 1.3: the refusal arrives after the client's side of the handshake
        let _ = std::io::Read::read(&mut s, &mut [0u8; 1]);
    }
    let line = log_line(
        &server,
        &["TLS handshake failed", "peer did not return a certificate"],
    );
    assert!(line.contains("WARN"), "{line}");
    assert!(!line.contains("routines"), "{line}");

    // a port probe that opens and closes is no failed handshake worth a warning
    let warnings = |log: &str| log.lines().filter(|l| l.contains("WARN")).count();
    let before = warnings(&server.log());
    drop(std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap());
    std::thread::sleep(Duration::from_millis(300));
    assert!(server.serves("admin"));
    assert_eq!(warnings(&server.log()), before, "{}", server.log());
}

#[test]
fn a_store_another_server_holds_is_named() {
    let server = ServerProcess::start(&[]);
    let o = Command::new(ServerProcess::binary())
        .arg("--data-dir")
        .arg(server.data_dir.path())
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    let store = server.data_dir.path().join("kmip.redb");
    assert!(
        err.contains(&format!("store {}: ", store.display())),
        "{err}"
    );
}
