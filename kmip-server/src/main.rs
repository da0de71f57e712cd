//! The `kmip-server` binary.
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

use anyhow_free::Context;
use clap::{Parser, Subcommand};
use kmip_server::config::Settings;
use kmip_server::config::{Config, LogFormat};
use kmip_server::session::Timeouts;
use kmip_server::{listener, pki, Server};
use lifecycle::core::{Core, FileSeal, MasterKey, Seal, SealError, ShareSeal};
use lifecycle::store::{RedbStore, Store};
use lifecycle::Manager;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "kmip-server",
    version,
    about = "A KMIP key manager over mutual TLS"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: Config,
}

#[derive(Subcommand)]
enum Command {
    /// Issue a client certificate (CN=NAME, EKU clientAuth) from the data directory's CA, as
    /// DATA_DIR/tls/NAME.pem and NAME.key, and print a ready client configuration. NAME is 1
    /// to 64 of A-Z a-z 0-9 . _ - (not starting with a dot).
    ClientCert {
        name: String,
        /// Replace an existing identity of that name (its old certificate stays valid until it
        /// expires: revoke it with --client-crl to end it).
        #[arg(long)]
        force: bool,
    },
    /// Issue a new generated server certificate (DATA_DIR/tls/server.pem and server.key, 825
    /// days) under the existing CA, which is never replaced: clients go on trusting the
    /// server. It keeps the current certificate's names, and adds --tls-san ones. A running
    /// server takes it on SIGHUP.
    RenewServerCert,
    /// Split the master key into SHARES Shamir shares, THRESHOLD of which unseal the server:
    /// printed one per line, or written to --out-dir. The shares are recombined and checked
    /// against the master key's check value before the key file is deleted; from then on
    /// every start needs THRESHOLD shares (--master-share-file, or typed at a prompt). On a
    /// directory already split, splits the same key again from the current shares, for a new
    /// threshold or new custodians (the old shares still rebuild the key: master-rotate, then
    /// split, to make them worthless).
    MasterSplit {
        #[arg(long)]
        threshold: u8,
        #[arg(long)]
        shares: u8,
        /// Write each share to its own new file DIR/share-N (mode 0600), to hand to its
        /// custodian, instead of printing them.
        #[arg(long)]
        out_dir: Option<std::path::PathBuf>,
    },
    /// On a stopped server: make a new master key, re-seal every object's material under it
    /// and keep it in the configured custody (--seal), so that the old key opens nothing.
    /// Crash-safe: interrupted (even by SIGKILL), run it again and it continues. With --seal
    /// shares, the new key's shares are printed (or written to --out-dir), split as the old
    /// key was unless --threshold and --shares say otherwise. Recorded in the audit log.
    MasterRotate {
        /// Records re-sealed per store transaction.
        #[arg(long, default_value_t = 256)]
        batch_size: usize,
        /// With --seal shares: how many of the new shares open the key.
        #[arg(long)]
        threshold: Option<u8>,
        /// With --seal shares: how many new shares to make.
        #[arg(long)]
        shares: Option<u8>,
        /// With --seal shares: write the new shares to DIR/share-N (mode 0600).
        #[arg(long)]
        out_dir: Option<std::path::PathBuf>,
    },
    /// Work with the custody of the master key.
    Seal {
        #[command(subcommand)]
        command: SealCommand,
    },
    /// Write a consistent backup of a stopped data directory's store to a new file: every
    /// object as stored (key material sealed under the master key), never the master key.
    /// While a server serves the directory, `kmip-admin backup` has it write one without
    /// stopping.
    Backup {
        /// The backup file to create (never overwritten).
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Restore a backup into --data-dir, which must be empty or absent. The digest is checked
    /// first. The server then needs the same master key to start: a copy of the original
    /// master.key, or its --unseal-share shares.
    Restore {
        /// A file `kmip-server backup` wrote.
        file: std::path::PathBuf,
    },
    /// Read a password on standard input and print its scrypt hash, for --password.
    HashPassword,
    /// Work with the audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand)]
enum SealCommand {
    /// On a stopped server: move the master key to another custody, the same key (no record
    /// changes). The current custody is read with --seal and its options (by default the one
    /// the data directory's files say); the new one is --to, with its options (--pkcs11-*, or
    /// --threshold, --shares and --out-dir for shares). The new custody is written and opened
    /// before the old one's files are deleted. Recorded in the audit log.
    Migrate {
        /// The custody to move the master key to.
        #[arg(long, value_enum)]
        to: kmip_server::config::SealKind,
        /// With --to shares: how many shares open the key.
        #[arg(long)]
        threshold: Option<u8>,
        /// With --to shares: how many shares to make.
        #[arg(long)]
        shares: Option<u8>,
        /// With --to shares: write the shares to DIR/share-N (mode 0600).
        #[arg(long)]
        out_dir: Option<std::path::PathBuf>,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the audit log and name the first forged, changed, missing or reordered record:
    /// the chain, every record's MAC and every signature (keys derived from the master key:
    /// DATA_DIR/master.key or --unseal-share), and that the log reaches the chain head
    /// (DATA_DIR/audit.head), so that a cut tail or a deleted file is found. Without FILEs,
    /// the data directory's own log (FILE.N in increasing N, then FILE). Prints the first
    /// and last record's hash and time, to anchor elsewhere. Zero records fail.
    Verify {
        /// An exported verification key (`audit export-key`): verify without the master key
        /// or any secret (signatures, and the head's signed part if DATA_DIR/audit.head
        /// exists; records since the last signature are reported, not authenticated).
        #[arg(long)]
        key: Option<std::path::PathBuf>,
        /// Audit files, oldest first (FILE.1 FILE.2 ... FILE).
        files: Vec<std::path::PathBuf>,
    },
    /// Print the public key (Ed25519, PEM) that verifies the audit log's signatures offline.
    ExportKey,
}

/// The master key for the audit commands: never created here.
fn existing_master_key(cfg: &Config) -> Result<MasterKey, String> {
    let seal = custody(cfg)?;
    lifecycle::core::open_existing_seal(seal.as_ref())
        .and_then(|k| k.with_purpose_root(&cfg.data_dir))
        .map_err(|e| match e {
            SealError::Missing(why) => format!(
                "no master key in {}: {why} (or verify with an exported key: --key FILE)",
                cfg.data_dir.display()
            ),
            e => format!("master key: {e}"),
        })
}

fn audit_command(cfg: &Config, command: AuditCommand) -> Result<(), String> {
    use kmip_server::audit::{self, AuditKeys, VerifyKeys};
    let log = cfg
        .audit_file
        .clone()
        .unwrap_or_else(|| cfg.data_dir.join("audit.jsonl"));
    let head = cfg.data_dir.join("audit.head");
    match command {
        AuditCommand::ExportKey => {
            let keys = AuditKeys::from_master(&existing_master_key(cfg)?).context("audit key")?;
            print!("{}", keys.public_key_pem().context("audit key")?);
            Ok(())
        }
        AuditCommand::Verify { key, files } => {
            // with the master key the head must be there; offline it is used when it is
            let (keys, head) = match &key {
                Some(k) => (
                    VerifyKeys::from_public_pem(
                        &std::fs::read(k).context(&k.display().to_string())?,
                    )
                    .context(&k.display().to_string())?,
                    head.exists().then_some(head),
                ),
                None => (
                    AuditKeys::from_master(&existing_master_key(cfg)?)
                        .context("audit key")?
                        .verify_keys(),
                    Some(head),
                ),
            };
            let own = files.is_empty();
            let (mut attempt, mut rotations) = (0, 0);
            let r = loop {
                let files = if own {
                    audit::log_files(&log)
                } else {
                    files.clone()
                };
                match audit::verify_with(&files, &keys, head.as_deref()) {
                    Ok(r) => break r,
                    // a running server rotated the file between the listing and the reading
                    // (a file appeared that the listing missed): list and read again, as often
                    // as it keeps rotating (within reason), before calling it broken
                    Err(_) if own && audit::log_files(&log) != files && rotations < 100 => {
                        rotations += 1;
                    }
                    Err(_) if own && attempt < 2 => {
                        attempt += 1;
                        std::thread::sleep(std::time::Duration::from_millis(200));
                    }
                    Err(b) => return Err(format!("audit chain broken: {b}")),
                }
            };
            let seq = |s: Option<u64>| s.map_or("-".to_owned(), |s| s.to_string());
            let time = |t: &Option<String>| t.clone().unwrap_or_else(|| "-".into());
            println!(
                "audit chain intact: {} records in {} files",
                r.records, r.files
            );
            println!(
                "first: seq {} time {} hash {}",
                seq(r.first.seq),
                time(&r.first.time),
                r.first.hash
            );
            println!(
                "last: seq {} time {} hash {}",
                seq(r.last.seq),
                time(&r.last.time),
                r.last.hash
            );
            let mut proofs = Vec::new();
            if r.macs > 0 {
                proofs.push(format!("{} record MACs", r.macs));
            }
            proofs.push(format!(
                "{} signatures (the last at seq {})",
                r.signatures,
                seq(r.signed_through)
            ));
            if let Some(h) = r.head {
                proofs.push(format!("the chain head at seq {h}"));
            }
            if let Some(h) = r.signed_head {
                proofs.push(format!("the signed chain head at seq {h}"));
            }
            println!("checked: {}", proofs.join(", "));
            if r.incomplete_tail {
                println!("note: the last line was being written: not verified");
            }
            if r.legacy > 0 {
                println!(
                    "note: {} records older than sequence numbers and keys: chained only",
                    r.legacy
                );
            }
            let covered = r.signed_through.max(r.signed_head);
            if r.macs == 0 && r.last.seq > covered {
                println!(
                    "note: the records after seq {} are covered by no signature here: verify them with the chain head (DATA_DIR/audit.head, signed within seconds of a write) or the master key",
                    seq(covered)
                );
            }
            Ok(())
        }
    }
}

/// The store `--store` names: the redb file of the data directory, or a PostgreSQL database.
fn open_store(cfg: &Config) -> Result<Arc<dyn lifecycle::store::Store>, String> {
    if cfg.store == "redb" {
        let path = cfg.data_dir.join("kmip.redb");
        let mut store = RedbStore::open_with_cache(&path, cfg.store_cache_mb << 20)
            .context(&format!("store {}", path.display()))?
            .unique_names(cfg.unique_names);
        // destroyed keys' sealed bytes leave the file only when it is compacted, which needs
        // the file to ourselves: at every start, before serving
        while store.compact().context("compact the store")? {}
        return Ok(Arc::new(store));
    }
    if !(cfg.store.starts_with("postgres://") || cfg.store.starts_with("postgresql://")) {
        return Err(format!(
            "--store {}: expected `redb` or a postgres:// URL",
            shown_store(&cfg.store)
        ));
    }
    let store = lifecycle::store::PostgresStore::connect(
        &cfg.store,
        std::time::Duration::from_secs(cfg.store_connect_secs),
    )
    .context("--store")?
    .unique_names(cfg.unique_names);
    tracing::info!(database = %store.engine().shown(), "store: PostgreSQL");
    Ok(Arc::new(store))
}

/// Every node over one store must hold the same master key: the store keeps the check value
/// of the first one, and a node with another is refused before it serves (its objects would
/// not unseal, and what it created would not unseal on the others).
fn same_master_key(
    store: &dyn lifecycle::store::Store,
    master: &MasterKey,
    shown: &str,
) -> Result<(), String> {
    const NAME: &str = lifecycle::store::MASTER_CHECK;
    match store.value(NAME).context("store")? {
        Some(check) if master.check(&check) => Ok(()),
        Some(_) => Err(format!(
            "the store ({}) was set up with another master key: every node sharing it needs \
             the same one (a copy of the key file, the same Shamir shares, or the same HSM key)",
            shown_store(shown)
        )),
        None => {
            let check = master.check_value().context("master key")?;
            // only if still absent: two first nodes starting together with different keys
            // must not both write theirs and serve; the loser reads the winner's and is refused
            use lifecycle::store::{Change, Expect, StoreError};
            match store.commit_if(
                vec![Expect::Value(NAME.into(), None)],
                vec![Change::PutValue(NAME.into(), check)],
            ) {
                Err(StoreError::Conflict(_)) => same_master_key(store, master, shown),
                other => other.context("store"),
            }
        }
    }
}

/// Before anything is changed: a place for the new shares that cannot take them would leave a
/// rotated key that no share opens.
fn check_share_dir(
    out_dir: Option<&std::path::Path>,
    count: u8,
    data_dir: &std::path::Path,
) -> Result<(), String> {
    let Some(dir) = out_dir else {
        return Ok(());
    };
    let same = |a: &std::path::Path, b: &std::path::Path| matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y);
    if same(dir, data_dir) {
        return Err(format!(
            "--out-dir {}: the data directory itself: shares beside the store are the key, \
             give each custodian's share a place of its own",
            dir.display()
        ));
    }
    for x in 1..=count {
        let f = dir.join(format!("share-{x}"));
        if f.exists() {
            return Err(format!(
                "{} exists: shares are never written over another (move the old ones first)",
                f.display()
            ));
        }
    }
    std::fs::create_dir_all(dir).context(&dir.display().to_string())?;
    let probe = dir.join(".kmip-write-probe");
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .context(&format!("--out-dir {} is not writable", dir.display()))
}

/// The custody the options choose (`Config::master_seal`); for Shamir shares, with the shares
/// given in files or on the command line and, on a terminal, those still missing typed by
/// their custodians one at a time, so that a sealed server waits for them rather than exits.
fn custody(cfg: &Config) -> Result<Box<dyn Seal>, String> {
    if cfg.seal_kind() != kmip_server::config::SealKind::Shares {
        return cfg.master_seal().context("master key");
    }
    custody_of(cfg, kmip_server::config::SealKind::Shares)
}

/// [`custody`] of a given kind, other custodies' options ignored (`seal migrate`).
fn custody_of(cfg: &Config, kind: kmip_server::config::SealKind) -> Result<Box<dyn Seal>, String> {
    use kmip_server::config::SealKind;
    if kind != SealKind::Shares {
        return cfg.seal_for(kind).context("master key");
    }
    let mut shares = cfg.given_shares().context("master key")?;
    let check = cfg.data_dir.join("master.check");
    if !check.exists() {
        // a new data directory from shares split elsewhere: nothing to check them against
        return cfg.seal_for(kind).context("master key");
    }
    let split = lifecycle::core::read_split(&cfg.data_dir).context("master key")?;
    let need = split.map(|s| usize::from(s.threshold));
    let terminal = {
        use std::io::IsTerminal;
        std::io::stdin().is_terminal()
    };
    let count = |n: usize| match need {
        Some(m) => format!("{n} of {m} shares"),
        None => format!("{n} shares (the threshold was not recorded)"),
    };
    loop {
        if shares.len() >= need.unwrap_or(2) {
            let seal = ShareSeal::with_shares(&cfg.data_dir, shares.clone());
            match lifecycle::core::open_existing_seal(&seal) {
                Ok(_) => return Ok(Box::new(seal)),
                // without a recorded threshold, one more share may be what is missing
                Err(SealError::WrongKey(_)) if need.is_none() && terminal => {}
                Err(e) => return Err(format!("master key: {} given: {e}", count(shares.len()))),
            }
        }
        if !terminal {
            return Err(format!(
                "master key: the master key of {} is split into shares, and {} given; standard \
                 input is not a terminal to ask for more: give each custodian's share with \
                 --master-share-file FILE, or start on a terminal to have them typed",
                cfg.data_dir.display(),
                count(shares.len())
            ));
        }
        eprintln!(
            "kmip-server: the master key is sealed: {} given. Next custodian: type your share \
             (not shown) and press Enter.",
            count(shares.len())
        );
        let line = read_hidden_line().context("read a share")?;
        if line.trim().is_empty() {
            return Err(format!(
                "master key: no share typed; {} given",
                count(shares.len())
            ));
        }
        match lifecycle::core::Share::from_text(&line) {
            Ok(s) if shares.iter().any(|h| h.x == s.x) => {
                eprintln!("kmip-server: share {} was given already", s.x)
            }
            Ok(s) => {
                shares.push(s);
                eprintln!("kmip-server: {} given", count(shares.len()));
            }
            Err(e) => eprintln!("kmip-server: not a share ({e}); try again"),
        }
    }
}

/// `--store` for messages, without a password (whatever precedes the last `@` of the part
/// before the path: a password may hold an `@`).
fn shown_store(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    match authority.rsplit_once('@') {
        Some((_, hosts)) => format!("{scheme}://…@{hosts}/{path}"),
        None => url.to_owned(),
    }
}

/// The host name, for the audit log when `--node-name` is absent.
fn node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "kmip-server".into())
}

