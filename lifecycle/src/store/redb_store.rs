//! The redb engine: one file. Tables: `objects` (identifier -> encoded record), `revisions`
//! (identifier -> revision), `index` (length-prefixed index key then identifier -> nothing),
//! `values` (name -> bytes) and `meta` (schema version, index version, last identifier
//! reserved). Every commit is durable (redb's immediate durability: fsync) before it returns.

use super::engine::{Engine, ReadTxn, Stored, WriteTxn};
use super::{index_keys, Record, Records, StoreError, SCHEMA_VERSION};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use std::path::Path;
use std::sync::OnceLock;

pub(super) const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
/// Each record's revision. A record without one (written by a release before revisions) is
/// at revision 0 until its next write.
const REVISIONS: TableDefinition<&str, u64> = TableDefinition::new("revisions");
const INDEX: TableDefinition<&[u8], ()> = TableDefinition::new("index");
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Named values of the record layer (see [`ReadTxn::value`]).
pub(super) const VALUES: TableDefinition<&str, &[u8]> = TableDefinition::new("values");

/// The engine: one redb file, durable at each commit.
pub struct RedbEngine {
    /// Replaced (reopened) after an I/O error: redb refuses every transaction after one until
    /// the database is opened again, and a full disk that has room again must not need a
    /// restart.
    db: std::sync::RwLock<Database>,
    path: std::path::PathBuf,
    cache_bytes: usize,
    last_read: std::sync::Mutex<LastRead>,
}

/// The last read transaction, kept for the reads that follow while no commit has come since:
/// beginning one and opening its tables cost a Get more than finding its record. Every commit
/// drops it (so it never pins pages that later commits free) and counts a generation, and a
/// read transaction that began before a commit ended is never kept: a read that starts after a
/// commit was answered sees that commit.
#[derive(Default)]
struct LastRead {
    generation: u64,
    tables: Option<std::sync::Arc<ReadTables>>,
}

/// The store on disk: the record layer over one redb file.
pub type RedbStore = Records<RedbEngine>;

/// Version 2 indexes the Application Namespace of Application Specific Information; version 3
/// no longer indexes State, Cryptographic Algorithm and Length; version 4 length-prefixes a
/// custom attribute's vendor and name in its key.
const INDEX_VERSION: u64 = 4;

/// The page cache unless configured: enough for the indexes of a million objects.
pub(crate) const DEFAULT_CACHE_BYTES: usize = 64 << 20;

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

/// The four tables as one write transaction opened them.
struct Tables<O, R, I, V> {
    objects: O,
    revisions: R,
    index: I,
    values: V,
}

type WriteTables<'t> = Tables<
    redb::Table<'t, &'static str, &'static [u8]>,
    redb::Table<'t, &'static str, u64>,
    redb::Table<'t, &'static [u8], ()>,
    redb::Table<'t, &'static str, &'static [u8]>,
>;

/// The reads, written once over any table types: a write transaction's tables (which read
/// their own writes) and a read transaction's tables opened on first use.
mod reads {
    use super::{backend, entry, prefix, ReadableTable, StoreError, Stored};

    pub(super) fn object(
        objects: &impl ReadableTable<&'static str, &'static [u8]>,
        revisions: &impl ReadableTable<&'static str, u64>,
        id: &str,
    ) -> Result<Option<Stored>, StoreError> {
        let Some(bytes) = objects.get(id).map_err(backend)? else {
            return Ok(None);
        };
        let revision = revisions.get(id).map_err(backend)?.map_or(0, |v| v.value());
        Ok(Some(Stored {
            bytes: bytes.value().to_vec(),
            revision,
        }))
    }

    pub(super) fn has(
        index: &impl ReadableTable<&'static [u8], ()>,
        key: &[u8],
        id: &str,
    ) -> Result<bool, StoreError> {
        Ok(index
            .get(entry(key, id).as_slice())
            .map_err(backend)?
            .is_some())
    }

    pub(super) fn ids_with(
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

    pub(super) fn all_ids(
        objects: &impl ReadableTable<&'static str, &'static [u8]>,
    ) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for row in objects.iter().map_err(backend)? {
            let (k, _) = row.map_err(backend)?;
            out.push(k.value().to_owned());
        }
        Ok(out)
    }

    pub(super) fn value(
        values: &impl ReadableTable<&'static str, &'static [u8]>,
        name: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(values
            .get(name)
            .map_err(backend)?
            .map(|v| v.value().to_vec()))
    }

