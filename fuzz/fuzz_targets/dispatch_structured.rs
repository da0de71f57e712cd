//! Structure-aware fuzzing of the request path down to the cryptography: each input is a
//! well-formed request (Encrypt, Decrypt, Sign, Signature Verify, MAC, MAC Verify, Derive Key,
//! Get with a Key Wrapping Specification, streamed parts) on one of the keys made at start,
//! whose parameters (modes, paddings, hashes, algorithms, IV, tag and AAD lengths and values,
//! lengths, iterations) are the fuzzer's. The stable harness (`kmip-fuzz`) mutates bytes and
//! rarely gets past decoding to reach OpenSSL, whose Rust binding asserts on some parameters.
//!
//! Every answer must be a Response Message, and no operation may panic: a panic (which the
//! server would turn into a General Failure) aborts, so libFuzzer records it.

#![no_main]

use arbitrary::Arbitrary;
use kmip_codec::vocab::enums::{object_type as ot, operation as op};
use kmip_codec::vocab::tag;
use kmip_codec::{decode, encode, Limits, Tag, Ttlv, Value};
use libfuzzer_sys::fuzz_target;
use std::sync::Mutex;

#[derive(Arbitrary, Debug)]
struct Params {
    mode: Option<u8>,
    padding: Option<u8>,
    hash: Option<u8>,
    signature: Option<u8>,
    algorithm: Option<u8>,
    random_iv: Option<bool>,
    iv_length: Option<i32>,
    tag_length: Option<i32>,
    mask_hash: Option<u8>,
    p_source: Option<Vec<u8>>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    operation: u8,
    key: u8,
    wrapping_key: u8,
    params: Option<Params>,
    data: Vec<u8>,
    iv: Option<Vec<u8>>,
    tag: Option<Vec<u8>>,
    aad: Option<Vec<u8>>,
    correlation: Option<Vec<u8>>,
    init: Option<bool>,
    last: Option<bool>,
    method: u8,
    salt: Option<Vec<u8>>,
    iterations: Option<i32>,
    length: i32,
    secret_data: bool,
    encoding: Option<u8>,
    version: u8,
}

struct Fuzz {
    server: kmip_server::Server,
    keys: Vec<String>,
}

fn item(t: Tag, v: Value) -> Ttlv {
    Ttlv::new(t, v)
}

fn enumeration(t: Tag, v: u32) -> Ttlv {
    item(t, Value::Enumeration(v))
}

/// One request message of one batch item, as bytes.
fn message(version: (i32, i32), operation: u32, payload: Vec<Ttlv>) -> Vec<u8> {
    encode(&Ttlv::structure(
        tag::REQUEST_MESSAGE,
        vec![
            Ttlv::structure(
                tag::REQUEST_HEADER,
                vec![
                    Ttlv::structure(
                        tag::PROTOCOL_VERSION,
                        vec![
                            item(tag::PROTOCOL_VERSION_MAJOR, Value::Integer(version.0)),
                            item(tag::PROTOCOL_VERSION_MINOR, Value::Integer(version.1)),
                        ],
                    ),
                    item(tag::BATCH_COUNT, Value::Integer(1)),
                ],
            ),
            Ttlv::structure(
                tag::BATCH_ITEM,
                vec![
                    enumeration(tag::OPERATION, operation),
                    Ttlv::structure(tag::REQUEST_PAYLOAD, payload),
                ],
            ),
        ],
    ))
}

/// The answer to `bytes`, checked: a Response Message, and no operation that panicked.
fn answer(server: &kmip_server::Server, bytes: &[u8]) -> Ttlv {
    let out = kmip_server::pipeline::answer(server, "admin", "fuzz", bytes)
        .expect("a well-formed message gets an answer");
    let (resp, _) = decode(&out, &Limits::default()).expect("the answer decodes");
    assert_eq!(resp.tag, tag::RESPONSE_MESSAGE);
    for b in resp.children_with(tag::BATCH_ITEM) {
        let message = b.child(tag::RESULT_MESSAGE).and_then(Ttlv::as_text);
        assert!(
            !message.is_some_and(|m| m.contains("failed inside the server")),
            "an operation panicked"
        );
    }
    resp
}

