//! proxymapd as the command of a master.cf line (`proxymap unix - - n - 1
//! proxymapd`): a Postfix daemon in Postfix's startup order. Mark what
//! master passed close-on-exec, log through postlogd or syslog, parse the
//! daemon options, read main.cf through postconf (with `-o` overrides),
//! change to the queue directory, become `mail_owner` (`-u`) before any
//! thread starts, then load the map types, serve the socket on descriptor 6
//! and tell master once, on descriptor 5, that this process is ready. It
//! leaves, exit status 0, when master closes descriptor 5 (reload, exit), on
//! SIGTERM (`postfix stop`), after `max_idle` without clients, or after `-m`
//! connections.

use super::settings::map_types;
use anyhow::{anyhow, bail, Context, Result};
use proxymapd::config::{time_value, ConfigSource, Settings};
use proxymapd::logging::{self, DaemonLog};
use proxymapd::master::options::{self, DaemonOptions};
use proxymapd::master::status::{self, LISTEN_FD, STATUS_FD};
use proxymapd::privileges;
use proxymapd::server::lifecycle::{self, ChildExit, ChildLimits, Control};
use proxymapd::server::Service;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long requests in flight may take to finish once master wants the
/// process gone (master's `postfix stop` waits 5 s before `kill -9`).
const SHUTDOWN_GRACE: Duration = Duration::from_millis(800);

/// Run as master(8)'s child; returns the exit status.
pub(crate) fn run(program: &str, args: &[String]) -> i32 {
    status::close_on_exec([3, 4, STATUS_FD]);
    let logtag = std::env::var("MAIL_LOGTAG")
        .ok()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "postfix".into());
    let base = Path::new(program)
        .file_name()
        .map(|b| b.to_string_lossy().into_owned())
        .unwrap_or_else(|| "proxymapd".into());
    let tag = format!("{logtag}/{base}");
    let parsed = options::parse(args);
    let verbose = parsed.as_ref().map(|o| o.verbose).unwrap_or(0) > 0
        || std::env::var_os("MAIL_VERBOSE").is_some();
    // As Postfix's daemons: -V, or a terminal on standard error (run by
    // hand), also logs there.
    // SAFETY: isatty takes a descriptor number only.
    let stderr_too = parsed.as_ref().map(|o| o.log_to_stderr).unwrap_or(false)
        || unsafe { libc::isatty(2) } == 1;
    logging::init_daemon(
        // Postfix daemons log nothing while all is well; -v asks for more.
        if verbose { "debug" } else { "warn" },
        &tag,
        DaemonLog::from_environment("mail"),
        stderr_too,
    );
    let result = parsed.map_err(anyhow::Error::from).and_then(child);
    match result {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!(target: "fatal", "{e:#}");
            1
        }
    }
}

