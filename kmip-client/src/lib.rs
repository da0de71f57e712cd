//! A small blocking KMIP client over mutual TLS. One client serves the CA tooling, the
//! interoperability tests and the load generator: it sends typed requests built with
//! kmip-codec and returns typed responses.
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

use kmip_codec::message::{
    Bytes, Enum, FieldValue, ProtocolVersion, Req, RequestBatchItem, RequestHeader, RequestMessage,
    ResponseMessage,
};
use kmip_codec::vocab::enums::result_status;
use kmip_codec::vocab::tag;
use kmip_codec::{decode, encode, frame_length, DecodeError, Limits, Ttlv};
use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslStream, SslVerifyMode};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;
use thiserror::Error;

pub mod connection;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("TLS: {0}")]
    Tls(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("the server closed the connection")]
    Closed,
    #[error("undecodable response: {0}")]
    Decode(String),
    /// The operation failed on the server.
    #[error("operation failed: reason 0x{reason:X}: {message}")]
    Failed { reason: u32, message: String },
}

impl ClientError {
    /// The Result Reason of a failed operation.
    pub fn reason(&self) -> Option<u32> {
        match self {
            ClientError::Failed { reason, .. } => Some(*reason),
            _ => None,
        }
    }
}

/// Certificates and key of one client identity (PEM files).
pub struct Identity<'a> {
    pub ca: &'a Path,
    pub cert: Option<&'a Path>,
    pub key: Option<&'a Path>,
}

pub struct Client {
    stream: SslStream<TcpStream>,
    version: (i32, i32),
    limits: Limits,
}

impl Client {
    /// Connect to `host:port` and finish the TLS handshake. The server certificate must chain to
    /// `id.ca` and name `host`.
    pub fn connect(host: &str, port: u16, id: &Identity<'_>) -> Result<Client, ClientError> {
        let tls = |e: openssl::error::ErrorStack| ClientError::Tls(e.to_string());
        // an OpenSSL stack names neither the file nor what it was for
        let file = |what: &str, path: &Path| {
            let what = what.to_owned();
            let path = path.to_owned();
            move |e: openssl::error::ErrorStack| {
                ClientError::Tls(format!("{what} {}: {}", path.display(), reason(&e)))
            }
        };
        let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(tls)?;
        b.set_ca_file(id.ca).map_err(file("server CA", id.ca))?;
        if let (Some(c), Some(k)) = (id.cert, id.key) {
            b.set_certificate_chain_file(c)
                .map_err(file("client certificate", c))?;
            b.set_private_key_file(k, SslFiletype::PEM)
                .map_err(file("client key", k))?;
            b.check_private_key()
                .map_err(file("client key (does not match the certificate)", k))?;
        }
        b.set_verify(SslVerifyMode::PEER);
        let tcp = TcpStream::connect((host, port))?;
        tcp.set_read_timeout(Some(Duration::from_secs(60)))?;
        tcp.set_nodelay(true)?;
        let stream = b
            .build()
            .connect(host, tcp)
            .map_err(|e| ClientError::Tls(e.to_string()))?;
        Ok(Client {
            stream,
            version: (2, 1),
            limits: Limits::default(),
        })
    }

    /// Speak this protocol version from now on.
    pub fn version(mut self, major: i32, minor: i32) -> Client {
        self.version = (major, minor);
        self
    }

    pub fn protocol_version(&self) -> (i32, i32) {
        self.version
    }

    /// Write bytes and read one framed response: for tests that send what no typed request
    /// can express.
    pub fn raw(&mut self, bytes: &[u8]) -> Result<Ttlv, ClientError> {
        self.stream.write_all(bytes)?;
        self.stream.flush()?;
        self.read_one()
    }

