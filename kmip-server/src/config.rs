//! Configuration: command-line options, each also readable from an environment variable.

use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

use kmip_codec::Limits;
use lifecycle::core::Share;
use lifecycle::core::{FileSeal, Pkcs11Options, Pkcs11Seal, Seal, SealError, ShareSeal};

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where the master key is kept between starts.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum SealKind {
    /// DATA_DIR/master.key (mode 0600), created at first start.
    File,
    /// Shamir shares (`master-split`), given at every start: --master-share-file, typed at
    /// a prompt on a terminal, or --unseal-share.
    Shares,
    /// Sealed in DATA_DIR/master.sealed by an AES key in a PKCS#11 token (--pkcs11-*).
    Pkcs11,
}

/// What an expired client CRL (past its nextUpdate) does.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum CrlExpired {
    /// Refuse every client certificate of the CA whose CRL has expired.
    Refuse,
    /// Log a warning and go on applying the CRL: clients it does not revoke are accepted.
    Warn,
}

#[derive(Clone, Debug, Args)]
pub struct Config {
    /// A TOML file of options, keyed by their long names (`listen = "0.0.0.0:5696"`,
    /// `max-connections = 64`). The command line wins over the environment, which wins over
    /// the file.
    #[arg(long, env = "KMIP_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Where the store, the master key and the generated TLS material live.
    #[arg(
        long,
        env = "KMIP_DATA_DIR",
        default_value = "./kmip-data",
        global = true
    )]
    pub data_dir: PathBuf,
    /// Address and port to listen on: IPv4 (`0.0.0.0:5696`) or IPv6 (`[::]:5696`, IPv6 only:
    /// list both for both). Repeat, or separate with commas; CLIENTS.txt names the first.
    #[arg(
        long,
        env = "KMIP_LISTEN",
        value_delimiter = ',',
        default_value = "0.0.0.0:5696"
    )]
    pub listen: Vec<String>,
    /// Serve Prometheus metrics (`/metrics`) and health (`/healthz`, `/readyz`) over plain
    /// HTTP on this address (off by default). Keep it on a private interface: it tells the
    /// operation mix and object counts, though never identities or keys.
    #[arg(long, env = "KMIP_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Also serve KMIP over HTTPS (`POST /kmip`, TTLV, XML or JSON bodies) on this address,
    /// with the same certificates and client authentication. Off unless set.
    #[arg(long, env = "KMIP_HTTPS_LISTEN")]
    pub https_listen: Option<String>,
    /// Server certificate (PEM); with --tls-key and --client-ca it replaces the generated PKI.
    #[arg(long, env = "KMIP_TLS_CERT", requires_all = ["tls_key", "client_ca"])]
    pub tls_cert: Option<PathBuf>,
    /// Server private key (PEM).
    #[arg(long, env = "KMIP_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// CA certificates (PEM) that client certificates must chain to.
    #[arg(long, env = "KMIP_CLIENT_CA", requires = "tls_cert")]
    pub client_ca: Option<PathBuf>,
    /// A DNS name or IP address the generated server certificate carries besides localhost,
    /// 127.0.0.1, ::1 and the host name. Repeat, or separate with commas. Used when the
    /// certificate is made (first start, `renew-server-cert`); a name the current certificate
    /// lacks is reported at start.
    #[arg(
        long = "tls-san",
        env = "KMIP_TLS_SAN",
        value_delimiter = ',',
        global = true
    )]
    pub tls_san: Vec<String>,
    /// Certificate revocation lists (PEM, any number per file) of the client CAs, checked at
    /// every handshake: a revoked client certificate is refused. When given, every CA that
    /// issues client certificates needs its CRL here (its clients are refused otherwise).
    /// SIGHUP reads them again, with the certificate, key and client CAs. Repeat, or separate
    /// with commas.
    #[arg(long = "client-crl", env = "KMIP_CLIENT_CRL", value_delimiter = ',')]
    pub client_crls: Vec<PathBuf>,
    /// A client CRL past its nextUpdate: `refuse` every client of its CA, or `warn` and go on
    /// applying it.
    #[arg(long, env = "KMIP_CRL_EXPIRED", value_enum, default_value = "refuse")]
    pub crl_expired: CrlExpired,
    /// Largest message accepted, in bytes.
    #[arg(long, env = "KMIP_MAX_MESSAGE_BYTES", default_value_t = 1024 * 1024)]
    pub max_message_bytes: usize,
    /// Largest answer one message may build, in bytes: once a batch's answer is past it, the
    /// items left answer Response Too Large (a thousand RNG Retrieves of a MiB each would
    /// otherwise build a GiB from a 48 KB request).
    #[arg(long, env = "KMIP_MAX_RESPONSE_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_response_bytes: usize,
    /// Most batch items in one message.
    #[arg(long, env = "KMIP_MAX_BATCH_ITEMS", default_value_t = 1000)]
    pub max_batch_items: usize,
    /// Memory for the store's page cache, in MiB.
    #[arg(long, env = "KMIP_STORE_CACHE_MB", default_value_t = 64)]
    pub store_cache_mb: usize,
    /// Where objects are kept: `redb` (one file, `DATA_DIR/kmip.redb`) or a PostgreSQL URL,
    /// `postgres://USER[:PASSWORD]@HOST[:PORT][,HOST2[:PORT2]...]/DB[?sslmode=...&target_session_attrs=read-write]`,
    /// which any number of server nodes may share.
    #[arg(
        long,
        env = "KMIP_STORE",
        default_value = "redb",
        hide_env_values = true,
        global = true
    )]
    pub store: String,
    /// How long to keep trying a PostgreSQL store that does not answer at start, in seconds.
    #[arg(long, env = "KMIP_STORE_CONNECT_SECS", default_value_t = 30)]
    pub store_connect_secs: u64,
    /// This node's name in its audit records (nodes sharing a database each keep their own
    /// audit chain); the host name when absent.
    #[arg(long, env = "KMIP_NODE_NAME")]
    pub node_name: Option<String>,
    /// Most authenticated connections served at once; more are closed after their TLS
    /// handshake. Connections still in their handshake have their own budget
    /// (--max-handshakes).
    #[arg(long, env = "KMIP_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// Most of those one identity (one client certificate's Common Name) holds at once; more
    /// are closed after their TLS handshake, so that one certificate cannot take every slot
    /// and lock the others, administrators included, out. A fleet that shares one
    /// certificate among many devices may need more; 0 removes this limit.
    #[arg(long, env = "KMIP_MAX_CONNECTIONS_PER_IDENTITY", default_value_t = 256)]
    pub max_connections_per_identity: usize,
    /// Most connections in their TLS handshake at once; when full, the oldest is closed to
    /// make room for a new one.
    #[arg(long, env = "KMIP_MAX_HANDSHAKES", default_value_t = 2048)]
    pub max_handshakes: usize,
    /// Most connections in their TLS handshake at once from one source address (an IPv6 /64
    /// counts as one); when full, that address's oldest is closed to make room.
    #[arg(long, env = "KMIP_MAX_HANDSHAKES_PER_ADDRESS", default_value_t = 64)]
    pub max_handshakes_per_address: usize,
    /// Seconds a new connection has to finish the TLS handshake (at most the read timeout).
    #[arg(long, env = "KMIP_HANDSHAKE_TIMEOUT_SECS", default_value_t = 5)]
    pub handshake_timeout_secs: u64,
    /// Lock the server's memory so that keys never reach swap (mlockall, each page locked
    /// when first touched), where RLIMIT_MEMLOCK has no bound (root, or systemd's
    /// `LimitMEMLOCK=infinity`); otherwise a warning says it is not. `--lock-memory false`
    /// leaves memory unlocked.
    #[arg(long, env = "KMIP_LOCK_MEMORY", default_value_t = true, action = clap::ArgAction::Set)]
    pub lock_memory: bool,
    /// Seconds a connection may stay silent between messages.
    #[arg(long, env = "KMIP_IDLE_TIMEOUT_SECS", default_value_t = 300)]
    pub idle_timeout_secs: u64,
    /// Seconds a client has to send a whole message.
    #[arg(long, env = "KMIP_READ_TIMEOUT_SECS", default_value_t = 10)]
    pub read_timeout_secs: u64,
    /// Log lines (on standard error) as text, coloured on a terminal, or as JSON objects,
    /// one a line. `RUST_LOG` filters them (`info` by default).
    #[arg(long, env = "KMIP_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// The audit log (JSON lines, hash-chained); `DATA_DIR/audit.jsonl` when absent.
    #[arg(long, env = "KMIP_AUDIT_FILE")]
    pub audit_file: Option<PathBuf>,
    /// Size at which the audit log is rotated to FILE.1, FILE.2, ...
    #[arg(long, env = "KMIP_AUDIT_MAX_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub audit_max_bytes: u64,
    /// Identities (certificate CNs) that are administrators: they reach every object (but a
    /// non-extractable key still never leaves). Repeat, or separate with commas.
    #[arg(
        long = "admin",
        env = "KMIP_ADMIN",
        value_delimiter = ',',
        default_value = "admin"
    )]
    pub admins: Vec<String>,
    /// KMIP users: `NAME=HASH`, the hash from `kmip-server hash-password`. A Username and
    /// Password credential for NAME is always verified; a certificate whose identity is NAME
    /// must send it. A credential for a username with no entry here is not an error: the
    /// request acts as the certificate's identity and the audit record says so. Repeat, or
    /// separate with commas.
    #[arg(
        long = "password",
        env = "KMIP_PASSWORD",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub passwords: Vec<String>,
    /// Bind a KMIP user, on one certificate, to the identity it acts as:
    /// `USERNAME@CERTIFICATE=IDENTITY` (a FortiGate logging in as `fg-client` over the
    /// certificate `fortigate-1`: `fg-client@fortigate-1=firewalls`). The user needs a
    /// `--password`. Repeat, or separate with commas.
    #[arg(long = "bind-user", env = "KMIP_BIND_USER", value_delimiter = ',')]
    pub user_bindings: Vec<String>,
    /// Identities that must also send a KMIP Device credential: `IDENTITY=SERIAL` (the Device
    /// Serial Number) or `IDENTITY=SERIAL:HASH` (and the device's password, hashed with
    /// `kmip-server hash-password`). Repeat, or separate with commas.
    #[arg(long = "device", env = "KMIP_DEVICE", value_delimiter = ',')]
    pub devices: Vec<String>,
    /// Limit an identity to some operations: `IDENTITY=Create Get Encrypt Decrypt` (KMIP XML
    /// names, and Grant / ListGrants). Repeat for more identities.
    #[arg(long = "policy", env = "KMIP_POLICY", value_delimiter = ';')]
    pub policies: Vec<String>,
    /// Give an identity every object of an Object Group: `GROUP=IDENTITY:Get Encrypt Decrypt`.
    /// Repeat, or separate with semicolons.
    #[arg(long = "group-grant", env = "KMIP_GROUP_GRANT", value_delimiter = ';')]
    pub group_grants: Vec<String>,
    /// Give an identity every object in an application namespace (the Application Namespace
    /// of its Application Specific Information): `NAMESPACE=IDENTITY:Get Encrypt`. Repeat, or
    /// separate with semicolons.
    #[arg(
        long = "namespace-grant",
        env = "KMIP_NAMESPACE_GRANT",
        value_delimiter = ';'
    )]
    pub namespace_grants: Vec<String>,
    /// Dual control: objects of an Object Group need approvals from M administrators before
    /// the operations named run on them: `GROUP=M:Operation Operation ...` (KMIP XML names:
    /// `payments=2:Destroy Get Revoke`). Get is the key material leaving, plain or wrapped;
    /// attribute reads are never covered. Changing the Object Group, Extractable or Sensitive
    /// attribute of such an object needs the same approvals. Approvals come from distinct
    /// administrators (--admin), never the requester. A client setting the Asynchronous
    /// Indicator gets Operation Pending and polls; another is refused with Permission Denied
    /// naming the request, and its same request succeeds once approved. Repeat, or separate
    /// with semicolons.
    #[arg(long = "quorum", env = "KMIP_QUORUM", value_delimiter = ';')]
    pub quorums: Vec<String>,
    /// How long a dual-control request waits for its approvals before it expires.
    #[arg(long, env = "KMIP_QUORUM_PENDING_SECS", default_value_t = 24 * 3600)]
    pub quorum_pending_secs: u64,
    /// How long an approved dual-control request may wait to be used (Poll, or the same
    /// request again) after its last approval before it expires.
    #[arg(long, env = "KMIP_QUORUM_APPROVAL_SECS", default_value_t = 3600)]
    pub quorum_approval_secs: u64,
    /// Test mode: answer the Interop operation (test harnesses mark test cases with it). KMIP
    /// says a production server SHALL NOT offer it.
    #[arg(long, env = "KMIP_INTEROP")]
    pub interop: bool,
    /// Server policy: Derive Key may start from a Pre-Active key or password. KMIP forbids any
    /// cryptographic use of a Pre-Active object; PyKMIP's server allows derivation, and its
    /// client test suite relies on it.
    #[arg(long, env = "KMIP_DERIVE_FROM_PRE_ACTIVE")]
    pub derive_from_pre_active: bool,
    /// Server policy: a Name belongs to one object not destroyed among each owner's objects
    /// (Non Unique Name Attribute otherwise; a destroyed object's name may be taken again).
    /// KMIP says names are unique within a server; by default objects may share names, as
    /// every other KMIP server lets them and deployed clients expect (PyKMIP names every key
    /// "Symmetric Key", Create Key Pair's common Name names both halves). The rule is kept
    /// within one owner so that no identity can probe for, or squat, another's names, and
    /// only the owner (or an administrator) names an object, so that a grantee learns nothing
    /// of the owner's other names. One object never carries the same name twice, whatever
    /// the policy.
    #[arg(long, env = "KMIP_UNIQUE_NAMES")]
    pub unique_names: bool,
    /// Deprecated, no effect: objects share names by default (see --unique-names).
    #[arg(long, env = "KMIP_DUPLICATE_NAMES", hide = true)]
    pub duplicate_names: bool,
    /// Server policy, beyond KMIP (as PKCS#11's CKA_WRAP_WITH_TRUSTED): a Sensitive key
    /// leaves only wrapped by a key an administrator marked trusted (`kmip-admin
    /// trust-wrapping-key ID`). KMIP lets it leave wrapped by any key the caller may use,
    /// including one it registered itself and can unwrap with at home; that stays the default.
    #[arg(long, env = "KMIP_WRAP_TRUSTED_ONLY")]
    pub wrap_trusted_only: bool,
    /// The most PBKDF2 iterations one Derive Key may run: its Iteration Count times the number
    /// of hash-sized blocks of the derived key (one block for a key no longer than the hash).
    /// Above it Derive Key is refused with Invalid Field, so that a small request cannot buy
    /// hours of a core (an Iteration Count of 2^31-1 is about eight). The default, 5,000,000,
    /// is above what OWASP asks of PBKDF2 (1,300,000 with SHA-1, 600,000 with SHA-256).
    #[arg(
        long,
        env = "KMIP_MAX_PBKDF2_ITERATIONS",
        default_value_t = lifecycle::core::DEFAULT_MAX_PBKDF2_ITERATIONS
    )]
    pub max_pbkdf2_iterations: u32,
    /// Seconds one Locate may scan the objects its caller reaches before it stops with Server
    /// Limit Exceeded (General Failure for 1.x clients): criteria no index narrows cost a
    /// read per object, and an administrator's Locate over a million keys takes seconds.
    /// Maximum Items stops a scan sooner.
    #[arg(long, env = "KMIP_MAX_LOCATE_SECS", default_value_t = 10)]
    pub max_locate_secs: u64,
    /// Certificate profiles for Certify (TOML; see `kmip_server::ca`): they change or add to
    /// the built-in root, intermediate-ca, server, client, code-signing and email profiles.
    #[arg(long, env = "KMIP_CA_PROFILES")]
    pub ca_profiles: Option<PathBuf>,
    /// Shamir shares of the master key (after `master-split`): at least the threshold of them
    /// must be given at every start. Repeat the option, or separate shares with commas in the
    /// environment variable. Other local users can read a command line: prefer
    /// --master-share-file, or typing the shares at the prompt.
    #[arg(
        long = "unseal-share",
        env = "KMIP_UNSEAL_SHARE",
        hide_env_values = true,
        value_delimiter = ',',
        global = true
    )]
    pub unseal_shares: Vec<String>,
    /// A file holding one Shamir share of the master key (one line, as `master-split
    /// --out-dir` writes it; readable by its owner only). Repeat, one per custodian, or
    /// separate with commas in the environment variable. Unlike --unseal-share, the share is
    /// not in the command line, which other local users can read. On a terminal, shares still
    /// missing are asked for, one custodian at a time.
    #[arg(
        long = "master-share-file",
        env = "KMIP_MASTER_SHARE_FILE",
        value_delimiter = ',',
        global = true
    )]
    pub master_share_files: Vec<PathBuf>,
    /// Where the master key is kept (for the server, and for the commands that read it:
    /// `audit`, `master-split`, `master-rotate`, `seal migrate`): `file` (DATA_DIR/master.key),
    /// `shares` (the custodians' shares at every start) or `pkcs11` (DATA_DIR/master.sealed,
    /// which only an AES key in a PKCS#11 token opens: --pkcs11-module, --pkcs11-token,
    /// --pkcs11-pin-file, --pkcs11-key). By default `shares` when shares are given or the data
    /// directory's key was split (DATA_DIR/master.shares, no master.key), `file` otherwise.
    #[arg(long, env = "KMIP_SEAL", value_enum, global = true)]
    pub seal: Option<SealKind>,
    /// The PKCS#11 module (shared library) of --seal pkcs11, e.g.
    /// /usr/lib/softhsm/libsofthsm2.so.
    #[arg(long, env = "KMIP_PKCS11_MODULE", global = true)]
    pub pkcs11_module: Option<PathBuf>,
    /// The label of the token that holds the sealing key (found by label: slot numbers change).
    #[arg(long, env = "KMIP_PKCS11_TOKEN", global = true)]
    pub pkcs11_token: Option<String>,
    /// A file with the token's user PIN on its first line, read once at start; others must not
    /// be able to read it.
    #[arg(long, env = "KMIP_PKCS11_PIN_FILE", global = true)]
    pub pkcs11_pin_file: Option<PathBuf>,
    /// The label of the token's AES key that seals the master key; created (sensitive, not
    /// extractable, encrypt and decrypt only) at first start when the token has none.
    #[arg(
        long,
        env = "KMIP_PKCS11_KEY",
        default_value = "kmip-server master seal",
        global = true
    )]
    pub pkcs11_key: String,
}

