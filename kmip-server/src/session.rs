//! One client connection: read a framed TTLV message within the read timeout, answer it,
//! repeat until the client leaves or stays idle past the idle timeout.

use crate::error::{message_error, OpError};
use crate::pipeline::{decode_request, respond};
use crate::Server;
use kmip_codec::{encode, frame_length};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;

/// Timeouts of a session.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// Longest wait for the first byte of the next message.
    pub idle: Duration,
    /// Longest time from a message's first byte to its last: a client that trickles bytes is
    /// cut off.
    pub read: Duration,
}

#[derive(Debug, PartialEq, Eq)]
pub enum End {
    ClientClosed,
    Idle,
    SlowRead,
    /// Framing that can never become a message: closed without an answer.
    Garbage,
    Io,
    /// The server is stopping: closed between two messages.
    Shutdown,
}

/// A connection whose client's leaving can be noticed while its request is answered, without
/// reading from it (the bytes that follow belong to the next request).
pub trait Hangup {
    /// Completes once the client has closed its side (or the socket failed).
    fn hung_up(&self) -> impl std::future::Future<Output = ()> + Send + '_;
}

impl Hangup for tokio_openssl::SslStream<tokio::net::TcpStream> {
    async fn hung_up(&self) {
        // readiness is kept until a read would block: a peer's FIN (EPOLLRDHUP) shows as
        // read-closed even behind unread bytes, so a glance every 100 ms costs nothing
        loop {
            match self.get_ref().ready(tokio::io::Interest::READABLE).await {
                Ok(r) if r.is_read_closed() => return,
                Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(_) => return,
            }
        }
    }
}

/// Serve one connection until it ends.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin + Hangup>(
    server: &std::sync::Arc<Server>,
    stream: &mut S,
    identity: &str,
    peer: &str,
    timeouts: Timeouts,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) -> End {
    let limits = &server.limits;
    let mut header = [0u8; 8];
    loop {
        // the first byte may take up to the idle timeout; the rest of the message must follow
        // within the read timeout
        if *stopping.borrow() {
            return End::Shutdown;
        }
        tokio::select! {
            r = timeout(timeouts.idle, stream.read(&mut header[..1])) => match r {
                Err(_) => return End::Idle,
                Ok(Ok(0)) => return End::ClientClosed,
                Ok(Ok(_)) => {}
                Ok(Err(_)) => return End::Io,
            },
            _ = stopping.changed() => return End::Shutdown,
        }
        let read_rest = async {
            stream.read_exact(&mut header[1..]).await?;
            let total = match frame_length(&header, &limits.decode) {
                Ok(n) => n,
                Err(_) => return Ok(None),
            };
            let mut buf = vec![0u8; total];
            buf[..8].copy_from_slice(&header);
            stream.read_exact(&mut buf[8..]).await?;
            Ok::<_, std::io::Error>(Some(buf))
        };
        let buf = match timeout(timeouts.read, read_rest).await {
            Err(_) => return End::SlowRead,
            Ok(Err(_)) => return End::Io,
            Ok(Ok(None)) => {
                // a length beyond the limit: answer once, then close, since the stream can no
                // longer be framed
                let now = crate::now();
                let resp = message_error(
                    (1, 0),
                    now,
                    OpError::InvalidMessage("message larger than the server's limit".into()),
                );
                let _ = stream.write_all(&encode(&resp)).await;
                return End::Garbage;
            }
            Ok(Ok(Some(b))) => b,
        };
        let response = match decode_request(&buf, identity, limits) {
            Ok(tree) => Some(encode(
                &respond(server, identity, peer, tree, stream.hung_up()).await,
            )),
            Err(early) => early,
        };
        let Some(response) = response else {
            return End::Garbage;
        };
        if stream.write_all(&response).await.is_err() || stream.flush().await.is_err() {
            return End::Io;
        }
    }
}
