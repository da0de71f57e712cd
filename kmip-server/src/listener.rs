//! The TLS listeners: mutual TLS 1.2/1.3 with OpenSSL, client certificates checked against
//! CRLs, TLS settings reloaded on request (SIGHUP) without touching open connections, a budget
//! of pending handshakes apart from the bound on served connections, accept errors that back
//! off, and a drain of in-flight connections on shutdown. The KMIP port speaks framed TTLV; the
//! optional HTTPS port carries the same messages in HTTP POSTs.
//!
//! A connection is first a pending handshake: it counts against `max_handshakes` in all and
//! `max_handshakes_per_address` per source address (IPv4 address, IPv6 /64), and when either
//! is full the oldest pending handshake is dropped to make room, so that a flood of
//! connections that never speak cannot keep newer clients out; it has `handshake_timeout` to
//! finish. No TLS state is made until the client's first byte arrives. Only an authenticated
//! connection takes one of the `max_connections` slots.

use crate::config::CrlExpired;
use crate::session::{self, Timeouts};
use crate::Server;
use openssl::asn1::Asn1Time;
use openssl::nid::Nid;
use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod, SslVerifyMode, SslVersion};
use openssl::x509::store::X509Lookup;
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::{X509Crl, X509};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Semaphore};
use tokio_openssl::SslStream;

/// X509_V_ERR_CRL_HAS_EXPIRED (openssl/x509_vfy.h).
const CRL_HAS_EXPIRED: i32 = 12;

/// An acceptor that requires a client certificate chaining to `client_ca`.
pub fn acceptor(
    cert: &Path,
    key: &Path,
    client_ca: &Path,
) -> Result<SslAcceptor, openssl::error::ErrorStack> {
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())?;
    b.set_min_proto_version(Some(SslVersion::TLS1_2))?;
    b.set_read_ahead(true);
    b.set_certificate_chain_file(cert)?;
    b.set_private_key_file(key, SslFiletype::PEM)?;
    b.check_private_key()?;
    b.set_ca_file(client_ca)?;
    b.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
    Ok(b.build())
}

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A certificate, key, CA or CRL file that does not load: which option (or generated
    /// file) it is, the file, and OpenSSL's reasons without its stack.
    #[error("{what} {path}: {reason}")]
    File {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("{what}: {source}")]
    OpenSsl {
        what: String,
        source: openssl::error::ErrorStack,
    },
    #[error("--client-crl {0}: no CRL in the file")]
    NoCrl(PathBuf),
    #[error("{path}: the CRL of {issuer} does not verify under that client CA's key")]
    CrlSignature { path: PathBuf, issuer: String },
}

/// OpenSSL's reasons ("no start line", "key values mismatch", "certificate verify failed"),
/// without the library's function names, files and line numbers that its stack prints.
pub fn openssl_reason(e: &openssl::error::ErrorStack) -> String {
    let reasons: Vec<String> = e
        .errors()
        .iter()
        .map(|x| match x.reason() {
            // the one reason that says nothing to someone who has not read OpenSSL's PEM code
            Some("no start line") => "not PEM of the expected kind (no BEGIN line)".to_owned(),
            Some(r) => r.to_owned(),
            None => format!("error 0x{:x}", x.code()),
        })
        .collect();
    if reasons.is_empty() {
        "unknown OpenSSL error".into()
    } else {
        reasons.join(": ")
    }
}

fn ossl(what: impl std::fmt::Display) -> impl FnOnce(openssl::error::ErrorStack) -> TlsError {
    let what = what.to_string();
    move |source| TlsError::OpenSsl { what, source }
}

/// Where the TLS settings come from; read again at every reload.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The server's certificate chain (PEM).
    pub cert: PathBuf,
    /// The server's private key (PEM).
    pub key: PathBuf,
    /// The CAs client certificates must chain to (PEM).
    pub client_ca: PathBuf,
    /// CRLs (PEM, any number per file) of the client CAs; none: no revocation check.
    pub crls: Vec<PathBuf>,
    /// What an expired CRL does.
    pub crl_expired: CrlExpired,
    /// The files came from --tls-cert, --tls-key and --client-ca (the generated PKI
    /// otherwise): what errors name.
    pub from_options: bool,
}