/// A line from the terminal with its echo off, so that a share typed is not left on screen.
fn read_hidden_line() -> Result<zeroize::Zeroizing<String>, String> {
    use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).context("terminal")?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    tcsetattr(&stdin, OptionalActions::Flush, &quiet).context("terminal")?;
    // room for any share, so that reading never moves the text and leaves a copy behind
    let mut line = zeroize::Zeroizing::new(String::with_capacity(1024));
    let read = stdin.read_line(&mut line);
    let restored = tcsetattr(&stdin, OptionalActions::Flush, &saved);
    eprintln!();
    read.context("terminal")?;
    restored.context("terminal")?;
    Ok(line)
}

/// Said once, on stderr, when a data directory's master key is made: what to keep, and what
/// is lost without it.
fn announce_new_master_key(cfg: &Config, seal: &dyn Seal) {
    use kmip_server::config::SealKind;
    let dir = cfg.data_dir.display();
    let keep = match cfg.seal_kind() {
        SealKind::File => format!(
            "  {dir}/master.key   (the master key itself, mode 0600)\n\
             Copy it now to a safe place, apart from your backups of the store: a backup\n\
             never holds it. Anyone holding it and the data directory holds every key.\n\
             To put it in custodians' hands instead: kmip-server master-split."
        ),
        SealKind::Shares => "  the custodians' shares the key was rebuilt from\n\
             Every start needs enough of them."
            .to_owned(),
        SealKind::Pkcs11 => format!(
            "  {dir}/master.sealed   (the master key, sealed by the token)\n  and the token's key \
             {:?} itself (back the token up as its vendor says)\n\
             master.sealed opens with that token key only; without either, nothing opens.",
            cfg.pkcs11_key
        ),
    };
    eprintln!(
        "\n\
         ==========================================================================\n\
         kmip-server: a NEW MASTER KEY was made for {dir} ({}).\n\
         Every key this server stores is sealed under it. If it is lost, every\n\
         object in this data directory is lost with it: no one, not even this\n\
         server, can open them again. Back up:\n\
         {keep}\n\
         ==========================================================================\n",
        seal.describe()
    );
}

