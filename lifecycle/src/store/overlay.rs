//! A store over another that holds its changes back: reads see them, nothing reaches the base
//! until [`Overlay::flush`] commits them all in one transaction. It makes a KMIP batch atomic
//! (Batch Error Continuation Option Undo).

use super::{
    index_keys, Change, Expect, Expected, Precondition, Queued, Record, Store, StoreError,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

/// A store that holds its changes back over a base store until [`Overlay::flush`].
pub struct Overlay {
    base: Arc<dyn Store>,
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    /// Identifier -> the record as it will be, or `None` for a deletion.
    records: BTreeMap<String, Option<Record>>,
    /// Name -> the value as it will be, or `None` for a deletion.
    values: BTreeMap<String, Option<Vec<u8>>>,
    /// What was first read of each record and value: what the commit expects still to find
    /// of those it changes.
    read_records: HashMap<String, Option<u64>>,
    read_values: HashMap<String, Option<Vec<u8>>>,
}

impl Overlay {
    /// An overlay with nothing held back.
    pub fn new(base: Arc<dyn Store>) -> Overlay {
        Overlay {
            base,
            held: Mutex::default(),
        }
    }

    fn held(&self) -> Result<MutexGuard<'_, Held>, StoreError> {
        self.held
            .lock()
            .map_err(|_| StoreError::Backend("lock poisoned".into()))
    }

    /// Whether anything waits to be committed.
    pub fn is_empty(&self) -> bool {
        self.held()
            .map(|h| h.records.is_empty() && h.values.is_empty())
            .unwrap_or(false)
    }

    /// Commit every held-back change in one transaction of the base store, and hold nothing back.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.flush_checked(None)
    }

    /// [`Overlay::flush`] once `check` holds, checked by whoever writes the commit (see
    /// [`Precondition`]); with nothing to commit, checked here.
    pub fn flush_checked(&self, check: Option<Precondition>) -> Result<(), StoreError> {
        let Some((expected, changes)) = self.take()? else {
            return match check {
                Some(check) => super::run_check(&check),
                None => Ok(()),
            };
        };
        match check {
            Some(check) => self.base.commit_checked(expected, changes, check),
            None => self.base.commit_if(expected, changes),
        }
    }

    /// Whether [`Overlay::flush_queued`] queues without blocking (see
    /// [`Store::queues_commits`]).
    pub fn queues(&self) -> bool {
        self.base.queues_commits()
    }

    /// [`Overlay::flush_checked`] for a task that must not block its thread (see
    /// [`Store::queue_commit`]): `spawn` runs the queue's writing on a thread that may block,
    /// if the queue needs a writer.
    pub fn flush_queued(
        &self,
        check: Precondition,
        spawn: impl FnOnce(Box<dyn FnOnce() + Send>) + Send + 'static,
    ) -> Queued {
        let (expected, changes) = match self.take() {
            Ok(Some(taken)) => taken,
            Ok(None) => return Queued::ready(super::run_check(&check)),
            Err(e) => return Queued::ready(Err(e)),
        };
        let base = self.base.clone();
        if !base.queues_commit(&expected, &changes) {
            // one the store writes only blocking (on PostgreSQL, a commit that reads): on a
            // thread of its own, awaited
            let (queued, settle) = Queued::elsewhere();
            spawn(Box::new(move || {
                settle.settle(base.commit_checked(expected, changes, check))
            }));
            return queued;
        }
        let start = Box::new(move || spawn(Box::new(move || base.write_queued())));
        self.base.queue_commit(expected, changes, check, start)
    }

    /// The held-back changes and what they expect, if any; nothing is held back after.
    fn take(&self) -> Result<Option<(Expected, Vec<Change>)>, StoreError> {
        let mut h = self.held()?;
        let records = std::mem::take(&mut h.records);
        let values = std::mem::take(&mut h.values);
        if records.is_empty() && values.is_empty() {
            return Ok(None);
        }
        let mut expected: Expected = records
            .keys()
            .filter_map(|id| {
                h.read_records
                    .get(id)
                    .map(|r| Expect::Record(id.clone(), *r))
            })
            .collect();
        expected.extend(values.keys().filter_map(|name| {
            h.read_values
                .get(name)
                .map(|v| Expect::Value(name.clone(), v.clone()))
        }));
        drop(h);
        let mut changes: Vec<Change> = records
            .into_iter()
            .map(|(id, r)| match r {
                Some(r) => Change::Put(r),
                None => Change::Delete(id),
            })
            .collect();
        changes.extend(values.into_iter().map(|(name, v)| match v {
            Some(v) => Change::PutValue(name, v),
            None => Change::DeleteValue(name),
        }));
        Ok(Some((expected, changes)))
    }
}

impl Store for Overlay {
    fn names_unique(&self) -> bool {
        self.base.names_unique()
    }

    fn remote(&self) -> bool {
        self.base.remote()
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
        if let Some(r) = self.held()?.records.get(id) {
            return Ok(r.clone());
        }
        let got = self.base.get_versioned(id)?;
        self.held()?
            .read_records
            .entry(id.to_owned())
            .or_insert(got.as_ref().map(|(_, rev)| *rev));
        Ok(got.map(|(r, _)| r))
    }

    fn peek(&self, id: &str) -> Result<Option<Record>, StoreError> {
        if let Some(r) = self.held()?.records.get(id) {
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
        let mut h = self.held()?;
        for c in changes {
            match c {
                Change::Put(r) => {
                    h.records.insert(r.id.clone(), Some(r));
                }
                Change::Delete(id) => {
                    h.records.insert(id, None);
                }
                Change::PutValue(name, v) => {
                    h.values.insert(name, Some(v));
                }
                Change::DeleteValue(name) => {
                    h.values.insert(name, None);
                }
            }
        }
        Ok(())
    }

    fn lookup(&self, index_key: &[u8]) -> Result<Vec<String>, StoreError> {
        self.search(&[index_key.to_vec()], None)
    }

    fn search(&self, all: &[Vec<u8>], any: Option<&[Vec<u8>]>) -> Result<Vec<String>, StoreError> {
        let h = self.held()?;
        let mut ids: Vec<String> = self
            .base
            .search(all, any)?
            .into_iter()
            .filter(|id| !h.records.contains_key(id))
            .collect();
        for (id, r) in h.records.iter() {
            if let Some(r) = r {
                let keys = index_keys(r);
                let has = |k: &Vec<u8>| keys.contains(k);
                if all.iter().all(has) && any.is_none_or(|any| any.iter().any(has)) {
                    ids.push(id.clone());
                }
            }
        }
        Ok(ids)
    }

    fn all_ids(&self) -> Result<Vec<String>, StoreError> {
        self.search(&[], None)
    }

    fn value(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(v) = self.held()?.values.get(name) {
            return Ok(v.clone());
        }
        let got = self.base.value(name)?;
        self.held()?
            .read_values
            .entry(name.to_owned())
            .or_insert(got.clone());
        Ok(got)
    }

    fn values_with_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let h = self.held()?;
        let mut out: BTreeMap<String, Vec<u8>> =
            self.base.values_with_prefix(prefix)?.into_iter().collect();
        for (name, v) in h.values.iter().filter(|(n, _)| n.starts_with(prefix)) {
            match v {
                Some(v) => out.insert(name.clone(), v.clone()),
                None => out.remove(name),
            };
        }
        Ok(out.into_iter().collect())
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