/// The PEM blocks of one kind in `text`, each a whole PEM document.
fn pem_blocks<'a>(text: &'a str, label: &str) -> Vec<&'a str> {
    let (begin, end) = (
        format!("-----BEGIN {label}-----"),
        format!("-----END {label}-----"),
    );
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(b) = rest.find(&begin) {
        let Some(e) = rest[b..].find(&end) else { break };
        let stop = b + e + end.len();
        out.push(&rest[b..stop]);
        rest = &rest[stop..];
    }
    out
}

fn name_of(n: &openssl::x509::X509NameRef) -> String {
    n.entries()
        .map(|e| {
            let key = e.object().nid().short_name().unwrap_or("?");
            let value = e.data().to_string().unwrap_or_default();
            format!("{key}={value}")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Which file of [`TlsFiles`] an error is about.
#[derive(Clone, Copy)]
enum Which {
    Cert,
    Key,
    ClientCa,
}

impl TlsFiles {
    /// What an error calls a file: its option, or the generated file it is.
    fn label(&self, which: Which) -> &'static str {
        match (self.from_options, which) {
            (true, Which::Cert) => "--tls-cert",
            (true, Which::Key) => "--tls-key",
            (true, Which::ClientCa) => "--client-ca",
            (false, Which::Cert) => "the generated server certificate",
            (false, Which::Key) => "the generated server key",
            (false, Which::ClientCa) => "the generated CA certificate",
        }
    }

    fn path(&self, which: Which) -> &Path {
        match which {
            Which::Cert => &self.cert,
            Which::Key => &self.key,
            Which::ClientCa => &self.client_ca,
        }
    }

    /// The file's bytes, or an error naming the option and the file: missing, unreadable, or
    /// without a PEM block of the kind it must hold (OpenSSL 3 says "unsupported: PEM lib"
    /// for a key file that holds none).
    fn read(&self, which: Which) -> Result<Vec<u8>, TlsError> {
        let fail = |reason: String| TlsError::File {
            what: self.label(which),
            path: self.path(which).to_owned(),
            reason,
        };
        let bytes = std::fs::read(self.path(which)).map_err(|e| fail(e.to_string()))?;
        let text = String::from_utf8_lossy(&bytes);
        let (wanted, kind) = match which {
            Which::Key => ("PRIVATE KEY-----", "a private key"),
            Which::Cert | Which::ClientCa => ("-----BEGIN CERTIFICATE-----", "a certificate"),
        };
        if !text.contains(wanted) {
            let found = text
                .find("-----BEGIN ")
                .and_then(|i| text[i + 11..].split("-----").next())
                .map(|label| format!("it holds PEM {label}, not {kind}"))
                .unwrap_or_else(|| format!("not PEM: no -----BEGIN line of {kind}"));
            return Err(fail(found));
        }
        Ok(bytes)
    }

    fn bad(&self, which: Which) -> impl FnOnce(openssl::error::ErrorStack) -> TlsError + '_ {
        move |e| TlsError::File {
            what: self.label(which),
            path: self.path(which).to_owned(),
            reason: openssl_reason(&e),
        }
    }

    /// Read every file and build the acceptor; nothing is half-applied: an error leaves the
    /// caller with the settings it had.
    pub fn acceptor(&self) -> Result<SslAcceptor, TlsError> {
        let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())
            .map_err(ossl("TLS context"))?;
        b.set_min_proto_version(Some(SslVersion::TLS1_2))
            .map_err(ossl("TLS context"))?;
        // a record's header and body in one recv(2), where OpenSSL alone reads them in two
        b.set_read_ahead(true);
        // read first: OpenSSL's own error for a missing file is "system library"
        self.read(Which::Cert)?;
        b.set_certificate_chain_file(&self.cert)
            .map_err(self.bad(Which::Cert))?;
        self.read(Which::Key)?;
        // OpenSSL checks the pair as it loads the key, and again here
        let mismatch = |e: openssl::error::ErrorStack| TlsError::File {
            what: self.label(Which::Key),
            path: self.key.clone(),
            reason: format!(
                "does not match the certificate {} ({})",
                self.cert.display(),
                openssl_reason(&e)
            ),
        };
        b.set_private_key_file(&self.key, SslFiletype::PEM)
            .map_err(|e| {
                if openssl_reason(&e).contains("key values mismatch") {
                    mismatch(e)
                } else {
                    self.bad(Which::Key)(e)
                }
            })?;
        b.check_private_key().map_err(mismatch)?;
        let ca_text = self.read(Which::ClientCa)?;
        let cas = X509::stack_from_pem(&ca_text).map_err(self.bad(Which::ClientCa))?;
        b.set_ca_file(&self.client_ca)
            .map_err(self.bad(Which::ClientCa))?;
        let verify = SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT;
        if self.crls.is_empty() {
            b.set_verify_callback(verify, |ok, ctx| {
                if !ok {
                    record_rejection(ctx);
                }
                ok
            });
            return Ok(b.build());
        }
        let now = Asn1Time::days_from_now(0).map_err(ossl("time"))?;
        let mut covered = Vec::new();
        for path in &self.crls {
            let text = std::fs::read_to_string(path).map_err(|e| TlsError::File {
                what: "--client-crl",
                path: path.clone(),
                reason: e.to_string(),
            })?;
            let blocks = pem_blocks(&text, "X509 CRL");
            if blocks.is_empty() {
                return Err(TlsError::NoCrl(path.clone()));
            }
            for block in blocks {
                let crl = X509Crl::from_pem(block.as_bytes()).map_err(|e| TlsError::File {
                    what: "--client-crl",
                    path: path.clone(),
                    reason: openssl_reason(&e),
                })?;
                let issuer = name_of(crl.issuer_name());
                // a CRL is taken only from a client CA, with that CA's signature: a damaged
                // or foreign file is refused at load, not discovered at a handshake
                let named: Vec<&X509> = cas
                    .iter()
                    .filter(|c| {
                        c.subject_name()
                            .try_cmp(crl.issuer_name())
                            .is_ok_and(|o| o.is_eq())
                    })
                    .collect();
                // (two client CAs may share a name across a key rollover: either key will do)
                let signed = named.iter().any(|ca| {
                    ca.public_key()
                        .and_then(|k| crl.verify(&k))
                        .unwrap_or(false)
                });
                if named.is_empty() {
                    tracing::warn!(
                        crl = %path.display(),
                        issuer,
                        "a CRL of a CA that is not a client CA: unused"
                    );
                } else if !signed {
                    return Err(TlsError::CrlSignature {
                        path: path.clone(),
                        issuer,
                    });
                } else {
                    covered.push(issuer.clone());
                }
                let expired = crl
                    .next_update()
                    .map(|n| n.compare(&now).is_ok_and(|o| o.is_lt()))
                    .unwrap_or(false);
                let next_update = crl.next_update().map(|n| n.to_string()).unwrap_or_default();
                let revoked = crl.get_revoked().map(|r| r.len()).unwrap_or(0);
                match (expired, self.crl_expired) {
                    (true, CrlExpired::Refuse) => tracing::error!(
                        crl = %path.display(), issuer, next_update,
                        "the CRL has expired: every client certificate of this CA is refused until a current CRL is loaded (SIGHUP)"
                    ),
                    (true, CrlExpired::Warn) => tracing::warn!(
                        crl = %path.display(), issuer, next_update,
                        "the CRL has expired: still applied, and clients of this CA are accepted unless it revokes them (--crl-expired warn)"
                    ),
                    (false, _) => tracing::info!(
                        crl = %path.display(), issuer, next_update, revoked,
                        "client CRL loaded"
                    ),
                }
            }
            b.cert_store_mut()
                .add_lookup(X509Lookup::file())
                .and_then(|l| l.load_crl_file(path, SslFiletype::PEM))
                .map_err(ossl(path.display()))?;
        }
        for ca in &cas {
            let name = name_of(ca.subject_name());
            if !covered.contains(&name) {
                tracing::warn!(
                    ca = name,
                    "no CRL for this client CA: its client certificates are refused"
                );
            }
        }
        b.cert_store_mut()
            .set_flags(X509VerifyFlags::CRL_CHECK)
            .map_err(ossl("CRL check"))?;
        let warn_expired = self.crl_expired == CrlExpired::Warn;
        b.set_verify_callback(verify, move |ok, ctx| {
            if !ok && warn_expired && ctx.error().as_raw() == CRL_HAS_EXPIRED {
                tracing::warn!(
                    "a client certificate checked against an expired CRL (--crl-expired warn)"
                );
                return true;
            }
            if !ok {
                record_rejection(ctx);
            }
            ok
        });
        Ok(b.build())
    }
}