/// The master key from the custody the options choose, checked against the value the custody
/// keeps, so that a wrong key or too few shares refuse to start rather than fail on every
/// object; on a data directory that has none, a new one, sealed first.
fn master_key(cfg: &Config) -> Result<MasterKey, String> {
    let started = std::time::Instant::now();
    if lifecycle::core::rotation_pending(&cfg.data_dir) {
        return Err(format!(
            "{} says a master-key rotation was interrupted: its objects are sealed under two \
             keys until it is finished. Run kmip-server master-rotate --data-dir {} (with the \
             same --seal options) to finish it, then start the server",
            cfg.data_dir.join(lifecycle::core::ROTATION_FILE).display(),
            cfg.data_dir.display()
        ));
    }
    let seal = custody(cfg)?;
    // a store with no master key in the chosen custody is one whose key went missing (files
    // deleted, or not copied along): a first start there would seal a new key over it
    let store = cfg.data_dir.join("kmip.redb");
    let sealed = seal.is_sealed().context("master key")?;
    if store.exists() && !sealed {
        return Err(format!(
            "{} holds objects but {} has no master key for it: the objects are sealed under a \
             master key kept elsewhere; start with the custody that holds it (--seal)",
            store.display(),
            seal.describe()
        ));
    }
    let key = lifecycle::core::open_seal(seal.as_ref())
        .and_then(|k| k.with_purpose_root(&cfg.data_dir))
        .context("master key")?;
    if !sealed {
        announce_new_master_key(cfg, seal.as_ref());
    }
    tracing::info!(
        custody = %seal.describe(),
        ms = started.elapsed().as_secs_f64() * 1e3,
        "master key open"
    );
    Ok(key)
}