impl Config {
    /// Which custody the options choose (see --seal).
    pub fn seal_kind(&self) -> SealKind {
        let split = || {
            // a key split by master-split, whose key file is gone as it should be: the
            // custodians' shares are what opens it, typed at a prompt when none is given
            !self.data_dir.join("master.key").exists()
                && self.data_dir.join("master.shares").exists()
        };
        self.seal.unwrap_or(
            if self.unseal_shares.is_empty() && self.master_share_files.is_empty() && !split() {
                SealKind::File
            } else {
                SealKind::Shares
            },
        )
    }

    /// The custody of the master key that the options describe, the one place that chooses
    /// it. Options of another custody are refused rather than ignored: a forgotten
    /// `--seal pkcs11` would otherwise write a key file at first start.
    pub fn master_seal(&self) -> Result<Box<dyn Seal>, SealError> {
        let kind = self.seal_kind();
        let conflict = |option: &'static str| SealError::Config {
            option,
            reason: format!(
                "belongs to another seal than --seal {}",
                match kind {
                    SealKind::File => "file",
                    SealKind::Shares => "shares",
                    SealKind::Pkcs11 => "pkcs11",
                }
            ),
        };
        if kind != SealKind::Shares && !self.unseal_shares.is_empty() {
            return Err(conflict("--unseal-share"));
        }
        if kind != SealKind::Shares && !self.master_share_files.is_empty() {
            return Err(conflict("--master-share-file"));
        }
        if kind != SealKind::Pkcs11 {
            if self.pkcs11_module.is_some() {
                return Err(conflict("--pkcs11-module"));
            }
            if self.pkcs11_token.is_some() {
                return Err(conflict("--pkcs11-token"));
            }
            if self.pkcs11_pin_file.is_some() {
                return Err(conflict("--pkcs11-pin-file"));
            }
        }
        self.seal_for(kind)
    }

    /// The custody `kind` with its options, whatever --seal says and without refusing the
    /// options of another custody: `seal migrate` reads one custody and writes another.
    pub fn seal_for(&self, kind: SealKind) -> Result<Box<dyn Seal>, SealError> {
        Ok(match kind {
            SealKind::File => Box::new(FileSeal::new(&self.data_dir)),
            SealKind::Shares => {
                let shares = self.given_shares()?;
                if shares.is_empty() {
                    return Err(SealError::Config {
                        option: "--master-share-file",
                        reason: "the shares seal needs the shares: --master-share-file (one per \
                                 custodian), or a terminal to type them at"
                            .into(),
                    });
                }
                Box::new(ShareSeal::with_shares(&self.data_dir, shares))
            }
            SealKind::Pkcs11 => {
                let missing = |option: &'static str, env: &str| SealError::Config {
                    option,
                    reason: format!("--seal pkcs11 needs it (or {env})"),
                };
                let opts = Pkcs11Options {
                    module: self
                        .pkcs11_module
                        .clone()
                        .ok_or_else(|| missing("--pkcs11-module", "KMIP_PKCS11_MODULE"))?,
                    token: self
                        .pkcs11_token
                        .clone()
                        .ok_or_else(|| missing("--pkcs11-token", "KMIP_PKCS11_TOKEN"))?,
                    pin_file: self
                        .pkcs11_pin_file
                        .clone()
                        .ok_or_else(|| missing("--pkcs11-pin-file", "KMIP_PKCS11_PIN_FILE"))?,
                    key: self.pkcs11_key.clone(),
                };
                Box::new(Pkcs11Seal::new(&self.data_dir, &opts)?)
            }
        })
    }

    /// The shares given on the command line and in files (no prompt), files checked as key
    /// files are.
    pub fn given_shares(&self) -> Result<Vec<Share>, SealError> {
        let mut shares = self
            .unseal_shares
            .iter()
            .map(|s| Share::from_text(s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SealError::Config {
                option: "--unseal-share",
                reason: e.to_string(),
            })?;
        for f in &self.master_share_files {
            shares.push(lifecycle::core::read_share_file(f)?);
        }
        Ok(shares)
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }
    pub fn read_timeout(&self) -> Duration {
        Duration::from_secs(self.read_timeout_secs)
    }
    /// The handshake deadline: --handshake-timeout-secs, and never more than the read timeout.
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.handshake_timeout_secs.min(self.read_timeout_secs))
    }
}

