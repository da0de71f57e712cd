//! One test suite for every engine: memory, redb and the fault injector here, PostgreSQL from
//! the interop tests (which start a database). Public so that they can run it.
#![allow(clippy::unwrap_used, missing_docs)]

use super::*;
use crate::state::State;
use kmip_codec::vocab::{enums, tag};
use kmip_codec::{Ttlv, Value};

fn name(n: &str) -> Ttlv {
    Ttlv::structure(
        tag::NAME,
        vec![
            Ttlv::new(tag::NAME_VALUE, Value::TextString(n.into())),
            Ttlv::new(tag::NAME_TYPE, Value::Enumeration(1)),
        ],
    )
}

fn record(id: &str, n: &str, state: State) -> Record {
    Record {
        id: id.into(),
        object_type: enums::object_type::SYMMETRIC_KEY,
        state,
        attributes: vec![
            name(n),
            Ttlv::new(
                tag::CRYPTOGRAPHIC_ALGORITHM,
                Value::Enumeration(enums::cryptographic_algorithm::AES),
            ),
        ],
        sealed: Some(vec![1, 2, 3]),
        generated: false,
        owner: Some("alice".into()),
        grants: vec![("bob".into(), vec![0x0A, 0x1F])],
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// The whole suite, on a store over a fresh engine made by `fresh` (every call an empty one).
pub fn run_all<S: Store + 'static>(fresh: &dyn Fn(bool) -> S) {
    fetches(std::sync::Arc::new(fresh(false)));
    concurrent_creates(std::sync::Arc::new(fresh(false)));
    one_bad_create_fails_alone(std::sync::Arc::new(fresh(false)));
    run(&fresh(false));
    conflicts(&fresh(false));
    values(&fresh(false));
    names(&fresh(true));
    search(&fresh(false));
}

pub fn run(store: &dyn Store) {
    assert_eq!(store.get("1").unwrap(), None);
    let first = store.allocate_ids(2).unwrap();
    // never one handed out before (consecutive within one request, not across requests)
    assert!(store.allocate_ids(1).unwrap() >= first + 2);
    let a = record("1", "alpha", State::PreActive);
    let b = record("2", "alphabet", State::Active);
    store
        .commit(vec![Change::Put(a.clone()), Change::Put(b.clone())])
        .unwrap();
    assert_eq!(store.get("1").unwrap(), Some(a.clone()));
    assert_eq!(sorted(store.all_ids().unwrap()), vec!["1", "2"]);
    let by_name = |n: &str| {
        store
            .lookup(&record::index_key(tag::NAME, n.as_bytes()))
            .unwrap()
    };
    assert_eq!(
        by_name("alpha"),
        vec!["1"],
        "exact names only, not prefixes"
    );
    assert_eq!(by_name("alphabet"), vec!["2"]);
    // an update moves the index entries
    let mut a2 = a.clone();
    a2.state = State::Active;
    a2.attributes[0] = name("renamed");
    store.commit(vec![Change::Put(a2.clone())]).unwrap();
    assert!(by_name("alpha").is_empty());
    assert_eq!(by_name("renamed"), vec!["1"]);
    let keys = record::index_key(
        tag::OBJECT_TYPE,
        &enums::object_type::SYMMETRIC_KEY.to_be_bytes(),
    );
    assert_eq!(sorted(store.lookup(&keys).unwrap()), vec!["1", "2"]);
    store.commit(vec![Change::Delete("2".into())]).unwrap();
    assert_eq!(store.get("2").unwrap(), None);
    assert!(by_name("alphabet").is_empty());
    assert_eq!(store.lookup(&keys).unwrap(), vec!["1"]);
    let owned = record::index_key(record::OWNER, b"alice");
    assert_eq!(store.lookup(&owned).unwrap(), vec!["1"]);
    assert_eq!(
        store.get("1").unwrap().unwrap().owner.as_deref(),
        Some("alice")
    );
}

/// Reads without blocking ([`Store::fetch`]), on a store that has them: a fetch answers what
/// a read would, every commit answered before it was asked included, and concurrent fetches
/// each get their own records. A store without them must not wait on a network.
pub fn fetches(store: std::sync::Arc<dyn Store>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let fetch = |ids: &[&str]| {
        let ids = ids.iter().map(|s| s.to_string()).collect();
        rt.block_on(Prefetched::fetch(&store, ids, 0))
    };
    if fetch(&["1"]).is_none() {
        assert!(!store.remote(), "a remote store must read without blocking");
        return;
    }
    for i in 0..20 {
        let id = format!("f{i}");
        let mut r = record(&id, &format!("fetched-{i}"), State::PreActive);
        store.commit(vec![Change::Put(r.clone())]).unwrap();
        let f = fetch(&[&id, "absent"]).unwrap();
        assert_eq!(
            f.get_versioned(&id).unwrap(),
            store.get_versioned(&id).unwrap()
        );
        assert_eq!(f.get("absent").unwrap(), None);
        assert!(!f.missed());
        // a commit answered before the fetch was asked: seen
        r.state = State::Active;
        store.commit(vec![Change::Put(r.clone())]).unwrap();
        let f = fetch(&[&id]).unwrap();
        assert_eq!(f.get(&id).unwrap(), Some(r));
        // anything else is a miss, remembered
        assert!(f.value("v").is_err() && f.get("f0-other").is_err());
        assert!(f.missed());
    }
    // many at once, gathered into few statements: each gets its own record, and only it
    let answers = rt.block_on(async {
        let asks: Vec<_> = (0..200)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let id = format!("f{}", i % 20);
                    let f = Prefetched::fetch(&store, vec![id.clone()], 0)
                        .await
                        .unwrap();
                    (id, f)
                })
            })
            .collect();
        let mut out = Vec::new();
        for a in asks {
            out.push(a.await.unwrap());
        }
        out
    });
    for (id, f) in answers {
        assert_eq!(f.get(&id).unwrap().unwrap().id, id);
        let other = if id == "f1" { "f2" } else { "f1" };
        assert!(f.get(other).is_err(), "{id}'s fetch answered {other}");
    }
    // identifiers reserved without blocking: never one handed out before, by either path,
    // nor twice, however many are asked for at once
    let mut seen = std::collections::HashSet::new();
    for _ in 0..20 {
        let p = rt
            .block_on(Prefetched::fetch(&store, Vec::new(), 1))
            .unwrap();
        assert!(seen.insert(p.allocate_ids(1).unwrap()));
        assert!(seen.insert(store.allocate_ids(1).unwrap()));
    }
    let at_once = rt.block_on(async {
        let asks: Vec<_> = (0..100)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    let p = Prefetched::fetch(&store, Vec::new(), 2).await.unwrap();
                    p.allocate_ids(2).unwrap()
                })
            })
            .collect();
        let mut out = Vec::new();
        for a in asks {
            out.push(a.await.unwrap());
        }
        out
    });
    for first in at_once {
        assert!(
            seen.insert(first) && seen.insert(first + 1),
            "{first} given twice"
        );
    }
    // a steady stream from a few tasks: the sending task stops and starts again many times
    // while reads arrive, and none is dropped (attack round 8: one in 40,000 was, asked just
    // as the task stopped)
    let failed = rt.block_on(async {
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut failed = 0;
                    for i in 0..5_000 {
                        let id = format!("f{}", (t + i) % 20);
                        let f = Prefetched::fetch(&store, vec![id.clone()], 0)
                            .await
                            .unwrap();
                        failed += usize::from(f.get(&id).is_err());
                    }
                    failed
                })
            })
            .collect();
        let mut failed = 0;
        for t in tasks {
            failed += t.await.unwrap();
        }
        failed
    });
    assert_eq!(failed, 0, "fetches failed of 40,000");
}

