//! kmip-admin: administer a KMIP server over KMIP, from anywhere its client certificate is
//! accepted: the object inventory, revocation and destruction, grants, trusted wrapping keys,
//! backups, and the approvals of dual control (our vendor operations, on our server).
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

use admin_tooling as admin;
use clap::{Parser, Subcommand};
use kmip_client::connection::{ConnectionArgs, Endpoint};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "kmip-admin",
    version,
    about = "Administer a KMIP server over KMIP: inventory, revoke, destroy, grants, backups"
)]
struct Cli {
    #[command(flatten)]
    conn: ConnectionArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the objects the identity reaches (an administrator: every object), one per line:
    /// identifier, object type, state, names and groups, tab-separated.
    List {
        /// Only this object type (symmetric-key, private-key, certificate, ...).
        #[arg(long = "type", value_name = "TYPE")]
        object_type: Option<String>,
        /// Only objects in this state (pre-active, active, deactivated, compromised, ...).
        #[arg(long)]
        state: Option<String>,
        /// Only objects with this name.
        #[arg(long)]
        name: Option<String>,
        /// Only objects of this Object Group.
        #[arg(long)]
        group: Option<String>,
        /// Destroyed and archived objects too.
        #[arg(long)]
        all: bool,
        /// At most this many objects.
        #[arg(long)]
        limit: Option<i32>,
        /// A JSON array of {id, object_type, state, names, groups, algorithm, length}.
        #[arg(long)]
        json: bool,
    },
    /// Print every attribute of an object.
    Show {
        id: String,
        /// {"id", "attributes": {KMIP JSON name: value, or an array for several instances}}.
        #[arg(long)]
        json: bool,
    },
    /// Revoke an object: it is no longer used to protect data.
    Revoke {
        id: String,
        /// unspecified, key-compromise, ca-compromise, affiliation-changed, superseded,
        /// cessation-of-operation or privilege-withdrawn. A compromise is dated now.
        #[arg(long)]
        reason: String,
        /// Words kept with the revocation.
        #[arg(long)]
        message: Option<String>,
    },
    /// Destroy an object's key material (an active object must be revoked first).
    Destroy { id: String },
    /// Let another identity perform some operations on an object (replaces its earlier grant).
    Grant {
        id: String,
        /// The identity (certificate CN).
        #[arg(long)]
        to: String,
        /// KMIP operation names, e.g. "Get Encrypt Decrypt".
        #[arg(long)]
        operations: String,
    },
    /// Withdraw every right an identity was granted on an object.
    RevokeGrant {
        id: String,
        #[arg(long)]
        from: String,
    },
    /// List the grants on an object: `IDENTITY: Operation ...` lines.
    Grants {
        id: String,
        /// [{"grantee", "operations": [...]}].
        #[arg(long)]
        json: bool,
    },
    /// Mark a key as a trusted wrapping key (an administrator only): under the server's
    /// --wrap-trusted-only, Sensitive keys leave wrapped by trusted keys only.
    TrustWrappingKey {
        id: String,
        /// Withdraw the mark instead.
        #[arg(long)]
        withdraw: bool,
    },
    /// Have the server write a consistent backup of its store while it serves (an
    /// administrator only): sealed records and a manifest, never the master key. It lands in
    /// the server's DATA_DIR/backups/; with --out and the server's --data-dir on this host, it
    /// is moved there.
    Backup {
        /// Move the backup here (never overwritten); needs --data-dir.
        #[arg(long)]
        out: Option<PathBuf>,
        /// {"file", "manifest": {key: value}}.
        #[arg(long)]
        json: bool,
    },
    /// Dual control (the server's --quorum): list the requests waiting for administrators,
    /// approve or deny them (an administrator only).
    Approvals {
        #[command(subcommand)]
        action: Approvals,
    },
}

#[derive(Subcommand)]
enum Approvals {
    /// The open requests, oldest first, one per line: id, state, operation, object, group,
    /// requester, approvals/needed and who approved, requested, expires (tab-separated).
    List {
        /// [{"id", "requester", "operation", "object", "group", "needed", "approvers",
        /// "requested", "expires", "state"}].
        #[arg(long)]
        json: bool,
    },
    /// Approve a request: another administrator than the one who asked; approving twice
    /// counts once.
    Approve { id: String },
    /// Deny a request: it will not run.
    Deny { id: String },
}

fn connect(e: &Endpoint) -> Result<kmip_client::Client, String> {
    e.connect()
        .map_err(|err| format!("connect to {}: {err}", e.server))
}