/// Environment variables named before every option's variable was `KMIP_` and its long name
/// (`--admin`: `KMIP_ADMIN`): (old, new). Deployments that set the old ones go on working.
pub const LEGACY_ENV: &[(&str, &str)] = &[
    ("KMIP_ADMINS", "KMIP_ADMIN"),
    ("KMIP_PASSWORDS", "KMIP_PASSWORD"),
    ("KMIP_BIND_USERS", "KMIP_BIND_USER"),
    ("KMIP_DEVICES", "KMIP_DEVICE"),
    ("KMIP_POLICIES", "KMIP_POLICY"),
    ("KMIP_GROUP_GRANTS", "KMIP_GROUP_GRANT"),
    ("KMIP_NAMESPACE_GRANTS", "KMIP_NAMESPACE_GRANT"),
    ("KMIP_UNSEAL_SHARES", "KMIP_UNSEAL_SHARE"),
    ("KMIP_HANDSHAKE_TIMEOUT", "KMIP_HANDSHAKE_TIMEOUT_SECS"),
    ("KMIP_IDLE_TIMEOUT", "KMIP_IDLE_TIMEOUT_SECS"),
    ("KMIP_READ_TIMEOUT", "KMIP_READ_TIMEOUT_SECS"),
];

/// Give each old variable's value to its new name where the new one is not set (the new one
/// wins): the notes to print about the old names in use. Call it before any thread starts:
/// it changes this process's environment.
pub fn apply_legacy_env() -> Vec<String> {
    let mut notes = Vec::new();
    for (old, new) in LEGACY_ENV {
        let Some(value) = std::env::var_os(old) else {
            continue;
        };
        if std::env::var_os(new).is_none() {
            std::env::set_var(new, value);
            notes.push(format!("{old} is read as {new}, its new name"));
        } else {
            notes.push(format!("{old} is ignored: {new} is set"));
        }
    }
    notes
}

