//! `kmip-ttlv`: look inside KMIP messages, as `openssl asn1parse` does for DER.
//!
//!   kmip-ttlv decode [FILE] [--hex] [--format xml|json]   TTLV (binary or hex) -> XML/JSON
//!   kmip-ttlv encode [FILE] [--hex] [--format xml|json]   XML/JSON -> TTLV (binary or hex)
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

use clap::{Parser, Subcommand, ValueEnum};
use kmip_codec::{decode, encode, json, text, xml, Limits};
use std::io::{Read, Write};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "kmip-ttlv",
    about = "Decode and encode KMIP TTLV, XML and JSON",
    version
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Xml,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Read TTLV and print it as KMIP XML or JSON.
    Decode {
        /// Input file; standard input when absent.
        file: Option<std::path::PathBuf>,
        /// The input is hex text (whitespace ignored) rather than binary.
        #[arg(long)]
        hex: bool,
        #[arg(long, value_enum, default_value = "xml")]
        format: Format,
    },
    /// Read KMIP XML or JSON and write TTLV.
    Encode {
        file: Option<std::path::PathBuf>,
        /// Write hex text rather than binary.
        #[arg(long)]
        hex: bool,
        #[arg(long, value_enum, default_value = "xml")]
        format: Format,
    },
}

fn read_input(file: &Option<std::path::PathBuf>) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    match file {
        Some(p) => buf = std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?,
        None => {
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(|e| format!("standard input: {e}"))?;
        }
    }
    Ok(buf)
}

fn run(cli: Cli) -> Result<(), String> {
    let limits = Limits::default();
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::Decode { file, hex, format } => {
            let mut input = read_input(&file)?;
            if hex {
                let s: String = String::from_utf8_lossy(&input)
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .collect();
                input = text::unhex(&s).ok_or("input is not hex")?;
            }
            let mut rest = input.as_slice();
            while !rest.is_empty() {
                let (item, used) = decode(rest, &limits)
                    .map_err(|e| format!("at byte {}: {e}", input.len() - rest.len()))?;
                let rendered = match format {
                    Format::Xml => xml::to_xml(&item),
                    Format::Json => json::to_json_pretty(&item) + "\n",
                };
                out.write_all(rendered.as_bytes())
                    .map_err(|e| e.to_string())?;
                rest = &rest[used..];
            }
        }
        Command::Encode { file, hex, format } => {
            let input = read_input(&file)?;
            let s = String::from_utf8(input).map_err(|_| "input is not UTF-8")?;
            let items = match format {
                Format::Xml => xml::from_xml_document(&s, &limits).map_err(|e| e.to_string())?,
                Format::Json => vec![json::from_json(&s, &limits).map_err(|e| e.to_string())?],
            };
            for item in items {
                let bytes = encode(&item);
                if hex {
                    writeln!(out, "{}", text::hex(&bytes)).map_err(|e| e.to_string())?;
                } else {
                    out.write_all(&bytes).map_err(|e| e.to_string())?;
                }
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kmip-ttlv: {e}");
            ExitCode::FAILURE
        }
    }
}
