//! `--metrics-listen`: Prometheus metrics and health over plain HTTP, read by a real client
//! and checked with the Prometheus project's own OpenMetrics parser (Python
//! `prometheus_client`), against a real server that served real requests.

use interop_tests::kmip::*;
use interop_tests::{free_port, python, ServerProcess};
use std::io::{Read, Write};

fn http_get(port: u16, path: &str) -> (String, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    (
        head.lines().next().unwrap_or("").to_owned(),
        body.to_owned(),
    )
}

/// The value of the sample `name{labels}` (labels as the exposition writes them, sorted as
/// given), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[test]
fn metrics_and_health_are_served() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let server = ServerProcess::start(&["--metrics-listen", &listen]);
    let mut c = server.client("admin");
    let id = create_aes(&mut c, 256, vec![]);
    for _ in 0..3 {
        get_object(&mut c, &id, None).unwrap();
    }
    let missing = get_object(&mut c, "999999", None);
    assert!(missing.is_err());
    // a client whose handshake fails: no certificate
    {
        let mut raw = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        let _ = raw.write_all(b"\x16\x03\x01\x00\x05hello");
        let _ = raw.read(&mut [0u8; 64]);
    }
    // operation codes the server does not know share one label, however many a client sends
    for code in [0x0010_0000u32, 0x0010_0001, 0x0010_0002] {
        let r = c.call(
            code,
            kmip_codec::Ttlv::structure(kmip_codec::vocab::tag::REQUEST_PAYLOAD, vec![]),
        );
        assert!(r.is_err());
    }
    std::thread::sleep(std::time::Duration::from_millis(300));

    let (status, text) = http_get(port, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK", "{text}");
    let ok = |op: &str| {
        format!(r#"kmip_operations_total{{operation="{op}",result="Success",version="2.1"}}"#)
    };
    assert_eq!(sample(&text, &ok("Create")), Some(1.0), "{text}");
    assert_eq!(sample(&text, &ok("Get")), Some(3.0), "{text}");
    assert_eq!(
        sample(
            &text,
            r#"kmip_operations_total{operation="Get",result="ObjectNotFound",version="2.1"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"kmip_operation_duration_seconds_count{operation="Get"}"#
        ),
        Some(4.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"kmip_operations_total{operation="unknown",result="OperationNotSupported",version="2.1"}"#
        ),
        Some(3.0),
        "{text}"
    );
    assert!(!text.contains("operation=\"0x"), "{text}");
    // this test's client is still connected
    assert_eq!(sample(&text, "kmip_open_connections"), Some(1.0), "{text}");
    assert_eq!(
        sample(&text, r#"kmip_objects{object_type="SymmetricKey"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"kmip_objects{object_type="PrivateKey"}"#),
        Some(0.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            r#"kmip_refused_connections_total{reason="HandshakeFailed"}"#
        ) >= Some(1.0),
        "{text}"
    );
    assert!(
        sample(&text, "kmip_audit_write_duration_seconds_count") >= Some(5.0),
        "{text}"
    );
    // the Create committed (the Gets changed nothing after the first cleared Fresh)
    assert!(
        sample(&text, "kmip_store_commit_duration_seconds_count") >= Some(1.0),
        "{text}"
    );
    assert!(text.contains(r#"kmip_build_info{version=""#), "{text}");

    // the Prometheus project's own parser accepts the whole exposition
    let mut p = python()
        .args([
            "-c",
            "import sys\nfrom prometheus_client.openmetrics.parser import text_string_to_metric_families as p\nprint(sum(len(f.samples) for f in p(sys.stdin.read())))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    p.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = p.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples: usize = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(samples > 50, "{samples} samples");

    assert_eq!(
        http_get(port, "/healthz"),
        ("HTTP/1.1 200 OK".into(), "ok\n".into())
    );
    assert_eq!(
        http_get(port, "/readyz"),
        ("HTTP/1.1 200 OK".into(), "ready\n".into())
    );
    assert_eq!(http_get(port, "/nothing").0, "HTTP/1.1 404 Not Found");
    // idle connections cannot pile up on the metrics port, nor starve a probe: at most 8 wait
    // for their request, and a new one closes the oldest
    let mut idle: Vec<_> = (0..8)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(http_get(port, "/healthz").0, "HTTP/1.1 200 OK");
    let oldest = &mut idle[0];
    oldest
        .set_read_timeout(Some(std::time::Duration::from_secs(3)))
        .unwrap();
    let t = std::time::Instant::now();
    assert!(
        matches!(oldest.read(&mut [0u8; 16]), Ok(0)),
        "the oldest idle connection is closed, not left waiting"
    );
    assert!(t.elapsed() < std::time::Duration::from_secs(1));
    // a flood of idle connections while probes keep coming: every probe is answered
    let flood: Vec<_> = (0..40)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    for _ in 0..5 {
        assert_eq!(http_get(port, "/readyz").0, "HTTP/1.1 200 OK");
    }
    drop((idle, flood));
    // and nothing of it without the flag
    let quiet = ServerProcess::start(&[]);
    assert!(!quiet.log().contains("serving metrics"));
}
