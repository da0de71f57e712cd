//! The redb backend: one file. Tables: `objects` (identifier -> encoded record), `index`
//! (length-prefixed index key then identifier -> nothing) and `meta` (schema version, last
//! identifier). Every commit is durable (redb's immediate durability: fsync) before it returns.
//!
//! Group commit: commits that arrive while another is being written wait, and the next writer
//! takes all of them into one write transaction, so that many connections share one fsync.
//! Each caller still returns only after its own changes are on disk. Identifiers are handed
//! out from memory against a reservation kept in `meta` (raised 1,024 at a time), so creating
//! an object costs no transaction of its own and no identifier is ever handed out twice.

use super::{fingerprint, index_keys, Change, Expected, Record, Store, StoreError, SCHEMA_VERSION};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use std::path::Path;
use std::sync::{Condvar, Mutex};

pub(super) const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
const INDEX: TableDefinition<&[u8], ()> = TableDefinition::new("index");
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The store on disk: one redb file, durable at each commit.
pub struct RedbStore {
    /// Replaced (reopened) after an I/O error: redb refuses every transaction after one until
    /// the database is opened again, and a full disk that has room again must not need a
    /// restart.
    db: std::sync::RwLock<Database>,
    path: std::path::PathBuf,
    cache_bytes: usize,
    group: Mutex<Group>,
    written: Condvar,
    ids: Mutex<Ids>,
    /// Names are unique among objects not destroyed, checked again inside the write
    /// transaction: two requests that each found a name free before either committed must
    /// not both take it.
    unique_names: bool,
}

/// Commits waiting for the next write transaction, and the outcome of those written.
#[derive(Default)]
struct Group {
    queue: Vec<(u64, Expected, Vec<Change>)>,
    next_ticket: u64,
    writing: bool,
    done: std::collections::HashMap<u64, Result<(), StoreError>>,
}

struct Ids {
    next: u64,
    reserved: u64,
}

const ID_RESERVATION: u64 = 1024;

/// Version 2 indexes the Application Namespace of Application Specific Information; version 3
/// no longer indexes State, Cryptographic Algorithm and Length.
const INDEX_VERSION: u64 = 3;

/// The page cache unless configured: enough for the indexes of a million objects.
pub(crate) const DEFAULT_CACHE_BYTES: usize = 64 << 20;

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Whether an index key is a Name's.
fn is_name_key(k: &[u8]) -> bool {
    k.starts_with(&kmip_codec::vocab::tag::NAME.0.to_be_bytes()[1..])
}

/// `len(key) | key`: the prefix under which every identifier with that key is found.
fn prefix(key: &[u8]) -> Vec<u8> {
    let mut p = (key.len() as u32).to_be_bytes().to_vec();
    p.extend_from_slice(key);
    p
}

/// The identifiers filed under an index key, read in a read or a write transaction.
fn ids_with(
    index: &impl ReadableTable<&'static [u8], ()>,
    key: &[u8],
) -> Result<Vec<String>, StoreError> {
    let p = prefix(key);
    let mut out = Vec::new();
    for row in index.range(p.as_slice()..).map_err(backend)? {
        let (k, _) = row.map_err(backend)?;
        let k = k.value();
        if !k.starts_with(&p) {
            break;
        }
        out.push(String::from_utf8_lossy(&k[p.len()..]).into_owned());
    }
    Ok(out)
}

fn entry(key: &[u8], id: &str) -> Vec<u8> {
    let mut e = prefix(key);
    e.extend_from_slice(id.as_bytes());
    e
}

