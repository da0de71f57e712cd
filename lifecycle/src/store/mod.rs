//! The store: records of managed objects behind a small trait ([`Store`]), which one record
//! layer ([`Records`]) implements over any [`Engine`]: redb (the default, one file), memory
//! (tests and tools), and a fault injector for tests. The record layer holds the rules (the
//! indexes that let a search read only matching records, revisions for conflict checks, the
//! name rule, identifier blocks, group commit); an engine only stores bytes in transactions.
//!
//! A record holds the object's metadata in clear and its material sealed by the core; the
//! store never sees plaintext key bytes.

pub mod backup;
pub mod engine;
pub mod faulty;
mod gather;
mod memory;
mod overlay;
mod postgres;
mod prefetched;
mod record;
mod records;
mod redb_store;

pub use engine::Engine;
pub use memory::{MemoryEngine, MemoryStore};
pub use overlay::Overlay;
pub use postgres::{PostgresEngine, PostgresStore};
pub use prefetched::Prefetched;
pub use record::{index_key, index_keys, item_index_key, Record, GRANTEE, OWNER};
pub use records::{Queued, Records, Settle, StartWriter};
pub use redb_store::{RedbEngine, RedbStore};

use thiserror::Error;

/// The named value holding the check value of the master key the store's records are sealed
/// under: a server with another key is refused (every node over a shared store needs the same).
pub const MASTER_CHECK: &str = "master-key-check";

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
    /// The commit's [`Precondition`] failed: nothing was written.
    #[error("{0}")]
    Precondition(String),
    /// The database could not be reached, or did not answer in time, before anything was
    /// committed: nothing was written. Not one request's fault: trying it alone would fail
    /// the same way.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The connection to the database was lost after the commit was sent: the changes may or
    /// may not have been made.
    #[error(
        "the database connection was lost while committing ({0}): the changes may have been made"
    )]
    OutcomeUnknown(String),
}

/// What must hold before a commit is written, checked by whoever writes it just before its
/// write transaction: the server's is that the message's audit record is written (audit before
/// effect). Under group commit the writer checks every commit it gathered, so the first check
/// writes all their records at once, where each caller wrote its own before.
pub type Precondition = std::sync::Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Run `check`: its failure as the store's error.
pub fn run_check(check: &Precondition) -> Result<(), StoreError> {
    check().map_err(StoreError::Precondition)
}

/// What a commit expects to find as its transaction read it.
#[derive(Clone, Debug, PartialEq)]
pub enum Expect {
    /// The record at this revision (`None`: absent).
    Record(String, Option<u64>),
    /// The named value with these bytes (`None`: absent).
    Value(String, Option<Vec<u8>>),
}

/// What a commit expects to find: everything it read and then changed.
pub type Expected = Vec<Expect>;

/// One change of a transaction.
#[derive(Clone, Debug)]
pub enum Change {
    /// Write the record, in full.
    Put(Record),
    /// Remove the record with this identifier.
    Delete(String),
    /// Set a named value.
    PutValue(String, Vec<u8>),
    /// Remove a named value.
    DeleteValue(String),
}

/// A store's or an engine's answer that a task awaits instead of blocking its thread
/// ([`Store::fetch`], [`Engine::fetch`] and their identifier reservations).
pub type Awaited<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, StoreError>> + Send + 'a>>;

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
    /// The record and its revision, for [`Store::commit_if`].
    fn get_versioned(&self, id: &str) -> Result<Option<(Record, u64)>, StoreError>;
    /// Apply `changes`, all or none, durably.
    fn commit(&self, changes: Vec<Change>) -> Result<(), StoreError> {
        self.commit_if(Vec::new(), changes)
    }
    /// [`Store::commit_if`] once `check` holds (see [`Precondition`]): when it fails, nothing
    /// is written and the error is [`StoreError::Precondition`].
    fn commit_checked(
        &self,
        expected: Expected,
        changes: Vec<Change>,
        check: Precondition,
    ) -> Result<(), StoreError> {
        run_check(&check)?;
        self.commit_if(expected, changes)
    }
    /// Whether [`Store::queue_commit`] queues some commits without blocking: a store that
    /// gathers commits into groups written by one thread at a time. Which ones:
    /// [`Store::queues_commit`].
    fn queues_commits(&self) -> bool {
        false
    }
    /// Whether [`Store::queue_commit`] queues this commit without blocking (on PostgreSQL,
    /// only the commits that read nothing: Creates).
    fn queues_commit(&self, _expected: &Expected, _changes: &[Change]) -> bool {
        self.queues_commits()
    }
    /// [`Store::commit_checked`] for a task that must not block its thread: the commit joins
    /// the queue for the next group, and the returned future settles when it is written or
    /// refused. When the queue has no writer, `start_writer` is called (at once, or later by a
    /// thread that wrote its own commit and leaves awaited ones queued): it must run
    /// [`Store::write_queued`] on a thread that may block. A store that does not queue
    /// ([`Store::queues_commits`]) commits here, blocking.
    fn queue_commit(
        &self,
        expected: Expected,
        changes: Vec<Change>,
        check: Precondition,
        start_writer: StartWriter,
    ) -> Queued {
        drop(start_writer);
        Queued::ready(self.commit_checked(expected, changes, check))
    }
    /// Write every queued commit, blocking its thread: only as a `start_writer` of
    /// [`Store::queue_commit`] says.
    fn write_queued(&self) {}
    /// [`Store::commit`] if every record and value in `expected` is still as it was read,
    /// else [`StoreError::Conflict`] and nothing is written: a read-modify-write that raced
    /// another writer of the same object loses nothing, it is refused (and retried).
    fn commit_if(&self, expected: Expected, changes: Vec<Change>) -> Result<(), StoreError>;
    /// Identifiers whose record has this index key (see [`index_keys`]), in no order.
    fn lookup(&self, index_key: &[u8]) -> Result<Vec<String>, StoreError>;
    /// Identifiers filed under every key of `all` and, when `any` is given, under one of its
    /// keys at least; with neither, every identifier (see [`engine::ReadTxn::search`]).
    fn search(&self, all: &[Vec<u8>], any: Option<&[Vec<u8>]>) -> Result<Vec<String>, StoreError>;
    /// Every identifier, in no order.
    fn all_ids(&self) -> Result<Vec<String>, StoreError>;
    /// A named value.
    fn value(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every named value whose name starts with `prefix`, in name order.
    fn values_with_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// Reserve `n` consecutive new identifiers and return the first.
    fn allocate_ids(&self, n: u64) -> Result<u64, StoreError>;
    /// Whether a Name may belong to only one of an owner's objects not destroyed (the server
    /// policy `--unique-names`: KMIP's rule, kept within one owner so that it says nothing of
    /// other identities' names). A store that enforces it refuses, with
    /// [`StoreError::NameTaken`], a commit that would break it.
    fn names_unique(&self) -> bool {
        false
    }
    /// Whether its calls wait on a network (see [`Engine::remote`]).
    fn remote(&self) -> bool {
        false
    }
    /// The records with these identifiers and their revisions, read without blocking (see
    /// [`Engine::fetch`]): what a [`Prefetched`] store answers from. `None` when the store
    /// has no such path.
    fn fetch(&self, _ids: Vec<String>) -> Option<Awaited<'_, Vec<(Record, u64)>>> {
        None
    }
    /// [`Store::allocate_ids`] without blocking (see [`Engine::fetch_ids`]): what a
    /// [`Prefetched`] store hands out. `None` when the store has no such path.
    fn fetch_ids(&self, _n: u64) -> Option<Awaited<'_, u64>> {
        None
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

#[doc(hidden)]
pub mod suite;