/// The command line with the configuration file's options put first, so that options given on
/// the command line (which clap reads last) win; options whose environment variable is set are
/// left out so that the environment wins over the file.
pub fn args_with_file(
    cmd: &clap::Command,
    args: Vec<std::ffi::OsString>,
) -> Result<Vec<std::ffi::OsString>, String> {
    let file = find_config(&args).or_else(|| std::env::var_os("KMIP_CONFIG").map(PathBuf::from));
    let Some(file) = file else { return Ok(args) };
    let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("{}: {e}", file.display()))?;
    let mut from_file = Vec::new();
    for (key, value) in table {
        // the client tools' options (kmip-admin, kmip-ca): one file configures both sides
        if key == "client" && value.is_table() {
            continue;
        }
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(key.as_str()))
            .ok_or_else(|| format!("{}: unknown option {key:?}", file.display()))?;
        if arg.get_env().is_some_and(|e| std::env::var_os(e).is_some()) || key == "config" {
            continue;
        }
        // a list on the command line replaces the file's rather than adding to it, as a
        // single value does
        if given_on_command_line(&args, &key) {
            continue;
        }
        let values: Vec<String> = match value {
            toml::Value::Array(a) => a
                .into_iter()
                .map(|v| scalar(&key, v))
                .collect::<Result<_, _>>()?,
            v => vec![scalar(&key, v)?],
        };
        for v in values {
            from_file.push(format!("--{key}={v}").into());
        }
    }
    let mut out = vec![args[0].clone()];
    out.extend(from_file);
    out.extend(args.into_iter().skip(1));
    Ok(out)
}

