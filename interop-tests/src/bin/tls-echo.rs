//! `tls-echo --listen ADDR --data-dir DIR`: the framing ceiling for `kmip-bench --workload
//! echo`. The same TLS stack as kmip-server (its acceptor, tokio, tokio-openssl, mutual TLS
//! with the same certificates); each framed TTLV request is answered at once with a response
//! the size of a Get of an AES-256 key, without decoding, dispatch, store or crypto.
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

use kmip_codec::message::{
    Enum, FieldValue, ProtocolVersion, Req, ResponseBatchItem, ResponseHeader, ResponseMessage,
};
use kmip_codec::vocab::enums::{
    cryptographic_algorithm as alg, object_type as ot, operation as op, result_status,
};
use kmip_codec::vocab::tag;
use kmip_codec::{Ttlv, Value};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn get_response() -> Vec<u8> {
    let key = Ttlv::structure(
        tag::SYMMETRIC_KEY,
        vec![Ttlv::structure(
            tag::KEY_BLOCK,
            vec![
                Ttlv::new(tag::KEY_FORMAT_TYPE, Value::Enumeration(1)),
                Ttlv::structure(
                    tag::KEY_VALUE,
                    vec![Ttlv::new(tag::KEY_MATERIAL, Value::ByteString(vec![0; 32]))],
                ),
                Ttlv::new(tag::CRYPTOGRAPHIC_ALGORITHM, Value::Enumeration(alg::AES)),
                Ttlv::new(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(256)),
            ],
        )],
    );
    let m = ResponseMessage {
        header: Req(ResponseHeader {
            protocol_version: Req(ProtocolVersion::new(2, 1)),
            time_stamp: Req(kmip_codec::message::DateTime(0)),
            batch_count: Req(1),
            ..Default::default()
        }),
        batch_item: vec![ResponseBatchItem {
            operation: Some(Enum(op::GET)),
            result_status: Req(Enum(result_status::SUCCESS)),
            response_payload: Some(Ttlv::structure(
                tag::RESPONSE_PAYLOAD,
                vec![
                    Ttlv::new(tag::OBJECT_TYPE, Value::Enumeration(ot::SYMMETRIC_KEY)),
                    Ttlv::new(tag::UNIQUE_IDENTIFIER, Value::TextString("1".into())),
                    key,
                ],
            )),
            ..Default::default()
        }],
    };
    kmip_codec::encode(&m.encode(tag::RESPONSE_MESSAGE))
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (mut listen, mut dir) = (
        "127.0.0.1:5697".to_owned(),
        std::path::PathBuf::from("kmip-data"),
    );
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => listen = args.next().unwrap_or(listen),
            "--data-dir" => dir = args.next().map(Into::into).unwrap_or(dir),
            _ => {}
        }
    }
    let tls = dir.join("tls");
    let acceptor = Arc::new(
        kmip_server::listener::acceptor(
            &tls.join("server.pem"),
            &tls.join("server.key"),
            &tls.join("ca.pem"),
        )
        .expect("TLS material in DIR/tls"),
    );
    let reply = Arc::new(get_response());
    let l = tokio::net::TcpListener::bind(&listen)
        .await
        .expect("listen");
    eprintln!("tls-echo listening on {listen}");
    loop {
        let Ok((tcp, _)) = l.accept().await else {
            continue;
        };
        let (acceptor, reply) = (acceptor.clone(), reply.clone());
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let Ok(ssl) = openssl::ssl::Ssl::new(acceptor.context()) else {
                return;
            };
            let Ok(mut s) = tokio_openssl::SslStream::new(ssl, tcp) else {
                return;
            };
            if std::pin::Pin::new(&mut s).accept().await.is_err() {
                return;
            }
            let mut header = [0u8; 8];
            let mut body = Vec::new();
            loop {
                if s.read_exact(&mut header).await.is_err() {
                    return;
                }
                let n = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
                body.resize(n.min(1 << 20), 0);
                if s.read_exact(&mut body).await.is_err() || s.write_all(&reply).await.is_err() {
                    return;
                }
            }
        });
    }
}

// the server's allocator, so that the ceiling runs the same stack
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
