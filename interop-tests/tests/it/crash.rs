//! Crash test: a writer process commits keys and is killed with SIGKILL at random moments. After
//! each kill the store must open cleanly and hold every key whose commit had returned, with the
//! same material.

use lifecycle::core::{Core, MasterKey};
use lifecycle::store::RedbStore;
use lifecycle::Manager;
use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

const KILLS: usize = 60;

#[test]
fn acknowledged_keys_survive_sigkill() {
    let exe = std::env::current_exe().unwrap();
    let writer = exe.parent().unwrap().parent().unwrap().join("crash-writer");
    assert!(writer.exists(), "{} not built", writer.display());
    let dir = tempfile::tempdir().unwrap();
    let mut acknowledged: BTreeMap<String, String> = BTreeMap::new();
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    for round in 0..KILLS {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut child = Command::new(&writer)
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(30 + seed % 150));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        // a line cut by the kill was not fully acknowledged
        let complete = match out.rfind('\n') {
            Some(i) => &out[..i],
            None => "",
        };
        for line in complete.lines() {
            let (id, digest) = line.split_once(' ').unwrap();
            acknowledged.insert(id.to_owned(), digest.to_owned());
        }
        let master = MasterKey::load_or_create(&dir.path().join("master.key")).unwrap();
        let store = RedbStore::open(&dir.path().join("kmip.redb"))
            .unwrap_or_else(|e| panic!("round {round}: the store does not open: {e}"));
        let m = Manager::new(Arc::new(store), Core::new(master)).autocommit(None);
        for (id, digest) in &acknowledged {
            let (_, obj) = m
                .export(id, 1)
                .unwrap_or_else(|e| panic!("round {round}: acknowledged key {id} lost: {e}"));
            let got = kmip_codec::text::hex(&openssl::sha::sha256(&kmip_codec::encode(&obj)));
            assert_eq!(&got, digest, "round {round}: key {id} changed");
        }
    }
    println!(
        "{KILLS} SIGKILLs, {} acknowledged keys all intact",
        acknowledged.len()
    );
    assert!(
        acknowledged.len() > KILLS,
        "the writer barely ran: {}",
        acknowledged.len()
    );
}
