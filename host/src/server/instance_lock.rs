//! One server per socket directory. Before binding, `serve` takes an
//! exclusive, non-blocking flock(2) on `proxymapd.pid` in each directory that
//! holds one of its sockets and keeps it for the life of the process; the
//! file holds the PID. A second `proxymapd serve` on the same configuration
//! therefore fails to lock, names the PID that holds the lock and stops
//! before touching the sockets of the first. The file is never removed:
//! unlinking a lock file that another process may have open would let two
//! processes each lock a different file of the same name.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Name of the lock file in a socket directory.
pub(crate) const LOCK_FILE: &str = "proxymapd.pid";

/// Why a socket directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock.
    #[error(
        "another proxymapd (pid {pid}) is already serving {socket} (it holds the lock {lock}); \
         stop it first, or give this instance other socket paths"
    )]
    Held {
        /// The PID written in the lock file (`unknown` when unreadable).
        pid: String,
        /// The socket this instance wanted to serve.
        socket: PathBuf,
        /// The lock file.
        lock: PathBuf,
    },
    /// The lock file could not be opened, locked or written.
    #[error("lock file {path}: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
}

/// The locks this process holds, one per socket directory.
#[derive(Debug, Default)]
pub(crate) struct InstanceLocks {
    held: Vec<(PathBuf, File)>,
}

impl InstanceLocks {
    /// Lock the directory of `socket` (which must exist) unless this process
    /// already holds its lock.
    pub(crate) fn acquire_for(&mut self, socket: &Path) -> Result<(), LockError> {
        let dir = socket.parent().unwrap_or(Path::new("."));
        let path = dir.join(LOCK_FILE);
        if self.held.iter().any(|(p, _)| *p == path) {
            return Ok(());
        }
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        // No O_TRUNC: the file of a running instance must stay intact.
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(io)?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(io(err));
            }
            return Err(LockError::Held {
                pid: holder_pid(&mut file),
                socket: socket.to_path_buf(),
                lock: path,
            });
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        self.held.push((path, file));
        Ok(())
    }
}

/// The PID in a lock file held by another process. The holder writes it
/// just after locking, so an empty file is read again briefly.
fn holder_pid(file: &mut File) -> String {
    for _ in 0..20 {
        let mut text = String::new();
        if file.rewind().is_ok() && file.read_to_string(&mut text).is_ok() {
            let pid = text.trim();
            if !pid.is_empty() {
                return pid.to_string();
            }
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    "unknown".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_directory_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("proxymap");
        let mut first = InstanceLocks::default();
        first.acquire_for(&socket).unwrap();
        // The same holder may ask again (two sockets in one directory).
        first.acquire_for(&dir.path().join("proxywrite")).unwrap();
        let text = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
        // flock locks belong to the open file description: a second open
        // conflicts even within one process.
        let err = InstanceLocks::default()
            .acquire_for(&socket)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        assert!(err.contains(&socket.display().to_string()), "{err}");
        // The failed attempt left the holder's PID in place.
        let again = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert_eq!(again, text);
        drop(first);
        InstanceLocks::default().acquire_for(&socket).unwrap();
    }
}
