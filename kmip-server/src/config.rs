//! Configuration: command-line options, each also readable from an environment variable.

use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug, Args)]
pub struct Config {
    /// Where the store, the master key and the generated TLS material live.
    #[arg(
        long,
        env = "KMIP_DATA_DIR",
        default_value = "./kmip-data",
        global = true
    )]
    pub data_dir: PathBuf,
    /// Address and port to listen on.
    #[arg(long, env = "KMIP_LISTEN", default_value = "0.0.0.0:5696")]
    pub listen: String,
    /// Server certificate (PEM); with --tls-key and --client-ca it replaces the generated PKI.
    #[arg(long, env = "KMIP_TLS_CERT", requires_all = ["tls_key", "client_ca"])]
    pub tls_cert: Option<PathBuf>,
    /// Server private key (PEM).
    #[arg(long, env = "KMIP_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// CA certificates (PEM) that client certificates must chain to.
    #[arg(long, env = "KMIP_CLIENT_CA", requires = "tls_cert")]
    pub client_ca: Option<PathBuf>,
    /// Largest message accepted, in bytes.
    #[arg(long, env = "KMIP_MAX_MESSAGE_BYTES", default_value_t = 1024 * 1024)]
    pub max_message_bytes: usize,
    /// Most batch items in one message.
    #[arg(long, env = "KMIP_MAX_BATCH_ITEMS", default_value_t = 1000)]
    pub max_batch_items: usize,
    /// Most connections served at once; more are closed on arrival.
    #[arg(long, env = "KMIP_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// Seconds a connection may stay silent between messages.
    #[arg(long, env = "KMIP_IDLE_TIMEOUT", default_value_t = 300)]
    pub idle_timeout_secs: u64,
    /// Seconds a client has to send a whole message (and to finish the TLS handshake).
    #[arg(long, env = "KMIP_READ_TIMEOUT", default_value_t = 10)]
    pub read_timeout_secs: u64,
    #[arg(long, env = "KMIP_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Shamir shares of the master key (after `master-split`): at least the threshold of them
    /// must be given at every start. Repeat the option, or separate shares with commas in the
    /// environment variable.
    #[arg(
        long = "unseal-share",
        env = "KMIP_UNSEAL_SHARES",
        value_delimiter = ','
    )]
    pub unseal_shares: Vec<String>,
}

impl Config {
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }
    pub fn read_timeout(&self) -> Duration {
        Duration::from_secs(self.read_timeout_secs)
    }
}