/// A read-modify-write that raced another writer is refused, and nothing of it is written.
pub fn conflicts(store: &dyn Store) {
    let id = store.allocate_ids(1).unwrap().to_string();
    assert_eq!(store.get_versioned(&id).unwrap(), None);
    store
        .commit_if(
            vec![Expect::Record(id.clone(), None)],
            vec![Change::Put(record(&id, "c", State::PreActive))],
        )
        .unwrap();
    let (r, rev) = store.get_versioned(&id).unwrap().unwrap();
    // a second creation of the same identifier expects it absent: refused
    let again = store.commit_if(
        vec![Expect::Record(id.clone(), None)],
        vec![Change::Put(r.clone())],
    );
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    // two writers read the same revision; the first wins, the second is refused
    let mut first = r.clone();
    first.state = State::Active;
    store
        .commit_if(
            vec![Expect::Record(id.clone(), Some(rev))],
            vec![Change::Put(first.clone())],
        )
        .unwrap();
    let mut second = r.clone();
    second.attributes[0] = name("lost");
    let other = store.allocate_ids(1).unwrap().to_string();
    let late = store.commit_if(
        vec![Expect::Record(id.clone(), Some(rev))],
        vec![
            Change::Put(record(&other, "side", State::Active)),
            Change::Put(second),
        ],
    );
    assert!(matches!(late, Err(StoreError::Conflict(_))), "{late:?}");
    assert_eq!(store.get(&id).unwrap(), Some(first));
    assert_eq!(store.get(&other).unwrap(), None, "all or nothing");
    assert!(store
        .lookup(&record::index_key(tag::NAME, b"side"))
        .unwrap()
        .is_empty());
    let (_, rev2) = store.get_versioned(&id).unwrap().unwrap();
    assert_ne!(rev, rev2, "every write moves the revision");
}

