//! `kmip-bench`: a KMIP load generator. N mutual-TLS connections run one workload for a fixed
//! time after a warm-up; prints operations per second, p50/p99/p99.9 latency and (with
//! --server-pid) the server's CPU time per operation. Works against any KMIP server.
//!
//!     kmip-bench --data-dir kmip-data --workload get --connections 16 --duration 10
//!     kmip-bench --server h:5696 --server-ca ca.pem --client-cert c.pem --client-key c.key \
//!         --workload sign-rsa
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

use clap::Parser;
use interop_tests::bench;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(name = "kmip-bench")]
struct Args {
    /// The connection options every tool shares (--server, --client-cert, --data-dir, ...).
    #[command(flatten)]
    conn: kmip_client::connection::ConnectionArgs,
    /// get, create, encrypt, sign-rsa, sign-ecdsa, locate, batch-get, mongodb, vsphere, echo.
    #[arg(long)]
    workload: String,
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Seconds measured.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds run before measuring.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Objects to create first (named bench-N) for `locate`.
    #[arg(long, default_value_t = 0)]
    objects: usize,
    /// The server's process IDs (repeat, or separate with commas), for its CPU time per
    /// operation: the sum over all of them.
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<u32>,
    /// Protocol version, e.g. 2.1 or 1.2 (for servers that speak only 1.x).
    #[arg(long, default_value = "2.1")]
    kmip_version: String,
    /// One JSON line instead of text.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let a = Args::parse();
    let endpoint = match a.conn.resolve() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("kmip-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (major, minor) = a
        .kmip_version
        .split_once('.')
        .and_then(|(x, y)| Some((x.parse().ok()?, y.parse().ok()?)))
        .unwrap_or((2, 1));
    let connect = || endpoint.connect().map(|c| c.version(major, minor));
    let result = (|| -> Result<bench::Report, String> {
        let mut setup = connect().map_err(|e| format!("connect: {e}"))?;
        let step = if a.workload == "echo" {
            bench::Step::Echo(bench::get_message("1"))
        } else {
            if a.objects > 0 {
                bench::populate(&mut setup, a.objects).map_err(|e| format!("populate: {e}"))?;
            }
            bench::prepare(&mut setup, &a.workload, a.objects)
                .map_err(|e| format!("prepare: {e}"))?
        };
        // one iteration before the clock, so a workload the server refuses fails loudly
        bench::run_step(&mut setup, &step).map_err(|e| format!("{}: {e}", a.workload))?;
        let clients = (0..a.connections)
            .map(|_| connect().map_err(|e| format!("connect: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(bench::run(
            &a.workload,
            clients,
            Arc::new(step),
            Duration::from_secs_f64(a.warmup),
            Duration::from_secs_f64(a.duration),
            &a.server_pid,
        ))
    })();
    match result {
        Ok(r) => {
            if a.json {
                println!("{}", r.json());
            } else {
                println!(
                    "{}: {} connections, {:.0} ops/s, p50 {} us, p99 {} us, p99.9 {} us, {} errors{}{}",
                    r.workload,
                    r.connections,
                    r.ops_per_second,
                    r.p50_us,
                    r.p99_us,
                    r.p999_us,
                    r.errors,
                    r.server_cpu_us_per_op
                        .map(|c| format!(", server CPU {c:.1} us/op"))
                        .unwrap_or_default(),
                    r.client_cpu_us_per_op
                        .map(|c| format!(", client CPU {c:.1} us/op"))
                        .unwrap_or_default()
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kmip-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
