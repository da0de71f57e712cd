//! Decode and encode throughput over every message of the OASIS test cases.
//! Run: `cargo bench -p interop-tests --bench codec`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kmip_codec::{decode, encode, xml, Limits};

fn codec(c: &mut Criterion) {
    let trees: Vec<_> = interop_tests::testcases::all_messages()
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    let wire: Vec<Vec<u8>> = trees.iter().map(encode).collect();
    let xml_text: Vec<String> = trees.iter().map(xml::to_xml).collect();
    let bytes: usize = wire.iter().map(Vec::len).sum();
    let limits = Limits::default();
    let mut g = c.benchmark_group("testcase-messages");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("ttlv-decode", |b| {
        b.iter(|| {
            for w in &wire {
                std::hint::black_box(decode(w, &limits).expect("valid"));
            }
        })
    });
    g.bench_function("ttlv-encode", |b| {
        b.iter(|| {
            for t in &trees {
                std::hint::black_box(encode(t));
            }
        })
    });
    g.bench_function("typed-message-decode", |b| {
        b.iter(|| {
            for w in &wire {
                let (t, _) = decode(w, &limits).expect("valid");
                std::hint::black_box(kmip_codec::message::Message::from_ttlv(&t).expect("typed"));
            }
        })
    });
    g.finish();
    let xml_bytes: usize = xml_text.iter().map(String::len).sum();
    let mut g = c.benchmark_group("testcase-messages-xml");
    g.throughput(Throughput::Bytes(xml_bytes as u64));
    g.bench_function("xml-decode", |b| {
        b.iter(|| {
            for x in &xml_text {
                std::hint::black_box(xml::from_xml(x, &limits).expect("valid"));
            }
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = codec
}
criterion_main!(benches);