/// Creates from many threads at once, beside updates of one record: where an engine gathers
/// commits that read nothing ([`engine::Engine::gathers_blind`]), the Creates share
/// transactions, and still each one learns its own outcome. A Create whose precondition fails
/// is not written (the others of its group are); every update that read a stale revision is
/// refused and the others are all applied, none lost.
pub fn concurrent_creates(store: std::sync::Arc<dyn Store>) {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    let shared = store.allocate_ids(1).unwrap().to_string();
    store
        .commit_if(
            vec![Expect::Record(shared.clone(), None)],
            vec![Change::Put(record(&shared, "shared", State::PreActive))],
        )
        .unwrap();
    let updates = std::sync::Arc::new(AtomicUsize::new(0));
    let start = std::sync::Arc::new(std::sync::Barrier::new(12));
    let threads: Vec<_> = (0..12)
        .map(|t| {
            let (store, start, shared, updates) = (
                store.clone(),
                start.clone(),
                shared.clone(),
                updates.clone(),
            );
            std::thread::spawn(move || {
                start.wait();
                let mut made = Vec::new();
                for i in 0..25 {
                    if t % 4 == 3 {
                        // a writer that reads: its revision check against the others'
                        let (mut r, rev) = store.get_versioned(&shared).unwrap().unwrap();
                        r.attributes.push(name(&format!("u{t}-{i}")));
                        match store.commit_if(
                            vec![Expect::Record(shared.clone(), Some(rev))],
                            vec![Change::Put(r)],
                        ) {
                            Ok(()) => {
                                updates.fetch_add(1, SeqCst);
                            }
                            Err(StoreError::Conflict(_)) => {}
                            Err(e) => panic!("update: {e}"),
                        }
                        continue;
                    }
                    let id = store.allocate_ids(1).unwrap().to_string();
                    let refused = (t + i) % 7 == 0;
                    let check: Precondition = std::sync::Arc::new(move || match refused {
                        true => Err("refused".into()),
                        false => Ok(()),
                    });
                    let outcome = store.commit_checked(
                        vec![Expect::Record(id.clone(), None)],
                        vec![Change::Put(record(&id, &format!("c{t}"), State::Active))],
                        check,
                    );
                    match refused {
                        true => assert!(
                            matches!(&outcome, Err(StoreError::Precondition(_))),
                            "{outcome:?}"
                        ),
                        false => outcome.unwrap(),
                    }
                    made.push((id, refused));
                }
                made
            })
        })
        .collect();
    let mut ids = Vec::new();
    for th in threads {
        for (id, refused) in th.join().unwrap() {
            assert_eq!(store.get(&id).unwrap().is_none(), refused, "{id}");
            ids.push(id);
        }
    }
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "identifiers are unique");
    // every update acknowledged is there: each added one name, to what the last one read
    let r = store.get(&shared).unwrap().unwrap();
    assert_eq!(r.attributes.len(), 2 + updates.load(SeqCst));
    assert!(updates.load(SeqCst) > 0);
}