/// Split `key` into shares, hand them out (printed, or one file each in `out_dir`), then
/// read back what was handed out and check that every share takes part in rebuilding the key
/// the custody checks. Only then is the split recorded; the caller deletes the key file after.
fn split_and_verify(
    cfg: &Config,
    seal: &dyn Seal,
    key: &MasterKey,
    threshold: u8,
    count: u8,
    out_dir: Option<&std::path::Path>,
) -> Result<String, String> {
    use lifecycle::core::Share;
    use std::io::Write;
    check_share_dir(out_dir, count, &cfg.data_dir)?;
    let parts = key.split(threshold, count).context("split")?;
    let handed: Vec<Share> = match out_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).context(&dir.display().to_string())?;
            let files: Vec<std::path::PathBuf> = parts
                .iter()
                .map(|p| dir.join(format!("share-{}", p.x)))
                .collect();
            if let Some(f) = files.iter().find(|f| f.exists()) {
                return Err(format!(
                    "{} exists: shares are never written over another",
                    f.display()
                ));
            }
            for (p, f) in parts.iter().zip(&files) {
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(0o600);
                }
                let mut file = opts.open(f).context(&f.display().to_string())?;
                file.write_all(format!("{}\n", p.to_text().as_str()).as_bytes())
                    .and_then(|()| file.sync_all())
                    .context(&f.display().to_string())?;
            }
            files
                .iter()
                .map(|f| lifecycle::core::read_share_file(f).context("read back a share"))
                .collect::<Result<_, _>>()?
        }
        None => {
            let mut out = std::io::stdout().lock();
            for p in &parts {
                writeln!(out, "{}", p.to_text().as_str()).context("write shares")?;
            }
            out.flush().context("write shares")?;
            // what was printed, parsed back as a custodian's copy will be
            parts
                .iter()
                .map(|p| Share::from_text(&p.to_text()).context("read back a share"))
                .collect::<Result<_, _>>()?
        }
    };
    // every window of `threshold` consecutive shares (around the end): each share takes part
    let m = usize::from(threshold);
    for start in 0..handed.len() {
        let window: Vec<Share> = (0..m)
            .map(|i| handed[(start + i) % handed.len()].clone())
            .collect();
        let rebuilt = MasterKey::from_shares(&window).context("recombine the shares")?;
        seal.check(&rebuilt).map_err(|e| {
            format!("the shares written do not rebuild the master key ({e}): nothing deleted")
        })?;
    }
    lifecycle::core::write_split(
        &cfg.data_dir,
        lifecycle::core::Split {
            threshold,
            shares: count,
        },
    )
    .context("record the split")?;
    Ok(match out_dir {
        Some(d) => format!("{count} shares written to {}/share-N", d.display()),
        None => format!("{count} shares printed"),
    })
}

fn master_split(
    cfg: &Config,
    threshold: u8,
    shares: u8,
    out_dir: Option<&std::path::Path>,
) -> Result<(), String> {
    use kmip_server::config::SealKind;
    match cfg.seal_kind() {
        // a key split already: the same key split again, rebuilt from the current shares
        SealKind::Shares => {
            let seal = custody(cfg)?;
            let key = lifecycle::core::open_existing_seal(seal.as_ref()).context("master key")?;
            let done = split_and_verify(cfg, seal.as_ref(), &key, threshold, shares, out_dir)?;
            eprintln!(
                "kmip-server: {done} and checked; any {threshold} unseal the server. The old \
                 shares still rebuild the same key: to make them worthless, kmip-server \
                 master-rotate, then split the new key."
            );
            return Ok(());
        }
        SealKind::Pkcs11 => {
            return Err(
                "master-split splits a key file (--seal file) or shares (--seal shares)".into(),
            )
        }
        SealKind::File => {}
    }
    let file = FileSeal::new(&cfg.data_dir);
    let key_path = file.key_path().to_path_buf();
    if !key_path.exists() {
        return Err(format!(
            "{} does not exist (already split? then give the current shares, --seal shares \
             --master-share-file, to split again)",
            key_path.display()
        ));
    }
    let key = lifecycle::core::open_existing_seal(&file).context("master key")?;
    let done = split_and_verify(cfg, &file, &key, threshold, shares, out_dir)?;
    std::fs::remove_file(&key_path).context("remove the master key file")?;
    std::fs::File::open(&cfg.data_dir)
        .and_then(|d| d.sync_all())
        .context("remove the master key file")?;
    eprintln!(
        "kmip-server: {done}, recombined and checked against the master key; any {threshold} \
         unseal the server. {} was deleted.",
        key_path.display()
    );
    Ok(())
}

