//! `crl`: a new CRL of a CA, signed by the server; CRL numbers increase with each.

use crate::{Connection, Result};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The CA certificate's identifier.
    #[arg(long)]
    pub issuer: String,
    /// Write the CRL (PEM) here; standard output otherwise.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(a: Args, conn: &Connection, json: bool) -> Result<()> {
    let mut kmip = conn.connect()?;
    let der = kmip.crl(&a.issuer)?;
    let crl = openssl::x509::X509Crl::from_der(&der)?;
    let pem = crl.to_pem()?;
    let revoked = crl.get_revoked().map(|r| r.len()).unwrap_or(0);
    if json {
        crate::output(a.out.as_deref(), &pem)?;
        if a.out.is_some() {
            println!(
                "{}",
                serde_json::json!({"issuer": a.issuer, "revoked": revoked, "file": a.out})
            );
        }
    } else {
        crate::output(a.out.as_deref(), &pem)?;
        if let Some(p) = &a.out {
            println!(
                "CRL of {} with {revoked} revoked -> {}",
                a.issuer,
                p.display()
            );
        }
    }
    Ok(())
}
