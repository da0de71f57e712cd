//! Connection floods and revocable client certificates, against a running server:
//!
//! - 10,000 plain TCP connections that never start TLS, from one loopback address and then
//!   from 100, while a mutual-TLS client connects and is served (the latency it sees is
//!   printed); the server holds at most its handshake budget of them;
//! - a connection that says nothing, or stalls in its ClientHello, is closed at the handshake
//!   deadline, well before the read timeout;
//! - out of file descriptors, the accept loop backs off instead of spinning, and serves again
//!   once descriptors are free;
//! - `--client-crl`: a revoked device is refused, an expired CRL refuses (or warns, by
//!   configuration);
//! - SIGHUP reloads the CRLs, the server certificate and key, and the client CAs, without
//!   dropping an established connection; a reload that fails keeps the settings in force.
//!
//! New settings are given in environment variables, which an earlier server ignores rather
//! than refusing to start: run against it (`KMIP_SERVER_BINARY=...`), each test fails on what
//! it tests.

use interop_tests::certs::{certificate, new_key, write_identity, Kind};
use interop_tests::ServerProcess;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::x509::X509;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// floods

/// Raise this process's open-file limit to at least `need` (up to the hard limit).
fn raise_nofile(need: u64) {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("/proc/self/limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("open files limit");
    let mut f = line.split_whitespace().skip(3);
    let soft: u64 = f.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    let hard = f.next().unwrap_or("0").to_owned();
    if soft >= need {
        return;
    }
    let st = Command::new("prlimit")
        .args(["--pid", &std::process::id().to_string()])
        .arg(format!("--nofile={hard}:{hard}"))
        .status()
        .expect("prlimit (util-linux)");
    assert!(st.success(), "prlimit --nofile={hard}");
    let hard: u64 = hard.parse().unwrap_or(u64::MAX);
    assert!(
        hard >= need,
        "this test needs {need} open files; the hard limit is {hard}"
    );
}

/// `count` TCP connections to the server, spread round-robin over the source `addresses`,
/// that send `hello` (nothing, or the start of a ClientHello) and then nothing more.
fn flood(port: u16, addresses: &[Ipv4Addr], count: usize, hello: &[u8]) -> Vec<TcpStream> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut out = Vec::with_capacity(count);
        for i in 0..count {
            let s = tokio::net::TcpSocket::new_v4().expect("socket");
            s.bind(SocketAddr::from((addresses[i % addresses.len()], 0)))
                .expect("bind a loopback source address");
            let dst = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            if let Ok(c) = s.connect(dst).await {
                let c = c.into_std().expect("std stream");
                if !hello.is_empty() {
                    c.set_nonblocking(false).expect("blocking");
                    let _ = (&c).write_all(hello);
                }
                c.set_nonblocking(true).expect("non-blocking");
                out.push(c);
            }
        }
        out
    })
}

/// How many of `conns` the server still holds open (not closed from its side).
fn held(conns: &[TcpStream]) -> usize {
    conns
        .iter()
        .filter(|c| {
            let mut b = [0u8; 64];
            matches!((&**c).read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        })
        .count()
}

/// The time a fresh mutual-TLS client takes to connect and have a Query answered, `n` times:
/// (median, maximum). Every one must be served.
fn fresh_client_latency(server: &ServerProcess, n: usize) -> (Duration, Duration) {
    let mut t: Vec<Duration> = (0..n)
        .map(|i| {
            let t0 = Instant::now();
            assert!(
                server.serves("admin"),
                "client {i} was not served during the flood"
            );
            t0.elapsed()
        })
        .collect();
    t.sort();
    (t[n / 2], t[n - 1])
}

/// One identity holding its share of the connection slots (`--max-connections-per-identity`)
/// is refused more, while another identity is still served; a closed connection's slot is
/// its again. Without the share, one certificate opening `--max-connections` idle
/// connections locked every other client out.
#[test]
fn one_identity_cannot_take_every_connection_slot() {
    let server = ServerProcess::start_with_env(
        &["--max-connections", "4"],
        &[("KMIP_MAX_CONNECTIONS_PER_IDENTITY", "2")],
    );
    server.issue_client_cert("eve");
    server.issue_client_cert("alice");
    let query = |c: &mut kmip_client::Client| {
        c.call(
            kmip_codec::vocab::enums::operation::QUERY,
            kmip_codec::Ttlv::structure(kmip_codec::vocab::tag::REQUEST_PAYLOAD, vec![]),
        )
        .is_ok()
    };
    let mut eve: Vec<kmip_client::Client> = (0..2).map(|_| server.client("eve")).collect();
    assert!(eve.iter_mut().all(query), "eve's share is served");
    assert!(
        !server.serves("eve"),
        "a third connection of eve's was served"
    );
    assert!(server.serves("alice"), "another identity is locked out");
    eve.pop();
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        server.serves("eve"),
        "a closed connection's slot is not eve's again"
    );
}

