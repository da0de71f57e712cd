//! The redb backend: one file. Tables: `objects` (identifier -> encoded record), `index`
//! (length-prefixed index key then identifier -> nothing) and `meta` (schema version, last
//! identifier). Every commit is a redb write transaction with immediate durability.

use super::{index_keys, Change, Record, Store, StoreError, SCHEMA_VERSION};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;

const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
const INDEX: TableDefinition<&[u8], ()> = TableDefinition::new("index");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

pub struct RedbStore {
    db: Database,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// `len(key) | key`: the prefix under which every identifier with that key is found.
fn prefix(key: &[u8]) -> Vec<u8> {
    let mut p = (key.len() as u32).to_be_bytes().to_vec();
    p.extend_from_slice(key);
    p
}

fn entry(key: &[u8], id: &str) -> Vec<u8> {
    let mut e = prefix(key);
    e.extend_from_slice(id.as_bytes());
    e
}

impl RedbStore {
    /// Open the file, creating it (and its schema version) when it does not exist.
    pub fn open(path: &Path) -> Result<RedbStore, StoreError> {
        let db = Database::create(path).map_err(backend)?;
        let tx = db.begin_write().map_err(backend)?;
        {
            let mut meta = tx.open_table(META).map_err(backend)?;
            let found = meta
                .get("schema_version")
                .map_err(backend)?
                .map(|v| v.value());
            match found {
                None => {
                    meta.insert("schema_version", SCHEMA_VERSION)
                        .map_err(backend)?;
                }
                Some(v) if v == SCHEMA_VERSION => {}
                Some(v) => {
                    return Err(StoreError::Schema {
                        found: v,
                        expected: SCHEMA_VERSION,
                    })
                }
            }
            tx.open_table(OBJECTS).map_err(backend)?;
            tx.open_table(INDEX).map_err(backend)?;
        }
        tx.commit().map_err(backend)?;
        Ok(RedbStore { db })
    }
}

impl RedbStore {
    /// Rewrite the file without free pages, so that the bytes of deleted or replaced records
    /// (a destroyed key's sealed material) no longer lie in it. Needs exclusive access.
    pub fn compact(&mut self) -> Result<bool, StoreError> {
        self.db.compact().map_err(backend)
    }
}

impl Store for RedbStore {
    fn get(&self, id: &str) -> Result<Option<Record>, StoreError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let t = tx.open_table(OBJECTS).map_err(backend)?;
        let got = t.get(id).map_err(backend)?;
        got.map(|v| Record::decode(id, v.value())).transpose()
    }

    fn commit(&self, changes: Vec<Change>) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(backend)?;
        {
            let mut objects = tx.open_table(OBJECTS).map_err(backend)?;
            let mut index = tx.open_table(INDEX).map_err(backend)?;
            for c in changes {
                let id = match &c {
                    Change::Put(r) => r.id.clone(),
                    Change::Delete(id) => id.clone(),
                };
                let old = objects
                    .remove(id.as_str())
                    .map_err(backend)?
                    .map(|v| v.value().to_vec());
                if let Some(old) = old {
                    for k in index_keys(&Record::decode(&id, &old)?) {
                        index.remove(entry(&k, &id).as_slice()).map_err(backend)?;
                    }
                }
                if let Change::Put(r) = c {
                    for k in index_keys(&r) {
                        index
                            .insert(entry(&k, &id).as_slice(), ())
                            .map_err(backend)?;
                    }
                    objects
                        .insert(id.as_str(), r.encode().as_slice())
                        .map_err(backend)?;
                }
            }
        }
        tx.commit().map_err(backend)
    }

    fn lookup(&self, index_key: &[u8]) -> Result<Vec<String>, StoreError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let t = tx.open_table(INDEX).map_err(backend)?;
        let p = prefix(index_key);
        let mut out = Vec::new();
        for row in t.range(p.as_slice()..).map_err(backend)? {
            let (k, _) = row.map_err(backend)?;
            let k = k.value();
            if !k.starts_with(&p) {
                break;
            }
            out.push(String::from_utf8_lossy(&k[p.len()..]).into_owned());
        }
        Ok(out)
    }

    fn all_ids(&self) -> Result<Vec<String>, StoreError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let t = tx.open_table(OBJECTS).map_err(backend)?;
        let mut out = Vec::new();
        for row in t.iter().map_err(backend)? {
            let (k, _) = row.map_err(backend)?;
            out.push(k.value().to_owned());
        }
        Ok(out)
    }

    fn allocate_ids(&self, n: u64) -> Result<u64, StoreError> {
        let tx = self.db.begin_write().map_err(backend)?;
        let first;
        {
            let mut meta = tx.open_table(META).map_err(backend)?;
            let last = meta
                .get("last_id")
                .map_err(backend)?
                .map(|v| v.value())
                .unwrap_or(0);
            first = last + 1;
            meta.insert("last_id", last + n).map_err(backend)?;
        }
        tx.commit().map_err(backend)?;
        Ok(first)
    }
}