/// A client certificate the verification refused: what the handshake's failure is logged
/// with. OpenSSL keeps no peer certificate after a failed verification, so the verify
/// callback copies it into the connection's `Ssl`.
#[derive(Debug, Clone, Default)]
struct Rejected {
    subject: String,
    issuer: String,
    /// The verification error ("unable to get local issuer certificate", "certificate has
    /// expired", "certificate revoked").
    reason: String,
}

type RejectedSlot = Mutex<Option<Rejected>>;

fn rejected_index() -> Option<openssl::ex_data::Index<openssl::ssl::Ssl, RejectedSlot>> {
    static INDEX: std::sync::OnceLock<
        Option<openssl::ex_data::Index<openssl::ssl::Ssl, RejectedSlot>>,
    > = std::sync::OnceLock::new();
    *INDEX.get_or_init(|| openssl::ssl::Ssl::new_ex_index().ok())
}

/// In the verify callback: the first refusal's certificate (the client's own, the chain's
/// first) and reason, kept in the connection's slot.
fn record_rejection(ctx: &mut openssl::x509::X509StoreContextRef) {
    let (Ok(ssl_index), Some(slot_index)) =
        (openssl::x509::X509StoreContext::ssl_idx(), rejected_index())
    else {
        return;
    };
    let cert = ctx
        .chain()
        .and_then(|c| c.get(0))
        .or_else(|| ctx.current_cert());
    let rejected = Rejected {
        subject: cert.map(|c| name_of(c.subject_name())).unwrap_or_default(),
        issuer: cert.map(|c| name_of(c.issuer_name())).unwrap_or_default(),
        reason: ctx.error().error_string().to_owned(),
    };
    if let Some(slot) = ctx
        .ex_data(ssl_index)
        .and_then(|ssl| ssl.ex_data(slot_index))
    {
        slot.lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(rejected);
    }
}