    pub(super) fn values_with_prefix(
        values: &impl ReadableTable<&'static str, &'static [u8]>,
        prefix: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for row in values.range(prefix..).map_err(backend)? {
            let (k, v) = row.map_err(backend)?;
            if !k.value().starts_with(prefix) {
                break;
            }
            out.push((k.value().to_owned(), v.value().to_vec()));
        }
        Ok(out)
    }
}

impl ReadTxn for WriteTables<'_> {
    fn object(&self, id: &str) -> Result<Option<Stored>, StoreError> {
        reads::object(&self.objects, &self.revisions, id)
    }

    fn has(&self, key: &[u8], id: &str) -> Result<bool, StoreError> {
        reads::has(&self.index, key, id)
    }

    fn ids_with(&self, key: &[u8]) -> Result<Vec<String>, StoreError> {
        reads::ids_with(&self.index, key)
    }

    fn all_ids(&self) -> Result<Vec<String>, StoreError> {
        reads::all_ids(&self.objects)
    }

    fn value(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        reads::value(&self.values, name)
    }

    fn values_with_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        reads::values_with_prefix(&self.values, prefix)
    }
}

/// A read transaction's tables, each opened when a read first needs it: opening all four
/// for every read cost a Get more than finding its record.
struct ReadTables {
    objects: OnceLock<redb::ReadOnlyTable<&'static str, &'static [u8]>>,
    revisions: OnceLock<redb::ReadOnlyTable<&'static str, u64>>,
    index: OnceLock<redb::ReadOnlyTable<&'static [u8], ()>>,
    values: OnceLock<redb::ReadOnlyTable<&'static str, &'static [u8]>>,
    /// Last: the tables close before their transaction ends.
    tx: redb::ReadTransaction,
}

/// The table of `cell`, opened from `tx` the first time.
fn opened<'c, K: redb::Key + 'static, V: redb::Value + 'static>(
    tx: &redb::ReadTransaction,
    cell: &'c OnceLock<redb::ReadOnlyTable<K, V>>,
    def: TableDefinition<K, V>,
) -> Result<&'c redb::ReadOnlyTable<K, V>, StoreError> {
    if let Some(t) = cell.get() {
        return Ok(t);
    }
    let t = tx.open_table(def).map_err(backend)?;
    Ok(cell.get_or_init(|| t))
}

impl ReadTables {
    fn new(tx: redb::ReadTransaction) -> ReadTables {
        ReadTables {
            objects: OnceLock::new(),
            revisions: OnceLock::new(),
            index: OnceLock::new(),
            values: OnceLock::new(),
            tx,
        }
    }
}

impl ReadTxn for ReadTables {
    fn object(&self, id: &str) -> Result<Option<Stored>, StoreError> {
        let objects = opened(&self.tx, &self.objects, OBJECTS)?;
        let revisions = opened(&self.tx, &self.revisions, REVISIONS)?;
        reads::object(objects, revisions, id)
    }

    fn has(&self, key: &[u8], id: &str) -> Result<bool, StoreError> {
        reads::has(opened(&self.tx, &self.index, INDEX)?, key, id)
    }

    fn ids_with(&self, key: &[u8]) -> Result<Vec<String>, StoreError> {
        reads::ids_with(opened(&self.tx, &self.index, INDEX)?, key)
    }

    fn all_ids(&self) -> Result<Vec<String>, StoreError> {
        reads::all_ids(opened(&self.tx, &self.objects, OBJECTS)?)
    }

    fn value(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        reads::value(opened(&self.tx, &self.values, VALUES)?, name)
    }

    fn values_with_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        reads::values_with_prefix(opened(&self.tx, &self.values, VALUES)?, prefix)
    }
}

impl WriteTxn for WriteTables<'_> {
    fn put_object(&mut self, id: &str, stored: &Stored) -> Result<(), StoreError> {
        self.objects
            .insert(id, stored.bytes.as_slice())
            .map_err(backend)?;
        self.revisions
            .insert(id, stored.revision)
            .map_err(backend)?;
        Ok(())
    }

    fn delete_object(&mut self, id: &str) -> Result<(), StoreError> {
        self.objects.remove(id).map_err(backend)?;
        self.revisions.remove(id).map_err(backend)?;
        Ok(())
    }

    fn add_index(&mut self, key: &[u8], id: &str) -> Result<(), StoreError> {
        self.index
            .insert(entry(key, id).as_slice(), ())
            .map_err(backend)?;
        Ok(())
    }

    fn remove_index(&mut self, key: &[u8], id: &str) -> Result<(), StoreError> {
        self.index
            .remove(entry(key, id).as_slice())
            .map_err(backend)?;
        Ok(())
    }

    fn put_value(&mut self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        self.values.insert(name, value).map_err(backend)?;
        Ok(())
    }

    fn delete_value(&mut self, name: &str) -> Result<(), StoreError> {
        self.values.remove(name).map_err(backend)?;
        Ok(())
    }
}

