//! `list`: the certificates this identity can see: serial, subject, names, validity, state.

use crate::{Connection, Result};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only certificates of this issuing CA.
    #[arg(long)]
    pub issuer: Option<String>,
    /// Only certificates that expire within this window (`30d`, `12h`) and have not yet.
    #[arg(long, value_parser = crate::parse_window)]
    pub expiring: Option<i64>,
}

pub fn run(a: Args, conn: &Connection, json: bool) -> Result<()> {
    let mut kmip = conn.connect()?;
    let now = crate::now_unix();
    let mut rows = Vec::new();
    for id in kmip.certificates()? {
        let c = kmip.certificate(&id)?;
        if a.issuer
            .as_ref()
            .is_some_and(|i| c.issuer_id.as_ref() != Some(i))
        {
            continue;
        }
        if let Some(w) = a.expiring {
            if c.not_after < now || c.not_after > now + w {
                continue;
            }
        }
        rows.push(c);
    }
    if json {
        println!(
            "{}",
            serde_json::Value::Array(rows.iter().map(crate::CertInfo::json).collect())
        );
        return Ok(());
    }
    for c in rows {
        let days = (c.not_after - now) / 86_400;
        println!(
            "{}\t{}\t{}\t{}\t{}d left\t{}",
            c.id,
            c.serial,
            c.subject,
            c.sans.join(" "),
            days,
            c.state
        );
    }
    Ok(())
}
