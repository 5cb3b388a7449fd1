//! The load generator: C connections, each a strict request→reply loop like a
//! Postfix client, for a duration or a request count. Keys come from a list;
//! a given fraction of requests use keys that are not in it (misses).
//! Latency is recorded per request in an HDR histogram; reply statuses are
//! counted. Works against any proxymap-protocol server and any dialect.

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use proxymapd_client::Client;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// What each iteration sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One lookup.
    Lookup,
    /// An open followed by a lookup (two requests).
    OpenLookup,
    /// One update (proxywrite).
    Update,
}

/// How to load a server.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// The server's socket.
    pub socket: PathBuf,
    /// Whether the server greets (Postfix 3.6+ dialect).
    pub greeting: bool,
    /// Send `instance_flags` (Postfix 3.11+ dialect) with this value.
    pub instance_flags: Option<u32>,
    /// Number of concurrent connections.
    pub concurrency: usize,
    /// Stop after this long ...
    pub duration: Option<Duration>,
    /// ... or after this many requests in total.
    pub requests: Option<u64>,
    /// Table name as clients send it (e.g. `lmdb:/etc/postfix/virtual`).
    pub table: String,
    /// Request flags.
    pub flags: u32,
    /// Keys present in the table.
    pub keys: Arc<Vec<Vec<u8>>>,
    /// Fraction of requests that use a key not in the table.
    pub miss_ratio: f64,
    /// What to send.
    pub mode: Mode,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Requests answered.
    pub requests: u64,
    /// Wall-clock time of the timed phase.
    pub elapsed: Duration,
    /// Per-request latency in nanoseconds.
    pub latency: Histogram<u64>,
    /// Replies by status code.
    pub statuses: BTreeMap<u32, u64>,
    /// Transport or protocol failures (connection lost, unparsable reply).
    pub failures: u64,
}

impl LoadReport {
    /// Requests per second.
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Latency at quantile `q` (0..=1) in microseconds.
    pub fn micros(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1000.0
    }

    /// Replies with statuses other than OK and NOKEY, plus failures.
    pub fn errors(&self) -> u64 {
        self.failures
            + self
                .statuses
                .iter()
                .filter(|(s, _)| **s > 1)
                .map(|(_, n)| n)
                .sum::<u64>()
    }
}

/// Send one request on `client` and return (status, value) of the reply.
fn call(
    client: &mut Client,
    request: &str,
    table: &str,
    flags: u32,
    fields: &[(&str, &[u8])],
) -> Result<(u32, Vec<u8>)> {
    let flags = (request != "open" || client.instance_flags().is_none()).then_some(flags);
    let reply = client.request(request, table, flags, fields)?;
    let status = reply.status().context("reply without status")?;
    Ok((status, reply.get("value").unwrap_or_default().to_vec()))
}

fn connect(spec: &LoadSpec) -> Result<Client> {
    Ok(Client::connect(&spec.socket, spec.greeting)?.with_instance_flags(spec.instance_flags))
}

/// A key for request number `n` of a worker.
fn pick<'k>(
    rng: &mut fastrand::Rng,
    keys: &'k [Vec<u8>],
    miss_ratio: f64,
    miss: &'k mut Vec<u8>,
) -> &'k [u8] {
    let key = &keys[rng.usize(..keys.len())];
    if miss_ratio > 0.0 && rng.f64() < miss_ratio {
        miss.clear();
        miss.extend_from_slice(key);
        miss.extend_from_slice(b".miss");
        miss
    } else {
        key
    }
}