fn master_rotate(
    cfg: &Config,
    batch_size: usize,
    threshold: Option<u8>,
    shares: Option<u8>,
    out_dir: Option<&std::path::Path>,
) -> Result<(), String> {
    use kmip_server::config::SealKind;
    let started = std::time::Instant::now();
    let seal = custody(cfg)?;
    let split = if cfg.seal_kind() == SealKind::Shares {
        let recorded = lifecycle::core::read_split(&cfg.data_dir).context("master key")?;
        match (
            threshold.or(recorded.map(|s| s.threshold)),
            shares.or(recorded.map(|s| s.shares)),
        ) {
            (Some(t), Some(n)) => Some((t, n)),
            _ => {
                return Err(
                    "the split of the new key is not known: give --threshold and --shares".into(),
                )
            }
        }
    } else {
        if threshold.is_some() || shares.is_some() || out_dir.is_some() {
            return Err(
                "--threshold, --shares and --out-dir split the new key of --seal shares".into(),
            );
        }
        None
    };
    if cfg.store != "redb" {
        return Err(format!(
            "master-rotate re-seals a redb data directory's records; the store here is {} \
             (rotating the key of a PostgreSQL store is not supported yet)",
            shown_store(&cfg.store)
        ));
    }
    if let Some((_, n)) = split {
        check_share_dir(out_dir, n, &cfg.data_dir)?;
    }
    let store_path = cfg.data_dir.join("kmip.redb");
    let store = RedbStore::open(&store_path).map_err(|e| {
        format!(
            "{}: {e} (master-rotate needs the server stopped)",
            store_path.display()
        )
    })?;
    let mut last = std::time::Instant::now();
    let rotated = lifecycle::core::rotate(
        &cfg.data_dir,
        seal.as_ref(),
        &store,
        batch_size,
        |done, total| {
            if last.elapsed() >= std::time::Duration::from_secs(2) {
                last = std::time::Instant::now();
                eprintln!("kmip-server: master-rotate: {done} of {total} records");
            }
        },
    )
    .context("master-rotate")?;
    // the store's own check value (see `same_master_key`) follows the key, before the
    // journal goes: a rotation killed before this line is run again, and gets here
    let check = rotated.key.check_value().context("master key")?;
    store
        .commit(vec![lifecycle::store::Change::PutValue(
            lifecycle::store::MASTER_CHECK.into(),
            check,
        )])
        .context("master-rotate")?;
    drop(store);
    if let Some((t, n)) = split {
        let done = split_and_verify(cfg, seal.as_ref(), &rotated.key, t, n, out_dir)?;
        eprintln!(
            "kmip-server: the new master key's {done}; any {t} unseal the server. The old \
             shares open nothing any more."
        );
    }
    let mut event = serde_json::Map::new();
    event.insert("event".into(), "master-rotate".into());
    event.insert("custody".into(), seal.describe().into());
    event.insert("records".into(), rotated.records.into());
    event.insert("resealed".into(), rotated.resealed.into());
    event.insert("resumed".into(), rotated.resumed.into());
    audit_event(cfg, &rotated.key, event)?;
    lifecycle::core::finish_rotation(&cfg.data_dir).context("master-rotate")?;
    eprintln!(
        "kmip-server: master key rotated{}: {} records, {} re-sealed by this run, in {:.1} s. \
         The old master key opens nothing in {} any more{}.",
        if rotated.resumed {
            " (an interrupted rotation finished)"
        } else {
            ""
        },
        rotated.records,
        rotated.resealed,
        started.elapsed().as_secs_f64(),
        cfg.data_dir.display(),
        match cfg.seal_kind() {
            SealKind::File => format!(
                ": back up the new {} now, in place of the old copy (which still opens backups \
                 of the store made before the rotation)",
                cfg.data_dir.join("master.key").display()
            ),
            _ => " (backups of the store made before the rotation still need the old key)".into(),
        }
    );
    Ok(())
}

/// Which custody holds `cfg`'s data directory's key now: --seal when given, else what its
/// files say.
fn current_custody(cfg: &Config) -> kmip_server::config::SealKind {
    use kmip_server::config::SealKind;
    let d = &cfg.data_dir;
    cfg.seal.unwrap_or(if d.join("master.key").exists() {
        SealKind::File
    } else if d.join("master.sealed").exists() {
        SealKind::Pkcs11
    } else {
        SealKind::Shares
    })
}

/// Append one event to the data directory's audit log, under the audit keys `key` derives.
fn audit_event(
    cfg: &Config,
    key: &MasterKey,
    fields: serde_json::Map<String, serde_json::Value>,
) -> Result<(), String> {
    let audit_keys = kmip_server::audit::AuditKeys::from_master(key).context("audit keys")?;
    let audit = kmip_server::audit::Audit::open_signed(
        &cfg.audit_file
            .clone()
            .unwrap_or_else(|| cfg.data_dir.join("audit.jsonl")),
        cfg.audit_max_bytes,
        kmip_server::audit::Signing::new(audit_keys, cfg.data_dir.join("audit.head")),
    )
    .context("audit log")?;
    let mut record = serde_json::Map::new();
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    record.insert("time".into(), kmip_codec::time::format_secs(secs).into());
    record.extend(fields);
    audit.record(record).context("audit log")
}

fn seal_migrate(
    cfg: &Config,
    to: kmip_server::config::SealKind,
    threshold: Option<u8>,
    shares: Option<u8>,
    out_dir: Option<&std::path::Path>,
) -> Result<(), String> {
    use kmip_server::config::SealKind;
    let name = |k: SealKind| match k {
        SealKind::File => "file",
        SealKind::Shares => "shares",
        SealKind::Pkcs11 => "pkcs11",
    };
    let d = &cfg.data_dir;
    if lifecycle::core::rotation_pending(d) {
        return Err("a master-rotate is unfinished: run it again to finish it first".into());
    }
    let from = current_custody(cfg);
    if from == to {
        return Err(format!(
            "the master key is kept by --seal {} already (master-split splits a split key again; \
             master-rotate replaces the key)",
            name(to)
        ));
    }
    if (to == SealKind::Shares) != (threshold.is_some() && shares.is_some()) {
        return Err(
            "--to shares needs --threshold and --shares (and they belong to it only)".into(),
        );
    }
    // a server holding the store holds the key too: the store's lock says whether one runs
    let store = d.join("kmip.redb");
    if store.exists() {
        drop(RedbStore::open(&store).map_err(|e| {
            format!(
                "{}: {e} (seal migrate needs the server stopped)",
                store.display()
            )
        })?);
    }
    let source = custody_of(cfg, from)?;
    let key = lifecycle::core::open_existing_seal(source.as_ref())
        .and_then(|k| k.with_purpose_root(d))
        .context("master key")?;
    let target: Box<dyn Seal> = match to {
        // the shares are made here: the custody keeps only the check value
        SealKind::Shares => Box::new(ShareSeal::with_shares(d, Vec::new())),
        _ => cfg.seal_for(to).context("--to")?,
    };
    let shares_done = match to {
        SealKind::Shares => {
            // the same check value the shares are checked against, whatever kept it before
            target.replace(&key).context("--to shares")?;
            let (t, n) = threshold.zip(shares).ok_or("--threshold and --shares")?;
            Some(split_and_verify(cfg, target.as_ref(), &key, t, n, out_dir)?)
        }
        _ => {
            if to == SealKind::File && d.join("master.key").exists() {
                return Err(format!(
                    "{} exists: it is never written over",
                    d.join("master.key").display()
                ));
            }
            target.replace(&key).context("--to")?;
            // unsealed and checked through the new custody, as a start will
            lifecycle::core::open_existing_seal(target.as_ref())
                .context("the new custody does not open")?;
            None
        }
    };
    // the new custody opens: only now the old one's files go
    let gone: &[&str] = match from {
        SealKind::File => &["master.key"],
        SealKind::Pkcs11 => &["master.sealed"],
        SealKind::Shares => &["master.shares"],
    };
    for f in gone {
        match std::fs::remove_file(d.join(f)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{}: {e}", d.join(f).display())),
        }
    }
    std::fs::File::open(d)
        .and_then(|f| f.sync_all())
        .context(&d.display().to_string())?;
    let mut event = serde_json::Map::new();
    event.insert("event".into(), "seal-migrate".into());
    event.insert("from".into(), source.describe().into());
    event.insert("to".into(), target.describe().into());
    audit_event(cfg, &key, event)?;
    eprintln!(
        "kmip-server: the master key moved from --seal {} to --seal {} ({}); the same key, no \
         record changed. Start the server with --seal {} and its options{}.",
        name(from),
        name(to),
        target.describe(),
        name(to),
        shares_done.map(|s| format!("; {s}")).unwrap_or_default()
    );
    Ok(())
}

