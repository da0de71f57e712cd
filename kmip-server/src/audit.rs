//! The audit log: one JSON line per request, append-only, hash-chained and authenticated.
//!
//! Each record carries `seq`, its number in the whole chain (rotations included), `prev`, the
//! SHA-256 of the previous line, and `hash`, the SHA-256 of itself without `hash` and `mac`. A
//! chain alone shows accidents, not tampering: whoever can write the file can change a record
//! and recompute every later `hash` and `prev`, or cut the last records off. So the server
//! also authenticates it with keys derived from the master key (and never written anywhere):
//!
//! - `mac`: an HMAC-SHA256 of every record's `hash` (so of its content, `seq` and `prev`), so
//!   that a verifier holding the master key names the first forged record exactly;
//! - `sig`: an Ed25519 signature of the record without `hash`, `mac` and `sig`, on the last
//!   record of a group written at least [`SIGN_EVERY_RECORDS`] records or [`SIGN_EVERY`]
//!   after the previous signature (never more than one signature per group write, so signing
//!   stays off the per-record path); through `prev` it covers every record before it. Its
//!   public key
//!   ([`AuditKeys::public_key_pem`]) lets an auditor verify offline, without any secret;
//! - the chain head, `DATA_DIR/audit.head`: the last record's `seq` and hash and the number
//!   of the last rotated file, under the MAC, rewritten in place after every group write (no
//!   fsync, as for the log), and signed again within [`SIGN_EVERY`] of the last write. A cut
//!   tail, removed records and deleted rotation files no longer verify.
//!
//! When the file passes its size limit it is renamed `FILE.N`, N one more than any rotation
//! before (never reused, so that deleting the oldest files for retention renames nothing),
//! and a new one begins, continuing the chain. The first record of the oldest file may
//! continue an older, deleted one; every later link must hold.
//!
//! Records hold who, from where, which operation, which objects and the result; never key
//! material, passwords or data.

use lifecycle::core::{AuditMac, AuditSigner, MasterKey};
use openssl::pkey::{Id, PKey, Public};
use serde_json::{json, Map, Value as J};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};
use thiserror::Error;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AuditError {
    #[error("audit log {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("audit log {0}: the last record is not valid JSON")]
    Corrupt(PathBuf),
    #[error("audit key: {0}")]
    Key(String),
}

/// One record's fields, each value serialized once as it is added, in key order.
///
/// The writer adds `node`, `seq`, `prev` (and `sig`) in their places, so that a line is its
/// fields in key order: the form a verifier gets back by parsing the line and serializing it
/// again (serde_json's map is sorted), which is what the line's hash covers. Building the
/// line from bytes made once spares every request a map of owned values built, moved,
/// serialized and dropped (a fifth of a Get's CPU was the audit record).
#[derive(Clone, Debug, Default)]
pub struct Record {
    fields: Vec<(String, Vec<u8>)>,
}

impl Record {
    pub fn new() -> Record {
        Record::default()
    }

    /// Set `key` to `value` (serialized as JSON now), replacing any value it had.
    pub fn insert(&mut self, key: &str, value: impl Into<J>) {
        self.insert_json(key, value.into().to_string().into_bytes());
    }

    /// [`Record::insert`] of a string, without making a [`J`] of it first.
    pub fn insert_str(&mut self, key: &str, value: &str) {
        self.insert_json(key, json_text(value));
    }

    /// Set `key` to `json`, which must be one JSON value in the form serde_json writes it.
    fn insert_json(&mut self, key: &str, json: Vec<u8>) {
        match self.fields.binary_search_by(|(k, _)| k.as_str().cmp(key)) {
            Ok(i) => self.fields[i].1 = json,
            Err(i) => self.fields.insert(i, (key.to_owned(), json)),
        }
    }

    /// The line of this record with `extra` fields (sorted by key) in their places; fields of
    /// the record under the same names, or named `hash`, `mac` or `sig`, are left out.
    fn line(&self, extra: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            64 + self
                .fields
                .iter()
                .map(|(k, v)| k.len() + v.len() + 4)
                .sum::<usize>(),
        );
        let mut first = true;
        let mut put = |out: &mut Vec<u8>, k: &str, v: &[u8]| {
            out.push(if first { b'{' } else { b',' });
            first = false;
            json_string(out, k);
            out.push(b':');
            out.extend_from_slice(v);
        };
        let taken =
            |k: &str| matches!(k, "hash" | "mac" | "sig") || extra.iter().any(|(e, _)| *e == k);
        let mut rest = extra.iter().peekable();
        for (k, v) in &self.fields {
            if taken(k) {
                continue;
            }
            while let Some((ek, ev)) = rest.next_if(|(ek, _)| *ek < k.as_str()) {
                put(&mut out, ek, ev);
            }
            put(&mut out, k, v);
        }
        for (ek, ev) in rest {
            put(&mut out, ek, ev);
        }
        if first {
            out.push(b'{');
        }
        out.push(b'}');
        out
    }
}

impl From<Map<String, J>> for Record {
    fn from(m: Map<String, J>) -> Record {
        let mut r = Record::new();
        for (k, v) in m {
            r.insert(&k, v);
        }
        r
    }
}

/// `s` as a JSON string, escaped exactly as serde_json escapes it.
fn json_text(s: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(s.len() + 2);
    json_string(&mut v, s);
    v
}

/// [`json_text`], appended to `out`.
fn json_string(out: &mut Vec<u8>, s: &str) {
    // writing to a Vec cannot fail
    let _ = serde_json::to_writer(&mut *out, s);
}

const ZERO: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A record is signed once this many records went unsigned...
pub const SIGN_EVERY_RECORDS: u64 = 1000;
/// ... or this long after the previous signature; the head is signed this long after a write.
pub const SIGN_EVERY: Duration = Duration::from_secs(2);
/// The head file's fixed size: rewritten in place with one write.
const HEAD_LEN: usize = 1024;
/// The event the server records when it finds, at start, the log and its head disagree.
const ANOMALY: &str = "audit-anomaly";

fn sha256_hex(b: &[u8]) -> String {
    kmip_codec::text::hex(&lifecycle::core::sha256(b))
}

fn hex(b: &[u8]) -> String {
    kmip_codec::text::hex(b)
}

fn now_text() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    kmip_codec::time::format_secs(secs)
}

/// The audit MAC, as the log writes it (hex). The key stays in the core: this holds only the
/// core's MAC-er, which computes HMAC-SHA256 from precomputed pads.
#[derive(Clone)]
struct Hmac(AuditMac);

impl Hmac {
    fn mac(&self, data: &[u8]) -> String {
        hex(&self.0.mac(data))
    }

    fn check(&self, data: &[u8], claimed: &str) -> bool {
        let mac = self.mac(data);
        mac.len() == claimed.len() && openssl::memcmp::eq(mac.as_bytes(), claimed.as_bytes())
    }
}

fn key_error(what: &str) -> impl FnOnce(openssl::error::ErrorStack) -> AuditError + '_ {
    move |e| AuditError::Key(format!("{what}: {e}"))
}

/// The audit log's keys, derived from the master key in the core (HKDF, labels of their own):
/// the same at every start, written nowhere, never logged, and held here only as things that
/// MAC and sign. Only the public key leaves.
pub struct AuditKeys {
    mac: Hmac,
    signing: AuditSigner,
    public: PKey<Public>,
}

impl AuditKeys {
    pub fn from_master(master: &MasterKey) -> Result<AuditKeys, AuditError> {
        let core_err = |e: lifecycle::core::CoreError| AuditError::Key(e.to_string());
        let mac = Hmac(master.audit_mac().map_err(core_err)?);
        let signing = master.audit_signer().map_err(core_err)?;
        let public = signing.public_key().map_err(core_err)?;
        Ok(AuditKeys {
            mac,
            signing,
            public,
        })
    }

    /// The Ed25519 public key that verifies the log's signatures (PEM, SubjectPublicKeyInfo).
    pub fn public_key_pem(&self) -> Result<String, AuditError> {
        let pem = self
            .public
            .public_key_to_pem()
            .map_err(key_error("public key"))?;
        String::from_utf8(pem).map_err(|_| AuditError::Key("public key: not PEM".into()))
    }

    /// What a verifier holding the master key checks: every MAC and every signature.
    pub fn verify_keys(&self) -> VerifyKeys {
        VerifyKeys {
            mac: Some(self.mac.clone()),
            public: Some(self.public.clone()),
        }
    }

    fn sign(&self, message: &[u8]) -> std::io::Result<String> {
        self.signing
            .sign(message)
            .map(|s| hex(&s))
            .map_err(|e| std::io::Error::other(e.to_string()))
    }
}

