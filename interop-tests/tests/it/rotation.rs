//! Master-key rotation (`kmip-server master-rotate`) killed with SIGKILL at random points and
//! run again until it finishes: every key reads back byte for byte, the old key opens no
//! record, the audit log still verifies and records the rotation, and a server refuses to
//! start on a rotation left unfinished.

use interop_tests::kmip::{get_object, key_material, key_object, register};
use interop_tests::{kmip_server_command, output_text, ServerProcess};
use kmip_codec::vocab::enums::{
    cryptographic_algorithm as alg, key_format_type as kft, object_type as ot,
};
use kmip_codec::vocab::tag;
use lifecycle::core::{Core, MasterKey, Sealed};
use lifecycle::store::{RedbStore, Store};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const KEYS: usize = 300;
const KILLS: usize = 20;
/// Small, so that a rotation of a few hundred records takes dozens of transactions and a kill
/// lands between them.
const BATCH: &str = "4";

/// A small xorshift generator: the kill points vary from run to run, and the seed printed
/// reproduces a failing one.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn rotate(dir: &Path) -> Command {
    let mut c = Command::new(ServerProcess::binary());
    c.args(["master-rotate", "--batch-size", BATCH, "--data-dir"])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// Every record with material: none opens under `old`, every one under the current key.
fn old_key_opens_nothing(dir: &Path, old: &[u8]) -> usize {
    let current = MasterKey::from_bytes(&std::fs::read(dir.join("master.key")).unwrap()).unwrap();
    let (old, current) = (
        Core::new(MasterKey::from_bytes(old).unwrap()),
        Core::new(current),
    );
    let store = RedbStore::open(&dir.join("kmip.redb")).unwrap();
    let mut sealed = 0;
    for id in store.all_ids().unwrap() {
        let Some(bytes) = store.get(&id).unwrap().and_then(|r| r.sealed) else {
            continue;
        };
        let bytes = Sealed::new(&id, bytes);
        assert!(!old.opens(&bytes), "the old key opens {id}");
        assert!(current.opens(&bytes), "the new key opens {id}");
        sealed += 1;
    }
    sealed
}

#[test]
fn rotation_killed_at_random_points_finishes_and_every_key_reads_back() {
    let server = ServerProcess::start(&[]);
    let mut c = server.client("admin");
    let mut rng = Rng(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1);
    let seed = rng.0;
    let mut stored: Vec<(String, Vec<u8>)> = Vec::new();
    for _ in 0..KEYS {
        let material: Vec<u8> = (0..32).map(|_| rng.next() as u8).collect();
        let obj = key_object(
            tag::SYMMETRIC_KEY,
            kft::RAW,
            alg::AES,
            256,
            material.clone(),
        );
        stored.push((register(&mut c, ot::SYMMETRIC_KEY, obj, vec![]), material));
    }
    drop(c);
    let dir = server.stop();
    let d = dir.path();
    let original = std::fs::read(d.join("master.key")).unwrap();

    // one whole rotation, timed: the span the kills are drawn from
    let started = Instant::now();
    let out = rotate(d).output().unwrap();
    let whole = started.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!d.join("master.rotation").exists());
    let before_kills = std::fs::read(d.join("master.key")).unwrap();
    assert_ne!(before_kills, original);

    let (mut landed, mut before_journal, mut finished, mut runs) = (0, 0, 0, 0);
    while landed < KILLS {
        runs += 1;
        assert!(
            runs < 20 * KILLS,
            "only {landed} kills landed in {runs} runs (seed {seed})"
        );
        let mut child = rotate(d).spawn().unwrap();
        let at = Duration::from_micros(rng.next() % whole.as_micros().max(1) as u64);
        std::thread::sleep(at);
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success(), "a run failed (seed {seed})");
            finished += 1;
            continue;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        if d.join("master.rotation").exists() {
            landed += 1;
        } else {
            before_journal += 1;
        }
    }
    // the last run continues what the kills left and finishes it
    let out = rotate(d).output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("(an interrupted rotation finished)"),
        "{said}"
    );
    assert!(!d.join("master.rotation").exists());
    eprintln!(
        "seed {seed}: a whole rotation of {KEYS} keys took {whole:?}; {landed} kills mid-rotation, \
         {before_journal} before it began, {finished} runs finished before their kill; last run: {said}"
    );

    // neither the original key nor the one before the kills opens a record
    assert_eq!(old_key_opens_nothing(d, &original), KEYS);
    assert_eq!(old_key_opens_nothing(d, &before_kills), KEYS);
    // and the old key file does not start a server
    let current = std::fs::read(d.join("master.key")).unwrap();
    std::fs::write(d.join("master.key"), &before_kills).unwrap();
    let dir = match ServerProcess::try_start_in(dir, &[]) {
        Ok(_) => panic!("started with the key from before the rotation"),
        Err((dir, log)) => {
            assert!(log.contains("does not open this data directory"), "{log}");
            dir
        }
    };
    std::fs::write(dir.path().join("master.key"), &current).unwrap();

    let server = ServerProcess::try_start_in(dir, &[])
        .map_err(|(_, l)| l)
        .unwrap();
    let mut c = server.client("admin");
    for (id, material) in &stored {
        let obj = get_object(&mut c, id, None).unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(
            key_material(&obj).1.as_bytes(),
            Some(material.as_slice()),
            "{id}"
        );
    }
    drop(c);
    // the audit log verifies across the rotations, and says each finished
    server.assert_audit_chain();
    let log = std::fs::read_to_string(server.data_dir.path().join("audit.jsonl")).unwrap();
    let rotations = log
        .lines()
        .filter(|l| l.contains("\"event\":\"master-rotate\""))
        .count();
    assert!(
        rotations >= 2 + finished,
        "{rotations} rotation records:\n{log}"
    );
}