fn backup_command(data_dir: &std::path::Path, out: &std::path::Path) -> Result<(), String> {
    use lifecycle::store::backup::BackupError;
    if out.exists() {
        return Err(format!(
            "--out {}: exists: a backup never overwrites a file",
            out.display()
        ));
    }
    let manifest = match kmip_server::backup::backup_offline(data_dir, out) {
        Ok(m) => m,
        // only the server holding the store can read it consistently: it is asked over KMIP,
        // by the admin tool (this binary is no KMIP client)
        Err(BackupError::InUse { .. }) => {
            return Err(format!(
                "a server has {} open: have it write the backup while it serves, as an \
                 administrator:\n  {}\n(--server HOST:PORT if it does not listen on \
                 localhost:5696)",
                data_dir.display(),
                shell_command(&[
                    "kmip-admin",
                    "--data-dir",
                    &data_dir.display().to_string(),
                    "backup",
                    "--out",
                    &out.display().to_string(),
                ])
            ))
        }
        Err(e) => return Err(format!("backup of {}: {e}", data_dir.display())),
    };
    println!(
        "backup written: {}\n{}the master key is not in it: keep master.key (or the shares) \
         apart; a restored directory needs the same one",
        out.display(),
        manifest.to_text()
    );
    Ok(())
}

/// A command line to print for the operator to paste: each word quoted as the shell needs
/// (a data directory with a space or a quote stays one word).
fn shell_command(words: &[&str]) -> String {
    words
        .iter()
        .map(|w| pki::shell_quote(w))
        .collect::<Vec<_>>()
        .join(" ")
}

fn restore_command(data_dir: &std::path::Path, file: &std::path::Path) -> Result<(), String> {
    let m = kmip_server::backup::restore(file, data_dir).map_err(|e| {
        format!(
            "restore {} into --data-dir {}: {e}",
            file.display(),
            data_dir.display()
        )
    })?;
    println!(
        "restored {} objects into {dir} (store schema {}, backup made at {} s since the epoch).\n\
         Before starting a server on it:\n\
         - the master key: the objects are sealed under the master key of the directory the backup \
         was made from, which no backup holds. Copy its master.key into {dir} (mode 0600), or \
         start with the same --unseal-share shares.\n\
         - the TLS material: copy its tls/ directory too, to keep the CA, the server certificate \
         and the client identities; without it a new CA is made at first start, which no client \
         trusts yet.",
        m.objects,
        m.store_schema,
        m.created,
        dir = data_dir.display(),
    );
    Ok(())
}

/// Errors at the binary's edge carry their context as text.
mod anyhow_free {
    pub(crate) trait Context<T> {
        fn context(self, what: &str) -> Result<T, String>;
    }
    impl<T, E: std::fmt::Display> Context<T> for Result<T, E> {
        fn context(self, what: &str) -> Result<T, String> {
            self.map_err(|e| format!("{what}: {e}"))
        }
    }
}

fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // colour codes are noise in a file, a pipe or the journal; NO_COLOR turns them off too
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => b.init(),
        LogFormat::Json => b.json().init(),
    }
}

/// Refuse to start, saying why, on a data directory the server could read but never write:
/// every operation writes the store or the audit log, so it could serve nothing.
fn check_writable(dir: &std::path::Path) -> Result<(), String> {
    let probe = dir.join(".write-check");
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| {
            let why = if e.raw_os_error() == Some(30) {
                "is read-only"
            } else {
                "is not writable"
            };
            format!(
                "the data directory {} {why} (the store and the audit log are written there): {e}",
                dir.display()
            )
        })
}

/// The server warns at start when its certificate expires within this many days.
const CERT_EXPIRY_WARNING_DAYS: i32 = 30;

