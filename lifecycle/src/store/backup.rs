//! Backups of the redb store: every record as stored (metadata in clear, material sealed under
//! the master key, which is never part of a backup), read in one read transaction so that the
//! backup is one committed state of the store, and a manifest that says what it holds.
//!
//! The file: `MAGIC`, then entries (a kind byte, a 4-byte key length, the key, an 8-byte value
//! length, the value), a zero kind byte, then the manifest (UTF-8 `key=value` lines) and its
//! length in 4 bytes. The manifest's `sha256` covers every byte before the manifest, so a
//! changed or cut file is refused before anything is restored. The manifest comes last
//! because the digest is known only once the records are written, and a backup is written in
//! one pass however large the store is.

use super::redb_store::{META, OBJECTS, VALUES};
use super::{StoreError, SCHEMA_VERSION};
use redb::{Database, ReadableDatabase, ReadableTable};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The first bytes of every backup file.
pub const MAGIC: &[u8] = b"kmip-rs backup\n";
/// The layout of this file (not of the store: that is `store_schema` in the manifest).
const FORMAT: u64 = 1;
const END: u8 = 0;
const OBJECT: u8 = 1;
const META_VALUE: u8 = 2;
const FILE: u8 = 3;
/// A named value of the record layer (a store's master key check value, pending approvals).
const NAMED_VALUE: u8 = 4;
/// A manifest is a few lines: anything larger is not one of ours.
const MAX_MANIFEST: u32 = 64 << 10;
/// Records are written back this many to a write transaction: one fsync per thousand, and a
/// bounded transaction however large the backup.
const RESTORE_CHUNK: usize = 1000;

/// Why a backup or a restore failed. Nothing is restored from a file that fails its checks.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum BackupError {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The file is not a backup this release reads.
    #[error("{}: not a kmip-rs backup: {why}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What in it is not as a backup has it.
        why: String,
    },
    /// The file's bytes do not match its manifest's digest: changed or cut.
    #[error("{}: the content does not match the manifest's SHA-256 digest (changed or cut): refused", path.display())]
    Digest {
        /// The file.
        path: PathBuf,
    },
    /// A running server holds the store open.
    #[error("{}: open by a running server (ask it for the backup)", path.display())]
    InUse {
        /// The store's file.
        path: PathBuf,
    },
    /// A restore would overwrite an existing store.
    #[error("{}: already exists: a restore writes a new store only", path.display())]
    Exists {
        /// The existing store's file.
        path: PathBuf,
    },
    /// The store is not one that makes backups (only the redb store does).
    #[error("this store makes no backups")]
    Unsupported,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_owned(),
        source,
    }
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// What a backup holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The layout of the backup file.
    pub format: u64,
    /// The store's `SCHEMA_VERSION` when the backup was made.
    pub store_schema: u64,
    /// How many records the backup holds.
    pub objects: u64,
    /// The store's identifier reservation: a restored store hands out none it already gave.
    pub last_id: u64,
    /// Seconds since the epoch.
    pub created: u64,
    /// Lower-case hex SHA-256 of every byte before the manifest.
    pub sha256: String,
}

impl Manifest {
    /// The manifest as the file holds it: `key=value` lines.
    pub fn to_text(&self) -> String {
        format!(
            "format={}\nstore_schema={}\nobjects={}\nlast_id={}\ncreated={}\nsha256={}\n",
            self.format, self.store_schema, self.objects, self.last_id, self.created, self.sha256
        )
    }

