//! The master key as a file in the data directory (`master.key`, 32 raw bytes, mode 0600),
//! checked against `master.check`: the custody of every data directory made before custodies
//! had a choice, and still the default.

use super::{check_against_file, check_private, write_atomic, MasterKey, Seal, SealError};
use super::{CHECK_FILE, KEY_FILE, SEALED_FILE, SPLIT_FILE};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// The master key in `master.key`, the default custody.
pub struct FileSeal {
    dir: PathBuf,
    key: PathBuf,
    check: PathBuf,
    sealed: PathBuf,
}

impl FileSeal {
    /// The custody of `data_dir`'s key file; nothing is read until the key is asked for.
    pub fn new(data_dir: &Path) -> FileSeal {
        FileSeal {
            dir: data_dir.to_path_buf(),
            key: data_dir.join(KEY_FILE),
            check: data_dir.join(CHECK_FILE),
            sealed: data_dir.join(SEALED_FILE),
        }
    }

    /// The key file, for the commands that replace it (`master-split` deletes it).
    pub fn key_path(&self) -> &Path {
        &self.key
    }
}

pub(super) fn read_key(path: &Path) -> Result<MasterKey, SealError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            check_private(path)?;
            let bytes = Zeroizing::new(bytes);
            MasterKey::from_bytes(&bytes).map_err(|_| SealError::file(path, "not a 32-byte key"))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(SealError::Missing(format!(
            "{} does not exist",
            path.display()
        ))),
        Err(e) => Err(SealError::file(path, e)),
    }
}

pub(super) fn write_key(path: &Path, key: &MasterKey) -> Result<(), SealError> {
    if path.exists() {
        // never over another key: the objects sealed under it would be lost
        return Err(SealError::file(path, "exists"));
    }
    write_atomic(path, key.0.as_ref(), true)
}

impl Seal for FileSeal {
    fn describe(&self) -> String {
        format!("key file {}", self.key.display())
    }

    fn is_sealed(&self) -> Result<bool, SealError> {
        if self.key.exists() {
            return Ok(true);
        }
        if self.sealed.exists() {
            return Err(SealError::OtherCustody(format!(
                "{} holds this data directory's master key sealed by a PKCS#11 token: start with \
                 --seal pkcs11 and its --pkcs11-module, --pkcs11-token, --pkcs11-pin-file and \
                 --pkcs11-key",
                self.sealed.display()
            )));
        }
        if let Some(split) = super::read_split(&self.dir)? {
            return Err(SealError::Missing(format!(
                "this data directory's master key was split into shares ({split}; {} says \
                 so), and {} is gone as it should be: start with --seal shares and the \
                 custodians' shares (--master-share-file FILE, one per custodian, or on a \
                 terminal, to be asked for them one at a time)",
                self.dir.join(SPLIT_FILE).display(),
                self.key.display(),
            )));
        }
        if self.check.exists() {
            return Err(SealError::Missing(format!(
                "{} is missing, and {} says this data directory has a master key: the objects \
                 in it are sealed under that key. Put back the copy of master.key you kept \
                 apart (mode 0600; a backup of the store never holds it). If the key was split \
                 into shares before this release recorded splits, start with --seal shares and \
                 the shares (--master-share-file or --unseal-share)",
                self.key.display(),
                self.check.display()
            )));
        }
        Ok(false)
    }

    fn seal(&self, key: &MasterKey) -> Result<(), SealError> {
        write_key(&self.key, key)?;
        write_atomic(&self.check, &key.check_value()?, false)
    }

    /// The key file, then its check value, each replaced whole: a crash between the two
    /// leaves a key that fails the old check, which a rotation run again recognises.
    fn replace(&self, key: &MasterKey) -> Result<(), SealError> {
        write_atomic(&self.key, key.0.as_ref(), true)?;
        write_atomic(&self.check, &key.check_value()?, false)
    }

    fn unseal(&self) -> Result<MasterKey, SealError> {
        let key = read_key(&self.key)?;
        // a data directory older than check values: its key file is the reference
        if !self.check.exists() {
            write_atomic(&self.check, &key.check_value()?, false)?;
        }
        Ok(key)
    }

    fn check(&self, key: &MasterKey) -> Result<(), SealError> {
        check_against_file(&self.check, key).map_err(|e| match e {
            SealError::WrongKey(_) => SealError::WrongKey(format!(
                "{} does not open this data directory (checked against {}): a key file from \
                 another data directory?",
                self.key.display(),
                self.check.display()
            )),
            e => e,
        })
    }
}
