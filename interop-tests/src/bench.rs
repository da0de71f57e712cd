//! The load generator behind `kmip-bench`: N connections, each a real mutual-TLS KMIP client
//! that waits for every response before sending the next request (as KMIP clients do), one
//! workload for a fixed time after a warm-up. Reports operations per second, latency
//! percentiles and, given the server's PID, its CPU time per operation (from /proc).

use kmip_client::{Client, ClientError};
use kmip_codec::attributes::to_v1;
use kmip_codec::vocab::enums::{
    block_cipher_mode as bcm, cryptographic_algorithm as alg, cryptographic_usage_mask as um,
    digital_signature_algorithm as dsa, hashing_algorithm as ha, object_type as ot,
    operation as op, padding_method as pm, recommended_curve as rc,
};
use kmip_codec::vocab::tag;
use kmip_codec::{Tag, Ttlv, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

pub const WORKLOADS: &[&str] = &[
    "get",
    "create",
    "encrypt",
    "sign-rsa",
    "sign-ecdsa",
    "locate",
    "batch-get",
    "mongodb",
    "vsphere",
    "echo",
];

fn item(t: Tag, v: Value) -> Ttlv {
    Ttlv::new(t, v)
}

fn text(t: Tag, s: &str) -> Ttlv {
    item(t, Value::TextString(s.into()))
}

fn payload(items: Vec<Ttlv>) -> Ttlv {
    Ttlv::structure(tag::REQUEST_PAYLOAD, items)
}

/// Attributes in the client's protocol version: 2.x Attributes, 1.x Template-Attribute.
fn attributes(major: i32, items: Vec<Ttlv>) -> Ttlv {
    if major >= 2 {
        Ttlv::structure(tag::ATTRIBUTES, items)
    } else {
        Ttlv::structure(tag::TEMPLATE_ATTRIBUTE, to_v1(&items).unwrap_or_default())
    }
}

fn uid_of(resp: &Ttlv) -> Result<String, ClientError> {
    resp.child(tag::UNIQUE_IDENTIFIER)
        .and_then(Ttlv::as_text)
        .map(str::to_owned)
        .ok_or_else(|| ClientError::Decode("no Unique Identifier".into()))
}

/// The payload of a Create of an AES-256 key with `more` attributes.
fn aes_key(major: i32, more: Vec<Ttlv>) -> Ttlv {
    let mut a = vec![
        item(tag::CRYPTOGRAPHIC_ALGORITHM, Value::Enumeration(alg::AES)),
        item(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(256)),
    ];
    a.extend(more);
    payload(vec![
        item(tag::OBJECT_TYPE, Value::Enumeration(ot::SYMMETRIC_KEY)),
        attributes(major, a),
    ])
}

fn name(n: &str) -> Ttlv {
    Ttlv::structure(
        tag::NAME,
        vec![
            text(tag::NAME_VALUE, n),
            item(tag::NAME_TYPE, Value::Enumeration(1)),
        ],
    )
}

/// Encrypt and Decrypt: PyKMIP's server insists on a usage mask.
fn encrypt_decrypt() -> Ttlv {
    item(
        tag::CRYPTOGRAPHIC_USAGE_MASK,
        Value::Integer((um::ENCRYPT | um::DECRYPT) as i32),
    )
}

/// Create an AES-256 key, Active from now; its identifier.
pub fn create_aes(c: &mut Client, n: Option<&str>) -> Result<String, ClientError> {
    let major = c.protocol_version().0;
    let mut more = vec![encrypt_decrypt()];
    more.extend(n.map(name));
    uid_of(&c.call(op::CREATE, aes_key(major, more))?)
}

fn by_id(id: &str) -> Ttlv {
    payload(vec![text(tag::UNIQUE_IDENTIFIER, id)])
}

fn activate(c: &mut Client, id: &str) -> Result<(), ClientError> {
    c.call(op::ACTIVATE, by_id(id)).map(|_| ())
}

fn key_pair(c: &mut Client, rsa: bool) -> Result<String, ClientError> {
    let major = c.protocol_version().0;
    let mut common = Vec::new();
    if rsa {
        common.push(item(
            tag::CRYPTOGRAPHIC_ALGORITHM,
            Value::Enumeration(alg::RSA),
        ));
        common.push(item(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(2048)));
    } else {
        common.push(item(
            tag::CRYPTOGRAPHIC_ALGORITHM,
            Value::Enumeration(alg::EC),
        ));
        common.push(item(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(256)));
        common.push(Ttlv::structure(
            tag::CRYPTOGRAPHIC_DOMAIN_PARAMETERS,
            vec![item(tag::RECOMMENDED_CURVE, Value::Enumeration(rc::P_256))],
        ));
    }
    let mask = |m: u32| {
        vec![item(
            tag::CRYPTOGRAPHIC_USAGE_MASK,
            Value::Integer(m as i32),
        )]
    };
    let (ct, pt, ut) = if major >= 2 {
        (
            tag::COMMON_ATTRIBUTES,
            tag::PRIVATE_KEY_ATTRIBUTES,
            tag::PUBLIC_KEY_ATTRIBUTES,
        )
    } else {
        (
            tag::COMMON_TEMPLATE_ATTRIBUTE,
            tag::PRIVATE_KEY_TEMPLATE_ATTRIBUTE,
            tag::PUBLIC_KEY_TEMPLATE_ATTRIBUTE,
        )
    };
    let wrap = |t: Tag, items: Vec<Ttlv>| {
        let mut a = attributes(major, items);
        a.tag = t;
        a
    };
    let r = c.call(
        op::CREATE_KEY_PAIR,
        payload(vec![
            wrap(ct, common),
            wrap(pt, mask(um::SIGN)),
            wrap(ut, mask(um::VERIFY)),
        ]),
    )?;
    let sk = r
        .child(tag::PRIVATE_KEY_UNIQUE_IDENTIFIER)
        .and_then(Ttlv::as_text)
        .map(str::to_owned)
        .ok_or_else(|| ClientError::Decode("no private key".into()))?;
    activate(c, &sk)?;
    Ok(sk)
}

fn params(items: Vec<Ttlv>) -> Ttlv {
    Ttlv::structure(tag::CRYPTOGRAPHIC_PARAMETERS, items)
}

/// What one connection does, prepared once before the clock starts.
pub enum Step {
    /// One message, one or more batch items, answered as a whole: encoded once, as the echo
    /// ceiling's message is, so that the client's work per request is the same in both.
    Message(Vec<u8>),
    /// A client sequence: several messages in a row, each depending on the one before.
    Mongodb,
    Vsphere,
    /// The framing ceiling: a message of the Get's size to a TLS echo server.
    Echo(Vec<u8>),
}

fn message(c: &Client, items: Vec<(u32, Ttlv)>) -> Step {
    Step::Message(kmip_codec::encode(&c.batch_request(items).to_ttlv()))
}

/// Set up what `workload` needs on the server (keys, objects) and say what each iteration
/// sends.
pub fn prepare(c: &mut Client, workload: &str, objects: usize) -> Result<Step, ClientError> {
    Ok(match workload {
        "get" | "batch-get" => {
            let k = create_aes(c, None)?;
            let n = if workload == "get" { 1 } else { 10 };
            message(c, vec![(op::GET, by_id(&k)); n])
        }
        "create" => {
            let major = c.protocol_version().0;
            message(
                c,
                vec![(op::CREATE, aes_key(major, vec![encrypt_decrypt()]))],
            )
        }
        "encrypt" => {
            let k = create_aes(c, None)?;
            activate(c, &k)?;
            message(
                c,
                vec![(
                    op::ENCRYPT,
                    payload(vec![
                        text(tag::UNIQUE_IDENTIFIER, &k),
                        params(vec![item(
                            tag::BLOCK_CIPHER_MODE,
                            Value::Enumeration(bcm::GCM),
                        )]),
                        item(tag::DATA, Value::ByteString(vec![0x42; 64])),
                    ]),
                )],
            )
        }
        "sign-rsa" | "sign-ecdsa" => {
            let rsa = workload == "sign-rsa";
            let sk = key_pair(c, rsa)?;
            let p = if rsa {
                params(vec![
                    item(tag::PADDING_METHOD, Value::Enumeration(pm::PKCS1_V1_5)),
                    item(tag::HASHING_ALGORITHM, Value::Enumeration(ha::SHA_256)),
                    item(
                        tag::DIGITAL_SIGNATURE_ALGORITHM,
                        Value::Enumeration(dsa::SHA_256_WITH_RSA_ENCRYPTION),
                    ),
                ])
            } else {
                params(vec![
                    item(tag::HASHING_ALGORITHM, Value::Enumeration(ha::SHA_256)),
                    item(
                        tag::DIGITAL_SIGNATURE_ALGORITHM,
                        Value::Enumeration(dsa::ECDSA_WITH_SHA256),
                    ),
                ])
            };
            message(
                c,
                vec![(
                    op::SIGN,
                    payload(vec![
                        text(tag::UNIQUE_IDENTIFIER, &sk),
                        p,
                        item(tag::DATA, Value::ByteString(vec![0x17; 32])),
                    ]),
                )],
            )
        }
        "locate" => {
            let major = c.protocol_version().0;
            // objects are named bench-0 .. bench-(N-1), created by `populate`
            let wanted = name(&format!("bench-{}", objects / 2));
            let attrs = if major >= 2 {
                Ttlv::structure(tag::ATTRIBUTES, vec![wanted])
            } else {
                to_v1(&[wanted]).unwrap_or_default().remove(0)
            };
            message(c, vec![(op::LOCATE, payload(vec![attrs]))])
        }
        "mongodb" => Step::Mongodb,
        "vsphere" => Step::Vsphere,
        other => {
            return Err(ClientError::Decode(format!(
                "unknown workload {other}: {}",
                WORKLOADS.join(", ")
            )))
        }
    })
}

/// Create `n` named AES keys (`bench-0` ...), 100 per message; for Locate among many.
pub fn populate(c: &mut Client, n: usize) -> Result<(), ClientError> {
    let major = c.protocol_version().0;
    let mut i = 0;
    while i < n {
        let items: Vec<(u32, Ttlv)> = (i..(i + 100).min(n))
            .map(|j| {
                (
                    op::CREATE,
                    aes_key(major, vec![name(&format!("bench-{j}"))]),
                )
            })
            .collect();
        let r = c.batch(items)?;
        if r.batch_item
            .iter()
            .any(|b| b.result_status.0 .0 != kmip_codec::vocab::enums::result_status::SUCCESS)
        {
            return Err(ClientError::Decode(
                "a Create of the population failed".into(),
            ));
        }
        i += 100;
    }
    Ok(())
}

/// One iteration of a step; Ok when every response succeeded.
pub fn run_step(c: &mut Client, step: &Step) -> Result<(), ClientError> {
    match step {
        Step::Message(bytes) => {
            let r = c.raw(bytes)?;
            let failed = r.children_with(tag::BATCH_ITEM).find(|b| {
                b.child(tag::RESULT_STATUS).and_then(Ttlv::as_enum)
                    != Some(kmip_codec::vocab::enums::result_status::SUCCESS)
            });
            match failed {
                None => Ok(()),
                Some(b) => Err(ClientError::Failed {
                    reason: b
                        .child(tag::RESULT_REASON)
                        .and_then(Ttlv::as_enum)
                        .unwrap_or(0),
                    message: b
                        .child(tag::RESULT_MESSAGE)
                        .and_then(Ttlv::as_text)
                        .unwrap_or_default()
                        .to_owned(),
                }),
            }
        }
        Step::Mongodb => {
            // MongoDB's KMIP key manager: create a key, activate it, check its state, then
            // encrypt and decrypt the data key with it
            let k = create_aes(c, None)?;
            activate(c, &k)?;
            let major = c.protocol_version().0;
            let state = if major >= 2 {
                Ttlv::new(tag::ATTRIBUTE_REFERENCE, Value::Enumeration(tag::STATE.0))
            } else {
                text(tag::ATTRIBUTE_NAME, "State")
            };
            c.call(
                op::GET_ATTRIBUTES,
                payload(vec![text(tag::UNIQUE_IDENTIFIER, &k), state]),
            )?;
            let gcm = || {
                params(vec![item(
                    tag::BLOCK_CIPHER_MODE,
                    Value::Enumeration(bcm::GCM),
                )])
            };
            let e = c.call(
                op::ENCRYPT,
                payload(vec![
                    text(tag::UNIQUE_IDENTIFIER, &k),
                    gcm(),
                    item(tag::DATA, Value::ByteString(vec![7; 96])),
                ]),
            )?;
            let field = |t| e.child(t).cloned();
            let mut d = vec![text(tag::UNIQUE_IDENTIFIER, &k), gcm()];
            d.extend(field(tag::DATA));
            d.extend(field(tag::IV_COUNTER_NONCE));
            d.extend(field(tag::AUTHENTICATED_ENCRYPTION_TAG));
            c.call(op::DECRYPT, payload(d)).map(|_| ())
        }
        Step::Vsphere => {
            // vSphere's key provider: create, read attributes, tag the key three times, fetch
            let k = create_aes(c, None)?;
            c.call(op::GET_ATTRIBUTES, by_id(&k))?;
            let major = c.protocol_version().0;
            for i in 0..3 {
                let value = Value::TextString(format!("vm-{i}"));
                let attr = if major >= 2 {
                    Ttlv::structure(
                        tag::NEW_ATTRIBUTE,
                        vec![Ttlv::structure(
                            tag::ATTRIBUTE,
                            vec![
                                text(tag::VENDOR_IDENTIFICATION, "x"),
                                text(tag::ATTRIBUTE_NAME, &format!("vmware-{i}")),
                                item(tag::ATTRIBUTE_VALUE, value),
                            ],
                        )],
                    )
                } else {
                    Ttlv::structure(
                        tag::ATTRIBUTE,
                        vec![
                            text(tag::ATTRIBUTE_NAME, &format!("x-vmware-{i}")),
                            item(tag::ATTRIBUTE_VALUE, value),
                        ],
                    )
                };
                c.call(
                    op::ADD_ATTRIBUTE,
                    payload(vec![text(tag::UNIQUE_IDENTIFIER, &k), attr]),
                )?;
            }
            c.call(op::GET, by_id(&k)).map(|_| ())
        }
        Step::Echo(msg) => c.raw(msg).map(|_| ()),
    }
}

/// The result of one run.
#[derive(Debug, Clone)]
pub struct Report {
    pub workload: String,
    pub connections: usize,
    pub seconds: f64,
    pub operations: u64,
    pub errors: u64,
    pub ops_per_second: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    /// Server CPU microseconds per operation, when its PID was given.
    pub server_cpu_us_per_op: Option<f64>,
    /// This load generator's own CPU microseconds per operation: on a shared machine it is
    /// taken from the server's share.
    pub client_cpu_us_per_op: Option<f64>,
    /// What the first failed operation said, if one failed.
    pub first_error: Option<String>,
}

impl Report {
    pub fn json(&self) -> String {
        format!(
            "{{\"workload\":\"{}\",\"connections\":{},\"seconds\":{:.2},\"operations\":{},\"errors\":{},\"ops_per_second\":{:.1},\"p50_us\":{},\"p99_us\":{},\"p999_us\":{},\"server_cpu_us_per_op\":{},\"client_cpu_us_per_op\":{},\"first_error\":{}}}",
            self.workload,
            self.connections,
            self.seconds,
            self.operations,
            self.errors,
            self.ops_per_second,
            self.p50_us,
            self.p99_us,
            self.p999_us,
            self.server_cpu_us_per_op
                .map(|v| format!("{v:.1}"))
                .unwrap_or_else(|| "null".into()),
            self.client_cpu_us_per_op
                .map(|v| format!("{v:.1}"))
                .unwrap_or_else(|| "null".into()),
            self.first_error
                .as_ref()
                .map(|e| format!("{:?}", e))
                .unwrap_or_else(|| "null".into())
        )
    }
}

/// CPU time (user + system) a process has used, in microseconds, from /proc/PID/stat (Linux);
/// `None` where there is none.
pub fn process_cpu_us(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the command name may hold spaces: fields count from after its closing parenthesis
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks * 1_000_000 / clock_ticks())
}

fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(ask_clock_ticks)
}

fn ask_clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100)
}

/// Run `step` on `clients` (one thread each) for `warmup` then `duration`.
pub fn run(
    workload: &str,
    clients: Vec<Client>,
    step: Arc<Step>,
    warmup: Duration,
    duration: Duration,
    server_pids: &[u32],
) -> Report {
    let cpu = || -> Option<u64> {
        if server_pids.is_empty() {
            return None;
        }
        server_pids.iter().map(|p| process_cpu_us(*p)).sum()
    };
    let n = clients.len();
    let start = Arc::new(Barrier::new(n + 1));
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            let (start, measuring, stop, step) =
                (start.clone(), measuring.clone(), stop.clone(), step.clone());
            std::thread::spawn(move || {
                let mut lat = Vec::with_capacity(1 << 16);
                let mut errors = 0u64;
                let mut first_error = None;
                start.wait();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let outcome = run_step(&mut c, &step);
                    if measuring.load(Ordering::Relaxed) {
                        lat.push(t.elapsed().as_micros() as u32);
                        if let Err(e) = outcome {
                            errors += 1;
                            first_error.get_or_insert_with(|| e.to_string());
                        }
                    }
                }
                (lat, errors, first_error)
            })
        })
        .collect();
    start.wait();
    std::thread::sleep(warmup);
    let cpu0 = cpu();
    let own0 = process_cpu_us(std::process::id());
    let t0 = Instant::now();
    measuring.store(true, Ordering::Relaxed);
    std::thread::sleep(duration);
    measuring.store(false, Ordering::Relaxed);
    let seconds = t0.elapsed().as_secs_f64();
    let cpu1 = cpu();
    let own1 = process_cpu_us(std::process::id());
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for t in threads {
        if let Ok((lat, e, first)) = t.join() {
            all.extend(lat);
            errors += e;
            first_error = first_error.or(first);
        }
    }
    all.sort_unstable();
    let pct = |p: f64| -> u64 {
        if all.is_empty() {
            return 0;
        }
        let i = ((all.len() as f64 * p).ceil() as usize).clamp(1, all.len()) - 1;
        u64::from(all[i])
    };
    let operations = all.len() as u64;
    Report {
        workload: workload.to_owned(),
        connections: n,
        seconds,
        operations,
        errors,
        ops_per_second: operations as f64 / seconds,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        p999_us: pct(0.999),
        server_cpu_us_per_op: match (cpu0, cpu1) {
            (Some(a), Some(b)) if operations > 0 => Some((b - a) as f64 / operations as f64),
            _ => None,
        },
        client_cpu_us_per_op: match (own0, own1) {
            (Some(a), Some(b)) if operations > 0 => Some((b - a) as f64 / operations as f64),
            _ => None,
        },
        first_error,
    }
}

/// The message `Get` sends, encoded: the echo workload sends it to an echo server.
pub fn get_message(id: &str) -> Vec<u8> {
    let m = kmip_client::request_message((2, 1), vec![(op::GET, by_id(id))]);
    kmip_codec::encode(&m.to_ttlv())
}