/// Creates at once, some with a name past what an engine takes in its index (PostgreSQL's
/// btree rows: about 2.7 KB): where one fails, it fails alone. The others gathered into its
/// group are written (attack round 9: one identity's long names failed a third of another's
/// Creates).
pub fn one_bad_create_fails_alone(store: std::sync::Arc<dyn Store>) {
    // that no compression brings under the limit
    let mut x: u32 = 1;
    let long: String = (0..1000)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            format!("{x:08x}")
        })
        .collect();
    let threads: Vec<_> = (0..10)
        .map(|t| {
            let (store, long) = (store.clone(), long.clone());
            std::thread::spawn(move || {
                let mut made = Vec::new();
                for i in 0..30 {
                    let id = store.allocate_ids(1).unwrap().to_string();
                    let bad = (t + i) % 3 == 0;
                    let n = if bad {
                        long.clone()
                    } else {
                        format!("ok{t}-{i}")
                    };
                    let outcome = store.commit_if(
                        vec![Expect::Record(id.clone(), None)],
                        vec![Change::Put(record(&id, &n, State::Active))],
                    );
                    if let (false, Err(e)) = (bad, &outcome) {
                        panic!("a good Create beside bad ones: {e}");
                    }
                    made.push((id, bad, outcome.is_ok()));
                }
                made
            })
        })
        .collect();
    for th in threads {
        for (id, bad, ok) in th.join().unwrap() {
            assert_eq!(
                store.get(&id).unwrap().is_some(),
                ok,
                "{id} (long name: {bad})"
            );
        }
    }
}

/// Named values: set, read, listed by prefix, removed, and checked like records.
pub fn values(store: &dyn Store) {
    assert_eq!(store.value("q/1").unwrap(), None);
    store
        .commit(vec![
            Change::PutValue("q/1".into(), b"one".to_vec()),
            Change::PutValue("q/2".into(), b"two".to_vec()),
            Change::PutValue("r/1".into(), b"other".to_vec()),
        ])
        .unwrap();
    assert_eq!(store.value("q/1").unwrap().as_deref(), Some(&b"one"[..]));
    let listed: Vec<String> = store
        .values_with_prefix("q/")
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(listed, vec!["q/1", "q/2"]);
    let stale = store.commit_if(
        vec![Expect::Value("q/1".into(), Some(b"uno".to_vec()))],
        vec![Change::DeleteValue("q/1".into())],
    );
    assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
    store
        .commit_if(
            vec![Expect::Value("q/1".into(), Some(b"one".to_vec()))],
            vec![Change::DeleteValue("q/1".into())],
        )
        .unwrap();
    assert_eq!(store.value("q/1").unwrap(), None);
}

/// The name rule, on a store made with unique names: within one owner's live objects.
pub fn names(store: &dyn Store) {
    assert!(store.names_unique());
    let ids: Vec<String> = (0..4)
        .map(|_| store.allocate_ids(1).unwrap().to_string())
        .collect();
    store
        .commit(vec![Change::Put(record(&ids[0], "n", State::Active))])
        .unwrap();
    let taken = store.commit(vec![Change::Put(record(&ids[1], "n", State::Active))]);
    assert!(matches!(taken, Err(StoreError::NameTaken(_))), "{taken:?}");
    assert_eq!(store.get(&ids[1]).unwrap(), None);
    // another owner's name is not taken
    let mut theirs = record(&ids[1], "n", State::Active);
    theirs.owner = Some("carol".into());
    store.commit(vec![Change::Put(theirs)]).unwrap();
    // a destroyed object's name is free again
    let mut gone = record(&ids[0], "n", State::Destroyed);
    gone.sealed = None;
    store.commit(vec![Change::Put(gone)]).unwrap();
    store
        .commit(vec![Change::Put(record(&ids[2], "n", State::Active))])
        .unwrap();
    // a name moving from one record to another in one commit (Re-key) is no clash
    let mut old = record(&ids[2], "old", State::Active);
    old.attributes[0] = name("renamed-away");
    store
        .commit(vec![
            Change::Put(old),
            Change::Put(record(&ids[3], "n", State::Active)),
        ])
        .unwrap();
}