/// The TLS settings in force, replaced whole by `reload`; each new connection takes the
/// acceptor current at its arrival, and open connections keep theirs.
pub struct Tls {
    files: TlsFiles,
    current: RwLock<Arc<SslAcceptor>>,
}

impl Tls {
    pub fn new(files: TlsFiles) -> Result<Tls, TlsError> {
        let acceptor = files.acceptor()?;
        Ok(Tls {
            files,
            current: RwLock::new(Arc::new(acceptor)),
        })
    }

    /// Read the certificate, key, client CAs and CRLs again; on an error the settings in
    /// force stay.
    pub fn reload(&self) -> Result<(), TlsError> {
        let acceptor = Arc::new(self.files.acceptor()?);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = acceptor;
        Ok(())
    }

    pub fn current(&self) -> Arc<SslAcceptor> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Connections the kernel queues for `accept`: a burst of arrivals (or a flood, which the
/// handshake budget then sorts out) is not refused at the door, where a client only retries
/// its SYN after a second or more. The kernel caps it at `net.core.somaxconn`.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Listen on `addr` (`HOST:PORT`, the first address it resolves to that binds) with
/// `LISTEN_BACKLOG`.
pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    listen(reserve(addr).await?)
}

/// Bind `addr` (`HOST:PORT`, the first address it resolves to that binds) without listening:
/// the port is the server's, so a taken one is found before anything is created, and clients
/// are refused (not left waiting in a backlog) until [`listen`] once the server is ready.
pub async fn reserve(addr: &str) -> std::io::Result<tokio::net::TcpSocket> {
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        let socket = if a.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            // IPv6 only: `[::]:5696` beside `0.0.0.0:5696` would otherwise take the IPv4
            // port too, and the second bind fail; each --listen means its own family
            let s = socket2::Socket::new(
                socket2::Domain::IPV6,
                socket2::Type::STREAM,
                Some(socket2::Protocol::TCP),
            )?;
            s.set_only_v6(true)?;
            s.set_nonblocking(true)?;
            tokio::net::TcpSocket::from_std_stream(s.into())
        };
        socket.set_reuseaddr(true)?;
        // SO_REUSEADDR lets two sockets bind one port as long as neither listens: a port a
        // server listens on is refused here, but only listen() finds another bound-only one
        match socket.bind(a) {
            Ok(()) => return Ok(socket),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{addr}: no address to listen on"),
        )
    }))
}

/// Start listening on a [`reserve`]d socket, with `LISTEN_BACKLOG`.
pub fn listen(socket: tokio::net::TcpSocket) -> std::io::Result<TcpListener> {
    socket.listen(LISTEN_BACKLOG)
}