    fn parse(text: &str) -> Option<Manifest> {
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
                .map(str::to_owned)
        };
        let num = |k: &str| get(k)?.parse().ok();
        Some(Manifest {
            format: num("format")?,
            store_schema: num("store_schema")?,
            objects: num("objects")?,
            last_id: num("last_id")?,
            created: num("created")?,
            sha256: get("sha256")?,
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes entries and hashes what it writes.
struct Writer<'a> {
    out: &'a mut dyn Write,
    hash: openssl::sha::Sha256,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.hash.update(bytes);
        self.out.write_all(bytes)
    }

    fn entry(&mut self, kind: u8, key: &[u8], value: &[u8]) -> std::io::Result<()> {
        self.put(&[kind])?;
        self.put(&(key.len() as u32).to_be_bytes())?;
        self.put(key)?;
        self.put(&(value.len() as u64).to_be_bytes())?;
        self.put(value)
    }
}

/// Write a backup of `db` to `out`: the records and the store's metadata as of one read
/// transaction, and `files` (small files of the data directory that belong with the store,
/// such as the master key's check value; never a secret).
pub fn write(
    db: &impl ReadableDatabase,
    files: &[(&str, &[u8])],
    out: &mut dyn Write,
    out_path: &Path,
) -> Result<Manifest, BackupError> {
    let tx = db.begin_read().map_err(backend)?;
    let objects = tx.open_table(OBJECTS).map_err(backend)?;
    let meta = tx.open_table(META).map_err(backend)?;
    let meta_value = |k: &str| -> Result<Option<u64>, StoreError> {
        Ok(meta.get(k).map_err(backend)?.map(|v| v.value()))
    };
    let store_schema = meta_value("schema_version")?.unwrap_or(SCHEMA_VERSION);
    let last_id = meta_value("last_id")?.unwrap_or(0);
    let mut w = Writer {
        out,
        hash: openssl::sha::Sha256::new(),
    };
    let fail = io(out_path);
    let mut count = 0u64;
    (|| -> Result<(), BackupError> {
        w.put(MAGIC).map_err(io(out_path))?;
        w.entry(META_VALUE, b"schema_version", &store_schema.to_be_bytes())
            .map_err(io(out_path))?;
        w.entry(META_VALUE, b"last_id", &last_id.to_be_bytes())
            .map_err(io(out_path))?;
        for (name, bytes) in files {
            w.entry(FILE, name.as_bytes(), bytes)
                .map_err(io(out_path))?;
        }
        for row in objects.iter().map_err(backend)? {
            let (k, v) = row.map_err(backend)?;
            w.entry(OBJECT, k.value().as_bytes(), v.value())
                .map_err(io(out_path))?;
            count += 1;
        }
        // a store written by a release before named values has no such table
        if let Ok(values) = tx.open_table(VALUES) {
            for row in values.iter().map_err(backend)? {
                let (k, v) = row.map_err(backend)?;
                w.entry(NAMED_VALUE, k.value().as_bytes(), v.value())
                    .map_err(io(out_path))?;
            }
        }
        w.put(&[END]).map_err(io(out_path))?;
        Ok(())
    })()?;
    let manifest = Manifest {
        format: FORMAT,
        store_schema,
        objects: count,
        last_id,
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        sha256: hex(&w.hash.finish()),
    };
    let text = manifest.to_text();
    w.out
        .write_all(text.as_bytes())
        .and_then(|()| w.out.write_all(&(text.len() as u32).to_be_bytes()))
        .and_then(|()| w.out.flush())
        .map_err(fail)?;
    Ok(manifest)
}

/// Back up the store file at `store` when no server has it open, into `out` (created; it
/// must not exist). [`BackupError::InUse`] when a server holds the file: redb lets one
/// process open it, and the running server's own read transaction is then the way.
pub fn backup_file(
    store: &Path,
    files: &[(&str, &[u8])],
    out: &Path,
) -> Result<Manifest, BackupError> {
    if !store.exists() {
        return Err(BackupError::Io {
            path: store.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no store here"),
        });
    }
    // read-only first, which writes nothing to the file; a store left unclean by a crash needs
    // redb's repair, which only a writable open makes
    let manifest = match redb::ReadOnlyDatabase::open(store) {
        Ok(db) => write_new(&db, files, out)?,
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
            return Err(BackupError::InUse {
                path: store.to_owned(),
            })
        }
        Err(_) => match Database::open(store) {
            Ok(db) => write_new(&db, files, out)?,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(BackupError::InUse {
                    path: store.to_owned(),
                })
            }
            Err(e) => return Err(backend(format!("{}: {e}", store.display())).into()),
        },
    };
    Ok(manifest)
}

/// [`write`] into a new file `out` (mode 0600), durable when this returns; removed again if
/// the backup fails, so that no partial backup is left to be mistaken for one.
pub fn write_new(
    db: &impl ReadableDatabase,
    files: &[(&str, &[u8])],
    out: &Path,
) -> Result<Manifest, BackupError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let file = opts.open(out).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            BackupError::Exists {
                path: out.to_owned(),
            }
        } else {
            io(out)(e)
        }
    })?;
    let result = (|| {
        let mut w = BufWriter::new(&file);
        let m = write(db, files, &mut w, out)?;
        w.into_inner()
            .map_err(|e| io(out)(e.into_error()))?
            .sync_all()
            .map_err(io(out))?;
        Ok(m)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(out);
    }
    result
}

/// Check a backup file: its layout, and that its content matches the manifest's digest.
pub fn verify(path: &Path) -> Result<Manifest, BackupError> {
    Ok(open_verified(path)?.0)
}

