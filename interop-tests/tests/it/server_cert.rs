//! The generated server certificate: `--tls-san` names, `renew-server-cert` under the same
//! CA (checked with the real `openssl verify`), a lost certificate issued again under that
//! CA, and the warning at start when it expires within 30 days.

use interop_tests::ca::{openssl, openssl_ok};
use interop_tests::ServerProcess;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn renew(data_dir: &Path, args: &[&str]) -> String {
    let out = Command::new(ServerProcess::binary())
        .arg("renew-server-cert")
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .output()
        .expect("run kmip-server renew-server-cert");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    text
}

fn sans(tls: &Path) -> String {
    openssl_ok(
        tls,
        &[
            "x509",
            "-in",
            "server.pem",
            "-noout",
            "-ext",
            "subjectAltName",
        ],
    )
}

fn serial(tls: &Path) -> String {
    openssl_ok(tls, &["x509", "-in", "server.pem", "-noout", "-serial"])
}

fn verify(tls: &Path) {
    let out = openssl_ok(tls, &["verify", "-CAfile", "ca.pem", "server.pem"]);
    assert!(out.contains("server.pem: OK"), "{out}");
}

#[test]
fn renewal_keeps_the_ca_and_adds_names() {
    let server = ServerProcess::start(&["--tls-san", "kmip.example.com", "--tls-san", "10.1.2.3"]);
    let tls = server.tls_dir();
    let names = sans(&tls);
    assert!(names.contains("DNS:kmip.example.com"), "{names}");
    assert!(names.contains("IP Address:10.1.2.3"), "{names}");
    assert!(names.contains("DNS:localhost"), "{names}");
    verify(&tls);
    let ca = std::fs::read(tls.join("ca.pem")).unwrap();
    let ca_key = std::fs::read(tls.join("ca.key")).unwrap();
    let admin = std::fs::read(tls.join("admin.pem")).unwrap();
    let before = serial(&tls);

    // while the server runs
    let printed = renew(server.data_dir.path(), &["--tls-san", "extra.example.org"]);
    assert!(printed.contains("extra.example.org"), "{printed}");
    assert_eq!(
        std::fs::read(tls.join("ca.pem")).unwrap(),
        ca,
        "the CA stays"
    );
    assert_eq!(std::fs::read(tls.join("ca.key")).unwrap(), ca_key);
    assert_eq!(std::fs::read(tls.join("admin.pem")).unwrap(), admin);
    assert_ne!(serial(&tls), before, "a new certificate");
    verify(&tls);
    let names = sans(&tls);
    for n in [
        "DNS:kmip.example.com",
        "IP Address:10.1.2.3",
        "DNS:extra.example.org",
    ] {
        assert!(names.contains(n), "{n} kept or added: {names}");
    }
    // SIGHUP: new connections get the renewed certificate, the clients' identities still work
    let renewed = openssl::x509::X509::from_pem(&std::fs::read(tls.join("server.pem")).unwrap())
        .unwrap()
        .to_der()
        .unwrap();
    server.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = server.tls_stream("admin").unwrap();
        let presented = s.ssl().peer_certificate().unwrap().to_der().unwrap();
        if presented == renewed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the renewed certificate was never served"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(server.serves("admin"));

    // a name that is not one is refused, naming the option
    let out = Command::new(ServerProcess::binary())
        .args(["renew-server-cert", "--tls-san", "not a name", "--data-dir"])
        .arg(server.data_dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--tls-san"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_lost_server_certificate_is_issued_again_under_the_same_ca() {
    let server = ServerProcess::start(&[]);
    let ca = std::fs::read(server.tls_dir().join("ca.pem")).unwrap();
    let dir = server.stop();
    std::fs::remove_file(dir.path().join("tls/server.pem")).unwrap();
    let server = ServerProcess::try_start_in(dir, &[])
        .unwrap_or_else(|(_, log)| panic!("did not start: {log}"));
    assert_eq!(std::fs::read(server.tls_dir().join("ca.pem")).unwrap(), ca);
    verify(&server.tls_dir());
    assert!(server.serves("admin"), "the clients' identities still work");
    assert!(server.log().contains("existing CA"), "{}", server.log());
}

#[test]
fn a_server_certificate_expiring_within_30_days_is_warned_about() {
    let server = ServerProcess::start(&[]);
    assert!(!server.log().contains("expires soon"), "{}", server.log());
    let dir = server.stop();
    let tls = dir.path().join("tls");
    // a 10-day certificate from the same CA and key, made by openssl
    std::fs::write(
        tls.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n\
         keyUsage=critical,digitalSignature,keyAgreement\nbasicConstraints=critical,CA:FALSE\n",
    )
    .unwrap();
    openssl_ok(
        &tls,
        &[
            "req",
            "-new",
            "-key",
            "server.key",
            "-subj",
            "/CN=kmip-server",
            "-out",
            "s.csr",
        ],
    );
    let out = openssl(
        &tls,
        &[
            "x509",
            "-req",
            "-in",
            "s.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "10",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.pem",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let server = ServerProcess::try_start_in(dir, &[])
        .unwrap_or_else(|(_, log)| panic!("did not start: {log}"));
    assert!(server.serves("admin"));
    // without the terminal colours the log may carry
    let log: String = server
        .log()
        .split('\x1b')
        .map(|part| match part.strip_prefix('[') {
            Some(rest) => rest.split_once('m').map_or(rest, |(_, after)| after),
            None => part,
        })
        .collect();
    assert!(log.contains("expires soon"), "{log}");
    assert!(log.contains("days=9") || log.contains("days=10"), "{log}");
    // renewed: no warning at the next start
    let dir = server.stop();
    renew(dir.path(), &[]);
    let server = ServerProcess::try_start_in(dir, &[])
        .unwrap_or_else(|(_, log)| panic!("did not start: {log}"));
    assert!(!server.log().contains("expires soon"), "{}", server.log());
    verify(&server.tls_dir());
}
