//! First start and client identities: a server that cannot bind its port (or has a wrong
//! flag) creates nothing; the client instructions are printed once and kept in
//! `DATA_DIR/CLIENTS.txt`, with their command shell-quoted.

use interop_tests::ServerProcess;
use std::path::Path;
use std::process::{Command, Output};

fn run(data_dir: &Path, args: &[&str]) -> Output {
    interop_tests::kmip_server_command(data_dir, args)
}

fn text(o: &Output) -> String {
    interop_tests::output_text(o)
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_taken_port_creates_nothing() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["--listen", &addr]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("--listen"), "{}", text(&out));
    assert!(text(&out).contains("in use"), "{}", text(&out));
    assert_eq!(entries(dir.path()), Vec::<String>::new(), "nothing created");
    // a data directory that does not exist yet is not made either
    let absent = dir.path().join("new");
    let out = run(&absent, &["--listen", &addr]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(!absent.exists());
    // nor on a taken HTTPS port, the KMIP one free
    let free = format!("127.0.0.1:{}", interop_tests::free_port());
    let out = run(&absent, &["--listen", &free, "--https-listen", &addr]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("--https-listen"), "{}", text(&out));
    assert!(!absent.exists());
    // nor on a taken metrics port
    let out = run(&absent, &["--listen", &free, "--metrics-listen", &addr]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("--metrics-listen"), "{}", text(&out));
    assert!(!absent.exists());
}

#[test]
fn a_wrong_flag_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let free = format!("127.0.0.1:{}", interop_tests::free_port());
    let out = run(
        dir.path(),
        &["--listen", &free, "--policy", "db=NoSuchOperation"],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert_eq!(entries(dir.path()), Vec::<String>::new(), "nothing created");
}

#[test]
fn client_instructions_are_kept_in_the_data_directory() {
    // a path a shell would split, to show the printed command is quoted
    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("my kmip data");
    std::fs::create_dir(&data).unwrap();
    let dir = tempfile::TempDir::new_in(&data).unwrap();
    let server = ServerProcess::try_start_in(dir, &[])
        .unwrap_or_else(|(_, log)| panic!("did not start: {log}"));
    let clients = std::fs::read_to_string(server.data_dir.path().join("CLIENTS.txt")).unwrap();
    assert!(
        clients.contains(&format!("port={}", server.port)),
        "{clients}"
    );
    assert!(clients.contains("[server]"), "{clients}");
    let log = server.log();
    assert!(log.contains(&clients), "printed at first start: {log}");
    let command = clients
        .lines()
        .find_map(|l| l.strip_prefix("More client identities: "))
        .unwrap_or_else(|| panic!("{clients}"));
    // the shell reads the printed command back as the path it names
    let args = Command::new("sh")
        .arg("-c")
        .arg(format!("printf '%s\\n' {command}"))
        .output()
        .unwrap();
    let args: Vec<String> = String::from_utf8_lossy(&args.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    let canonical = std::fs::canonicalize(server.data_dir.path()).unwrap();
    assert_eq!(
        args.last().map(String::as_str),
        canonical.to_str(),
        "{command}"
    );
    // the files it names are the ones a client needs
    let ca = clients
        .lines()
        .find_map(|l| l.strip_prefix("ca_certs="))
        .unwrap();
    assert!(Path::new(ca).exists(), "{ca}");
}

#[test]
fn client_cert_issues_once_and_prints_a_client_configuration() {
    let server = ServerProcess::start(&[]);
    let dir = server.data_dir.path();
    let listen = format!("127.0.0.1:{}", server.port);
    let out = run(dir, &["--listen", &listen, "client-cert", "alice"]);
    assert!(out.status.success(), "{}", text(&out));
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    let tls = std::fs::canonicalize(server.tls_dir()).unwrap();
    for line in [
        "[server]".to_owned(),
        format!("port={}", server.port),
        format!("certfile={}", tls.join("alice.pem").display()),
        format!("keyfile={}", tls.join("alice.key").display()),
        format!("ca_certs={}", tls.join("ca.pem").display()),
    ] {
        assert!(printed.lines().any(|l| l == line), "{line} in {printed}");
    }
    assert!(server.serves("alice"));
    let first = std::fs::read(server.tls_dir().join("alice.pem")).unwrap();
    let first_key = std::fs::read(server.tls_dir().join("alice.key")).unwrap();

    // again: refused, the identity untouched
    let out = run(dir, &["client-cert", "alice"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("--force"), "{}", text(&out));
    assert_eq!(
        std::fs::read(server.tls_dir().join("alice.pem")).unwrap(),
        first
    );
    assert_eq!(
        std::fs::read(server.tls_dir().join("alice.key")).unwrap(),
        first_key
    );
    // the administrator's too
    let admin = std::fs::read(server.tls_dir().join("admin.pem")).unwrap();
    let out = run(dir, &["client-cert", "admin"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read(server.tls_dir().join("admin.pem")).unwrap(),
        admin
    );

    // with --force: a new certificate and key, served
    let out = run(dir, &["client-cert", "alice", "--force"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_ne!(
        std::fs::read(server.tls_dir().join("alice.pem")).unwrap(),
        first
    );
    assert_ne!(
        std::fs::read(server.tls_dir().join("alice.key")).unwrap(),
        first_key
    );
    assert!(server.serves("alice"));
}

#[test]
fn client_cert_refuses_names_that_are_not_plain() {
    let server = ServerProcess::start(&[]);
    let dir = server.data_dir.path();
    let before_tls = entries(&server.tls_dir());
    let before = entries(dir);
    let long = "x".repeat(65);
    for name in [
        "../evil",
        "a/b",
        "",
        ".hidden",
        "a b",
        "x;rm",
        "caf\u{e9}",
        &long,
        "ca",
        "server",
    ] {
        let out = run(dir, &["client-cert", name]);
        assert!(!out.status.success(), "{name:?}: {}", text(&out));
        assert!(
            text(&out).contains("name"),
            "{name:?} refused with a reason: {}",
            text(&out)
        );
    }
    // --force does not make a path of a name, nor give away the server's files
    for name in ["../evil", "server", "ca"] {
        let out = run(dir, &["client-cert", name, "--force"]);
        assert!(!out.status.success(), "{name:?}: {}", text(&out));
    }
    assert_eq!(entries(&server.tls_dir()), before_tls);
    assert_eq!(entries(dir), before);
    assert!(server.serves("admin"), "the server's certificate untouched");
    // the longest plain name is fine
    let out = run(dir, &["client-cert", &"x".repeat(64)]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(server.serves(&"x".repeat(64)));
}
