//! Metrics in the Prometheus text format, and health, on `--metrics-listen` (plain HTTP, off by
//! default): what an operator graphs and alerts on. The exposition is `prometheus-client`'s;
//! this module only names the metrics, records into them and answers three paths.
//!
//! The registry is process-wide, as the audit writer and the listener record into it without
//! a handle on the server.

use crate::Server;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One operation's outcome, as counted.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub operation: String,
    pub result: String,
    pub version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabel {
    operation: String,
}

/// Why a connection was refused or dropped before it was served.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum Refusal {
    /// The per-address or global budget of unfinished handshakes was full.
    HandshakeBudget,
    /// The handshake failed (bad certificate, revoked, protocol error).
    HandshakeFailed,
    /// The handshake did not finish within its deadline.
    HandshakeTimeout,
    /// Every connection slot was taken.
    ConnectionLimit,
    /// The identity held its share of the connection slots already.
    IdentityConnectionLimit,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabel {
    reason: Refusal,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ObjectTypeLabel {
    object_type: String,
}

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    operations: Family<Outcome, Counter>,
    latency: Family<OperationLabel, Histogram>,
    open_connections: Gauge,
    refused: Family<RefusalLabel, Counter>,
    audit_write: Histogram,
    store_commit: Histogram,
    store_conflicts: Counter,
    objects: Family<ObjectTypeLabel, Gauge>,
}

/// Seconds, from 10 us to about 40 s in factors of 2: a Get, an fsync, an RSA-4096 generation.
fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.000_01, 2.0, 22))
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn get() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("kmip");
        let m = Metrics {
            registry: Registry::default(),
            operations: Family::default(),
            latency: Family::new_with_constructor(seconds),
            open_connections: Gauge::default(),
            refused: Family::default(),
            audit_write: seconds(),
            store_commit: seconds(),
            store_conflicts: Counter::default(),
            objects: Family::default(),
        };
        registry.register(
            "operations",
            "Batch items answered, by operation, result and protocol version",
            m.operations.clone(),
        );
        registry.register(
            "operation_duration_seconds",
            "Time an operation took inside the server, by operation",
            m.latency.clone(),
        );
        registry.register(
            "open_connections",
            "Client connections past their handshake and being served",
            m.open_connections.clone(),
        );
        registry.register(
            "refused_connections",
            "Connections refused or dropped before they were served, by reason",
            m.refused.clone(),
        );
        registry.register(
            "audit_write_duration_seconds",
            "Time to write one group of audit records (and the chain head)",
            m.audit_write.clone(),
        );
        registry.register(
            "store_commit_duration_seconds",
            "Time a message's commit took: its fsync, and the write of its audit record, which the commit runs first (audit before effect)",
            m.store_commit.clone(),
        );
        registry.register(
            "store_conflicts",
            "Commits refused because another request changed a record meanwhile (the message ran again)",
            m.store_conflicts.clone(),
        );
        registry.register(
            "objects",
            "Managed objects in the store, by object type (read from the index at each scrape)",
            m.objects.clone(),
        );
        registry.register(
            "build",
            "The server's version",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        Metrics { registry, ..m }
    }

    /// One batch item answered.
    pub fn operation(&self, outcome: Outcome, took: Duration) {
        self.latency
            .get_or_create(&OperationLabel {
                operation: outcome.operation.clone(),
            })
            .observe(took.as_secs_f64());
        self.operations.get_or_create(&outcome).inc();
    }

    /// A connection starts being served; the guard ends it.
    pub fn connection(&self) -> ConnectionGuard {
        self.open_connections.inc();
        ConnectionGuard
    }

    pub fn refused(&self, reason: Refusal) {
        self.refused.get_or_create(&RefusalLabel { reason }).inc();
    }

    pub fn audit_written(&self, took: Duration) {
        self.audit_write.observe(took.as_secs_f64());
    }

    pub fn committed(&self, took: Duration) {
        self.store_commit.observe(took.as_secs_f64());
    }

    pub fn conflict(&self) {
        self.store_conflicts.inc();
    }

    /// The exposition, read at most once a second however often it is asked for: the object
    /// counts read the index, which a stream of scrapes must not turn into a load.
    fn render_cached(&self, server: &Server) -> Result<String, String> {
        static LAST: std::sync::Mutex<Option<(std::time::Instant, String)>> =
            std::sync::Mutex::new(None);
        let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, text)) = last.as_ref() {
            if at.elapsed() < Duration::from_secs(1) {
                return Ok(text.clone());
            }
        }
        let text = self.render(server)?;
        *last = Some((std::time::Instant::now(), text.clone()));
        Ok(text)
    }

    /// The exposition, with the object counts read now.
    fn render(&self, server: &Server) -> Result<String, String> {
        let counts = server.manager.object_counts().map_err(|e| e.to_string())?;
        for (object_type, n) in counts {
            let name = kmip_codec::vocab::enum_def("ObjectType")
                .and_then(|d| d.by_value(object_type))
                .map(|e| e.xml.to_owned())
                .unwrap_or_else(|| format!("0x{object_type:08X}"));
            self.objects
                .get_or_create(&ObjectTypeLabel { object_type: name })
                .set(n as i64);
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .map_err(|e| e.to_string())?;
        Ok(out)
    }
}

