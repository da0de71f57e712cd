//! `kmip-fuzz TARGET --seconds N`: a mutation fuzzer for the decoders that runs on stable Rust.
//!
//! Targets: `ttlv` (binary decoder), `xml`, `json` (text decoders), `message` (TTLV decode
//! followed by the typed message and payload model) and `dispatch`: well-formed TTLV that
//! makes no sense (wrong types in known tags, missing or repeated fields, huge counts, unknown
//! operations, mixed protocol versions in one batch) through the whole request path of an
//! in-process server (dispatcher, lifecycle, store, audit), whose every answer must be a
//! response message. Seeds are every message of the OASIS test
//! cases in that encoding; each round mutates one seed (bit flips, interesting bytes and
//! lengths, truncation, splicing, repetition) and checks that decoding returns (never panics)
//! and that whatever decodes re-encodes to something that decodes to the same tree. It is not
//! coverage-guided.
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

use kmip_codec::message::Message;
use kmip_codec::ops::{RequestPayload, ResponsePayload};
use kmip_codec::{decode, encode, json, xml, Limits, Ttlv};
use std::panic;
use std::process::ExitCode;
use std::time::{Duration, Instant};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], input: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        let len = input.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = [0, 0xFF, 0x7F, 0x80, 0x01, b'<', b'"', b'{'][rng.below(8)];
            }
            2 if len >= 4 => {
                // a length field, at an eight-byte boundary plus four as TTLV puts them
                let i = (rng.below(len / 8) * 8 + 4).min(len - 4);
                let v: u32 = [0, 1, 7, 8, 0xFFFF_FFFF, 0x8000_0000, 0x10][rng.below(7)];
                input[i..i + 4].copy_from_slice(&v.to_be_bytes());
            }
            3 if len > 0 => input.truncate(rng.below(len)),
            4 => {
                let other = &seeds[rng.below(seeds.len())];
                let at = rng.below(len + 1);
                let from = rng.below(other.len());
                let take = rng.below(other.len() - from + 1).min(256);
                input.splice(at..at, other[from..from + take].iter().copied());
            }
            5 if len > 0 => {
                let from = rng.below(len);
                let take = rng.below(len - from).min(64) + 1;
                let chunk: Vec<u8> = input[from..from + take.min(len - from)].to_vec();
                let at = rng.below(input.len() + 1);
                input.splice(at..at, chunk);
            }
            6 if len > 1 => {
                let a = rng.below(len);
                let b = rng.below(len);
                input.swap(a, b);
            }
            _ => {
                let at = rng.below(len + 1);
                input.insert(at, rng.next() as u8);
            }
        }
    }
}

fn check_message(tree: &kmip_codec::Ttlv) {
    if let Ok(m) = Message::from_ttlv(tree) {
        let again = Message::from_ttlv(&m.to_ttlv()).expect("a typed message re-decodes");
        assert_eq!(again, m);
        match &m {
            Message::Request(r) => {
                for b in &r.batch_item {
                    if let Some(p) = &b.request_payload {
                        if let Ok(t) = RequestPayload::decode(b.operation.0 .0, p) {
                            let e = t.encode();
                            assert_eq!(RequestPayload::decode(b.operation.0 .0, &e).ok(), Some(t));
                        }
                    }
                }
            }
            Message::Response(r) => {
                for b in &r.batch_item {
                    if let (Some(op), Some(p)) = (b.operation, &b.response_payload) {
                        if let Ok(t) = ResponsePayload::decode(op.0, p) {
                            let e = t.encode();
                            assert_eq!(ResponsePayload::decode(op.0, &e).ok(), Some(t));
                        }
                    }
                }
            }
        }
    }
}

