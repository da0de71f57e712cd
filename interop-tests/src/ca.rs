//! Driving `kmip-ca` against a test server, and checking its output with the openssl command
//! line, for the CA tests.

use crate::ServerProcess;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub fn kmip_ca() -> PathBuf {
    ServerProcess::binary().with_file_name("kmip-ca")
}

/// `kmip-ca` against `server`, working in `dir`.
pub struct Ca<'a> {
    pub server: &'a ServerProcess,
    pub dir: &'a Path,
}

impl Ca<'_> {
    /// The command, as `identity`, with JSON output and no standard input.
    pub fn command(&self, identity: &str, args: &[&str]) -> Command {
        let mut c = Command::new(kmip_ca());
        c.current_dir(self.dir)
            .args(["--server", &format!("127.0.0.1:{}", self.server.port)])
            .arg("--data-dir")
            .arg(self.server.data_dir.path())
            .args(["--as", identity, "--json"])
            .args(args)
            .stdin(Stdio::null());
        c
    }

    pub fn run_as(&self, identity: &str, args: &[&str]) -> Output {
        self.command(identity, args).output().expect("run kmip-ca")
    }

    /// Run as `identity`, expect success, and return the JSON it printed.
    pub fn ok_as(&self, identity: &str, args: &[&str]) -> serde_json::Value {
        let out = self.run_as(identity, args);
        assert!(
            out.status.success(),
            "kmip-ca {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(text.lines().last().unwrap_or("null")).expect("JSON output")
    }

    /// [`Ca::ok_as`] the administrator.
    pub fn ok(&self, args: &[&str]) -> serde_json::Value {
        self.ok_as("admin", args)
    }

    /// Run, expect failure, and return what it said.
    pub fn refused(&self, identity: &str, args: &[&str]) -> String {
        let out = self.run_as(identity, args);
        assert!(
            !out.status.success(),
            "kmip-ca {args:?} should fail: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

pub fn openssl(dir: &Path, args: &[&str]) -> Output {
    Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl")
}

/// Run openssl, expect success, and return what it printed (both streams).
pub fn openssl_ok(dir: &Path, args: &[&str]) -> String {
    let out = openssl(dir, args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "openssl {args:?}: {text}");
    text
}

/// The `id` of a `kmip-ca --json` result.
pub fn id(v: &serde_json::Value) -> String {
    v["id"].as_str().expect("an id").to_owned()
}
