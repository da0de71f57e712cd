//! `export`: a certificate or its chain as PEM or DER, or a PKCS#12 that holds the private key
//! only when the server lets that key out (never a CA's, never a non-extractable one).

use crate::{Connection, Result};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
    pub id: String,
    /// pem, der or p12.
    #[arg(long, default_value = "pem")]
    pub format: String,
    /// With the issuing CAs (PEM and PKCS#12).
    #[arg(long)]
    pub chain: bool,
    /// PKCS#12: read the password from the first line of this file (without it, it is asked
    /// for at the terminal). A PKCS#12 always has a password.
    #[arg(long, env = "KMIP_CA_P12_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,
    /// Refused: a password on the command line is visible to every user of the machine.
    #[arg(long, hide = true)]
    pub password: Option<String>,
    /// Write here (a PKCS#12 is created with mode 0600).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The PKCS#12 password: the first line of `file`, or typed twice at the terminal (not
/// echoed). Never empty; never from the command line.
fn p12_password(file: Option<&Path>) -> Result<String> {
    let password = match file {
        Some(f) => {
            let text = std::fs::read_to_string(f)
                .map_err(|e| crate::Error(format!("{}: {e}", f.display())))?;
            text.lines().next().unwrap_or_default().to_owned()
        }
        None => {
            if !std::io::stdin().is_terminal() {
                return crate::fail(
                    "a PKCS#12 needs a password: give --password-file FILE, or run at a terminal \
                     to type it",
                );
            }
            let first = crate::prompt_hidden("PKCS#12 password: ")?;
            let again = crate::prompt_hidden("the same again: ")?;
            if first != again {
                return crate::fail("the passwords differ");
            }
            first
        }
    };
    if password.is_empty() {
        return crate::fail("a PKCS#12 needs a password; it is empty");
    }
    Ok(password)
}

pub fn run(a: Args, conn: &Connection, json: bool) -> Result<()> {
    if a.password.is_some() {
        return crate::fail(
            "--password is refused: a password on the command line is visible to every user; \
             give --password-file FILE or type it at the prompt",
        );
    }
    let password = match a.format.as_str() {
        "p12" => Some(p12_password(a.password_file.as_deref())?),
        _ => None,
    };
    let mut kmip = conn.connect()?;
    let leaf = kmip.certificate(&a.id)?;
    let mut chain = Vec::new();
    if a.chain {
        let mut next = leaf.issuer_id.clone().filter(|i| *i != leaf.id);
        while let Some(id) = next.take() {
            if chain.len() > 16 {
                break;
            }
            let c = kmip.certificate(&id)?;
            next = c.issuer_id.clone().filter(|i| *i != c.id);
            chain.push(c);
        }
    }
    let mut with_key = false;
    let mut key_refused = None;
    let bytes = match a.format.as_str() {
        "pem" => {
            let mut out = leaf.pem()?;
            for c in &chain {
                out.push_str(&c.pem()?);
            }
            out.into_bytes()
        }
        "der" => leaf.der.clone(),
        "p12" => {
            let cert = openssl::x509::X509::from_der(&leaf.der)?;
            let mut b = openssl::pkcs12::Pkcs12::builder();
            b.name(&leaf.subject).cert(&cert);
            let key = match &leaf.public_key_id {
                Some(p) => match kmip.private_key(p) {
                    Ok(k) => Some(k),
                    Err(e) => {
                        key_refused = Some(e.0);
                        None
                    }
                },
                None => None,
            };
            let pkey;
            if let Some(der) = key {
                pkey = openssl::pkey::PKey::private_key_from_pkcs8(&der)?;
                b.pkey(&pkey);
                with_key = true;
            }
            let mut stack = openssl::stack::Stack::new()?;
            for c in &chain {
                stack.push(openssl::x509::X509::from_der(&c.der)?)?;
            }
            if !chain.is_empty() {
                b.ca(stack);
            }
            b.build2(password.as_deref().unwrap_or_default())?
                .to_der()?
        }
        other => return crate::fail(format!("unknown format {other}: pem, der or p12")),
    };
    match (&a.out, a.format.as_str()) {
        // it may hold a private key: readable by its owner only, from the start
        (Some(out), "p12") => crate::output_private(out, &bytes)?,
        _ => crate::output(a.out.as_deref(), &bytes)?,
    }
    if json && a.out.is_some() {
        println!(
            "{}",
            serde_json::json!({"id": a.id, "format": a.format, "chain": chain.len(), "private_key": with_key, "private_key_refused": key_refused, "file": a.out})
        );
    } else if let Some(p) = &a.out {
        if let Some(why) = &key_refused {
            eprintln!("the private key stays in the server: {why}");
        }
        println!(
            "{} ({}{}) -> {}",
            a.id,
            a.format,
            if with_key {
                ", with its private key"
            } else {
                ""
            },
            p.display()
        );
    }
    Ok(())
}
