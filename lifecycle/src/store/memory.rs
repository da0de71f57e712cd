//! The in-memory engine, for tests and tools: the same behaviour as the others, nothing durable.
//! A write transaction holds the lock and keeps an undo log, so a failed one leaves nothing
//! behind.

use super::engine::{Engine, ReadTxn, Stored, WriteTxn};
use super::{Records, StoreError};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, RwLock};

#[derive(Default)]
struct State {
    objects: BTreeMap<String, Stored>,
    index: BTreeSet<(Vec<u8>, String)>,
    values: BTreeMap<String, Vec<u8>>,
}

/// The engine: state behind a lock.
#[derive(Default)]
pub struct MemoryEngine {
    state: RwLock<State>,
    /// The last identifier reserved.
    ids: Mutex<u64>,
}

/// A store in memory, for tests and tools: gone with the process.
pub type MemoryStore = Records<MemoryEngine>;

impl Records<MemoryEngine> {
    /// An empty store.
    pub fn new() -> MemoryStore {
        Records::over(MemoryEngine::default())
    }
}

impl Default for Records<MemoryEngine> {
    fn default() -> Self {
        Self::new()
    }
}

fn poisoned<T>(_: T) -> StoreError {
    StoreError::Backend("lock poisoned".into())
}

impl ReadTxn for State {
    fn has(&self, key: &[u8], id: &str) -> Result<bool, StoreError> {
        Ok(self.index.contains(&(key.to_vec(), id.to_owned())))
    }

    fn object(&self, id: &str) -> Result<Option<Stored>, StoreError> {
        Ok(self.objects.get(id).cloned())
    }

    fn ids_with(&self, key: &[u8]) -> Result<Vec<String>, StoreError> {
        Ok(self
            .index
            .range((key.to_vec(), String::new())..)
            .take_while(|(k, _)| k == key)
            .map(|(_, id)| id.clone())
            .collect())
    }

    fn all_ids(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.objects.keys().cloned().collect())
    }

    fn value(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.values.get(name).cloned())
    }

    fn values_with_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        Ok(self
            .values
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

/// A write transaction: changes go straight into the state, each with what undoes it.
struct Logged<'a> {
    state: &'a mut State,
    undo: Vec<Undo>,
}

enum Undo {
    Object(String, Option<Stored>),
    Index(Vec<u8>, String, bool),
    Value(String, Option<Vec<u8>>),
}

impl Logged<'_> {
    fn roll_back(&mut self) {
        while let Some(u) = self.undo.pop() {
            match u {
                Undo::Object(id, Some(s)) => {
                    self.state.objects.insert(id, s);
                }
                Undo::Object(id, None) => {
                    self.state.objects.remove(&id);
                }
                Undo::Index(k, id, true) => {
                    self.state.index.insert((k, id));
                }
                Undo::Index(k, id, false) => {
                    self.state.index.remove(&(k, id));
                }
                Undo::Value(name, Some(v)) => {
                    self.state.values.insert(name, v);
                }
                Undo::Value(name, None) => {
                    self.state.values.remove(&name);
                }
            }
        }
    }
}

impl ReadTxn for Logged<'_> {
    fn has(&self, key: &[u8], id: &str) -> Result<bool, StoreError> {
        self.state.has(key, id)
    }

    fn object(&self, id: &str) -> Result<Option<Stored>, StoreError> {
        self.state.object(id)
    }

    fn ids_with(&self, key: &[u8]) -> Result<Vec<String>, StoreError> {
        self.state.ids_with(key)
    }

    fn all_ids(&self) -> Result<Vec<String>, StoreError> {
        self.state.all_ids()
    }

    fn value(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.state.value(name)
    }

    fn values_with_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.state.values_with_prefix(prefix)
    }
}

impl WriteTxn for Logged<'_> {
    fn put_object(&mut self, id: &str, stored: &Stored) -> Result<(), StoreError> {
        let old = self.state.objects.insert(id.to_owned(), stored.clone());
        self.undo.push(Undo::Object(id.to_owned(), old));
        Ok(())
    }

    fn delete_object(&mut self, id: &str) -> Result<(), StoreError> {
        let old = self.state.objects.remove(id);
        self.undo.push(Undo::Object(id.to_owned(), old));
        Ok(())
    }

    fn add_index(&mut self, key: &[u8], id: &str) -> Result<(), StoreError> {
        if self.state.index.insert((key.to_vec(), id.to_owned())) {
            self.undo
                .push(Undo::Index(key.to_vec(), id.to_owned(), false));
        }
        Ok(())
    }

    fn remove_index(&mut self, key: &[u8], id: &str) -> Result<(), StoreError> {
        if self.state.index.remove(&(key.to_vec(), id.to_owned())) {
            self.undo
                .push(Undo::Index(key.to_vec(), id.to_owned(), true));
        }
        Ok(())
    }

    fn put_value(&mut self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        let old = self.state.values.insert(name.to_owned(), value.to_vec());
        self.undo.push(Undo::Value(name.to_owned(), old));
        Ok(())
    }

    fn delete_value(&mut self, name: &str) -> Result<(), StoreError> {
        let old = self.state.values.remove(name);
        self.undo.push(Undo::Value(name.to_owned(), old));
        Ok(())
    }
}

impl Engine for MemoryEngine {
    fn read(
        &self,
        f: &mut dyn FnMut(&dyn ReadTxn) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let g = self.state.read().map_err(poisoned)?;
        f(&*g)
    }

    fn write(
        &self,
        f: &mut dyn FnMut(&mut dyn WriteTxn) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        // readers wait for the whole transaction: they never see part of it
        let mut g = self.state.write().map_err(poisoned)?;
        let mut tx = Logged {
            state: &mut g,
            undo: Vec::new(),
        };
        let out = f(&mut tx);
        if out.is_err() {
            tx.roll_back();
        }
        out
    }

    fn reserve_ids(&self, n: u64) -> Result<u64, StoreError> {
        let mut last = self.ids.lock().map_err(poisoned)?;
        let first = *last + 1;
        *last += n;
        Ok(first)
    }
}
