//! The master key sealed by a PKCS#11 token (`--seal pkcs11`), against a real SoftHSM2 token in
//! a temporary directory: first start, restart, a wrong PIN, a missing token or key, a sealed
//! file from another key, and the token key's attributes read back through cryptoki.
//!
//! SoftHSM2 is required (Debian package `softhsm2`, which scripts/test.sh installs): without it
//! these tests fail, they do not skip.

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use interop_tests::kmip::*;
use interop_tests::ServerProcess;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const TOKEN: &str = "kmip-test";
// distinctive, so that a search of the log for it means something
const PIN: &str = "pin-5d1c0a9e77";
const SO_PIN: &str = "so-pin-1234";

/// A SoftHSM2 token of its own, in a temporary directory.
struct SoftHsm {
    dir: tempfile::TempDir,
    conf: PathBuf,
}

impl SoftHsm {
    fn new() -> SoftHsm {
        assert!(
            Path::new(MODULE).exists(),
            "{MODULE} is missing: install SoftHSM2 (apt-get install softhsm2; scripts/test.sh does)"
        );
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::create_dir(dir.path().join("tokens")).expect("token directory");
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\n",
                dir.path().join("tokens").display()
            ),
        )
        .expect("softhsm2.conf");
        let hsm = SoftHsm { dir, conf };
        hsm.init_token(TOKEN);
        hsm.write_pin("pin", PIN);
        hsm
    }

    fn init_token(&self, label: &str) {
        let out = Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", label])
            .args(["--so-pin", SO_PIN, "--pin", PIN])
            .env("SOFTHSM2_CONF", &self.conf)
            .output()
            .expect("softhsm2-util (install softhsm2: apt-get install softhsm2)");
        assert!(
            out.status.success(),
            "softhsm2-util --init-token: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn write_pin(&self, name: &str, pin: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.dir.path().join(name);
        std::fs::write(&p, format!("{pin}\n")).expect("PIN file");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        p
    }

    fn env(&self) -> [(&str, &str); 1] {
        [(
            "SOFTHSM2_CONF",
            self.conf.to_str().expect("a UTF-8 temporary path"),
        )]
    }

    /// The server's options for this token and a key label.
    fn args(&self, token: &str, pin_file: &Path, key: &str) -> Vec<String> {
        vec![
            "--lock-memory".into(),
            "false".into(),
            "--seal".into(),
            "pkcs11".into(),
            "--pkcs11-module".into(),
            MODULE.into(),
            "--pkcs11-token".into(),
            token.into(),
            "--pkcs11-pin-file".into(),
            pin_file.display().to_string(),
            "--pkcs11-key".into(),
            key.into(),
        ]
    }

    fn pin_file(&self) -> PathBuf {
        self.dir.path().join("pin")
    }

    /// `f` on a logged-in session on the token: the test's own look at it, through cryptoki
    /// rather than the server.
    fn with_session<T>(&self, f: impl FnOnce(&cryptoki::session::Session) -> T) -> T {
        // SoftHSM reads its configuration once per process: the tests of this module run in
        // one process under plain `cargo test`, so each looks its token up afresh through
        // its own context with the variable of its own token set
        let _guard = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        std::env::set_var("SOFTHSM2_CONF", &self.conf);
        let ctx = Pkcs11::new(MODULE).expect("load SoftHSM2");
        ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .expect("C_Initialize");
        let slot = ctx
            .get_slots_with_initialized_token()
            .expect("slots")
            .into_iter()
            .find(|s| {
                ctx.get_token_info(*s)
                    .expect("token info")
                    .label()
                    .trim_end()
                    == TOKEN
            })
            .expect("the test token");
        let out = {
            let session = ctx.open_ro_session(slot).expect("session");
            session
                .login(UserType::User, Some(&AuthPin::from(PIN)))
                .expect("login");
            f(&session)
        };
        ctx.finalize().expect("C_Finalize");
        out
    }
}

static ENV_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn start(hsm: &SoftHsm, dir: tempfile::TempDir, args: &[String]) -> ServerProcess {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ServerProcess::try_start_in_with_env(dir, &args, &hsm.env())
        .unwrap_or_else(|(_, log)| panic!("kmip-server did not start: {log}"))
}

