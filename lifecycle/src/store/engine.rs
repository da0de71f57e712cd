//! What a storage backend provides: explicit read and write transactions over three keyspaces
//! (records by identifier with a revision, index entries, named values) and durable blocks of
//! identifiers. Nothing here knows what a record means: encoding, index upkeep, the name rule
//! and conflict checks live once, in [`super::Records`], over any engine.

use super::StoreError;

/// A record as an engine keeps it: its encoded bytes and the revision the record layer gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// The encoded record.
    pub bytes: Vec<u8>,
    /// Raised by one at every write of the record (1 for the first): a commit that expects
    /// another revision lost a race.
    pub revision: u64,
}

/// The reads of a transaction. A read transaction sees one committed state; a write
/// transaction also sees its own writes.
pub trait ReadTxn {
    /// The record with this identifier.
    fn object(&self, id: &str) -> Result<Option<Stored>, StoreError>;
    /// The identifiers filed under this index key, in no order.
    fn ids_with(&self, key: &[u8]) -> Result<Vec<String>, StoreError>;
    /// Whether `id` is filed under `key`: one point read.
    fn has(&self, key: &[u8], id: &str) -> Result<bool, StoreError>;
    /// The identifiers filed under every key of `all` and, when `any` is given, under at least
    /// one of its keys: a Locate's narrowing, which a SQL engine runs as one query. With `any`
    /// (a caller's reach: its own objects, those granted to it) the work starts from those and
    /// checks each against `all` point by point, so that it is bounded by what the caller may
    /// see, and neither its cost nor its time says anything of other identities' objects.
    /// Without (an administrator), the sets of `all` are intersected, smallest first.
    fn search(&self, all: &[Vec<u8>], any: Option<&[Vec<u8>]>) -> Result<Vec<String>, StoreError> {
        if let Some(any) = any {
            let mut reach = std::collections::BTreeSet::new();
            for k in any {
                reach.extend(self.ids_with(k)?);
            }
            let mut out = Vec::new();
            for id in reach {
                let mut matches = true;
                for k in all {
                    if !self.has(k, &id)? {
                        matches = false;
                        break;
                    }
                }
                if matches {
                    out.push(id);
                }
            }
            return Ok(out);
        }
        let mut sets: Vec<Vec<String>> = Vec::new();
        for k in all {
            sets.push(self.ids_with(k)?);
        }
        sets.sort_by_key(Vec::len);
        let mut sets = sets.into_iter();
        let Some(first) = sets.next() else {
            return self.all_ids();
        };
        let rest: Vec<std::collections::HashSet<String>> =
            sets.map(|s| s.into_iter().collect()).collect();
        Ok(first
            .into_iter()
            .filter(|id| rest.iter().all(|s| s.contains(id)))
            .collect())
    }
    /// Every record's identifier, in no order.
    fn all_ids(&self) -> Result<Vec<String>, StoreError>;
    /// A named value (the master key's check value, pending approvals, ...).
    fn value(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every named value whose name starts with `prefix`, in name order.
    fn values_with_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
}

/// The writes of a transaction: nothing is visible to others before the engine commits it.
pub trait WriteTxn: ReadTxn {
    /// Write a record (replacing any with its identifier).
    fn put_object(&mut self, id: &str, stored: &Stored) -> Result<(), StoreError>;
    /// Remove a record.
    fn delete_object(&mut self, id: &str) -> Result<(), StoreError>;
    /// File `id` under an index key.
    fn add_index(&mut self, key: &[u8], id: &str) -> Result<(), StoreError>;
    /// Remove `id` from under an index key.
    fn remove_index(&mut self, key: &[u8], id: &str) -> Result<(), StoreError>;
    /// Set a named value.
    fn put_value(&mut self, name: &str, value: &[u8]) -> Result<(), StoreError>;
    /// Remove a named value.
    fn delete_value(&mut self, name: &str) -> Result<(), StoreError>;
    /// Make the transactions that check `key` (a name the name rule checks, a record or value
    /// expected absent) take turns until this one ends, each seeing what the ones before it
    /// committed. Nothing to do for an engine that writes one transaction at a time.
    fn lock_key(&mut self, _key: &[u8]) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A storage backend.
pub trait Engine: Send + Sync {
    /// Run `f` in a read transaction.
    fn read(
        &self,
        f: &mut dyn FnMut(&dyn ReadTxn) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;
    /// Run `f` in a write transaction and commit it durably, all of it or nothing. An engine
    /// whose transactions can fail for reasons that retrying cures (a serialization failure
    /// between nodes) runs `f` again in a new transaction: `f` reads what it depends on
    /// inside the transaction, every time.
    fn write(
        &self,
        f: &mut dyn FnMut(&mut dyn WriteTxn) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;
    /// Reserve `n` identifiers never handed out before, by this process or any other on the
    /// same data, and return the first; durable before it returns.
    fn reserve_ids(&self, n: u64) -> Result<u64, StoreError>;
    /// How many identifiers the record layer reserves at a time (it hands them out from
    /// memory): a thousand spare a transaction per Create on one node.
    fn id_block(&self) -> u64 {
        1024
    }
    /// Whether it writes one transaction at a time (redb, memory): then the record layer
    /// gathers concurrent commits into one transaction, so that they share one fsync. An
    /// engine that runs transactions side by side (PostgreSQL) would lose its parallelism:
    /// it gathers only the commits that read nothing ([`Engine::gathers_blind`]).
    fn one_writer(&self) -> bool {
        true
    }
    /// Whether, running transactions side by side, it still gathers concurrent commits that
    /// read nothing (records created under identifiers never handed out before: see
    /// [`super::Records`]) into one transaction. On PostgreSQL a transaction's fixed cost (its
    /// round trip, its statement, its commit record) is most of what a Create costs the
    /// database: a group of Creates is one statement, at half the database's CPU per Create.
    /// Commits that read keep the engine's parallelism: a group's reads would be round trips
    /// taken one after the other, with every member waiting.
    fn gathers_blind(&self) -> bool {
        false
    }
    /// Whether its calls wait on a network: the server then serves every message from its
    /// blocking threads, never from the async workers.
    fn remote(&self) -> bool {
        false
    }
    /// The records with these identifiers (those that exist, with each one's identifier, in
    /// no order), read without
    /// blocking: for a task on an async worker, where [`Engine::read`] of a remote engine
    /// would stall every connection the worker serves. `None` when the engine has no such
    /// path, or cannot take it here (no async runtime).
    fn fetch(&self, _ids: Vec<String>) -> Option<super::Awaited<'static, Vec<(String, Stored)>>> {
        None
    }
    /// [`Engine::reserve_ids`] without blocking, for a task on an async worker (the first
    /// identifier); `None` as for [`Engine::fetch`].
    fn fetch_ids(&self, _n: u64) -> Option<super::Awaited<'static, u64>> {
        None
    }
    /// A backup of one committed state (see [`super::backup`]).
    fn backup(
        &self,
        _files: &[(&str, &[u8])],
        _out: &std::path::Path,
    ) -> Result<super::backup::Manifest, super::backup::BackupError> {
        Err(super::backup::BackupError::Unsupported)
    }
}

/// Run a read transaction that returns a value.
pub(crate) fn read<T>(
    engine: &dyn Engine,
    f: impl Fn(&dyn ReadTxn) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let mut out = None;
    engine.read(&mut |tx| {
        out = Some(f(tx)?);
        Ok(())
    })?;
    out.ok_or_else(|| StoreError::Backend("a read transaction returned nothing".into()))
}
