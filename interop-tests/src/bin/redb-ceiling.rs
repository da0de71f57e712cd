//! `redb-ceiling [SECONDS] [DIR]`: the durability ceiling for `kmip-bench --workload create`:
//! redb on this disk, one insert of a record-sized value per write transaction (immediate
//! durability, an fsync each), for SECONDS (default 5). Prints commits per second.
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

use redb::{Database, TableDefinition};
use std::time::{Duration, Instant};

const T: TableDefinition<u64, &[u8]> = TableDefinition::new("t");

fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(5.0);
    let dir = args
        .next()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let path = dir.join(format!("redb-ceiling-{}.redb", std::process::id()));
    let db = Database::create(&path).expect("create the database");
    // a sealed AES-256 key record is about this size
    let value = vec![0x5a_u8; 600];
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let t0 = Instant::now();
    let mut n = 0u64;
    while Instant::now() < end {
        let tx = db.begin_write().expect("write transaction");
        {
            let mut t = tx.open_table(T).expect("table");
            t.insert(n, value.as_slice()).expect("insert");
        }
        tx.commit().expect("commit");
        n += 1;
    }
    let rate = n as f64 / t0.elapsed().as_secs_f64();
    drop(db);
    let _ = std::fs::remove_file(&path);
    println!("{{\"workload\":\"redb-one-insert-per-commit\",\"ops_per_second\":{rate:.1}}}");
}