fn given_on_command_line(args: &[std::ffi::OsString], long: &str) -> bool {
    let (bare, with_value) = (format!("--{long}"), format!("--{long}="));
    args.iter().skip(1).any(|a| {
        let a = a.to_string_lossy();
        a == bare || a.starts_with(&with_value)
    })
}

fn scalar(key: &str, v: toml::Value) -> Result<String, String> {
    match v {
        toml::Value::String(s) => Ok(s),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        other => Err(format!("option {key:?}: unsupported value {other}")),
    }
}

fn find_config(args: &[std::ffi::OsString]) -> Option<PathBuf> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let s = a.to_string_lossy();
        if s == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(v) = s.strip_prefix("--config=") {
            return Some(PathBuf::from(v));
        }
    }
    None
}

/// What requests are checked against: the running shape of the configuration, built once
/// at start from [`Config`] (and the policy and profile files it names).
pub struct Settings {
    pub max_batch_items: usize,
    pub decode: Limits,
    pub credentials: crate::policy::Credentials,
    /// Operations each listed identity is limited to; identities not listed may do anything.
    pub policies: std::collections::HashMap<String, Vec<u32>>,
    /// Test mode: the Interop operation answers.
    pub interop: bool,
    /// Certificate profiles for Certify.
    pub profiles: crate::ca::Profiles,
    /// How long the Locates of one message may scan before they answer Server Limit Exceeded.
    pub max_locate_time: Duration,
    /// Largest answer one message may build; the items after it answer Response Too Large.
    pub max_response_bytes: usize,
    /// The data directory, where Backup writes (`backups/`) and finds the master key's check
    /// value; `None` (a server without one, in tests) refuses Backup.
    pub data_dir: Option<std::path::PathBuf>,
    /// Dual control: the groups whose operations need approvals, and how long requests live.
    pub quorum: crate::quorum::Quorum,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches, Parser};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: Config,
    }

    #[test]
    fn file_then_environment_then_command_line() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("kmip.toml");
        std::fs::write(
            &f,
            "listen = \"127.0.0.1:7000\"\nmax-connections = 7\nmax-batch-items = 9\n",
        )
        .unwrap();
        let cmd = Cli::command().args_override_self(true);
        let argv = |extra: &[&str]| -> Vec<std::ffi::OsString> {
            let mut v: Vec<std::ffi::OsString> =
                vec!["kmip-server".into(), "--config".into(), f.clone().into()];
            v.extend(extra.iter().map(|s| s.into()));
            v
        };
        let parse = |args: Vec<std::ffi::OsString>| {
            let m = cmd
                .clone()
                .get_matches_from(args_with_file(&cmd, args).unwrap());
            Cli::from_arg_matches(&m).unwrap().config
        };
        let c = parse(argv(&[]));
        assert_eq!(
            (c.listen.as_slice(), c.max_connections, c.max_batch_items),
            (&["127.0.0.1:7000".to_owned()][..], 7, 9)
        );
        let c = parse(argv(&["--max-connections", "8"]));
        assert_eq!(c.max_connections, 8, "the command line wins");
        assert_eq!(c.max_batch_items, 9);
        std::fs::write(&f, "no-such-option = 1\n").unwrap();
        assert!(args_with_file(&cmd, argv(&[])).is_err());
    }

    #[test]
    fn every_option_is_its_environment_variable() {
        let cmd = Cli::command();
        let mut checked = 0;
        for arg in cmd.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if matches!(long, "help" | "version") {
                continue;
            }
            let expected = format!("KMIP_{}", long.to_uppercase().replace('-', "_"));
            assert_eq!(
                arg.get_env().and_then(|e| e.to_str()),
                Some(expected.as_str()),
                "--{long}"
            );
            checked += 1;
        }
        assert!(checked > 40, "{checked} options");
        for (old, new) in LEGACY_ENV {
            assert!(
                cmd.get_arguments()
                    .any(|a| a.get_env().and_then(|e| e.to_str()) == Some(*new)),
                "{old} -> {new}: no option reads {new}"
            );
        }
    }

    #[test]
    fn the_command_line_replaces_a_list_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("kmip.toml");
        std::fs::write(&f, "listen = [\"127.0.0.1:7000\", \"[::1]:7000\"]\n").unwrap();
        let cmd = Cli::command().args_override_self(true);
        let parse = |extra: &[&str]| {
            let mut v: Vec<std::ffi::OsString> =
                vec!["kmip-server".into(), "--config".into(), f.clone().into()];
            v.extend(extra.iter().map(|s| s.into()));
            let m = cmd
                .clone()
                .get_matches_from(args_with_file(&cmd, v).unwrap());
            Cli::from_arg_matches(&m).unwrap().config.listen
        };
        assert_eq!(parse(&[]), ["127.0.0.1:7000", "[::1]:7000"]);
        assert_eq!(
            parse(&["--listen", "127.0.0.1:1", "--listen=[::1]:1"]),
            ["127.0.0.1:1", "[::1]:1"]
        );
    }

    #[test]
    fn one_custody_is_chosen_and_other_custodies_options_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let parse = |extra: &[&str]| {
            let mut v = vec!["kmip-server", "--data-dir", dir.path().to_str().unwrap()];
            v.extend(extra);
            Cli::try_parse_from(v).unwrap().config
        };
        let err = |c: Config| {
            c.master_seal()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert_eq!(parse(&[]).seal_kind(), SealKind::File);
        let share = "1-00112233";
        assert_eq!(
            parse(&["--unseal-share", share]).seal_kind(),
            SealKind::Shares
        );
        assert!(err(parse(&["--seal", "file", "--unseal-share", share])).contains("--unseal-share"));
        // a forgotten --seal pkcs11 would write a key file at first start
        assert!(err(parse(&["--pkcs11-module", "/x.so"])).contains("--pkcs11-module"));
        let e = err(parse(&["--seal", "pkcs11", "--pkcs11-module", "/x.so"]));
        assert!(e.contains("--pkcs11-token"), "{e}");
        assert!(err(parse(&["--seal", "shares"])).contains("--master-share-file"));
        assert!(parse(&[]).master_seal().is_ok());
    }
}
