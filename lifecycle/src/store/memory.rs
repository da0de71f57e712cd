//! The in-memory backend, for tests: the same behaviour as the redb one, nothing durable.

use super::{fingerprint, index_keys, Change, Expected, Record, Store, StoreError};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::RwLock;

#[derive(Default)]
struct Inner {
    objects: BTreeMap<String, Vec<u8>>,
    index: BTreeSet<(Vec<u8>, String)>,
    next_id: u64,
}

/// A store in memory, for tests and tools: gone with the process.
#[derive(Default)]
pub struct MemoryStore {
    inner: RwLock<Inner>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }
}

fn poisoned<T>(_: T) -> StoreError {
    StoreError::Backend("lock poisoned".into())
}

impl Store for MemoryStore {
    fn get(&self, id: &str) -> Result<Option<Record>, StoreError> {
        let g = self.inner.read().map_err(poisoned)?;
        g.objects.get(id).map(|b| Record::decode(id, b)).transpose()
    }

    fn get_versioned(&self, id: &str) -> Result<Option<(Record, u64)>, StoreError> {
        let g = self.inner.read().map_err(poisoned)?;
        g.objects
            .get(id)
            .map(|b| Ok((Record::decode(id, b)?, fingerprint(b))))
            .transpose()
    }

    fn commit_if(&self, expected: Expected, changes: Vec<Change>) -> Result<(), StoreError> {
        let mut g = self.inner.write().map_err(poisoned)?;
        for (id, f) in expected {
            if g.objects.get(&id).map(|b| fingerprint(b)) != f {
                return Err(StoreError::Conflict(id));
            }
        }
        for c in changes {
            let id = match &c {
                Change::Put(r) => r.id.clone(),
                Change::Delete(id) => id.clone(),
            };
            if let Some(old) = g.objects.remove(&id) {
                for k in index_keys(&Record::decode(&id, &old)?) {
                    g.index.remove(&(k, id.clone()));
                }
            }
            if let Change::Put(r) = c {
                for k in index_keys(&r) {
                    g.index.insert((k, id.clone()));
                }
                g.objects.insert(id, r.encode());
            }
        }
        Ok(())
    }

    fn lookup(&self, index_key: &[u8]) -> Result<Vec<String>, StoreError> {
        let g = self.inner.read().map_err(poisoned)?;
        Ok(g.index
            .range((index_key.to_vec(), String::new())..)
            .take_while(|(k, _)| k == index_key)
            .map(|(_, id)| id.clone())
            .collect())
    }

    fn all_ids(&self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .inner
            .read()
            .map_err(poisoned)?
            .objects
            .keys()
            .cloned()
            .collect())
    }

    fn allocate_ids(&self, n: u64) -> Result<u64, StoreError> {
        let mut g = self.inner.write().map_err(poisoned)?;
        let first = g.next_id + 1;
        g.next_id += n;
        Ok(first)
    }
}