struct WorkerResult {
    /// Kept open until the caller has sampled the server.
    conn: Option<Client>,
    requests: u64,
    latency: Histogram<u64>,
    statuses: BTreeMap<u32, u64>,
    failures: u64,
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// Run the load described by `spec`.
pub fn run(spec: &LoadSpec) -> Result<LoadReport> {
    run_sampled(spec, || ()).map(|(report, _, _)| report)
}

/// Run the load and call `sample` just before the timed phase starts and
/// again when it ends, while every connection is still open (Postfix's
/// proxymap processes may exit as soon as their clients leave).
pub fn run_sampled<S>(spec: &LoadSpec, sample: impl Fn() -> S) -> Result<(LoadReport, S, S)> {
    if spec.keys.is_empty() {
        bail!("no keys to look up");
    }
    if spec.duration.is_none() && spec.requests.is_none() {
        bail!("give a duration or a request count");
    }
    // Connect everything first, so connection setup is not timed.
    let mut conns = Vec::with_capacity(spec.concurrency);
    for _ in 0..spec.concurrency.max(1) {
        conns.push(connect(spec)?);
    }
    let budget = Arc::new(AtomicI64::new(spec.requests.map_or(i64::MAX, |n| n as i64)));
    let barrier = Arc::new(Barrier::new(conns.len() + 1));
    let mut handles = Vec::new();
    for (i, mut conn) in conns.into_iter().enumerate() {
        let (spec, budget, barrier) = (spec.clone(), budget.clone(), barrier.clone());
        handles.push(std::thread::spawn(move || -> WorkerResult {
            let mut rng = fastrand::Rng::with_seed(0x9e37_79b9 ^ i as u64);
            let mut miss = Vec::new();
            let mut result = WorkerResult {
                conn: None,
                requests: 0,
                latency: new_histogram(),
                statuses: BTreeMap::new(),
                failures: 0,
            };
            barrier.wait();
            let deadline = spec.duration.map(|d| Instant::now() + d);
            loop {
                if deadline.is_some_and(|d| Instant::now() >= d)
                    || budget.fetch_sub(1, Ordering::Relaxed) <= 0
                {
                    break;
                }
                let key = pick(&mut rng, &spec.keys, spec.miss_ratio, &mut miss).to_vec();
                let started = Instant::now();
                let outcome = match spec.mode {
                    Mode::Lookup => call(
                        &mut conn,
                        "lookup",
                        &spec.table,
                        spec.flags,
                        &[("key", &key)],
                    ),
                    Mode::OpenLookup => call(&mut conn, "open", &spec.table, spec.flags, &[])
                        .and_then(|_| {
                            call(
                                &mut conn,
                                "lookup",
                                &spec.table,
                                spec.flags,
                                &[("key", &key)],
                            )
                        }),
                    Mode::Update => call(
                        &mut conn,
                        "update",
                        &spec.table,
                        spec.flags,
                        &[("key", &key), ("value", b"bench-value")],
                    ),
                };
                let took = started.elapsed().as_nanos() as u64;
                match outcome {
                    Ok((status, _)) => {
                        result.requests += 1;
                        let _ = result.latency.record(took.max(1));
                        *result.statuses.entry(status).or_default() += 1;
                    }
                    Err(_) => {
                        result.failures += 1;
                        match connect(&spec) {
                            Ok(c) => conn = c,
                            Err(_) => break,
                        }
                    }
                }
            }
            result.conn = Some(conn);
            result
        }));
    }
    let before = sample();
    barrier.wait();
    let started = Instant::now();
    let mut report = LoadReport {
        requests: 0,
        elapsed: Duration::ZERO,
        latency: new_histogram(),
        statuses: BTreeMap::new(),
        failures: 0,
    };
    let mut open = Vec::new();
    for h in handles {
        let r = h
            .join()
            .map_err(|_| anyhow::anyhow!("load worker panicked"))?;
        open.push(r.conn);
        report.requests += r.requests;
        report.failures += r.failures;
        report
            .latency
            .add(&r.latency)
            .expect("same histogram bounds");
        for (s, n) in r.statuses {
            *report.statuses.entry(s).or_default() += n;
        }
    }
    report.elapsed = started.elapsed();
    let after = sample();
    drop(open);
    Ok((report, before, after))
}

/// Look every key up once, in order, on one connection: the answers to
/// compare between servers.
pub fn answers(
    socket: &std::path::Path,
    greeting: bool,
    table: &str,
    flags: u32,
    keys: &[Vec<u8>],
) -> Result<Vec<(u32, Vec<u8>)>> {
    let mut client = Client::connect(socket, greeting)?;
    keys.iter()
        .map(|k| call(&mut client, "lookup", table, flags, &[("key", k)]))
        .collect()
}