    fn read_one(&mut self) -> Result<Ttlv, ClientError> {
        let mut buf = vec![0u8; 8];
        self.fill(&mut buf)?;
        let total = match frame_length(&buf, &self.limits) {
            Ok(n) => n,
            Err(e) => return Err(ClientError::Decode(e.to_string())),
        };
        buf.resize(total, 0);
        self.fill(&mut buf[8..])?;
        match decode(&buf, &self.limits) {
            Ok((t, _)) => Ok(t),
            Err(DecodeError::Incomplete { .. }) => Err(ClientError::Closed),
            Err(e) => Err(ClientError::Decode(e.to_string())),
        }
    }

    fn fill(&mut self, buf: &mut [u8]) -> Result<(), ClientError> {
        let mut done = 0;
        while done < buf.len() {
            match self.stream.read(&mut buf[done..]) {
                Ok(0) => return Err(ClientError::Closed),
                Ok(n) => done += n,
                // a signal arrived during the read: nothing was lost, read again
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Send a request message and return the response message.
    pub fn send(&mut self, req: &RequestMessage) -> Result<ResponseMessage, ClientError> {
        let t = self.raw(&encode(&req.to_ttlv()))?;
        ResponseMessage::decode(&t).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// A request of several operations in one message.
    pub fn batch(&mut self, items: Vec<(u32, Ttlv)>) -> Result<ResponseMessage, ClientError> {
        let req = self.batch_request(items);
        self.send(&req)
    }

    /// The message [`Client::batch`] sends, in this client's protocol version.
    pub fn batch_request(&self, items: Vec<(u32, Ttlv)>) -> RequestMessage {
        request_message(self.version, items)
    }

    /// One operation: its response payload, or the server's failure.
    pub fn call(&mut self, operation: u32, payload: Ttlv) -> Result<Ttlv, ClientError> {
        let resp = self.batch(vec![(operation, payload)])?;
        let item = resp
            .batch_item
            .into_iter()
            .next()
            .ok_or_else(|| ClientError::Decode("no batch item".into()))?;
        if item.result_status.0 .0 != result_status::SUCCESS {
            return Err(ClientError::Failed {
                reason: item.result_reason.map(|r| r.0).unwrap_or(0),
                message: item.result_message.unwrap_or_default(),
            });
        }
        Ok(item
            .response_payload
            .unwrap_or_else(|| Ttlv::structure(tag::RESPONSE_PAYLOAD, Vec::new())))
    }

    /// `call` with typed payloads.
    pub fn op<Q: FieldValue, R: FieldValue>(
        &mut self,
        operation: u32,
        request: &Q,
    ) -> Result<R, ClientError> {
        let p = self.call(operation, request.encode(tag::REQUEST_PAYLOAD))?;
        R::decode(&p).map_err(|e| ClientError::Decode(e.to_string()))
    }
}

/// The reasons of an OpenSSL error stack, without the library's internal file names and
/// line numbers: "no such file", "no start line" (not PEM), "key values mismatch".
pub fn reason(e: &openssl::error::ErrorStack) -> String {
    let reasons: Vec<String> = e
        .errors()
        .iter()
        .map(|x| {
            x.reason()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("error 0x{:x}", x.code()))
        })
        .collect();
    if reasons.is_empty() {
        "unknown OpenSSL error".into()
    } else {
        reasons.join(": ")
    }
}

/// A request message of `items` (operation, payload) in protocol `version`; the items are
/// numbered when there are several.
pub fn request_message(version: (i32, i32), items: Vec<(u32, Ttlv)>) -> RequestMessage {
    let n = items.len();
    RequestMessage {
        header: Req(RequestHeader {
            protocol_version: Req(ProtocolVersion::new(version.0, version.1)),
            batch_count: Req(n as i32),
            ..Default::default()
        }),
        batch_item: items
            .into_iter()
            .enumerate()
            .map(|(i, (op, payload))| RequestBatchItem {
                operation: Req(Enum(op)),
                unique_batch_item_id: (n > 1).then(|| Bytes(vec![i as u8])),
                request_payload: Some(payload),
                ..Default::default()
            })
            .collect(),
    }
}
