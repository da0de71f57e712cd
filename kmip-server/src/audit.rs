//! The audit log: one JSON line per request, append-only, hash-chained.
//!
//! Each record carries `prev`, the SHA-256 of the previous line, and `hash`, the SHA-256 of
//! itself without the `hash` field; `verify` therefore names the first line that was changed
//! (its own hash is wrong), removed or reordered (its `prev` does not match). When the file
//! passes its size limit it is renamed `FILE.N` and a new one begins, continuing the chain.
//!
//! Records hold who, from where, which operation, which objects and the result; never key
//! material, passwords or data.

use serde_json::{json, Map, Value as J};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum AuditError {
    #[error("audit log {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("audit log {0}: the last record is not valid JSON")]
    Corrupt(PathBuf),
}

const ZERO: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn sha256_hex(b: &[u8]) -> String {
    kmip_codec::text::hex(&openssl::sha::sha256(b))
}

struct Inner {
    file: File,
    size: u64,
    /// Hash of the last line written.
    last: String,
}

/// Records appended but not yet written, and the outcome their tickets will see.
struct Queue {
    records: Vec<Map<String, J>>,
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
    /// Held only by the one writing.
    file: Mutex<Inner>,
    written: tokio::sync::Notify,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
    move |source| AuditError::Io {
        path: path.to_owned(),
        source,
    }
}