/// Searches intersect index keys, and cut to the keys of `any`.
pub fn search(store: &dyn Store) {
    let ids: Vec<String> = (0..3)
        .map(|_| store.allocate_ids(1).unwrap().to_string())
        .collect();
    let mut a = record(&ids[0], "s", State::Active);
    let mut b = record(&ids[1], "s", State::Active);
    let c = record(&ids[2], "t", State::Active);
    a.owner = Some("dave".into());
    b.grants = vec![];
    b.owner = Some("erin".into());
    store
        .commit(vec![Change::Put(a), Change::Put(b), Change::Put(c)])
        .unwrap();
    let s = record::index_key(tag::NAME, b"s");
    let sym = record::index_key(
        tag::OBJECT_TYPE,
        &enums::object_type::SYMMETRIC_KEY.to_be_bytes(),
    );
    let dave = record::index_key(record::OWNER, b"dave");
    let bob = record::index_key(record::GRANTEE, b"bob");
    assert_eq!(
        sorted(store.search(&[s.clone(), sym.clone()], None).unwrap()),
        sorted(vec![ids[0].clone(), ids[1].clone()])
    );
    assert_eq!(
        sorted(
            store
                .search(std::slice::from_ref(&s), Some(&[dave, bob]))
                .unwrap()
        ),
        vec![ids[0].clone()],
        "erin's object is neither dave's nor granted to bob"
    );
    assert!(store.search(&[s], Some(&[])).unwrap().is_empty());
    assert_eq!(
        store.search(&[], None).unwrap().len(),
        store.all_ids().unwrap().len()
    );
}

/// A write that fails at any point leaves the store as a whole commit or none: the index
/// agrees with the records.
#[cfg(test)]
fn faults() {
    use super::faulty::{Fault, Faulty};
    let store = Records::over(Faulty::new(MemoryEngine::default()));
    let by_name = |n: &str| {
        store
            .lookup(&record::index_key(tag::NAME, n.as_bytes()))
            .unwrap()
    };
    for (n, fault) in [Fault::Before, Fault::Midway, Fault::After]
        .into_iter()
        .enumerate()
    {
        let id = store.allocate_ids(1).unwrap().to_string();
        let label = format!("f{n}");
        store.engine().fail_write(0, fault);
        let out = store.commit(vec![Change::Put(record(&id, &label, State::Active))]);
        assert!(out.is_err(), "{fault:?}");
        let present = store.get(&id).unwrap().is_some();
        assert_eq!(present, fault == Fault::After, "{fault:?}");
        assert_eq!(by_name(&label).len(), usize::from(present), "{fault:?}");
    }
    store.engine().fail_reads(1);
    assert!(store.get("1").is_err());
    assert!(store.get("1").is_ok(), "one read failed, the next succeeds");
    // the rest of the suite still holds over the injector when it injects nothing
    run_all(&|unique| Records::over(Faulty::new(MemoryEngine::default())).unique_names(unique));
}

#[test]
fn fault_injecting_engine() {
    faults();
}

#[test]
fn memory_backend() {
    run_all(&|unique| MemoryStore::new().unique_names(unique));
}

#[test]
fn redb_every_test() {
    let dir = tempfile::tempdir().unwrap();
    let n = std::sync::atomic::AtomicU32::new(0);
    run_all(&|unique| {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        RedbStore::open(&dir.path().join(format!("{i}.redb")))
            .unwrap()
            .unique_names(unique)
    });
}

#[test]
fn redb_backend() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kmip.redb");
    run(&RedbStore::open(&path).unwrap());
    // reopening finds the data, and never hands out an identifier twice (those reserved but
    // not handed out are skipped)
    let s = RedbStore::open(&path).unwrap();
    assert!(s.get("1").unwrap().is_some());
    assert!(s.allocate_ids(1).unwrap() > 3);
}