/// What a listening port speaks after the TLS handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// KMIP's own framing: TTLV messages back to back (port 5696).
    Ttlv,
    /// `POST /kmip` with TTLV, KMIP XML or KMIP JSON bodies.
    Https,
}

/// Bounds on connections.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Authenticated connections served at once.
    pub max_connections: usize,
    /// ... and per identity (0: no such limit), so that one certificate cannot take every
    /// slot and lock the others out.
    pub max_connections_per_identity: usize,
    /// Connections that have not finished the TLS handshake, in all.
    pub max_handshakes: usize,
    /// ... and per source address (an IPv6 /64 counts as one address).
    pub max_handshakes_per_address: usize,
    /// Time from accept to the end of the TLS handshake.
    pub handshake_timeout: Duration,
}

/// Where a connection comes from, for the per-address budget: an IPv4 address, or the /64
/// prefix of an IPv6 one (what one subscriber gets).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Source {
    V4(std::net::Ipv4Addr),
    V6(u64),
}

impl Source {
    fn of(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V4(a) => Source::V4(a),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => Source::V4(v4),
                None => Source::V6((u128::from(a) >> 64) as u64),
            },
        }
    }
}

/// The pending handshakes, oldest first. Dropping an entry's sender tells its task to close.
struct Pending {
    next: u64,
    all: BTreeMap<u64, (Source, oneshot::Sender<()>)>,
    by_source: HashMap<Source, BTreeSet<u64>>,
    max_total: usize,
    max_per_source: usize,
    evicted: u64,
    last_warning: Option<Instant>,
}

impl Pending {
    fn new(limits: &Limits) -> Pending {
        Pending {
            next: 0,
            all: BTreeMap::new(),
            by_source: HashMap::new(),
            max_total: limits.max_handshakes.max(1),
            max_per_source: limits.max_handshakes_per_address.max(1),
            evicted: 0,
            last_warning: None,
        }
    }

    fn remove(&mut self, id: u64) -> bool {
        let Some((source, _tx)) = self.all.remove(&id) else {
            return false;
        };
        if let Some(ids) = self.by_source.get_mut(&source) {
            ids.remove(&id);
            if ids.is_empty() {
                self.by_source.remove(&source);
            }
        }
        true
    }

    /// Make room for a handshake from `source`, dropping the oldest ones if a bound is
    /// reached, and enter it.
    fn admit(&mut self, source: Source) -> (u64, oneshot::Receiver<()>) {
        while self
            .by_source
            .get(&source)
            .is_some_and(|ids| ids.len() >= self.max_per_source)
        {
            let oldest = self.by_source[&source].first().copied();
            if let Some(id) = oldest {
                self.remove(id);
                self.evicted += 1;
                crate::metrics::get().refused(crate::metrics::Refusal::HandshakeBudget);
            }
        }
        while self.all.len() >= self.max_total {
            let oldest = self.all.first_key_value().map(|(id, _)| *id);
            if let Some(id) = oldest {
                self.remove(id);
                self.evicted += 1;
                crate::metrics::get().refused(crate::metrics::Refusal::HandshakeBudget);
            }
        }
        if self.evicted > 0
            && self
                .last_warning
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(10))
        {
            tracing::warn!(
                evicted = self.evicted,
                pending = self.all.len(),
                "handshake budget full: the oldest pending handshakes were closed"
            );
            self.evicted = 0;
            self.last_warning = Some(Instant::now());
        }
        let id = self.next;
        self.next += 1;
        let (tx, rx) = oneshot::channel();
        self.all.insert(id, (source, tx));
        self.by_source.entry(source).or_default().insert(id);
        (id, rx)
    }
}

/// A pending handshake's place in the budget, given back when the handshake ends either way.
struct PendingEntry {
    table: Arc<Mutex<Pending>>,
    id: u64,
}

impl Drop for PendingEntry {
    fn drop(&mut self) {
        self.table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(self.id);
    }
}

/// Why a handshake did not finish.
#[derive(Debug, Error)]
enum HandshakeError {
    /// Closed or reset before its first byte: a port probe or a health check, no TLS client.
    #[error("closed before the handshake: {0}")]
    Silent(std::io::Error),
    #[error("{}", openssl_reason(.0))]
    Tls(openssl::error::ErrorStack),
    /// OpenSSL's reason, and the client certificate that verification refused, if it was.
    #[error("{reason}")]
    Handshake {
        reason: String,
        rejected: Option<Rejected>,
    },
}

