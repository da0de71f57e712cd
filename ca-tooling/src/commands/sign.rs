//! `sign`: certify a PKCS#10 request (PEM or DER file). The server checks its signature,
//! refuses one that asks for CA:TRUE, and takes its names only where the profile allows.

use super::{default_out, issued, Naming};
use crate::{CertRequest, Connection, Result};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The request file.
    pub csr: PathBuf,
    /// The issuing CA certificate's identifier.
    #[arg(long)]
    pub issuer: String,
    #[arg(long)]
    pub profile: String,
    #[command(flatten)]
    pub naming: Naming,
}

pub fn run(a: Args, conn: &Connection, json: bool) -> Result<()> {
    let raw =
        std::fs::read(&a.csr).map_err(|e| crate::Error(format!("{}: {e}", a.csr.display())))?;
    let der = match openssl::x509::X509Req::from_pem(&raw) {
        Ok(r) => r.to_der()?,
        Err(_) => raw,
    };
    let mut kmip = conn.connect()?;
    let id = kmip.certify(
        None,
        Some(&der),
        &CertRequest {
            profile: a.profile,
            issuer: Some(a.issuer),
            subject: a.naming.subject,
            sans: a.naming.sans,
            days: a.naming.days,
            ..Default::default()
        },
    )?;
    issued(&mut kmip, &id, &default_out(&a.naming.out, &id), json)?;
    Ok(())
}
