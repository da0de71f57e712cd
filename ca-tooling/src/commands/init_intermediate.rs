//! `init-intermediate`: an intermediate CA whose key is generated in the server, signed by a
//! root (or another intermediate) held in the same server.

use super::{default_out, issued, Naming};
use crate::{CertRequest, Connection, KeyType, Result};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The issuing CA certificate's identifier.
    #[arg(long)]
    pub issuer: String,
    #[command(flatten)]
    pub naming: Naming,
    #[arg(long, default_value = "ec:p384")]
    pub key: KeyType,
    #[arg(long)]
    pub path_len: Option<i64>,
    /// Permitted DNS subtree (name constraints); repeat for more.
    #[arg(long = "permit")]
    pub permitted: Vec<String>,
    /// Profile to issue with.
    #[arg(long, default_value = "intermediate-ca")]
    pub profile: String,
}

pub fn run(a: Args, conn: &Connection, json: bool) -> Result<()> {
    let subject = a
        .naming
        .subject
        .clone()
        .ok_or_else(|| crate::Error("init-intermediate needs --subject".into()))?;
    let mut kmip = conn.connect()?;
    let (_, public) = kmip.create_key_pair(a.key, &subject, true)?;
    let id = kmip.certify(
        Some(&public),
        None,
        &CertRequest {
            profile: a.profile,
            issuer: Some(a.issuer),
            subject: Some(subject),
            sans: a.naming.sans,
            days: a.naming.days,
            path_len: a.path_len,
            permitted: a.permitted,
        },
    )?;
    issued(&mut kmip, &id, &default_out(&a.naming.out, &id), json)?;
    Ok(())
}
