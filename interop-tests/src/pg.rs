//! A PostgreSQL cluster of its own for a test: `initdb` into a temporary directory, a port of
//! its own, stopped and deleted when dropped. PostgreSQL refuses to run as root, so as root it
//! runs as the `postgres` user. Debian's `postgresql` package is needed (scripts/test.sh
//! installs it): without it these tests fail, they do not skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// One PostgreSQL server (a primary, or a standby of one).
pub struct Postgres {
    pub port: u16,
    dir: tempfile::TempDir,
}

/// The directory of PostgreSQL's server programs (`initdb`, `pg_ctl`, ...).
pub fn bin_dir() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    versions.retain(|p| p.join("initdb").exists());
    versions.sort();
    versions.pop().unwrap_or_else(|| {
        panic!("PostgreSQL is not installed (/usr/lib/postgresql/*/bin/initdb): apt-get install postgresql (scripts/test.sh does)")
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Run a PostgreSQL program as the user PostgreSQL accepts.
fn pg(program: &str, args: &[&str]) -> Output {
    let bin = bin_dir().join(program);
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    };
    cmd.args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"))
}

fn checked(program: &str, args: &[&str]) -> Output {
    let out = pg(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn own_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("kmip-pg")
        .tempdir()
        .expect("temporary directory");
    if is_root() {
        let st = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status()
            .expect("chown");
        assert!(st.success(), "chown the cluster directory to postgres");
    }
    dir
}

impl Postgres {
    /// A new primary, started. `settings` are `name=value` server settings.
    pub fn start(settings: &[&str]) -> Postgres {
        Postgres::start_in(own_dir(), settings)
    }

    /// A new primary serving TLS (`ssl = on`) with a certificate for 127.0.0.1 issued by a CA
    /// of its own, made with the `openssl` command; and the file of that CA's certificate.
    pub fn start_tls(settings: &[&str]) -> (Postgres, PathBuf) {
        let dir = own_dir();
        let tls = dir.path().join("tls");
        std::fs::create_dir(&tls).expect("mkdir tls");
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&tls)
                .output()
                .expect("run openssl");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(
            &[
                &["req", "-x509"][..],
                &ec,
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.pem",
                    "-subj",
                    "/CN=test database CA",
                ],
                &["-days", "2"],
            ]
            .concat(),
        );
        openssl(
            &[
                &["req"][..],
                &ec,
                &[
                    "-keyout",
                    "server.key",
                    "-out",
                    "server.csr",
                    "-subj",
                    "/CN=127.0.0.1",
                ],
            ]
            .concat(),
        );
        std::fs::write(tls.join("san.ext"), "subjectAltName = IP:127.0.0.1\n").expect("write");
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ]);
        if is_root() {
            let st = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&tls)
                .status()
                .expect("chown");
            assert!(st.success(), "chown the TLS files to postgres");
        }
        // PostgreSQL refuses a key others may read
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            tls.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .expect("chmod");
        let cert = format!("ssl_cert_file = '{}'", tls.join("server.pem").display());
        let key = format!("ssl_key_file = '{}'", tls.join("server.key").display());
        let mut all = vec!["ssl = on", cert.as_str(), key.as_str()];
        all.extend_from_slice(settings);
        (Postgres::start_in(dir, &all), tls.join("ca.pem"))
    }

    fn start_in(dir: tempfile::TempDir, settings: &[&str]) -> Postgres {
        let data = dir.path().join("data");
        checked(
            "initdb",
            &[
                "-D",
                &data.display().to_string(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        let conf: String = settings.iter().map(|s| format!("{s}\n")).collect();
        append(&data.join("postgresql.conf"), &conf);
        append(
            &data.join("pg_hba.conf"),
            "host replication all 127.0.0.1/32 trust\n",
        );
        let pg = Postgres {
            port: crate::free_port(),
            dir,
        };
        pg.pg_start();
        pg
    }

    /// A streaming standby of this server, started: a base backup with recovery settings.
    /// `pg_basebackup` copies the primary's `synchronous_standby_names`, which on a promoted
    /// standby would make every write wait for a standby that is gone: it is cleared.
    pub fn standby(&self) -> Postgres {
        let dir = own_dir();
        let data = dir.path().join("data");
        checked(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-D",
                &data.display().to_string(),
                "-R",
                "-X",
                "stream",
                // a spread checkpoint would take minutes of an idle server's time
                "--checkpoint=fast",
                "--no-sync",
            ],
        );
        append(
            &data.join("postgresql.conf"),
            "synchronous_standby_names = ''\n",
        );
        let pg = Postgres {
            port: crate::free_port(),
            dir,
        };
        pg.pg_start();
        pg
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// Start the server (again), and wait until it accepts connections.
    pub fn pg_start(&self) {
        let log = self.dir.path().join("log").display().to_string();
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        checked(
            "pg_ctl",
            &["-D", &self.data(), "-o", &opts, "-l", &log, "-w", "start"],
        );
    }

    /// Stop the server: `mode` is `fast` or `immediate` (as after a crash).
    pub fn pg_stop(&self, mode: &str) {
        checked("pg_ctl", &["-D", &self.data(), "-m", mode, "-w", "stop"]);
    }

    /// SIGKILL the postmaster (its children end when they see it gone).
    pub fn kill(&self) {
        let pid = std::fs::read_to_string(self.dir.path().join("data/postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next().map(str::to_owned))
            .expect("postmaster.pid");
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
        // the backends notice within moments; wait until the port is closed
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stop every process of the server with SIGSTOP (or go on with SIGCONT), as a paused
    /// machine or a frozen disk would: connections stay open, nothing answers.
    pub fn freeze(&self, frozen: bool) {
        let sig = if frozen { "-STOP" } else { "-CONT" };
        let pid = std::fs::read_to_string(self.dir.path().join("data/postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next().map(str::to_owned))
            .expect("postmaster.pid");
        let _ = Command::new("pkill").args([sig, "-P", &pid]).status();
        let _ = Command::new("kill").args([sig, &pid]).status();
    }

    /// Promote a standby to primary, and wait until it takes writes.
    pub fn promote(&self) {
        checked("pg_ctl", &["-D", &self.data(), "-w", "promote"]);
    }

    /// Run SQL with `psql` against database `db`; its output (unaligned, tuples only).
    pub fn sql(&self, db: &str, sql: &str) -> String {
        let out = checked(
            "psql",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ],
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Run SQL with `psql` against database `db`, which may fail (a session a test ends
    /// from another): what psql printed and how it exited.
    pub fn sql_unchecked(&self, db: &str, sql: &str) -> Output {
        let port = self.port.to_string();
        pg(
            "psql",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-d",
                db,
                "-c",
                sql,
            ],
        )
    }

    /// A new empty database; its URL.
    pub fn new_database(&self, name: &str) -> String {
        self.sql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(name)
    }

    /// The URL of database `db` on this server.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// The data directory (for tests that look inside).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

fn append(file: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    f.write_all(text.as_bytes())
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = pg(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }
}
