//! The whole request path inside one process, without a network: decode, dispatch, the
//! lifecycle, the redb store (and its audit record), encode. Catches regressions that
//! `kmip-bench` would only show through TLS and scheduling noise.
//! Run: `cargo bench -p interop-tests --bench request_path`.

use criterion::{criterion_group, criterion_main, Criterion};
use interop_tests::bench::get_message;
use kmip_codec::message::{
    Enum, FieldValue, ProtocolVersion, Req, RequestBatchItem, RequestHeader, RequestMessage,
};
use kmip_codec::vocab::enums::{
    cryptographic_algorithm as alg, object_type as ot, operation as op,
};
use kmip_codec::vocab::tag;
use kmip_codec::{Ttlv, Value};
use kmip_server::config::Settings;
use kmip_server::pipeline::answer;
use kmip_server::Server;
use lifecycle::core::{Core, MasterKey};
use lifecycle::store::RedbStore;
use lifecycle::Manager;
use std::sync::Arc;

fn message(operation: u32, payload: Vec<Ttlv>) -> Vec<u8> {
    let m = RequestMessage {
        header: Req(RequestHeader {
            protocol_version: Req(ProtocolVersion::new(2, 1)),
            batch_count: Req(1),
            ..Default::default()
        }),
        batch_item: vec![RequestBatchItem {
            operation: Req(Enum(operation)),
            request_payload: Some(Ttlv::structure(tag::REQUEST_PAYLOAD, payload)),
            ..Default::default()
        }],
    };
    kmip_codec::encode(&m.encode(tag::REQUEST_MESSAGE))
}

fn request_path(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(&dir.path().join("kmip.redb")).unwrap();
    let server = Server {
        manager: Manager::new(Arc::new(store), Core::new(MasterKey::generate().unwrap())),
        limits: Settings {
            max_batch_items: 1000,
            decode: kmip_codec::Limits::default(),
            credentials: kmip_server::policy::Credentials::parse(&[]).unwrap(),
            policies: Default::default(),
            interop: false,
            profiles: Default::default(),
            max_locate_time: std::time::Duration::from_secs(10),
            max_response_bytes: 16 << 20,
            data_dir: None,
            quorum: Default::default(),
        },
        admins: vec!["admin".into()],
        group_grants: Default::default(),
        namespace_grants: Default::default(),
        audit: std::sync::Arc::new(
            kmip_server::audit::Audit::open(&dir.path().join("audit.jsonl"), 1 << 30).unwrap(),
        ),
    };
    let create = message(
        op::CREATE,
        vec![
            Ttlv::new(tag::OBJECT_TYPE, Value::Enumeration(ot::SYMMETRIC_KEY)),
            Ttlv::structure(
                tag::ATTRIBUTES,
                vec![
                    Ttlv::new(tag::CRYPTOGRAPHIC_ALGORITHM, Value::Enumeration(alg::AES)),
                    Ttlv::new(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(256)),
                ],
            ),
        ],
    );
    let created = answer(&server, "admin", "bench", &create).unwrap();
    let (resp, _) = kmip_codec::decode(&created, &kmip_codec::Limits::default()).unwrap();
    let id = resp
        .child(tag::BATCH_ITEM)
        .and_then(|b| b.child(tag::RESPONSE_PAYLOAD))
        .and_then(|p| p.child(tag::UNIQUE_IDENTIFIER))
        .and_then(Ttlv::as_text)
        .unwrap()
        .to_owned();
    let get = get_message(&id);
    let mut g = c.benchmark_group("request-path");
    g.bench_function("get-aes-256", |b| {
        b.iter(|| std::hint::black_box(answer(&server, "admin", "bench", &get)))
    });
    g.bench_function("create-aes-256-durable", |b| {
        b.iter(|| std::hint::black_box(answer(&server, "admin", "bench", &create)))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = request_path
}
criterion_main!(benches);
