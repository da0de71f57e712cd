//! The master key as an operator meets it: announced once at first start, refused when
//! others may read it, a missing key told apart from a split one, shares taken from files or
//! typed at a terminal one custodian at a time, `master-split` checking the shares before it
//! deletes the key file, and a split key split again.

use interop_tests::kmip::{create_aes, get_object, key_material};
use interop_tests::{kmip_server_command, output_text, ServerProcess};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn chmod(p: &Path, m: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
}

fn share_args(files: &[PathBuf]) -> Vec<String> {
    files
        .iter()
        .flat_map(|f| {
            [
                "--master-share-file".to_owned(),
                f.to_str().unwrap().to_owned(),
            ]
        })
        .collect()
}

fn start(
    dir: tempfile::TempDir,
    args: &[String],
) -> Result<ServerProcess, (tempfile::TempDir, String)> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ServerProcess::try_start_in(dir, &args)
}

/// A server with one AES key, stopped: its directory, the key's identifier and material.
fn directory_with_a_key() -> (tempfile::TempDir, String, Vec<u8>) {
    let server = ServerProcess::start(&[]);
    let mut c = server.client("admin");
    let id = create_aes(&mut c, 256, vec![]);
    let material = key_material(&get_object(&mut c, &id, None).unwrap())
        .1
        .as_bytes()
        .unwrap()
        .to_vec();
    drop(c);
    (server.stop(), id, material)
}

fn reads_back(server: &ServerProcess, id: &str, material: &[u8]) {
    let mut c = server.client("admin");
    let got = get_object(&mut c, id, None).unwrap();
    assert_eq!(key_material(&got).1.as_bytes(), Some(material));
}

#[test]
fn the_first_start_says_once_what_to_back_up() {
    let server = ServerProcess::start(&[]);
    let log = server.log();
    let key = server.data_dir.path().join("master.key");
    assert!(log.contains("NEW MASTER KEY"), "{log}");
    assert!(log.contains(&key.display().to_string()), "{log}");
    assert!(log.contains("If it is lost, every"), "{log}");
    let dir = server.stop();
    let again = start(dir, &[]).map_err(|(_, l)| l).unwrap();
    assert!(!again.log().contains("NEW MASTER KEY"), "{}", again.log());
}