impl RedbStore {
    /// Open the file, creating it (and its schema version) when it does not exist, with the
    /// default page cache (`DEFAULT_CACHE_BYTES`).
    pub fn open(path: &Path) -> Result<RedbStore, StoreError> {
        Self::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// Open with a page cache of `cache_bytes`: the store's share of the server's memory
    /// (redb's own default, 1 GiB, would grow the server's resident size with the data).
    pub fn open_with_cache(path: &Path, cache_bytes: usize) -> Result<RedbStore, StoreError> {
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create(path)
            .map_err(backend)?;
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
            // a release that indexes more than the one that wrote the file rebuilds the index
            let indexed = meta
                .get("index_version")
                .map_err(backend)?
                .map(|v| v.value())
                .unwrap_or(1);
            if indexed < INDEX_VERSION {
                Self::reindex(&tx)?;
                meta.insert("index_version", INDEX_VERSION)
                    .map_err(backend)?;
            }
        }
        tx.commit().map_err(backend)?;
        let last = {
            let tx = db.begin_read().map_err(backend)?;
            let meta = tx.open_table(META).map_err(backend)?;
            let last = meta.get("last_id").map_err(backend)?.map(|v| v.value());
            last.unwrap_or(0)
        };
        Ok(RedbStore {
            db: std::sync::RwLock::new(db),
            path: path.to_owned(),
            cache_bytes,
            group: Mutex::default(),
            written: Condvar::new(),
            ids: Mutex::new(Ids {
                next: last + 1,
                reserved: last,
            }),
            unique_names: false,
        })
    }

    /// Names unique among one owner's objects (the server policy `--unique-names`); by
    /// default objects may share names, as deployed clients expect.
    pub fn unique_names(mut self, unique: bool) -> RedbStore {
        self.unique_names = unique;
        self
    }

    /// Run `f` against the database; after an I/O error (a full disk, say) that left redb
    /// refusing all work, open the file again and run `f` once more.
    fn with_db<T>(&self, f: impl Fn(&Database) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let first = {
            let db = self.db.read().unwrap_or_else(|p| p.into_inner());
            f(&db)
        };
        match first {
            Err(StoreError::Backend(m)) if m.contains("Previous I/O") => {
                self.reopen()?;
                let db = self.db.read().unwrap_or_else(|p| p.into_inner());
                f(&db)
            }
            other => other,
        }
    }

    fn reopen(&self) -> Result<(), StoreError> {
        let mut db = self.db.write().unwrap_or_else(|p| p.into_inner());
        // redb allows one open handle per file: a placeholder while the old one closes
        let placeholder = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(backend)?;
        drop(std::mem::replace(&mut *db, placeholder));
        *db = Database::builder()
            .set_cache_size(self.cache_bytes)
            .create(&self.path)
            .map_err(backend)?;
        Ok(())
    }

    /// Every index entry again, from the records.
    fn reindex(tx: &WriteTransaction) -> Result<(), StoreError> {
        let objects = tx.open_table(OBJECTS).map_err(backend)?;
        let mut index = tx.open_table(INDEX).map_err(backend)?;
        index.retain(|_, _| false).map_err(backend)?;
        for row in objects.iter().map_err(backend)? {
            let (k, v) = row.map_err(backend)?;
            let id = k.value();
            for key in index_keys(&Record::decode(id, v.value())?) {
                index
                    .insert(entry(&key, id).as_slice(), ())
                    .map_err(backend)?;
            }
        }
        Ok(())
    }