/// Run the server where it must refuse to start: its exit status and output, after checking
/// that it exited on its own and never listened on its port.
fn refused(hsm: &SoftHsm, dir: &Path, args: &[String]) -> (std::process::ExitStatus, String) {
    let port = interop_tests::free_port();
    let log = tempfile::NamedTempFile::new().expect("log file");
    let mut child = Command::new(ServerProcess::binary())
        .arg("--data-dir")
        .arg(dir)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .args(args)
        .envs(hsm.env())
        .stdout(log.as_file().try_clone().expect("log"))
        .stderr(log.as_file().try_clone().expect("log"))
        .spawn()
        .expect("start kmip-server");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "the server listened before its seal opened"
        );
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        assert!(Instant::now() < deadline, "the server did not exit");
        std::thread::sleep(Duration::from_millis(5));
    };
    (
        status,
        std::fs::read_to_string(log.path()).unwrap_or_default(),
    )
}

fn get_key(server: &ServerProcess, id: &str) -> Vec<u8> {
    let mut c = server.client("admin");
    let obj = get_object(&mut c, id, None).expect("Get");
    key_material(&obj)
        .1
        .as_bytes()
        .expect("raw key material")
        .to_vec()
}

/// The master key, decrypted from master.sealed through the token by the test itself (the
/// token's key may decrypt: it only may not leave), to look for it where it must not be.
fn master_key_of(hsm: &SoftHsm, data_dir: &Path, key_label: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(data_dir.join("master.sealed")).expect("master.sealed");
    let field = |n: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{n} = ")))
            .map(|v| kmip_codec::text::unhex(v).expect("hex"))
            .expect("field")
    };
    let (mut iv, sealed) = (field("iv"), field("sealed"));
    hsm.with_session(|s| {
        let key = s
            .find_objects(&[Attribute::Label(key_label.as_bytes().to_vec())])
            .expect("find")[0];
        let params = GcmParams::new(
            &mut iv,
            b"kmip-server master key seal, format 1",
            128.into(),
        )
        .expect("GCM parameters");
        s.decrypt(&Mechanism::AesGcm(params), key, &sealed)
            .expect("decrypt master.sealed")
    })
}

#[test]
fn first_start_seals_in_the_token_and_keys_survive_a_restart() {
    let hsm = SoftHsm::new();
    let args = hsm.args(TOKEN, &hsm.pin_file(), "master-seal");
    let t = Instant::now();
    let server = start(
        &hsm,
        tempfile::tempdir().expect("data directory"),
        &[args.clone(), vec!["--log-format".into(), "json".into()]].concat(),
    );
    let first_start = t.elapsed();
    let d = server.data_dir.path().to_path_buf();
    assert!(d.join("master.sealed").exists(), "master.sealed written");
    assert!(
        !d.join("master.key").exists(),
        "no key file with --seal pkcs11"
    );
    assert!(!d.join("master.check").exists());
    let mut c = server.client("admin");
    let id = create_aes(&mut c, 256, vec![]);
    drop(c);
    let before = get_key(&server, &id);
    let first_log = server.log();
    let dir = server.stop();

    let t = Instant::now();
    let server = start(
        &hsm,
        dir,
        &[args, vec!["--log-format".into(), "json".into()]].concat(),
    );
    let restart = t.elapsed();
    assert_eq!(get_key(&server, &id), before, "the key reads back");
    let log = format!("{first_log}{}", server.log());
    let unseal_ms: Vec<String> = log
        .lines()
        .filter(|l| l.contains("master key open"))
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            Some(v["fields"]["ms"].to_string())
        })
        .collect();
    eprintln!(
        "first start {first_start:?}, restart {restart:?}, master key open (first, restart) {unseal_ms:?} ms"
    );
    assert_eq!(unseal_ms.len(), 2, "{log}");
    assert!(!log.contains(PIN), "the PIN reached the log");
    let master = master_key_of(&hsm, server.data_dir.path(), "master-seal");
    assert_eq!(master.len(), 32);
    let hex = kmip_codec::text::hex(&master);
    assert!(
        !log.to_lowercase().contains(&hex),
        "the master key reached the log"
    );
    let sealed = std::fs::read_to_string(server.data_dir.path().join("master.sealed")).unwrap();
    assert!(!sealed.to_lowercase().contains(&hex));
    // the commands that read the master key go through the same seal (options after the
    // subcommand, as for --data-dir)
    let out = Command::new(ServerProcess::binary())
        .args(["audit", "verify", "--data-dir"])
        .arg(server.data_dir.path())
        .args(&hsm.args(TOKEN, &hsm.pin_file(), "master-seal")[2..])
        .envs(hsm.env())
        .output()
        .expect("kmip-server audit verify");
    assert!(
        out.status.success(),
        "audit verify with --seal pkcs11: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // the token's key: on the token, sensitive, never extractable, encrypt and decrypt only
    let attrs = hsm.with_session(|s| {
        let found = s
            .find_objects(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::Label(b"master-seal".to_vec()),
            ])
            .expect("find");
        assert_eq!(found.len(), 1, "one key of that label");
        s.get_attributes(
            found[0],
            &[
                AttributeType::Token,
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::NeverExtractable,
                AttributeType::Encrypt,
                AttributeType::Decrypt,
                AttributeType::Wrap,
                AttributeType::Unwrap,
                AttributeType::Sign,
                AttributeType::Derive,
                AttributeType::ValueLen,
            ],
        )
        .expect("attributes")
    });
    for want in [
        Attribute::Token(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::NeverExtractable(true),
        Attribute::Encrypt(true),
        Attribute::Decrypt(true),
        Attribute::Wrap(false),
        Attribute::Unwrap(false),
        Attribute::Sign(false),
        Attribute::Derive(false),
        Attribute::ValueLen(32.into()),
    ] {
        assert!(attrs.contains(&want), "{want:?} not in {attrs:?}");
    }
    // and its value cannot be read
    let value = hsm.with_session(|s| {
        let k = s
            .find_objects(&[Attribute::Label(b"master-seal".to_vec())])
            .expect("find")[0];
        s.get_attributes(k, &[AttributeType::Value])
    });
    assert!(
        !matches!(&value, Ok(v) if v.iter().any(|a| matches!(a, Attribute::Value(_)))),
        "the token key's value was readable: {value:?}"
    );
}