/// The keys a verifier holds: the MAC key (with the master key), the public key (with the
/// master key, or exported for an auditor), or neither (the bare chain, which shows
/// accidents only).
pub struct VerifyKeys {
    mac: Option<Hmac>,
    public: Option<PKey<Public>>,
}

impl VerifyKeys {
    pub fn none() -> VerifyKeys {
        VerifyKeys {
            mac: None,
            public: None,
        }
    }

    /// An exported public key (PEM): offline verification, no secret needed.
    pub fn from_public_pem(pem: &[u8]) -> Result<VerifyKeys, AuditError> {
        let public = PKey::public_key_from_pem(pem).map_err(key_error("public key"))?;
        if public.id() != Id::ED25519 {
            return Err(AuditError::Key("not an Ed25519 public key".into()));
        }
        Ok(VerifyKeys {
            mac: None,
            public: Some(public),
        })
    }

    fn verify_sig(&self, message: &[u8], sig_hex: &str) -> Option<bool> {
        let public = self.public.as_ref()?;
        let Some(sig) = kmip_codec::text::unhex(sig_hex) else {
            return Some(false);
        };
        Some(
            openssl::sign::Verifier::new_without_digest(public)
                .and_then(|mut v| v.verify_oneshot(&sig, message))
                .unwrap_or(false),
        )
    }
}

fn head_mac_input(seq: u64, hash: &str, rotation: u64) -> String {
    format!("kmip-rs audit head\n{seq}\n{hash}\n{rotation}")
}

fn signed_head_input(seq: u64, hash: &str, time: &str) -> String {
    format!("kmip-rs audit signed head\n{seq}\n{hash}\n{time}")
}

/// The head's signed part: the chain reached `seq`, whose line hashes to `hash`, at `time`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Signed {
    seq: u64,
    hash: String,
    time: String,
    sig: String,
}

/// The chain head: where the chain ends (under the MAC) and where it ended when last signed.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Head {
    seq: u64,
    hash: String,
    rotation: u64,
    mac: String,
    signed: Option<Signed>,
}

impl Head {
    fn to_bytes(&self) -> Vec<u8> {
        // every field is digits or hex but `time`, which is RFC 3339: nothing to escape
        let signed = match &self.signed {
            Some(s) => format!(
                ",\"signed\":{{\"hash\":\"{}\",\"seq\":{},\"sig\":\"{}\",\"time\":\"{}\"}}",
                s.hash, s.seq, s.sig, s.time
            ),
            None => String::new(),
        };
        let mut b = format!(
            "{{\"hash\":\"{}\",\"mac\":\"{}\",\"rotation\":{},\"seq\":{}{signed}}}",
            self.hash, self.mac, self.rotation, self.seq
        )
        .into_bytes();
        b.resize(HEAD_LEN - 1, b' ');
        b.push(b'\n');
        b
    }

    fn parse(text: &str) -> Option<Head> {
        let v: J = serde_json::from_str(text.trim()).ok()?;
        let s = |v: &J, k: &str| v.get(k).and_then(J::as_str).map(str::to_owned);
        let signed = match v.get("signed") {
            Some(x) => Some(Signed {
                seq: x.get("seq")?.as_u64()?,
                hash: s(x, "hash")?,
                time: s(x, "time")?,
                sig: s(x, "sig")?,
            }),
            None => None,
        };
        Some(Head {
            seq: v.get("seq")?.as_u64()?,
            hash: s(&v, "hash")?,
            rotation: v.get("rotation")?.as_u64()?,
            mac: s(&v, "mac")?,
            signed,
        })
    }

    /// `Ok(None)` when there is no head file, or an empty one (created, and lost with the
    /// unwritten pages of a failed disk or machine, like the log's last records); `Err` when
    /// it cannot be read or parsed.
    fn read(path: &Path) -> Result<Option<Head>, String> {
        match std::fs::read_to_string(path) {
            Ok(t)
                if t.trim_matches(|c: char| c == '\0' || c.is_whitespace())
                    .is_empty() =>
            {
                Ok(None)
            }
            Ok(t) => Head::parse(&t)
                .map(Some)
                .ok_or_else(|| "not a chain head (changed?)".to_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Signing state of an authenticated log.
struct Sign {
    keys: Arc<AuditKeys>,
    head: File,
    head_path: PathBuf,
    every_records: u64,
    every: Duration,
    /// Records written since the last record signature.
    unsigned: u64,
    last_record_sig: Option<Instant>,
    signed: Option<Signed>,
    head_signed_at: Option<Instant>,
}

impl Sign {
    fn due(&self, n: u64, now: Instant) -> bool {
        self.last_record_sig
            .is_none_or(|t| now.duration_since(t) >= self.every)
            || self.unsigned + n >= self.every_records
    }

    fn sign_head(&self, seq: u64, hash: &str) -> std::io::Result<Signed> {
        let time = now_text();
        let sig = self
            .keys
            .sign(signed_head_input(seq, hash, &time).as_bytes())?;
        Ok(Signed {
            seq,
            hash: hash.to_owned(),
            time,
            sig,
        })
    }

    fn write_head(
        &self,
        seq: u64,
        hash: &str,
        rotation: u64,
        signed: Option<&Signed>,
    ) -> std::io::Result<()> {
        let head = Head {
            seq,
            hash: hash.to_owned(),
            rotation,
            mac: self
                .keys
                .mac
                .mac(head_mac_input(seq, hash, rotation).as_bytes()),
            signed: signed.cloned(),
        };
        self.head.write_all_at(&head.to_bytes(), 0)
    }
}

/// How the server authenticates its log: the keys, and where the chain head lives.
pub struct Signing {
    pub keys: Arc<AuditKeys>,
    pub head: PathBuf,
    pub every_records: u64,
    pub every: Duration,
}

impl Signing {
    pub fn new(keys: AuditKeys, head: PathBuf) -> Signing {
        Signing {
            keys: Arc::new(keys),
            head,
            every_records: SIGN_EVERY_RECORDS,
            every: SIGN_EVERY,
        }
    }
}

struct Inner {
    file: File,
    size: u64,
    /// Hash of the last line written.
    last: String,
    /// `seq` of the last record written (0: none yet).
    seq: u64,
    /// Number of the last rotated file.
    rotation: u64,
    sign: Option<Sign>,
}

/// Records appended but not yet written, and the outcome their tickets will see.
struct Queue {
    records: Vec<Record>,
    done: Arc<Done>,
}

/// The outcome of writing one group of records: the error's kind and text, shared by every
/// request in the group.
#[derive(Default)]
struct Done(OnceLock<Result<(), (std::io::ErrorKind, String)>>);

/// A record appended to the log; the request it describes may take effect, and be answered,
/// only once [`Audit::wait`] or [`Audit::wait_blocking`] says the record was written.
#[derive(Clone)]
#[must_use = "a request may take effect only once its record is written"]
pub struct Ticket(Arc<Done>);

/// Requests are recorded in groups: whoever finds the file free writes every record queued
/// so far in one system call, and those who queued meanwhile wait for that write (a task
/// without blocking its worker thread). One write per request, under a lock, had two
/// workers sleeping on each other for a third of all requests.
pub struct Audit {
    path: PathBuf,
    max_bytes: u64,
    queue: Mutex<Queue>,
    /// Held only by the one writing (and by the head signer, briefly). Whoever releases it
    /// wakes `written`: a task that found it held sleeps there until then.
    file: Arc<Mutex<Inner>>,
    written: Arc<tokio::sync::Notify>,
    /// Signs the head after a quiet spell; stops when the sender is dropped.
    signer: Mutex<Option<(std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>)>>,
    /// The server node writing this chain (`--node-name`), in every record: nodes sharing
    /// one database each keep a chain of their own, and merged logs still tell them apart.
    node: Option<String>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
    move |source| AuditError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The rotated files of the log at `path` (`FILE.N`), oldest first.
fn rotated(path: &Path) -> Vec<(u64, PathBuf)> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Vec::new();
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let mut out: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e
                .file_name()
                .to_string_lossy()
                .strip_prefix(&prefix)?
                .to_owned();
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some((n.parse().ok()?, path.with_file_name(e.file_name())))
        })
        .collect();
    out.sort();
    out
}

/// The files of the log at `path`, oldest first: `FILE.N` in increasing N, then `FILE`.
pub fn log_files(path: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = rotated(path).into_iter().map(|(_, p)| p).collect();
    if path.exists() {
        files.push(path.to_owned());
    }
    files
}

/// The last record of a file: its `seq` (none in records older than sequence numbers) and
/// the hash of its line.
struct Tail {
    seq: Option<u64>,
    hash: String,
}

fn last_record(path: &Path) -> Result<Option<Tail>, AuditError> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path)(e)),
    };
    let mut last = None;
    for line in BufReader::new(f).lines() {
        let line = line.map_err(io(path))?;
        if !line.is_empty() {
            last = Some(line);
        }
    }
    Ok(last.map(|l| Tail {
        seq: serde_json::from_str::<J>(&l)
            .ok()
            .and_then(|v| v.get("seq").and_then(J::as_u64)),
        hash: sha256_hex(l.as_bytes()),
    }))
}

