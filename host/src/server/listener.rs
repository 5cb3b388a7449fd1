//! Listening sockets and the accept loops. Sockets are created as Postfix
//! creates its private service sockets (mode 0666 inside the private
//! directory, which carries the access control); a stale socket file left by
//! an earlier run is replaced.

use super::{connection, ConnectionSettings};
use crate::handler::{Handler, Service};
use anyhow::{Context, Result};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::net::UnixListener;
use tokio::sync::watch;

/// A bound service socket.
pub struct BoundService {
    /// Which service.
    pub service: Service,
    /// The socket path.
    pub path: PathBuf,
    listener: UnixListener,
}

/// Bind `path` for `service`, creating its directory when missing.
pub fn bind(service: Service, path: &Path) -> Result<BoundService> {
    if let Some(dir) = path.parent() {
        if !dir.exists() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("create socket directory {}", dir.display()))?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("chmod {}", dir.display()))?;
        }
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if meta.file_type().is_socket() {
            std::fs::remove_file(path)
                .with_context(|| format!("remove stale socket {}", path.display()))?;
        } else {
            anyhow::bail!(
                "{} exists and is not a socket; remove it or choose another path",
                path.display()
            );
        }
    }
    let listener = UnixListener::bind(path)
        .with_context(|| format!("bind {} socket {}", service.name(), path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
        .with_context(|| format!("chmod {}", path.display()))?;
    Ok(BoundService {
        service,
        path: path.to_path_buf(),
        listener,
    })
}

/// Accept connections on `bound` until shutdown, then wait for its
/// connections to finish. Returns the number of connections served.
pub async fn run(
    bound: BoundService,
    handler: Arc<Handler>,
    settings: ConnectionSettings,
    mut shutdown: watch::Receiver<bool>,
) -> usize {
    let active = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(tokio::sync::Notify::new());
    let mut served = 0usize;
    tracing::info!(
        "{} listening on {}",
        bound.service.name(),
        bound.path.display()
    );
    loop {
        tokio::select! {
            accepted = bound.listener.accept() => match accepted {
                Ok((stream, _)) => {
                    served += 1;
                    active.fetch_add(1, Ordering::SeqCst);
                    let (handler, rx, active, done) = (handler.clone(), shutdown.clone(), active.clone(), done.clone());
                    let service = bound.service;
                    tokio::spawn(async move {
                        let span = tracing::debug_span!("connection", service = service.name(), id = served);
                        let _ = tracing::Instrument::instrument(
                            connection::serve(stream, service, handler, settings, rx),
                            span,
                        ).await;
                        if active.fetch_sub(1, Ordering::SeqCst) == 1 {
                            done.notify_waiters();
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!("accept on {}: {e}", bound.path.display());
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
    drop(bound.listener);
    let _ = std::fs::remove_file(&bound.path);
    while active.load(Ordering::SeqCst) > 0 {
        let notified = done.notified();
        if active.load(Ordering::SeqCst) == 0 {
            break;
        }
        let _ = tokio::time::timeout(std::time::Duration::from_millis(100), notified).await;
    }
    served
}
