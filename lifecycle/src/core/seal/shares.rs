//! The master key as Shamir shares held by custodians (`master-split`): rebuilt at every start
//! from the shares given, and checked against `master.check`. Nothing in the data directory
//! but the check value.

use super::{check_against_file, check_private, write_atomic, MasterKey, Seal, SealError};
use super::{CHECK_FILE, SEALED_FILE, SPLIT_FILE};
use crate::core::shamir::Share;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// How a master key was split (`master.shares`): `threshold` of `shares` open it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Split {
    /// How many shares rebuild the key.
    pub threshold: u8,
    /// How many were made.
    pub shares: u8,
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "any {} of {} shares open it",
            self.threshold, self.shares
        )
    }
}

/// Record in `data_dir` that its master key is split (no secret: the numbers only).
pub fn write_split(data_dir: &Path, split: Split) -> Result<(), SealError> {
    let text = format!(
        "# kmip-server: the master key is split into Shamir shares held by custodians; master.key \
         is gone on purpose\nthreshold = {}\nshares = {}\n",
        split.threshold, split.shares
    );
    write_atomic(&data_dir.join(SPLIT_FILE), text.as_bytes(), false)
}

/// How `data_dir`'s master key was split, if `master-split` recorded it.
pub fn read_split(data_dir: &Path) -> Result<Option<Split>, SealError> {
    let path = data_dir.join(SPLIT_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(SealError::file(&path, e)),
    };
    let field = |name: &str| {
        text.lines()
            .filter_map(|l| l.split_once(" = "))
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| v.trim().parse::<u8>().ok())
            .ok_or_else(|| SealError::file(&path, format!("no {name}")))
    };
    Ok(Some(Split {
        threshold: field("threshold")?,
        shares: field("shares")?,
    }))
}

/// A share from its file (one line, `x-hex`, as `master-split --out-dir` writes it), refused
/// when other users may read or write the file.
pub fn read_share_file(path: &Path) -> Result<Share, SealError> {
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| SealError::file(path, e))?);
    check_private(path)?;
    Share::from_text(&text).map_err(|e| SealError::file(path, e))
}

/// The master key rebuilt from custodians' Shamir shares at each start.
pub struct ShareSeal {
    shares: Vec<Share>,
    check: PathBuf,
    sealed: PathBuf,
}

impl ShareSeal {
    /// From the shares' text form (`x-hex`, as `master-split` prints them).
    pub fn new(data_dir: &Path, shares: &[String]) -> Result<ShareSeal, SealError> {
        if shares.is_empty() {
            return Err(SealError::Config {
                option: "--unseal-share",
                reason: "the shares seal needs the shares: give --unseal-share for at least the \
                         threshold of them"
                    .into(),
            });
        }
        let shares = shares
            .iter()
            .map(|s| Share::from_text(s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SealError::Config {
                option: "--unseal-share",
                reason: e.to_string(),
            })?;
        Ok(ShareSeal {
            shares,
            check: data_dir.join(CHECK_FILE),
            sealed: data_dir.join(SEALED_FILE),
        })
    }

    /// From shares already parsed (read from files, or typed at a prompt).
    pub fn with_shares(data_dir: &Path, shares: Vec<Share>) -> ShareSeal {
        ShareSeal {
            shares,
            check: data_dir.join(CHECK_FILE),
            sealed: data_dir.join(SEALED_FILE),
        }
    }

    fn rebuild(&self) -> Result<MasterKey, SealError> {
        MasterKey::from_shares(&self.shares).map_err(|e| SealError::Config {
            option: "--unseal-share",
            reason: e.to_string(),
        })
    }
}

impl Seal for ShareSeal {
    fn describe(&self) -> String {
        format!("{} Shamir shares", self.shares.len())
    }

    fn is_sealed(&self) -> Result<bool, SealError> {
        if self.sealed.exists() {
            return Err(SealError::OtherCustody(format!(
                "{} holds this data directory's master key sealed by a PKCS#11 token, not \
                 shares: start with --seal pkcs11",
                self.sealed.display()
            )));
        }
        Ok(self.check.exists())
    }

    /// Shares split from a key elsewhere make the key of a new data directory.
    fn first_key(&self) -> Result<MasterKey, SealError> {
        self.rebuild()
    }

    /// The shares stay with their custodians: only the check value is kept here.
    fn seal(&self, key: &MasterKey) -> Result<(), SealError> {
        write_atomic(&self.check, &key.check_value()?, false)
    }

    fn unseal(&self) -> Result<MasterKey, SealError> {
        self.rebuild()
    }

    fn check(&self, key: &MasterKey) -> Result<(), SealError> {
        check_against_file(&self.check, key).map_err(|e| match e {
            SealError::WrongKey(_) => SealError::WrongKey(format!(
                "the master key the shares given rebuild does not open this data \
                 directory (checked against {}): too few shares, or shares of another key",
                self.check.display()
            )),
            e => e,
        })
    }
}