/// Whether the records of `path` after `from` (seq and line hash) continue it, each under
/// the MAC: then the server wrote them and stopped before it wrote the head.
fn continues_verified(path: &Path, from: (u64, &str), mac: &Hmac) -> bool {
    let Ok(f) = File::open(path) else {
        return false;
    };
    let (mut seq, mut prev) = (from.0, from.1.to_owned());
    for line in BufReader::new(f).lines() {
        let Ok(line) = line else { return false };
        let Ok(J::Object(mut rec)) = serde_json::from_str::<J>(&line) else {
            return false;
        };
        match rec.get("seq").and_then(J::as_u64) {
            None => continue,
            Some(s) if s <= from.0 => continue,
            Some(s) if s == seq + 1 => {}
            _ => return false,
        }
        let hash = rec.remove("hash");
        let claimed = rec.remove("mac");
        let content = J::Object(rec.clone()).to_string();
        let hash_ok =
            hash.as_ref().and_then(J::as_str) == Some(sha256_hex(content.as_bytes()).as_str());
        let mac_ok = hash_ok
            && claimed
                .as_ref()
                .and_then(J::as_str)
                .zip(hash.as_ref().and_then(J::as_str))
                .is_some_and(|(m, h)| mac.check(h.as_bytes(), m));
        if !mac_ok || rec.get("prev").and_then(J::as_str) != Some(prev.as_str()) {
            return false;
        }
        seq += 1;
        prev = sha256_hex(line.as_bytes());
    }
    true
}

impl Audit {
    /// Open (or create) the log at `path`, continuing the chain from its last line, without
    /// keys: the chain shows accidents only (for tests and benchmarks; the server signs).
    pub fn open(path: &Path, max_bytes: u64) -> Result<Audit, AuditError> {
        Self::open_with(path, max_bytes, None)
    }

    /// Open (or create) the log at `path`, authenticated with `signing`'s keys and head.
    /// Where the log and its head disagree (records cut off or changed while the server was
    /// stopped, the head missing or forged) the chain goes on from the head, so that the gap
    /// stays visible, and a record says what was found.
    pub fn open_signed(path: &Path, max_bytes: u64, signing: Signing) -> Result<Audit, AuditError> {
        Self::open_with(path, max_bytes, Some(signing))
    }

