//! `issue`: a leaf whose key pair is generated in the server, certified under a profile.

use super::{default_out, issued, Naming};
use crate::{CertRequest, Connection, KeyType, Result};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The issuing CA certificate's identifier.
    #[arg(long)]
    pub issuer: String,
    /// Profile: server, client, code-signing, email, or one of the server's own.
    #[arg(long)]
    pub profile: String,
    #[command(flatten)]
    pub naming: Naming,
    #[arg(long, default_value = "ec:p256")]
    pub key: KeyType,
}

pub fn run(a: Args, conn: &Connection, json: bool) -> Result<()> {
    let subject = a
        .naming
        .subject
        .clone()
        .ok_or_else(|| crate::Error("issue needs --subject".into()))?;
    let mut kmip = conn.connect()?;
    // the key pair and its certificate in one transaction: a refusal leaves no key behind
    let (_, _, id) = kmip.certify_new_key_pair(
        a.key,
        &subject,
        false,
        &CertRequest {
            profile: a.profile,
            issuer: Some(a.issuer),
            subject: Some(subject.clone()),
            sans: a.naming.sans,
            days: a.naming.days,
            ..Default::default()
        },
    )?;
    issued(&mut kmip, &id, &default_out(&a.naming.out, &id), json)?;
    Ok(())
}
