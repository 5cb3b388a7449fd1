//! The server's life, from bound sockets to an orderly exit, as a library
//! function that the binary, the demo and in-process tests all call:
//! [`run`] locks the socket directories (one server per directory), raises
//! the open-files limit, binds the services, serves until told to stop, and
//! rereads the configuration when told to reload. What tells it is a
//! channel of [`Control`] commands; [`forward_signals`] feeds it from
//! SIGTERM/SIGINT (stop) and SIGHUP (reload), as `proxymapd serve` does.
//! It also installs the SIGBUS guard for mapped tables (`dict::sigbus`).

use super::instance_lock::{InstanceLocks, LockError};
use super::socket::BindError;
use super::Service;
use super::{activation, fd_limit, listener, socket};
use crate::config::Settings;
use crate::dict::MapTypes;
use crate::handler::Handler;
use crate::registry::Registry;
use crate::server::config_watch::{ConfigWatch, CHECK_EVERY};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// What a running server can be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Reread the configuration and allowlists; connections stay.
    Reload,
    /// Stop accepting, finish the requests in flight, and return.
    Stop,
}

/// Why the server could not start: the texts are those of the underlying
/// errors, which name the socket or lock file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A socket directory could not be made, or a socket bound.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// Another server holds a socket directory, or its lock file failed.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// A signal handler could not be installed.
    #[error(transparent)]
    Signals(std::io::Error),
}

/// Serve `settings` with the map types `types` until a [`Control::Stop`]
/// arrives (or every sender of `control` is gone); `ready` is told once the
/// sockets are bound.
pub async fn run(
    settings: Settings,
    types: MapTypes,
    control: mpsc::Receiver<Control>,
    ready: Option<oneshot::Sender<()>>,
) -> Result<(), ServeError> {
    prepare(&settings)
        .await?
        .serve(settings, types, control, ready)
        .await
}

/// What a standalone server holds before it serves: the socket-directory
/// locks and the bound (or passed) sockets. Made while still root, so that
/// privileges can be dropped before the serving runtime starts.
pub struct Prepared {
    locks: InstanceLocks,
    services: Vec<socket::EarlyService>,
    created_dirs: Vec<std::path::PathBuf>,
}

/// Lock the socket directories and bind the services' sockets (or take
/// the ones a service manager passed).
pub async fn prepare(settings: &Settings) -> Result<Prepared, ServeError> {
    let mut sockets = vec![(Service::Read, settings.proxymap_socket.clone())];
    if let Some(path) = &settings.proxywrite_socket {
        sockets.push((Service::Write, path.clone()));
    }
    // Lock first: a second server on these sockets stops here, having
    // changed nothing of the first.
    let mut locks = InstanceLocks::default();
    let mut created_dirs = Vec::new();
    for (_, path) in &sockets {
        created_dirs.extend(socket::create_socket_dir(path)?);
        locks.acquire_for(path)?;
    }
    let mut services = Vec::new();
    let mut inherited = activation::take();
    // proxywrite first: a client that can reach proxymap finds both.
    for (service, path) in sockets.iter().rev() {
        let bound = match inherited.iter().position(|i| i.is_for(*service, path)) {
            Some(at) => {
                let passed = inherited.swap_remove(at);
                tracing::info!(
                    "{}: using the listening socket passed as descriptor {} ({})",
                    service.name(),
                    passed.fd,
                    path.display()
                );
                socket::adopt(*service, path, passed.listener)?
            }
            None => socket::bind(*service, path).await?,
        };
        services.push(bound.into_early()?);
    }
    for unused in inherited {
        tracing::warn!(
            "socket activation: descriptor {} matches no service socket; closing it",
            unused.fd
        );
    }
    Ok(Prepared {
        locks,
        services,
        created_dirs,
    })
}

impl Prepared {
    /// The socket directories this server created (they belong to root
    /// until given away).
    pub fn created_dirs(&self) -> &[std::path::PathBuf] {
        &self.created_dirs
    }

