//! `init-root`: a root key generated in the server and its self-signed certificate.

use super::{default_out, issued, Naming};
use crate::{CertRequest, Connection, KeyType, Result};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub naming: Naming,
    /// Key type of the root key.
    #[arg(long, default_value = "ec:p384")]
    pub key: KeyType,
    /// Path length: how many intermediate CAs may stand below.
    #[arg(long)]
    pub path_len: Option<i64>,
    /// Permitted subtree (name constraints): `example.com` for DNS names, e-mail addresses
    /// and URIs in that domain, `ip:10.0.0.0/8` for addresses; repeat for more. Every name
    /// type not permitted is excluded.
    #[arg(long = "permit")]
    pub permitted: Vec<String>,
}

pub fn run(a: Args, conn: &Connection, json: bool) -> Result<()> {
    let subject = a
        .naming
        .subject
        .clone()
        .ok_or_else(|| crate::Error("init-root needs --subject".into()))?;
    let mut kmip = conn.connect()?;
    let (_, _, id) = kmip.certify_new_key_pair(
        a.key,
        &subject,
        true,
        &CertRequest {
            profile: "root".into(),
            subject: Some(subject.clone()),
            sans: a.naming.sans,
            days: a.naming.days,
            path_len: a.path_len,
            permitted: a.permitted,
            ..Default::default()
        },
    )?;
    issued(&mut kmip, &id, &default_out(&a.naming.out, &id), json)?;
    Ok(())
}