fn run(cli: Cli) -> Result<(), String> {
    let endpoint = cli.conn.resolve().map_err(|e| e.to_string())?;
    let mut c = connect(&endpoint)?;
    let e = |err: admin::AdminError| err.to_string();
    match cli.command {
        Command::List {
            object_type,
            state,
            name,
            group,
            all,
            limit,
            json,
        } => {
            let filter = admin::Filter {
                object_type: object_type
                    .map(|t| admin::enum_value("ObjectType", "--type", &t))
                    .transpose()
                    .map_err(e)?,
                state: state
                    .map(|s| admin::enum_value("State", "--state", &s))
                    .transpose()
                    .map_err(e)?,
                name,
                group,
                all,
                limit,
            };
            let objects = admin::list(&mut c, &filter).map_err(e)?;
            if json {
                let v: Vec<_> = objects.iter().map(admin::Listed::summary_json).collect();
                println!("{}", serde_json::Value::Array(v));
            } else {
                for o in &objects {
                    println!("{}", o.summary_line());
                }
            }
        }
        Command::Show { id, json } => {
            let o = admin::show(&mut c, &id).map_err(e)?;
            if json {
                println!("{}", o.attributes_json());
            } else {
                print!("{}", o.attributes_text());
            }
        }
        Command::Revoke {
            id,
            reason,
            message,
        } => {
            let code = admin::enum_value("RevocationReasonCode", "--reason", &reason).map_err(e)?;
            admin::revoke(&mut c, &id, code, message.as_deref()).map_err(e)?;
            println!("revoked {id}");
        }
        Command::Destroy { id } => {
            admin::destroy(&mut c, &id).map_err(e)?;
            println!("destroyed {id}");
        }
        Command::Grant { id, to, operations } => {
            let ops = admin::operations(&operations).map_err(e)?;
            if ops.is_empty() {
                return Err("--operations names none: to withdraw a grant, revoke-grant".into());
            }
            admin::grant(&mut c, &id, &to, &ops).map_err(e)?;
        }
        Command::RevokeGrant { id, from } => admin::grant(&mut c, &id, &from, &[]).map_err(e)?,
        Command::Grants { id, json } => {
            let grants = admin::grants(&mut c, &id).map_err(e)?;
            if json {
                let v: Vec<_> = grants
                    .iter()
                    .map(|(who, ops)| serde_json::json!({"grantee": who, "operations": ops}))
                    .collect();
                println!("{}", serde_json::Value::Array(v));
            } else {
                for (who, ops) in grants {
                    println!("{who}: {}", ops.join(" "));
                }
            }
        }
        Command::Approvals { action } => match action {
            Approvals::List { json } => {
                let open = admin::approvals(&mut c).map_err(e)?;
                if json {
                    let v: Vec<_> = open.iter().map(admin::Approval::to_json).collect();
                    println!("{}", serde_json::Value::Array(v));
                } else {
                    for a in &open {
                        println!("{}", a.line());
                    }
                }
            }
            Approvals::Approve { id } => {
                let a = admin::approve(&mut c, &id).map_err(e)?;
                println!(
                    "{id}: {} ({} of {} approvals: {})",
                    a.state,
                    a.approvers.len(),
                    a.needed,
                    a.approvers.join(", ")
                );
            }
            Approvals::Deny { id } => {
                let a = admin::deny(&mut c, &id).map_err(e)?;
                println!("{id}: {}", a.state);
            }
        },
        Command::TrustWrappingKey { id, withdraw } => {
            admin::trust_wrapping_key(&mut c, &id, !withdraw).map_err(e)?
        }
        Command::Backup { out, json } => {
            // checked before the server writes anything
            let moved_to = match &out {
                Some(out) => {
                    let dir = endpoint.data_dir.as_ref().ok_or(
                        "--out moves the server's file: it needs the server's --data-dir on this host",
                    )?;
                    if out.exists() {
                        return Err(format!(
                            "--out {}: exists: a backup never overwrites a file",
                            out.display()
                        ));
                    }
                    Some((dir.join("backups"), out))
                }
                None => None,
            };
            let b = admin::backup(&mut c).map_err(e)?;
            let file = match moved_to {
                Some((dir, out)) => {
                    move_file(&dir.join(&b.file), out)?;
                    out.display().to_string()
                }
                None => format!("backups/{} in the server's data directory", b.file),
            };
            if json {
                let manifest: serde_json::Map<String, serde_json::Value> = b
                    .manifest
                    .lines()
                    .filter_map(|l| l.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.into()))
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({"file": file, "manifest": manifest})
                );
            } else {
                println!(
                    "backup written: {file}\n{}the master key is not in it: a restored \
                     directory needs the same one",
                    b.manifest
                );
            }
        }
    }
    Ok(())
}

/// Move a file, copying it when `to` is on another file system.
fn move_file(from: &Path, to: &Path) -> Result<(), String> {
    match std::fs::rename(from, to) {
        Ok(()) => return Ok(()),
        // EXDEV: another file system
        Err(e) if e.raw_os_error() == Some(18) => {}
        Err(e) => return Err(format!("move {} to {}: {e}", from.display(), to.display())),
    }
    let copied = (|| {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        {
            use std::os::unix::fs::OpenOptionsExt;
            // backups hold every object's metadata
            opts.mode(0o600);
        }
        let mut dst = opts.open(to)?;
        std::io::copy(&mut std::fs::File::open(from)?, &mut dst)?;
        dst.sync_all()
    })();
    match copied {
        Ok(()) => std::fs::remove_file(from).map_err(|e| format!("{}: {e}", from.display())),
        Err(e) => {
            let _ = std::fs::remove_file(to);
            Err(format!("copy {} to {}: {e}", from.display(), to.display()))
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(written) = cli_docs::answer(&args, <Cli as clap::CommandFactory>::command) {
        return match written {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("kmip-admin: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match run(Cli::parse_from(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kmip-admin: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_options_of_every_subcommand_agree() {
        // the shared connection options and a subcommand's own must not take the same name
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
