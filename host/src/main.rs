//! The `proxymapd` command: `serve`, `check`, `query`, `demo`, `componentize` and `digest`.

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

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(&args),
        Command::Check(args) => check(&args),
        Command::Query(args) => query(args),
        Command::Demo { dir, once } => demo(&dir, once),
        Command::Componentize { input, output } => componentize(&input, &output),
        Command::Digest { file } => {
            let bytes =
                std::fs::read(&file).map_err(|e| anyhow::anyhow!("read {}: {e}", file.display()));
            bytes.map(|b| {
                println!("{}", blake3::hash(&b).to_hex());
                0
            })
        }
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
