//! `proxymapd-bench --socket ...`: load one proxymap-protocol server (ours
//! or Postfix's) from a key list and report rate, latency, reply statuses
//! and, when told which processes serve, their CPU time and memory.

use anyhow::{bail, Context, Result};
use clap::Args;
use proxymapd_bench::{load, procstat};
use proxymapd_client::flags;
use std::path::PathBuf;
use std::sync::Arc;

/// Options of the load run.
#[derive(Args)]
pub(crate) struct LoadArgs {
    /// Server socket (ours or Postfix's private/proxymap).
    #[arg(long, value_name = "PATH")]
    socket: PathBuf,
    /// Do not expect a greeting (Postfix 3.0-3.5 servers).
    #[arg(long)]
    no_greeting: bool,
    /// Send instance_flags with this value (Postfix 3.11+ dialect).
    #[arg(long)]
    instance_flags: Option<u32>,
    /// Concurrent connections.
    #[arg(short = 'c', long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds to run (default 10 unless --requests is given).
    #[arg(long)]
    duration: Option<f64>,
    /// Total requests to send instead of a duration.
    #[arg(long, conflicts_with = "duration")]
    requests: Option<u64>,
    /// Table name as clients send it, e.g. lmdb:/etc/postfix/virtual.
    #[arg(long)]
    table: String,
    /// File with one key per line (keys present in the table).
    #[arg(long, value_name = "FILE")]
    keys: PathBuf,
    /// Fraction of requests that look up keys not in the table.
    #[arg(long, default_value_t = 0.0)]
    miss_ratio: f64,
    /// lookup, open-lookup or update.
    #[arg(long, default_value = "lookup")]
    mode: String,
    /// Request flags (default LOCK|FOLD_FIX).
    #[arg(long, default_value_t = flags::LOCK | flags::FOLD_FIX)]
    flags: u32,
    /// Server pid to account CPU time and memory to (repeatable).
    #[arg(long)]
    pid: Vec<u32>,
    /// Account every process with this command name (e.g. proxymap).
    #[arg(long, conflicts_with = "pid")]
    comm: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Run the load and print what it measured; exit status 1 if any request
/// failed or was answered with an error status.
pub(crate) fn run(args: LoadArgs) -> Result<i32> {
    let text =
        std::fs::read(&args.keys).with_context(|| format!("read {}", args.keys.display()))?;
    let keys: Vec<Vec<u8>> = text
        .split(|&b| b == b'\n')
        .filter(|k| !k.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    let mode = match args.mode.as_str() {
        "lookup" => load::Mode::Lookup,
        "open-lookup" => load::Mode::OpenLookup,
        "update" => load::Mode::Update,
        other => bail!("unknown --mode {other}; use lookup, open-lookup or update"),
    };
    let spec = load::LoadSpec {
        socket: args.socket.clone(),
        greeting: !args.no_greeting,
        instance_flags: args.instance_flags,
        concurrency: args.concurrency,
        duration: match (args.duration, args.requests) {
            (Some(d), _) => Some(std::time::Duration::from_secs_f64(d)),
            (None, None) => Some(std::time::Duration::from_secs(10)),
            (None, Some(_)) => None,
        },
        requests: args.requests,
        table: args.table.clone(),
        flags: args.flags,
        keys: Arc::new(keys),
        miss_ratio: args.miss_ratio,
        mode,
    };
    let target = match (&args.comm, args.pid.is_empty()) {
        (Some(name), _) => Some(procstat::Target::Comm(name.clone())),
        (None, false) => Some(procstat::Target::Pids(args.pid.clone())),
        (None, true) => None,
    };
    let before = target.as_ref().map(procstat::sample);
    let report = load::run(&spec)?;
    let after = target.as_ref().map(procstat::sample);
    let cpu = before
        .as_ref()
        .zip(after.as_ref())
        .map(|(b, a)| procstat::cpu_seconds(b, a));
    let rss = after.as_ref().map(|a| a.peak_rss_kib);
    let statuses: serde_json::Map<String, serde_json::Value> = report
        .statuses
        .iter()
        .map(|(s, n)| (s.to_string(), (*n).into()))
        .collect();
    let cpu_us = cpu.map(|c| c * 1e6 / report.requests.max(1) as f64);
    if args.json {
        let obj = serde_json::json!({
            "socket": args.socket, "table": args.table, "concurrency": args.concurrency, "mode": args.mode,
            "requests": report.requests, "seconds": report.elapsed.as_secs_f64(), "rps": report.rate(),
            "p50_us": report.micros(0.5), "p90_us": report.micros(0.9), "p99_us": report.micros(0.99),
            "p999_us": report.micros(0.999), "max_us": report.latency.max() as f64 / 1000.0,
            "statuses": statuses, "failures": report.failures, "errors": report.errors(),
            "server_cpu_s": cpu, "cpu_us_per_request": cpu_us, "server_peak_rss_kib": rss,
        });
        println!("{obj}");
    } else {
        println!(
            "{} {} C={} mode={}",
            args.socket.display(),
            args.table,
            args.concurrency,
            args.mode
        );
        println!(
            "{} requests in {:.2} s = {:.0} req/s",
            report.requests,
            report.elapsed.as_secs_f64(),
            report.rate()
        );
        println!(
            "latency us: p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
            report.micros(0.5),
            report.micros(0.9),
            report.micros(0.99),
            report.micros(0.999),
            report.latency.max() as f64 / 1000.0
        );
        println!("statuses: {statuses:?}; failures {}", report.failures);
        if let (Some(c), Some(r), Some(us)) = (cpu, rss, cpu_us) {
            println!(
                "server: {c:.2} CPU s = {us:.1} us/request; peak RSS {:.1} MiB",
                r as f64 / 1024.0
            );
        }
    }
    Ok(if report.errors() == 0 { 0 } else { 1 })
}
