//! The `proxymapd` command: `serve`, `check`, `query` and `demo`.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use proxymapd::client::Client;
use proxymapd::config::{ConfigSource, Settings};
use proxymapd::dict::MapTypes;
use proxymapd::handler::{Handler, Service};
use proxymapd::registry::Registry;
use proxymapd::server::listener;
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
        Command::Serve(args) => serve(args.source()),
        Command::Check(args) => check(args.source()),
        Command::Query(args) => query(args),
        Command::Demo { dir, once } => demo(&dir, once),
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

fn serve(source: ConfigSource) -> Result<i32> {
    let settings = load(&source)?;
    logging::init(&settings.log_level);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_server(settings, None))?;
    Ok(0)
}

/// Run until SIGTERM/SIGINT; `ready` is told once the sockets are bound.
async fn run_server(
    settings: Settings,
    ready: Option<tokio::sync::oneshot::Sender<()>>,
) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let registry = Arc::new(Registry::new(MapTypes::builtin(), settings.utf8));
    let handler = Arc::new(Handler::new(registry, settings.allowlists()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut services = vec![listener::bind(Service::Read, &settings.proxymap_socket)?];
    if let Some(path) = &settings.proxywrite_socket {
        services.push(listener::bind(Service::Write, path)?);
    }
    let tasks: Vec<_> = services
        .into_iter()
        .map(|bound| {
            tokio::spawn(listener::run(
                bound,
                handler.clone(),
                settings.connection,
                stop_rx.clone(),
            ))
        })
        .collect();
    tracing::info!(
        "approved tables: {} read, {} write",
        handler.approved(Service::Read).len(),
        handler.approved(Service::Write).len()
    );
    if let Some(ready) = ready {
        let _ = ready.send(());
    }
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => match settings.source.load() {
                Ok(new) => {
                    handler.set_allowlists(new.allowlists());
                    tracing::info!(
                        "configuration reloaded: {} read, {} write tables approved",
                        handler.approved(Service::Read).len(),
                        handler.approved(Service::Write).len()
                    );
                }
                Err(e) => tracing::error!("reload failed, keeping the old configuration: {e:#}"),
            },
        }
    }
    tracing::info!("shutting down: finishing requests in flight");
    let _ = stop_tx.send(true);
    for task in tasks {
        let _ = task.await;
    }
    Ok(())
}

fn check(source: ConfigSource) -> Result<i32> {
    let settings = load(&source)?;
    logging::init("error");
    let types = MapTypes::builtin();
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
                Ok(_) => println!("ok: {}: {table}", service.name()),
                Err(e) if service == Service::Write && e.message.contains("No such file") => {
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
    let server_settings = settings.clone();
    let server = runtime.spawn(async move { run_server(server_settings, Some(ready_tx)).await });
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
        // SAFETY: raising SIGTERM at ourselves triggers the orderly shutdown.
        unsafe { libc::raise(libc::SIGTERM) };
    }
    runtime.block_on(server)??;
    Ok(0)
}