/// The manifest, and the length of the content it covers.
fn open_verified(path: &Path) -> Result<(Manifest, u64), BackupError> {
    let format = |why: &str| BackupError::Format {
        path: path.to_owned(),
        why: why.to_owned(),
    };
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let len = f.metadata().map_err(io(path))?.len();
    if len < MAGIC.len() as u64 + 5 {
        return Err(format("too short"));
    }
    f.seek(SeekFrom::Start(len - 4)).map_err(io(path))?;
    let mut n = [0u8; 4];
    f.read_exact(&mut n).map_err(io(path))?;
    let manifest_len = u32::from_be_bytes(n);
    if manifest_len > MAX_MANIFEST || u64::from(manifest_len) + 4 + MAGIC.len() as u64 > len {
        return Err(format("no manifest at the end"));
    }
    let content_len = len - 4 - u64::from(manifest_len);
    f.seek(SeekFrom::Start(content_len)).map_err(io(path))?;
    let mut text = vec![0u8; manifest_len as usize];
    f.read_exact(&mut text).map_err(io(path))?;
    let manifest = std::str::from_utf8(&text)
        .ok()
        .and_then(Manifest::parse)
        .ok_or_else(|| format("the manifest is unreadable"))?;
    if manifest.format != FORMAT {
        return Err(format(&format!(
            "backup format {}, this release reads {FORMAT}",
            manifest.format
        )));
    }
    f.seek(SeekFrom::Start(0)).map_err(io(path))?;
    let mut hash = openssl::sha::Sha256::new();
    let mut r = BufReader::new(f).take(content_len);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = r.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
    }
    if hex(&hash.finish()) != manifest.sha256 {
        return Err(BackupError::Digest {
            path: path.to_owned(),
        });
    }
    Ok((manifest, content_len))
}

/// Restore the backup at `path` into a new store file `store` (which must not exist): the
/// digest is checked before anything is written, and the index is rebuilt from the records.
/// Returns the manifest and the data-directory files the backup carries (name, bytes).
#[allow(clippy::type_complexity)]
pub fn restore(
    path: &Path,
    store: &Path,
) -> Result<(Manifest, Vec<(String, Vec<u8>)>), BackupError> {
    let (manifest, content_len) = open_verified(path)?;
    if manifest.store_schema != SCHEMA_VERSION {
        return Err(StoreError::Schema {
            found: manifest.store_schema,
            expected: SCHEMA_VERSION,
        }
        .into());
    }
    if store.exists() {
        return Err(BackupError::Exists {
            path: store.to_owned(),
        });
    }
    let result = restore_into(path, store, &manifest, content_len);
    if result.is_err() {
        let _ = std::fs::remove_file(store);
    }
    result.map(|files| (manifest, files))
}

