//! Listening sockets handed over by a service manager (systemd's socket
//! activation: `LISTEN_PID`, `LISTEN_FDS`, `LISTEN_FDNAMES`, descriptors
//! from 3 on). The manager keeps the sockets while proxymapd restarts, so
//! clients that connect meanwhile wait in the listen queue instead of being
//! refused. A socket is used for the service it is named after
//! (`proxymap`, `proxywrite`) or whose path it is bound to; sockets
//! proxymapd was given are never removed when it exits.

use super::Service;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::Path;

/// The first descriptor a service manager passes.
const FIRST_FD: RawFd = 3;

/// One listening socket passed by the service manager.
pub(crate) struct Inherited {
    /// Its name from `LISTEN_FDNAMES`, if given.
    name: Option<String>,
    /// The descriptor number it came as, for messages.
    pub(crate) fd: RawFd,
    /// The socket.
    pub(crate) listener: UnixListener,
}

impl Inherited {
    /// Whether this socket is the one for `service` at `path`.
    pub(crate) fn is_for(&self, service: Service, path: &Path) -> bool {
        self.name.as_deref() == Some(service.name())
            || self
                .listener
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(Path::to_path_buf))
                .as_deref()
                == Some(path)
    }
}

/// The listening sockets passed to this process, taken once: the
/// variables are removed so that nothing started later inherits them.
pub(crate) fn take() -> Vec<Inherited> {
    let for_us = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
        == Some(std::process::id());
    let count = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.trim().parse::<RawFd>().ok())
        .unwrap_or(0);
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .map(|n| n.split(':').map(str::to_string).collect())
        .unwrap_or_default();
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(var);
    }
    if !for_us || count <= 0 {
        return Vec::new();
    }
    (0..count)
        .filter_map(|i| {
            let fd = FIRST_FD + i;
            // SAFETY: fcntl takes no pointers; a descriptor that is not open
            // fails with EBADF and is skipped.
            if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
                tracing::warn!("socket activation: descriptor {fd} is not open; ignored");
                return None;
            }
            // SAFETY: the service manager passed descriptor `fd` to this
            // process for it to own; it is taken exactly once, here.
            let owned = unsafe { OwnedFd::from_raw_fd(fd) };
            let listener = UnixListener::from(owned);
            if let Err(e) = listener.set_nonblocking(true) {
                tracing::warn!("socket activation: descriptor {fd}: {e}; ignored");
                return None;
            }
            Some(Inherited {
                name: names
                    .get(i as usize)
                    .filter(|n| !n.is_empty() && *n != "unknown")
                    .cloned(),
                fd,
                listener,
            })
        })
        .collect()
}
