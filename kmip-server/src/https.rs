//! KMIP over HTTPS (KMIP Additional Message Encodings, "HTTPS Profile"): each request message
//! is the body of a `POST /kmip` and each response the body of the answer, in the encoding the
//! request used: TTLV (`application/octet-stream`), KMIP XML (`text/xml`) or KMIP JSON
//! (`application/json`). Same TLS, same client identities, same dispatcher as the TTLV port.
//!
//! Only what KMIP clients send is accepted: POST with a Content-Length body, HTTP/1.1
//! keep-alive. Heads are bounded (16 KiB, 64 headers), bodies by the message size limit, and
//! both by the session timeouts; anything else gets an HTTP error and, when the stream cannot be
//! trusted any more, a close.

use crate::error::OpError;
use crate::session::{End, Timeouts};
use crate::Server;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;

/// Longest request head (request line and headers).
pub const MAX_HEAD: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Ttlv,
    Xml,
    Json,
}

impl Encoding {
    fn of(content_type: Option<&str>) -> Option<Encoding> {
        let essence = content_type
            .map(|c| {
                c.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        match essence.as_str() {
            "" | "application/octet-stream" => Some(Encoding::Ttlv),
            "text/xml" | "application/xml" => Some(Encoding::Xml),
            "application/json" => Some(Encoding::Json),
            _ => None,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Encoding::Ttlv => "application/octet-stream",
            Encoding::Xml => "text/xml",
            Encoding::Json => "application/json",
        }
    }
}

/// One parsed request head.
struct Head {
    path: String,
    method: String,
    length: Option<usize>,
    chunked: bool,
    content_type: Option<String>,
    close: bool,
    head_len: usize,
}

fn parse_head(buf: &[u8]) -> Result<Option<Head>, &'static str> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err("malformed request"),
    };
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(|v| v.trim().to_owned())
    };
    let length = match header("content-length") {
        Some(v) => Some(v.parse::<usize>().map_err(|_| "bad Content-Length")?),
        None => None,
    };
    let connection = header("connection")
        .unwrap_or_default()
        .to_ascii_lowercase();
    Ok(Some(Head {
        path: req.path.unwrap_or("").to_owned(),
        method: req.method.unwrap_or("").to_owned(),
        length,
        chunked: header("transfer-encoding").is_some(),
        content_type: header("content-type"),
        close: connection.contains("close") || req.version == Some(0),
        head_len,
    }))
}

fn response(status: &str, content_type: &str, body: &[u8], close: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-cache\r\nConnection: {}\r\n\r\n",
        body.len(),
        if close { "close" } else { "keep-alive" }
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

fn plain(status: &str, why: &str) -> Vec<u8> {
    response(status, "text/plain", why.as_bytes(), true)
}

/// The KMIP answer to one body, in its encoding; an HTTP error when the body is not a message
/// in that encoding at all.
async fn kmip_answer(
    server: &std::sync::Arc<Server>,
    identity: &str,
    peer: &str,
    encoding: Encoding,
    body: &[u8],
    hangup: impl std::future::Future<Output = ()>,
) -> Result<Vec<u8>, Vec<u8>> {
    let limits = &server.limits;
    let text = || std::str::from_utf8(body).map_err(|_| plain("400 Bad Request", "not UTF-8"));
    let tree = match encoding {
        Encoding::Ttlv => {
            return match crate::pipeline::decode_request(body, identity, limits) {
                Ok(tree) => Ok(kmip_codec::encode(
                    &crate::pipeline::respond(server, identity, peer, tree, hangup).await,
                )),
                Err(early) => early.ok_or_else(|| plain("400 Bad Request", "not a TTLV message")),
            }
        }
        Encoding::Xml => kmip_codec::xml::from_xml(text()?, &limits.decode),
        Encoding::Json => kmip_codec::json::from_json(text()?, &limits.decode),
    };
    let resp = match tree {
        Ok(tree) => crate::pipeline::respond(server, identity, peer, tree, hangup).await,
        Err(e) => {
            tracing::info!(identity, error = %e, "undecodable message");
            crate::error::message_error(
                (1, 0),
                crate::now(),
                OpError::InvalidMessage(format!("not a KMIP message: {e}")),
            )
        }
    };
    Ok(match encoding {
        Encoding::Xml => kmip_codec::xml::to_xml(&resp).into_bytes(),
        _ => kmip_codec::json::to_json(&resp).into_bytes(),
    })
}

/// Serve one HTTPS connection until it ends.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin + crate::session::Hangup>(
    server: &std::sync::Arc<Server>,
    stream: &mut S,
    identity: &str,
    peer: &str,
    timeouts: Timeouts,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) -> End {
    let max_body = server.limits.decode.max_message_bytes;
    // bytes read past the end of the previous request (a pipelining client)
    let mut buf: Vec<u8> = Vec::new();
    loop {
        if *stopping.borrow() {
            return End::Shutdown;
        }
        if buf.is_empty() {
            let mut first = [0u8; 1];
            tokio::select! {
                r = timeout(timeouts.idle, stream.read(&mut first)) => match r {
                    Err(_) => return End::Idle,
                    Ok(Ok(0)) => return End::ClientClosed,
                    Ok(Ok(_)) => buf.push(first[0]),
                    Ok(Err(_)) => return End::Io,
                },
                _ = stopping.changed() => return End::Shutdown,
            }
        }
        let read = read_request(stream, &mut buf, max_body);
        let (head, body) = match timeout(timeouts.read, read).await {
            Err(_) => return End::SlowRead,
            Ok(Err(ReadError::Io)) => return End::Io,
            Ok(Err(ReadError::Refuse(reply))) => {
                let _ = stream.write_all(&reply).await;
                return End::Garbage;
            }
            Ok(Ok(r)) => r,
        };
        let reply = if head.method != "POST" {
            plain("405 Method Not Allowed", "KMIP requests are POSTs to /kmip")
        } else if !(head.path == "/kmip" || head.path.starts_with("/kmip/")) {
            plain("404 Not Found", "KMIP requests are POSTs to /kmip")
        } else {
            match Encoding::of(head.content_type.as_deref()) {
                None => plain(
                    "415 Unsupported Media Type",
                    "application/octet-stream, text/xml or application/json",
                ),
                Some(encoding) => {
                    match kmip_answer(server, identity, peer, encoding, &body, stream.hung_up())
                        .await
                    {
                        Ok(out) => response("200 OK", encoding.content_type(), &out, head.close),
                        Err(reply) => reply,
                    }
                }
            }
        };
        // every error reply above says Connection: close
        let close = head.close || !reply.starts_with(b"HTTP/1.1 200");
        if stream.write_all(&reply).await.is_err() || stream.flush().await.is_err() {
            return End::Io;
        }
        if close {
            return End::ClientClosed;
        }
    }
}