/// A failed handshake's reason in words: OpenSSL's reasons, with the verification error when
/// a certificate was refused, or what happened to the connection.
fn handshake_reason(e: &openssl::ssl::Error, rejected: Option<&Rejected>) -> String {
    let base = match (e.ssl_error(), e.io_error()) {
        (Some(stack), _) => openssl_reason(stack),
        (None, Some(io)) => io.to_string(),
        (None, None) if e.code() == openssl::ssl::ErrorCode::ZERO_RETURN => {
            "the client closed the connection".into()
        }
        (None, None) if e.code() == openssl::ssl::ErrorCode::SYSCALL => {
            "the client closed the connection during the handshake".into()
        }
        (None, None) => e.to_string(),
    };
    match rejected {
        Some(r) if !r.reason.is_empty() => format!("{base} ({})", r.reason),
        _ => base,
    }
}

async fn handshake(
    tcp: tokio::net::TcpStream,
    acceptor: &SslAcceptor,
) -> Result<SslStream<tokio::net::TcpStream>, HandshakeError> {
    // a connection that says nothing costs a socket and this task, no TLS state
    // (peek, not readable(): a fresh socket may report readable before a byte arrives)
    match tcp.peek(&mut [0u8; 1]).await {
        Ok(0) => {
            return Err(HandshakeError::Silent(
                std::io::ErrorKind::UnexpectedEof.into(),
            ));
        }
        Ok(_) => {}
        Err(e) => return Err(HandshakeError::Silent(e)),
    }
    let mut ssl = openssl::ssl::Ssl::new(acceptor.context()).map_err(HandshakeError::Tls)?;
    if let Some(i) = rejected_index() {
        ssl.set_ex_data(i, Mutex::new(None));
    }
    let mut stream = SslStream::new(ssl, tcp).map_err(HandshakeError::Tls)?;
    if let Err(e) = std::pin::Pin::new(&mut stream).accept().await {
        let rejected = rejected_index()
            .and_then(|i| stream.ssl().ex_data(i))
            .and_then(|slot| slot.lock().unwrap_or_else(|p| p.into_inner()).take());
        return Err(HandshakeError::Handshake {
            reason: handshake_reason(&e, rejected.as_ref()),
            rejected,
        });
    }
    Ok(stream)
}

/// Accept errors that concern one connection only (it went away before we took it): the next
/// accept may succeed at once. Any other (EMFILE, ENFILE, ENOBUFS, ENOMEM) backs off.
fn per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionAborted | ConnectionReset | Interrupted)
}