#[test]
fn a_server_refuses_to_start_on_an_unfinished_rotation() {
    let server = ServerProcess::start(&[]);
    let dir = server.stop();
    // a rotation that stopped after its journal: what a kill leaves
    std::fs::write(dir.path().join("master.rotation"), "format = 1\n").unwrap();
    let dir = match ServerProcess::try_start_in(dir, &[]) {
        Ok(_) => panic!("started with a rotation under way"),
        Err((dir, log)) => {
            assert!(log.contains("kmip-server master-rotate"), "{log}");
            dir
        }
    };
    // a journal that is not one: master-rotate refuses it and changes nothing
    let key = std::fs::read(dir.path().join("master.key")).unwrap();
    let out = kmip_server_command(dir.path(), &["master-rotate"]);
    assert!(!out.status.success(), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("not a rotation journal"),
        "{}",
        output_text(&out)
    );
    assert_eq!(std::fs::read(dir.path().join("master.key")).unwrap(), key);
}

#[test]
fn a_split_key_rotates_into_new_shares_and_the_old_ones_open_nothing() {
    let server = ServerProcess::start(&[]);
    let mut c = server.client("admin");
    let material = vec![0x5a; 32];
    let obj = key_object(
        tag::SYMMETRIC_KEY,
        kft::RAW,
        alg::AES,
        256,
        material.clone(),
    );
    let id = register(&mut c, ot::SYMMETRIC_KEY, obj, vec![]);
    drop(c);
    let dir = server.stop();
    let d = dir.path();
    let (old, new) = (d.join("old-shares"), d.join("new-shares"));
    let out = kmip_server_command(
        d,
        &[
            "master-split",
            "--threshold",
            "2",
            "--shares",
            "3",
            "--out-dir",
            old.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", output_text(&out));
    let files = |dir: &Path, n: &[u32]| -> Vec<String> {
        n.iter()
            .flat_map(|i| {
                [
                    "--master-share-file".to_owned(),
                    dir.join(format!("share-{i}")).display().to_string(),
                ]
            })
            .collect()
    };
    let mut args: Vec<String> = vec!["master-rotate".into(), "--out-dir".into()];
    args.push(new.display().to_string());
    args.extend(files(&old, &[1, 3]));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = kmip_server_command(d, &args);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("any 2 unseal"),
        "{}",
        output_text(&out)
    );
    let start_with = |dir: tempfile::TempDir, shares: Vec<String>| {
        let shares: Vec<&str> = shares.iter().map(String::as_str).collect();
        ServerProcess::try_start_in(dir, &shares)
    };
    let dir = match start_with(dir, files(&old, &[1, 2])) {
        Ok(_) => panic!("the old shares started the server"),
        Err((dir, log)) => {
            assert!(log.contains("does not open"), "{log}");
            dir
        }
    };
    let server = start_with(dir, files(&new, &[2, 3]))
        .map_err(|(_, l)| l)
        .unwrap();
    let obj = get_object(&mut server.client("admin"), &id, None).unwrap();
    assert_eq!(key_material(&obj).1.as_bytes(), Some(material.as_slice()));
}

#[test]
fn rotation_and_migration_refuse_a_running_server() {
    let server = ServerProcess::start(&[]);
    let d = server.data_dir.path();
    let key = std::fs::read(d.join("master.key")).unwrap();
    for args in [
        vec!["master-rotate"],
        vec![
            "seal",
            "migrate",
            "--to",
            "shares",
            "--threshold",
            "2",
            "--shares",
            "2",
        ],
    ] {
        let out = kmip_server_command(d, &args);
        let said = output_text(&out);
        assert!(!out.status.success(), "{args:?}: {said}");
        assert!(
            said.contains("needs the server stopped"),
            "{args:?}: {said}"
        );
        assert!(!d.join("master.rotation").exists());
        assert!(!d.join("master.shares").exists());
        assert_eq!(std::fs::read(d.join("master.key")).unwrap(), key);
    }
    assert!(server.serves("admin"));
}
