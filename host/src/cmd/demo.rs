//! `proxymapd demo`: write the bundled example configuration and tables,
//! serve them in-process, show a lookup through the client in each kind of
//! table (built-in texthash and inline, and cdb, cidr, regexp and pcre from
//! the WebAssembly plugins shipped in the binary), then serve on (or stop,
//! with `--once`).

use super::settings::map_types;
use anyhow::{bail, Context, Result};
use proxymapd::client::Client;
use proxymapd::codec::Status;
use proxymapd::server::lifecycle;
use proxymapd::{flags, logging};
use std::path::Path;

const DEMO_CONFIG: &str = include_str!("../../../examples/proxymapd.toml");
/// How long the demo asks again while a table answers RETRY.
const RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(120);

/// The example tables, written under `tables/` (`relocated.cdb` was built
/// from `relocated` by Postfix's `postmap cdb:`).
const DEMO_TABLES: [(&str, &[u8]); 7] = [
    (
        "virtual",
        include_bytes!("../../../examples/tables/virtual"),
    ),
    (
        "transport",
        include_bytes!("../../../examples/tables/transport"),
    ),
    (
        "relocated",
        include_bytes!("../../../examples/tables/relocated"),
    ),
    (
        "relocated.cdb",
        include_bytes!("../../../examples/tables/relocated.cdb"),
    ),
    (
        "client_access.cidr",
        include_bytes!("../../../examples/tables/client_access.cidr"),
    ),
    (
        "header_checks.regexp",
        include_bytes!("../../../examples/tables/header_checks.regexp"),
    ),
    (
        "header_checks.pcre",
        include_bytes!("../../../examples/tables/header_checks.pcre"),
    ),
];

/// The lookups shown: map type, table file under `tables/`, key, and who
/// serves that map type.
const DEMO_LOOKUPS: [(&str, &str, &str, &str); 6] = [
    ("texthash", "virtual", "Postmaster@Example.COM", "built in"),
    ("cdb", "relocated", "jdoe@example.com", "WebAssembly plugin"),
    (
        "cidr",
        "client_access.cidr",
        "192.0.2.7",
        "WebAssembly plugin",
    ),
    (
        "regexp",
        "header_checks.regexp",
        "Subject: You won the LOTTERY",
        "WebAssembly plugin",
    ),
    (
        "pcre",
        "header_checks.pcre",
        "X-Spam-Score: 12",
        "WebAssembly plugin",
    ),
    ("texthash", "transport", "example.com", "built in"),
];

/// Run the demo in `dir`.
pub(crate) fn run(dir: &Path, once: bool) -> Result<i32> {
    std::fs::create_dir_all(dir.join("tables"))
        .with_context(|| format!("create {}", dir.display()))?;
    for (name, bytes) in DEMO_TABLES {
        std::fs::write(dir.join("tables").join(name), bytes)?;
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
    let greeting = settings.connection.greeting == proxymapd::codec::Greeting::Proxymap;
    let mut client = Client::connect(&settings.proxymap_socket, greeting)?;
    for (map_type, file, key, served_by) in DEMO_LOOKUPS {
        let table = format!("{map_type}:{}/tables/{file}", dir.display());
        // A plugin compiles at its first use (slow in a debug build, on a
        // busy machine): its table answers RETRY until then, as Postfix
        // clients expect; the demo asks again, as they would.
        let started = std::time::Instant::now();
        let reply = loop {
            let reply = client.lookup(&table, flags::LOCK | flags::FOLD_FIX, key.as_bytes())?;
            if reply.status() != Some(Status::Retry as u32) || started.elapsed() > RETRY_FOR {
                break reply;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        };
        let Some(0) = reply.status() else {
            bail!("demo lookup of {key} in proxy:{table} failed: {reply:?}")
        };
        println!(
            "lookup {key} in proxy:{table} ({map_type}: {served_by})\n  -> {}",
            String::from_utf8_lossy(reply.get("value").unwrap_or_default())
        );
    }
    let table = format!("texthash:{}/tables/virtual", dir.display());
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