    fn open_with(
        path: &Path,
        max_bytes: u64,
        signing: Option<Signing>,
    ) -> Result<Audit, AuditError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        // only a regular file has a chain to continue (a device such as /dev/full has none)
        let exists = path.exists();
        let regular = std::fs::metadata(path)
            .map(|m| m.is_file())
            .unwrap_or(false);
        let old = rotated(path);
        let mut rotation = old.last().map_or(0, |(n, _)| *n);
        let tail = if exists && !regular {
            None
        } else {
            match last_record(path)? {
                Some(t) => Some(t),
                // just rotated: the chain ends in the newest rotated file
                None => match old.last() {
                    Some((_, p)) => last_record(p)?,
                    None => None,
                },
            }
        };
        let (mut seq, mut last) = match &tail {
            Some(t) => (t.seq.unwrap_or(0), t.hash.clone()),
            None => (0, ZERO.to_owned()),
        };
        let mut anomaly = None;
        let sign = match signing {
            Some(s) if !exists || regular => {
                let head = match Head::read(&s.head) {
                    Ok(Some(h))
                        if s.keys.mac.check(
                            head_mac_input(h.seq, &h.hash, h.rotation).as_bytes(),
                            &h.mac,
                        ) =>
                    {
                        Some(h)
                    }
                    Ok(Some(_)) | Err(_) => {
                        anomaly = Some(format!(
                            "the chain head {} did not verify (changed, or made with another key); the chain goes on from the log's last record",
                            s.head.display()
                        ));
                        None
                    }
                    Ok(None) => {
                        if tail.as_ref().is_some_and(|t| t.seq.is_some()) {
                            anomaly = Some(format!(
                                "the chain head {} was missing; the chain goes on from the log's last record",
                                s.head.display()
                            ));
                        }
                        None
                    }
                };
                let mut signed = None;
                if let Some(h) = head {
                    rotation = rotation.max(h.rotation);
                    let matches = seq == h.seq && last == h.hash;
                    // the server wrote these and stopped before the head: they are its own
                    let crashed_after_write =
                        seq > h.seq && continues_verified(path, (h.seq, &h.hash), &s.keys.mac);
                    if !matches && !crashed_after_write {
                        anomaly = Some(format!(
                            "the log ended at seq {seq} where the chain head says seq {}: records were cut off or changed while the server was stopped; the chain goes on from the head",
                            h.seq
                        ));
                        (seq, last) = (h.seq, h.hash.clone());
                    }
                    signed = h.signed;
                }
                let head = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(&s.head)
                    .map_err(io(&s.head))?;
                Some(Sign {
                    keys: s.keys,
                    head,
                    head_path: s.head,
                    every_records: s.every_records.max(1),
                    every: s.every,
                    unsigned: 0,
                    last_record_sig: None,
                    signed,
                    head_signed_at: None,
                })
            }
            _ => None,
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io(path))?;
        let size = file.metadata().map_err(io(path))?.len();
        if let Some(s) = &sign {
            s.write_head(seq, &last, rotation, s.signed.as_ref())
                .map_err(io(&s.head_path))?;
        }
        let signed = sign.is_some();
        let audit = Audit {
            path: path.to_owned(),
            max_bytes,
            queue: Mutex::new(Queue {
                records: Vec::new(),
                done: Arc::default(),
            }),
            file: Arc::new(Mutex::new(Inner {
                file,
                size,
                last,
                seq,
                rotation,
                sign,
            })),
            written: Arc::new(tokio::sync::Notify::new()),
            signer: Mutex::new(None),
            node: None,
        };
        if let Some(detail) = anomaly {
            tracing::error!(%detail, "audit log: found tampered with at start");
            let mut m = Map::new();
            m.insert("time".into(), J::String(now_text()));
            m.insert("event".into(), J::String(ANOMALY.into()));
            m.insert("detail".into(), J::String(detail));
            audit.record(m)?;
        }
        if signed {
            audit.start_signer();
        }
        Ok(audit)
    }

    /// Name the node in every record from now on.
    pub fn with_node(mut self, node: &str) -> Audit {
        self.node = Some(node.to_owned());
        self
    }

    /// A thread that signs the head once writes pause, so that the signed head is never more
    /// than [`SIGN_EVERY`] behind the log.
    fn start_signer(&self) {
        let every = {
            let g = self.file.lock().unwrap_or_else(|p| p.into_inner());
            g.sign.as_ref().map_or(SIGN_EVERY, |s| s.every)
        };
        let inner: Weak<Mutex<Inner>> = Arc::downgrade(&self.file);
        let written = self.written.clone();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name("audit-signer".into())
            .spawn(move || loop {
                match rx.recv_timeout(every.max(Duration::from_millis(10)) / 2) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => match inner.upgrade() {
                        Some(i) => signer_tick(&i, &written),
                        None => return,
                    },
                    _ => return,
                }
            });
        match spawned {
            Ok(h) => *self.signer.lock().unwrap_or_else(|p| p.into_inner()) = Some((tx, h)),
            Err(e) => tracing::warn!(error = %e, "audit log: no head signer thread"),
        }
    }

    /// Append one record (a JSON object) and wait until it is written; an error means the
    /// record is not in the log and the operation it describes must not take effect.
    pub fn record(&self, fields: impl Into<Record>) -> Result<(), AuditError> {
        let t = self.append(fields);
        self.wait_blocking(&t)
    }

    /// Queue a record; it is written by the next [`Audit::wait`] or [`Audit::wait_blocking`].
    pub fn append(&self, fields: impl Into<Record>) -> Ticket {
        let fields = fields.into();
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.records.push(fields);
        Ticket(q.done.clone())
    }

    fn outcome(&self, t: &Ticket) -> Option<Result<(), AuditError>> {
        t.0 .0.get().map(|r| {
            r.clone().map_err(|(kind, text)| AuditError::Io {
                path: self.path.clone(),
                source: std::io::Error::new(kind, text),
            })
        })
    }

    /// Wait for a record to be written, writing it (and all queued with it) if no one is.
    pub fn wait_blocking(&self, t: &Ticket) -> Result<(), AuditError> {
        loop {
            if let Some(r) = self.outcome(t) {
                return r;
            }
            let mut g = self.file.lock().unwrap_or_else(|p| p.into_inner());
            self.write_queued(&mut g);
            drop(g);
            self.written.notify_waiters();
        }
    }

    /// [`Audit::wait_blocking`] for a task on an async worker: while another writes, the
    /// worker serves other connections.
    pub async fn wait(&self, t: &Ticket) -> Result<(), AuditError> {
        // The worker first runs the other connections whose requests are ready, which queue
        // their records behind this one: then one group takes them all, two system calls
        // (the log and the head) for all. Writing at once made groups of 1.4 records at 16
        // connections, 0.7 of each call per request; after the yield, 0.15.
        tokio::task::yield_now().await;
        loop {
            let notified = self.written.notified();
            tokio::pin!(notified);
            // registered before looking, so a write that ends in between still wakes us
            notified.as_mut().enable();
            if let Some(r) = self.outcome(t) {
                return r;
            }
            if self.try_write_queued() {
                self.written.notify_waiters();
            } else {
                notified.await;
            }
        }
    }

    /// Whether the file was free: then what was queued is written.
    fn try_write_queued(&self) -> bool {
        match self.file.try_lock() {
            Ok(mut g) => self.write_queued(&mut g),
            Err(std::sync::TryLockError::Poisoned(p)) => self.write_queued(&mut p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => return false,
        }
        true
    }

    /// Write every queued record in one system call, chained on from the last one written.
    /// A failed write leaves the file as it was, and fails the whole group.
    fn write_queued(&self, g: &mut Inner) {
        let (records, done) = {
            let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            if q.records.is_empty() {
                return;
            }
            (std::mem::take(&mut q.records), std::mem::take(&mut q.done))
        };
        let result = self
            .write_group(g, records)
            .map_err(|e| (e.kind(), e.to_string()));
        let _ = done.0.set(result);
    }

    fn write_group(&self, g: &mut Inner, records: Vec<Record>) -> std::io::Result<()> {
        let started = Instant::now();
        let written = self.write_group_timed(g, records);
        crate::metrics::get().audit_written(started.elapsed());
        written
    }

    fn write_group_timed(&self, g: &mut Inner, records: Vec<Record>) -> std::io::Result<()> {
        if g.size >= self.max_bytes {
            self.rotate(g)?;
        }
        let now = Instant::now();
        let n = records.len();
        let sign_last = g.sign.as_ref().is_some_and(|s| s.due(n as u64, now));
        let mut bytes = Vec::with_capacity(512 * n);
        let mut last = g.last.clone();
        let mut seq = g.seq;
        let node = self.node.as_deref().map(json_text);
        for (i, fields) in records.iter().enumerate() {
            seq += 1;
            let prev = format!("\"{last}\"");
            let seq_text = seq.to_string();
            let mut extra: Vec<(&str, &[u8])> = Vec::with_capacity(4);
            if let Some(n) = &node {
                extra.push(("node", n));
            }
            extra.push(("prev", prev.as_bytes()));
            extra.push(("seq", seq_text.as_bytes()));
            let mut line = fields.line(&extra);
            let sig;
            if let Some(s) = &g.sign {
                if sign_last && i + 1 == n {
                    // the signature covers the record without `hash`, `mac` and `sig`
                    sig = json_text(&s.keys.sign(&line)?);
                    extra.push(("sig", &sig));
                    line = fields.line(&extra);
                }
            }
            // the content is serialized once: its hash, and its MAC, close the same object
            // (hex, nothing to escape); a verifier reads the fields by name, in any order
            let hash = sha256_hex(&line);
            line.pop();
            line.extend_from_slice(b",\"hash\":\"");
            line.extend_from_slice(hash.as_bytes());
            if let Some(s) = &g.sign {
                // the MAC of the hash: one short HMAC on top of what the chain costs
                line.extend_from_slice(b"\",\"mac\":\"");
                line.extend_from_slice(s.keys.mac.mac(hash.as_bytes()).as_bytes());
            }
            line.extend_from_slice(b"\"}");
            last = sha256_hex(&line);
            bytes.extend_from_slice(&line);
            bytes.push(b'\n');
        }
        let size = g.size;
        // a full disk may have taken part of the group: cut it off, so that the chain stays
        // verifiable and the next record follows the last whole one
        let undo = |g: &mut Inner, e: std::io::Error| -> std::io::Result<()> {
            let _ = g.file.set_len(size);
            Err(e)
        };
        if let Err(e) = g.file.write_all(&bytes).and_then(|_| g.file.flush()) {
            return undo(g, e);
        }
        // then the head, so that it never names a record the log does not have
        let head = match &g.sign {
            None => Ok(None),
            Some(s) => (|| {
                let signed = if sign_last {
                    Some(s.sign_head(seq, &last)?)
                } else {
                    s.signed.clone()
                };
                s.write_head(seq, &last, g.rotation, signed.as_ref())?;
                Ok(Some(signed))
            })(),
        };
        match head {
            Err(e) => return undo(g, e),
            Ok(Some(signed)) => {
                if let Some(s) = &mut g.sign {
                    if sign_last {
                        s.unsigned = 0;
                        s.last_record_sig = Some(now);
                        s.head_signed_at = Some(now);
                        s.signed = signed;
                    } else {
                        s.unsigned += n as u64;
                    }
                }
            }
            Ok(None) => {}
        }
        g.size += bytes.len() as u64;
        g.last = last;
        g.seq = seq;
        Ok(())
    }

    fn rotate(&self, g: &mut Inner) -> std::io::Result<()> {
        // one more than any rotated file at start or since (the head keeps the number across
        // restarts): a number is never reused, so deleting old files (retention) never makes
        // a newer one look older
        let mut n = g.rotation + 1;
        let target = loop {
            let p = PathBuf::from(format!("{}.{n}", self.path.display()));
            if !p.exists() {
                break p;
            }
            n += 1;
        };
        std::fs::rename(&self.path, &target)?;
        g.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        g.size = 0;
        g.rotation = n;
        Ok(())
    }
}

/// The head signer's periodic turn. It holds the file lock, so it must wake the tasks that
/// found the lock held meanwhile: they sleep until someone does, and on a quiet connection
/// no one else would (a request stalled until the client gave up, 30 s later).
fn signer_tick(inner: &Mutex<Inner>, written: &tokio::sync::Notify) {
    sign_head_if_due(inner, false);
    written.notify_waiters();
}

/// Sign the head if records were written since it was last signed, and (unless `force`)
/// the last signature is at least the interval old.
fn sign_head_if_due(inner: &Mutex<Inner>, force: bool) {
    let mut g = inner.lock().unwrap_or_else(|p| p.into_inner());
    let Inner {
        seq,
        last,
        rotation,
        sign,
        ..
    } = &mut *g;
    let Some(s) = sign else { return };
    let behind = *seq > 0 && s.signed.as_ref().is_none_or(|x| x.seq < *seq);
    let due = force || s.head_signed_at.is_none_or(|t| t.elapsed() >= s.every);
    if !behind || !due {
        return;
    }
    let signed = s
        .sign_head(*seq, last)
        .and_then(|x| s.write_head(*seq, last, *rotation, Some(&x)).map(|_| x));
    match signed {
        Ok(x) => {
            s.signed = Some(x);
            s.head_signed_at = Some(Instant::now());
        }
        Err(e) => tracing::warn!(error = %e, "audit log: the head could not be signed"),
    }
}

impl Drop for Audit {
    fn drop(&mut self) {
        let signer = self
            .signer
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some((tx, handle)) = signer {
            drop(tx);
            let _ = handle.join();
        }
        sign_head_if_due(&self.file, true);
    }
}

/// Why a chain does not verify: the file and 1-based line of the first bad record (line 0:
/// the file as a whole).
#[derive(Debug, PartialEq, Eq)]
pub struct Broken {
    pub file: PathBuf,
    pub line: usize,
    pub reason: String,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} line {}: {}",
            self.file.display(),
            self.line,
            self.reason
        )
    }
}

/// One end of a verified chain, to anchor elsewhere.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Anchor {
    pub seq: Option<u64>,
    /// SHA-256 of the record's line (the next record's `prev`).
    pub hash: String,
    pub time: Option<String>,
}

