//! `proxymapd serve`: load the settings, bind the proxymap and proxywrite
//! sockets while still root, become the unprivileged user (main.cf's
//! `mail_owner`, or `--user`) before any thread starts, then serve until
//! SIGTERM/SIGINT, rereading the configuration on SIGHUP and when its files
//! change (the server's life is `server::lifecycle`).

use super::settings::{give_cache_dir, load_args, map_types, ConfigArgs};
use anyhow::{Context, Result};
use proxymapd::config::Settings;
use proxymapd::logging;
use proxymapd::privileges::{self, Account};
use proxymapd::server::lifecycle::{self, Prepared};

/// Serve until told to stop.
pub(crate) fn run(args: &ConfigArgs) -> Result<i32> {
    let settings = load_args(args)?;
    logging::init(&settings.log_level);
    let account = run_as(args, &settings)?;
    // Bind on a runtime without threads, so that privileges are dropped
    // before the serving runtime (and the plugin engine) starts any.
    let prepared = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(lifecycle::prepare(&settings))?;
    match &account {
        Some(account) => {
            for dir in prepared.created_dirs() {
                if let Err(e) = privileges::give(dir, account) {
                    tracing::warn!("cannot give {} to {}: {e}", dir.display(), account.name);
                }
            }
            give_cache_dir(&settings, account);
            privileges::become_user(account)?;
            tracing::info!("running as {} (uid {})", account.name, account.uid);
        }
        None if privileges::running_as_root() => tracing::warn!(
            "running as root: tables are opened and created with root's rights; give \
             --user or set mail_owner so that proxymapd runs as Postfix's proxymap does"
        ),
        None => {}
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_server(settings, prepared))?;
    Ok(0)
}

/// Whom to run as once the sockets are bound: `--user`, else main.cf's
/// `mail_owner`; nobody when not root or when `--user root`.
fn run_as(args: &ConfigArgs, settings: &Settings) -> Result<Option<Account>> {
    if !privileges::running_as_root() {
        return Ok(None);
    }
    let name = match (&args.user, settings.postfix_parameter("mail_owner")) {
        (Some(user), _) => user.as_str(),
        (None, Some(owner)) => owner,
        (None, None) => return Ok(None),
    };
    if name == "root" {
        return Ok(None);
    }
    Ok(Some(
        privileges::lookup(name).context("--user / mail_owner")?,
    ))
}

/// Run until SIGTERM/SIGINT, rereading the configuration on SIGHUP.
async fn run_server(settings: Settings, prepared: Prepared) -> Result<()> {
    let types = map_types(&settings)?;
    let (control, commands) = tokio::sync::mpsc::channel(4);
    // Signal handlers first: whoever is told "ready" may signal at once.
    lifecycle::forward_signals(control)?;
    Ok(prepared.serve(settings, types, commands, None).await?)
}
