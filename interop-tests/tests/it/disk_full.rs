//! A full disk: the server's files may not grow (a file-size limit set on the running process
//! with prlimit, which fails writes as ENOSPC would). Operations then fail with a clear error
//! and nothing is done; the server stays up; what was stored is intact; and when there is room
//! again it works again without a restart, its audit chain unbroken.

use interop_tests::kmip::*;
use interop_tests::ServerProcess;
use kmip_codec::vocab::enums::{
    cryptographic_algorithm as alg, key_format_type as kft, object_type as ot,
};
use kmip_codec::vocab::tag;
use std::process::Command;

fn prlimit(pid: u32, limit: &str) {
    let st = Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &format!("--fsize={limit}")])
        .status()
        .expect("prlimit (util-linux)");
    assert!(st.success());
}

#[test]
fn a_full_disk_fails_operations_cleanly_and_recovers() {
    let server = ServerProcess::start(&[]);
    let mut c = server.client("admin");
    let mut stored = Vec::new();
    let register_one = |c: &mut kmip_client::Client, i: u32| {
        let m: Vec<u8> = (0..16).map(|j| (i as u8).wrapping_mul(31) ^ j).collect();
        try_register(
            c,
            ot::SYMMETRIC_KEY,
            key_object(tag::SYMMETRIC_KEY, kft::RAW, alg::AES, 128, m.clone()),
            vec![],
        )
        .map(|id| (id, m))
    };
    for i in 0..5 {
        stored.push(register_one(&mut c, i).unwrap());
    }
    let dir = server.data_dir.path().to_owned();
    let size = |f: &str| std::fs::metadata(dir.join(f)).map(|m| m.len()).unwrap_or(0);
    // no file may grow much past its size now
    let limit = size("kmip.redb").max(size("audit.jsonl")) + 16 * 1024;
    prlimit(server.pid(), &format!("{limit}:unlimited"));
    let mut failure = None;
    for i in 5..5000 {
        match register_one(&mut c, i) {
            Ok(kept) => stored.push(kept),
            Err(e) => {
                failure = Some(e.to_string());
                break;
            }
        }
    }
    let failure = failure.expect("the disk filled up");
    assert!(
        failure.contains("nothing was done"),
        "a clear error: {failure}"
    );
    // the server is up and refuses cleanly, again and again
    for i in 0..5 {
        assert!(register_one(&mut c, 10_000 + i).is_err());
    }
    // room again: it works without a restart, and everything acknowledged is there
    prlimit(server.pid(), "unlimited:unlimited");
    let mut c = server.client("admin");
    let (id, m) = register_one(&mut c, 20_000).expect("works again once there is room");
    stored.push((id, m));
    assert_keys_intact(&mut c, &stored);
    drop(c);
    server.assert_audit_chain();
    println!(
        "{} keys stored before and after the disk filled; the failure said: {failure}",
        stored.len()
    );
}
