//! A data directory that turns read-only under the running server: a real ext4 file system
//! (a loop device, `errors=remount-ro`) that the kernel remounts read-only after an error, as
//! it does on a failing disk. Operations then fail with a clear error and the server stays up;
//! started on a read-only directory it refuses to start and says why; after the admin's repair
//! (fsck, mount read-write, restart) every acknowledged key is there, its audit chain whole.
//!
//! Needs root and loop devices (CI runs as root on a VM); elsewhere the test says so and
//! passes without asserting anything.

use interop_tests::kmip::*;
use interop_tests::ServerProcess;
use kmip_codec::vocab::enums::{
    cryptographic_algorithm as alg, key_format_type as kft, object_type as ot,
};
use kmip_codec::vocab::tag;
use std::path::{Path, PathBuf};
use std::process::Command;

fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("{program} {args:?}: {text}"))
    }
}

/// An ext4 image on a loop device, mounted over a directory; unmounted when dropped.
struct Ext4 {
    image: PathBuf,
    at: PathBuf,
}

impl Ext4 {
    fn create(image: PathBuf, at: &Path) -> Result<Ext4, String> {
        run("truncate", &["-s", "64M", image.to_str().unwrap()])?;
        run("mkfs.ext4", &["-q", "-F", image.to_str().unwrap()])?;
        let fs = Ext4 {
            image,
            at: at.to_owned(),
        };
        fs.mount("loop,errors=remount-ro")?;
        Ok(fs)
    }

    fn mount(&self, options: &str) -> Result<(), String> {
        run(
            "mount",
            &[
                "-o",
                options,
                self.image.to_str().unwrap(),
                self.at.to_str().unwrap(),
            ],
        )
        .map(drop)
    }

    fn unmount(&self) {
        run("umount", &[self.at.to_str().unwrap()]).expect("unmount");
    }

    /// What the kernel does on a metadata error: the file system goes read-only at once.
    fn fail(&self) {
        let dev = run(
            "findmnt",
            &["-n", "-o", "SOURCE", self.at.to_str().unwrap()],
        )
        .expect("findmnt");
        let dev = Path::new(dev.trim()).file_name().unwrap().to_owned();
        let knob = Path::new("/sys/fs/ext4").join(dev).join("trigger_fs_error");
        std::fs::write(&knob, "1").expect("trigger an ext4 error");
    }

    fn fsck(&self) {
        // exit code 1: errors corrected, which is what the admin expects after an error
        let st = Command::new("e2fsck")
            .args(["-fy", self.image.to_str().unwrap()])
            .output()
            .expect("e2fsck");
        assert!(
            matches!(st.status.code(), Some(0 | 1)),
            "fsck: {}",
            String::from_utf8_lossy(&st.stdout)
        );
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        let _ = run("umount", &["-l", self.at.to_str().unwrap()]);
    }
}

fn register_one(c: &mut kmip_client::Client, i: u32) -> Result<(String, Vec<u8>), String> {
    let m: Vec<u8> = (0..32).map(|j| (i as u8).wrapping_mul(37) ^ j).collect();
    try_register(
        c,
        ot::SYMMETRIC_KEY,
        key_object(tag::SYMMETRIC_KEY, kft::RAW, alg::AES, 256, m.clone()),
        vec![],
    )
    .map(|id| (id, m))
    .map_err(|e| e.to_string())
}

#[test]
fn a_data_directory_gone_read_only_fails_cleanly_and_loses_nothing() {
    let scratch = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let fs = match Ext4::create(scratch.path().join("data.img"), data.path()) {
        Ok(fs) => fs,
        Err(e) => {
            eprintln!("SKIPPED: needs root and loop devices to mount an ext4 image: {e}");
            return;
        }
    };
    let server = ServerProcess::try_start_in(data, &[])
        .unwrap_or_else(|(_, log)| panic!("kmip-server did not start: {log}"));
    let mut c = server.client("admin");
    let stored: Vec<_> = (0..20).map(|i| register_one(&mut c, i).unwrap()).collect();

    fs.fail();
    // the client hears that nothing was done and why in KMIP terms; the admin's log names the
    // cause (the client has no business with the server's file systems)
    let write = register_one(&mut c, 100).expect_err("no write on a read-only file system");
    assert!(write.contains("nothing was done"), "a clear error: {write}");
    let read = get_object(&mut c, &stored[0].0, None)
        .map(drop)
        .expect_err("no use of a key that cannot be audited")
        .to_string();
    assert!(read.contains("cannot be written"), "a clear error: {read}");
    assert!(
        server.log().contains("Read-only file system"),
        "the log names the cause: {}",
        server.log()
    );
    // the server is up: a new connection is served, and refused the same way
    let mut again = server.client("admin");
    let write_again = register_one(&mut again, 101).unwrap_err();
    assert!(write_again.contains("nothing was done"), "{write_again}");
    drop((c, again));

    // the admin's repair: stop, fsck, and first a read-only mount, on which it will not start
    let data = server.stop();
    fs.unmount();
    fs.fsck();
    fs.mount("loop,ro").unwrap();
    let (data, log) = match ServerProcess::try_start_in(data, &[]) {
        Ok(_) => panic!("started on a read-only data directory"),
        Err(refused) => refused,
    };
    assert!(
        log.contains("read-only"),
        "says why it did not start: {log}"
    );
    fs.unmount();
    fs.mount("loop").unwrap();

    let server = ServerProcess::try_start_in(data, &[])
        .unwrap_or_else(|(_, log)| panic!("kmip-server did not start after repair: {log}"));
    let mut c = server.client("admin");
    assert_keys_intact(&mut c, &stored);
    register_one(&mut c, 200).expect("writes again");
    drop(c);
    server.assert_audit_chain();
    drop(server);
    println!(
        "{} keys intact after the file system went read-only; refused with: {write} / {read}; \
         at start: {}",
        stored.len(),
        log.lines().last().unwrap_or_default()
    );
}
