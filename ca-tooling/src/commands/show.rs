//! `show`: one certificate, in full.

use crate::{Connection, Result};

#[derive(clap::Args, Debug)]
pub struct Args {
    pub id: String,
}

pub fn run(a: Args, conn: &Connection, json: bool) -> Result<()> {
    let mut kmip = conn.connect()?;
    let c = kmip.certificate(&a.id)?;
    if json {
        println!("{}", c.json());
        return Ok(());
    }
    println!("id:          {}", c.id);
    println!("state:       {}", c.state);
    println!("serial:      {}", c.serial);
    println!("subject:     {}", c.subject);
    println!(
        "issuer:      {} ({})",
        c.issuer,
        c.issuer_id.unwrap_or_default()
    );
    println!("names:       {}", c.sans.join(", "));
    println!("profile:     {}", c.profile.unwrap_or_default());
    println!("not before:  {}", c.not_before);
    println!("not after:   {}", c.not_after);
    Ok(())
}