    /// Serve the prepared sockets with `types` until a [`Control::Stop`]
    /// arrives (or every sender of `control` is gone), following the
    /// configuration files; `ready` is told once serving.
    pub async fn serve(
        self,
        settings: Settings,
        types: MapTypes,
        control: mpsc::Receiver<Control>,
        ready: Option<oneshot::Sender<()>>,
    ) -> Result<(), ServeError> {
        // Before any table is opened: a mapped table file shrunk by a writer
        // that ignores the lock must poison the mapping, not kill the server.
        crate::dict::sigbus::install();
        let Prepared {
            locks, services, ..
        } = self;
        let services = services
            .into_iter()
            .map(socket::EarlyService::into_bound)
            .collect::<Result<Vec<_>, _>>()?;
        let budget = connection_budget(&settings);
        let registry = Arc::new(Registry::new(types, settings.utf8));
        let handler = Arc::new(Handler::new(registry, settings.allowlists()));
        handler.follow_config(Arc::new(ConfigWatch::new(settings.source.clone())));
        let watcher = tokio::spawn(follow_config(handler.clone()));
        let exit = serve(
            &settings,
            handler,
            services,
            budget,
            control,
            ready,
            ChildLimits::default(),
        )
        .await;
        debug_assert!(exit.is_none());
        watcher.abort();
        drop(locks);
        Ok(())
    }
}

/// When a master(8) child leaves on its own, as Postfix's multi-server
/// daemons do.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChildLimits {
    /// Exit after this long without a client connection (`max_idle`).
    pub max_idle: Option<Duration>,
    /// Exit once this many connections were closed and none is open
    /// (`max_use`, only when asked for with `-m`).
    pub max_use: Option<usize>,
    /// Longest wait for requests in flight at shutdown (`None`: no bound).
    pub shutdown_grace: Option<Duration>,
}

/// Why a master(8) child left on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildExit {
    /// No client for `max_idle`.
    Idle,
    /// `max_use` connections served.
    UseLimit,
}

/// Serve as a master(8) child: `service` on the listening socket master
/// passed (`listener`, shown as `path`), without following main.cf (master
/// restarts its children for that) and leaving when `limits` say so or a
/// [`Control::Stop`] arrives. Returns why it left on its own, if it did.
pub async fn run_child(
    settings: Settings,
    types: MapTypes,
    service: Service,
    listener: std::os::unix::net::UnixListener,
    control: mpsc::Receiver<Control>,
    ready: Option<oneshot::Sender<()>>,
    limits: ChildLimits,
) -> Result<Option<ChildExit>, ServeError> {
    crate::dict::sigbus::install();
    let path = listener
        .local_addr()
        .ok()
        .and_then(|a| a.as_pathname().map(std::path::Path::to_path_buf))
        .unwrap_or_else(|| settings.proxymap_socket.clone());
    let budget = connection_budget(&settings);
    let registry = Arc::new(Registry::new(types, settings.utf8));
    let handler = Arc::new(Handler::new(registry, settings.allowlists()));
    let bound = socket::adopt(service, &path, listener)?;
    Ok(serve(
        &settings,
        handler,
        vec![bound],
        budget,
        control,
        ready,
        limits,
    )
    .await)
}

