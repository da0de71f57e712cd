//! The audit log against whoever can write its files: a real server writes the log, then the
//! files are forged (a record changed and every later `hash` and `prev` recomputed), cut,
//! thinned out and emptied, and `kmip-server audit verify` must name what was done; while the
//! honest changes (retention deleting the oldest rotated files, a verification while the
//! server writes) must pass. An auditor verifies offline with the exported public key.
//!
//! Each figure the tests print ("N of N detected") is in RELIABILITY.md.

use interop_tests::kmip::create_aes;
use interop_tests::ServerProcess;
use serde_json::{Map, Value as J};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn verify(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = ServerProcess::verify_audit_dir(dir, args);
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn requests(server: &ServerProcess, n: usize) {
    let mut c = server.client("admin");
    for _ in 0..n {
        create_aes(&mut c, 128, vec![]);
    }
}

fn sha256_hex(b: &[u8]) -> String {
    kmip_codec::text::hex(&openssl::sha::sha256(b))
}

fn lines_of(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(p: &Path, lines: &[String]) {
    let text = if lines.is_empty() {
        String::new()
    } else {
        lines.join("\n") + "\n"
    };
    std::fs::write(p, text).unwrap();
}

/// Record `at` (0-based) now says another operation; its `hash`, and every later `prev` and
/// `hash`, are recomputed: a bare hash chain accepts this.
fn forge_and_rehash(lines: &[String], at: usize) -> Vec<String> {
    rehash(lines, at, true)
}

/// Every `prev` and `hash` from record `at` on recomputed, record `at` changed if `change`.
fn rehash(lines: &[String], at: usize, change: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut prev: Option<String> = None;
    for (i, l) in lines.iter().enumerate() {
        let mut line = l.clone();
        if i >= at {
            let mut r: Map<String, J> = serde_json::from_str(l).unwrap();
            if i == at && change {
                r["items"][0]["operation"] = J::String("Check".into());
            }
            if let Some(p) = &prev {
                r.insert("prev".into(), J::String(p.clone()));
            }
            // the hash covers all but `hash` and `mac` (the MAC cannot be recomputed)
            r.remove("hash");
            let mac = r.remove("mac");
            let h = sha256_hex(&serde_json::to_vec(&r).unwrap());
            r.insert("hash".into(), J::String(h));
            if let Some(m) = mac {
                r.insert("mac".into(), m);
            }
            line = serde_json::to_string(&r).unwrap();
        }
        prev = Some(sha256_hex(line.as_bytes()));
        out.push(line);
    }
    out
}

/// A stopped server's data directory with `first + second` records: a signature on the first
/// record and on the first written after a pause of more than the signing interval, and the
/// head signed after the last.
fn a_written_log(first: usize, second: usize) -> tempfile::TempDir {
    let server = ServerProcess::start(&[]);
    requests(&server, first);
    std::thread::sleep(Duration::from_millis(2300));
    requests(&server, second);
    // the head is signed within the interval after the last write
    std::thread::sleep(Duration::from_millis(3200));
    server.stop()
}

fn export_key(dir: &Path) -> String {
    let out = std::process::Command::new(ServerProcess::binary())
        .args(["audit", "export-key", "--data-dir"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn forged_and_rehashed_records_are_named() {
    let dir = a_written_log(20, 10);
    let d = dir.path();
    let log = d.join("audit.jsonl");
    let lines = lines_of(&log);
    assert_eq!(lines.len(), 30);
    let (ok, out) = verify(d, &[]);
    assert!(ok, "{out}");
    assert!(
        out.contains("30 record MACs") && out.contains("the chain head at seq 30"),
        "{out}"
    );
    let signed: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.contains("\"sig\":"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(signed, vec![0, 20], "signatures on records 1 and 21");
    let pem = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(pem.path(), export_key(d)).unwrap();
    let key = pem.path().to_str().unwrap();
    // offline without the head: only the files
    let files_only = tempfile::tempdir().unwrap();
    let (mut with_key, mut offline_head, mut offline_files) = (0, 0, 0);
    for at in 0..lines.len() {
        let forged = forge_and_rehash(&lines, at);
        write_lines(&log, &forged);
        // with the master key: the forged record itself
        let (ok, out) = verify(d, &[]);
        assert!(!ok, "forgery of record {} accepted: {out}", at + 1);
        assert!(
            out.contains(&format!(
                "audit.jsonl line {}: record seq {} is forged",
                at + 1,
                at + 1
            )),
            "{out}"
        );
        with_key += 1;
        // offline, the exported key and the head (its signed part names the last record)
        let (ok, out) = verify(d, &["--key", key]);
        assert!(!ok, "offline: forgery of record {} accepted: {out}", at + 1);
        offline_head += 1;
        // offline, the files alone: found at the next signature
        let copy = files_only.path().join("audit.jsonl");
        write_lines(&copy, &forged);
        let (ok, out) = verify(files_only.path(), &["--key", key]);
        if let Some(next) = signed.iter().find(|&&s| s >= at) {
            assert!(!ok, "offline: forgery of record {} accepted: {out}", at + 1);
            assert!(
                out.contains(&format!("line {}: the signature does not match", next + 1)),
                "{out}"
            );
            offline_files += 1;
        } else {
            assert!(ok, "{out}");
            assert!(
                out.contains("the records after seq 21 are covered by no signature"),
                "{out}"
            );
        }
    }
    write_lines(&log, &lines);
    assert!(verify(d, &[]).0);
    println!(
        "forge and rehash, each of {} records: {with_key} detected with the master key (the record named), \
         {offline_head} offline with the exported key and the head, {offline_files} offline with the files alone \
         (every record up to the last signature)",
        lines.len()
    );
}

#[test]
fn a_cut_tail_is_detected() {
    let dir = a_written_log(8, 4);
    let d = dir.path();
    let log = d.join("audit.jsonl");
    let lines = lines_of(&log);
    assert_eq!(lines.len(), 12);
    let pem = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(pem.path(), export_key(d)).unwrap();
    let key = pem.path().to_str().unwrap();
    let mut detected = (0, 0);
    for cut in 1..lines.len() {
        let kept = lines.len() - cut;
        write_lines(&log, &lines[..kept]);
        let (ok, out) = verify(d, &[]);
        assert!(!ok, "{cut} records cut, accepted: {out}");
        assert!(
            out.contains(&format!(
                "line {kept}: the log ends here at seq {kept}, but the chain head says the server wrote up to seq 12: records seq {} to 12 are missing",
                kept + 1
            )),
            "{out}"
        );
        detected.0 += 1;
        let (ok, out) = verify(d, &["--key", key]);
        assert!(!ok, "offline: {cut} records cut, accepted: {out}");
        assert!(out.contains("the signed chain head says"), "{out}");
        detected.1 += 1;
    }
    // every record cut: nothing is intact
    write_lines(&log, &[]);
    let (ok, out) = verify(d, &[]);
    assert!(!ok && out.contains("no records"), "{out}");
    std::fs::remove_file(&log).unwrap();
    let (ok, out) = verify(d, &[]);
    assert!(!ok && out.contains("no records"), "{out}");
    // a removed record inside the log, the chain rehashed around it
    let mut removed = lines.clone();
    removed.remove(5);
    write_lines(&log, &rehash(&removed, 5, false));
    let (ok, out) = verify(d, &[]);
    assert!(!ok && out.contains("line 6"), "{out}");
    // restarted on a cut log, the server keeps the gap and says so
    write_lines(&log, &lines[..9]);
    let server = ServerProcess::try_start_in(dir, &[])
        .map_err(|(_, l)| l)
        .unwrap();
    requests(&server, 1);
    let (ok, out) = verify(server.data_dir.path(), &[]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("line 10: records seq 10 to 12 are missing"),
        "{out}"
    );
    println!(
        "cut tail, 1 to {} of {} records: {} detected with the master key, {} offline with the exported key and the head",
        lines.len() - 1,
        lines.len(),
        detected.0,
        detected.1
    );
}

fn rotated(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut v: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n = name.strip_prefix("audit.jsonl.")?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn deleted_rotation_files_are_detected_and_retention_is_not() {
    let server = ServerProcess::start(&["--audit-max-bytes", "2000"]);
    let d = server.data_dir.path().to_owned();
    requests(&server, 40);
    let before = rotated(&d);
    assert!(before.len() >= 5, "{before:?}");
    let (ok, out) = verify(&d, &[]);
    assert!(ok, "{out}");
    assert!(out.contains("first: seq 1 "), "{out}");
    // retention: the two oldest files go; nothing else changes
    std::fs::remove_file(&before[0].1).unwrap();
    std::fs::remove_file(&before[1].1).unwrap();
    let (ok, out) = verify(&d, &[]);
    assert!(ok, "retention is no tampering: {out}");
    // the next rotations never reuse a number (here the next one reused .1, and the
    // verifier then saw the newest records first)
    requests(&server, 20);
    let after = rotated(&d);
    let max_before = before.last().unwrap().0;
    assert!(
        after.iter().all(|(n, _)| *n > before[1].0),
        "{before:?} then {after:?}"
    );
    assert!(after.last().unwrap().0 > max_before + 1, "{after:?}");
    let (ok, out) = verify(&d, &[]);
    assert!(ok, "{out}");
    // a restarted server goes on numbering from where it was
    let server = ServerProcess::try_start_in(server.stop(), &["--audit-max-bytes", "2000"])
        .map_err(|(_, l)| l)
        .unwrap();
    let d = server.data_dir.path().to_owned();
    std::fs::remove_file(&after[0].1).unwrap();
    requests(&server, 10);
    let restarted = rotated(&d);
    assert!(
        restarted.last().unwrap().0 > after.last().unwrap().0,
        "{after:?} then {restarted:?}"
    );
    let (ok, out) = verify(&d, &[]);
    assert!(ok, "{out}");
    // any file but the oldest, gone, is found; so is the current one
    let files = rotated(&d);
    let mut detected = 0;
    for (_, gone) in files.iter().skip(1) {
        let kept = std::fs::read(gone).unwrap();
        std::fs::remove_file(gone).unwrap();
        let (ok, out) = verify(&d, &[]);
        assert!(!ok, "{} deleted, accepted: {out}", gone.display());
        assert!(out.contains("are missing before this one"), "{out}");
        std::fs::write(gone, kept).unwrap();
        detected += 1;
    }
    let current = d.join("audit.jsonl");
    let kept = std::fs::read(&current).unwrap();
    std::fs::remove_file(&current).unwrap();
    let (ok, out) = verify(&d, &[]);
    assert!(
        !ok && out.contains("says the server wrote up to seq"),
        "{out}"
    );
    std::fs::write(&current, kept).unwrap();
    detected += 1;
    let (ok, out) = verify(&d, &[]);
    assert!(ok, "{out}");
    println!(
        "rotation: {} files; the oldest deleted three times for retention, no alarm, no number reused; \
         {detected} of {detected} other deletions detected",
        files.len() + 1
    );
}

#[test]
fn zero_records_are_refused() {
    let server = ServerProcess::start(&[]);
    let d = server.data_dir.path();
    let (ok, out) = verify(d, &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("no records"), "{out}");
    let empty = d.join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let out = ServerProcess::verify_audit(&empty);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no records"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_auditor_verifies_offline_with_the_exported_key() {
    let dir = a_written_log(3, 2);
    let d = dir.path();
    let listing = |d: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let files_before = listing(d);
    let pem = export_key(d);
    assert!(
        pem.starts_with("-----BEGIN PUBLIC KEY-----\n") && !pem.contains("PRIVATE"),
        "{pem}"
    );
    assert_eq!(export_key(d), pem, "the same key every time");
    assert_eq!(listing(d), files_before, "export-key writes nothing");
    // the auditor's copy: the log and its head, no master key
    let auditor = tempfile::tempdir().unwrap();
    let a = auditor.path();
    for f in ["audit.jsonl", "audit.head"] {
        std::fs::copy(d.join(f), a.join(f)).unwrap();
    }
    std::fs::write(a.join("key.pem"), &pem).unwrap();
    let key = a.join("key.pem");
    let key = key.to_str().unwrap();
    let (ok, out) = verify(a, &[]);
    assert!(!ok && out.contains("no master key"), "{out}");
    let (ok, out) = verify(a, &["--key", key]);
    assert!(ok, "{out}");
    let last = lines_of(&a.join("audit.jsonl")).pop().unwrap();
    assert!(
        out.contains("audit chain intact: 5 records in 1 files")
            && out.contains("first: seq 1 time 20")
            && out.contains("last: seq 5 time 20")
            && out.contains(&sha256_hex(last.as_bytes()))
            && out.contains("2 signatures")
            && out.contains("the signed chain head at seq 5"),
        "{out}"
    );
    // another server's key does not verify this log
    let other = ServerProcess::start(&[]);
    std::fs::write(a.join("other.pem"), export_key(other.data_dir.path())).unwrap();
    let other_key = a.join("other.pem");
    let (ok, out) = verify(a, &["--key", other_key.to_str().unwrap()]);
    assert!(!ok && out.contains("signature does not match"), "{out}");
    // nor a private key, nor garbage
    let (ok, out) = verify(a, &["--key", a.join("audit.head").to_str().unwrap()]);
    assert!(!ok, "{out}");
    // a forged head
    let head = std::fs::read_to_string(a.join("audit.head")).unwrap();
    std::fs::write(
        a.join("audit.head"),
        head.replacen("\"seq\":5", "\"seq\":4", 2),
    )
    .unwrap();
    let (ok, out) = verify(a, &["--key", key]);
    assert!(!ok && out.contains("forged"), "{out}");
}

#[test]
fn verification_while_the_server_writes_raises_no_false_alarm() {
    let server = ServerProcess::start(&["--audit-max-bytes", "20000"]);
    let writing = std::sync::atomic::AtomicUsize::new(3);
    let mut verifications = 0;
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                // counted down even if the writer panics, or the loop below would never end
                struct Done<'a>(&'a std::sync::atomic::AtomicUsize);
                impl Drop for Done<'_> {
                    fn drop(&mut self) {
                        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                let _done = Done(&writing);
                requests(&server, 150);
            });
        }
        std::thread::sleep(Duration::from_millis(200));
        while writing.load(std::sync::atomic::Ordering::Relaxed) > 0 {
            server.assert_audit_chain();
            verifications += 1;
        }
    });
    server.assert_audit_chain();
    let files = rotated(server.data_dir.path()).len();
    assert!(verifications >= 3, "{verifications} verifications");
    assert!(
        files >= 2,
        "the log rotated while it was verified: {files} times"
    );
    println!(
        "{verifications} verifications while 3 clients wrote 450 records: no false alarm, {files} rotations"
    );
}