async fn serve(cfg: Config) -> Result<(), String> {
    // the server holds keys: none in a core file, no debugger of the same user
    lifecycle::core::harden_process()?;
    if !lifecycle::core::UNDUMPABLE {
        tracing::warn!(
            "process not marked undumpable (not supported on this platform): no core file, \
             but a debugger of the same user may attach"
        );
    }
    // nor in swap, where the platform allows it
    if cfg.lock_memory {
        match lifecycle::core::lock_memory() {
            Ok(()) => tracing::info!("memory locked: keys never reach swap"),
            Err(why) => tracing::warn!(%why, "memory not locked"),
        }
    }
    // every flag that can be wrong is read before anything is created: a mistake in one
    // leaves the data directory as it was
    let group_grants = kmip_server::policy::parse_group_grants(&cfg.group_grants)?;
    let namespace_grants = kmip_server::policy::parse_group_grants(&cfg.namespace_grants)?;
    let credentials = kmip_server::policy::Credentials::parse(&cfg.passwords)?
        .with_devices(&cfg.devices)?
        .with_bindings(&cfg.user_bindings)?;
    let policies = kmip_server::policy::parse_policies(&cfg.policies)?;
    let quorum = kmip_server::quorum::Quorum::parse(
        &cfg.quorums,
        &cfg.admins,
        cfg.quorum_pending_secs,
        cfg.quorum_approval_secs,
    )?;
    for n in &cfg.tls_san {
        pki::check_san(n).context("--tls-san")?;
    }
    if cfg.tls_cert.is_some() && !cfg.tls_san.is_empty() {
        return Err("--tls-san names the generated certificate: with --tls-cert, the names are your certificate's".into());
    }
    let profiles = match &cfg.ca_profiles {
        Some(path) => kmip_server::ca::Profiles::load(path)?,
        None => kmip_server::ca::Profiles::default(),
    };
    // then the ports: a taken one stops the start before the data directory is touched (no
    // CA, master key or store made for a server that never ran, nor guidance for its port).
    // Bound, not yet listening: clients are refused until the server is ready.
    let mut reserved = Vec::new();
    if let Some(addr) = &cfg.https_listen {
        let https = listener::reserve(addr)
            .await
            .context(&format!("listen for HTTPS on {addr} (--https-listen)"))?;
        reserved.push((https, listener::Transport::Https));
    }
    // the first address's port is the one CLIENTS.txt names
    let mut port = None;
    for addr in &cfg.listen {
        let tcp = listener::reserve(addr)
            .await
            .context(&format!("listen on {addr} (--listen)"))?;
        port = port.or_else(|| tcp.local_addr().ok().map(|a| a.port()));
        reserved.push((tcp, listener::Transport::Ttlv));
    }
    let port = port.unwrap_or(5696);
    let metrics = match &cfg.metrics_listen {
        Some(addr) => Some(
            listener::reserve(addr)
                .await
                .context(&format!("listen for metrics on {addr} (--metrics-listen)"))?,
        ),
        None => None,
    };
    let tls_files = |cert, key, client_ca, from_options| listener::TlsFiles {
        cert,
        key,
        client_ca,
        crls: cfg.client_crls.clone(),
        crl_expired: cfg.crl_expired,
        from_options,
    };
    // the operator's own certificates load before anything is created, as flags do
    let given_tls = match (&cfg.tls_cert, &cfg.tls_key, &cfg.client_ca) {
        (Some(c), Some(k), Some(a)) => Some(
            listener::Tls::new(tls_files(c.clone(), k.clone(), a.clone(), true))
                .context("TLS configuration")?,
        ),
        _ => None,
    };
    std::fs::create_dir_all(&cfg.data_dir)
        .context(&format!("data directory {}", cfg.data_dir.display()))?;
    check_writable(&cfg.data_dir)?;
    // before the TLS material: a restored directory without its master key, or a seal that
    // does not open (a wrong PIN, a missing token), is refused with nothing made in it, and
    // the reserved ports never listen
    // a database store is reached first: a wrong --store, or a database that does not answer,
    // leaves the data directory as it was (no master key, no CA made for nothing). The
    // PostgreSQL client blocks, and must not run on an async worker: a thread of its own.
    let on_thread = |f: &(dyn Fn() -> Result<Arc<dyn lifecycle::store::Store>, String> + Sync)| {
        std::thread::scope(|s| {
            s.spawn(f)
                .join()
                .unwrap_or_else(|_| Err("opening the store panicked".into()))
        })
    };
    let mut database = match cfg.store.as_str() {
        "redb" => None,
        _ => Some(on_thread(&|| open_store(&cfg))?),
    };
    let master = master_key(&cfg)?;
    let paths = pki::Paths::new(&cfg.data_dir);
    let tls = match given_tls {
        Some(t) => t,
        None => {
            let made = pki::ensure_with(&paths, &cfg.tls_san)
                .context(&format!("TLS material in {}", paths.dir.display()))?;
            let created = made == pki::Made::All;
            if made == pki::Made::ServerCert {
                tracing::warn!(file = %paths.server_cert().display(), "no server certificate: a new one was issued under the existing CA");
            }
            let has = pki::certificate_names(&paths.server_cert())
                .context(&paths.server_cert().display().to_string())?;
            let lacking: Vec<&String> = cfg.tls_san.iter().filter(|n| !has.contains(n)).collect();
            if !lacking.is_empty() {
                tracing::warn!(names = ?lacking, file = %paths.server_cert().display(), "the server certificate lacks these --tls-san names: kmip-server renew-server-cert adds them");
            }
            let text = pki::client_instructions(&cfg.data_dir, "admin", port);
            // written at every start, so that it follows --listen and is there to read again
            let clients = cfg.data_dir.join("CLIENTS.txt");
            pki::write_file(&clients, text.as_bytes(), false)
                .context(&format!("client instructions {}", clients.display()))?;
            if created {
                println!(
                    "kmip-server: created TLS material in {}\n{text}(also in {})",
                    paths.dir.display(),
                    clients.display()
                );
            }
            listener::Tls::new(tls_files(
                paths.server_cert(),
                paths.server_key(),
                paths.ca_cert(),
                false,
            ))
            .context("TLS configuration")?
        }
    };
    let tls = Arc::new(tls);
    // nothing renews a certificate on its own: say so while there is time
    let cert_file = cfg.tls_cert.clone().unwrap_or_else(|| paths.server_cert());
    match pki::days_left(&cert_file) {
        Ok(days) if days < 0 => {
            tracing::error!(file = %cert_file.display(), "the server certificate has expired: clients refuse it (kmip-server renew-server-cert for the generated one)")
        }
        Ok(days) if days <= CERT_EXPIRY_WARNING_DAYS => {
            tracing::warn!(file = %cert_file.display(), days, "the server certificate expires soon (kmip-server renew-server-cert for the generated one)")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "the server certificate's expiry could not be read"),
    }
    // SIGHUP reads the TLS material again (certificate, key, client CAs, CRLs); its default
    // action would end the server
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("SIGHUP handler")?;
    let reloader = tls.clone();
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            match reloader.reload() {
                Ok(()) => {
                    tracing::info!("SIGHUP: TLS certificate, key, client CAs and CRLs reloaded")
                }
                Err(e) => {
                    tracing::error!(error = %e, "SIGHUP: TLS reload failed; the previous settings stay in force")
                }
            }
        }
    });
    // the audit log's MAC and signing keys come from the master key, are kept nowhere else
    let audit_keys = kmip_server::audit::AuditKeys::from_master(&master).context("audit keys")?;
    lifecycle::core::set_max_pbkdf2_iterations(cfg.max_pbkdf2_iterations);
    let store = match database.take() {
        Some(db) => db,
        None => open_store(&cfg)?,
    };
    let checked = store.clone();
    on_thread(&|| {
        same_master_key(checked.as_ref(), &master, &cfg.store)?;
        Ok(checked.clone())
    })?;
    if cfg.duplicate_names {
        tracing::warn!("--duplicate-names is deprecated and has no effect: objects share names by default (--unique-names for the specification's rule)");
    }
    let node = cfg.node_name.clone().unwrap_or_else(node_name);
    let audit_file = cfg
        .audit_file
        .clone()
        .unwrap_or_else(|| cfg.data_dir.join("audit.jsonl"));
    let server = Arc::new(Server {
        manager: Manager::new(store, Core::new(master)).policy(lifecycle::object::Policy {
            derive_from_pre_active: cfg.derive_from_pre_active,
            wrap_trusted_only: cfg.wrap_trusted_only,
        }),
        admins: cfg.admins.clone(),
        group_grants,
        namespace_grants,
        audit: std::sync::Arc::new(
            kmip_server::audit::Audit::open_signed(
                &audit_file,
                cfg.audit_max_bytes,
                kmip_server::audit::Signing::new(audit_keys, cfg.data_dir.join("audit.head")),
            )
            .context(&format!("audit log {}", audit_file.display()))?
            .with_node(&node),
        ),
        limits: Settings {
            max_batch_items: cfg.max_batch_items,
            decode: kmip_codec::Limits {
                max_message_bytes: cfg.max_message_bytes,
                ..kmip_codec::Limits::default()
            },
            credentials,
            policies,
            interop: cfg.interop,
            profiles,
            max_locate_time: std::time::Duration::from_secs(cfg.max_locate_secs),
            max_response_bytes: cfg.max_response_bytes,
            data_dir: Some(cfg.data_dir.clone()),
            quorum,
        },
    });
    // HTTPS first: a client that can reach the KMIP port finds both ready
    let mut listeners = Vec::new();
    for (socket, transport) in reserved {
        let l = listener::listen(socket).context("listen")?;
        let address = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
        match transport {
            listener::Transport::Https => {
                tracing::info!(%address, "listening for KMIP over HTTPS")
            }
            listener::Transport::Ttlv => tracing::info!(%address, "listening"),
        }
        listeners.push((l, transport));
    }
    if let Some(socket) = metrics {
        let metrics = listener::listen(socket).context("listen for metrics (--metrics-listen)")?;
        tracing::info!(address = %metrics.local_addr().map(|a| a.to_string()).unwrap_or_default(), "serving metrics");
        tokio::spawn(kmip_server::metrics::serve(metrics, server.clone()));
    }
    // requests made before a restart, or under another configuration, expire as well: the
    // sweep runs whether or not --quorum is given now
    let sweeper = server.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(kmip_server::quorum::sweep_interval(
            sweeper.limits.quorum.expiry,
        ));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let s = sweeper.clone();
            let _ = tokio::task::spawn_blocking(move || kmip_server::quorum::sweep(&s)).await;
        }
    });
    let timeouts = Timeouts {
        idle: cfg.idle_timeout(),
        read: cfg.read_timeout(),
    };
    let shutdown = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
    };
    let limits = listener::Limits {
        max_connections: cfg.max_connections,
        max_connections_per_identity: cfg.max_connections_per_identity,
        max_handshakes: cfg.max_handshakes,
        max_handshakes_per_address: cfg.max_handshakes_per_address,
        handshake_timeout: cfg.handshake_timeout(),
    };
    listener::run(server, listeners, tls, timeouts, limits, shutdown).await;
    tracing::info!("stopped");
    Ok(())
}