#[test]
fn a_wrong_pin_a_missing_token_or_key_refuse_to_start() {
    let hsm = SoftHsm::new();
    let wrong = hsm.write_pin("wrong-pin", "not-the-pin");

    // on an empty data directory: nothing is created, no key on the token
    let empty = tempfile::tempdir().expect("data directory");
    let (st, log) = refused(&hsm, empty.path(), &hsm.args(TOKEN, &wrong, "seal-a"));
    assert!(!st.success(), "{log}");
    assert!(
        log.contains("--pkcs11-pin-file") && log.contains("refused the PIN"),
        "{log}"
    );
    assert!(!log.contains("not-the-pin"), "the PIN reached the output");
    let left: Vec<_> = std::fs::read_dir(empty.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "a refused start left {left:?}");

    // a data directory sealed under the token
    let server = start(
        &hsm,
        tempfile::tempdir().unwrap(),
        &hsm.args(TOKEN, &hsm.pin_file(), "seal-a"),
    );
    let dir = server.stop();
    let sealed = std::fs::read(dir.path().join("master.sealed")).unwrap();

    let (st, log) = refused(&hsm, dir.path(), &hsm.args(TOKEN, &wrong, "seal-a"));
    assert!(!st.success() && log.contains("--pkcs11-pin-file"), "{log}");

    let (st, log) = refused(
        &hsm,
        dir.path(),
        &hsm.args("no-such-token", &hsm.pin_file(), "seal-a"),
    );
    assert!(
        !st.success()
            && log.contains("--pkcs11-token")
            && log.contains("no token labelled \"no-such-token\""),
        "{log}"
    );

    let (st, log) = refused(
        &hsm,
        dir.path(),
        &hsm.args(TOKEN, &hsm.pin_file(), "no-such-key"),
    );
    assert!(
        !st.success() && log.contains("--pkcs11-key") && log.contains("no AES key labelled"),
        "{log}"
    );
    // a missing key is never replaced by a new one on a sealed data directory
    let count = hsm.with_session(|s| {
        s.find_objects(&[Attribute::Label(b"no-such-key".to_vec())])
            .expect("find")
            .len()
    });
    assert_eq!(count, 0);

    // the key file's custody, without --seal, refuses the directory rather than making a key
    let (st, log) = refused(&hsm, dir.path(), &["--lock-memory".into(), "false".into()]);
    assert!(!st.success() && log.contains("--seal pkcs11"), "{log}");
    assert!(!dir.path().join("master.key").exists());
    assert_eq!(
        std::fs::read(dir.path().join("master.sealed")).unwrap(),
        sealed,
        "refused starts leave master.sealed as it was"
    );
}

