//! kmip-bench, tls-echo and redb-ceiling work: every workload runs for a moment against a
//! real server and reports operations with no errors. The measurements themselves are made
//! by scripts/bench.sh (BENCHMARKS.md), not in CI.

use interop_tests::{free_port, ServerProcess};
use std::process::Command;

fn bin(name: &str) -> std::path::PathBuf {
    ServerProcess::binary().with_file_name(name)
}

fn bench(server: &ServerProcess, port: u16, workload: &str, extra: &[&str]) -> serde_json::Value {
    let out = Command::new(bin("kmip-bench"))
        .arg("--data-dir")
        .arg(server.data_dir.path())
        .args([
            "--server",
            &format!("localhost:{port}"),
            "--workload",
            workload,
            "--connections",
            "2",
        ])
        .args(["--duration", "0.4", "--warmup", "0.1", "--json"])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{workload}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap()
}

#[test]
fn every_workload_runs() {
    let server = ServerProcess::start(&[]);
    let pid = server.pid().to_string();
    for w in [
        "get",
        "create",
        "encrypt",
        "sign-rsa",
        "sign-ecdsa",
        "batch-get",
        "mongodb",
        "vsphere",
    ] {
        let r = bench(&server, server.port, w, &["--server-pid", &pid]);
        assert!(r["operations"].as_u64().unwrap() > 0, "{w}: {r}");
        assert_eq!(r["errors"], 0, "{w}: {r}");
        assert!(r["server_cpu_us_per_op"].as_f64().is_some(), "{w}: {r}");
        assert!(r["client_cpu_us_per_op"].as_f64().is_some(), "{w}: {r}");
    }
    let r = bench(&server, server.port, "locate", &["--objects", "300"]);
    assert!(r["operations"].as_u64().unwrap() > 0, "{r}");
    // an unknown workload is refused, not run
    let out = Command::new(bin("kmip-bench"))
        .arg("--data-dir")
        .arg(server.data_dir.path())
        .args(["--server", &format!("localhost:{}", server.port)])
        .args(["--workload", "teleport"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn the_ceilings_run() {
    let server = ServerProcess::start(&[]);
    let port = free_port();
    let mut echo = Command::new(bin("tls-echo"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(server.data_dir.path())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "tls-echo did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let r = bench(&server, port, "echo", &[]);
    let _ = echo.kill();
    let _ = echo.wait();
    assert!(r["operations"].as_u64().unwrap() > 0, "{r}");
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin("redb-ceiling"))
        .arg("0.3")
        .arg(dir.path())
        .output()
        .unwrap();
    let v: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    assert!(v["ops_per_second"].as_f64().unwrap() > 0.0, "{v}");
}
