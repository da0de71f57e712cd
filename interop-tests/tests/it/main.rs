//! The integration tests, one test binary: each module was its own `tests/<name>.rs` binary,
//! each linking the whole server. Run one module with
//! `cargo nextest run -p interop-tests -E 'test(/^e2e::/)'`.

mod access;
mod admin;
mod audit_forgery;
mod backup;
mod bench_smoke;
mod ca;
mod ca_attacks;
mod crash;
mod crash_server;
mod custody;
mod disk_full;
mod e2e;
mod e2e_kat;
mod e2e_objects;
mod e2e_streams;
mod errors;
mod field_clients;
mod first_start;
mod hardening_auth;
mod hardening_connections;
mod hardening_crypto;
mod hardening_limits;
mod hostile;
mod hsm_seal;
mod https;
mod metrics;
mod oasis;
mod options;
mod postgres;
mod promises;
mod pykmip_codec;
mod pykmip_suite;
mod quorum;
mod read_only;
mod replay_detects;
mod rotation;
mod secrets;
mod server_cert;
mod testcases_codec;
