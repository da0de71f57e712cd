//! Crash under load: four clients register, re-key and destroy keys over TLS while the server
//! is killed with SIGKILL at random moments, 100 times. After every restart, each operation
//! that had been acknowledged is there (registered keys with identical material, replacements
//! linked from the keys they replace, destroyed keys destroyed) and every object the server
//! holds is whole. Operations cut off by the kill may have happened or not, but not half.

use interop_tests::kmip::*;
use interop_tests::ServerProcess;
use kmip_client::Client;
use kmip_codec::ops::*;
use kmip_codec::vocab::enums::{
    cryptographic_algorithm as alg, link_type, object_type as ot, operation as op, state,
};
use kmip_codec::vocab::tag;
use kmip_codec::Ttlv;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Kills in a CI run; `KMIP_CRASH_KILLS` sets more for the long form (RELIABILITY.md).
fn kills() -> usize {
    std::env::var("KMIP_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
}
const CLIENTS: usize = 4;

#[derive(Default)]
struct Model {
    /// Registered keys, acknowledged: their material.
    registered: BTreeMap<String, Vec<u8>>,
    /// Acknowledged re-keys: replacement -> replaced.
    replacements: BTreeMap<String, String>,
    destroyed: BTreeSet<String>,
    /// Objects an operation cut off by a kill may have changed: no claim on them.
    uncertain: BTreeSet<String>,
    acknowledged: usize,
    /// The round each object was last acknowledged in: a restart checks what the round
    /// before it acknowledged (everything, every 25 rounds and at the end).
    round_of: BTreeMap<String, usize>,
    round: usize,
}

impl Model {
    /// One acknowledged operation, on these objects.
    fn ack(&mut self, ids: &[&str]) {
        self.acknowledged += 1;
        for id in ids {
            self.round_of.insert((*id).to_owned(), self.round);
        }
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn material(obj: &Ttlv) -> Option<Vec<u8>> {
    Some(
        obj.child(tag::KEY_BLOCK)?
            .child(tag::KEY_VALUE)?
            .child(tag::KEY_MATERIAL)?
            .as_bytes()?
            .to_vec(),
    )
}

fn attrs(c: &mut Client, id: &str) -> Vec<Ttlv> {
    get_attributes(c, id)
}

fn verify(server: &ServerProcess, m: &Model, round: usize, kills: usize) {
    let full = round % 25 == 0 || round == kills;
    let recent = |id: &String| full || m.round_of.get(id).is_some_and(|r| *r + 1 >= round);
    let mut c = server.client("admin");
    for (id, key) in &m.registered {
        if m.uncertain.contains(id) || m.destroyed.contains(id) || !recent(id) {
            continue;
        }
        let got = get_object(&mut c, id, None)
            .unwrap_or_else(|e| panic!("round {round}: acknowledged key {id} is gone: {e}"));
        assert_eq!(
            material(&got).as_ref(),
            Some(key),
            "round {round}: {id} changed"
        );
    }
    for (new, old) in &m.replacements {
        if m.uncertain.contains(new) || m.uncertain.contains(old) || !recent(new) {
            continue;
        }
        if !m.destroyed.contains(new) {
            assert!(
                get_object(&mut c, new, None).is_ok(),
                "round {round}: replacement {new} is gone"
            );
        }
        // a key re-keyed twice (two clients at once) links to both replacements
        let links: Vec<String> = attrs(&mut c, old)
            .iter()
            .filter(|l| l.tag == tag::LINK)
            .filter(|l| {
                l.child(tag::LINK_TYPE).and_then(Ttlv::as_enum)
                    == Some(link_type::REPLACEMENT_OBJECT_LINK)
            })
            .filter_map(|l| {
                l.child(tag::LINKED_OBJECT_IDENTIFIER)?
                    .as_text()
                    .map(str::to_owned)
            })
            .collect();
        assert!(
            links.contains(new),
            "round {round}: {old} lost its replacement link to {new}: {links:?}"
        );
    }
    for id in &m.destroyed {
        if m.uncertain.contains(id) || !recent(id) {
            continue;
        }
        let s = attrs(&mut c, id)
            .into_iter()
            .find(|a| a.tag == tag::STATE)
            .and_then(|a| a.as_enum());
        assert!(
            matches!(
                s,
                Some(state::DESTROYED) | Some(state::DESTROYED_COMPROMISED)
            ),
            "round {round}: destroyed key {id} is in state {s:?}"
        );
    }
    if !full {
        return;
    }
    // whatever the server holds is whole: every object reads, every live key has material
    let all: LocateResponse = c.op(op::LOCATE, &LocateRequest::default()).unwrap();
    for id in all.unique_identifier {
        let a = attrs(&mut c, &id);
        assert!(
            a.iter().any(|x| x.tag == tag::STATE),
            "round {round}: {id} has no state"
        );
        let obj = get_object(&mut c, &id, None)
            .unwrap_or_else(|e| panic!("round {round}: {id} is listed but does not read: {e}"));
        assert!(
            material(&obj).is_some(),
            "round {round}: {id} has no material"
        );
    }
}

fn client_loop(
    port: u16,
    tls: &std::path::Path,
    model: &Mutex<Model>,
    stop: &AtomicBool,
    mut rng: Rng,
) {
    let Ok(mut c) = Client::connect(
        "localhost",
        port,
        &kmip_client::Identity {
            ca: &tls.join("ca.pem"),
            cert: Some(&tls.join("admin.pem")),
            key: Some(&tls.join("admin.key")),
        },
    ) else {
        return;
    };
    while !stop.load(Ordering::Relaxed) {
        let pick = |m: &Model, r: u64| -> Option<String> {
            let live: Vec<&String> = m
                .registered
                .keys()
                .chain(m.replacements.keys())
                .filter(|id| !m.destroyed.contains(*id) && !m.uncertain.contains(*id))
                .collect();
            (!live.is_empty()).then(|| live[(r as usize) % live.len()].clone())
        };
        match rng.next() % 10 {
            0..=5 => {
                let key: Vec<u8> = (0..16).map(|_| rng.next() as u8).collect();
                let obj = key_object(tag::SYMMETRIC_KEY, 1, alg::AES, 128, key.clone());
                match try_register(&mut c, ot::SYMMETRIC_KEY, obj, vec![]) {
                    Ok(id) => {
                        let mut m = model.lock().unwrap();
                        m.ack(&[&id]);
                        m.registered.insert(id, key);
                    }
                    Err(_) => return,
                }
            }
            6..=7 => {
                let Some(old) = pick(&model.lock().unwrap(), rng.next()) else {
                    continue;
                };
                model.lock().unwrap().uncertain.insert(old.clone());
                let r = c.op::<_, ReKeyResponse>(
                    op::RE_KEY,
                    &ReKeyRequest {
                        unique_identifier: uid(&old),
                        ..Default::default()
                    },
                );
                match r {
                    Ok(r) => {
                        let mut m = model.lock().unwrap();
                        m.uncertain.remove(&old);
                        m.ack(&[&r.unique_identifier.0, &old]);
                        m.replacements.insert(r.unique_identifier.0, old);
                    }
                    Err(kmip_client::ClientError::Failed { .. }) => {
                        model.lock().unwrap().uncertain.remove(&old);
                    }
                    Err(_) => return,
                }
            }
            _ => {
                let Some(id) = pick(&model.lock().unwrap(), rng.next()) else {
                    continue;
                };
                model.lock().unwrap().uncertain.insert(id.clone());
                let r = c.op::<_, DestroyResponse>(
                    op::DESTROY,
                    &DestroyRequest {
                        unique_identifier: uid(&id),
                    },
                );
                match r {
                    Ok(_) => {
                        let mut m = model.lock().unwrap();
                        m.uncertain.remove(&id);
                        m.ack(&[&id]);
                        m.destroyed.insert(id);
                    }
                    // a replaced (Active) key cannot be destroyed: that is an answer too
                    Err(kmip_client::ClientError::Failed { .. }) => {
                        model.lock().unwrap().uncertain.remove(&id);
                    }
                    Err(_) => return,
                }
            }
        }
    }
}

#[test]
fn acknowledged_operations_survive_sigkill_of_the_server() {
    crash_rounds(&[], kills());
}

/// The same over PostgreSQL (`--store`): the node is killed, the database lives on, and the
/// node restarted over it finds every acknowledged operation.
#[test]
fn acknowledged_operations_survive_sigkill_of_a_node_over_postgres() {
    let pg = interop_tests::pg::Postgres::start(&[]);
    let url = pg.new_database("kmip");
    crash_rounds(&["--store", &url], (kills() / 5).max(10));
}

fn crash_rounds(args: &[&str], kills: usize) {
    let model = Mutex::new(Model::default());
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut dir = tempfile::tempdir().unwrap();
    for round in 0..kills {
        let server = ServerProcess::try_start_in(dir, args)
            .unwrap_or_else(|(_, log)| panic!("round {round}: the server did not restart: {log}"));
        verify(&server, &model.lock().unwrap(), round, kills);
        model.lock().unwrap().round = round;
        let stop = AtomicBool::new(false);
        let run_for = Duration::from_millis(30 + rng.next() % 250);
        let seeds: Vec<u64> = (0..CLIENTS).map(|_| rng.next() | 1).collect();
        let (port, tls) = (server.port, server.tls_dir());
        dir = std::thread::scope(|s| {
            for seed in &seeds {
                let (tls, model, stop) = (&tls, &model, &stop);
                let seed = *seed;
                s.spawn(move || client_loop(port, tls, model, stop, Rng(seed)));
            }
            let before = model.lock().unwrap().acknowledged;
            std::thread::sleep(run_for);
            // and until the round got some work done: on a loaded machine the clients' TLS
            // handshakes alone may take longer than the round (then no kill lands on work)
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while model.lock().unwrap().acknowledged == before
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            // SIGKILL while the clients are in the middle of their requests
            let kept = server.stop();
            stop.store(true, Ordering::Relaxed);
            kept
        });
    }
    let server = ServerProcess::try_start_in(dir, args)
        .map_err(|(_, l)| l)
        .unwrap();
    let m = model.lock().unwrap();
    verify(&server, &m, kills, kills);
    println!(
        "{kills} kills, {} acknowledged operations ({} keys registered, {} re-keyed, {} destroyed)",
        m.acknowledged,
        m.registered.len(),
        m.replacements.len(),
        m.destroyed.len()
    );
    assert!(
        m.acknowledged >= kills,
        "the clients got work done between kills"
    );
}