/// `count` TLS handshakes from the `addresses`, each stopped after the client's first flight
/// (the ClientHello): the server has answered it and waits for the client's certificate.
fn mid_handshakes(
    server: &ServerProcess,
    addresses: &[Ipv4Addr],
    count: usize,
) -> Vec<openssl::ssl::MidHandshakeSslStream<TcpStream>> {
    use openssl::ssl::{HandshakeError, SslConnector, SslFiletype, SslMethod};
    let d = server.tls_dir();
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    b.set_ca_file(d.join("ca.pem")).unwrap();
    b.set_certificate_file(d.join("admin.pem"), SslFiletype::PEM)
        .unwrap();
    b.set_private_key_file(d.join("admin.key"), SslFiletype::PEM)
        .unwrap();
    let connector = b.build();
    flood(server.port, addresses, count, b"")
        .into_iter()
        .filter_map(|tcp| {
            let ssl = connector
                .configure()
                .unwrap()
                .into_ssl("localhost")
                .unwrap();
            match ssl.connect(tcp) {
                Err(HandshakeError::WouldBlock(mid)) => Some(mid),
                _ => None,
            }
        })
        .collect()
}

/// A TLS record header announcing a 512-byte ClientHello, and its first bytes: OpenSSL has
/// its state for the connection and waits for the rest.
const STALLED_HELLO: &[u8] = &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03];

#[test]
fn a_flood_of_silent_connections_does_not_lock_out_clients() {
    raise_nofile(10_500);
    // the deadline is long here so that the budget alone is what keeps clients served (an
    // earlier server, whose listen backlog of 128 makes the flood take half a minute, would
    // otherwise have timed the first connections out by the time the client comes)
    let server = ServerProcess::start_with_env(
        &["--read-timeout-secs", "120"],
        &[("KMIP_HANDSHAKE_TIMEOUT", "120")],
    );
    let (base_median, base_max) = fresh_client_latency(&server, 10);
    let mut steady = server.client("admin");
    let rss_idle = server.rss_kib();

    // 10,000 from 100 source addresses: the server holds its total budget (2,048) of them
    let many: Vec<Ipv4Addr> = (1..=100).map(|i| Ipv4Addr::new(127, 0, 1, i)).collect();
    let t0 = Instant::now();
    let conns = flood(server.port, &many, 10_000, b"");
    let opened = t0.elapsed();
    assert_eq!(conns.len(), 10_000, "connections opened");
    std::thread::sleep(Duration::from_millis(500));
    let (median, max) = fresh_client_latency(&server, 20);
    let t0 = Instant::now();
    steady
        .call(
            kmip_codec::vocab::enums::operation::QUERY,
            kmip_codec::Ttlv::structure(kmip_codec::vocab::tag::REQUEST_PAYLOAD, vec![]),
        )
        .expect("an established client is served during the flood");
    let established = t0.elapsed();
    let held_many = held(&conns);
    let rss_many = server.rss_kib();
    println!(
        "10,000 silent connections from 100 addresses opened in {opened:?}; the server holds {held_many}, \
         resident {} MiB (idle {} MiB); fresh client connect+Query: median {median:?}, max {max:?} \
         (before the flood {base_median:?}, {base_max:?}); Query on an established connection {established:?}",
        rss_many / 1024,
        rss_idle / 1024
    );
    assert!(
        (2_000..=2_048).contains(&held_many),
        "the server holds its handshake budget, {held_many}"
    );
    assert!(max < Duration::from_secs(5), "a client waited {max:?}");
    drop(conns);

    let per_silent = rss_many.saturating_sub(rss_idle) * 1024 / held_many.max(1) as u64;
    println!("server memory per silent pending connection: {per_silent} bytes");

    // 10,000 from 127.0.0.1 alone: the server holds its per-address budget (64) of them, and
    // a client from the same address still gets through
    std::thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    let conns = flood(server.port, &[Ipv4Addr::LOCALHOST], 10_000, b"");
    let opened = t0.elapsed();
    assert_eq!(conns.len(), 10_000, "connections opened");
    std::thread::sleep(Duration::from_millis(500));
    let (median, max) = fresh_client_latency(&server, 20);
    let held_one = held(&conns);
    println!(
        "10,000 silent connections from 127.0.0.1 opened in {opened:?}; the server holds {held_one}; \
         fresh client connect+Query: median {median:?}, max {max:?}"
    );
    assert!(
        held_one <= 64,
        "the server holds {held_one} from one address"
    );
    assert!(max < Duration::from_secs(5), "a client waited {max:?}");
    drop(conns);
    assert!(server.serves("admin"));
}