/// How long, after the connections are drained, the server waits for work still running
/// before it exits anyway (its changes are committed atomically or not at all).
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

fn main() -> ExitCode {
    let cli = {
        use clap::{CommandFactory, FromArgMatches};
        let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
        if let Some(written) = cli_docs::answer(&args, Cli::command) {
            return match written {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("kmip-server: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        // before any thread: it sets this process's environment
        for note in kmip_server::config::apply_legacy_env() {
            eprintln!("kmip-server: {note}");
        }
        let cmd = Cli::command().args_override_self(true);
        let args = match kmip_server::config::args_with_file(&cmd, args) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("kmip-server: {e}");
                return ExitCode::FAILURE;
            }
        };
        let matches = cmd.get_matches_from(args);
        match Cli::from_arg_matches(&matches) {
            Ok(c) => c,
            Err(e) => e.exit(),
        }
    };
    let result = match cli.command {
        Some(Command::ClientCert { name, force }) => {
            let paths = pki::Paths::new(&cli.config.data_dir);
            pki::client_cert(&paths, &name, force)
                .context("client-cert")
                .map(|_| {
                    // the port --listen (or the config file) gives the server
                    let port = cli
                        .config
                        .listen
                        .first()
                        .and_then(|l| l.rsplit_once(':'))
                        .and_then(|(_, p)| p.parse().ok())
                        .unwrap_or(5696);
                    print!(
                        "{}",
                        pki::client_instructions(&cli.config.data_dir, &name, port)
                    )
                })
        }
        Some(Command::RenewServerCert) => {
            let paths = pki::Paths::new(&cli.config.data_dir);
            pki::renew_server_cert(&paths, &cli.config.tls_san)
                .context("renew-server-cert")
                .map(|names| {
                    println!(
                        "renewed {} (825 days) under the existing CA {}, for {}\n\
                         A running server takes it on SIGHUP (kill -HUP PID) or at its next start.",
                        paths.server_cert().display(),
                        paths.ca_cert().display(),
                        names.join(", ")
                    )
                })
        }
        Some(Command::MasterSplit {
            threshold,
            shares,
            out_dir,
        }) => master_split(&cli.config, threshold, shares, out_dir.as_deref()),
        Some(Command::MasterRotate {
            batch_size,
            threshold,
            shares,
            out_dir,
        }) => master_rotate(
            &cli.config,
            batch_size,
            threshold,
            shares,
            out_dir.as_deref(),
        ),
        Some(Command::HashPassword) => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("read the password")
                .and_then(|_| {
                    kmip_server::policy::hash_password(line.trim_end_matches(['\r', '\n']))
                })
                .map(|h| println!("{h}"))
        }
        Some(Command::Audit { command }) => audit_command(&cli.config, command),
        Some(Command::Seal {
            command:
                SealCommand::Migrate {
                    to,
                    threshold,
                    shares,
                    out_dir,
                },
        }) => seal_migrate(&cli.config, to, threshold, shares, out_dir.as_deref()),
        Some(Command::Backup { out }) => backup_command(&cli.config.data_dir, &out),
        Some(Command::Restore { file }) => restore_command(&cli.config.data_dir, &file),
        None => {
            init_logging(cli.config.log_format);
            match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => {
                    let served = rt.block_on(serve(cli.config));
                    // connections were drained (or cut) by then; work still running on the
                    // blocking pool (a long derivation) would otherwise hold the exit for as
                    // long as it runs: SIGTERM stops the server within a deadline
                    rt.shutdown_timeout(SHUTDOWN_GRACE);
                    served
                }
                Err(e) => Err(format!("runtime: {e}")),
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kmip-server: {e}");
            ExitCode::FAILURE
        }
    }
}

// A request allocates and frees a few hundred small buffers (TTLV trees, the record, the audit
// line); mimalloc's per-thread free lists cut the server's CPU per Get from about 40 to 34 us
// (kmip-bench, 16 connections). OpenSSL keeps the C library's malloc.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
