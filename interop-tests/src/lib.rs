//! Shared helpers for the interoperability tests: where the workspace is, and the Python
//! interpreter that has PyKMIP installed.
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod bench;
pub mod ca;
pub mod certs;
pub mod kmip;
pub mod pg;
pub mod replay;

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn workspace_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
}

/// The Python with PyKMIP: `$KMIP_PYTHON`, else the virtual environment that
/// `scripts/test.sh` creates in `target/pyvenv`. A missing interpreter fails the test that
/// needs it, with the command that creates it: these tests are never skipped silently.
pub fn python() -> Command {
    let path = std::env::var_os("KMIP_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_path("target/pyvenv/bin/python"));
    assert!(
        path.exists(),
        "{} not found: run scripts/test.sh (it creates the PyKMIP virtual environment) or set KMIP_PYTHON",
        path.display()
    );
    Command::new(path)
}

/// The OASIS KMIP test cases, kept in `interop-tests/testcases` (see its README) so that a
/// clone of the repository tests itself.
pub mod testcases {
    use std::path::{Path, PathBuf};

    /// `interop-tests/testcases`: `v1.4/` and `v2.1/`, each `mandatory/` and `optional/`.
    pub fn dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("testcases")
    }

    /// Every test-case file, v1.4 and v2.1, mandatory and optional, sorted.
    pub fn test_case_files() -> Vec<PathBuf> {
        let mut files = Vec::new();
        for v in ["v1.4", "v2.1"] {
            for kind in ["mandatory", "optional"] {
                let folder = dir().join(v).join(kind);
                let entries = std::fs::read_dir(&folder)
                    .unwrap_or_else(|e| panic!("{}: {e}", folder.display()));
                for e in entries {
                    let p = e.expect("directory entry").path();
                    if p.extension().is_some_and(|x| x == "xml") {
                        files.push(p);
                    }
                }
            }
        }
        files.sort();
        files
    }

    /// The test cases write `$NOW`, `$UNIQUE_IDENTIFIER_0`, `$IV_COUNTER_NONCE`... where a
    /// server decides the value. Bind each to a fixed value of the element's type: `$NOW` to
    /// 2026-01-01T00:00:00Z (offsets applied), byte strings to the hex of the placeholder's
    /// name, text strings left as they are.
    pub fn bind_placeholders(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(i) = rest.find("value=\"$") {
            let (before, after) = rest.split_at(i);
            out.push_str(before);
            let end = after[7..].find('"').expect("closed attribute") + 7;
            let placeholder = &after[7..end];
            let ty = before
                .rfind("type=\"")
                .map(|t| &before[t + 6..])
                .and_then(|t| t.split('"').next())
                .unwrap_or("");
            let bound = match ty {
                "DateTime" => {
                    let now = 1_767_225_600i64;
                    let delta: i64 = placeholder
                        .strip_prefix("$NOW")
                        .filter(|d| !d.is_empty())
                        .and_then(|d| d.parse().ok())
                        .unwrap_or(0);
                    kmip_codec::time::format_secs(now + delta)
                }
                "ByteString" => kmip_codec::text::hex(placeholder.as_bytes()),
                _ => placeholder.to_owned(),
            };
            out.push_str(&format!("value=\"{bound}\""));
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out
    }

    /// Every message of every test case, as trees.
    pub fn all_messages() -> Vec<(String, kmip_codec::Ttlv)> {
        let limits = kmip_codec::Limits::default();
        let mut out = Vec::new();
        for f in test_case_files() {
            let name = f
                .file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned();
            let src = bind_placeholders(&std::fs::read_to_string(&f).expect("readable test case"));
            let trees = kmip_codec::xml::from_xml_document(&src, &limits)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            out.extend(trees.into_iter().map(|t| (name.clone(), t)));
        }
        out
    }
}

/// Run a `kmip-server` command on `data_dir` to its end: `args` (a subcommand and its
/// options, or a server's flags) then `--data-dir`, a global option.
pub fn kmip_server_command(data_dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(ServerProcess::binary())
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run kmip-server")
}

/// The `kmip-admin` binary built with the tests (beside `kmip-server`).
pub fn kmip_admin() -> PathBuf {
    let bin = ServerProcess::binary().with_file_name("kmip-admin");
    assert!(
        bin.exists(),
        "{} not built: build the workspace first",
        bin.display()
    );
    bin
}

/// What a command printed, standard output then standard error.
pub fn output_text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A `kmip-server` process on a free loopback port with its own data directory, stopped when
/// dropped.
/// A port nothing listens on now (for a server about to start).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

pub struct ServerProcess {
    pub port: u16,
    pub data_dir: tempfile::TempDir,
    child: std::process::Child,
    // beside the data directory, not in it: a directory the server cannot write is a case
    // the tests make
    log: tempfile::NamedTempFile,
}

impl ServerProcess {
    /// The `kmip-server` binary built with the tests (same target directory).
    pub fn binary() -> PathBuf {
        let exe = std::env::current_exe().expect("test executable path");
        let dir = exe
            .parent()
            .and_then(|d| d.parent())
            .expect("target directory");
        let bin = dir.join("kmip-server");
        assert!(
            bin.exists(),
            "{} not built: build the workspace first",
            bin.display()
        );
        bin
    }

    pub fn start(extra_args: &[&str]) -> ServerProcess {
        let dir = tempfile::tempdir().expect("temporary directory");
        Self::try_start_in(dir, extra_args)
            .unwrap_or_else(|(_, log)| panic!("kmip-server did not start: {log}"))
    }

    /// Start on an existing data directory; `Err` gives the directory back with the log of a
    /// server that exited.
    pub fn try_start_in(
        data_dir: tempfile::TempDir,
        extra_args: &[&str],
    ) -> Result<ServerProcess, (tempfile::TempDir, String)> {
        Self::try_start_in_with_env(data_dir, extra_args, &[])
    }

    /// Send SIGTERM and wait (at most `timeout`) for the process to exit; its exit status.
    pub fn terminate(&mut self, timeout: std::time::Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        None
    }

    /// Stop the server and keep its data directory.
    pub fn stop(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = tempfile::tempdir().expect("temporary directory");
        std::mem::replace(&mut self.data_dir, dir)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn tls_dir(&self) -> PathBuf {
        self.data_dir.path().join("tls")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// A mutual-TLS stream to `port` as identity `name`, for bytes that are not (or not yet)
    /// a KMIP message: the KMIP port, or the HTTPS one.
    pub fn tls_stream_to(
        &self,
        port: u16,
        name: &str,
    ) -> std::io::Result<openssl::ssl::SslStream<std::net::TcpStream>> {
        use openssl::ssl::{SslConnector, SslFiletype, SslMethod};
        let d = self.tls_dir();
        let io = |e: openssl::error::ErrorStack| std::io::Error::other(e.to_string());
        let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(io)?;
        b.set_ca_file(d.join("ca.pem")).map_err(io)?;
        b.set_certificate_file(d.join(format!("{name}.pem")), SslFiletype::PEM)
            .map_err(io)?;
        b.set_private_key_file(d.join(format!("{name}.key")), SslFiletype::PEM)
            .map_err(io)?;
        let tcp = std::net::TcpStream::connect(("127.0.0.1", port))?;
        // a hang fails the test, a slow answer does not: on a loaded two-core CI machine one
        // answer of a sequential 12,000-request test once took over 30 s (cause not found)
        tcp.set_read_timeout(Some(std::time::Duration::from_secs(90)))?;
        b.build()
            .connect("localhost", tcp)
            .map_err(|e| std::io::Error::other(e.to_string()))
    }

    /// A raw mutual-TLS stream to the KMIP port as identity `name`.
    pub fn tls_stream(
        &self,
        name: &str,
    ) -> std::io::Result<openssl::ssl::SslStream<std::net::TcpStream>> {
        self.tls_stream_to(self.port, name)
    }

    /// The server's resident memory, in KiB, from /proc (Linux); 0 where there is none.
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }

    /// One HTTPS request to `port` as identity `name` (mutual TLS with its certificate), on a
    /// fresh connection: the status code, the Content-Type and the body of the answer. The
    /// Content-Length is added unless `request_head` has one.
    pub fn https(
        &self,
        port: u16,
        name: &str,
        request_head: &str,
        body: &[u8],
    ) -> std::io::Result<(u16, String, Vec<u8>)> {
        use std::io::{Read, Write};
        let mut s = self.tls_stream_to(port, name)?;
        s.get_ref()
            .set_read_timeout(Some(std::time::Duration::from_secs(20)))?;
        // a head that states its own Content-Length keeps it (to claim more than is sent)
        let length = if request_head.contains("Content-Length") {
            String::new()
        } else {
            format!("\r\nContent-Length: {}", body.len())
        };
        let mut req =
            format!("{request_head}\r\nHost: localhost{length}\r\nConnection: close\r\n\r\n")
                .into_bytes();
        req.extend_from_slice(body);
        s.write_all(&req)?;
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let end = out
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| std::io::Error::other("no HTTP answer"))?;
        let head = String::from_utf8_lossy(&out[..end]).to_string();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let content_type = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Type: "))
            .unwrap_or("")
            .to_owned();
        Ok((status, content_type, out[end + 4..].to_vec()))
    }

    /// A `pykmip.conf` section for identity `name` (whose certificate must exist).
    pub fn pykmip_section(&self, section: &str, name: &str) -> String {
        let d = self.tls_dir();
        format!(
            "[{section}]\nhost=127.0.0.1\nport={}\nca_certs={}\ncertfile={}\nkeyfile={}\n\
             cert_reqs=CERT_REQUIRED\nssl_version=PROTOCOL_SSLv23\ndo_handshake_on_connect=True\n\
             suppress_ragged_eofs=True\n",
            self.port,
            d.join("ca.pem").display(),
            d.join(format!("{name}.pem")).display(),
            d.join(format!("{name}.key")).display(),
        )
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProcess {
    /// Issue another client identity with `kmip-server client-cert NAME`.
    pub fn issue_client_cert(&self, name: &str) {
        let out = Command::new(Self::binary())
            .args(["client-cert", name, "--data-dir"])
            .arg(self.data_dir.path())
            .output()
            .expect("run kmip-server client-cert");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `kmip-server audit verify` on an audit file, with the keys (from the master key) and
    /// the chain head of the data directory it lies in: its output, for the status and the
    /// reason.
    pub fn verify_audit(file: &Path) -> std::process::Output {
        let dir = file.parent().expect("the audit file's directory");
        Self::verify_audit_dir(dir, &[file.to_str().expect("a UTF-8 path")])
    }

    /// `kmip-server audit verify --data-dir DIR ARGS...` (no file: the directory's own log,
    /// rotated files included): its output.
    pub fn verify_audit_dir(dir: &Path, args: &[&str]) -> std::process::Output {
        Command::new(Self::binary())
            .args(["audit", "verify", "--data-dir"])
            .arg(dir)
            .args(args)
            .output()
            .expect("run kmip-server audit verify")
    }

    /// The server's audit log is whole: every file, every MAC and signature, up to the chain
    /// head.
    pub fn assert_audit_chain(&self) {
        let out = Self::verify_audit_dir(self.data_dir.path(), &[]);
        assert!(
            out.status.success(),
            "the audit chain survived: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `kmip-admin ARGS` against this running server, with the data directory's identities
    /// (the administrator's unless ARGS say `--as NAME`): what it did, whatever its status.
    pub fn admin(&self, args: &[&str]) -> std::process::Output {
        Command::new(kmip_admin())
            .arg("--data-dir")
            .arg(self.data_dir.path())
            .arg("--server")
            .arg(format!("localhost:{}", self.port))
            .args(args)
            .output()
            .expect("run kmip-admin")
    }

    /// An administrative command (`grant`, `grants`, `trust-wrapping-key`, ...) of `kmip-admin`
    /// against this running server, expected to succeed: what it printed.
    pub fn admin_command(&self, args: &[&str]) -> String {
        let out = self.admin(args);
        assert!(
            out.status.success(),
            "kmip-admin {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The scrypt hash `kmip-server hash-password` makes of `password`, for --password.
    pub fn hash_password(password: &str) -> String {
        use std::io::Write;
        let mut child = Command::new(Self::binary())
            .arg("hash-password")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("run kmip-server hash-password");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(format!("{password}\n").as_bytes())
            .expect("write the password");
        let out = child.wait_with_output().expect("hash-password");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// A client connected as `name` (a certificate in the data directory).
    pub fn client(&self, name: &str) -> kmip_client::Client {
        let d = self.tls_dir();
        let (ca, cert, key) = (
            d.join("ca.pem"),
            d.join(format!("{name}.pem")),
            d.join(format!("{name}.key")),
        );
        kmip_client::Client::connect(
            "localhost",
            self.port,
            &kmip_client::Identity {
                ca: &ca,
                cert: Some(&cert),
                key: Some(&key),
            },
        )
        .expect("connect to kmip-server")
    }
}

impl ServerProcess {
    /// Start with environment variables as well as options. A server that does not know an
    /// option refuses to start, but ignores an environment variable it does not know, so a
    /// test that sets new settings this way runs against an earlier build too and fails for
    /// the right reason there. `KMIP_SERVER_BINARY` names another build of the server to run.
    pub fn start_with_env(extra_args: &[&str], env: &[(&str, &str)]) -> ServerProcess {
        let dir = tempfile::tempdir().expect("temporary directory");
        Self::try_start_in_with_env(dir, extra_args, env)
            .unwrap_or_else(|(_, log)| panic!("kmip-server did not start: {log}"))
    }

    /// `try_start_in` with environment variables, and `KMIP_SERVER_BINARY` if set.
    pub fn try_start_in_with_env(
        mut data_dir: tempfile::TempDir,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<ServerProcess, (tempfile::TempDir, String)> {
        // the free port may be taken before the server binds it (another test's thousands of
        // client connections use ephemeral ports): then another port, a few times
        for _ in 0..5 {
            match Self::start_once(data_dir, extra_args, env) {
                Err((dir, log)) if log.contains("Address already in use") => data_dir = dir,
                started => return started,
            }
        }
        Self::start_once(data_dir, extra_args, env)
    }

    fn start_once(
        data_dir: tempfile::TempDir,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<ServerProcess, (tempfile::TempDir, String)> {
        let port = free_port();
        let log = tempfile::NamedTempFile::new().expect("log file");
        let binary = std::env::var_os("KMIP_SERVER_BINARY")
            .map(PathBuf::from)
            .unwrap_or_else(Self::binary);
        let child = Command::new(binary)
            .arg("--data-dir")
            .arg(data_dir.path())
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(extra_args)
            .envs(env.iter().copied())
            // a server whose master key is split asks a terminal for shares: a test's never
            .stdin(std::process::Stdio::null())
            .stdout(log.as_file().try_clone().expect("log file"))
            .stderr(log.as_file().try_clone().expect("log file"))
            .spawn()
            .expect("start kmip-server");
        let mut server = ServerProcess {
            port,
            data_dir,
            child,
            log,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            let exited = matches!(server.child.try_wait(), Ok(Some(_)));
            if exited || std::time::Instant::now() > deadline {
                let log = server.log();
                return Err((server.stop(), log));
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Ok(server)
    }

    /// Send a signal (`"HUP"`, `"TERM"`, ...) to the server.
    pub fn signal(&self, name: &str) {
        let st = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -{name} failed");
    }

    /// The exit status, if the server has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Whether a mutual-TLS client with `DIR/tls/NAME.pem` and `NAME.key` is served: it
    /// connects and a Query is answered. A refused certificate fails either the handshake or,
    /// with TLS 1.3, the first request.
    pub fn serves(&self, name: &str) -> bool {
        let d = self.tls_dir();
        let (ca, cert, key) = (
            d.join("ca.pem"),
            d.join(format!("{name}.pem")),
            d.join(format!("{name}.key")),
        );
        let id = kmip_client::Identity {
            ca: &ca,
            cert: Some(&cert),
            key: Some(&key),
        };
        kmip_client::Client::connect("localhost", self.port, &id)
            .and_then(|mut c| {
                c.call(
                    kmip_codec::vocab::enums::operation::QUERY,
                    kmip_codec::Ttlv::structure(kmip_codec::vocab::tag::REQUEST_PAYLOAD, vec![]),
                )
            })
            .is_ok()
    }
}