const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Serve until `shutdown` resolves, then wait for open connections to finish their current
/// message (they are told to stop reading new ones by the idle timeout or the client).
pub async fn run(
    server: Arc<Server>,
    listeners: Vec<(TcpListener, Transport)>,
    tls: Arc<Tls>,
    timeouts: Timeouts,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let held = Arc::new(Held::default());
    let pending = Arc::new(Mutex::new(Pending::new(&limits)));
    // sessions finish the message in hand and close when this turns true
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    // after an accept error, no accept before this instant
    let mut resume_at: Option<tokio::time::Instant> = None;
    let mut backoff = Duration::ZERO;
    let (mut accept_errors, mut last_accept_warning) = (0u64, None::<Instant>);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            (accepted, transport) = async {
                if let Some(t) = resume_at {
                    tokio::time::sleep_until(t).await;
                }
                accept_any(&listeners).await
            } => {
                resume_at = None;
                let (tcp, peer) = match accepted {
                    Ok(c) => {
                        backoff = Duration::ZERO;
                        c
                    }
                    Err(e) if per_connection(&e) => continue,
                    Err(e) => {
                        // out of descriptors or memory: the listener stays readable, so an
                        // immediate retry would spin; wait, longer each time, until one succeeds
                        backoff = (backoff * 2).clamp(FIRST_BACKOFF, MAX_BACKOFF);
                        resume_at = Some(tokio::time::Instant::now() + backoff);
                        accept_errors += 1;
                        if last_accept_warning.is_none_or(|t: Instant| t.elapsed() >= Duration::from_secs(5)) {
                            tracing::warn!(error = %e, errors = accept_errors, pause_ms = backoff.as_millis() as u64, "accept failed; pausing accepts");
                            accept_errors = 0;
                            last_accept_warning = Some(Instant::now());
                        }
                        continue;
                    }
                };
                let (id, evicted) = pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .admit(Source::of(peer.ip()));
                let entry = PendingEntry { table: pending.clone(), id };
                let acceptor = tls.current();
                let (server, slots, stopping) = (server.clone(), slots.clone(), stop_rx.clone());
                let held = held.clone();
                tasks.spawn(async move {
                    let _ = tcp.set_nodelay(true);
                    let hs = tokio::select! {
                        r = tokio::time::timeout(limits.handshake_timeout, handshake(tcp, &acceptor)) => r,
                        _ = evicted => {
                            tracing::debug!(%peer, "pending handshake closed to make room");
                            return;
                        }
                    };
                    drop(entry);
                    drop(acceptor);
                    let mut stream = match hs {
                        Ok(Ok(s)) => s,
                        Ok(Err(HandshakeError::Silent(e))) => {
                            tracing::debug!(%peer, error = %e, "connection closed before the TLS handshake");
                            crate::metrics::get().refused(crate::metrics::Refusal::HandshakeFailed);
                            return;
                        }
                        Ok(Err(HandshakeError::Handshake { reason, rejected: Some(r) })) => {
                            tracing::warn!(%peer, reason, subject = r.subject, issuer = r.issuer, "TLS handshake failed: client certificate refused");
                            crate::metrics::get().refused(crate::metrics::Refusal::HandshakeFailed);
                            return;
                        }
                        Ok(Err(e)) => {
                            tracing::warn!(%peer, reason = %e, "TLS handshake failed");
                            crate::metrics::get().refused(crate::metrics::Refusal::HandshakeFailed);
                            return;
                        }
                        Err(_) => {
                            tracing::info!(%peer, "TLS handshake failed: not finished in time");
                            crate::metrics::get().refused(crate::metrics::Refusal::HandshakeTimeout);
                            return;
                        }
                    };
                    let Ok(_permit) = slots.try_acquire_owned() else {
                        tracing::warn!(%peer, "connection limit reached; closing");
                        crate::metrics::get().refused(crate::metrics::Refusal::ConnectionLimit);
                        return;
                    };
                    let identity = stream
                        .ssl()
                        .peer_certificate()
                        .and_then(|c| {
                            c.subject_name()
                                .entries_by_nid(Nid::COMMONNAME)
                                .next()
                                .and_then(|e| e.data().to_string().ok())
                        })
                        .unwrap_or_default();
                    let Some(_share) = held.take(&identity, limits.max_connections_per_identity) else {
                        tracing::warn!(%peer, identity, "connection limit of this identity reached; closing");
                        crate::metrics::get().refused(crate::metrics::Refusal::IdentityConnectionLimit);
                        return;
                    };
                    tracing::info!(%peer, identity, "client connected");
                    let _served = crate::metrics::get().connection();
                    let peer_s = peer.to_string();
                    // boxed: a pending handshake's task does not carry a session's state
                    let end = match transport {
                        Transport::Ttlv => Box::pin(session::serve(&server, &mut stream, &identity, &peer_s, timeouts, stopping)).await,
                        Transport::Https => Box::pin(crate::https::serve(&server, &mut stream, &identity, &peer_s, timeouts, stopping)).await,
                    };
                    tracing::info!(%peer, identity, ?end, "client disconnected");
                    let _ = tokio::io::AsyncWriteExt::shutdown(&mut stream).await;
                });
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    tracing::info!(open = tasks.len(), "shutting down: draining connections");
    drop(listeners);
    let _ = stop_tx.send(true);
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(timeouts.read, drain).await.is_err() {
        tasks.abort_all();
    }
}

/// The connections each identity holds.
#[derive(Default)]
struct Held(Mutex<std::collections::HashMap<String, usize>>);

/// One of an identity's connections; its slot is free again when it drops.
struct Share<'a> {
    held: &'a Held,
    identity: String,
}

impl Held {
    /// A slot for one more connection of `identity`, unless it holds `max` (0: no limit).
    fn take(&self, identity: &str, max: usize) -> Option<Share<'_>> {
        let mut held = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = held.entry(identity.to_owned()).or_default();
        if max > 0 && *n >= max {
            if *n == 0 {
                held.remove(identity);
            }
            return None;
        }
        *n += 1;
        Some(Share {
            held: self,
            identity: identity.to_owned(),
        })
    }
}