/// Counts a served connection until dropped.
pub struct ConnectionGuard;

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        get().open_connections.dec();
    }
}

/// The operation's name for the `operation` label: one of the server's operations, or
/// "unknown". Never the code a client sent: every distinct label is a series kept for the
/// life of the process, and a client can send four billion codes.
pub fn operation_name(code: u32) -> &'static str {
    crate::ops::find(code).map_or("unknown", |o| o.name)
}

/// Connections the metrics port keeps waiting for their request at once: a scraper and a few
/// probes. When more come, the oldest waiting one is closed, so that the port cannot take the
/// descriptors the KMIP listener needs, and a flood of idle connections cannot starve a probe
/// that sends its request at once.
const MAX_WAITING: usize = 8;

/// Connections still waiting for their request, oldest first.
#[derive(Default)]
struct Waiting {
    next: u64,
    queue: std::collections::VecDeque<(u64, tokio::sync::oneshot::Sender<()>)>,
}

/// Serve `/metrics`, `/healthz` and `/readyz` on `listener`, for as long as the process runs.
pub async fn serve(listener: tokio::net::TcpListener, server: Arc<Server>) {
    let waiting = Arc::new(std::sync::Mutex::new(Waiting::default()));
    loop {
        let mut stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // out of descriptors: back off rather than spin
                tracing::warn!(error = %e, "metrics: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (evict, evicted) = tokio::sync::oneshot::channel();
        let id = {
            let mut w = waiting.lock().unwrap_or_else(|p| p.into_inner());
            if w.queue.len() >= MAX_WAITING {
                if let Some((_, oldest)) = w.queue.pop_front() {
                    let _ = oldest.send(());
                }
            }
            w.next += 1;
            let id = w.next;
            w.queue.push_back((id, evict));
            id
        };
        let server = server.clone();
        let waiting = waiting.clone();
        tokio::spawn(async move {
            // one small request per connection: a scraper or a probe, never a client
            let mut buf = vec![0u8; 2048];
            let mut n = 0;
            // the request line may come in pieces: read up to the end of the header
            let read = async {
                while n < buf.len() && !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf[n..]).await {
                        Ok(0) | Err(_) => return false,
                        Ok(k) => n += k,
                    }
                }
                true
            };
            let whole = tokio::select! {
                r = tokio::time::timeout(Duration::from_secs(5), read) => r == Ok(true),
                _ = evicted => false,
            };
            waiting
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .queue
                .retain(|(i, _)| *i != id);
            if !whole {
                return;
            }
            let request = String::from_utf8_lossy(&buf[..n]);
            let mut words = request.split_whitespace();
            let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
            let (status, body) = match (method, path) {
                ("GET", "/metrics") => {
                    let s = server.clone();
                    // the object counts read the store: not on the async worker
                    match tokio::task::spawn_blocking(move || get().render_cached(&s)).await {
                        Ok(Ok(text)) => ("200 OK", text),
                        Ok(Err(e)) => ("503 Service Unavailable", format!("{e}\n")),
                        Err(_) => ("500 Internal Server Error", "failed\n".into()),
                    }
                }
                ("GET", "/healthz") => ("200 OK", "ok\n".into()),
                ("GET", "/readyz") => {
                    let s = server.clone();
                    match tokio::task::spawn_blocking(move || s.manager.ready()).await {
                        Ok(Ok(())) => ("200 OK", "ready\n".into()),
                        Ok(Err(e)) => ("503 Service Unavailable", format!("not ready: {e}\n")),
                        Err(_) => ("503 Service Unavailable", "not ready\n".into()),
                    }
                }
                ("GET", _) => ("404 Not Found", "not found\n".into()),
                _ => ("405 Method Not Allowed", "GET only\n".into()),
            };
            let content_type = if path == "/metrics" {
                "application/openmetrics-text; version=1.0.0; charset=utf-8"
            } else {
                "text/plain; charset=utf-8"
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(body.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}
