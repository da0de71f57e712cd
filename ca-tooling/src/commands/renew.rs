//! `renew`: a new certificate (new serial, new validity) for the same key, subject, names,
//! profile and issuer as an existing one. The old certificate stays valid until it expires or
//! is revoked.

use crate::{CertRequest, Connection, Result};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The certificate to renew.
    pub id: String,
    #[arg(long)]
    pub days: Option<i64>,
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(a: Args, conn: &Connection, json: bool) -> Result<()> {
    let mut kmip = conn.connect()?;
    let old = kmip.certificate(&a.id)?;
    let public = old.public_key_id.clone().ok_or_else(|| {
        crate::Error(format!(
            "{} was made from a certificate request; sign a new request instead",
            a.id
        ))
    })?;
    let profile = old
        .profile
        .clone()
        .ok_or_else(|| crate::Error(format!("{} was not issued by this server", a.id)))?;
    let self_signed = old.issuer_id.as_deref() == Some(&old.id);
    let id = kmip.certify(
        Some(&public),
        None,
        &CertRequest {
            profile,
            issuer: (!self_signed).then(|| old.issuer_id.clone()).flatten(),
            subject: Some(old.subject.clone()),
            sans: old.sans.clone(),
            days: a.days,
            // a CA keeps its own path length and name constraints
            path_len: old.path_len.filter(|n| *n >= 0),
            permitted: old.permitted.clone(),
        },
    )?;
    super::issued(&mut kmip, &id, &super::default_out(&a.out, &id), json)?;
    Ok(())
}
