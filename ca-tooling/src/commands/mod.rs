//! One file per subcommand.

pub mod crl;
pub mod export;
pub mod init_intermediate;
pub mod init_root;
pub mod issue;
pub mod list;
pub mod renew;
pub mod revoke;
pub mod show;
pub mod sign;

use crate::{CertInfo, Kmip, Result};
use std::path::{Path, PathBuf};

/// Where a new certificate is written: `--out`, or `CERT_ID.pem` here.
pub fn default_out(out: &Option<PathBuf>, id: &str) -> PathBuf {
    out.clone()
        .unwrap_or_else(|| PathBuf::from(format!("cert-{id}.pem")))
}

/// Report a certificate the server just made: its PEM written to `out`, a line (or JSON) on
/// standard output.
pub fn issued(kmip: &mut Kmip, id: &str, out: &Path, json: bool) -> Result<CertInfo> {
    let c = kmip.certificate(id)?;
    crate::output(Some(out), c.pem()?.as_bytes())?;
    if json {
        let mut v = c.json();
        v["file"] = serde_json::Value::String(out.display().to_string());
        println!("{v}");
    } else {
        println!(
            "certificate {} serial {} subject {} -> {}",
            c.id,
            c.serial,
            c.subject,
            out.display()
        );
    }
    Ok(c)
}

/// Options every issuing command shares.
#[derive(clap::Args, Debug, Clone)]
pub struct Naming {
    /// Subject, `CN=...,O=...,C=..`.
    #[arg(long)]
    pub subject: Option<String>,
    /// Subject alternative name, `dns:NAME`, `ip:ADDRESS`, `email:ADDRESS` or `uri:URI`;
    /// repeat for more.
    #[arg(long = "san")]
    pub sans: Vec<String>,
    /// Days of validity (the profile's default otherwise; never past the issuer's).
    #[arg(long)]
    pub days: Option<i64>,
    /// Write the certificate (PEM) here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}