/// Many threads commit at once: group commit writes them together, and every one of them
/// is there afterwards, with unique identifiers, in a reopened file too.
#[test]
fn redb_concurrent_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kmip.redb");
    let store = std::sync::Arc::new(RedbStore::open(&path).unwrap());
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut ids = Vec::new();
                for _ in 0..40 {
                    let id = store.allocate_ids(1).unwrap().to_string();
                    let mut r = record(&id, &format!("n{id}"), State::Active);
                    r.owner = Some("t".into());
                    store.commit(vec![Change::Put(r)]).unwrap();
                    ids.push(id);
                }
                ids
            })
        })
        .collect();
    let mut all: Vec<String> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "identifiers are unique");
    drop(store);
    let s = RedbStore::open(&path).unwrap();
    for id in &all {
        assert!(s.get(id).unwrap().is_some(), "{id} was committed");
    }
}

/// Commits awaited by tasks ([`Store::queue_commit`]) join the same groups as threads' commits:
/// each settles with its outcome, whoever writes it (a waiting thread, or the writer started
/// for the awaited ones when no one writes), and every one is in the reopened file.
#[test]
fn redb_awaited_and_blocking_commits_share_groups() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kmip.redb");
    let store = std::sync::Arc::new(RedbStore::open(&path).unwrap());
    assert!(store.queues_commits());
    let commit = |store: &RedbStore, t: usize, i: usize| {
        let id = store.allocate_ids(1).unwrap().to_string();
        let r = record(&id, &format!("n{t}-{i}"), State::Active);
        (id, vec![Change::Put(r)])
    };
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                (0..50)
                    .map(|i| {
                        let (id, changes) = commit(&store, t, i);
                        store.commit(changes).unwrap();
                        id
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let refused = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tasks: Vec<_> = (4..12)
        .map(|t| {
            let (store, refused) = (store.clone(), refused.clone());
            rt.spawn(async move {
                let mut ids = Vec::new();
                for i in 0..50 {
                    let (id, changes) = commit(&store, t, i);
                    // every fifth is refused by its check: nothing of it is written
                    let refuse = i % 5 == 4;
                    let check: Precondition = std::sync::Arc::new(move || match refuse {
                        true => Err("refused".into()),
                        false => Ok(()),
                    });
                    let (s, rt) = (store.clone(), tokio::runtime::Handle::current());
                    let start = Box::new(move || drop(rt.spawn_blocking(move || s.write_queued())));
                    match store.queue_commit(Vec::new(), changes, check, start).await {
                        Ok(()) => ids.push(id),
                        Err(StoreError::Precondition(_)) if refuse => {
                            refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            assert!(store.get(&id).unwrap().is_none());
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
                ids
            })
        })
        .collect();
    let mut all: Vec<String> = rt.block_on(async {
        let mut all = Vec::new();
        for t in tasks {
            let ids = tokio::time::timeout(std::time::Duration::from_secs(60), t)
                .await
                .expect("every awaited commit settles")
                .unwrap();
            all.extend(ids);
        }
        all
    });
    for t in threads {
        all.extend(t.join().unwrap());
    }
    assert_eq!(refused.load(std::sync::atomic::Ordering::Relaxed), 8 * 10);
    assert_eq!(all.len(), 4 * 50 + 8 * 40);
    drop(rt);
    drop(store);
    let s = RedbStore::open(&path).unwrap();
    for id in &all {
        assert!(s.get(id).unwrap().is_some(), "{id} was committed");
    }
}

/// Commits awaited while a thread writes are not that thread's to write once it has its own
/// answer (its request would wait on others' commits for as long as they keep coming): it
/// starts a writer for them, which writes them even when no other commit comes after them.
#[test]
fn awaited_commits_queued_behind_a_writing_thread_get_a_writer_of_their_own() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};
    let store = Arc::new(MemoryStore::new());
    let (entered, release) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
    let (e, r) = (entered.clone(), release.clone());
    // the thread's check holds it inside its group until the awaited commits are queued
    let check: Precondition = Arc::new(move || {
        e.wait();
        r.wait();
        Ok(())
    });
    let s = store.clone();
    let thread = std::thread::spawn(move || {
        s.commit_checked(
            Vec::new(),
            vec![Change::Put(record("w", "w", State::Active))],
            check,
        )
    });
    entered.wait();
    let started = Arc::new(AtomicUsize::new(0));
    // a started writer waits until the thread has answered: the thread must not wait for it
    let answered = Arc::new(Barrier::new(2));
    let ok: Precondition = Arc::new(|| Ok(()));
    let queued: Vec<_> = (0..3)
        .map(|i| {
            let r = record(&format!("a{i}"), "a", State::Active);
            let (s, n, a) = (store.clone(), started.clone(), answered.clone());
            let start = Box::new(move || {
                n.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    a.wait();
                    s.write_queued()
                });
            });
            store.queue_commit(Vec::new(), vec![Change::Put(r)], ok.clone(), start)
        })
        .collect();
    assert_eq!(started.load(Ordering::SeqCst), 0, "the thread writes now");
    release.wait();
    thread.join().unwrap().unwrap();
    assert_eq!(started.load(Ordering::SeqCst), 1, "one writer for the rest");
    answered.wait();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    for q in queued {
        let settled = rt
            .block_on(async { tokio::time::timeout(std::time::Duration::from_secs(10), q).await });
        settled.expect("written by the started writer").unwrap();
    }
    for id in ["w", "a0", "a1", "a2"] {
        assert!(store.get(id).unwrap().is_some(), "{id}");
    }
}

