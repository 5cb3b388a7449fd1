//! `proxymapd serve`: load the settings and serve the proxymap and
//! proxywrite sockets until SIGTERM/SIGINT, rereading the configuration on
//! SIGHUP (the server's life is `server::lifecycle::run`).

use super::settings::{load_args, map_types, ConfigArgs};
use anyhow::Result;
use proxymapd::config::Settings;
use proxymapd::logging;
use proxymapd::server::lifecycle;

/// Serve until told to stop.
pub(crate) fn run(args: &ConfigArgs) -> Result<i32> {
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
    Ok(lifecycle::run(settings, types, commands, ready).await?)
}