enum ReadError {
    Io,
    /// A reply to send before closing: the stream cannot be framed any further.
    Refuse(Vec<u8>),
}

/// Read one request (head and body) into `buf`, which may already hold its first bytes; what
/// follows it stays in `buf`.
async fn read_request<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    max_body: usize,
) -> Result<(Head, Vec<u8>), ReadError> {
    let mut chunk = [0u8; 4096];
    let head = loop {
        match parse_head(buf) {
            Ok(Some(h)) => break h,
            Ok(None) if buf.len() >= MAX_HEAD => {
                return Err(ReadError::Refuse(plain(
                    "431 Request Header Fields Too Large",
                    "request head too large",
                )))
            }
            Ok(None) => {}
            Err(why) => return Err(ReadError::Refuse(plain("400 Bad Request", why))),
        }
        let n = stream.read(&mut chunk).await.map_err(|_| ReadError::Io)?;
        if n == 0 {
            return Err(ReadError::Io);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    if head.chunked {
        return Err(ReadError::Refuse(plain(
            "411 Length Required",
            "send the body with a Content-Length",
        )));
    }
    let length = head.length.unwrap_or(0);
    if length > max_body {
        return Err(ReadError::Refuse(plain(
            "413 Content Too Large",
            "message larger than the server's limit",
        )));
    }
    let end = head.head_len + length;
    while buf.len() < end {
        let want = (end - buf.len()).min(chunk.len());
        let n = stream
            .read(&mut chunk[..want])
            .await
            .map_err(|_| ReadError::Io)?;
        if n == 0 {
            return Err(ReadError::Io);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[head.head_len..end].to_vec();
    buf.drain(..end);
    Ok((head, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_parsed_and_bounded() {
        let h = parse_head(b"POST /kmip HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: 12\r\n\r\nbody")
            .unwrap()
            .unwrap();
        assert_eq!((h.method.as_str(), h.path.as_str()), ("POST", "/kmip"));
        assert_eq!(h.length, Some(12));
        assert_eq!(Encoding::of(h.content_type.as_deref()), Some(Encoding::Xml));
        assert!(!h.close);
        assert!(parse_head(b"POST /kmip HTTP/1.1\r\nContent-Le")
            .unwrap()
            .is_none());
        assert!(parse_head(b"POST /kmip HTTP/1.1\r\nContent-Length: -1\r\n\r\n").is_err());
        assert!(parse_head(b"\x00\x01garbage\r\n\r\n").is_err());
        assert_eq!(Encoding::of(None), Some(Encoding::Ttlv));
        assert_eq!(Encoding::of(Some("image/png")), None);
    }

    #[tokio::test]
    async fn requests_are_framed_by_content_length() {
        let mut input: &[u8] = b"POST /kmip HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcPOST";
        let mut buf = Vec::new();
        let (h, body) = read_request(&mut input, &mut buf, 100).await.ok().unwrap();
        assert_eq!((h.path.as_str(), body.as_slice()), ("/kmip", &b"abc"[..]));
        assert_eq!(buf, b"POST", "the next request's bytes are kept");
        let mut big: &[u8] = b"POST /kmip HTTP/1.1\r\nContent-Length: 101\r\n\r\n";
        let mut buf = Vec::new();
        assert!(matches!(
            read_request(&mut big, &mut buf, 100).await,
            Err(ReadError::Refuse(r)) if r.starts_with(b"HTTP/1.1 413")
        ));
    }
}