#[test]
fn a_sealed_file_from_another_key_does_not_open() {
    let hsm = SoftHsm::new();
    let a = start(
        &hsm,
        tempfile::tempdir().unwrap(),
        &hsm.args(TOKEN, &hsm.pin_file(), "seal-a"),
    )
    .stop();
    // another data directory makes the token's second key
    let b = start(
        &hsm,
        tempfile::tempdir().unwrap(),
        &hsm.args(TOKEN, &hsm.pin_file(), "seal-b"),
    )
    .stop();
    let (st, log) = refused(&hsm, a.path(), &hsm.args(TOKEN, &hsm.pin_file(), "seal-b"));
    assert!(
        !st.success() && log.contains("sealed under another key"),
        "{log}"
    );
    assert!(
        log.contains("\"seal-a\""),
        "names the key it records: {log}"
    );
    // the refused start changed nothing: each directory still opens with its own key
    for (dir, key) in [(a, "seal-a"), (b, "seal-b")] {
        let s = start(&hsm, dir, &hsm.args(TOKEN, &hsm.pin_file(), key));
        assert!(s.serves("admin"));
    }
}

#[test]
fn a_backup_restores_under_the_same_token() {
    let hsm = SoftHsm::new();
    let args = hsm.args(TOKEN, &hsm.pin_file(), "seal-a");
    let server = start(&hsm, tempfile::tempdir().unwrap(), &args);
    let id = create_aes(&mut server.client("admin"), 256, vec![]);
    let before = get_key(&server, &id);
    let dir = server.stop();
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("b.kmipbak");
    let restored = out.path().join("restored");
    for cmd in [
        vec!["backup".into(), "--out".into(), file.display().to_string()],
        vec!["restore".into(), file.display().to_string()],
    ] {
        let target = if cmd[0] == "backup" {
            dir.path()
        } else {
            &restored
        };
        let o = Command::new(ServerProcess::binary())
            .args(&cmd)
            .arg("--data-dir")
            .arg(target)
            .output()
            .expect("kmip-server");
        assert!(
            o.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    assert!(
        restored.join("master.sealed").exists(),
        "the backup carried it"
    );
    // without it the store is refused, never given a new master key
    let bare = tempfile::tempdir().unwrap();
    std::fs::copy(restored.join("kmip.redb"), bare.path().join("kmip.redb")).unwrap();
    let (st, log) = refused(&hsm, bare.path(), &args);
    assert!(!st.success() && log.contains("has no master key"), "{log}");
    assert!(!bare.path().join("master.sealed").exists());
    let restored_dir = tempfile::tempdir().unwrap();
    for f in ["kmip.redb", "master.sealed"] {
        std::fs::copy(restored.join(f), restored_dir.path().join(f)).unwrap();
    }
    let server = start(&hsm, restored_dir, &args);
    assert_eq!(get_key(&server, &id), before, "the key reads back");
}

#[test]
fn a_rotation_reseals_under_a_new_key_the_token_keeps() {
    let hsm = SoftHsm::new();
    let args = hsm.args(TOKEN, &hsm.pin_file(), "seal-a");
    let server = start(&hsm, tempfile::tempdir().unwrap(), &args);
    let id = create_aes(&mut server.client("admin"), 256, vec![]);
    let before = get_key(&server, &id);
    let dir = server.stop();
    let old = master_key_of(&hsm, dir.path(), "seal-a");
    // the seal options, without the server's own (--lock-memory)
    let o = Command::new(ServerProcess::binary())
        .arg("master-rotate")
        .args(&args[2..])
        .arg("--data-dir")
        .arg(dir.path())
        .envs(hsm.env())
        .output()
        .expect("kmip-server master-rotate");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!dir.path().join("master.key").exists(), "still no key file");
    let new = master_key_of(&hsm, dir.path(), "seal-a");
    assert_ne!(new, old, "a new master key, sealed by the same token key");
    let store = lifecycle::store::RedbStore::open(&dir.path().join("kmip.redb")).unwrap();
    let sealed = {
        use lifecycle::store::Store;
        store.get(&id).unwrap().unwrap().sealed.unwrap()
    };
    drop(store);
    let core =
        |k: &[u8]| lifecycle::core::Core::new(lifecycle::core::MasterKey::from_bytes(k).unwrap());
    let sealed = lifecycle::core::Sealed::new(&id, sealed);
    assert!(!core(&old).opens(&sealed), "the old key opens nothing");
    assert!(core(&new).opens(&sealed));
    let server = start(&hsm, dir, &args);
    assert_eq!(get_key(&server, &id), before, "the key reads back");
}

#[test]
fn seal_migrate_moves_the_same_key_from_file_to_token_to_shares_to_file() {
    let hsm = SoftHsm::new();
    let server = ServerProcess::start(&["--lock-memory", "false"]);
    let id = create_aes(&mut server.client("admin"), 256, vec![]);
    let before = get_key(&server, &id);
    let dir = server.stop();
    let d = dir.path().to_path_buf();
    let key_file = std::fs::read(d.join("master.key")).unwrap();
    let sealed_before = {
        use lifecycle::store::Store;
        let store = lifecycle::store::RedbStore::open(&d.join("kmip.redb")).unwrap();
        store.get(&id).unwrap().unwrap().sealed.unwrap()
    };
    let migrate = |args: &[String]| {
        let o = Command::new(ServerProcess::binary())
            .args(["seal", "migrate"])
            .args(args)
            .arg("--data-dir")
            .arg(&d)
            .envs(hsm.env())
            .stdin(std::process::Stdio::null())
            .output()
            .expect("kmip-server seal migrate");
        (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        )
    };
    let token = hsm.args(TOKEN, &hsm.pin_file(), "migrated");
    // file -> pkcs11: the seal options are the target's (after --seal pkcs11)
    let mut to_token: Vec<String> = vec!["--to".into(), "pkcs11".into()];
    to_token.extend_from_slice(&token[4..]);
    let (ok, said) = migrate(&to_token);
    assert!(ok, "{said}");
    assert!(!d.join("master.key").exists(), "the key file is gone");
    assert_eq!(
        master_key_of(&hsm, &d, "migrated"),
        key_file,
        "the same master key, now sealed by the token"
    );
    // and again: refused, nothing changed
    let (ok, said) = migrate(&[
        "--to".into(),
        "pkcs11".into(),
        "--seal".into(),
        "pkcs11".into(),
    ]);
    assert!(!ok && said.contains("already"), "{said}");
    let server = start(&hsm, dir, &token);
    assert_eq!(get_key(&server, &id), before);
    let dir = server.stop();

    // pkcs11 -> shares, 2 of 3 to files
    let shares = d.join("custodians");
    let mut to_shares: Vec<String> = [
        "--to",
        "shares",
        "--threshold",
        "2",
        "--shares",
        "3",
        "--out-dir",
    ]
    .map(String::from)
    .to_vec();
    to_shares.push(shares.display().to_string());
    to_shares.extend_from_slice(&token[2..]);
    let (ok, said) = migrate(&to_shares);
    assert!(ok, "{said}");
    assert!(
        !d.join("master.sealed").exists(),
        "the token's seal is gone"
    );
    let share_args: Vec<String> = [1, 3]
        .iter()
        .flat_map(|i| {
            [
                "--master-share-file".to_owned(),
                shares.join(format!("share-{i}")).display().to_string(),
            ]
        })
        .collect();
    let server = start(&hsm, dir, &share_args);
    assert_eq!(get_key(&server, &id), before);
    let dir = server.stop();

    // shares -> file
    let mut to_file: Vec<String> = vec!["--to".into(), "file".into()];
    to_file.extend_from_slice(&share_args);
    let (ok, said) = migrate(&to_file);
    assert!(ok, "{said}");
    assert_eq!(std::fs::read(d.join("master.key")).unwrap(), key_file);
    assert!(!d.join("master.shares").exists());
    let server = start(&hsm, dir, &[]);
    assert_eq!(get_key(&server, &id), before);
    // no record was re-sealed: a migration moves the key, not the data
    let dir = server.stop();
    let sealed_after = {
        use lifecycle::store::Store;
        let store = lifecycle::store::RedbStore::open(&dir.path().join("kmip.redb")).unwrap();
        store.get(&id).unwrap().unwrap().sealed.unwrap()
    };
    assert_eq!(sealed_after, sealed_before);
    let log = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("\"event\":\"seal-migrate\""))
            .count(),
        3,
        "{log}"
    );
    let verify = ServerProcess::verify_audit_dir(dir.path(), &[]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}
