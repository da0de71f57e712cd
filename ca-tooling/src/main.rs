//! kmip-ca: run certificate authorities whose private keys live in a KMIP server.
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

use ca_tooling::commands::*;
use ca_tooling::Connection;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "kmip-ca",
    version,
    about = "Certificate authorities whose keys never leave the KMIP server"
)]
struct Cli {
    #[command(flatten)]
    conn: Connection,
    /// Machine-readable results (JSON) on standard output.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a root CA: key in the server, self-signed certificate.
    InitRoot(init_root::Args),
    /// Create an intermediate CA signed by a CA in the server.
    InitIntermediate(init_intermediate::Args),
    /// Issue a leaf certificate for a key pair generated in the server.
    Issue(issue::Args),
    /// Sign a PKCS#10 certificate request.
    Sign(sign::Args),
    /// Renew a certificate: same key and names, new serial and validity.
    Renew(renew::Args),
    /// Revoke a certificate.
    Revoke(revoke::Args),
    /// Publish a new CRL of a CA.
    Crl(crl::Args),
    /// List certificates.
    List(list::Args),
    /// Show one certificate.
    Show(show::Args),
    /// Export a certificate, its chain, or a PKCS#12.
    Export(export::Args),
}

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(written) = cli_docs::answer(&args, <Cli as clap::CommandFactory>::command) {
        return match written {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("kmip-ca: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let cli = Cli::parse_from(args);
    let (c, j) = (&cli.conn, cli.json);
    let result = match cli.command {
        Command::InitRoot(a) => init_root::run(a, c, j),
        Command::InitIntermediate(a) => init_intermediate::run(a, c, j),
        Command::Issue(a) => issue::run(a, c, j),
        Command::Sign(a) => sign::run(a, c, j),
        Command::Renew(a) => renew::run(a, c, j),
        Command::Revoke(a) => revoke::run(a, c, j),
        Command::Crl(a) => crl::run(a, c, j),
        Command::List(a) => list::run(a, c, j),
        Command::Show(a) => show::run(a, c, j),
        Command::Export(a) => export::run(a, c, j),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if j {
                println!("{}", serde_json::json!({"error": e.0}));
            }
            eprintln!("kmip-ca: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_options_of_every_subcommand_agree() {
        // the shared connection options and a subcommand's own must not take the same name
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