    fn write(
        &self,
        tx: &WriteTransaction,
        expected: &Expected,
        changes: &[Change],
    ) -> Result<(), StoreError> {
        let mut objects = tx.open_table(OBJECTS).map_err(backend)?;
        let mut index = tx.open_table(INDEX).map_err(backend)?;
        // the records as this commit's request read them: else it lost a race, and writing
        // would undo the other writer's change
        for (id, f) in expected {
            let now = objects
                .get(id.as_str())
                .map_err(backend)?
                .map(|v| fingerprint(v.value()));
            if now != *f {
                return Err(StoreError::Conflict(id.clone()));
            }
        }
        // (record, owner, name) for every name a live record gains in this commit
        let mut gained: Vec<(&str, Option<&str>, Vec<u8>)> = Vec::new();
        for c in changes {
            let id = match c {
                Change::Put(r) => r.id.as_str(),
                Change::Delete(id) => id.as_str(),
            };
            let old = objects
                .remove(id)
                .map_err(backend)?
                .map(|v| v.value().to_vec());
            let old_keys = match old {
                Some(old) => index_keys(&Record::decode(id, &old)?),
                None => Vec::new(),
            };
            for k in &old_keys {
                index.remove(entry(k, id).as_slice()).map_err(backend)?;
            }
            if let Change::Put(r) = c {
                for k in index_keys(r) {
                    index
                        .insert(entry(&k, id).as_slice(), ())
                        .map_err(backend)?;
                    if self.unique_names
                        && !r.state.is_destroyed()
                        && is_name_key(&k)
                        && !old_keys.contains(&k)
                    {
                        gained.push((id, r.owner.as_deref(), k));
                    }
                }
                objects.insert(id, r.encode().as_slice()).map_err(backend)?;
            }
        }
        // after all of the commit's changes, so that a name moving from one record to another
        // (Re-key) is seen where it ends up
        for (id, owner, k) in gained {
            for other in ids_with(&index, &k)?.into_iter().filter(|o| o != id) {
                let Some(bytes) = objects.get(other.as_str()).map_err(backend)? else {
                    continue;
                };
                let r = Record::decode(&other, bytes.value())?;
                // among one owner's objects only: another identity's names are neither
                // probed nor squatted through this refusal
                if !r.state.is_destroyed()
                    && r.owner.as_deref() == owner
                    && index_keys(&r).contains(&k)
                {
                    let name = String::from_utf8_lossy(&k[3..]).into_owned();
                    return Err(StoreError::NameTaken(name));
                }
            }
        }
        Ok(())
    }

    /// Write the commits of `batch` in one transaction; if that fails, each on its own, so
    /// that one bad commit does not fail the others.
    fn write_group(
        &self,
        batch: Vec<(u64, Expected, Vec<Change>)>,
    ) -> Vec<(u64, Result<(), StoreError>)> {
        let together = self.with_db(|db| {
            let tx = db.begin_write().map_err(backend)?;
            for (_, expected, changes) in &batch {
                self.write(&tx, expected, changes)?;
            }
            tx.commit().map_err(backend)
        });
        if together.is_ok() || batch.len() == 1 {
            return batch
                .into_iter()
                .map(|(t, _, _)| (t, together.clone()))
                .collect();
        }
        batch
            .into_iter()
            .map(|(t, expected, changes)| {
                let one = self.with_db(|db| {
                    let tx = db.begin_write().map_err(backend)?;
                    self.write(&tx, &expected, &changes)?;
                    tx.commit().map_err(backend)
                });
                (t, one)
            })
            .collect()
    }
}

impl RedbStore {
    /// Rewrite the file without free pages, so that the bytes of deleted or replaced records
    /// (a destroyed key's sealed material) no longer lie in it. Needs exclusive access.
    pub fn compact(&mut self) -> Result<bool, StoreError> {
        self.db
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .compact()
            .map_err(backend)
    }
}

impl Store for RedbStore {
    fn names_unique(&self) -> bool {
        self.unique_names
    }

    fn backup(
        &self,
        files: &[(&str, &[u8])],
        out: &Path,
    ) -> Result<super::backup::Manifest, super::backup::BackupError> {
        // one read transaction: writers go on committing while it runs, and it sees none of
        // their commits that came after it began
        let db = self.db.read().unwrap_or_else(|p| p.into_inner());
        super::backup::write_new(&*db, files, out)
    }

    fn get(&self, id: &str) -> Result<Option<Record>, StoreError> {
        self.with_db(|db| {
            let tx = db.begin_read().map_err(backend)?;
            let t = tx.open_table(OBJECTS).map_err(backend)?;
            let got = t.get(id).map_err(backend)?;
            got.map(|v| Record::decode(id, v.value())).transpose()
        })
    }

    fn get_versioned(&self, id: &str) -> Result<Option<(Record, u64)>, StoreError> {
        self.with_db(|db| {
            let tx = db.begin_read().map_err(backend)?;
            let t = tx.open_table(OBJECTS).map_err(backend)?;
            let got = t.get(id).map_err(backend)?;
            got.map(|v| Ok((Record::decode(id, v.value())?, fingerprint(v.value()))))
                .transpose()
        })
    }

