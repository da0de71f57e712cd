//! A store over another that holds its changes back: reads see them, nothing reaches the base
//! until [`Overlay::flush`] commits them all in one transaction. It makes a KMIP batch atomic
//! (Batch Error Continuation Option Undo).

use super::{index_keys, Change, Expected, Record, Store, StoreError};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// A store that holds its changes back over a base store until [`Overlay::flush`].
pub struct Overlay {
    base: Arc<dyn Store>,
    /// Identifier -> the record as it will be, or `None` for a deletion.
    pending: Mutex<BTreeMap<String, Option<Record>>>,
    /// Identifier -> the fingerprint of the base's record when first read (`None`: absent):
    /// what the commit expects still to find.
    read: Mutex<HashMap<String, Option<u64>>>,
}

impl Overlay {
    /// An overlay with nothing held back.
    pub fn new(base: Arc<dyn Store>) -> Overlay {
        Overlay {
            base,
            pending: Mutex::new(BTreeMap::new()),
            read: Mutex::new(HashMap::new()),
        }
    }

    fn pending(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, BTreeMap<String, Option<Record>>>, StoreError> {
        self.pending
            .lock()
            .map_err(|_| StoreError::Backend("lock poisoned".into()))
    }

    /// Whether anything waits to be committed.
    pub fn is_empty(&self) -> bool {
        self.pending().map(|p| p.is_empty()).unwrap_or(false)
    }

    /// Commit every held-back change in one transaction of the base store, and hold nothing back.
    pub fn flush(&self) -> Result<(), StoreError> {
        let pending = std::mem::take(&mut *self.pending()?);
        if pending.is_empty() {
            return Ok(());
        }
        let read = self
            .read
            .lock()
            .map_err(|_| StoreError::Backend("lock poisoned".into()))?;
        let expected: Expected = pending
            .keys()
            .filter_map(|id| read.get(id).map(|f| (id.clone(), *f)))
            .collect();
        drop(read);
        let changes: Vec<Change> = pending
            .into_iter()
            .map(|(id, r)| match r {
                Some(r) => Change::Put(r),
                None => Change::Delete(id),
            })
            .collect();
        self.base.commit_if(expected, changes)
    }
}

impl Store for Overlay {
    fn names_unique(&self) -> bool {
        self.base.names_unique()
    }

    /// The base's committed state: a backup holds nothing a message has not committed.
    fn backup(
        &self,
        files: &[(&str, &[u8])],
        out: &std::path::Path,
    ) -> Result<super::backup::Manifest, super::backup::BackupError> {
        self.base.backup(files, out)
    }

    fn get(&self, id: &str) -> Result<Option<Record>, StoreError> {
        if let Some(r) = self.pending()?.get(id) {
            return Ok(r.clone());
        }
        let got = self.base.get_versioned(id)?;
        let mut read = self
            .read
            .lock()
            .map_err(|_| StoreError::Backend("lock poisoned".into()))?;
        read.entry(id.to_owned())
            .or_insert(got.as_ref().map(|(_, f)| *f));
        Ok(got.map(|(r, _)| r))
    }

    fn peek(&self, id: &str) -> Result<Option<Record>, StoreError> {
        if let Some(r) = self.pending()?.get(id) {
            return Ok(r.clone());
        }
        self.base.peek(id)
    }

    /// A nested overlay (an undoable batch inside a message) expects nothing: see below.
    fn get_versioned(&self, id: &str) -> Result<Option<(Record, u64)>, StoreError> {
        Ok(self.get(id)?.map(|r| (r, 0)))
    }

    /// Changes of the same message (a nested, undoable batch): nothing to race with.
    fn commit_if(&self, _expected: Expected, changes: Vec<Change>) -> Result<(), StoreError> {
        let mut p = self.pending()?;
        for c in changes {
            match c {
                Change::Put(r) => {
                    p.insert(r.id.clone(), Some(r));
                }
                Change::Delete(id) => {
                    p.insert(id, None);
                }
            }
        }
        Ok(())
    }

    fn lookup(&self, index_key: &[u8]) -> Result<Vec<String>, StoreError> {
        let p = self.pending()?;
        let mut ids: Vec<String> = self
            .base
            .lookup(index_key)?
            .into_iter()
            .filter(|id| !p.contains_key(id))
            .collect();
        for (id, r) in p.iter() {
            if let Some(r) = r {
                if index_keys(r).iter().any(|k| k == index_key) {
                    ids.push(id.clone());
                }
            }
        }
        Ok(ids)
    }

    fn all_ids(&self) -> Result<Vec<String>, StoreError> {
        let p = self.pending()?;
        let mut ids: Vec<String> = self
            .base
            .all_ids()?
            .into_iter()
            .filter(|id| !p.contains_key(id))
            .collect();
        ids.extend(
            p.iter()
                .filter(|(_, r)| r.is_some())
                .map(|(id, _)| id.clone()),
        );
        Ok(ids)
    }

    fn allocate_ids(&self, n: u64) -> Result<u64, StoreError> {
        // identifiers are never reused: an undone batch leaves a gap
        self.base.allocate_ids(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[test]
    fn the_overlay_passes_the_store_suite_once_flushed() {
        // the suite commits and reads back; through an overlay reads see pending changes
        let base: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let o = Overlay::new(base.clone());
        super::super::suite::run(&o);
        o.flush().unwrap();
        assert!(base.get("1").unwrap().is_some());
    }
}
