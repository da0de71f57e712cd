//! The TLS listeners: mutual TLS 1.2/1.3 with OpenSSL, a bound on concurrent connections, a
//! handshake timeout, and a drain of in-flight connections on shutdown. The KMIP port speaks
//! framed TTLV; the optional HTTPS port carries the same messages in HTTP POSTs.

use crate::session::{self, Timeouts};
use crate::Server;
use openssl::nid::Nid;
use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod, SslVerifyMode, SslVersion};
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_openssl::SslStream;

/// An acceptor that requires a client certificate chaining to `client_ca`.
pub fn acceptor(
    cert: &Path,
    key: &Path,
    client_ca: &Path,
) -> Result<SslAcceptor, openssl::error::ErrorStack> {
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())?;
    b.set_min_proto_version(Some(SslVersion::TLS1_2))?;
    b.set_certificate_chain_file(cert)?;
    b.set_private_key_file(key, SslFiletype::PEM)?;
    b.check_private_key()?;
    b.set_ca_file(client_ca)?;
    b.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
    Ok(b.build())
}

/// What a listening port speaks after the TLS handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// KMIP's own framing: TTLV messages back to back (port 5696).
    Ttlv,
    /// `POST /kmip` with TTLV, KMIP XML or KMIP JSON bodies.
    Https,
}

/// Serve until `shutdown` resolves, then wait for open connections to finish their current
/// message (they are told to stop reading new ones by the idle timeout or the client).
pub async fn run(
    server: Arc<Server>,
    listeners: Vec<(TcpListener, Transport)>,
    acceptor: SslAcceptor,
    timeouts: Timeouts,
    max_connections: usize,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let acceptor = Arc::new(acceptor);
    let slots = Arc::new(Semaphore::new(max_connections));
    // sessions finish the message in hand and close when this turns true
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            (accepted, transport) = accept_any(&listeners) => {
                let Ok((tcp, peer)) = accepted else { continue };
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    tracing::warn!(%peer, "connection limit reached; closing");
                    drop(tcp);
                    continue;
                };
                let (server, acceptor, stopping) = (server.clone(), acceptor.clone(), stop_rx.clone());
                tasks.spawn(async move {
                    let _permit = permit;
                    let _ = tcp.set_nodelay(true);
                    let Ok(ssl) = openssl::ssl::Ssl::new(acceptor.context()) else { return };
                    let Ok(mut stream) = SslStream::new(ssl, tcp) else { return };
                    let hs = tokio::time::timeout(timeouts.read, std::pin::Pin::new(&mut stream).accept()).await;
                    if !matches!(hs, Ok(Ok(()))) {
                        tracing::info!(%peer, "TLS handshake failed");
                        return;
                    }
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
                    tracing::info!(%peer, identity, "client connected");
                    let peer_s = peer.to_string();
                    let end = match transport {
                        Transport::Ttlv => session::serve(&server, &mut stream, &identity, &peer_s, timeouts, stopping).await,
                        Transport::Https => crate::https::serve(&server, &mut stream, &identity, &peer_s, timeouts, stopping).await,
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