/// A thread that comes with a commit while a started writer has not begun writes itself
/// rather than wait: the started writer may be waiting for a thread of a full blocking pool,
/// whose threads would all be waiting for it.
#[test]
fn a_thread_does_not_wait_for_a_writer_that_has_not_begun() {
    use std::sync::{Arc, Mutex};
    let store = Arc::new(MemoryStore::new());
    // the writer is started, and held back
    let held: Arc<Mutex<Option<StartWriter>>> = Arc::default();
    let (s, h) = (store.clone(), held.clone());
    let start: StartWriter = Box::new(move || {
        *h.lock().unwrap() = Some(Box::new(move || s.write_queued()));
    });
    let ok: Precondition = Arc::new(|| Ok(()));
    let awaited = store.queue_commit(
        Vec::new(),
        vec![Change::Put(record("a", "a", State::Active))],
        ok,
        start,
    );
    assert!(held.lock().unwrap().is_some(), "a writer was started");
    let s = store.clone();
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = s.commit(vec![Change::Put(record("t", "t", State::Active))]);
        let _ = done.send(r);
    });
    finished
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the thread wrote without waiting for the started writer")
        .unwrap();
    // the started writer begins late, and finds nothing of its own to do
    let writer = held.lock().unwrap().take().unwrap();
    writer();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let settled = rt.block_on(async {
        tokio::time::timeout(std::time::Duration::from_secs(10), awaited).await
    });
    settled.expect("written with the thread's group").unwrap();
    assert!(store.get("a").unwrap().is_some() && store.get("t").unwrap().is_some());
}

/// Commits that race for one record in one group: each caller learns its own outcome, and
/// exactly one of them wins (the group is written again one commit at a time).
#[test]
fn redb_racing_commits_each_learn_their_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(RedbStore::open(&dir.path().join("kmip.redb")).unwrap());
    store
        .commit(vec![Change::Put(record("x", "x", State::Active))])
        .unwrap();
    let (_, rev) = store.get_versioned("x").unwrap().unwrap();
    for round in 0..5 {
        let start = std::sync::Arc::new(std::sync::Barrier::new(16));
        let threads: Vec<_> = (0..16)
            .map(|t| {
                let (store, start) = (store.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    let r = record("x", &format!("x{round}-{t}"), State::Active);
                    let expect = vec![Expect::Record("x".into(), Some(rev + round))];
                    store.commit_if(expect, vec![Change::Put(r)])
                })
            })
            .collect();
        let outcomes: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let won = outcomes.iter().filter(|o| o.is_ok()).count();
        assert_eq!(won, 1, "round {round}: {outcomes:?}");
        assert!(outcomes
            .iter()
            .all(|o| matches!(o, Ok(()) | Err(StoreError::Conflict(_)))));
    }
}