/// The Unique Identifiers an answer names.
fn ids(resp: &Ttlv) -> Vec<String> {
    resp.children_with(tag::BATCH_ITEM)
        .filter_map(|b| b.child(tag::RESPONSE_PAYLOAD))
        .flat_map(|p| {
            p.children().iter().filter(|c| {
                matches!(
                    c.tag,
                    tag::UNIQUE_IDENTIFIER
                        | tag::PRIVATE_KEY_UNIQUE_IDENTIFIER
                        | tag::PUBLIC_KEY_UNIQUE_IDENTIFIER
                )
            })
        })
        .filter_map(Ttlv::as_text)
        .map(str::to_owned)
        .collect()
}

fn attributes(items: Vec<Ttlv>) -> Ttlv {
    Ttlv::structure(tag::ATTRIBUTES, items)
}

/// Keys of every kind the server holds, Active, usable for everything their kind allows.
fn setup() -> Fuzz {
    use kmip_codec::vocab::enums::{cryptographic_algorithm as alg, recommended_curve};
    use lifecycle::core::{Core, MasterKey};
    // the server logs a panic and lets it be caught (a General Failure answer); its hook goes
    // in first, so that ours replaces it: here a panic aborts, for libFuzzer to record
    kmip_server::error::log_panics();
    std::panic::set_hook(Box::new(|info| {
        eprintln!("{info}");
        std::process::abort();
    }));
    // a derivation of millions of iterations would make each input take seconds
    lifecycle::core::set_max_pbkdf2_iterations(1_000);
    let server = kmip_server::Server {
        manager: lifecycle::Manager::new(
            std::sync::Arc::new(lifecycle::store::MemoryStore::new()),
            Core::new(MasterKey::generate().expect("master key")),
        ),
        limits: kmip_server::config::Settings {
            max_batch_items: 64,
            decode: Limits::default(),
            credentials: kmip_server::policy::Credentials::parse(&[]).expect("no credentials"),
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
            kmip_server::audit::Audit::open(std::path::Path::new("/dev/null"), u64::MAX)
                .expect("audit to /dev/null"),
        ),
    };
    let every_use = item(tag::CRYPTOGRAPHIC_USAGE_MASK, Value::Integer(0x0000_3FFF));
    let active = item(tag::ACTIVATION_DATE, Value::DateTime(1));
    let mut keys = Vec::new();
    for (a, bits) in [
        (alg::AES, 128),
        (alg::AES, 256),
        (alg::DES3, 192),
        (alg::CHACHA20, 256),
        (alg::HMAC_SHA256, 256),
        (alg::HMAC_SHA512, 512),
    ] {
        let resp = answer(
            &server,
            &message(
                (2, 1),
                op::CREATE,
                vec![
                    enumeration(tag::OBJECT_TYPE, ot::SYMMETRIC_KEY),
                    attributes(vec![
                        enumeration(tag::CRYPTOGRAPHIC_ALGORITHM, a),
                        item(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(bits)),
                        every_use.clone(),
                        active.clone(),
                    ]),
                ],
            ),
        );
        keys.extend(ids(&resp));
    }
    for (a, length, curve) in [
        (alg::RSA, Some(2048), None),
        (alg::EC, None, Some(recommended_curve::P_256)),
    ] {
        let mut common = vec![
            enumeration(tag::CRYPTOGRAPHIC_ALGORITHM, a),
            every_use.clone(),
            active.clone(),
        ];
        if let Some(l) = length {
            common.push(item(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(l)));
        }
        if let Some(c) = curve {
            common.push(Ttlv::structure(
                tag::CRYPTOGRAPHIC_DOMAIN_PARAMETERS,
                vec![enumeration(tag::RECOMMENDED_CURVE, c)],
            ));
        }
        let resp = answer(
            &server,
            &message(
                (2, 1),
                op::CREATE_KEY_PAIR,
                vec![Ttlv::structure(tag::COMMON_ATTRIBUTES, common)],
            ),
        );
        keys.extend(ids(&resp));
    }
    let password = Ttlv::structure(
        tag::SECRET_DATA,
        vec![
            enumeration(tag::SECRET_DATA_TYPE, 1),
            Ttlv::structure(
                tag::KEY_BLOCK,
                vec![
                    enumeration(tag::KEY_FORMAT_TYPE, 2),
                    Ttlv::structure(
                        tag::KEY_VALUE,
                        vec![item(tag::KEY_MATERIAL, Value::ByteString(b"pw".to_vec()))],
                    ),
                ],
            ),
        ],
    );
    let resp = answer(
        &server,
        &message(
            (2, 1),
            op::REGISTER,
            vec![
                enumeration(tag::OBJECT_TYPE, ot::SECRET_DATA),
                attributes(vec![every_use, active]),
                password,
            ],
        ),
    );
    keys.extend(ids(&resp));
    assert!(keys.len() >= 8, "the keys were made: {keys:?}");
    Fuzz { server, keys }
}

