//! Backup and restore (`kmip-admin backup` of a serving server, `kmip-server backup` of a
//! stopped directory, `kmip-server restore`): a backup taken while clients write
//! holds every key acknowledged before it began, byte for byte, and the server's clients see
//! no failure; a restore goes into an empty directory only, refuses a changed backup, and the
//! restored directory starts only with the master key it was sealed under.

use interop_tests::kmip::{get_object, key_material};
use interop_tests::ServerProcess;
use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn kmip_server(args: &[&str], data_dir: &Path) -> Output {
    interop_tests::kmip_server_command(data_dir, args)
}

fn text(o: &Output) -> String {
    interop_tests::output_text(o)
}

/// Copy what a restored directory needs beside the backup: the master key (which no backup
/// holds) and the TLS material (for the clients to keep trusting the server).
fn copy_seal_and_tls(from: &Path, to: &Path) {
    std::fs::copy(from.join("master.key"), to.join("master.key")).unwrap();
    std::fs::create_dir_all(to.join("tls")).unwrap();
    for e in std::fs::read_dir(from.join("tls")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join("tls").join(e.file_name())).unwrap();
    }
}

fn key_bytes(c: &mut kmip_client::Client, id: &str) -> Result<Vec<u8>, String> {
    let obj = get_object(c, id, None).map_err(|e| e.to_string())?;
    let (_, m) = key_material(&obj);
    m.as_bytes()
        .map(<[u8]>::to_vec)
        .ok_or_else(|| format!("{id}: no key bytes"))
}

