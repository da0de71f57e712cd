//! One way for every tool (`kmip-admin`, `kmip-ca`, `kmip-bench`) to say which server to reach
//! and as whom: `--server HOST:PORT`, `--client-cert`, `--client-key`, `--server-ca`, or a
//! kmip-server data directory on this host (`--data-dir`, `--identity`). Each option is also
//! its environment variable, `KMIP_` and its long name in upper snake case, and a key of the
//! `[client]` table of a `--config` file: the TOML file kmip-server reads, whose top-level keys
//! are the server's and which skips that table. The command line wins over the environment,
//! which wins over the file.

use crate::{Client, ClientError, Identity};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The address used when neither an option, a variable nor the file names one.
pub const DEFAULT_SERVER: &str = "localhost:5696";
/// The identity in `--data-dir` used when none is named.
pub const DEFAULT_IDENTITY: &str = "admin";

/// Why the connection options do not say how to connect.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The `--config` file could not be read.
    #[error("--config {path}: {source}")]
    ReadConfig {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The `--config` file is not TOML, or its `[client]` table is not a table of strings.
    #[error("--config {path}: {reason}")]
    BadConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        reason: String,
    },
    /// `--server` is not `HOST:PORT`.
    #[error("--server {0:?}: not HOST:PORT (an IPv6 address in brackets: [::1]:5696)")]
    BadServer(String),
    /// A certificate, key or CA is named nowhere.
    #[error("no {what}: give --{option} (or KMIP_{env}, or `{option}` in the [client] table of --config), or --data-dir")]
    Missing {
        /// What is missing, for people.
        what: &'static str,
        /// The long option that gives it.
        option: &'static str,
        /// Its environment variable, without `KMIP_`.
        env: &'static str,
    },
}

/// How to reach a KMIP server and as whom: flatten it into a tool's clap definition.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ConnectionArgs {
    /// A TOML file whose `[client]` table gives the options below, keyed by their long names
    /// (`server = "kms.example:5696"`, `client-cert = "/etc/kmip/admin.pem"`): the file
    /// kmip-server reads serves both. The command line wins over the environment, which wins
    /// over the file.
    #[arg(long, env = "KMIP_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The KMIP server, HOST:PORT ([ADDRESS]:PORT for IPv6) [default: localhost:5696]. Its
    /// certificate must name HOST.
    #[arg(long, env = "KMIP_SERVER", global = true, value_name = "HOST:PORT")]
    pub server: Option<String>,
    /// The client certificate (PEM, with its chain).
    #[arg(long, env = "KMIP_CLIENT_CERT", global = true, value_name = "FILE")]
    pub client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, env = "KMIP_CLIENT_KEY", global = true, value_name = "FILE")]
    pub client_key: Option<PathBuf>,
    /// The CA certificates (PEM) the server's certificate must chain to.
    #[arg(long, env = "KMIP_SERVER_CA", global = true, value_name = "FILE")]
    pub server_ca: Option<PathBuf>,
    /// A kmip-server data directory on this host: its tls/ca.pem, tls/IDENTITY.pem and
    /// tls/IDENTITY.key stand for the files not named otherwise.
    #[arg(long, env = "KMIP_DATA_DIR", global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The identity whose certificate --data-dir holds [default: admin].
    #[arg(
        long,
        visible_alias = "as",
        env = "KMIP_IDENTITY",
        global = true,
        value_name = "NAME"
    )]
    pub identity: Option<String>,
}

/// Where to connect and with which files, every option resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `HOST:PORT` as given, for messages.
    pub server: String,
    /// The host, without the brackets of an IPv6 address.
    pub host: String,
    pub port: u16,
    pub server_ca: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// The kmip-server data directory on this host, when one was named.
    pub data_dir: Option<PathBuf>,
}

/// The `[client]` table's keys: the long names, and the visible aliases. No short `--cert`,
/// `--key`, `--ca`: kmip-ca's `--key` is a key type.
const KEYS: &[(&str, &str)] = &[
    ("server", "server"),
    ("client-cert", "client-cert"),
    ("client-key", "client-key"),
    ("server-ca", "server-ca"),
    ("data-dir", "data-dir"),
    ("identity", "identity"),
    ("as", "identity"),
];

impl ConnectionArgs {
    /// The options, with the `[client]` table of `--config` filling those the command line
    /// and the environment leave out, and `--data-dir` the files named nowhere.
    pub fn resolve(&self) -> Result<Endpoint, ConnectionError> {
        let file = match &self.config {
            Some(path) => read_client_table(path)?,
            None => Default::default(),
        };
        let text =
            |given: &Option<String>, key: &str| given.clone().or_else(|| file.get(key).cloned());
        let path = |given: &Option<PathBuf>, key: &str| {
            given.clone().or_else(|| file.get(key).map(PathBuf::from))
        };
        let server = text(&self.server, "server").unwrap_or_else(|| DEFAULT_SERVER.into());
        let (host, port) = split_server(&server)?;
        let data_dir = path(&self.data_dir, "data-dir");
        let identity = text(&self.identity, "identity").unwrap_or_else(|| DEFAULT_IDENTITY.into());
        let tls = data_dir.as_ref().map(|d| d.join("tls"));
        let pick = |given: Option<PathBuf>,
                    file_name: String,
                    what: &'static str,
                    option: &'static str,
                    env: &'static str| {
            given
                .or_else(|| tls.as_ref().map(|t| t.join(file_name)))
                .ok_or(ConnectionError::Missing { what, option, env })
        };
        Ok(Endpoint {
            server_ca: pick(
                path(&self.server_ca, "server-ca"),
                "ca.pem".into(),
                "server CA",
                "server-ca",
                "SERVER_CA",
            )?,
            client_cert: pick(
                path(&self.client_cert, "client-cert"),
                format!("{identity}.pem"),
                "client certificate",
                "client-cert",
                "CLIENT_CERT",
            )?,
            client_key: pick(
                path(&self.client_key, "client-key"),
                format!("{identity}.key"),
                "client key",
                "client-key",
                "CLIENT_KEY",
            )?,
            host,
            port,
            server,
            data_dir,
        })
    }
}