fn parameters(p: &Params) -> Ttlv {
    let mut v = Vec::new();
    let mut e = |t: Tag, x: Option<u8>, modulo: u32| {
        if let Some(x) = x {
            v.push(enumeration(t, u32::from(x) % modulo));
        }
    };
    e(tag::BLOCK_CIPHER_MODE, p.mode, 21);
    e(tag::PADDING_METHOD, p.padding, 12);
    e(tag::HASHING_ALGORITHM, p.hash, 20);
    e(tag::DIGITAL_SIGNATURE_ALGORITHM, p.signature, 20);
    e(tag::CRYPTOGRAPHIC_ALGORITHM, p.algorithm, 40);
    e(tag::MASK_GENERATOR_HASHING_ALGORITHM, p.mask_hash, 20);
    if let Some(r) = p.random_iv {
        v.push(item(tag::RANDOM_IV, Value::Boolean(r)));
    }
    if let Some(l) = p.iv_length {
        v.push(item(tag::IV_LENGTH, Value::Integer(l)));
    }
    if let Some(l) = p.tag_length {
        v.push(item(tag::TAG_LENGTH, Value::Integer(l)));
    }
    if let Some(s) = &p.p_source {
        v.push(item(tag::P_SOURCE, Value::ByteString(s.clone())));
    }
    Ttlv::structure(tag::CRYPTOGRAPHIC_PARAMETERS, v)
}

fn bytes(t: Tag, b: &Option<Vec<u8>>) -> Option<Ttlv> {
    b.as_ref().map(|b| item(t, Value::ByteString(b.clone())))
}