fn write_tables(tx: &WriteTransaction) -> Result<WriteTables<'_>, StoreError> {
    Ok(Tables {
        objects: tx.open_table(OBJECTS).map_err(backend)?,
        revisions: tx.open_table(REVISIONS).map_err(backend)?,
        index: tx.open_table(INDEX).map_err(backend)?,
        values: tx.open_table(VALUES).map_err(backend)?,
    })
}

impl Records<RedbEngine> {
    /// Open the file, creating it (and its schema version) when it does not exist, with the
    /// default page cache (`DEFAULT_CACHE_BYTES`).
    pub fn open(path: &Path) -> Result<RedbStore, StoreError> {
        Self::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// Open with a page cache of `cache_bytes`: the store's share of the server's memory
    /// (redb's own default, 1 GiB, would grow the server's resident size with the data).
    pub fn open_with_cache(path: &Path, cache_bytes: usize) -> Result<RedbStore, StoreError> {
        Ok(Records::over(RedbEngine::open(path, cache_bytes)?))
    }

    /// Rewrite the file without free pages, so that the bytes of deleted or replaced records
    /// (a destroyed key's sealed material) no longer lie in it. Needs exclusive access.
    pub fn compact(&mut self) -> Result<bool, StoreError> {
        // redb compacts only with no read transaction open: the kept one goes first
        self.engine.committed();
        self.engine
            .db
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .compact()
            .map_err(backend)
    }
}

impl RedbEngine {
    fn open(path: &Path, cache_bytes: usize) -> Result<RedbEngine, StoreError> {
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
            // tables a release before them did not make are made empty: no migration needed
            write_tables(&tx)?;
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
        Ok(RedbEngine {
            db: std::sync::RwLock::new(db),
            path: path.to_owned(),
            cache_bytes,
            last_read: Default::default(),
        })
    }

    /// A commit ended (or failed, or the file is reopened): the kept read transaction is stale.
    fn committed(&self) {
        let stale = {
            let mut l = self.last_read.lock().unwrap_or_else(|p| p.into_inner());
            l.generation += 1;
            l.tables.take()
        };
        drop(stale);
    }

    /// Run `f` against the database; after an I/O error (a full disk, say) that left redb
    /// refusing all work, open the file again and run `f` once more.
    fn with_db<T>(
        &self,
        mut f: impl FnMut(&Database) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
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
        // the kept transaction holds the old file open
        self.committed();
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
}

impl Engine for RedbEngine {
    fn read(
        &self,
        f: &mut dyn FnMut(&dyn ReadTxn) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.with_db(|db| {
            let (kept, generation) = {
                let l = self.last_read.lock().unwrap_or_else(|p| p.into_inner());
                (l.tables.clone(), l.generation)
            };
            if let Some(tables) = kept {
                match f(&*tables) {
                    // a failing transaction is not kept: the next read begins its own
                    Err(StoreError::Backend(_)) => self.committed(),
                    other => return other,
                }
            }
            let tables = std::sync::Arc::new(ReadTables::new(db.begin_read().map_err(backend)?));
            let r = f(&*tables);
            if r.is_ok() {
                let mut l = self.last_read.lock().unwrap_or_else(|p| p.into_inner());
                if l.generation == generation {
                    l.tables = Some(tables);
                }
            }
            r
        })
    }

    fn write(
        &self,
        f: &mut dyn FnMut(&mut dyn WriteTxn) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.with_db(|db| {
            let tx = db.begin_write().map_err(backend)?;
            {
                let mut tables = write_tables(&tx)?;
                // on an error the transaction is dropped, which aborts it
                f(&mut tables)?;
            }
            let done = tx.commit().map_err(backend);
            self.committed();
            done
        })
    }

    fn reserve_ids(&self, n: u64) -> Result<u64, StoreError> {
        self.with_db(|db| {
            let tx = db.begin_write().map_err(backend)?;
            let first = {
                let mut meta = tx.open_table(META).map_err(backend)?;
                let last = meta
                    .get("last_id")
                    .map_err(backend)?
                    .map_or(0, |v| v.value());
                meta.insert("last_id", last + n).map_err(backend)?;
                last + 1
            };
            let done = tx.commit().map_err(backend);
            self.committed();
            done.map(|()| first)
        })
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::State;
    use crate::store::{Change, Store};
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
