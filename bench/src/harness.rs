//! The side-by-side harness: builds identical tables for a private Postfix
//! instance and for proxymapd, starts both (and the echo server), then runs
//! the same load against each, alternating Postfix and proxymapd so machine
//! drift cancels, for several concurrency levels. A second proxymapd serves
//! the tables of [`PLUGIN_TABLES`] through their WebAssembly plugin
//! (`--sandbox`), measured as server `proxymapd-plugin`. Besides the
//! 100,000-entry key/value tables, a 500-rule regexp table and a
//! 10,000-line cidr table ([`super::pattern_tables`]) are measured, both
//! served by proxymapd's plugins. The proxywrite service is measured on a
//! `btree:` table ([`WRITE_TABLES`]: updates as verify(8) sends them, then
//! lookups on the table they filled) at C = 1 and 8, each server on its own
//! file. A smoke mode only checks that every server gives identical answers
//! and no errors.

use super::load::{self, LoadSpec, Mode};
use super::pattern_tables;
use super::postfix::PrivatePostfix;
use super::procstat::{self, Target};
use super::report::Row;
use anyhow::{bail, Context, Result};
use proxymapd_client::flags;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Scratch directory (tables, instances, sockets).
    pub workdir: PathBuf,
    /// The proxymapd binary to benchmark.
    pub proxymapd: PathBuf,
    /// The program whose `echo-server` subcommand runs the echo server
    /// (`proxymapd-bench` itself).
    pub echo_server: PathBuf,
    /// Seconds per timed run.
    pub duration: Duration,
    /// Concurrency levels.
    pub concurrency: Vec<usize>,
    /// Repetitions of each (server, table, C), alternating servers.
    pub repetitions: usize,
    /// Entries per table.
    pub entries: usize,
    /// Fraction of lookups that miss.
    pub miss_ratio: f64,
    /// Only check answers and errors with a few hundred requests.
    pub smoke: bool,
    /// Measure only the proxywrite tables (and the echo ceiling).
    pub write_only: bool,
    /// Measure only the SQL tables ([`SQL_TABLES`], on private PostgreSQL
    /// and MariaDB servers and a SQLite file) and the echo ceiling.
    pub sql: bool,
    /// proxymapd's `--sql-pool-size` in the SQL run.
    pub sql_pool_size: usize,
}

/// One measured table: its label in reports, map type and source file in
/// the tables directory.
#[derive(Debug, Clone, Copy)]
pub struct BenchTable {
    /// Label in reports.
    pub label: &'static str,
    /// Map type.
    pub map_type: &'static str,
    /// Source file name in the tables directory (for proxywrite tables,
    /// the file name in each server's data directory).
    pub file: &'static str,
    /// On the proxywrite service, with this request; `None`: lookups on the
    /// proxymap service.
    pub write: Option<Mode>,
}

const fn bench_table(
    label: &'static str,
    map_type: &'static str,
    file: &'static str,
) -> BenchTable {
    BenchTable {
        label,
        map_type,
        file,
        write: None,
    }
}

const fn write_table(label: &'static str, mode: Mode) -> BenchTable {
    BenchTable {
        label,
        map_type: "btree",
        file: "wcache",
        write: Some(mode),
    }
}

/// The proxywrite measurements: verify(8)'s updates (synced, replacing),
/// then lookups on the table they filled.
pub const WRITE_TABLES: [BenchTable; 2] = [
    write_table("btree-write-update", Mode::Update),
    write_table("btree-write-lookup", Mode::Lookup),
];

/// Concurrency levels of the proxywrite measurements (Postfix runs one
/// proxywrite process; verify and postscreen are one client each).
pub const WRITE_CONCURRENCY: [usize; 2] = [1, 8];

/// The flags verify(8) sends with every request on its cache:
/// UTF8_REQUEST | OPEN_LOCK | SYNC_UPDATE | DUP_REPLACE.
const VERIFY_FLAGS: u32 = 0x90180;

/// The tables measured; `cdb`, `regexp` and `cidr` are served by
/// proxymapd's WebAssembly plugins, the others natively.
pub const TABLES: [BenchTable; 6] = [
    bench_table("texthash", "texthash", "virtual"),
    bench_table("lmdb", "lmdb", "virtual"),
    bench_table("hash", "hash", "virtual"),
    bench_table("cdb", "cdb", "virtual"),
    bench_table("regexp-500", "regexp", pattern_tables::REGEXP_FILE),
    bench_table("cidr-10k", "cidr", pattern_tables::CIDR_FILE),
];