impl Drop for Share<'_> {
    fn drop(&mut self) {
        let mut held = self.held.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = held.get_mut(&self.identity) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.identity);
            }
        }
    }
}

/// The next connection on any of the listeners.
async fn accept_any(
    listeners: &[(TcpListener, Transport)],
) -> (
    std::io::Result<(tokio::net::TcpStream, std::net::SocketAddr)>,
    Transport,
) {
    std::future::poll_fn(|cx| {
        for (l, t) in listeners {
            if let std::task::Poll::Ready(r) = l.poll_accept(cx) {
                return std::task::Poll::Ready((r, *t));
            }
        }
        std::task::Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per: usize) -> Limits {
        Limits {
            max_connections: 1,
            max_connections_per_identity: 1,
            max_handshakes: total,
            max_handshakes_per_address: per,
            handshake_timeout: Duration::from_secs(1),
        }
    }

    /// One identity holds at most its share of the slots; the others still get theirs, and a
    /// closed connection's slot is the identity's again.
    #[test]
    fn one_identity_holds_at_most_its_share() {
        let held = Held::default();
        let eve: Vec<_> = (0..3).filter_map(|_| held.take("eve", 2)).collect();
        assert_eq!(eve.len(), 2);
        let alice = held.take("alice", 2).expect("another identity is served");
        drop(eve);
        assert!(
            held.take("eve", 2).is_some(),
            "closed connections give their slots back"
        );
        assert!(held.take("eve", 0).is_some(), "0: no limit");
        drop(alice);
        assert!(
            held.0.lock().unwrap().is_empty(),
            "no identity is remembered for nothing"
        );
    }

    #[test]
    fn the_oldest_pending_handshake_of_an_address_makes_room() {
        let mut p = Pending::new(&limits(100, 3));
        let a = Source::of("10.0.0.1".parse().unwrap());
        let b = Source::of("10.0.0.2".parse().unwrap());
        let mut rx: Vec<_> = (0..3).map(|_| p.admit(a).1).collect();
        let mut other = p.admit(b).1;
        rx.push(p.admit(a).1);
        assert!(rx[0]
            .try_recv()
            .is_err_and(|e| e == oneshot::error::TryRecvError::Closed));
        for r in &mut rx[1..] {
            assert_eq!(r.try_recv(), Err(oneshot::error::TryRecvError::Empty));
        }
        assert_eq!(other.try_recv(), Err(oneshot::error::TryRecvError::Empty));
        assert_eq!(p.by_source[&a].len(), 3);
        assert_eq!(p.all.len(), 4);
    }

    #[test]
    fn the_oldest_pending_handshake_of_all_makes_room() {
        let mut p = Pending::new(&limits(4, 3));
        let mut rx: Vec<_> = (1..=6)
            .map(|i| {
                p.admit(Source::of(format!("10.0.0.{i}").parse().unwrap()))
                    .1
            })
            .collect();
        assert_eq!(p.all.len(), 4);
        assert!(rx[0]
            .try_recv()
            .is_err_and(|e| e == oneshot::error::TryRecvError::Closed));
        assert!(rx[1]
            .try_recv()
            .is_err_and(|e| e == oneshot::error::TryRecvError::Closed));
        assert_eq!(rx[2].try_recv(), Err(oneshot::error::TryRecvError::Empty));
        // a finished handshake gives its place back
        let id = *p.all.keys().next().unwrap();
        assert!(p.remove(id));
        assert_eq!(p.all.len(), 3);
        assert_eq!(p.by_source.len(), 3);
    }

    #[test]
    fn an_ipv6_subscriber_is_one_address() {
        let a = Source::of("2001:db8:1:2::1".parse().unwrap());
        let b = Source::of("2001:db8:1:2:ffff::9".parse().unwrap());
        let c = Source::of("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            Source::of("::ffff:10.0.0.1".parse().unwrap()),
            Source::of("10.0.0.1".parse().unwrap())
        );
    }

    #[test]
    fn pem_blocks_are_split() {
        let t = "x\n-----BEGIN X509 CRL-----\nAA\n-----END X509 CRL-----\n-----BEGIN X509 CRL-----\nBB\n-----END X509 CRL-----\n";
        let b = pem_blocks(t, "X509 CRL");
        assert_eq!(b.len(), 2);
        assert!(b[1].contains("BB"));
    }
}