impl Endpoint {
    /// Connect and finish the TLS handshake.
    pub fn connect(&self) -> Result<Client, ClientError> {
        Client::connect(
            &self.host,
            self.port,
            &Identity {
                ca: &self.server_ca,
                cert: Some(&self.client_cert),
                key: Some(&self.client_key),
            },
        )
    }
}

/// `HOST:PORT` or `[V6]:PORT`: the host (brackets removed) and the port.
pub fn split_server(server: &str) -> Result<(String, u16), ConnectionError> {
    let bad = || ConnectionError::BadServer(server.to_owned());
    let (host, port) = server.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host = match host.strip_prefix('[') {
        Some(h) => h.strip_suffix(']').ok_or_else(bad)?,
        // an IPv6 address without brackets would lose its last group to the port
        None if host.contains(':') => return Err(bad()),
        None => host,
    };
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

/// The `[client]` table of a config file, by long option name (aliases mapped to it). A file
/// without the table gives nothing; an unknown key or a value that is not a string is an
/// error, as the server refuses unknown options in its part.
fn read_client_table(
    path: &Path,
) -> Result<std::collections::HashMap<String, String>, ConnectionError> {
    let bad = |reason: String| ConnectionError::BadConfig {
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|source| ConnectionError::ReadConfig {
        path: path.to_owned(),
        source,
    })?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| bad(e.to_string()))?;
    let Some(client) = table.get("client") else {
        return Ok(Default::default());
    };
    let client = client
        .as_table()
        .ok_or_else(|| bad("`client` must be a table ([client])".into()))?;
    let mut out = std::collections::HashMap::new();
    for (key, value) in client {
        let (_, long) = KEYS
            .iter()
            .find(|(k, _)| k == key)
            .ok_or_else(|| bad(format!("[client]: unknown option {key:?}")))?;
        let value = value
            .as_str()
            .ok_or_else(|| bad(format!("[client] {key}: a string is expected")))?;
        out.insert((*long).to_owned(), value.to_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        conn: ConnectionArgs,
    }

    #[test]
    fn every_option_is_its_environment_variable_and_a_client_table_key() {
        for arg in Cli::command().get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if matches!(long, "help" | "version") {
                continue;
            }
            let env = format!("KMIP_{}", long.to_uppercase().replace('-', "_"));
            assert_eq!(
                arg.get_env().and_then(|e| e.to_str()),
                Some(env.as_str()),
                "--{long}"
            );
            if long != "config" {
                assert!(KEYS.iter().any(|(k, l)| *k == long && *l == long), "{long}");
            }
            for alias in arg.get_visible_aliases().unwrap_or_default() {
                assert!(
                    KEYS.iter().any(|(k, l)| *k == alias && *l == long),
                    "{alias}"
                );
            }
        }
    }

    #[test]
    fn servers() {
        assert_eq!(split_server("h:1").unwrap(), ("h".into(), 1));
        assert_eq!(split_server("[::1]:5696").unwrap(), ("::1".into(), 5696));
        for bad in ["h", "h:x", "::1:5696", ":5696", "[::1:5696", "h:70000"] {
            assert!(split_server(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn command_line_then_file_then_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("kmip.toml");
        std::fs::write(
            &f,
            "listen = \"0.0.0.0:5696\"\n[client]\nserver = \"kms:7000\"\nclient-cert = \"/f/c.pem\"\n\
             data-dir = \"/d\"\nas = \"ops\"\n",
        )
        .unwrap();
        let parse = |extra: &[&str]| {
            let mut v = vec!["t", "--config", f.to_str().unwrap()];
            v.extend(extra);
            Cli::try_parse_from(v).unwrap().conn.resolve()
        };
        let e = parse(&[]).unwrap();
        assert_eq!((e.host.as_str(), e.port), ("kms", 7000));
        assert_eq!(e.client_cert, PathBuf::from("/f/c.pem"), "the file's own");
        assert_eq!(
            e.client_key,
            PathBuf::from("/d/tls/ops.key"),
            "from data-dir"
        );
        assert_eq!(e.server_ca, PathBuf::from("/d/tls/ca.pem"));
        let e = parse(&["--server", "[::1]:1", "--client-cert", "/c/x.pem"]).unwrap();
        assert_eq!(
            (e.host.as_str(), e.port),
            ("::1", 1),
            "the command line wins"
        );
        assert_eq!(e.client_cert, PathBuf::from("/c/x.pem"));

        std::fs::write(&f, "[client]\nport = 1\n").unwrap();
        let err = parse(&[]).unwrap_err().to_string();
        assert!(err.contains("port") && err.contains("kmip.toml"), "{err}");
        std::fs::write(&f, "listen = \"x\"\n").unwrap();
        let err = parse(&[]).unwrap_err().to_string();
        assert!(
            err.contains("--server-ca") && err.contains("KMIP_SERVER_CA"),
            "{err}"
        );
    }
}