/// Reads keep one read transaction while no commit comes: a read that starts after a commit
/// was answered sees it, however many reads run beside it on the kept transaction.
#[test]
fn redb_reads_after_a_commit_see_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(RedbStore::open(&dir.path().join("kmip.redb")).unwrap());
    store
        .commit(vec![Change::Put(record("x", "v0", State::Active))])
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    store.get("x").unwrap().unwrap();
                }
            })
        })
        .collect();
    for i in 1..300 {
        let (_, rev) = store.get_versioned("x").unwrap().unwrap();
        let r = record("x", &format!("v{i}"), State::Active);
        store
            .commit_if(
                vec![Expect::Record("x".into(), Some(rev))],
                vec![Change::Put(r)],
            )
            .unwrap();
        let (seen, seen_rev) = store.get_versioned("x").unwrap().unwrap();
        assert_eq!(seen_rev, rev + 1, "commit {i}");
        assert_eq!(
            seen,
            record("x", &format!("v{i}"), State::Active),
            "commit {i}"
        );
        assert_eq!(
            store
                .lookup(&record::index_key(tag::NAME, format!("v{i}").as_bytes()))
                .unwrap(),
            vec!["x"]
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
}

/// Commits gathered in one group each have their precondition checked by the writer before
/// the write transaction: a failed one is not written and its caller learns why; the others
/// are written.
#[test]
fn redb_failed_preconditions_keep_their_commits_out() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(RedbStore::open(&dir.path().join("kmip.redb")).unwrap());
    let start = std::sync::Arc::new(std::sync::Barrier::new(16));
    let checked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let (store, start, checked) = (store.clone(), start.clone(), checked.clone());
            std::thread::spawn(move || {
                start.wait();
                let id = format!("p{t}");
                let check: Precondition = std::sync::Arc::new(move || {
                    checked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    match t % 3 {
                        0 => Err(format!("record of {t} not written")),
                        _ => Ok(()),
                    }
                });
                let r = record(&id, &id, State::Active);
                (
                    t,
                    store.commit_checked(Vec::new(), vec![Change::Put(r)], check),
                )
            })
        })
        .collect();
    for th in threads {
        let (t, outcome) = th.join().unwrap();
        let stored = store.get(&format!("p{t}")).unwrap();
        if t % 3 == 0 {
            assert!(
                matches!(&outcome, Err(StoreError::Precondition(m)) if m.contains(&t.to_string())),
                "{t}: {outcome:?}"
            );
            assert!(stored.is_none(), "{t} was written");
        } else {
            assert!(outcome.is_ok(), "{t}: {outcome:?}");
            assert!(stored.is_some(), "{t} was not written");
        }
    }
    assert_eq!(checked.load(std::sync::atomic::Ordering::SeqCst), 16);
}

/// A commit made on another thread ([`Queued::elsewhere`]) settles the task awaiting it with
/// its outcome; work dropped before it committed (a panic, a runtime shutting down) settles
/// it with an error, never leaves it waiting.
#[test]
fn a_commit_made_elsewhere_always_settles() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (queued, settle) = Queued::elsewhere();
    std::thread::spawn(move || settle.settle(Err(StoreError::Conflict("7".into()))));
    assert!(matches!(rt.block_on(queued), Err(StoreError::Conflict(id)) if id == "7"));
    let (queued, settle) = Queued::elsewhere();
    std::thread::spawn(move || settle.settle(Ok(())));
    assert!(rt.block_on(queued).is_ok());
    let (queued, settle) = Queued::elsewhere();
    let _ = std::thread::spawn(move || {
        let _held = settle;
        panic!("the commit's work failed");
    })
    .join();
    assert!(matches!(rt.block_on(queued), Err(StoreError::Backend(_))));
}