    fn commit_if(&self, expected: Expected, changes: Vec<Change>) -> Result<(), StoreError> {
        let mut g = self.group.lock().unwrap_or_else(|p| p.into_inner());
        let ticket = g.next_ticket;
        g.next_ticket += 1;
        g.queue.push((ticket, expected, changes));
        loop {
            if let Some(result) = g.done.remove(&ticket) {
                return result;
            }
            if g.writing {
                g = self.written.wait(g).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            // this caller writes everything queued so far, its own commit included
            g.writing = true;
            let batch = std::mem::take(&mut g.queue);
            drop(g);
            let results = self.write_group(batch);
            g = self.group.lock().unwrap_or_else(|p| p.into_inner());
            g.done.extend(results);
            g.writing = false;
            self.written.notify_all();
        }
    }

    fn lookup(&self, index_key: &[u8]) -> Result<Vec<String>, StoreError> {
        self.with_db(|db| {
            let tx = db.begin_read().map_err(backend)?;
            ids_with(&tx.open_table(INDEX).map_err(backend)?, index_key)
        })
    }

    fn all_ids(&self) -> Result<Vec<String>, StoreError> {
        self.with_db(|db| {
            let tx = db.begin_read().map_err(backend)?;
            let t = tx.open_table(OBJECTS).map_err(backend)?;
            let mut out = Vec::new();
            for row in t.iter().map_err(backend)? {
                let (k, _) = row.map_err(backend)?;
                out.push(k.value().to_owned());
            }
            Ok(out)
        })
    }

    fn allocate_ids(&self, n: u64) -> Result<u64, StoreError> {
        let mut ids = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        let first = ids.next;
        let last = first + n - 1;
        if last > ids.reserved {
            let upto = last + ID_RESERVATION;
            self.with_db(|db| {
                let tx = db.begin_write().map_err(backend)?;
                {
                    let mut meta = tx.open_table(META).map_err(backend)?;
                    meta.insert("last_id", upto).map_err(backend)?;
                }
                tx.commit().map_err(backend)
            })?;
            ids.reserved = upto;
        }
        ids.next = last + 1;
        Ok(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::State;
    use kmip_codec::vocab::{enums, tag};
    use kmip_codec::{Ttlv, Value};

    /// A file written before namespaces were indexed gets its index rebuilt when opened.
    #[test]
    fn an_older_index_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kmip.redb");
        let asi = Ttlv::structure(
            tag::APPLICATION_SPECIFIC_INFORMATION,
            vec![Ttlv::new(
                tag::APPLICATION_NAMESPACE,
                Value::TextString("ssl".into()),
            )],
        );
        let key = super::super::item_index_key(&asi).unwrap();
        {
            let s = RedbStore::open(&path).unwrap();
            s.commit(vec![Change::Put(Record {
                id: "7".into(),
                object_type: enums::object_type::SYMMETRIC_KEY,
                state: State::Active,
                attributes: vec![asi.clone()],
                sealed: None,
                generated: false,
                owner: Some("alice".into()),
                grants: vec![],
            })])
            .unwrap();
            assert_eq!(s.lookup(&key).unwrap(), vec!["7"]);
        }
        // as an older release left it: no index entries for it, index version 1
        {
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            {
                let mut index = tx.open_table(INDEX).unwrap();
                index.retain(|_, _| false).unwrap();
                let mut meta = tx.open_table(META).unwrap();
                meta.insert("index_version", 1).unwrap();
            }
            tx.commit().unwrap();
        }
        let s = RedbStore::open(&path).unwrap();
        assert_eq!(s.lookup(&key).unwrap(), vec!["7"]);
        assert_eq!(
            s.lookup(&crate::store::index_key(crate::store::OWNER, b"alice"))
                .unwrap(),
            vec!["7"]
        );
    }
}
