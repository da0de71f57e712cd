//! Backups through the running server: the store's own read transaction, for an
//! administrator only (a backup holds every identity's objects).

use super::Txn;
use crate::store::backup::{BackupError, Manifest};
use crate::LifecycleError;

impl Txn {
    /// Write a backup of the whole store into the new file `out` (see
    /// [`crate::store::backup`]): sealed records only, never the master key.
    pub fn backup(
        &self,
        files: &[(&str, &[u8])],
        out: &std::path::Path,
    ) -> Result<Manifest, LifecycleError> {
        if self.caller.as_ref().is_some_and(|c| !c.admin) {
            return Err(LifecycleError::PermissionDenied(
                "only an administrator makes backups".into(),
            ));
        }
        self.store.backup(files, out).map_err(|e| match e {
            BackupError::Store(s) => LifecycleError::Store(s),
            BackupError::Unsupported => LifecycleError::NotSupported(e.to_string()),
            e => LifecycleError::Store(crate::store::StoreError::Backend(e.to_string())),
        })
    }
}