#[test]
fn key_and_share_files_others_may_read_are_refused() {
    let (dir, id, material) = directory_with_a_key();
    let key = dir.path().join("master.key");
    let mut dir = dir;
    for m in [0o644, 0o640, 0o660, 0o606] {
        chmod(&key, m);
        match start(dir, &[]) {
            Ok(_) => panic!("started with master.key mode {m:o}"),
            Err((d, log)) => {
                assert!(
                    log.contains(&format!("chmod 600 {}", key.display())),
                    "mode {m:o}: {log}"
                );
                dir = d;
            }
        }
    }
    chmod(&key, 0o600);
    // the audit command reads the key through the same check
    chmod(&key, 0o644);
    let out = kmip_server_command(dir.path(), &["audit", "export-key"]);
    assert!(!out.status.success() && output_text(&out).contains("chmod 600"));
    chmod(&key, 0o600);

    let shares = dir.path().join("custodians");
    let out = kmip_server_command(
        dir.path(),
        &[
            "master-split",
            "--threshold",
            "2",
            "--shares",
            "3",
            "--out-dir",
            shares.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", output_text(&out));
    let files: Vec<PathBuf> = (1..=3).map(|i| shares.join(format!("share-{i}"))).collect();
    for f in &files {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }
    chmod(&files[1], 0o644);
    let dir = match start(dir, &share_args(&files[..2])) {
        Ok(_) => panic!("started with a share file others may read"),
        Err((d, log)) => {
            assert!(
                log.contains(&format!("chmod 600 {}", files[1].display())),
                "{log}"
            );
            d
        }
    };
    chmod(&files[1], 0o600);
    let server = start(dir, &share_args(&files[..2]))
        .map_err(|(_, l)| l)
        .unwrap();
    reads_back(&server, &id, &material);
}

#[test]
fn a_missing_key_file_is_told_apart_from_a_split_one() {
    let (dir, _, _) = directory_with_a_key();
    let key = dir.path().join("master.key");
    let kept = std::fs::read(&key).unwrap();
    std::fs::remove_file(&key).unwrap();
    let dir = match start(dir, &[]) {
        Ok(_) => panic!("started without its key file"),
        Err((d, log)) => {
            assert!(log.contains("master.key is missing"), "{log}");
            assert!(log.contains("Put back the copy"), "{log}");
            assert!(!log.contains("is split into shares"), "{log}");
            d
        }
    };
    assert!(!dir.path().join("master.key").exists(), "no new key made");
    std::fs::write(&key, kept).unwrap();
    chmod(&key, 0o600);
    let out = kmip_server_command(
        dir.path(),
        &["master-split", "--threshold", "2", "--shares", "3"],
    );
    assert!(out.status.success(), "{}", output_text(&out));
    match start(dir, &[]) {
        Ok(_) => panic!("started with no shares"),
        Err((_, log)) => {
            assert!(log.contains("split into shares"), "{log}");
            assert!(log.contains("0 of 2 shares given"), "{log}");
            assert!(log.contains("--master-share-file"), "{log}");
            assert!(!log.contains("Put back"), "{log}");
        }
    }
}

#[test]
fn split_checks_the_shares_before_deleting_and_a_split_key_splits_again() {
    let (dir, id, material) = directory_with_a_key();
    let key = dir.path().join("master.key");
    let out_dir = dir.path().join("custodians");
    // a share file already there: nothing written over it, and the key file stays
    std::fs::create_dir(&out_dir).unwrap();
    std::fs::write(out_dir.join("share-2"), "not mine").unwrap();
    let split = |dir: &Path, extra: &[&str], t: &str, n: &str, to: &Path| {
        let mut args = vec!["master-split", "--threshold", t, "--shares", n, "--out-dir"];
        args.push(to.to_str().unwrap());
        args.extend_from_slice(extra);
        kmip_server_command(dir, &args)
    };
    let out = split(dir.path(), &[], "2", "3", &out_dir);
    assert!(!out.status.success());
    assert!(
        output_text(&out).contains("share-2 exists"),
        "{}",
        output_text(&out)
    );
    assert!(
        key.exists(),
        "the key file stays when the shares were not all written"
    );
    std::fs::remove_dir_all(&out_dir).unwrap();

    let out = split(dir.path(), &[], "2", "3", &out_dir);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("recombined and checked"),
        "{}",
        output_text(&out)
    );
    assert!(!key.exists());
    let old: Vec<PathBuf> = (1..=3)
        .map(|i| out_dir.join(format!("share-{i}")))
        .collect();

    // one share, stdin not a terminal: a clear refusal, as before
    let dir = match start(dir, &share_args(&old[2..])) {
        Ok(_) => panic!("started with one share of two"),
        Err((d, log)) => {
            assert!(log.contains("1 of 2 shares given"), "{log}");
            assert!(log.contains("not a terminal"), "{log}");
            d
        }
    };

    // split again from two current shares: three of four new ones open it, two do not
    let again = dir.path().join("custodians-2");
    let args = share_args(&old[1..]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = split(dir.path(), &args, "3", "4", &again);
    assert!(out.status.success(), "{}", output_text(&out));
    let split_file = std::fs::read_to_string(dir.path().join("master.shares")).unwrap();
    assert!(split_file.contains("threshold = 3") && split_file.contains("shares = 4"));
    let new: Vec<PathBuf> = (1..=4).map(|i| again.join(format!("share-{i}"))).collect();
    let dir = match start(dir, &share_args(&new[..2])) {
        Ok(_) => panic!("started with two shares of a 3-of-4 split"),
        Err((d, log)) => {
            assert!(log.contains("2 of 3 shares given"), "{log}");
            d
        }
    };
    let server = start(dir, &share_args(&new[1..]))
        .map_err(|(_, l)| l)
        .unwrap();
    reads_back(&server, &id, &material);
}

/// The process ids of `pid`'s children (Linux).
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

#[test]
fn a_sealed_server_on_a_terminal_waits_for_each_custodian() {
    let (dir, id, material) = directory_with_a_key();
    let out_dir = dir.path().join("custodians");
    let out = kmip_server_command(
        dir.path(),
        &[
            "master-split",
            "--threshold",
            "3",
            "--shares",
            "5",
            "--out-dir",
            out_dir.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", output_text(&out));
    let share = |i: u32| std::fs::read_to_string(out_dir.join(format!("share-{i}"))).unwrap();
    let port = interop_tests::free_port();
    // script(1) gives the server a terminal; what is written to it is what custodians type
    let command = format!(
        "exec {} --data-dir {} --listen 127.0.0.1:{port}",
        ServerProcess::binary().display(),
        dir.path().display()
    );
    let mut script = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("script(1) from util-linux");
    let mut stdout = script.stdout.take().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    let wait_for = |what: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !seen.lock().unwrap().contains(what) {
            assert!(
                Instant::now() < deadline,
                "no {what:?} in {}",
                seen.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let mut stdin = script.stdin.take().unwrap();
    wait_for("0 of 3 shares given. Next custodian");
    let listening = || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
    for (i, progress) in [(4, "1 of 3 shares given"), (2, "2 of 3 shares given")] {
        stdin.write_all(share(i).as_bytes()).unwrap();
        stdin.flush().unwrap();
        wait_for(progress);
        assert!(!listening(), "served before the key was whole");
    }
    // the same custodian twice is not a second share
    stdin.write_all(share(2).as_bytes()).unwrap();
    wait_for("share 2 was given already");
    stdin.write_all(share(5).as_bytes()).unwrap();
    wait_for("3 of 3 shares given");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !listening() {
        assert!(Instant::now() < deadline, "{}", seen.lock().unwrap());
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = seen.lock().unwrap().clone();
    for i in [2, 4, 5] {
        assert!(
            !text.contains(share(i).trim()),
            "a share was echoed: {text}"
        );
    }
    // the server is script's child (exec): stop it by its id
    for pid in children(script.id()) {
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
    drop(stdin);
    let _ = script.wait();
    let _ = reader.join();
    // and what it served is the store as it was
    let server = start(
        dir,
        &share_args(&[
            out_dir.join("share-1"),
            out_dir.join("share-3"),
            out_dir.join("share-5"),
        ]),
    )
    .map_err(|(_, l)| l)
    .unwrap();
    reads_back(&server, &id, &material);
}
