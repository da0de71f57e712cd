//! `kmip-replay --host H --port P --ca CA --cert CERT --key KEY FILE...`: replay OASIS KMIP XML
//! test cases against any KMIP server over mutual TLS; PASS or FAIL per file (with the first
//! difference), then `N passed, M failed`. Each file gets its own connection.
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut host, mut port) = ("localhost".to_owned(), 5696u16);
    let (mut ca, mut cert, mut key): (Option<PathBuf>, Option<PathBuf>, Option<PathBuf>) =
        (None, None, None);
    let mut files = Vec::new();
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_default();
        match a.as_str() {
            "--host" => host = value(),
            "--port" => port = value().parse().unwrap_or(5696),
            "--ca" => ca = Some(value().into()),
            "--cert" => cert = Some(value().into()),
            "--key" => key = Some(value().into()),
            _ => files.push(PathBuf::from(a)),
        }
    }
    let Some(ca) = ca else {
        eprintln!("usage: kmip-replay --host H --port P --ca CA.pem --cert CERT.pem --key KEY.pem FILE...");
        return ExitCode::FAILURE;
    };
    let (mut passed, mut failed) = (0, 0);
    for f in &files {
        let id = kmip_client::Identity {
            ca: &ca,
            cert: cert.as_deref(),
            key: key.as_deref(),
        };
        let result = std::fs::read_to_string(f)
            .map_err(|e| e.to_string())
            .and_then(|text| {
                let mut c =
                    kmip_client::Client::connect(&host, port, &id).map_err(|e| e.to_string())?;
                interop_tests::replay::replay(&mut c, &text)
            });
        match result {
            Ok(n) => {
                passed += 1;
                println!("PASS {} ({n} exchanges)", f.display());
            }
            Err(e) => {
                failed += 1;
                println!("FAIL {}: {e}", f.display());
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