/// Mutate a request tree so that it still encodes but asks for nonsense.
fn mutate_tree(rng: &mut Rng, t: &mut Ttlv) {
    use kmip_codec::{Tag, Value};
    // pick a node by a random walk from the root
    let mut path = Vec::new();
    let mut at: &Ttlv = t;
    loop {
        let children = at.children();
        if children.is_empty() || rng.below(3) == 0 {
            break;
        }
        let i = rng.below(children.len());
        path.push(i);
        at = &children[i];
    }
    let mut node = t;
    for i in path {
        node = &mut node.children_mut().expect("a structure on the path")[i];
    }
    match rng.below(9) {
        // a value of the wrong type in a known tag
        0 => {
            node.value = match rng.below(6) {
                0 => Value::TextString("\u{0}nonsense".into()),
                1 => Value::Integer(i32::MIN),
                2 => Value::LongInteger(i64::MAX),
                3 => Value::ByteString(vec![0xFF; rng.below(64)]),
                4 => Value::Enumeration(rng.next() as u32),
                _ => Value::Structure(Vec::new()),
            }
        }
        // an extreme number
        1 => {
            node.value = match &node.value {
                Value::Integer(_) => Value::Integer([i32::MIN, -1, 0, i32::MAX][rng.below(4)]),
                Value::LongInteger(_) => {
                    Value::LongInteger([i64::MIN, -1, 0, i64::MAX][rng.below(4)])
                }
                Value::Enumeration(_) => {
                    Value::Enumeration([0, 0xFFFF_FFFF, 0x8000_0000][rng.below(3)])
                }
                Value::DateTime(_) => Value::DateTime([i64::MIN, -1, i64::MAX][rng.below(3)]),
                Value::Interval(_) => Value::Interval(u32::MAX),
                other => other.clone(),
            }
        }
        // a field removed
        2 => {
            if let Some(c) = node.children_mut() {
                if !c.is_empty() {
                    let i = rng.below(c.len());
                    c.remove(i);
                }
            }
        }
        // a field repeated many times
        3 => {
            if let Some(c) = node.children_mut() {
                if !c.is_empty() {
                    let item = c[rng.below(c.len())].clone();
                    for _ in 0..1 + rng.below(200) {
                        c.push(item.clone());
                    }
                }
            }
        }
        // an unknown tag, or a known tag in the wrong place
        4 => {
            node.tag = Tag([
                0x42_0000 | (rng.next() as u32 & 0x1FF),
                0x54_0001,
                0x42_005C,
            ][rng.below(3)])
        }
        // an unknown or vendor operation, or another version in the same batch
        5 => {
            node.tag = kmip_codec::vocab::tag::OPERATION;
            node.value = Value::Enumeration(
                [
                    rng.next() as u32 & 0x3F,
                    0x8000_0000 | (rng.next() as u32 & 7),
                ][rng.below(2)],
            );
        }
        6 => {
            if let Some(c) = node.children_mut() {
                c.push(Ttlv::structure(
                    kmip_codec::vocab::tag::PROTOCOL_VERSION,
                    vec![
                        Ttlv::new(
                            kmip_codec::vocab::tag::PROTOCOL_VERSION_MAJOR,
                            Value::Integer(rng.below(4) as i32),
                        ),
                        Ttlv::new(
                            kmip_codec::vocab::tag::PROTOCOL_VERSION_MINOR,
                            Value::Integer(rng.below(5) as i32),
                        ),
                    ],
                ));
            }
        }
        // a huge Batch Count or Maximum Response Size
        7 => {
            node.tag = [
                kmip_codec::vocab::tag::BATCH_COUNT,
                kmip_codec::vocab::tag::MAXIMUM_RESPONSE_SIZE,
            ][rng.below(2)];
            node.value = Value::Integer([i32::MAX, 0, -1, 1][rng.below(4)]);
        }
        // a structure emptied
        _ => node.value = Value::Structure(Vec::new()),
    }
}

/// An in-process server over a memory store, its audit log discarded.
fn fuzz_server() -> kmip_server::Server {
    use lifecycle::core::{Core, MasterKey};
    kmip_server::Server {
        manager: lifecycle::Manager::new(
            std::sync::Arc::new(lifecycle::store::MemoryStore::new()),
            Core::new(MasterKey::generate().expect("master key")),
        ),
        limits: kmip_server::config::Settings {
            max_batch_items: 64,
            decode: Limits::default(),
            credentials: kmip_server::policy::Credentials::parse(&[]).expect("no credentials"),
            policies: Default::default(),
            interop: true,
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
            kmip_server::audit::Audit::open(std::path::Path::new("/dev/null"), u64::MAX)
                .expect("audit to /dev/null"),
        ),
    }
}

/// The request path never panics and always answers a well-formed message with a response.
fn run_dispatch(server: &kmip_server::Server, tree: &Ttlv) -> bool {
    let bytes = encode(tree);
    let out = kmip_server::pipeline::answer(server, "admin", "fuzz", &bytes)
        .expect("a well-formed message gets an answer");
    let (resp, _) = decode(&out, &Limits::default()).expect("the answer decodes");
    assert_eq!(resp.tag, kmip_codec::vocab::tag::RESPONSE_MESSAGE);
    let all_ok = resp
        .children_with(kmip_codec::vocab::tag::BATCH_ITEM)
        .all(|b| {
            b.child(kmip_codec::vocab::tag::RESULT_STATUS)
                .and_then(Ttlv::as_enum)
                == Some(0)
        });
    all_ok
}