/// The SQL tables (`vs-postfix --sql`): plain lookups on each backend, and
/// on pgsql and mysql a query that takes 1 ms in the database.
pub const SQL_TABLES: [BenchTable; 5] = [
    bench_table("pgsql", "pgsql", "pgsql.cf"),
    bench_table("pgsql-1ms", "pgsql", "pgsql-1ms.cf"),
    bench_table("mysql", "mysql", "mysql.cf"),
    bench_table("mysql-1ms", "mysql", "mysql-1ms.cf"),
    bench_table("sqlite", "sqlite", "sqlite.cf"),
];

/// Rows in the SQL tables (the first keys of the key/value tables).
const SQL_ROWS: usize = 10_000;

/// Map types measured a second time through their sandboxed plugin.
pub const PLUGIN_TABLES: [&str; 1] = ["hash"];

struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `cmd` so that it dies with the harness, even if the harness is killed.
fn spawn_tied(cmd: &mut Command) -> std::io::Result<Child> {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and only affects the child.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd.spawn()
}

fn wait_socket(path: &Path) -> Result<()> {
    let started = Instant::now();
    while std::os::unix::net::UnixStream::connect(path).is_err() {
        if started.elapsed() > Duration::from_secs(20) {
            bail!("{} never appeared", path.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Write the key/value source table and its key list; returns the keys.
fn write_tables(dir: &Path, entries: usize) -> Result<Vec<Vec<u8>>> {
    std::fs::create_dir_all(dir)?;
    let mut source = String::with_capacity(entries * 48);
    let mut keys = Vec::with_capacity(entries);
    for i in 0..entries {
        let key = format!("user{i}@example{}.com", i % 97);
        source.push_str(&format!("{key} mailbox-{i}@dest{}.example.net\n", i % 13));
        keys.push(key.into_bytes());
    }
    std::fs::write(dir.join("virtual"), source)?;
    Ok(keys)
}

/// Start a proxymapd serving `maps` from its own configuration directory
/// under `work/name`; returns it and its proxymap socket.
fn start_proxymapd(
    opts: &Options,
    work: &Path,
    name: &str,
    maps: &str,
    write_maps: &str,
    extra: &[&str],
) -> Result<(ChildGuard, PathBuf)> {
    let etc = work.join(name).join("etc");
    std::fs::create_dir_all(&etc)?;
    let queue = work.join(name).join("queue");
    std::fs::write(
        etc.join("main.cf"),
        format!(
            "queue_directory = {}\ncompatibility_level = 3.6\nproxy_read_maps = {maps}\n\
             proxy_write_maps = {write_maps}\n",
            queue.display()
        ),
    )?;
    let log = std::fs::File::create(work.join(format!("{name}.log")))?;
    let child = ChildGuard(
        spawn_tied(
            Command::new(&opts.proxymapd)
                .args(["serve", "--postfix-config"])
                .arg(&etc)
                .args(extra)
                .stdout(Stdio::null())
                .stderr(log),
        )
        .with_context(|| format!("start {name}"))?,
    );
    let socket = queue.join("private/proxymap");
    wait_socket(&socket)?;
    Ok((child, socket))
}

fn postmap(config: &Path, table: &str) -> Result<()> {
    let out = Command::new("postmap")
        .arg("-c")
        .arg(config)
        .arg(table)
        .output()
        .context("run postmap")?;
    if !out.status.success() {
        bail!("postmap {table}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// The servers under test, started.
pub struct Servers {
    postfix: PrivatePostfix,
    ours: ChildGuard,
    ours_socket: PathBuf,
    sandboxed: ChildGuard,
    sandboxed_socket: PathBuf,
    echo: ChildGuard,
    echo_socket: PathBuf,
    /// The proxywrite table of each server (`btree:` files of their own).
    postfix_write_table: String,
    ours_write_table: String,
    /// Keys present in the key/value tables.
    pub keys: Arc<Vec<Vec<u8>>>,
    /// Keys for the regexp table (a third match, the rest miss).
    regexp_keys: Arc<Vec<Vec<u8>>>,
    /// Keys for the cidr table (a third match, the rest miss).
    cidr_keys: Arc<Vec<Vec<u8>>>,
    tables_dir: PathBuf,
    /// The SQL databases (`--sql` only) and the keys their rows hold.
    sql: Option<crate::sql_tables::SqlTables>,
    sql_keys: Arc<Vec<Vec<u8>>>,
}

impl Servers {
    /// Build tables and start Postfix, proxymapd and the echo server.
    pub fn start(opts: &Options) -> Result<Servers> {
        let work = &opts.workdir;
        std::fs::create_dir_all(work)?;
        let work = work.canonicalize()?;
        let tables_dir = work.join("tables");
        let keys = write_tables(&tables_dir, opts.entries)?;
        let regexp_keys = pattern_tables::write_regexp(&tables_dir)?;
        let cidr_keys = pattern_tables::write_cidr(&tables_dir)?;
        let virt = tables_dir.join("virtual");
        let maps: Vec<String> = TABLES
            .iter()
            .map(|t| format!("proxy:{}:{}", t.map_type, tables_dir.join(t.file).display()))
            .collect();
        let maps = maps.join(" ");
        let sql_keys: Vec<Vec<u8>> = keys.iter().take(SQL_ROWS).cloned().collect();
        let sql = if opts.sql {
            let rows: Vec<(Vec<u8>, Vec<u8>)> = sql_keys
                .iter()
                .enumerate()
                .map(|(i, k)| (k.clone(), format!("dest-{i}@example.net").into_bytes()))
                .collect();
            Some(crate::sql_tables::SqlTables::start(
                &work.join("sql"),
                &rows,
            )?)
        } else {
            None
        };
        let sql_maps = |server: &str| -> String {
            let Some(sql) = &sql else {
                return String::new();
            };
            SQL_TABLES
                .iter()
                .map(|t| format!(" proxy:{}:{}", t.map_type, sql.cf(server, t.file).display()))
                .collect()
        };
        // Each server writes its own file, in a directory mail_owner owns.
        let postfix_write_table = format!("btree:{}", work.join("postfix/data/wcache").display());
        let ours_data = work.join("proxymapd/data");
        std::fs::create_dir_all(&ours_data)?;
        let (uid, gid) = super::postfix::postfix_uid_gid()?;
        std::os::unix::fs::chown(&ours_data, Some(uid), Some(gid))
            .context("chown proxymapd's data directory to postfix")?;
        let ours_write_table = format!("btree:{}", ours_data.join("wcache").display());
        let postfix = PrivatePostfix::start(
            &work.join("postfix"),
            &format!("{maps}{}", sql_maps("postfix")),
            &format!("proxy:{postfix_write_table}"),
        )?;
        postmap(&postfix.config, &format!("lmdb:{}", virt.display()))?;
        postmap(&postfix.config, &format!("cdb:{}", virt.display()))?;
        postmap(&postfix.config, &format!("hash:{}", virt.display()))?;
        let pool_size = opts.sql_pool_size.to_string();
        let (ours, ours_socket) = start_proxymapd(
            opts,
            &work,
            "proxymapd",
            &format!("{maps}{}", sql_maps("proxymapd")),
            &format!("proxy:{ours_write_table}"),
            &["--sql-pool-size", &pool_size],
        )?;
        let sandbox: Vec<&str> = PLUGIN_TABLES
            .iter()
            .flat_map(|t| ["--sandbox", *t])
            .collect();
        let (sandboxed, sandboxed_socket) =
            start_proxymapd(opts, &work, "proxymapd-plugin", &maps, "", &sandbox)?;
        let echo_socket = work.join("echo.sock");
        let echo = ChildGuard(
            spawn_tied(
                Command::new(&opts.echo_server)
                    .args(["echo-server", "--socket"])
                    .arg(&echo_socket)
                    .stdout(Stdio::null()),
            )
            .context("start echo server")?,
        );
        wait_socket(&echo_socket)?;
        Ok(Servers {
            postfix,
            ours,
            ours_socket,
            sandboxed,
            sandboxed_socket,
            echo,
            echo_socket,
            postfix_write_table,
            ours_write_table,
            keys: Arc::new(keys),
            regexp_keys: Arc::new(regexp_keys),
            cidr_keys: Arc::new(cidr_keys),
            tables_dir,
            sql,
            sql_keys: Arc::new(sql_keys),
        })
    }

    fn table(&self, server: &str, table: &BenchTable) -> String {
        if table.write.is_some() {
            return if server == "postfix" {
                self.postfix_write_table.clone()
            } else {
                self.ours_write_table.clone()
            };
        }
        if let Some(sql) = self.sql.as_ref().filter(|_| table.file.ends_with(".cf")) {
            return format!(
                "{}:{}",
                table.map_type,
                sql.cf(server, table.file).display()
            );
        }
        format!(
            "{}:{}",
            table.map_type,
            self.tables_dir.join(table.file).display()
        )
    }

    /// The keys for `table`, and whether to add misses (pattern tables
    /// bring their own).
    fn keys_for(&self, table: &BenchTable) -> (Arc<Vec<Vec<u8>>>, bool) {
        match table.file {
            pattern_tables::REGEXP_FILE => (self.regexp_keys.clone(), false),
            pattern_tables::CIDR_FILE => (self.cidr_keys.clone(), false),
            f if f.ends_with(".cf") => (self.sql_keys.clone(), true),
            _ => (self.keys.clone(), true),
        }
    }

    fn endpoint(&self, server: &str, write: bool) -> (PathBuf, Target) {
        let proxywrite = |socket: &Path| socket.with_file_name("proxywrite");
        match server {
            "postfix" if write => (
                proxywrite(&self.postfix.socket()),
                Target::Comm("proxymap".into()),
            ),
            "proxymapd" if write => (
                proxywrite(&self.ours_socket),
                Target::Pids(vec![self.ours.0.id()]),
            ),
            "postfix" => (self.postfix.socket(), Target::Comm("proxymap".into())),
            "proxymapd" => (
                self.ours_socket.clone(),
                Target::Pids(vec![self.ours.0.id()]),
            ),
            "proxymapd-plugin" => (
                self.sandboxed_socket.clone(),
                Target::Pids(vec![self.sandboxed.0.id()]),
            ),
            _ => (
                self.echo_socket.clone(),
                Target::Pids(vec![self.echo.0.id()]),
            ),
        }
    }

    fn spec(&self, server: &str, table: &BenchTable, c: usize, opts: &Options) -> LoadSpec {
        let (keys, add_misses) = self.keys_for(table);
        let write = table.write.is_some();
        LoadSpec {
            socket: self.endpoint(server, write).0,
            greeting: true,
            instance_flags: None,
            concurrency: c,
            duration: Some(opts.duration),
            requests: None,
            table: self.table(server, table),
            flags: if write {
                VERIFY_FLAGS
            } else {
                flags::LOCK | flags::FOLD_FIX
            },
            keys,
            miss_ratio: if add_misses && table.write != Some(Mode::Update) {
                opts.miss_ratio
            } else {
                0.0
            },
            mode: table.write.unwrap_or(Mode::Lookup),
        }
    }

    /// One timed run, with the server's CPU time and memory.
    pub fn measure(
        &self,
        server: &str,
        table: &BenchTable,
        c: usize,
        opts: &Options,
    ) -> Result<Row> {
        let spec = self.spec(server, table, c, opts);
        // Warm up: Postfix starts processes on demand, tables load on first use.
        load::run(&LoadSpec {
            duration: Some(Duration::from_millis(300)),
            ..spec.clone()
        })?;
        let target = self.endpoint(server, table.write.is_some()).1;
        let me = Target::Pids(vec![std::process::id()]);
        let (report, before, after) =
            load::run_sampled(&spec, || (procstat::sample(&target), procstat::sample(&me)))?;
        let (before, me_before) = before;
        let (after, me_after) = after;
        let cpu = procstat::cpu_seconds(&before, &after);
        let client_cpu = procstat::cpu_seconds(&me_before, &me_after);
        let connections = match &self.sql {
            Some(sql) if table.file.ends_with(".cf") => sql.connections(server, table.map_type)?,
            _ => None,
        };
        Ok(Row {
            server: server.to_string(),
            table: table.label.to_string(),
            concurrency: c,
            rps: report.rate(),
            p50_us: report.micros(0.5),
            p99_us: report.micros(0.99),
            p999_us: report.micros(0.999),
            cpu_us_per_request: cpu * 1e6 / report.requests.max(1) as f64,
            client_cpu_us_per_request: client_cpu * 1e6 / report.requests.max(1) as f64,
            peak_rss_mib: after.peak_rss_kib as f64 / 1024.0,
            errors: report.errors(),
            requests: report.requests,
            connections,
        })
    }

    /// Smoke check: identical answers from both servers for hits and misses,
    /// and a few hundred requests each without errors.
    pub fn smoke(&self) -> Result<Vec<String>> {
        let mut lines = Vec::new();
        for bench in &TABLES {
            let (label, map_type) = (bench.label, bench.map_type);
            let (keys, _) = self.keys_for(bench);
            let mut probe: Vec<Vec<u8>> = keys
                .iter()
                .step_by((keys.len() / 200).max(1))
                .cloned()
                .collect();
            probe.extend((0..50).map(|i| format!("nobody{i}@nowhere.example").into_bytes()));
            probe.extend(keys.iter().take(50).map(|k| k.to_ascii_uppercase()));
            let table = self.table("postfix", bench);
            let flags = flags::LOCK | flags::FOLD_FIX;
            let theirs = load::answers(&self.postfix.socket(), true, &table, flags, &probe)?;
            let mut ours = load::answers(&self.ours_socket, true, &table, flags, &probe)?;
            if theirs == ours && PLUGIN_TABLES.contains(&map_type) {
                ours = load::answers(&self.sandboxed_socket, true, &table, flags, &probe)?;
            }
            if theirs != ours {
                let first = theirs
                    .iter()
                    .zip(&ours)
                    .position(|(a, b)| a != b)
                    .unwrap_or(0);
                bail!(
                    "{label}: answers differ for key {:?}: postfix {:?}, proxymapd {:?}",
                    String::from_utf8_lossy(&probe[first]),
                    theirs.get(first),
                    ours.get(first)
                );
            }
            let hits = ours.iter().filter(|(s, _)| *s == 0).count();
            for server in ["postfix", "proxymapd"] {
                let spec = LoadSpec {
                    duration: None,
                    requests: Some(400),
                    ..self.spec(
                        server,
                        bench,
                        8,
                        &Options {
                            miss_ratio: 0.1,
                            ..smoke_defaults()
                        },
                    )
                };
                let report = load::run(&spec)?;
                if report.errors() != 0 || report.requests != 400 {
                    bail!(
                        "{server} {label}: {} errors in {} requests",
                        report.errors(),
                        report.requests
                    );
                }
            }
            lines.push(format!(
                "{label}: {} probes identical ({hits} hits); 400 requests each at C=8, 0 errors",
                probe.len()
            ));
        }
        lines.push(self.smoke_write()?);
        Ok(lines)
    }

    /// Smoke check of the proxywrite table: the same 300 updates (one
    /// client, so the same keys) to each server's file, then the same
    /// answers to lookups of updated and missing keys.
    fn smoke_write(&self) -> Result<String> {
        let [update, lookup] = &WRITE_TABLES;
        let mut answers = Vec::new();
        for server in ["postfix", "proxymapd"] {
            let spec = LoadSpec {
                duration: None,
                requests: Some(300),
                ..self.spec(server, update, 1, &smoke_defaults())
            };
            let report = load::run(&spec)?;
            if report.errors() != 0 || report.requests != 300 {
                bail!(
                    "{server} proxywrite: {} errors in {} updates",
                    report.errors(),
                    report.requests
                );
            }
            let probe: Vec<Vec<u8>> = self.keys.iter().take(2_000).cloned().collect();
            let (socket, _) = self.endpoint(server, true);
            answers.push(load::answers(
                &socket,
                true,
                &self.table(server, lookup),
                VERIFY_FLAGS,
                &probe,
            )?);
        }
        if answers[0] != answers[1] {
            bail!("proxywrite btree: answers differ after the same updates");
        }
        let hits = answers[0].iter().filter(|(s, _)| *s == 0).count();
        Ok(format!(
            "btree proxywrite: 300 updates each at C=1, 0 errors; 2,000 lookups identical ({hits} hits)"
        ))
    }
}

fn smoke_defaults() -> Options {
    Options {
        workdir: PathBuf::new(),
        proxymapd: PathBuf::new(),
        echo_server: PathBuf::new(),
        duration: Duration::from_secs(1),
        concurrency: vec![8],
        repetitions: 1,
        entries: 0,
        miss_ratio: 0.1,
        smoke: true,
        write_only: false,
        sql: false,
        sql_pool_size: 4,
    }
}

/// Run every measurement: for each C and repetition, Postfix then proxymapd
/// per table (order flipped on odd repetitions), then the echo ceiling.
pub fn run(opts: &Options, servers: &Servers, mut progress: impl FnMut(&Row)) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for &c in &opts.concurrency {
        for rep in 0..opts.repetitions {
            let read_tables: &[BenchTable] = if opts.sql {
                &SQL_TABLES
            } else if opts.write_only {
                &[]
            } else {
                &TABLES
            };
            let write_tables: &[BenchTable] = if WRITE_CONCURRENCY.contains(&c) && !opts.sql {
                &WRITE_TABLES
            } else {
                &[]
            };
            for table in read_tables.iter().chain(write_tables) {
                let order = if rep % 2 == 0 {
                    ["postfix", "proxymapd"]
                } else {
                    ["proxymapd", "postfix"]
                };
                let plugin = (PLUGIN_TABLES.contains(&table.map_type) && table.file == "virtual")
                    .then_some("proxymapd-plugin");
                for server in order.into_iter().chain(plugin) {
                    let row = servers.measure(server, table, c, opts)?;
                    progress(&row);
                    rows.push(row);
                }
            }
            let echo = bench_table("-", "lmdb", "virtual");
            let row = servers.measure("echo", &echo, c, opts)?;
            progress(&row);
            rows.push(row);
        }
    }
    Ok(rows)
}
