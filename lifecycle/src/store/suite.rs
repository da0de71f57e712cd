//! One test suite for every backend.

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

pub(crate) fn run(store: &dyn Store) {
    assert_eq!(store.get("1").unwrap(), None);
    let first = store.allocate_ids(2).unwrap();
    assert_eq!(store.allocate_ids(1).unwrap(), first + 2);
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

#[test]
fn memory_backend() {
    run(&MemoryStore::new());
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
