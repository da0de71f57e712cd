//! The store: records of managed objects behind a small trait, with a redb backend (the
//! default, one file) and an in-memory one for tests. Both keep the same secondary indexes, so
//! that finding objects by an indexed attribute reads only the matching records.
//!
//! A record holds the object's metadata in clear and its material sealed by the core; the
//! store never sees plaintext key bytes.

pub mod backup;
mod memory;
mod overlay;
mod record;
mod redb_store;

pub use memory::MemoryStore;
pub use overlay::Overlay;
pub use record::{index_key, index_keys, item_index_key, Record, GRANTEE, OWNER};
pub use redb_store::RedbStore;

use thiserror::Error;

/// The layout version of stored data, written on creation and checked on open.
pub const SCHEMA_VERSION: u64 = 1;

/// Why the store failed.
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The storage engine failed; the text says how.
    #[error("storage backend: {0}")]
    Backend(String),
    /// A record's stored bytes do not decode.
    #[error("stored record {0} is corrupt")]
    Corrupt(String),
    /// The data file was written by a release with another schema.
    #[error("data file has schema version {found}, this release reads {expected}")]
    Schema {
        /// The data file's schema version.
        found: u64,
        /// The version this release reads and writes.
        expected: u64,
    },
    /// Another object already has this name.
    #[error("the name {0:?} is taken: names are unique within the server")]
    NameTaken(String),
    /// A record changed between its read and the commit that expected it unchanged.
    #[error("object {0} changed since it was read")]
    Conflict(String),
}

/// A fingerprint of a record's stored bytes: equal fingerprints, the same record.
pub fn fingerprint(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// What a commit expects to find: the record it read, by its fingerprint (`None`: absent).
pub type Expected = Vec<(String, Option<u64>)>;

/// One change of a transaction.
#[derive(Clone, Debug)]
pub enum Change {
    /// Write the record, in full.
    Put(Record),
    /// Remove the record with this identifier.
    Delete(String),
}

/// The storage interface. Every method is one transaction: [`Store::commit`] applies all of
/// its changes or none, and is durable when it returns; readers never see part of a commit.
pub trait Store: Send + Sync {
    /// The record with identifier `id`, if any.
    fn get(&self, id: &str) -> Result<Option<Record>, StoreError>;
    /// [`Store::get`] for a read that will not be written back (a search, a check): it takes
    /// no part in the commit's expectations, so a scan of many records costs no memory.
    fn peek(&self, id: &str) -> Result<Option<Record>, StoreError> {
        self.get(id)
    }
    /// The record and the [`fingerprint`] of its stored form, for [`Store::commit_if`].
    fn get_versioned(&self, id: &str) -> Result<Option<(Record, u64)>, StoreError> {
        Ok(self.get(id)?.map(|r| {
            let f = fingerprint(&r.encode());
            (r, f)
        }))
    }
    /// Apply `changes`, all or none, durably.
    fn commit(&self, changes: Vec<Change>) -> Result<(), StoreError> {
        self.commit_if(Vec::new(), changes)
    }
    /// [`Store::commit`] if every record in `expected` is still as it was read, else
    /// [`StoreError::Conflict`] and nothing is written: a read-modify-write that raced
    /// another writer of the same object loses nothing, it is refused (and retried).
    fn commit_if(&self, expected: Expected, changes: Vec<Change>) -> Result<(), StoreError>;
    /// Identifiers whose record has this index key (see [`index_keys`]), in no order.
    fn lookup(&self, index_key: &[u8]) -> Result<Vec<String>, StoreError>;
    /// Every identifier, in no order.
    fn all_ids(&self) -> Result<Vec<String>, StoreError>;
    /// Reserve `n` consecutive new identifiers and return the first.
    fn allocate_ids(&self, n: u64) -> Result<u64, StoreError>;
    /// Whether a Name may belong to only one of an owner's objects not destroyed (the server
    /// policy `--unique-names`: KMIP's rule, kept within one owner so that it says nothing of
    /// other identities' names). A store that enforces it refuses, with
    /// [`StoreError::NameTaken`], a commit that would break it.
    fn names_unique(&self) -> bool {
        false
    }
    /// Write a backup of every record, as of one committed state, into the new file `out`
    /// (see [`backup`]), with `files` of the data directory that belong with the store.
    fn backup(
        &self,
        _files: &[(&str, &[u8])],
        _out: &std::path::Path,
    ) -> Result<backup::Manifest, backup::BackupError> {
        Err(backup::BackupError::Unsupported)
    }
}

#[cfg(test)]
pub(crate) mod suite;