fn child(options: DaemonOptions) -> Result<()> {
    status::close_on_exec(LISTEN_FD..LISTEN_FD + options.listen_fds as i32);
    // SAFETY: isatty takes a descriptor number only.
    if unsafe { libc::isatty(0) } == 1 && !options.stand_alone && !options.foreground {
        bail!("do not run this command by hand");
    }
    let service = options.service().map_err(|e| anyhow!(e))?;
    match options.transport.as_deref() {
        None => bail!("no transport type specified"),
        Some("unix") => {}
        Some(other) => bail!("unsupported transport type: {other}"),
    }
    if options.listen_fds != 1 {
        bail!(
            "{} listening descriptors passed; proxymapd serves one unix socket per service",
            options.listen_fds
        );
    }
    if options.debugger {
        tracing::warn!("-D (debugger) is ignored");
    }
    let generation = status::generation().map_err(|e| anyhow!(e))?;
    if !status::is_open(LISTEN_FD) || !status::is_open(STATUS_FD) {
        bail!("descriptors 5 and 6 are not open: proxymapd runs this way only under master(8)");
    }
    let settings = load_settings(&options)?;
    if let Some(facility) = settings.postfix_parameter("syslog_facility") {
        logging::set_daemon_facility(facility).map_err(|e| anyhow!(e))?;
    }
    let queue = settings
        .postfix_parameter("queue_directory")
        .map(PathBuf::from)
        .or_else(|| {
            settings
                .proxymap_socket
                .parent()?
                .parent()
                .map(Path::to_path_buf)
        });
    if let Some(queue) = &queue {
        std::env::set_current_dir(queue).with_context(|| format!("chdir {}", queue.display()))?;
    }
    drop_privileges(&options, &settings, service)?;
    if service == Service::Write {
        // As proxymap(8) does: stay out of master's process group, so that
        // `postfix stop` cannot cut an update short; EOF on descriptor 5
        // still ends the process.
        // SAFETY: setsid takes no arguments.
        unsafe { libc::setsid() };
    }
    // SAFETY: master(8) passes the listening socket as descriptor 6 for this
    // process to own; it is taken once, here.
    let listener =
        std::os::unix::net::UnixListener::from(unsafe { OwnedFd::from_raw_fd(LISTEN_FD) });
    listener.set_nonblocking(true).context("listening socket")?;
    let limits = ChildLimits {
        max_idle: Some(Duration::from_secs(match options.max_idle {
            Some(secs) => secs,
            None => time_value(settings.postfix_parameter("max_idle").unwrap_or("100s"))
                .map_err(|e| anyhow!("max_idle: {e}"))?,
        }))
        .filter(|d| !d.is_zero()),
        max_use: options.max_use.map(|n| n as usize).filter(|&n| n > 0),
        shutdown_grace: Some(SHUTDOWN_GRACE),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let exit = runtime.block_on(async move {
        let types = map_types(&settings)?;
        let (control, commands) = tokio::sync::mpsc::channel(4);
        forward_shutdown(control.clone())?;
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            if ready_rx.await.is_ok() {
                if let Err(e) = status::announce_ready(generation) {
                    tracing::warn!("cannot report to master: {e}; exiting");
                    let _ = control.send(Control::Stop).await;
                }
            }
        });
        lifecycle::run_child(
            settings,
            types,
            service,
            listener,
            commands,
            Some(ready_tx),
            limits,
        )
        .await
        .map_err(anyhow::Error::from)
    })?;
    if let Some(ChildExit::Idle | ChildExit::UseLimit) = exit {
        tracing::debug!("leaving on a limit; master starts another process on demand");
    }
    runtime.shutdown_timeout(Duration::from_millis(100));
    Ok(())
}

/// The settings: main.cf through postconf with the `-o` overrides, or the
/// TOML file named by `config=`; `plugin_dir=` directories first.
fn load_settings(options: &DaemonOptions) -> Result<Settings> {
    let mut settings = match &options.config {
        Some(file) => ConfigSource::Toml(file.clone())
            .load()
            .context("configuration error")?,
        None => {
            let dir = std::env::var_os("MAIL_CONFIG")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/etc/postfix"));
            ConfigSource::load_postfix_daemon(&dir, &options.overrides)
                .context("configuration error")?
        }
    };
    let mut dirs = options.plugin_dirs.clone();
    dirs.append(&mut settings.plugin_dirs);
    settings.plugin_dirs = dirs;
    Ok(settings)
}

/// `-u`: become mail_owner, giving it the plugin cache directory first
/// when this process creates it. Without `-u`, warn that proxymapd runs as
/// root.
fn drop_privileges(options: &DaemonOptions, settings: &Settings, service: Service) -> Result<()> {
    if !options.unprivileged {
        if privileges::running_as_root() {
            tracing::warn!(
                "running as root: the unpriv column of the {} line in master.cf is n; set it \
                 to - so that proxymapd runs as mail_owner, as Postfix's proxymap does",
                options.service_name.as_deref().unwrap_or(service.name())
            );
        }
        return Ok(());
    }
    if !privileges::running_as_root() {
        return Ok(());
    }
    let owner = settings
        .postfix_parameter("mail_owner")
        .unwrap_or("postfix");
    let account = privileges::lookup(owner)?;
    super::settings::give_cache_dir(settings, &account);
    privileges::become_user(&account)?;
    Ok(())
}

/// SIGTERM (`postfix stop`) and end-of-file on descriptor 5 (`postfix
/// reload`, master gone) both stop the server. SIGHUP is ignored: master
/// never sends it.
fn forward_shutdown(control: tokio::sync::mpsc::Sender<Control>) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        let why = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = status::master_gone() => "master closed the status channel",
        };
        tracing::debug!("{why}: stopping");
        let _ = control.send(Control::Stop).await;
    });
    tokio::spawn(async move { while hup.recv().await.is_some() {} });
    Ok(())
}
