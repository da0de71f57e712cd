//! A store that answers a message's reads from records fetched for it beforehand, without
//! blocking: how a message runs on an async worker over a store whose reads wait on a network
//! (PostgreSQL). The records are fetched ([`Store::fetch`]) before the message runs; any
//! other read is a miss, which the store remembers ([`Prefetched::missed`]): the message's
//! answer is then thrown away, before anything of it is recorded or committed, and the message
//! runs again where it may block. Commits go to the base store as they are.
//!
//! The fetch is sent after the message arrived, so it sees every commit answered before: the
//! same guarantee as a read of the base store.

use super::{Change, Expected, Precondition, Record, Store, StoreError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A store answering reads of fetched records, over the store they were fetched from.
pub struct Prefetched {
    base: Arc<dyn Store>,
    /// Each identifier asked for: its record and revision (`None`: there is none), or why
    /// the fetch failed, answered to every read of it as the base store would have.
    records: HashMap<String, Result<Option<(Record, u64)>, StoreError>>,
    /// New identifiers reserved beforehand (the first, and how many), handed out once.
    reserved: Mutex<Option<Result<(u64, u64), StoreError>>>,
    missed: AtomicBool,
}

impl Prefetched {
    /// Fetch the records `ids` from `base`, and reserve `new_ids` identifiers (none when 0);
    /// `None` when `base` cannot do it without blocking.
    pub async fn fetch(
        base: &Arc<dyn Store>,
        ids: Vec<String>,
        new_ids: u64,
    ) -> Option<Prefetched> {
        let records = async {
            if ids.is_empty() {
                return Some(HashMap::new());
            }
            let found = base.fetch(ids.clone())?.await;
            Some(match found {
                Ok(found) => {
                    let mut found: HashMap<String, (Record, u64)> = found
                        .into_iter()
                        .map(|(r, rev)| (r.id.clone(), (r, rev)))
                        .collect();
                    ids.into_iter()
                        .map(|id| {
                            let r = found.remove(&id);
                            (id, Ok(r))
                        })
                        .collect()
                }
                Err(e) => ids.into_iter().map(|id| (id, Err(e.clone()))).collect(),
            })
        };
        let reserved = async {
            match new_ids {
                0 => Some(None),
                n => Some(Some(base.fetch_ids(n)?.await.map(|first| (first, n)))),
            }
        };
        let (records, reserved) = tokio::join!(records, reserved);
        Some(Prefetched {
            base: base.clone(),
            records: records?,
            reserved: Mutex::new(reserved?),
            missed: AtomicBool::new(false),
        })
    }

    /// Whether a read asked for something not fetched: what was answered from this store
    /// must be thrown away, and the message run again over the base store.
    pub fn missed(&self) -> bool {
        self.missed.load(Ordering::Relaxed)
    }

    fn miss<T>(&self) -> Result<T, StoreError> {
        self.missed.store(true, Ordering::Relaxed);
        Err(StoreError::Backend(
            "a read of a record not fetched beforehand".into(),
        ))
    }
}

impl Store for Prefetched {
    fn get(&self, id: &str) -> Result<Option<Record>, StoreError> {
        Ok(self.get_versioned(id)?.map(|(r, _)| r))
    }

    fn get_versioned(&self, id: &str) -> Result<Option<(Record, u64)>, StoreError> {
        match self.records.get(id) {
            Some(found) => found.clone(),
            None => self.miss(),
        }
    }

    fn commit_if(&self, expected: Expected, changes: Vec<Change>) -> Result<(), StoreError> {
        self.base.commit_if(expected, changes)
    }

    fn commit_checked(
        &self,
        expected: Expected,
        changes: Vec<Change>,
        check: Precondition,
    ) -> Result<(), StoreError> {
        self.base.commit_checked(expected, changes, check)
    }

    fn queues_commits(&self) -> bool {
        self.base.queues_commits()
    }

    fn queues_commit(&self, expected: &Expected, changes: &[Change]) -> bool {
        self.base.queues_commit(expected, changes)
    }

    fn queue_commit(
        &self,
        expected: Expected,
        changes: Vec<Change>,
        check: Precondition,
        start_writer: super::StartWriter,
    ) -> super::Queued {
        self.base
            .queue_commit(expected, changes, check, start_writer)
    }

    fn write_queued(&self) {
        self.base.write_queued()
    }

    fn lookup(&self, _index_key: &[u8]) -> Result<Vec<String>, StoreError> {
        self.miss()
    }

    fn search(
        &self,
        _all: &[Vec<u8>],
        _any: Option<&[Vec<u8>]>,
    ) -> Result<Vec<String>, StoreError> {
        self.miss()
    }

    fn all_ids(&self) -> Result<Vec<String>, StoreError> {
        self.miss()
    }

    fn value(&self, _name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.miss()
    }

    fn values_with_prefix(&self, _prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.miss()
    }

    /// The identifiers reserved beforehand, once, if `n` is what was reserved.
    fn allocate_ids(&self, n: u64) -> Result<u64, StoreError> {
        let mut reserved = self.reserved.lock().unwrap_or_else(|p| p.into_inner());
        match reserved.take() {
            Some(Ok((first, m))) if m == n => Ok(first),
            Some(Err(e)) => Err(e),
            _ => self.miss(),
        }
    }

    fn names_unique(&self) -> bool {
        self.base.names_unique()
    }

    fn remote(&self) -> bool {
        self.base.remote()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::{MemoryStore, StoreError};

    fn over(
        base: Arc<dyn Store>,
        fetched: Vec<(&str, Result<Option<u64>, StoreError>)>,
    ) -> Prefetched {
        let records = fetched
            .into_iter()
            .map(|(id, r)| {
                let r = r.map(|rev| rev.map(|rev| (base.get(id).unwrap().unwrap(), rev)));
                (id.to_owned(), r)
            })
            .collect();
        Prefetched {
            base,
            records,
            reserved: Mutex::new(None),
            missed: AtomicBool::new(false),
        }
    }

    #[test]
    fn it_answers_what_was_fetched_and_remembers_any_other_read() {
        let base: Arc<dyn Store> = Arc::new(MemoryStore::new());
        crate::store::suite::run(base.as_ref());
        let p = over(base.clone(), vec![("1", Ok(Some(7))), ("2", Ok(None))]);
        assert_eq!(p.get_versioned("1").unwrap().unwrap().1, 7);
        assert_eq!(p.get("2").unwrap(), None);
        assert!(!p.missed());
        assert!(p.all_ids().is_err());
        assert!(p.missed(), "a search is not fetched");
        let p = over(base.clone(), vec![("1", Ok(Some(1)))]);
        assert!(p.peek("3").is_err() && p.missed());
        let p = over(base.clone(), vec![("1", Ok(Some(1)))]);
        assert!(p.allocate_ids(1).is_err() && p.missed(), "none reserved");
        let p = over(base.clone(), vec![]);
        *p.reserved.lock().unwrap() = Some(Ok((40, 1)));
        assert!(
            p.allocate_ids(2).is_err() && p.missed(),
            "not as many as reserved"
        );
        let p = over(base.clone(), vec![]);
        *p.reserved.lock().unwrap() = Some(Ok((40, 1)));
        assert_eq!(p.allocate_ids(1).unwrap(), 40);
        assert!(!p.missed());
        assert!(p.allocate_ids(1).is_err() && p.missed(), "handed out once");
    }

    #[test]
    fn a_failed_fetch_is_the_answer_not_a_miss() {
        let base: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let p = Prefetched {
            base,
            records: [("1".to_owned(), Err(StoreError::Backend("gone".into())))].into(),
            reserved: Mutex::new(Some(Err(StoreError::Backend("no ids".into())))),
            missed: AtomicBool::new(false),
        };
        assert!(matches!(p.get("1"), Err(StoreError::Backend(e)) if e == "gone"));
        assert!(matches!(p.allocate_ids(1), Err(StoreError::Backend(e)) if e == "no ids"));
        assert!(!p.missed(), "the base store would have failed the same");
    }

    #[test]
    fn commits_go_to_the_base() {
        let base: Arc<dyn Store> = Arc::new(MemoryStore::new());
        crate::store::suite::run(base.as_ref());
        let p = over(base.clone(), vec![("1", Ok(Some(1)))]);
        let mut r = p.get("1").unwrap().unwrap();
        r.owner = Some("carol".into());
        p.commit(vec![Change::Put(r)]).unwrap();
        assert_eq!(
            base.get("1").unwrap().unwrap().owner.as_deref(),
            Some("carol")
        );
        assert!(!p.missed());
    }
}