impl Audit {
    /// Open (or create) the log at `path`, continuing the chain from its last line.
    pub fn open(path: &Path, max_bytes: u64) -> Result<Audit, AuditError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        // only a regular file has a chain to continue (a device such as /dev/full has none)
        let regular = std::fs::metadata(path)
            .map(|m| m.is_file())
            .unwrap_or(false);
        let last = match File::open(path) {
            Ok(_) if !regular => ZERO.to_owned(),
            Ok(f) => {
                let mut last = None;
                for line in BufReader::new(f).lines() {
                    last = Some(line.map_err(io(path))?);
                }
                match last {
                    Some(l) => sha256_hex(l.as_bytes()),
                    None => ZERO.to_owned(),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => ZERO.to_owned(),
            Err(e) => return Err(io(path)(e)),
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io(path))?;
        let size = file.metadata().map_err(io(path))?.len();
        Ok(Audit {
            path: path.to_owned(),
            max_bytes,
            queue: Mutex::new(Queue {
                records: Vec::new(),
                done: Arc::default(),
            }),
            file: Mutex::new(Inner { file, size, last }),
            written: tokio::sync::Notify::new(),
        })
    }

    /// Append one record (a JSON object) and wait until it is written; an error means the
    /// record is not in the log and the operation it describes must not take effect.
    pub fn record(&self, fields: Map<String, J>) -> Result<(), AuditError> {
        let t = self.append(fields);
        self.wait_blocking(&t)
    }

    /// Queue a record; it is written by the next [`Audit::wait`] or [`Audit::wait_blocking`].
    pub fn append(&self, fields: Map<String, J>) -> Ticket {
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

    fn write_group(&self, g: &mut Inner, records: Vec<Map<String, J>>) -> std::io::Result<()> {
        if g.size >= self.max_bytes {
            self.rotate(g)?;
        }
        let mut bytes = Vec::with_capacity(512 * records.len());
        let mut last = g.last.clone();
        for mut fields in records {
            fields.insert("prev".into(), J::String(last));
            fields.remove("hash");
            let hash = sha256_hex(&serde_json::to_vec(&fields)?);
            fields.insert("hash".into(), J::String(hash));
            let line = serde_json::to_string(&fields)?;
            last = sha256_hex(line.as_bytes());
            bytes.extend_from_slice(line.as_bytes());
            bytes.push(b'\n');
        }
        let written = g.file.write_all(&bytes).and_then(|_| g.file.flush());
        if let Err(e) = written {
            // a full disk may have taken part of the group: cut it off, so that the chain
            // stays verifiable and the next record follows the last whole one
            let size = g.size;
            let _ = g.file.set_len(size);
            return Err(e);
        }
        g.size += bytes.len() as u64;
        g.last = last;
        Ok(())
    }

    fn rotate(&self, g: &mut Inner) -> std::io::Result<()> {
        let mut n = 1;
        let rotated = loop {
            let p = PathBuf::from(format!("{}.{n}", self.path.display()));
            if !p.exists() {
                break p;
            }
            n += 1;
        };
        std::fs::rename(&self.path, &rotated)?;
        g.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        g.size = 0;
        Ok(())
    }
}

/// Why a chain does not verify: the file and 1-based line of the first bad record.
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

/// Verify the chain across `files` in order (oldest first). The first record of the first file
/// may continue an older, removed file; every later link must hold. Returns the record count.
pub fn verify(files: &[PathBuf]) -> Result<usize, Broken> {
    let mut prev: Option<String> = None;
    let mut count = 0;
    for file in files {
        let f = File::open(file).map_err(|e| Broken {
            file: file.clone(),
            line: 0,
            reason: e.to_string(),
        })?;
        for (i, line) in BufReader::new(f).lines().enumerate() {
            let broken = |reason: &str| Broken {
                file: file.clone(),
                line: i + 1,
                reason: reason.to_owned(),
            };
            let line = line.map_err(|e| broken(&e.to_string()))?;
            let mut rec: Map<String, J> = match serde_json::from_str(&line) {
                Ok(J::Object(m)) => m,
                _ => return Err(broken("not a JSON object: the record was changed")),
            };
            let claimed = rec
                .remove("hash")
                .and_then(|h| h.as_str().map(str::to_owned));
            let body = J::Object(rec.clone()).to_string();
            if claimed.as_deref() != Some(sha256_hex(body.as_bytes()).as_str()) {
                return Err(broken(
                    "the record was changed (its hash does not match its content)",
                ));
            }
            let link = rec.get("prev").and_then(J::as_str).unwrap_or("");
            if let Some(p) = &prev {
                if link != p {
                    return Err(broken(
                        "the previous record was removed, or records were reordered",
                    ));
                }
            }
            prev = Some(sha256_hex(line.as_bytes()));
            count += 1;
        }
    }
    Ok(count)
}

/// The record of one request and its response.
pub fn request_record(
    now: i64,
    identity: &str,
    peer: &str,
    request: &kmip_codec::Ttlv,
    response: &kmip_codec::Ttlv,
) -> Map<String, J> {
    use kmip_codec::vocab::tag;
    let version = crate::dispatch::claimed_version(request)
        .map(|(a, b)| format!("{a}.{b}"))
        .unwrap_or_default();
    let requests: Vec<&kmip_codec::Ttlv> = request.children_with(tag::BATCH_ITEM).collect();
    let mut items = Vec::new();
    for (i, r) in response.children_with(tag::BATCH_ITEM).enumerate() {
        let operation = r
            .child(tag::OPERATION)
            .or_else(|| requests.get(i).and_then(|q| q.child(tag::OPERATION)))
            .and_then(|o| o.as_enum())
            .map(|o| {
                kmip_codec::vocab::enum_def("Operation")
                    .and_then(|d| d.by_value(o))
                    .map(|e| e.xml.to_owned())
                    .unwrap_or_else(|| format!("0x{o:08X}"))
            });
        // identifiers named in the request and returned in the response; nothing else
        let mut ids: Vec<String> = Vec::new();
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
                        if !ids.iter().any(|x| x == t) {
                            ids.push(t.to_owned());
                        }
                    }
                }
            }
        }
        let name = |t, table: &str| {
            r.child(t).and_then(|v| v.as_enum()).map(|v| {
                kmip_codec::vocab::enum_def(table)
                    .and_then(|d| d.by_value(v))
                    .map(|e| e.xml.to_owned())
                    .unwrap_or_else(|| format!("0x{v:08X}"))
            })
        };
        items.push(json!({
            "operation": operation,
            "objects": ids,
            "result": name(tag::RESULT_STATUS, "ResultStatus"),
            "reason": name(tag::RESULT_REASON, "ResultReason"),
        }));
    }
    let mut m = Map::new();
    m.insert("time".into(), J::String(kmip_codec::time::format_secs(now)));
    m.insert("identity".into(), J::String(identity.to_owned()));
    m.insert("peer".into(), J::String(peer.to_owned()));
    m.insert("version".into(), J::String(version));
    m.insert("items".into(), J::Array(items));
    m
}

/// The state changes the server made on its own while serving the request (an Activation or
/// Deactivation Date reached), as `automatic: [{object, from, to}]`.
pub fn add_automatic_changes(
    record: &mut Map<String, J>,
    changes: &[lifecycle::object::AutomaticChange],
) {
    if changes.is_empty() {
        return;
    }
    let list: Vec<J> = changes
        .iter()
        .map(|c| json!({"object": c.id, "from": format!("{:?}", c.from), "to": format!("{:?}", c.to)}))
        .collect();
    record.insert("automatic".into(), J::Array(list));
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
}
