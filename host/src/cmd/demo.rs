//! `proxymapd demo`: write the bundled example configuration and tables,
//! serve them in-process, show one lookup through the client, then serve on
//! (or stop, with `--once`).

use super::settings::map_types;
use anyhow::{bail, Context, Result};
use proxymapd::client::Client;
use proxymapd::server::lifecycle;
use proxymapd::{flags, logging};
use std::path::Path;

const DEMO_CONFIG: &str = include_str!("../../../examples/proxymapd.toml");
const DEMO_TABLES: [(&str, &str); 2] = [
    ("virtual", include_str!("../../../examples/tables/virtual")),
    (
        "transport",
        include_str!("../../../examples/tables/transport"),
    ),
];

/// Run the demo in `dir`.
pub(crate) fn run(dir: &Path, once: bool) -> Result<i32> {
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