/// What a verification established.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub records: u64,
    pub files: usize,
    pub first: Anchor,
    pub last: Anchor,
    /// Records written before sequence numbers and keys (a log older than them).
    pub legacy: u64,
    /// Records whose MAC was checked.
    pub macs: u64,
    /// Signatures checked, and the `seq` of the last.
    pub signatures: u64,
    pub signed_through: Option<u64>,
    /// The head's `seq` under its MAC, and where its signed part is, when checked.
    pub head: Option<u64>,
    pub signed_head: Option<u64>,
    /// The last file ended in part of a line (being written): not verified.
    pub incomplete_tail: bool,
}

/// Verify the bare hash chain across `files` in order (oldest first), without keys or head:
/// accidents only. Returns the record count.
pub fn verify(files: &[PathBuf]) -> Result<usize, Broken> {
    verify_with(files, &VerifyKeys::none(), None).map(|r| r.records as usize)
}

/// Verify the chain across `files` (oldest first) with `keys`: every MAC (with the MAC key),
/// every signature (with the public key), and the chain head at `head` (its MAC, its signed
/// part): the log must reach the record it names. Names the first forged, changed, missing
/// or reordered record. Zero records are refused: there is nothing to call intact.
pub fn verify_with(
    files: &[PathBuf],
    keys: &VerifyKeys,
    head: Option<&Path>,
) -> Result<Report, Broken> {
    let first_file = files.first().cloned().unwrap_or_default();
    let head_broken = |path: &Path, reason: String| Broken {
        file: path.to_owned(),
        line: 0,
        reason,
    };
    // read before the log: a running server writes the log first, then the head
    let mut anchors: Vec<(u64, String, &'static str)> = Vec::new();
    let mut report = Report {
        files: files.len(),
        ..Report::default()
    };
    if let Some(hp) = head {
        let mac_ok = |h: &Head| {
            keys.mac.as_ref().is_none_or(|m| {
                m.check(
                    head_mac_input(h.seq, &h.hash, h.rotation).as_bytes(),
                    &h.mac,
                )
            })
        };
        // a running server rewrites the head in place: a read in the middle of a write
        // is read again
        let mut read = Head::read(hp);
        for _ in 0..3 {
            match &read {
                Ok(Some(h)) if mac_ok(h) => break,
                Ok(None) => break,
                _ => {}
            }
            std::thread::sleep(Duration::from_millis(50));
            read = Head::read(hp);
        }
        let h = match read {
            Ok(Some(h)) => h,
            Ok(None) => {
                return Err(head_broken(
                    hp,
                    "the chain head is missing: whether records were cut off cannot be told".into(),
                ))
            }
            Err(e) => return Err(head_broken(hp, format!("the chain head: {e}"))),
        };
        if keys.mac.is_some() {
            if !mac_ok(&h) {
                return Err(head_broken(
                    hp,
                    "the chain head was forged (its MAC does not match)".into(),
                ));
            }
            anchors.push((h.seq, h.hash.clone(), "the chain head"));
            report.head = Some(h.seq);
        }
        if let Some(s) = &h.signed {
            match keys.verify_sig(
                signed_head_input(s.seq, &s.hash, &s.time).as_bytes(),
                &s.sig,
            ) {
                Some(true) => {
                    anchors.push((s.seq, s.hash.clone(), "the signed chain head"));
                    report.signed_head = Some(s.seq);
                }
                Some(false) => {
                    return Err(head_broken(
                        hp,
                        "the chain head's signature does not match (forged)".into(),
                    ))
                }
                None => {}
            }
        }
    }
    let mut prev: Option<String> = None;
    let mut prev_seq: Option<u64> = None;
    let mut last_at: (PathBuf, usize) = (first_file.clone(), 0);
    let mut last_good_sig: Option<u64> = None;
    for file in files {
        let f = File::open(file).map_err(|e| Broken {
            file: file.clone(),
            line: 0,
            reason: e.to_string(),
        })?;
        let mut reader = BufReader::new(f);
        let mut i = 0;
        loop {
            let mut raw = Vec::new();
            let n = reader.read_until(b'\n', &mut raw).map_err(|e| Broken {
                file: file.clone(),
                line: i + 1,
                reason: e.to_string(),
            })?;
            if n == 0 {
                break;
            }
            i += 1;
            let broken = |reason: String| Broken {
                file: file.clone(),
                line: i,
                reason,
            };
            if raw.last() == Some(&b'\n') {
                raw.pop();
            } else if Some(file) == files.last() {
                // the server is writing it: the head check says whether a record is missing
                report.incomplete_tail = true;
                break;
            }
            let line = String::from_utf8(raw)
                .map_err(|_| broken("not text: the record was changed".into()))?;
            let mut rec: Map<String, J> = match serde_json::from_str(&line) {
                Ok(J::Object(m)) => m,
                _ => return Err(broken("not a JSON object: the record was changed".into())),
            };
            let claimed = rec
                .remove("hash")
                .and_then(|h| h.as_str().map(str::to_owned));
            let mac = rec.remove("mac");
            let content = J::Object(rec.clone()).to_string();
            if claimed.as_deref() != Some(sha256_hex(content.as_bytes()).as_str()) {
                return Err(broken(
                    "the record was changed (its hash does not match its content)".into(),
                ));
            }
            let claimed = claimed.unwrap_or_default();
            let seq = rec.get("seq").and_then(J::as_u64);
            let sig = rec.remove("sig");
            // MAC first: a forgery made to look whole is named as what it is
            if let (Some(key), Some(_)) = (&keys.mac, seq) {
                match mac.as_ref().and_then(J::as_str) {
                    Some(m) if key.check(claimed.as_bytes(), m) => report.macs += 1,
                    _ => {
                        return Err(broken(format!(
                            "record seq {} is forged: its MAC does not match (changed, or written without the server's key)",
                            seq.unwrap_or(0)
                        )))
                    }
                }
            }
            match (prev_seq, seq) {
                (Some(p), Some(s)) if s == p + 1 => {}
                (Some(p), Some(s)) if s > p + 1 => {
                    return Err(broken(format!(
                        "records seq {} to {} are missing before this one (removed, or their file deleted)",
                        p + 1,
                        s - 1
                    )))
                }
                (Some(p), Some(s)) => {
                    return Err(broken(format!(
                        "seq {s} after seq {p}: records were reordered or repeated"
                    )))
                }
                (Some(p), None) => {
                    return Err(broken(format!(
                        "a record without a sequence number after seq {p}: inserted"
                    )))
                }
                (None, None) => report.legacy += 1,
                (None, Some(_)) => {}
            }
            let link = rec.get("prev").and_then(J::as_str).unwrap_or("");
            if let Some(p) = &prev {
                if link != p {
                    return Err(broken(
                        "the previous record was removed or changed, or records were reordered"
                            .into(),
                    ));
                }
            }
            let line_hash = sha256_hex(line.as_bytes());
            if let Some(s) = seq {
                for (aseq, ahash, what) in &anchors {
                    if *aseq == s && *ahash != line_hash {
                        return Err(broken(format!(
                            "record seq {s} is not the one {what} names: it was changed or replaced"
                        )));
                    }
                }
            }
            if let Some(sig) = sig.as_ref().and_then(J::as_str) {
                let body = J::Object(rec.clone()).to_string();
                match keys.verify_sig(body.as_bytes(), sig) {
                    Some(true) => {
                        report.signatures += 1;
                        last_good_sig = seq;
                        report.signed_through = seq;
                    }
                    Some(false) => {
                        return Err(broken(format!(
                        "the signature does not match: this record or one before it{} was changed",
                        last_good_sig
                            .map(|g| format!(" (after seq {g}, the last signature that held)"))
                            .unwrap_or_default()
                    )))
                    }
                    None => {}
                }
            }
            if rec.get("event").and_then(J::as_str) == Some(ANOMALY) {
                return Err(broken(format!(
                    "at start the server found the log tampered with: {}",
                    rec.get("detail").and_then(J::as_str).unwrap_or("")
                )));
            }
            let anchor = Anchor {
                seq,
                hash: line_hash.clone(),
                time: rec.get("time").and_then(J::as_str).map(str::to_owned),
            };
            if report.records == 0 {
                report.first = anchor.clone();
            }
            report.last = anchor;
            report.records += 1;
            prev = Some(line_hash);
            prev_seq = seq.or(prev_seq);
            last_at = (file.clone(), i);
        }
    }
    if report.records == 0 {
        return Err(Broken {
            file: first_file,
            line: 0,
            reason: format!(
                "no records in {} files: nothing to call intact",
                files.len()
            ),
        });
    }
    for (aseq, _, what) in &anchors {
        let end = prev_seq.unwrap_or(0);
        if end < *aseq {
            return Err(Broken {
                file: last_at.0.clone(),
                line: last_at.1,
                reason: format!(
                    "the log ends here at seq {end}, but {what} says the server wrote up to seq {aseq}: records seq {} to {aseq} are missing (cut off, or their file deleted or not given)",
                    end + 1
                ),
            });
        }
    }
    Ok(report)
}

/// The record of one request and its response.
pub fn request_record(
    now: i64,
    identity: &str,
    peer: &str,
    request: &kmip_codec::Ttlv,
    response: &kmip_codec::Ttlv,
) -> Record {
    use kmip_codec::vocab::tag;
    let version = crate::pipeline::claimed_version(request)
        .map(|(a, b)| format!("{a}.{b}"))
        .unwrap_or_default();
    let requests: Vec<&kmip_codec::Ttlv> = request.children_with(tag::BATCH_ITEM).collect();
    // written as serde_json writes a Value: each item's keys in order
    let mut items = Vec::with_capacity(128);
    items.push(b'[');
    let enum_name = |out: &mut Vec<u8>, value: Option<u32>, table: &str| match value {
        None => out.extend_from_slice(b"null"),
        Some(v) => match kmip_codec::vocab::enum_def(table).and_then(|d| d.by_value(v)) {
            Some(e) => json_string(out, e.xml),
            None => json_string(out, &format!("0x{v:08X}")),
        },
    };
    for (i, r) in response.children_with(tag::BATCH_ITEM).enumerate() {
        if i > 0 {
            items.push(b',');
        }
        // identifiers named in the request and returned in the response; nothing else
        let mut ids: Vec<&str> = Vec::new();
        let payloads = [
            requests.get(i).and_then(|q| q.child(tag::REQUEST_PAYLOAD)),
            r.child(tag::RESPONSE_PAYLOAD),
        ];
        for p in payloads.into_iter().flatten() {
            for c in p.children() {
                if matches!(
                    c.tag,
                    tag::UNIQUE_IDENTIFIER
                        | tag::PRIVATE_KEY_UNIQUE_IDENTIFIER
                        | tag::PUBLIC_KEY_UNIQUE_IDENTIFIER
                ) {
                    if let Some(t) = c.as_text() {
                        if !ids.contains(&t) {
                            ids.push(t);
                        }
                    }
                }
            }
        }
        items.extend_from_slice(b"{\"objects\":[");
        for (n, id) in ids.iter().enumerate() {
            if n > 0 {
                items.push(b',');
            }
            json_string(&mut items, id);
        }
        items.extend_from_slice(b"],\"operation\":");
        let operation = r
            .child(tag::OPERATION)
            .or_else(|| requests.get(i).and_then(|q| q.child(tag::OPERATION)))
            .and_then(|o| o.as_enum());
        enum_name(&mut items, operation, "Operation");
        items.extend_from_slice(b",\"reason\":");
        let value = |t| r.child(t).and_then(|v| v.as_enum());
        enum_name(&mut items, value(tag::RESULT_REASON), "ResultReason");
        items.extend_from_slice(b",\"result\":");
        enum_name(&mut items, value(tag::RESULT_STATUS), "ResultStatus");
        items.push(b'}');
    }
    items.push(b']');
    let mut m = Record::new();
    m.insert_str("time", &kmip_codec::time::format_secs(now));
    m.insert_str("identity", identity);
    m.insert_str("peer", peer);
    m.insert_str("version", &version);
    m.insert_json("items", items);
    m
}

/// The state changes the server made on its own while serving the request (an Activation or
/// Deactivation Date reached), as `automatic: [{object, from, to}]`.
pub fn add_automatic_changes(record: &mut Record, changes: &[lifecycle::object::AutomaticChange]) {
    if changes.is_empty() {
        return;
    }
    let list: Vec<J> = changes
        .iter()
        .map(|c| json!({"object": c.id, "from": format!("{:?}", c.from), "to": format!("{:?}", c.to)}))
        .collect();
    record.insert("automatic", J::Array(list));
}

/// What happened to dual-control requests while serving the request, as `approvals: [{event,
/// by, request, requester, operation, object, group, needed, approvers}]`: each request,
/// approval, denial, cancellation, expiry and execution, with the identities.
pub fn add_approval_events(record: &mut Record, events: &[lifecycle::object::ApprovalEvent]) {
    if events.is_empty() {
        return;
    }
    let list: Vec<J> = events
        .iter()
        .map(|e| {
            let r = &e.request;
            json!({
                "event": e.event,
                "by": e.by,
                "request": r.id,
                "requester": r.requester,
                "operation": crate::metrics::operation_name(r.what.operation),
                "object": r.what.object,
                "group": r.what.group,
                "needed": r.what.needed,
                "approvers": r.approvals.iter().map(|(who, _)| who.as_str()).collect::<Vec<_>>(),
            })
        })
        .collect();
    record.insert("approvals", J::Array(list));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(n: i64) -> Map<String, J> {
        let mut m = Map::new();
        m.insert("n".into(), json!(n));
        m
    }

    #[test]
    fn edits_removals_and_swaps_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let a = Audit::open(&path, 1 << 20).unwrap();
        for n in 0..5 {
            a.record(rec(n)).unwrap();
        }
        drop(a);
        // reopening continues the chain
        Audit::open(&path, 1 << 20).unwrap().record(rec(5)).unwrap();
        assert_eq!(verify(std::slice::from_ref(&path)), Ok(6));
        let lines: Vec<String> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        let check = |ls: Vec<String>| {
            let p = dir.path().join("tampered.jsonl");
            std::fs::write(&p, ls.join("\n") + "\n").unwrap();
            verify(&[p]).unwrap_err().line
        };
        let mut edited = lines.clone();
        edited[2] = edited[2].replace("\"n\":2", "\"n\":7");
        assert_eq!(check(edited), 3, "the changed line itself");
        let mut removed = lines.clone();
        removed.remove(3);
        assert_eq!(check(removed), 4, "the line after the removed one");
        let mut swapped = lines.clone();
        swapped.swap(1, 2);
        assert_eq!(check(swapped), 2);
        let mut garbage = lines;
        garbage[4] = "not json".into();
        assert_eq!(check(garbage), 5);
    }

    #[test]
    fn records_from_many_threads_and_tasks_all_land_in_one_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let a = Arc::new(Audit::open(&path, 1 << 30).unwrap());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let a = a.clone();
                std::thread::spawn(move || {
                    for n in 0..100 {
                        a.record(rec(t * 1000 + n)).unwrap();
                    }
                })
            })
            .collect();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        rt.block_on(async {
            let tasks: Vec<_> = (0..8)
                .map(|t| {
                    let a = a.clone();
                    tokio::spawn(async move {
                        for n in 0..100 {
                            let ticket = a.append(rec(10_000 + t * 1000 + n));
                            a.wait(&ticket).await.unwrap();
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        });
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(verify(std::slice::from_ref(&path)), Ok(1200));
        let text = std::fs::read_to_string(&path).unwrap();
        for n in [0, 3099, 10_000, 17_099] {
            assert!(
                text.contains(&format!("\"n\":{n},")),
                "record {n} is missing"
            );
        }
    }

    #[test]
    fn a_line_is_its_fields_as_a_verifier_serializes_them_again() {
        let mut r = Record::new();
        r.insert_str(
            "zeta",
            "quote \" backslash \\ newline \n nul \u{0} del \u{7f} ü 鍵 /",
        );
        r.insert(
            "alpha",
            json!({"b": [1, null, "x"], "a": {"d": true, "c": -2}}),
        );
        r.insert_str("prev", "the writer's value wins");
        r.insert_str("mac", "never taken from a record");
        r.insert("seq", 99);
        r.insert("items", J::Array(vec![]));
        r.insert_str("alpha", "replaced");
        let extra: [(&str, &[u8]); 3] = [("node", b"\"n1\""), ("prev", b"\"00\""), ("seq", b"7")];
        let line = r.line(&extra);
        let parsed: J = serde_json::from_slice(&line).unwrap();
        assert_eq!(
            parsed.to_string().into_bytes(),
            line,
            "{}",
            String::from_utf8_lossy(&line)
        );
        assert_eq!(parsed["prev"], "00");
        assert_eq!(parsed["seq"], 7);
        assert_eq!(parsed["alpha"], "replaced");
        assert!(parsed.get("mac").is_none());
        assert_eq!(Record::new().line(&[]), b"{}");
        // and what request_record writes for the items, against serde_json's own form
        use kmip_codec::ttlv::Value;
        use kmip_codec::vocab::tag;
        use kmip_codec::Ttlv;
        let e = |t, v| Ttlv::new(t, Value::Enumeration(v));
        let text = |t, v: &str| Ttlv::new(t, Value::TextString(v.into()));
        let item = |children: Vec<Ttlv>| Ttlv::structure(tag::BATCH_ITEM, children);
        let request = Ttlv::structure(
            tag::REQUEST_MESSAGE,
            vec![
                item(vec![
                    e(tag::OPERATION, 0x0A),
                    Ttlv::structure(
                        tag::REQUEST_PAYLOAD,
                        vec![text(tag::UNIQUE_IDENTIFIER, "id \"1\"")],
                    ),
                ]),
                item(vec![e(tag::OPERATION, 0x7777)]),
            ],
        );
        let response = Ttlv::structure(
            tag::RESPONSE_MESSAGE,
            vec![
                item(vec![
                    e(tag::RESULT_STATUS, 0),
                    Ttlv::structure(
                        tag::RESPONSE_PAYLOAD,
                        vec![text(tag::UNIQUE_IDENTIFIER, "id \"1\"")],
                    ),
                ]),
                item(vec![e(tag::RESULT_STATUS, 1), e(tag::RESULT_REASON, 0x1)]),
            ],
        );
        let r = request_record(0, "me", "peer", &request, &response);
        let line = r.line(&[]);
        let parsed: J = serde_json::from_slice(&line).unwrap();
        assert_eq!(parsed.to_string().into_bytes(), line);
        assert_eq!(
            parsed["items"],
            json!([
                {"objects": ["id \"1\""], "operation": "Get", "reason": null, "result": "Success"},
                {"objects": [], "operation": "0x00007777", "reason": "ItemNotFound", "result": "OperationFailed"},
            ])
        );
    }

    #[test]
    fn a_task_that_found_the_head_signer_writing_is_woken_when_it_is_done() {
        use std::future::Future;
        use std::task::{Context, Poll, Wake, Waker};
        struct Flag(std::sync::atomic::AtomicBool);
        impl Wake for Flag {
            fn wake(self: Arc<Self>) {
                self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let a = Audit::open(&dir.path().join("audit.jsonl"), 1 << 20).unwrap();
        let ticket = a.append(rec(1));
        let flag = Arc::new(Flag(false.into()));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let mut waiting = Box::pin(a.wait(&ticket));
        // the signer mid-turn: the task finds the file held and sleeps
        let held = a.file.lock().unwrap();
        assert!(waiting.as_mut().poll(&mut cx).is_pending());
        drop(held);
        signer_tick(&a.file, &a.written);
        assert!(
            flag.0.load(std::sync::atomic::Ordering::SeqCst),
            "the signer's turn ended without waking the task that waited for the file"
        );
        assert!(matches!(
            waiting.as_mut().poll(&mut cx),
            Poll::Ready(Ok(()))
        ));
    }

    #[test]
    fn a_failed_write_fails_every_request_of_its_group_and_is_not_chained_on() {
        let a = Audit::open(Path::new("/dev/full"), u64::MAX).unwrap();
        let tickets: Vec<Ticket> = (0..3).map(|n| a.append(rec(n))).collect();
        for t in &tickets {
            let e = a.wait_blocking(t).unwrap_err();
            assert!(e.to_string().contains("No space left"), "{e}");
        }
        let g = a.file.lock().unwrap();
        assert_eq!((g.size, g.last.as_str()), (0, ZERO));
    }

    #[test]
    fn rotation_keeps_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let a = Audit::open(&path, 200).unwrap();
        for n in 0..10 {
            a.record(rec(n)).unwrap();
        }
        let mut files: Vec<PathBuf> = (1..)
            .map(|i| PathBuf::from(format!("{}.{i}", path.display())))
            .take_while(|p| p.exists())
            .collect();
        assert!(files.len() >= 2, "rotated {} times", files.len());
        files.push(path.clone());
        assert_eq!(verify(&files), Ok(10));
        // a missing middle file breaks the chain at the start of the next one
        let without: Vec<PathBuf> = files
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 1)
            .map(|(_, p)| p.clone())
            .collect();
        assert!(verify(&without).is_err());
    }

    fn keys() -> (MasterKey, AuditKeys) {
        let m = MasterKey::generate().unwrap();
        let k = AuditKeys::from_master(&m).unwrap();
        (m, k)
    }

    /// A log signed every `every` records (and not by time), `n` records long.
    fn signed_log(dir: &Path, keys: AuditKeys, every: u64, max_bytes: u64, n: i64) -> Audit {
        let mut s = Signing::new(keys, dir.join("audit.head"));
        s.every_records = every;
        s.every = Duration::from_secs(3600);
        let a = Audit::open_signed(&dir.join("audit.jsonl"), max_bytes, s).unwrap();
        for i in 0..n {
            a.record(rec(i)).unwrap();
        }
        a
    }

    fn lines_of(p: &Path) -> Vec<String> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn write_lines(p: &Path, lines: &[String]) {
        std::fs::write(p, lines.join("\n") + "\n").unwrap();
    }

    /// Change record `at` (0-based) and recompute every later `hash` and `prev`: what anyone
    /// who can write the file can do to a bare hash chain.
    fn forge_and_rehash(lines: &mut [String], at: usize) {
        let mut prev: Option<String> = None;
        for (i, l) in lines.iter_mut().enumerate() {
            let mut r: Map<String, J> = serde_json::from_str(l).unwrap();
            if i == at {
                let n = r["n"].as_i64().unwrap();
                r.insert("n".into(), json!(n + 1000));
            }
            if i >= at {
                if let Some(p) = &prev {
                    r.insert("prev".into(), J::String(p.clone()));
                }
                // as the file says: the hash covers all but `hash` and `mac`
                r.remove("hash");
                let mac = r.remove("mac");
                let h = sha256_hex(&serde_json::to_vec(&r).unwrap());
                r.insert("hash".into(), J::String(h));
                if let Some(m) = mac {
                    r.insert("mac".into(), m);
                }
                *l = serde_json::to_string(&r).unwrap();
            }
            prev = Some(sha256_hex(l.as_bytes()));
        }
    }

    #[test]
    fn purpose_keys_are_stable_and_distinct() {
        let m = MasterKey::generate().unwrap();
        let k1 = AuditKeys::from_master(&m)
            .unwrap()
            .public_key_pem()
            .unwrap();
        let k2 = AuditKeys::from_master(&m)
            .unwrap()
            .public_key_pem()
            .unwrap();
        assert_eq!(k1, k2, "the signing key survives restarts");
        assert!(k1.starts_with("-----BEGIN PUBLIC KEY-----"), "{k1}");
        let other = keys().1.public_key_pem().unwrap();
        assert_ne!(k1, other);
    }

    #[test]
    fn a_forged_and_rehashed_record_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let (m, k) = keys();
        let public = VerifyKeys::from_public_pem(k.public_key_pem().unwrap().as_bytes()).unwrap();
        // signatures on records 1, 4, 7, 10
        drop(signed_log(dir.path(), k, 3, 1 << 20, 10));
        let full = AuditKeys::from_master(&m).unwrap().verify_keys();
        let path = dir.path().join("audit.jsonl");
        let head = dir.path().join("audit.head");
        let r = verify_with(std::slice::from_ref(&path), &full, Some(&head)).unwrap();
        assert_eq!((r.records, r.macs, r.signatures), (10, 10, 4));
        assert_eq!((r.head, r.signed_head), (Some(10), Some(10)));
        let mut lines = lines_of(&path);
        forge_and_rehash(&mut lines, 4);
        let forged = dir.path().join("forged.jsonl");
        write_lines(&forged, &lines);
        // the bare chain, as before: accepted
        assert_eq!(verify(std::slice::from_ref(&forged)), Ok(10));
        // with the master key: the forged record itself
        let e = verify_with(std::slice::from_ref(&forged), &full, None).unwrap_err();
        assert_eq!(e.line, 5, "{e}");
        assert!(e.reason.contains("forged"), "{e}");
        // offline, with the public key: the next signature
        let e = verify_with(std::slice::from_ref(&forged), &public, None).unwrap_err();
        assert_eq!(e.line, 7, "{e}");
        assert!(e.reason.contains("after seq 4"), "{e}");
        // another server's key verifies nothing
        let e = verify_with(std::slice::from_ref(&path), &keys().1.verify_keys(), None);
        assert_eq!(e.unwrap_err().line, 1);
    }

    #[test]
    fn a_cut_tail_is_found_by_the_head() {
        let dir = tempfile::tempdir().unwrap();
        let (m, k) = keys();
        let public = VerifyKeys::from_public_pem(k.public_key_pem().unwrap().as_bytes()).unwrap();
        drop(signed_log(dir.path(), k, 1000, 1 << 20, 10));
        let full = AuditKeys::from_master(&m).unwrap().verify_keys();
        let path = dir.path().join("audit.jsonl");
        let head = dir.path().join("audit.head");
        let mut lines = lines_of(&path);
        lines.truncate(8);
        write_lines(&path, &lines);
        assert_eq!(verify(std::slice::from_ref(&path)), Ok(8), "the bare chain");
        for (keys, what) in [
            (&full, "the chain head"),
            (&public, "the signed chain head"),
        ] {
            let e = verify_with(std::slice::from_ref(&path), keys, Some(&head)).unwrap_err();
            assert_eq!(e.line, 8, "{e}");
            assert!(
                e.reason
                    .contains(&format!("{what} says the server wrote up to seq 10"))
                    && e.reason.contains("seq 9 to 10 are missing"),
                "{e}"
            );
        }
        // a forged head does not help
        let text = std::fs::read_to_string(&head).unwrap();
        std::fs::write(&head, text.replacen("\"seq\":10", "\"seq\":8", 1)).unwrap();
        let e = verify_with(std::slice::from_ref(&path), &full, Some(&head)).unwrap_err();
        assert!(e.reason.contains("forged"), "{e}");
        std::fs::remove_file(&head).unwrap();
        let e = verify_with(std::slice::from_ref(&path), &full, Some(&head)).unwrap_err();
        assert!(e.reason.contains("missing"), "{e}");
    }

    #[test]
    fn a_restart_after_a_cut_keeps_the_gap_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let (m, k) = keys();
        drop(signed_log(dir.path(), k, 1000, 1 << 20, 5));
        let path = dir.path().join("audit.jsonl");
        let mut lines = lines_of(&path);
        lines.truncate(3);
        write_lines(&path, &lines);
        drop(signed_log(
            dir.path(),
            AuditKeys::from_master(&m).unwrap(),
            1000,
            1 << 20,
            1,
        ));
        let lines = lines_of(&path);
        assert!(lines[3].contains(ANOMALY), "{}", lines[3]);
        let full = AuditKeys::from_master(&m).unwrap().verify_keys();
        let e = verify_with(&[path], &full, Some(&dir.path().join("audit.head"))).unwrap_err();
        assert_eq!(e.line, 4, "{e}");
        assert!(e.reason.contains("seq 4 to 5 are missing"), "{e}");
    }

    #[test]
    fn records_written_before_a_crash_kept_the_head_are_the_servers_own() {
        let dir = tempfile::tempdir().unwrap();
        let (m, k) = keys();
        let a = signed_log(dir.path(), k, 1000, 1 << 20, 3);
        let head = dir.path().join("audit.head");
        let old_head = std::fs::read(&head).unwrap();
        a.record(rec(3)).unwrap();
        a.record(rec(4)).unwrap();
        drop(a);
        // killed between the log's write and the head's
        std::fs::write(&head, old_head).unwrap();
        let full = AuditKeys::from_master(&m).unwrap().verify_keys();
        let path = dir.path().join("audit.jsonl");
        let r = verify_with(std::slice::from_ref(&path), &full, Some(&head)).unwrap();
        assert_eq!((r.records, r.head), (5, Some(3)));
        drop(signed_log(
            dir.path(),
            AuditKeys::from_master(&m).unwrap(),
            1000,
            1 << 20,
            1,
        ));
        let r = verify_with(std::slice::from_ref(&path), &full, Some(&head)).unwrap();
        assert_eq!(
            (r.records, r.head),
            (6, Some(6)),
            "no anomaly: {:?}",
            lines_of(&path)
        );
    }

    #[test]
    fn rotated_numbers_are_never_reused_and_retention_is_no_alarm() {
        let dir = tempfile::tempdir().unwrap();
        let (m, k) = keys();
        let path = dir.path().join("audit.jsonl");
        let head = dir.path().join("audit.head");
        let full = AuditKeys::from_master(&m).unwrap().verify_keys();
        let a = signed_log(dir.path(), k, 1000, 600, 12);
        let numbers = |dir: &Path| -> Vec<u64> {
            rotated(&dir.join("audit.jsonl"))
                .into_iter()
                .map(|(n, _)| n)
                .collect()
        };
        let before = numbers(dir.path());
        assert!(before.len() >= 3, "{before:?}");
        // retention: the oldest file goes
        std::fs::remove_file(rotated(&path)[0].1.clone()).unwrap();
        let r = verify_with(&log_files(&path), &full, Some(&head)).unwrap();
        assert!(r.first.seq > Some(1), "{r:?}");
        for i in 12..30 {
            a.record(rec(i)).unwrap();
        }
        drop(a);
        let after = numbers(dir.path());
        assert!(!after.contains(&before[0]), "{before:?} then {after:?}");
        assert!(after.windows(2).all(|w| w[0] < w[1]) && after.len() > before.len() - 1);
        let r = verify_with(&log_files(&path), &full, Some(&head)).unwrap();
        assert_eq!(r.last.seq, Some(30));
        // a deleted file in the middle, or the newest rotated one, is found
        let files = rotated(&path);
        for gone in [files[1].1.clone(), files[files.len() - 1].1.clone()] {
            let kept = std::fs::read(&gone).unwrap();
            std::fs::remove_file(&gone).unwrap();
            let e = verify_with(&log_files(&path), &full, Some(&head)).unwrap_err();
            assert!(e.reason.contains("are missing before this one"), "{e}");
            std::fs::write(&gone, kept).unwrap();
        }
        // so is a deleted current file, by the head
        std::fs::remove_file(&path).unwrap();
        let e = verify_with(&log_files(&path), &full, Some(&head)).unwrap_err();
        assert!(
            e.reason.contains("says the server wrote up to seq 30"),
            "{e}"
        );
    }

    #[test]
    fn zero_records_are_not_intact() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("audit.jsonl");
        std::fs::write(&empty, "").unwrap();
        let e = verify(std::slice::from_ref(&empty)).unwrap_err();
        assert!(e.reason.contains("no records"), "{e}");
        assert!(verify(&[]).is_err());
    }

    #[test]
    fn signed_records_from_many_threads_all_verify() {
        let dir = tempfile::tempdir().unwrap();
        let (m, k) = keys();
        let mut s = Signing::new(k, dir.path().join("audit.head"));
        s.every_records = 50;
        let path = dir.path().join("audit.jsonl");
        let a = Arc::new(Audit::open_signed(&path, 1 << 30, s).unwrap());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let a = a.clone();
                std::thread::spawn(move || {
                    for n in 0..200 {
                        a.record(rec(t * 1000 + n)).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(a);
        let full = AuditKeys::from_master(&m).unwrap().verify_keys();
        let r = verify_with(&[path], &full, Some(&dir.path().join("audit.head"))).unwrap();
        assert_eq!((r.records, r.macs, r.head), (800, 800, Some(800)));
        assert!(r.signatures >= 800 / 50 && r.signatures < 800, "{r:?}");
    }

    /// What authentication costs per record: `cargo test --release -p kmip-server --lib
    /// audit::tests::cost_per_record -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn cost_per_record() {
        let per = |t: Instant, n: u32| t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
        let n = 20_000;
        for group in [1usize, 16] {
            for keyed in [false, true] {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("audit.jsonl");
                let a = if keyed {
                    let s = Signing::new(keys().1, dir.path().join("audit.head"));
                    Audit::open_signed(&path, 1 << 30, s).unwrap()
                } else {
                    Audit::open(&path, 1 << 30).unwrap()
                };
                let t = Instant::now();
                for i in 0..n / group as u32 {
                    let tickets: Vec<Ticket> = (0..group)
                        .map(|j| a.append(rec(i64::from(i) * 100 + j as i64)))
                        .collect();
                    a.wait_blocking(&tickets[0]).unwrap();
                }
                println!(
                    "groups of {group:2}, {}: {:.2} us per record",
                    if keyed {
                        "MAC + head + signatures"
                    } else {
                        "bare chain             "
                    },
                    per(t, n)
                );
            }
        }
        let (_, k) = keys();
        let body = vec![b'x'; 400];
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(k.mac.mac(&body));
        }
        println!("HMAC of 400 bytes: {:.2} us", per(t, n));
        let t = Instant::now();
        for _ in 0..1000 {
            std::hint::black_box(k.sign(&body).unwrap());
        }
        println!("Ed25519 signature: {:.2} us", per(t, 1000));
    }
}