/// Returns whether the input decoded.
fn run_one(target: &str, input: &[u8], limits: &Limits) -> bool {
    match target {
        "ttlv" | "message" => {
            if let Ok((tree, _)) = decode(input, limits) {
                let bytes = encode(&tree);
                assert_eq!(decode(&bytes, limits).expect("re-decodes").0, tree);
                if target == "message" {
                    check_message(&tree);
                }
                return true;
            }
            false
        }
        "xml" => {
            if let Ok(s) = std::str::from_utf8(input) {
                if let Ok(tree) = xml::from_xml(s, limits) {
                    let back = xml::from_xml(&xml::to_xml(&tree), limits).expect("re-parses");
                    assert_eq!(back, tree);
                    return true;
                }
            }
            false
        }
        "json" => {
            if let Ok(s) = std::str::from_utf8(input) {
                if let Ok(tree) = json::from_json(s, limits) {
                    let back = json::from_json(&json::to_json(&tree), limits).expect("re-parses");
                    assert_eq!(back, tree);
                    return true;
                }
            }
            false
        }
        _ => unreachable!(),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let target = args.get(1).map(String::as_str).unwrap_or("");
    if !["ttlv", "xml", "json", "message", "dispatch"].contains(&target) {
        eprintln!("usage: kmip-fuzz ttlv|xml|json|message|dispatch [--seconds N] [--seed S]");
        return ExitCode::FAILURE;
    }
    let opt = |name: &str, default: u64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let seconds = opt("--seconds", 20);
    let seed = opt("--seed", 0x9E37_79B9_7F4A_7C15);
    let seeds: Vec<Vec<u8>> = interop_tests::testcases::all_messages()
        .into_iter()
        .map(|(_, t)| match target {
            "xml" => xml::to_xml(&t).into_bytes(),
            "json" => json::to_json(&t).into_bytes(),
            _ => encode(&t),
        })
        .collect();
    // small limits so that the limit paths are exercised too
    let limits = Limits {
        max_message_bytes: 64 * 1024,
        max_depth: 16,
        max_items: 4096,
    };
    panic::set_hook(Box::new(|_| {}));
    if target == "dispatch" {
        return fuzz_dispatch(seconds, seed);
    }
    let mut rng = Rng(seed | 1);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (mut execs, mut crashes, mut decoded) = (0u64, 0u64, 0u64);
    let mut input = Vec::new();
    while Instant::now() < deadline {
        for _ in 0..256 {
            input.clear();
            input.extend_from_slice(&seeds[rng.below(seeds.len())]);
            mutate(&mut rng, &seeds, &mut input);
            execs += 1;
            let outcome = panic::catch_unwind(|| run_one(target, &input, &limits));
            decoded += u64::from(matches!(outcome, Ok(true)));
            if outcome.is_err() {
                crashes += 1;
                let path = format!("target/fuzz-crash-{target}-{crashes}.bin");
                let _ = std::fs::write(&path, &input);
                eprintln!("crash: input saved to {path}");
            }
        }
    }
    println!(
        "kmip-fuzz {target}: {execs} executions in {seconds}s ({decoded} decoded), {crashes} crashes, {} seeds",
        seeds.len()
    );
    if crashes > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn fuzz_dispatch(seconds: u64, seed: u64) -> ExitCode {
    let seeds: Vec<Ttlv> = interop_tests::testcases::all_messages()
        .into_iter()
        .map(|(_, t)| t)
        .filter(|t| t.tag == kmip_codec::vocab::tag::REQUEST_MESSAGE)
        .collect();
    let mut rng = Rng(seed | 1);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (mut execs, mut crashes, mut succeeded) = (0u64, 0u64, 0u64);
    let mut server = fuzz_server();
    while Instant::now() < deadline {
        // a fresh server now and then, so that what the fuzzer created does not pile up
        if execs % 20_000 == 0 && execs > 0 {
            server = fuzz_server();
        }
        for _ in 0..64 {
            let mut t = seeds[rng.below(seeds.len())].clone();
            for _ in 0..1 + rng.below(3) {
                mutate_tree(&mut rng, &mut t);
            }
            execs += 1;
            let outcome =
                panic::catch_unwind(panic::AssertUnwindSafe(|| run_dispatch(&server, &t)));
            succeeded += u64::from(matches!(outcome, Ok(true)));
            if outcome.is_err() {
                crashes += 1;
                let path = format!("target/fuzz-crash-dispatch-{crashes}.xml");
                let _ = std::fs::write(&path, xml::to_xml(&t));
                eprintln!("crash: request saved to {path}");
            }
        }
    }
    println!(
        "kmip-fuzz dispatch: {execs} executions in {seconds}s ({succeeded} answered Success), {crashes} crashes, {} seeds",
        seeds.len()
    );
    if crashes > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
