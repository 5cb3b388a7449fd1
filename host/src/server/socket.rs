//! Binding the service sockets. Sockets are created as Postfix creates its
//! private service sockets (mode 0666 inside the private directory, which
//! carries the access control). A socket file left by an earlier run is
//! replaced only when nobody answers on it: if a connection to it succeeds,
//! another process (for example Postfix's own proxymap) serves it and binding
//! fails, naming that process. A bound socket remembers its inode and is
//! removed when dropped only if the path still names that inode, so a server
//! never deletes a socket some other process has bound since.

use super::Service;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tokio::net::UnixListener;

/// A bound service socket; dropping it closes the socket and removes its
/// file if that file is still ours.
pub(crate) struct BoundService {
    /// Which service.
    pub service: Service,
    /// The socket path.
    pub path: PathBuf,
    /// The listening socket.
    pub listener: UnixListener,
    /// The socket file, removed when this is dropped if it is ours.
    file: SocketFile,
}

/// A bound service socket not yet tied to a runtime, so that it can be
/// bound before privileges are dropped and served after.
pub(crate) struct EarlyService {
    service: Service,
    path: PathBuf,
    listener: std::os::unix::net::UnixListener,
    file: SocketFile,
}

impl EarlyService {
    /// Serve it in the current runtime.
    pub(crate) fn into_bound(self) -> Result<BoundService, BindError> {
        let EarlyService {
            service,
            path,
            listener,
            file,
        } = self;
        let listener = UnixListener::from_std(listener).map_err(io_err("adopt socket", &path))?;
        Ok(BoundService {
            service,
            path,
            listener,
            file,
        })
    }
}

impl BoundService {
    /// Detach it from the current runtime, to serve it in another.
    pub(crate) fn into_early(self) -> Result<EarlyService, BindError> {
        let BoundService {
            service,
            path,
            listener,
            file,
        } = self;
        let listener = listener
            .into_std()
            .map_err(io_err("detach socket", &path))?;
        Ok(EarlyService {
            service,
            path,
            listener,
            file,
        })
    }
}

/// A socket file; removed when dropped if the path still names the file
/// this server created (device and inode). A socket a service manager
/// passed carries no identity: it is not ours to remove.
struct SocketFile {
    path: PathBuf,
    identity: Option<(u64, u64)>,
}

/// Why a service socket could not be bound.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// A live server answers on the socket.
    #[error(
        "{path} is served by another process ({who}); proxymapd replaces only sockets nobody \
         answers on. If that is Postfix's proxymap, stop that service first: comment out the \
         proxymap and proxywrite lines of master.cf and run `postfix reload`"
    )]
    InUse {
        /// The socket.
        path: PathBuf,
        /// What is known of the process listening there.
        who: String,
    },
    /// The path exists and is not a socket.
    #[error("{0} exists and is not a socket; remove it or choose another path")]
    NotASocket(PathBuf),
    /// A file-system or socket call failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> BindError + 'a {
    move |source| BindError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Create the directory of the socket `path` (mode 0700) when missing.
/// Returns the directory when it was created here.
pub(crate) fn create_socket_dir(path: &Path) -> Result<Option<PathBuf>, BindError> {
    let Some(dir) = path.parent() else {
        return Ok(None);
    };
    if dir.exists() {
        return Ok(None);
    }
    std::fs::create_dir_all(dir).map_err(io_err("create socket directory", dir))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(io_err("chmod", dir))?;
    Ok(Some(dir.to_path_buf()))
}