/// The server's resident memory per connection while `open` holds `count` of them.
fn memory_per_connection<T>(
    server: &ServerProcess,
    count: usize,
    open: impl FnOnce() -> Vec<T>,
) -> u64 {
    std::thread::sleep(Duration::from_millis(300));
    let before = server.rss_kib();
    let conns = open();
    let n = conns.len();
    assert!(n >= count * 9 / 10, "{n} of {count} connections opened");
    std::thread::sleep(Duration::from_millis(700));
    let after = server.rss_kib();
    drop(conns);
    after.saturating_sub(before) * 1024 / n as u64
}

/// What a pending handshake costs the server, for the bound in RELIABILITY.md: silent, stalled
/// inside its ClientHello (OpenSSL has its state), and waiting for the client's certificate
/// after the server's answer (the largest state a handshake reaches). Each kind of state on a
/// fresh server, so that memory freed by one is not counted again for the next.
#[test]
fn what_a_pending_handshake_costs() {
    let env = [("KMIP_HANDSHAKE_TIMEOUT", "30")];
    let args = ["--read-timeout-secs", "30"];
    let many: Vec<Ipv4Addr> = (1..=100).map(|i| Ipv4Addr::new(127, 0, 1, i)).collect();
    let server = ServerProcess::start_with_env(&args, &env);
    let silent = memory_per_connection(&server, 2_000, || flood(server.port, &many, 2_000, b""));
    let stalled = memory_per_connection(&server, 2_000, || {
        flood(server.port, &many, 2_000, STALLED_HELLO)
    });
    drop(server);
    let server = ServerProcess::start_with_env(&args, &env);
    let mid = memory_per_connection(&server, 1_000, || mid_handshakes(&server, &many, 1_000));
    println!(
        "server memory per pending handshake: silent {silent} bytes, stalled in its ClientHello \
         {stalled} bytes, waiting for the client's certificate {mid} bytes"
    );
    assert!(
        silent < 8 * 1024,
        "a silent connection costs {silent} bytes"
    );
    for cost in [stalled, mid] {
        assert!(cost < 128 * 1024, "a pending handshake costs {cost} bytes");
    }
}

#[test]
fn a_silent_or_stalled_connection_is_closed_at_the_handshake_deadline() {
    // defaults: handshake deadline 5 s, read timeout 10 s
    let server = ServerProcess::start_with_env(&[], &[]);
    let wait_for_close = |hello: &[u8]| {
        let mut c = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        c.write_all(hello).unwrap();
        let t0 = Instant::now();
        let mut b = [0u8; 64];
        let _ = c.read(&mut b);
        t0.elapsed()
    };
    let (silent, stalled) = std::thread::scope(|s| {
        let a = s.spawn(|| wait_for_close(b""));
        let b = s.spawn(|| wait_for_close(STALLED_HELLO));
        (a.join().unwrap(), b.join().unwrap())
    });
    println!("closed after: silent {silent:?}, stalled ClientHello {stalled:?}");
    for t in [silent, stalled] {
        assert!(
            t >= Duration::from_secs(4) && t < Duration::from_millis(7_500),
            "closed after {t:?}, not at the 5 s handshake deadline"
        );
    }
}

