//! The `proxymapd` command: `serve`, `check`, `query` and `demo`.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use proxymapd::client::Client;
use proxymapd::config::{ConfigSource, Settings};
use proxymapd::dict::MapTypes;
use proxymapd::handler::Service;
use proxymapd::plugin::cache::CompileCache;
use proxymapd::plugin::trusted_dir::TrustError;
use proxymapd::server::lifecycle;
use proxymapd::{flags, logging};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A wire-compatible replacement for Postfix's proxymap(8) table server.
#[derive(Parser)]
#[command(name = "proxymapd", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct ConfigArgs {
    /// Postfix configuration directory whose main.cf to serve (default /etc/postfix).
    #[arg(long, value_name = "DIR", conflicts_with = "config")]
    postfix_config: Option<PathBuf>,
    /// proxymapd TOML configuration file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Plugin directory searched before the defaults (repeatable).
    #[arg(long = "plugin-dir", value_name = "DIR")]
    plugin_dirs: Vec<PathBuf>,
    /// Serve map type TYPE by its WebAssembly plugin instead of natively
    /// (repeatable; e.g. --sandbox hash).
    #[arg(long = "sandbox", value_name = "TYPE")]
    sandboxed: Vec<String>,
}

impl ConfigArgs {
    fn source(&self) -> ConfigSource {
        match (&self.config, &self.postfix_config) {
            (Some(file), _) => ConfigSource::Toml(file.clone()),
            (None, Some(dir)) => ConfigSource::Postfix(dir.clone()),
            (None, None) => ConfigSource::Postfix(PathBuf::from("/etc/postfix")),
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Serve the proxymap and proxywrite sockets.
    Serve(ConfigArgs),
    /// Validate the configuration and open every approved table.
    Check(ConfigArgs),
    /// Query a running server, like `postmap -q KEY proxy:TABLE`.
    Query(QueryArgs),
    /// Load a proxymap-protocol server (ours or Postfix's) and report rate and latency.
    Bench(BenchArgs),
    /// Run the same load against a private Postfix proxymap and proxymapd, side by side.
    VsPostfix(VsPostfixArgs),
    /// Turn a plugin's core WebAssembly module into a component (plugin builds use this).
    Componentize {
        /// Core module (or component) to read.
        input: PathBuf,
        /// Component to write.
        output: PathBuf,
    },
    /// Print the blake3 digest of a plugin, for its manifest's `digest` key.
    Digest {
        /// The plugin file.
        file: PathBuf,
    },
    /// Answer every request with one fixed reply: the throughput ceiling.
    EchoServer {
        /// Socket to listen on.
        #[arg(long, value_name = "PATH")]
        socket: PathBuf,
        /// Do not send the Postfix 3.6+ greeting.
        #[arg(long)]
        no_greeting: bool,
    },
    /// Serve the bundled example tables and show a lookup.
    Demo {
        /// Directory for the example tables and sockets.
        #[arg(long, default_value = "/tmp/proxymapd-demo")]
        dir: PathBuf,
        /// Exit after showing the lookup instead of serving on.
        #[arg(long)]
        once: bool,
    },
}

#[derive(Args)]
struct QueryArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Socket to talk to (default: from the configuration).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Store KEY VALUE through proxywrite.
    #[arg(long, conflicts_with_all = ["delete", "sequence"])]
    write: bool,
    /// Delete KEY through proxywrite.
    #[arg(long, conflicts_with = "sequence")]
    delete: bool,
    /// List every key and value of the table.
    #[arg(long)]
    sequence: bool,
    /// Request flags (default: LOCK|FOLD_FIX, as postmap sends).
    #[arg(long, default_value_t = flags::LOCK | flags::FOLD_FIX)]
    flags: u32,
    /// Table, `type:name` (a leading `proxy:` is accepted).
    table: String,
    /// Key to look up, store or delete.
    key: Option<String>,
    /// Value to store (with --write).
    value: Option<String>,
}

#[derive(Args)]
struct BenchArgs {
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

#[derive(Args)]
struct VsPostfixArgs {
    /// Scratch directory for tables, instances and sockets.
    #[arg(long, default_value = "/tmp/proxymapd-bench")]
    workdir: PathBuf,
    /// Write benchmarks.md and benchmarks.svg here.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Seconds per timed run.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Concurrency levels.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32,128")]
    concurrency: Vec<usize>,
    /// Repetitions per (server, table, C), alternating the servers.
    #[arg(long, default_value_t = 2)]
    repetitions: usize,
    /// Entries per table.
    #[arg(long, default_value_t = 100_000)]
    entries: usize,
    /// Fraction of lookups that miss.
    #[arg(long, default_value_t = 0.1)]
    miss_ratio: f64,
    /// Only check identical answers and zero errors with a few hundred requests.
    #[arg(long)]
    smoke: bool,
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(&args),
        Command::Check(args) => check(&args),
        Command::Query(args) => query(args),
        Command::Demo { dir, once } => demo(&dir, once),
        Command::Bench(args) => bench(args),
        Command::Componentize { input, output } => componentize(&input, &output),
        Command::Digest { file } => {
            let bytes =
                std::fs::read(&file).map_err(|e| anyhow::anyhow!("read {}: {e}", file.display()));
            bytes.map(|b| {
                println!("{}", blake3::hash(&b).to_hex());
                0
            })
        }
        Command::VsPostfix(args) => vs_postfix(args),
        Command::EchoServer {
            socket,
            no_greeting,
        } => echo_server(&socket, no_greeting),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(err) => {
            eprintln!("proxymapd: fatal: {err:#}");
            std::process::exit(2);
        }
    }
}

fn load(source: &ConfigSource) -> Result<Settings> {
    source.load().context("configuration error")
}

/// Load settings, adding plugin directories given on the command line.
fn load_args(args: &ConfigArgs) -> Result<Settings> {
    let mut settings = load(&args.source())?;
    let mut dirs = args.plugin_dirs.clone();
    dirs.append(&mut settings.plugin_dirs);
    settings.plugin_dirs = dirs;
    for t in &args.sandboxed {
        if !settings.sandboxed_map_types.contains(t) {
            settings.sandboxed_map_types.push(t.clone());
        }
    }
    Ok(settings)
}

/// The map types: built-ins, then plugins from the search path.
fn map_types(settings: &Settings) -> Result<MapTypes> {
    let mut types = MapTypes::builtin();
    let cache = open_cache(&settings.cache_dir())?;
    let host = proxymapd::plugin::PluginHost::new(settings.plugin_search_path(), cache)?;
    tracing::info!("plugin map types available: {}", host.available().join(" "));
    for name in &settings.sandboxed_map_types {
        if host.locate(name).is_none() {
            anyhow::bail!(
                "sandboxed map type {name}: no {name}.wasm in the plugin directories ({}); \
                 install the plugin there or stop asking for it to be sandboxed",
                host.dirs()
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        types.unregister(name);
        tracing::info!("map type {name}: served by its WebAssembly plugin");
    }
    types.add_source(Arc::new(host));
    Ok(types)
}

/// The compiled-plugin cache in `dir`. A directory others could write to
/// stops startup (its native code would run unchecked in this process); one
/// that cannot be created or opened only disables caching.
fn open_cache(dir: &Path) -> Result<CompileCache> {
    match CompileCache::open(dir) {
        Ok(cache) => Ok(cache),
        Err(e @ TrustError::Io { .. }) => {
            tracing::warn!("compiled-plugin cache unusable ({e}); plugins compile at every start");
            Ok(CompileCache::disabled())
        }
        Err(e) => bail!("refusing the compiled-plugin cache: {e}"),
    }
}

fn serve(args: &ConfigArgs) -> Result<i32> {
    let settings = load_args(args)?;
    logging::init(&settings.log_level);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_server(settings, None))?;
    Ok(0)
}

/// Run until SIGTERM/SIGINT, rereading the configuration on SIGHUP; `ready`
/// is told once the sockets are bound.
async fn run_server(
    settings: Settings,
    ready: Option<tokio::sync::oneshot::Sender<()>>,
) -> Result<()> {
    let types = map_types(&settings)?;
    let (control, commands) = tokio::sync::mpsc::channel(4);
    // Signal handlers first: whoever is told "ready" may signal at once.
    lifecycle::forward_signals(control)?;
    lifecycle::run(settings, types, commands, ready).await
}

fn check(args: &ConfigArgs) -> Result<i32> {
    let settings = load_args(args)?;
    logging::init("error");
    let types = map_types(&settings)?;
    let open_flags = flags::LOCK | flags::FOLD_FIX;
    let mut problems = 0;
    let mut count = 0;
    for (service, tables) in [
        (Service::Read, settings.allowlists().read),
        (Service::Write, settings.allowlists().write),
    ] {
        for table in tables.tables() {
            count += 1;
            match types.open(table, open_flags, false, settings.utf8) {
                Ok(dict) => match walk(&*dict) {
                    Ok(Some(n)) => println!("ok: {}: {table} ({n} entries read)", service.name()),
                    Ok(None) => println!("ok: {}: {table}", service.name()),
                    Err(e) => {
                        problems += 1;
                        println!("error: {}: table {table}: {e}", service.name());
                    }
                },
                Err(e) if service == Service::Write && e.missing => {
                    println!("ok: {}: {table} (created on first update)", service.name())
                }
                Err(e) => {
                    problems += 1;
                    println!("error: {}: {e}", service.name());
                }
            }
        }
    }
    println!("{count} approved tables, {problems} with problems");
    Ok(if problems == 0 { 0 } else { 1 })
}

/// Read every entry of a table kept in a database file (the map type says
/// so: hash, btree, lmdb), so a damaged file is found now rather than at the
/// lookup that meets the bad page; the count, or `None` for other tables.
fn walk(dict: &dyn proxymapd::dict::Dict) -> Result<Option<usize>, proxymapd::dict::DictError> {
    use proxymapd::dict::SeqStep;
    if !dict.is_database_file() {
        return Ok(None);
    }
    let mut step = SeqStep::First;
    let mut count = 0;
    loop {
        match dict.sequence(step, flags::LOCK) {
            Ok(Some(_)) => count += 1,
            Ok(None) => return Ok(Some(count)),
            Err(e) => return Err(e),
        }
        step = SeqStep::Next;
    }
}

fn query(args: QueryArgs) -> Result<i32> {
    let writing = args.write || args.delete;
    let (socket, greeting) = match &args.socket {
        Some(path) => (
            path.clone(),
            load(&args.config.source())
                .map(|s| s.connection.greeting)
                .unwrap_or_default(),
        ),
        None => {
            let s = load(&args.config.source())?;
            let socket = if writing {
                s.proxywrite_socket
                    .clone()
                    .context("this configuration has no proxywrite socket")?
            } else {
                s.proxymap_socket.clone()
            };
            (socket, s.connection.greeting)
        }
    };
    let mut client = Client::connect(&socket, greeting == proxymapd::codec::Greeting::Proxymap)?;
    let table = args.table.as_str();
    let key = || args.key.clone().context("a KEY is required");
    let status_error = |status: Option<u32>| -> anyhow::Error {
        let name = match status {
            Some(2) => "temporary failure (RETRY)",
            Some(3) => "bad request (BAD)",
            Some(4) => "table not approved or service not writable (DENY)",
            Some(5) => "table configuration error (CONFIG)",
            _ => "unexpected reply",
        };
        anyhow::anyhow!("{table}: {name}")
    };
    if args.sequence {
        let mut first = true;
        loop {
            let reply = client.sequence(table, args.flags, first)?;
            first = false;
            match reply.status() {
                Some(0) => println!(
                    "{}\t{}",
                    String::from_utf8_lossy(reply.get("key").unwrap_or_default()),
                    String::from_utf8_lossy(reply.get("value").unwrap_or_default())
                ),
                Some(1) => return Ok(0),
                other => return Err(status_error(other)),
            }
        }
    }
    let reply = if args.write {
        let value = args.value.clone().context("--write needs KEY and VALUE")?;
        client.update(table, args.flags, key()?.as_bytes(), value.as_bytes())?
    } else if args.delete {
        client.delete(table, args.flags, key()?.as_bytes())?
    } else {
        client.lookup(table, args.flags, key()?.as_bytes())?
    };
    match reply.status() {
        Some(0) => {
            if !writing {
                println!(
                    "{}",
                    String::from_utf8_lossy(reply.get("value").unwrap_or_default())
                );
            }
            Ok(0)
        }
        Some(1) => Ok(1),
        other => Err(status_error(other)),
    }
}

const DEMO_CONFIG: &str = include_str!("../../examples/proxymapd.toml");
const DEMO_TABLES: [(&str, &str); 2] = [
    ("virtual", include_str!("../../examples/tables/virtual")),
    ("transport", include_str!("../../examples/tables/transport")),
];

fn demo(dir: &Path, once: bool) -> Result<i32> {
    std::fs::create_dir_all(dir.join("tables"))
        .with_context(|| format!("create {}", dir.display()))?;
    for (name, text) in DEMO_TABLES {
        std::fs::write(dir.join("tables").join(name), text)?;
    }
    let config_path = dir.join("proxymapd.toml");
    std::fs::write(&config_path, DEMO_CONFIG)?;
    let settings = proxymapd::config::toml_file::load(&config_path)?;
    logging::init(&settings.log_level);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let types = map_types(&settings)?;
    let (control, commands) = tokio::sync::mpsc::channel(4);
    if !once {
        let control = control.clone();
        runtime.block_on(async move { lifecycle::forward_signals(control) })?;
    }
    let server_settings = settings.clone();
    let server = runtime.spawn(lifecycle::run(
        server_settings,
        types,
        commands,
        Some(ready_tx),
    ));
    runtime.block_on(ready_rx).context("server did not start")?;
    let table = format!("texthash:{}/tables/virtual", dir.display());
    let greeting = settings.connection.greeting == proxymapd::codec::Greeting::Proxymap;
    let mut client = Client::connect(&settings.proxymap_socket, greeting)?;
    let reply = client.lookup(
        &table,
        flags::LOCK | flags::FOLD_FIX,
        b"Postmaster@Example.COM",
    )?;
    let Some(0) = reply.status() else {
        bail!("demo lookup failed: {reply:?}")
    };
    println!(
        "lookup Postmaster@Example.COM in proxy:{table}\n  -> {}",
        String::from_utf8_lossy(reply.get("value").unwrap_or_default())
    );
    println!(
        "\nproxymapd is serving {} (read) and {} (write).\nTry: proxymapd query --config {} proxy:{table} info@example.com",
        settings.proxymap_socket.display(),
        settings.proxywrite_socket.as_deref().map(|p| p.display().to_string()).unwrap_or_default(),
        config_path.display()
    );
    if once {
        runtime.block_on(control.send(lifecycle::Control::Stop))?;
    }
    runtime.block_on(server)??;
    Ok(0)
}

fn echo_server(socket: &Path, no_greeting: bool) -> Result<i32> {
    let greeting = if no_greeting {
        proxymapd::codec::Greeting::None
    } else {
        proxymapd::codec::Greeting::Proxymap
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(proxymapd::bench::echo::run(socket, greeting))?;
    Ok(0)
}

fn bench(args: BenchArgs) -> Result<i32> {
    use proxymapd::bench::{load, procstat};
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

fn command_output(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn vs_postfix(args: VsPostfixArgs) -> Result<i32> {
    use proxymapd::bench::{harness, report};
    let opts = harness::Options {
        workdir: args.workdir.clone(),
        proxymapd: std::env::current_exe()?,
        duration: std::time::Duration::from_secs_f64(args.duration),
        concurrency: args.concurrency.clone(),
        repetitions: args.repetitions.max(1),
        entries: if args.smoke {
            args.entries.min(2_000)
        } else {
            args.entries
        },
        miss_ratio: args.miss_ratio,
        smoke: args.smoke,
    };
    let servers = harness::Servers::start(&opts)?;
    if args.smoke {
        for line in servers.smoke()? {
            println!("{line}");
        }
        return Ok(0);
    }
    let rows = harness::run(&opts, &servers, |r| {
        eprintln!(
            "{:9} {:8} C={:<3} {:>8.0} req/s  p50 {:>7.0} us  p99 {:>7.0} us  cpu {:>5.1} us/req  errors {}",
            r.server, r.table, r.concurrency, r.rps, r.p50_us, r.p99_us, r.cpu_us_per_request, r.errors
        )
    })?;
    drop(servers);
    let rows = report::average(&rows);
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let header = format!(
        "Run on {date} by `bash bench/vs-postfix.sh`: {cores} cores ({cpu_model}), Linux {kernel}, \
         Postfix {postfix} (private instance, stock process limits), proxymapd {version}.\n\n\
         Each client is a strict request→reply loop like a Postfix client, over UNIX sockets, on the same machine as \
         the servers (the load generator shares the cores). Tables: {entries} entries, the same source as `texthash:` and \
         as `lmdb:`, `hash:` and `cdb:` files built by Postfix's postmap; proxymapd serves `hash:` natively and, as \
         server `proxymapd-plugin` (a second proxymapd started with `--sandbox hash`), through the WebAssembly plugin, \
         and `cdb:` through its plugin; {miss:.0}% of lookups miss. `regexp-500` is a 500-rule regexp table shaped like \
         smtpd checks (host names, sender rewriting with `$1`, header-check rules, if/endif blocks) and `cidr-10k` a \
         10,000-line cidr client list, both through proxymapd's plugins; about a third of their keys match a rule, the \
         rest walk every rule. Each (server, table, C) ran {reps}× for \
         {dur} s after a 0.3 s warm-up, Postfix and proxymapd alternating so drift cancels; the echo server answers every \
         request with a fixed reply (the ceiling for this protocol on this machine). CPU µs/req is server CPU time \
         (all its processes) per request; client CPU µs/req is the load generator's own, on the same cores.",
        date = command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        cores = command_output("nproc", &[]),
        kernel = command_output("uname", &["-r"]),
        postfix = command_output("postconf", &["-dh", "mail_version"]),
        version = env!("CARGO_PKG_VERSION"),
        entries = opts.entries,
        miss = opts.miss_ratio * 100.0,
        reps = opts.repetitions,
        dur = args.duration,
    );
    let md = format!(
        "{}\n## Headline\n\n{}\n",
        report::markdown(&rows, &header),
        report::headline(&rows, 32)
    );
    println!("{}", report::headline(&rows, 32));
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out)?;
        std::fs::write(out.join("benchmarks.md"), md)?;
        std::fs::write(out.join("benchmarks.svg"), report::svg(&rows))?;
        println!("wrote {}/benchmarks.md and benchmarks.svg", out.display());
    } else {
        println!("{md}");
    }
    Ok(0)
}

fn componentize(input: &Path, output: &Path) -> Result<i32> {
    let bytes = std::fs::read(input).with_context(|| format!("read {}", input.display()))?;
    let component = proxymapd::plugin::componentize::componentize(&bytes)?;
    std::fs::write(output, &component).with_context(|| format!("write {}", output.display()))?;
    println!(
        "{} ({} bytes, blake3 {})",
        output.display(),
        component.len(),
        blake3::hash(&component).to_hex()
    );
    Ok(0)
}