#[test]
fn a_backup_taken_while_clients_write_restores_every_acknowledged_key() {
    let server = ServerProcess::start(&[]);
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|_| {
            let mut c = server.client("admin");
            let (acked, failures, stop) = (acked.clone(), failures.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match interop_tests::bench::create_aes(&mut c, None) {
                        Ok(id) => acked.lock().unwrap().push(id),
                        Err(e) => failures.lock().unwrap().push(e.to_string()),
                    }
                }
            })
        })
        .collect();
    // a store of some size, so that the backup's reading overlaps the writers' commits
    while acked.lock().unwrap().len() < 1500 {
        std::thread::sleep(Duration::from_millis(20));
    }
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("live.kmipbak");
    // every Create acknowledged from here on came after the backup began
    let before: Vec<String> = acked.lock().unwrap().clone();
    let began = Instant::now();
    let backup = server.admin(&["backup", "--out", out.to_str().unwrap()]);
    let took = began.elapsed();
    let during = acked.lock().unwrap().len() - before.len();
    // the writers go on: the server was not stopped or paused for the backup
    let resumed = acked.lock().unwrap().len();
    let deadline = Instant::now() + Duration::from_secs(10);
    while acked.lock().unwrap().len() < resumed + 50 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    assert!(backup.status.success(), "backup: {}", text(&backup));
    assert!(
        acked.lock().unwrap().len() >= resumed + 50,
        "the writers went on after the backup"
    );
    assert_eq!(
        failures.lock().unwrap().as_slice(),
        &[] as &[String],
        "no client failed"
    );
    eprintln!(
        "backup of {} acknowledged keys took {took:?}; {during} more Creates acknowledged meanwhile",
        before.len()
    );
    let manifest = String::from_utf8_lossy(&backup.stdout).into_owned();
    let objects: usize = manifest
        .lines()
        .find_map(|l| l.strip_prefix("objects="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no object count in {manifest}"));
    assert!(objects >= before.len(), "{objects} < {}", before.len());
    assert!(manifest.contains("sha256="), "{manifest}");
    // the server's own copy was moved out, none left behind in the data directory
    let left: Vec<_> = std::fs::read_dir(server.data_dir.path().join("backups"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let bytes = std::fs::read(&out).unwrap();
    let master = std::fs::read(server.data_dir.path().join("master.key")).unwrap();
    assert!(
        !bytes.windows(master.len()).any(|w| w == master.as_slice()),
        "the master key is not in the backup"
    );

    // the original's key bytes, to compare with
    let mut original = server.client("admin");
    let expected: Vec<(String, Vec<u8>)> = before
        .iter()
        .map(|id| (id.clone(), key_bytes(&mut original, id).unwrap()))
        .collect();
    let source = server.stop();

    let restored = tempfile::tempdir().unwrap();
    let r = kmip_server(&["restore", out.to_str().unwrap()], restored.path());
    assert!(r.status.success(), "restore: {}", text(&r));
    assert!(text(&r).contains("master.key"), "{}", text(&r));
    copy_seal_and_tls(source.path(), restored.path());
    let server = ServerProcess::try_start_in(restored, &[])
        .unwrap_or_else(|(_, log)| panic!("the restored directory did not start: {log}"));
    let mut c = server.client("admin");
    for (id, bytes) in &expected {
        let got = key_bytes(&mut c, id).unwrap_or_else(|e| panic!("{id} lost: {e}"));
        assert_eq!(&got, bytes, "{id} changed");
    }
    // identifiers handed out before the backup are never handed out again
    let new = interop_tests::bench::create_aes(&mut c, None).unwrap();
    assert!(!acked.lock().unwrap().contains(&new), "{new} reused");
}

#[test]
fn backup_of_a_stopped_directory_and_what_restore_refuses() {
    let server = ServerProcess::start(&[]);
    server.issue_client_cert("alice");
    // an identity other than an administrator gets no backup of everyone's objects
    let out_dir = tempfile::tempdir().unwrap();
    let alice_out = out_dir.path().join("alice.kmipbak");
    let refused = server.admin(&[
        "backup",
        "--as",
        "alice",
        "--out",
        alice_out.to_str().unwrap(),
    ]);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        text(&refused).contains("administrator"),
        "{}",
        text(&refused)
    );
    assert!(!out_dir.path().join("alice.kmipbak").exists());
    let mut c = server.client("admin");
    let id = interop_tests::bench::create_aes(&mut c, None).unwrap();
    let bytes = key_bytes(&mut c, &id).unwrap();
    drop(c);
    let source = server.stop();

    // no server runs: the command reads the store itself
    let out = out_dir.path().join("stopped.kmipbak");
    let b = kmip_server(&["backup", "--out", out.to_str().unwrap()], source.path());
    assert!(b.status.success(), "{}", text(&b));
    assert!(text(&b).contains("objects="), "{}", text(&b));
    // and never overwrites
    let again = kmip_server(&["backup", "--out", out.to_str().unwrap()], source.path());
    assert!(!again.status.success());
    assert!(text(&again).contains("--out"), "{}", text(&again));

    // into a directory that holds anything: refused, and left as it was
    let busy = tempfile::tempdir().unwrap();
    std::fs::write(busy.path().join("notes.txt"), b"mine").unwrap();
    let r = kmip_server(&["restore", out.to_str().unwrap()], busy.path());
    assert!(!r.status.success());
    assert!(text(&r).contains("not empty"), "{}", text(&r));
    assert_eq!(std::fs::read_dir(busy.path()).unwrap().count(), 1);

    // one byte changed (inside a record): refused, and nothing created
    let mut tampered = std::fs::read(&out).unwrap();
    let at = tampered.len() / 2;
    tampered[at] ^= 0x01;
    let bad = out_dir.path().join("tampered.kmipbak");
    std::fs::write(&bad, &tampered).unwrap();
    let target = out_dir.path().join("from-tampered");
    let r = kmip_server(&["restore", bad.to_str().unwrap()], &target);
    assert!(!r.status.success());
    assert!(text(&r).contains("digest"), "{}", text(&r));
    assert!(!target.exists(), "nothing is created from a refused backup");
    // cut short: refused too
    let cut = out_dir.path().join("cut.kmipbak");
    std::fs::write(&cut, &std::fs::read(&out).unwrap()[..at]).unwrap();
    let r = kmip_server(&["restore", cut.to_str().unwrap()], &target);
    assert!(!r.status.success(), "{}", text(&r));
    assert!(!target.exists());

    // restored without the master key: the start says what is missing, and makes no new key
    let restored = tempfile::tempdir().unwrap();
    let r = kmip_server(&["restore", out.to_str().unwrap()], restored.path());
    assert!(r.status.success(), "{}", text(&r));
    let (restored, log) = match ServerProcess::try_start_in(restored, &[]) {
        Ok(_) => panic!("started without the master key"),
        Err(e) => e,
    };
    assert!(log.contains("master.key is missing"), "{log}");
    assert!(!restored.path().join("master.key").exists());
    // another master key: refused as the wrong one
    std::fs::write(restored.path().join("master.key"), [7u8; 32]).unwrap();
    // private, as a key file must be: refused for being the wrong key, not for its mode
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            restored.path().join("master.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
    }
    let (restored, log) = match ServerProcess::try_start_in(restored, &[]) {
        Ok(_) => panic!("started with another master key"),
        Err(e) => e,
    };
    assert!(log.contains("does not open"), "{log}");
    // the right one: the key reads back
    copy_seal_and_tls(source.path(), restored.path());
    let server = ServerProcess::try_start_in(restored, &[])
        .unwrap_or_else(|(_, log)| panic!("the restored directory did not start: {log}"));
    assert_eq!(key_bytes(&mut server.client("admin"), &id).unwrap(), bytes);
}
