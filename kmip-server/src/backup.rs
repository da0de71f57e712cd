//! The data directory's side of backups (the store's is `lifecycle::store::backup`): which
//! files travel with the store, where the running server writes backups, and restoring into
//! a new data directory.

use lifecycle::store::backup::{self, BackupError, Manifest};
use std::path::{Path, PathBuf};

/// Files of the data directory that belong with the store in a backup: the master key's check
/// value (a seal of a constant, no secret), so that a restored directory refuses a wrong key
/// at start rather than failing on every object; and under `--seal pkcs11` the master key as
/// the token sealed it, which only that token's key opens: without it a restored directory
/// would look new to the seal and get a new master key. Never the master key itself.
pub const CARRIED_FILES: &[&str] = &["master.check", "master.sealed"];

/// The store file of a data directory.
pub fn store_path(data_dir: &Path) -> PathBuf {
    data_dir.join("kmip.redb")
}

/// Where the running server writes the backups it is asked for.
pub fn backup_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("backups")
}

/// The carried files that exist in `data_dir`: (name, bytes).
pub fn carried_files(data_dir: &Path) -> Result<Vec<(&'static str, Vec<u8>)>, BackupError> {
    let mut out = Vec::new();
    for name in CARRIED_FILES {
        let path = data_dir.join(name);
        match std::fs::read(&path) {
            Ok(bytes) => out.push((*name, bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(BackupError::Io { path, source }),
        }
    }
    Ok(out)
}

/// Back up a data directory no server runs on into the new file `out`.
/// [`BackupError::InUse`] when a server has it open.
pub fn backup_offline(data_dir: &Path, out: &Path) -> Result<Manifest, BackupError> {
    let carried = carried_files(data_dir)?;
    let files: Vec<(&str, &[u8])> = carried.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    backup::backup_file(&store_path(data_dir), &files, out)
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestoreError {
    #[error("{}: not empty: restore writes into an empty or new directory only", .0.display())]
    NotEmpty(PathBuf),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Backup(#[from] BackupError),
}

/// Restore the backup `file` into `data_dir`, which must be empty or absent: the store, and
/// the carried files. The digest is checked before anything is created; on a failure, what
/// was created is removed again.
pub fn restore(file: &Path, data_dir: &Path) -> Result<Manifest, RestoreError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| RestoreError::Io { path, source }
    };
    let existed = data_dir.exists();
    if existed
        && std::fs::read_dir(data_dir)
            .map_err(io(data_dir))?
            .next()
            .is_some()
    {
        return Err(RestoreError::NotEmpty(data_dir.to_owned()));
    }
    backup::verify(file)?;
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(data_dir).map_err(io(data_dir))?;
    let result = (|| {
        let (manifest, files) = backup::restore(file, &store_path(data_dir))?;
        for (name, bytes) in files {
            // only the files a backup is meant to carry: a name from the file never picks a
            // path of its own
            if let Some(known) = CARRIED_FILES.iter().find(|k| **k == name) {
                let path = data_dir.join(known);
                crate::pki::write_file(&path, &bytes, false).map_err(|e| RestoreError::Io {
                    path: path.clone(),
                    source: std::io::Error::other(e.to_string()),
                })?;
            }
        }
        Ok(manifest)
    })();
    if result.is_err() {
        for name in CARRIED_FILES {
            let _ = std::fs::remove_file(data_dir.join(name));
        }
        let _ = std::fs::remove_file(store_path(data_dir));
        if !existed {
            let _ = std::fs::remove_dir(data_dir);
        }
    }
    result
}