/// Bind `path` for `service`, creating its directory when missing and
/// replacing a stale socket file.
pub(crate) async fn bind(service: Service, path: &Path) -> Result<BoundService, BindError> {
    create_socket_dir(path)?;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if !meta.file_type().is_socket() {
            return Err(BindError::NotASocket(path.to_path_buf()));
        }
        probe(path).await?;
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("remove stale socket", path)(e)),
        }
    }
    let what = match service {
        Service::Read => "bind proxymap socket",
        Service::Write => "bind proxywrite socket",
    };
    let listener = UnixListener::bind(path).map_err(io_err(what, path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
        .map_err(io_err("chmod", path))?;
    let meta = std::fs::symlink_metadata(path).map_err(io_err("stat", path))?;
    Ok(BoundService {
        service,
        path: path.to_path_buf(),
        listener,
        file: SocketFile {
            path: path.to_path_buf(),
            identity: Some((meta.dev(), meta.ino())),
        },
    })
}

/// Serve `service` on a listening socket a service manager passed
/// (socket activation); its file is left in place when the server exits.
pub(crate) fn adopt(
    service: Service,
    path: &Path,
    listener: std::os::unix::net::UnixListener,
) -> Result<BoundService, BindError> {
    let listener = UnixListener::from_std(listener).map_err(io_err("adopt socket", path))?;
    Ok(BoundService {
        service,
        path: path.to_path_buf(),
        listener,
        file: SocketFile {
            path: path.to_path_buf(),
            identity: None,
        },
    })
}

/// Succeed when nobody listens on the existing socket `path`.
async fn probe(path: &Path) -> Result<(), BindError> {
    let connect = tokio::net::UnixStream::connect(path);
    let in_use = |who: String| BindError::InUse {
        path: path.to_path_buf(),
        who,
    };
    match tokio::time::timeout(std::time::Duration::from_secs(2), connect).await {
        Ok(Ok(stream)) => Err(in_use(describe_peer(&stream))),
        Ok(Err(e))
            if matches!(
                e.raw_os_error(),
                Some(libc::ECONNREFUSED) | Some(libc::ENOENT)
            ) =>
        {
            Ok(())
        }
        // A full listen queue: somebody listens but is not accepting now.
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
            Err(in_use("its listen queue is full".into()))
        }
        Ok(Err(e)) => Err(io_err("probe existing socket", path)(e)),
        Err(_) => Err(in_use("it did not complete a connection in 2 s".into())),
    }
}

/// "pid N, COMMAND" of the process that set up the listening end.
fn describe_peer(stream: &tokio::net::UnixStream) -> String {
    let Some(pid) = stream.peer_cred().ok().and_then(|c| c.pid()) else {
        return "pid unknown".into();
    };
    match std::fs::read_to_string(format!("/proc/{pid}/comm")) {
        Ok(comm) => format!("pid {pid}, {}", comm.trim()),
        Err(_) => format!("pid {pid}"),
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let Some(identity) = self.identity else {
            return;
        };
        let ours = std::fs::symlink_metadata(&self.path)
            .map(|m| (m.dev(), m.ino()) == identity)
            .unwrap_or(false);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        } else {
            tracing::debug!(
                "{} is no longer the socket this server bound; leaving it",
                self.path.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_live_socket_is_refused_and_a_stale_one_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("private/proxymap");
        let first = bind(Service::Read, &path).await.unwrap();
        let err = bind(Service::Read, &path).await.err().expect("in use");
        assert!(
            err.to_string()
                .contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        // A socket file nobody listens on is replaced.
        let stale = std::os::unix::net::UnixListener::bind(dir.path().join("stale")).unwrap();
        drop(stale);
        let second = bind(Service::Read, &dir.path().join("stale"))
            .await
            .unwrap();
        drop(second);
        assert!(!dir.path().join("stale").exists(), "removed on drop");
        drop(first);
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn dropping_leaves_a_socket_bound_by_someone_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("proxymap");
        let first = bind(Service::Read, &path).await.unwrap();
        // Someone replaces the file behind our back.
        std::fs::remove_file(&path).unwrap();
        let other = std::os::unix::net::UnixListener::bind(&path).unwrap();
        drop(first);
        assert!(path.exists(), "the other socket must survive");
        drop(other);
    }
}
