//! The master key as Shamir shares held by custodians (`master-split`): rebuilt at every start
//! from the shares given, and checked against `master.check`. Nothing in the data directory
//! but the check value.

use super::{check_against_file, write_atomic, MasterKey, Seal, SealError};
use super::{CHECK_FILE, SEALED_FILE};
use crate::core::shamir::Share;
use std::path::{Path, PathBuf};

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
                "the master key the --unseal-share shares rebuild does not open this data \
                 directory (checked against {}): too few shares, or shares of another key",
                self.check.display()
            )),
            e => e,
        })
    }
}