fn request(f: &Fuzz, input: &Input) -> (u32, Vec<Ttlv>) {
    use kmip_codec::vocab::enums::derivation_method;
    let key = &f.keys[usize::from(input.key) % f.keys.len()];
    let uid = item(tag::UNIQUE_IDENTIFIER, Value::TextString(key.clone()));
    let params = input.params.as_ref().map(parameters);
    let data = item(tag::DATA, Value::ByteString(input.data.clone()));
    let mut p = vec![uid];
    p.extend(params.clone());
    let operation = match input.operation % 8 {
        0 => op::ENCRYPT,
        1 => op::DECRYPT,
        2 => op::SIGN,
        3 => op::SIGNATURE_VERIFY,
        4 => op::MAC,
        5 => op::MAC_VERIFY,
        6 => op::DERIVE_KEY,
        _ => op::GET,
    };
    match operation {
        op::DERIVE_KEY => {
            let mut dp = Vec::new();
            dp.extend(params);
            dp.extend(bytes(tag::INITIALIZATION_VECTOR, &input.iv));
            dp.push(item(
                tag::DERIVATION_DATA,
                Value::ByteString(input.data.clone()),
            ));
            dp.extend(bytes(tag::SALT, &input.salt));
            if let Some(n) = input.iterations {
                dp.push(item(tag::ITERATION_COUNT, Value::Integer(n)));
            }
            let methods = [
                derivation_method::PBKDF2,
                derivation_method::HASH,
                derivation_method::HMAC,
                derivation_method::ENCRYPT,
                derivation_method::NIST800_108_C,
                u32::from(input.method),
            ];
            let object_type = if input.secret_data {
                ot::SECRET_DATA
            } else {
                ot::SYMMETRIC_KEY
            };
            let mut attrs = vec![item(
                tag::CRYPTOGRAPHIC_LENGTH,
                Value::Integer(input.length),
            )];
            if object_type == ot::SYMMETRIC_KEY {
                attrs.push(enumeration(tag::CRYPTOGRAPHIC_ALGORITHM, 3));
            }
            let base = p.remove(0);
            (
                operation,
                vec![
                    enumeration(tag::OBJECT_TYPE, object_type),
                    base,
                    enumeration(
                        tag::DERIVATION_METHOD,
                        methods[usize::from(input.method) % methods.len()],
                    ),
                    Ttlv::structure(tag::DERIVATION_PARAMETERS, dp),
                    attributes(attrs),
                ],
            )
        }
        op::GET => {
            let kek = &f.keys[usize::from(input.wrapping_key) % f.keys.len()];
            let mut info = vec![item(tag::UNIQUE_IDENTIFIER, Value::TextString(kek.clone()))];
            info.extend(p.drain(1..));
            let mut spec = vec![
                enumeration(tag::WRAPPING_METHOD, 1),
                Ttlv::structure(tag::ENCRYPTION_KEY_INFORMATION, info),
            ];
            if let Some(e) = input.encoding {
                spec.push(enumeration(tag::ENCODING_OPTION, u32::from(e) % 4));
            }
            p.push(Ttlv::structure(tag::KEY_WRAPPING_SPECIFICATION, spec));
            (operation, p)
        }
        _ => {
            p.push(data);
            p.extend(bytes(tag::INITIALIZATION_VECTOR, &input.iv));
            p.extend(bytes(
                tag::AUTHENTICATED_ENCRYPTION_ADDITIONAL_DATA,
                &input.aad,
            ));
            p.extend(bytes(tag::AUTHENTICATED_ENCRYPTION_TAG, &input.tag));
            let signed = match operation {
                op::SIGNATURE_VERIFY => Some(tag::SIGNATURE_DATA),
                op::MAC_VERIFY => Some(tag::MAC_DATA),
                _ => None,
            };
            if let (Some(t), Some(s)) = (signed, &input.tag) {
                p.push(item(t, Value::ByteString(s.clone())));
            }
            p.extend(bytes(tag::CORRELATION_VALUE, &input.correlation));
            if let Some(i) = input.init {
                p.push(item(tag::INIT_INDICATOR, Value::Boolean(i)));
            }
            if let Some(l) = input.last {
                p.push(item(tag::FINAL_INDICATOR, Value::Boolean(l)));
            }
            (operation, p)
        }
    }
}

/// Inputs one in-process server answers before a fresh one takes over: Derive Key and
/// Create keep adding objects to its memory store, which would otherwise grow for the whole
/// run (an hour: a gigabyte).
const INPUTS_PER_SERVER: u32 = 50_000;

static FUZZ: Mutex<Option<(Fuzz, u32)>> = Mutex::new(None);

fuzz_target!(|input: Input| {
    let mut guard = FUZZ.lock().unwrap_or_else(|p| p.into_inner());
    if guard.as_ref().is_none_or(|(_, n)| *n >= INPUTS_PER_SERVER) {
        *guard = Some((setup(), 0));
    }
    let (f, n) = guard.as_mut().expect("a server");
    *n += 1;
    let version = [(2, 1), (2, 0), (1, 4), (1, 2), (1, 0)][usize::from(input.version) % 5];
    let (operation, payload) = request(f, &input);
    answer(&f.server, &message(version, operation, payload));
});
