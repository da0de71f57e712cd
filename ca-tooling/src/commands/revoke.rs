//! `revoke`: revoke a certificate with a reason; it appears in its issuer's next CRL.

use crate::{Connection, Result};
use kmip_codec::vocab::enums::revocation_reason_code as rrc;

#[derive(clap::Args, Debug)]
pub struct Args {
    pub id: String,
    /// unspecified, key-compromise, ca-compromise, affiliation-changed, superseded,
    /// cessation-of-operation or privilege-withdrawn.
    #[arg(long, default_value = "unspecified")]
    pub reason: String,
}

pub fn run(a: Args, conn: &Connection, json: bool) -> Result<()> {
    let reason = match a.reason.as_str() {
        "unspecified" => rrc::UNSPECIFIED,
        "key-compromise" => rrc::KEY_COMPROMISE,
        "ca-compromise" => rrc::CA_COMPROMISE,
        "affiliation-changed" => rrc::AFFILIATION_CHANGED,
        "superseded" => rrc::SUPERSEDED,
        "cessation-of-operation" => rrc::CESSATION_OF_OPERATION,
        "privilege-withdrawn" => rrc::PRIVILEGE_WITHDRAWN,
        other => return crate::fail(format!("unknown reason {other}")),
    };
    let mut kmip = conn.connect()?;
    kmip.revoke(&a.id, reason)?;
    if json {
        println!(
            "{}",
            serde_json::json!({"id": a.id, "revoked": true, "reason": a.reason})
        );
    } else {
        println!("certificate {} revoked ({})", a.id, a.reason);
    }
    Ok(())
}
