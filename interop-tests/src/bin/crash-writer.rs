//! Test helper for the crash test: creates keys in a data directory forever and prints
//! `id sha256(material)` for each one after its commit has returned. The test kills it with
//! SIGKILL at random moments and checks that every printed key survived intact.
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

use lifecycle::core::{Core, MasterKey};
use lifecycle::store::RedbStore;
use lifecycle::Manager;
use std::io::Write;
use std::sync::Arc;

fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).expect("data directory"));
    let master = MasterKey::load_or_create(&dir.join("master.key")).expect("master key");
    let store = RedbStore::open(&dir.join("kmip.redb")).expect("store");
    let m = Manager::new(Arc::new(store), Core::new(master)).autocommit(None);
    let mut out = std::io::stdout().lock();
    for i in 0u64.. {
        use kmip_codec::vocab::{enums, tag};
        use kmip_codec::{Ttlv, Value};
        let attrs = vec![
            Ttlv::new(
                tag::CRYPTOGRAPHIC_ALGORITHM,
                Value::Enumeration(enums::cryptographic_algorithm::AES),
            ),
            Ttlv::new(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(256)),
            Ttlv::new(tag::OBJECT_GROUP, Value::TextString(format!("crash-{i}"))),
        ];
        let r = m
            .create(enums::object_type::SYMMETRIC_KEY, attrs, 1)
            .expect("create");
        let (_, obj) = m.export(&r.id, 1).expect("export");
        let digest = openssl::sha::sha256(&kmip_codec::encode(&obj));
        writeln!(out, "{} {}", r.id, kmip_codec::text::hex(&digest)).expect("stdout");
        out.flush().expect("stdout");
    }
}
