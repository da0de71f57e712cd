//! The `kmip-server` binary.

use anyhow_free::Context;
use clap::{Parser, Subcommand};
use kmip_server::config::{Config, LogFormat};
use kmip_server::dispatch::Settings;
use kmip_server::session::Timeouts;
use kmip_server::{listener, pki, Server};
use lifecycle::core::{Core, MasterKey};
use lifecycle::store::RedbStore;
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
    /// Issue a client certificate (CN=NAME, EKU clientAuth) from the data directory's CA.
    ClientCert { name: String },
    /// Split the master key into SHARES Shamir shares, THRESHOLD of which unseal the server,
    /// print them one per line, and delete the key file: from then on every start needs
    /// `--unseal-share` for at least THRESHOLD of them.
    MasterSplit {
        #[arg(long)]
        threshold: u8,
        #[arg(long)]
        shares: u8,
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
enum AuditCommand {
    /// Check the hash chain of audit files (oldest first: FILE.1 FILE.2 ... FILE) and name the
    /// first changed, removed or reordered record.
    Verify { files: Vec<std::path::PathBuf> },
}

/// The master key: from its file, or rebuilt from Shamir shares, and checked against the data
/// directory's check value (written the first time) so that a wrong key or too few shares
/// refuse to start rather than fail on every object.
fn master_key(cfg: &Config) -> Result<MasterKey, String> {
    let key_path = cfg.data_dir.join("master.key");
    let check_path = cfg.data_dir.join("master.check");
    let key = if !cfg.unseal_shares.is_empty() {
        let shares = cfg
            .unseal_shares
            .iter()
            .map(|s| lifecycle::core::shamir::Share::from_text(s))
            .collect::<Result<Vec<_>, _>>()
            .context("unseal shares")?;
        MasterKey::from_shares(&shares).context("unseal shares")?
    } else if !key_path.exists() && check_path.exists() {
        return Err(
            "the master key is split into shares: start with --unseal-share (see master-split)"
                .into(),
        );
    } else {
        MasterKey::load_or_create(&key_path).context("master key")?
    };
    match std::fs::read(&check_path) {
        Ok(check) if key.check(&check) => Ok(key),
        Ok(_) => Err("the master key does not open this data directory (wrong key file, or too few or wrong shares)".into()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let check = key.check_value().context("master key check value")?;
            pki::write_file(&check_path, &check, false).context("master key check value")?;
            Ok(key)
        }
        Err(e) => Err(format!("{}: {e}", check_path.display())),
    }
}

fn master_split(cfg: &Config, threshold: u8, shares: u8) -> Result<(), String> {
    use std::io::Write;
    let key_path = cfg.data_dir.join("master.key");
    if !key_path.exists() {
        return Err(format!(
            "{} does not exist (already split?)",
            key_path.display()
        ));
    }
    let key = master_key(cfg)?;
    let parts = key.split(threshold, shares).context("split")?;
    let mut out = std::io::stdout().lock();
    for p in &parts {
        writeln!(out, "{}", p.to_text().as_str()).context("write shares")?;
    }
    out.flush().context("write shares")?;
    std::fs::remove_file(&key_path).context("remove the master key file")?;
    eprintln!(
        "kmip-server: {shares} shares printed; any {threshold} unseal the server. {} was deleted.",
        key_path.display()
    );
    Ok(())
}

/// Errors at the binary's edge carry their context as text.
mod anyhow_free {
    pub trait Context<T> {
        fn context(self, what: &str) -> Result<T, String>;
    }
    impl<T, E: std::fmt::Display> Context<T> for Result<T, E> {
        fn context(self, what: &str) -> Result<T, String> {
            self.map_err(|e| format!("{what}: {e}"))
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => b.init(),
        LogFormat::Json => b.json().init(),
    }
}

fn print_quick_start(cfg: &Config, paths: &pki::Paths) {
    let dir = std::fs::canonicalize(&paths.dir).unwrap_or(paths.dir.clone());
    let port = cfg.listen.rsplit(':').next().unwrap_or("5696");
    println!(
        "kmip-server: created TLS material in {dir}\n\
         Point a client at localhost:{port} with\n  CA: {dir}/ca.pem\n  certificate: {dir}/admin.pem\n  key: {dir}/admin.key\n\
         A PyKMIP client section (pykmip.conf):\n\
         [server]\nhost=localhost\nport={port}\nca_certs={dir}/ca.pem\ncertfile={dir}/admin.pem\nkeyfile={dir}/admin.key\n\
         cert_reqs=CERT_REQUIRED\nssl_version=PROTOCOL_SSLv23\ndo_handshake_on_connect=True\nsuppress_ragged_eofs=True\n\
         More client identities: kmip-server client-cert NAME --data-dir {data}",
        dir = dir.display(),
        data = cfg.data_dir.display(),
    );
}

async fn serve(cfg: Config) -> Result<(), String> {
    std::fs::create_dir_all(&cfg.data_dir).context("data directory")?;
    let paths = pki::Paths::new(&cfg.data_dir);
    let (cert, key, ca) = match (&cfg.tls_cert, &cfg.tls_key, &cfg.client_ca) {
        (Some(c), Some(k), Some(a)) => (c.clone(), k.clone(), a.clone()),
        _ => {
            if pki::ensure(&paths).context("TLS material")? {
                print_quick_start(&cfg, &paths);
            }
            (paths.server_cert(), paths.server_key(), paths.ca_cert())
        }
    };
    let acceptor = listener::acceptor(&cert, &key, &ca).context("TLS configuration")?;
    let master = master_key(&cfg)?;
    let store_path = cfg.data_dir.join("kmip.redb");
    let mut store = RedbStore::open(&store_path).context("store")?;
    // destroyed keys' sealed bytes leave the file only when it is compacted, which needs the
    // file to ourselves: at every start, before serving
    while store.compact().context("compact the store")? {}
    let server = Arc::new(Server {
        manager: Manager::new(Arc::new(store), Core::new(master)),
        admins: cfg.admins.clone(),
        audit: kmip_server::audit::Audit::open(
            &cfg.audit_file
                .clone()
                .unwrap_or_else(|| cfg.data_dir.join("audit.jsonl")),
            cfg.audit_max_bytes,
        )
        .context("audit log")?,
        limits: Settings {
            max_batch_items: cfg.max_batch_items,
            decode: kmip_codec::Limits {
                max_message_bytes: cfg.max_message_bytes,
                ..kmip_codec::Limits::default()
            },
            credentials: kmip_server::policy::Credentials::parse(&cfg.passwords)?,
        },
    });
    let tcp = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .context(&format!("listen on {}", cfg.listen))?;
    tracing::info!(address = %tcp.local_addr().map(|a| a.to_string()).unwrap_or_default(), "listening");
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
    listener::run(
        server,
        tcp,
        acceptor,
        timeouts,
        cfg.max_connections,
        shutdown,
    )
    .await;
    tracing::info!("stopped");
    Ok(())
}

fn main() -> ExitCode {
    let cli = {
        use clap::{CommandFactory, FromArgMatches};
        let cmd = Cli::command().args_override_self(true);
        let args = match kmip_server::config::args_with_file(&cmd, std::env::args_os().collect()) {
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
        Some(Command::ClientCert { name }) => {
            let paths = pki::Paths::new(&cli.config.data_dir);
            pki::client_cert(&paths, &name)
                .context("issue client certificate")
                .map(|(c, k)| println!("certificate: {}\nkey: {}", c.display(), k.display()))
        }
        Some(Command::MasterSplit { threshold, shares }) => {
            master_split(&cli.config, threshold, shares)
        }
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
        Some(Command::Audit {
            command: AuditCommand::Verify { files },
        }) => match kmip_server::audit::verify(&files) {
            Ok(n) => {
                println!("audit chain intact: {n} records in {} files", files.len());
                Ok(())
            }
            Err(b) => Err(format!("audit chain broken: {b}")),
        },
        None => {
            init_logging(cli.config.log_format);
            match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(serve(cli.config)),
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