/// Accept on `services` until a [`Control::Stop`] (or the end of
/// `control`) or until `limits` are reached, then finish the requests in
/// flight.
async fn serve(
    settings: &Settings,
    handler: Arc<Handler>,
    services: Vec<socket::BoundService>,
    budget: Arc<listener::ConnectionBudget>,
    mut control: mpsc::Receiver<Control>,
    ready: Option<oneshot::Sender<()>>,
    limits: ChildLimits,
) -> Option<ChildExit> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let tasks: Vec<_> = services
        .into_iter()
        .map(|bound| {
            tokio::spawn(listener::run(
                bound,
                handler.clone(),
                settings.connection,
                budget.clone(),
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
    let mut every_second = tokio::time::interval(Duration::from_secs(1));
    every_second.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let watch_limits = limits.max_idle.is_some() || limits.max_use.is_some();
    let mut last_busy = tokio::time::Instant::now();
    let exit = loop {
        tokio::select! {
            command = control.recv() => match command {
                Some(Control::Reload) => {
                    handler.reload_config("SIGHUP").await;
                }
                Some(Control::Stop) | None => break None,
            },
            _ = every_second.tick(), if watch_limits => {
                if budget.open() > 0 {
                    last_busy = tokio::time::Instant::now();
                    continue;
                }
                if limits.max_use.is_some_and(|max| budget.closed() >= max) {
                    tracing::info!("served {} connections, the use limit; exiting", budget.closed());
                    break Some(ChildExit::UseLimit);
                }
                if limits.max_idle.is_some_and(|idle| last_busy.elapsed() >= idle) {
                    tracing::info!("no client for {} s; exiting", last_busy.elapsed().as_secs());
                    break Some(ChildExit::Idle);
                }
            }
        }
    };
    if exit.is_none() {
        tracing::info!("shutting down: finishing requests in flight");
    }
    let _ = stop_tx.send(true);
    let finish = async {
        for task in tasks {
            let _ = task.await;
        }
    };
    match limits.shutdown_grace {
        Some(grace) => {
            if tokio::time::timeout(grace, finish).await.is_err() {
                tracing::warn!(
                    "requests still in flight after {} ms; closing their connections",
                    grace.as_millis()
                );
            }
        }
        None => finish.await,
    }
    exit
}

/// Check the configuration files every [`CHECK_EVERY`] and reload the
/// allowlists when they changed (an operator's `postfix reload`).
async fn follow_config(handler: Arc<Handler>) {
    let mut every = tokio::time::interval(CHECK_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        handler.reload_config_if_changed().await;
    }
}

/// Turn SIGTERM and SIGINT into [`Control::Stop`] and SIGHUP into
/// [`Control::Reload`] on `control`. The handlers are installed before this
/// returns, so a signal sent right after cannot kill the process. Must be
/// called inside a tokio runtime.
pub fn forward_signals(control: mpsc::Sender<Control>) -> Result<(), ServeError> {
    use tokio::signal::unix::{signal, SignalKind};
    let handler = |kind| signal(kind).map_err(ServeError::Signals);
    let mut term = handler(SignalKind::terminate())?;
    let mut int = handler(SignalKind::interrupt())?;
    let mut hup = handler(SignalKind::hangup())?;
    tokio::spawn(async move {
        loop {
            let command = tokio::select! {
                _ = term.recv() => Control::Stop,
                _ = int.recv() => Control::Stop,
                _ = hup.recv() => Control::Reload,
            };
            if control.send(command).await.is_err() || command == Control::Stop {
                return;
            }
        }
    });
    Ok(())
}

/// Raise the open-files limit to the hard limit and size the connection
/// cap from it (unless configured).
fn connection_budget(settings: &Settings) -> Arc<listener::ConnectionBudget> {
    let limit = match fd_limit::raise_to_hard() {
        Ok(l) => {
            if l.now != l.before {
                tracing::info!("open-files limit raised from {} to {}", l.before, l.now);
            } else {
                tracing::debug!("open-files limit {}", l.now);
            }
            l.now
        }
        Err(e) => {
            tracing::warn!("cannot raise the open-files limit: {e}");
            1024
        }
    };
    let max = settings
        .connection
        .max_connections
        .unwrap_or_else(|| fd_limit::default_max_connections(limit));
    if max as u64 >= limit {
        tracing::warn!(
            "max_connections {max} is not below the open-files limit {limit}; \
             clients beyond the limit are turned away by accept failures"
        );
    }
    tracing::info!("at most {max} concurrent connections");
    listener::ConnectionBudget::new(max, settings.connection.max_request_memory)
}