/// User and system CPU time of a process so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    let fields: Vec<&str> = stat[stat.rfind(')').expect("comm") + 2..]
        .split_whitespace()
        .collect();
    // fields 14 and 15 of stat(5), counted from the state (field 3)
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let hz: u64 = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100);
    Duration::from_millis(ticks * 1000 / hz)
}

#[test]
fn out_of_descriptors_the_accept_loop_backs_off() {
    let mut server = ServerProcess::start_with_env(
        &["--read-timeout-secs", "30"],
        &[("KMIP_HANDSHAKE_TIMEOUT", "30")],
    );
    assert!(server.serves("admin"));
    // a few dozen descriptors: the connections below use them up
    let st = Command::new("prlimit")
        .args(["--pid", &server.pid().to_string(), "--nofile=48:"])
        .status()
        .expect("prlimit (util-linux)");
    assert!(st.success());
    let conns: Vec<TcpStream> = (0..120)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", server.port)).ok())
        .collect();
    assert!(conns.len() >= 100, "{} connections", conns.len());
    std::thread::sleep(Duration::from_millis(500));
    let (c0, t0) = (cpu_time(server.pid()), Instant::now());
    std::thread::sleep(Duration::from_secs(3));
    let (cpu, wall) = (cpu_time(server.pid()) - c0, t0.elapsed());
    println!("server CPU while accept fails: {cpu:?} in {wall:?}");
    assert!(
        server.exited().is_none(),
        "the server exited: {}",
        server.log()
    );
    assert!(
        cpu < wall / 10,
        "the accept loop spins: {cpu:?} of CPU in {wall:?}"
    );
    assert!(
        server.log().contains("accept failed"),
        "the accept error is logged"
    );
    // descriptors free again: served within the longest pause (1 s)
    drop(conns);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.serves("admin") {
        assert!(
            Instant::now() < deadline,
            "not served after the flood: {}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

// ---------------------------------------------------------------------------------------------
// revocation and reload

/// A CA's revocation list, kept with `openssl ca` in a directory of its own.
struct Crls {
    dir: tempfile::TempDir,
}

impl Crls {
    fn new(ca_cert: &Path, ca_key: &Path) -> Crls {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.txt"), "").unwrap();
        std::fs::write(dir.path().join("crlnumber"), "1000\n").unwrap();
        std::fs::write(
            dir.path().join("ca.cnf"),
            format!(
                "[ca]\ndefault_ca = d\n[d]\ndatabase = {}\ncrlnumber = {}\ncertificate = {}\n\
                 private_key = {}\ndefault_md = sha256\ndefault_crl_days = 30\n",
                dir.path().join("index.txt").display(),
                dir.path().join("crlnumber").display(),
                ca_cert.display(),
                ca_key.display()
            ),
        )
        .unwrap();
        Crls { dir }
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .arg("ca")
            .arg("-config")
            .arg(self.dir.path().join("ca.cnf"))
            .args(args)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl ca {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn revoke(&self, cert: &Path) {
        self.openssl(&["-revoke", cert.to_str().unwrap()]);
    }

    /// A current CRL (30 days) written to `out`.
    fn write(&self, out: &Path) {
        self.openssl(&["-gencrl", "-out", out.to_str().unwrap()]);
    }

    /// A CRL whose nextUpdate was yesterday.
    fn write_expired(&self, out: &Path) {
        let at = |ago: &str| {
            let o = Command::new("date")
                .args(["-u", "-d", ago, "+%Y%m%d%H%M%SZ"])
                .output()
                .expect("date");
            String::from_utf8_lossy(&o.stdout).trim().to_owned()
        };
        let (last, next) = (at("-2 days"), at("-1 day"));
        self.openssl(&[
            "-gencrl",
            "-crl_lastupdate",
            &last,
            "-crl_nextupdate",
            &next,
            "-out",
            out.to_str().unwrap(),
        ]);
    }
}

/// A data directory with the server's generated PKI and client identities `names`.
fn data_dir_with(names: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let paths = kmip_server::pki::Paths::new(dir.path());
    kmip_server::pki::ensure(&paths).unwrap();
    for n in names {
        kmip_server::pki::client_cert(&paths, n, false).unwrap();
    }
    dir
}

fn start_in(dir: tempfile::TempDir, env: &[(&str, &str)]) -> ServerProcess {
    ServerProcess::try_start_in_with_env(dir, &[], env)
        .unwrap_or_else(|(_, log)| panic!("kmip-server did not start: {log}"))
}

#[test]
fn a_revoked_device_is_refused_and_an_expired_crl_refuses_by_default() {
    let dir = data_dir_with(&["device-1", "device-2"]);
    let tls = dir.path().join("tls");
    let crls = Crls::new(&tls.join("ca.pem"), &tls.join("ca.key"));
    crls.revoke(&tls.join("device-1.pem"));
    let (current, expired) = (tls.join("current.crl"), tls.join("expired.crl"));
    crls.write(&current);
    crls.write_expired(&expired);

    let server = start_in(dir, &[("KMIP_CLIENT_CRL", current.to_str().unwrap())]);
    assert!(!server.serves("device-1"), "a revoked device was served");
    assert!(server.serves("device-2"), "a device in good standing");
    assert!(server.serves("admin"));
    let dir = server.stop();

    // an expired CRL refuses every client of its CA by default...
    let server = start_in(dir, &[("KMIP_CLIENT_CRL", expired.to_str().unwrap())]);
    assert!(
        !server.serves("admin"),
        "a client was served on an expired CRL"
    );
    assert!(!server.serves("device-2"));
    assert!(
        server.log().contains("the CRL has expired"),
        "{}",
        server.log()
    );
    let dir = server.stop();

    // ...and with --crl-expired warn, serves those it does not revoke, and says so
    let server = start_in(
        dir,
        &[
            ("KMIP_CLIENT_CRL", expired.to_str().unwrap()),
            ("KMIP_CRL_EXPIRED", "warn"),
        ],
    );
    assert!(server.serves("admin"), "{}", server.log());
    assert!(server.serves("device-2"));
    assert!(!server.serves("device-1"), "a revoked device was served");
    assert!(server.log().contains("checked against an expired CRL"));
}

/// Send SIGHUP and wait for the server to say it reloaded (or failed to).
fn hangup(server: &mut ServerProcess) -> bool {
    let count = |log: &str| log.matches("SIGHUP: TLS").count();
    let before = count(&server.log());
    server.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(st) = server.exited() {
            panic!("SIGHUP ended the server ({st}): {}", server.log());
        }
        let log = server.log();
        if count(&log) > before {
            return log
                .lines()
                .rev()
                .find(|l| l.contains("SIGHUP: TLS"))
                .is_some_and(|l| l.contains("reloaded"));
        }
        assert!(
            Instant::now() < deadline,
            "no word of the reload: {}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn server_fingerprint(server: &ServerProcess) -> Vec<u8> {
    let s = server.tls_stream("admin").expect("TLS to the server");
    let cert = s.ssl().peer_certificate().expect("server certificate");
    cert.digest(MessageDigest::sha256()).unwrap().to_vec()
}

fn query(c: &mut kmip_client::Client) -> bool {
    c.call(
        kmip_codec::vocab::enums::operation::QUERY,
        kmip_codec::Ttlv::structure(kmip_codec::vocab::tag::REQUEST_PAYLOAD, vec![]),
    )
    .is_ok()
}

#[test]
fn sighup_reloads_crls_certificate_and_client_cas_without_dropping_connections() {
    let dir = data_dir_with(&["device-1", "device-2"]);
    let tls: PathBuf = dir.path().join("tls");
    let crls = Crls::new(&tls.join("ca.pem"), &tls.join("ca.key"));
    let crl = tls.join("clients.crl");
    crls.write(&crl);
    // a second CA, not trusted yet, with its (empty) CRL and a client "carol"
    let ca2_key = new_key();
    let ca2 = certificate("Second client CA", &ca2_key, None, Kind::Ca);
    let (ca2_pem, ca2_key_pem) = (tls.join("ca2.pem"), tls.join("ca2.key"));
    write_identity(&tls, "ca2", &ca2, &ca2_key);
    let crls2 = Crls::new(&ca2_pem, &ca2_key_pem);
    let crl2 = tls.join("second.crl");
    crls2.write(&crl2);
    let carol_key = new_key();
    let carol = certificate("carol", &carol_key, Some((&ca2, &ca2_key)), Kind::Client);
    write_identity(&tls, "carol", &carol, &carol_key);

    let crl_list = format!("{},{}", crl.display(), crl2.display());
    let mut server = start_in(dir, &[("KMIP_CLIENT_CRL", &crl_list)]);
    let mut established = server.client("admin");
    assert!(query(&mut established));
    assert!(server.serves("device-1"));
    assert!(!server.serves("carol"), "a client of an untrusted CA");

    // revoke device-1: refused after the reload, the others served, the open connection kept
    crls.revoke(&tls.join("device-1.pem"));
    crls.write(&crl);
    assert!(
        server.serves("device-1"),
        "nothing changes before the reload"
    );
    assert!(hangup(&mut server), "reloaded: {}", server.log());
    assert!(!server.serves("device-1"), "a revoked device after SIGHUP");
    assert!(server.serves("device-2"));
    assert!(
        query(&mut established),
        "the established connection survived the reload"
    );

    // a new server certificate and key
    let before = server_fingerprint(&server);
    let ca = X509::from_pem(&std::fs::read(tls.join("ca.pem")).unwrap()).unwrap();
    let ca_key = PKey::private_key_from_pem(&std::fs::read(tls.join("ca.key")).unwrap()).unwrap();
    let server_key = new_key();
    let server_cert = certificate(
        "kmip-server",
        &server_key,
        Some((&ca, &ca_key)),
        Kind::Server,
    );
    write_identity(&tls, "server", &server_cert, &server_key);
    assert_eq!(server_fingerprint(&server), before);
    assert!(hangup(&mut server));
    let after = server_fingerprint(&server);
    assert_eq!(
        after,
        server_cert
            .digest(MessageDigest::sha256())
            .unwrap()
            .to_vec(),
        "the new certificate is presented"
    );
    assert!(query(&mut established));

    // a second client CA joins
    let mut cas = std::fs::read(tls.join("ca.pem")).unwrap();
    cas.extend(std::fs::read(&ca2_pem).unwrap());
    std::fs::write(tls.join("ca.pem"), cas).unwrap();
    assert!(hangup(&mut server));
    assert!(server.serves("carol"), "a client of the new CA");
    assert!(server.serves("admin"));
    assert!(query(&mut established));

    // a damaged CRL: the reload fails, said so, and the settings in force stay
    std::fs::write(&crl, "not a CRL\n").unwrap();
    assert!(!hangup(&mut server), "a damaged CRL was taken");
    assert!(server.log().contains("TLS reload failed"));
    assert!(!server.serves("device-1"), "the revocation stays in force");
    assert!(server.serves("device-2"));
    assert!(server.serves("carol"));
    assert!(query(&mut established));

    // a CRL in the client CA's name but signed by another key (one that would revoke no one)
    let fake_key = new_key();
    let fake = certificate("kmip-server CA", &fake_key, None, Kind::Ca);
    write_identity(&tls, "fake-ca", &fake, &fake_key);
    Crls::new(&tls.join("fake-ca.pem"), &tls.join("fake-ca.key")).write(&crl);
    assert!(!hangup(&mut server), "a forged CRL was taken");
    assert!(server.log().contains("does not verify"));
    assert!(!server.serves("device-1"), "the revocation stays in force");
    assert!(query(&mut established));
    assert!(server.exited().is_none());
}
