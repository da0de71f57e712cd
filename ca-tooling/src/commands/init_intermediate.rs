//! `init-intermediate`: an intermediate CA whose key is generated in the server. Either a CA
//! in the same server signs it (`--issuer`), or an external root does: `--csr-out` writes a
//! PKCS#10 request signed in the server, and `--import` hands back the certificate the root
//! issued for it.

use super::{default_out, issued, Naming};
use crate::{CertRequest, Connection, KeyType, Result};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The issuing CA certificate's identifier, when the root is in this server.
    #[arg(long, conflicts_with_all = ["csr_out", "import"])]
    pub issuer: Option<String>,
    /// For an external root: generate the key and write a certificate request here.
    #[arg(long, conflicts_with = "import")]
    pub csr_out: Option<PathBuf>,
    /// For an external root: the certificate it issued (PEM or DER) for --public-key.
    #[arg(long, requires = "public_key")]
    pub import: Option<PathBuf>,
    /// The public key identifier `--csr-out` printed.
    #[arg(long)]
    pub public_key: Option<String>,
    #[command(flatten)]
    pub naming: Naming,
    #[arg(long, default_value = "ec:p384")]
    pub key: KeyType,
    #[arg(long)]
    pub path_len: Option<i64>,
    /// Permitted subtree (name constraints): `example.com` for DNS names, e-mail addresses
    /// and URIs in that domain, `ip:10.0.0.0/8` for addresses; repeat for more. Every name
    /// type not permitted is excluded.
    #[arg(long = "permit")]
    pub permitted: Vec<String>,
    /// Profile to issue with.
    #[arg(long, default_value = "intermediate-ca")]
    pub profile: String,
}

pub fn run(a: Args, conn: &Connection, json: bool) -> Result<()> {
    let mut kmip = conn.connect()?;
    if let (Some(file), Some(public)) = (&a.import, &a.public_key) {
        let raw =
            std::fs::read(file).map_err(|e| crate::Error(format!("{}: {e}", file.display())))?;
        let der = match openssl::x509::X509::from_pem(&raw) {
            Ok(x) => x.to_der()?,
            Err(_) => raw,
        };
        let id = kmip.import_ca(public, &der)?;
        issued(&mut kmip, &id, &default_out(&a.naming.out, &id), json)?;
        return Ok(());
    }
    let subject = a
        .naming
        .subject
        .clone()
        .ok_or_else(|| crate::Error("init-intermediate needs --subject".into()))?;
    if let Some(out) = &a.csr_out {
        let (_, public, der) = kmip.request_for_new_key_pair(a.key, &subject)?;
        let pem = openssl::x509::X509Req::from_der(&der)?.to_pem()?;
        crate::output(Some(out), &pem)?;
        if json {
            println!("{}", serde_json::json!({"public_key": public, "csr": out}));
        } else {
            println!(
                "request for {subject} -> {}; when the root has signed it: kmip-ca init-intermediate --import CERT --public-key {public}",
                out.display()
            );
        }
        return Ok(());
    }
    let issuer = a
        .issuer
        .ok_or_else(|| crate::Error("give --issuer, --csr-out, or --import".into()))?;
    let (_, _, id) = kmip.certify_new_key_pair(
        a.key,
        &subject,
        true,
        &CertRequest {
            profile: a.profile,
            issuer: Some(issuer),
            subject: Some(subject.clone()),
            sans: a.naming.sans,
            days: a.naming.days,
            path_len: a.path_len,
            permitted: a.permitted,
        },
    )?;
    issued(&mut kmip, &id, &default_out(&a.naming.out, &id), json)?;
    Ok(())
}