fn restore_into(
    path: &Path,
    store: &Path,
    manifest: &Manifest,
    content_len: u64,
) -> Result<Vec<(String, Vec<u8>)>, BackupError> {
    let format = |why: String| BackupError::Format {
        path: path.to_owned(),
        why,
    };
    let f = std::fs::File::open(path).map_err(io(path))?;
    let mut r = BufReader::new(f).take(content_len);
    let mut magic = vec![0u8; MAGIC.len()];
    r.read_exact(&mut magic).map_err(io(path))?;
    if magic != MAGIC {
        return Err(format("no kmip-rs backup header".into()));
    }
    let db = Database::create(store).map_err(|e| backend(format!("{}: {e}", store.display())))?;
    let mut files = Vec::new();
    let mut chunk: Vec<(String, Vec<u8>)> = Vec::new();
    let mut objects = 0u64;
    let flush = |chunk: &mut Vec<(String, Vec<u8>)>| -> Result<(), StoreError> {
        let tx = db.begin_write().map_err(backend)?;
        {
            let mut t = tx.open_table(OBJECTS).map_err(backend)?;
            for (id, v) in chunk.drain(..) {
                t.insert(id.as_str(), v.as_slice()).map_err(backend)?;
            }
        }
        tx.commit().map_err(backend)
    };
    let mut meta: Vec<(String, u64)> = Vec::new();
    let mut named: Vec<(String, Vec<u8>)> = Vec::new();
    loop {
        let mut kind = [0u8; 1];
        r.read_exact(&mut kind).map_err(io(path))?;
        if kind[0] == END {
            break;
        }
        let mut n4 = [0u8; 4];
        r.read_exact(&mut n4).map_err(io(path))?;
        let mut key = vec![0u8; u32::from_be_bytes(n4) as usize];
        r.read_exact(&mut key).map_err(io(path))?;
        let mut n8 = [0u8; 8];
        r.read_exact(&mut n8).map_err(io(path))?;
        let vlen = u64::from_be_bytes(n8);
        // the digest matched, so lengths are ours; still never allocate past the file
        if vlen > content_len {
            return Err(format("an entry is longer than the file".into()));
        }
        let mut value = vec![0u8; vlen as usize];
        r.read_exact(&mut value).map_err(io(path))?;
        let key = String::from_utf8(key).map_err(|_| format("a key is not UTF-8".into()))?;
        match kind[0] {
            OBJECT => {
                // a record that does not decode would fail on first use: refuse it now
                super::Record::decode(&key, &value)?;
                chunk.push((key, value));
                objects += 1;
                if chunk.len() >= RESTORE_CHUNK {
                    flush(&mut chunk)?;
                }
            }
            META_VALUE => {
                let v: [u8; 8] = value
                    .as_slice()
                    .try_into()
                    .map_err(|_| format(format!("metadata {key} is not a number")))?;
                meta.push((key, u64::from_be_bytes(v)));
            }
            FILE => files.push((key, value)),
            NAMED_VALUE => named.push((key, value)),
            k => return Err(format(format!("unknown entry kind {k}"))),
        }
    }
    flush(&mut chunk)?;
    if objects != manifest.objects {
        return Err(format(format!(
            "{objects} records, the manifest says {}",
            manifest.objects
        )));
    }
    let tx = db.begin_write().map_err(backend)?;
    {
        let mut t = tx.open_table(META).map_err(backend)?;
        for (k, v) in &meta {
            t.insert(k.as_str(), *v).map_err(backend)?;
        }
        let mut t = tx.open_table(VALUES).map_err(backend)?;
        for (k, v) in &named {
            t.insert(k.as_str(), v.as_slice()).map_err(backend)?;
        }
    }
    tx.commit().map_err(backend)?;
    drop(db);
    // opening writes the index: the file carries none, the records are all it needs
    super::RedbStore::open(store)?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::State;
    use crate::store::{Change, Record, RedbStore, Store};

    fn record(id: u64) -> Record {
        Record {
            id: id.to_string(),
            object_type: kmip_codec::vocab::enums::object_type::SYMMETRIC_KEY,
            state: State::Active,
            attributes: vec![],
            sealed: Some(vec![id as u8; 40]),
            owner: Some("alice".into()),
            grants: vec![],
            generated: true,
        }
    }

    #[test]
    fn a_backup_restores_every_record_and_a_changed_byte_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = RedbStore::open(&dir.path().join("a.redb")).unwrap();
        let first = s.allocate_ids(2500).unwrap();
        s.commit(
            (first..first + 2500)
                .map(|i| Change::Put(record(i)))
                .collect(),
        )
        .unwrap();
        s.commit(vec![Change::PutValue("q/1".into(), b"pending".to_vec())])
            .unwrap();
        let out = dir.path().join("b.kmipbak");
        let m = s.backup(&[("master.check", b"check")], &out).unwrap();
        assert_eq!(m.objects, 2500);
        assert!(m.last_id >= first + 2499);
        let (r, files) = restore(&out, &dir.path().join("c.redb")).unwrap();
        assert_eq!(r, m);
        assert_eq!(files, vec![("master.check".to_owned(), b"check".to_vec())]);
        let t = RedbStore::open(&dir.path().join("c.redb")).unwrap();
        for i in first..first + 2500 {
            assert_eq!(t.get(&i.to_string()).unwrap(), Some(record(i)));
        }
        assert_eq!(t.value("q/1").unwrap().as_deref(), Some(&b"pending"[..]));
        // the index was rebuilt: finding by owner works
        let owner = crate::store::index_key(crate::store::OWNER, b"alice");
        assert_eq!(t.lookup(&owner).unwrap().len(), 2500);
        // no identifier handed out twice
        assert!(t.allocate_ids(1).unwrap() > first + 2499);
        // a restore never writes over a store
        assert!(matches!(
            restore(&out, &dir.path().join("c.redb")),
            Err(BackupError::Exists { .. })
        ));
        let mut bytes = std::fs::read(&out).unwrap();
        bytes[MAGIC.len() + 40] ^= 0x80;
        std::fs::write(&out, &bytes).unwrap();
        assert!(matches!(verify(&out), Err(BackupError::Digest { .. })));
        assert!(matches!(
            restore(&out, &dir.path().join("d.redb")),
            Err(BackupError::Digest { .. })
        ));
        assert!(!dir.path().join("d.redb").exists());
    }

    #[test]
    fn a_store_open_elsewhere_is_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.redb");
        let s = RedbStore::open(&path).unwrap();
        let r = backup_file(&path, &[], &dir.path().join("b.kmipbak"));
        assert!(matches!(r, Err(BackupError::InUse { .. })), "{r:?}");
        assert!(!dir.path().join("b.kmipbak").exists());
        drop(s);
        backup_file(&path, &[], &dir.path().join("b.kmipbak")).unwrap();
    }
}
