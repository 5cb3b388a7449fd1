//! Postfix-compatible locks on a table file: whole-file fcntl(2) locks,
//! shared to read and exclusive to write, as postmap and Postfix's own
//! daemons take them. fcntl locks belong to the process, not the thread, so
//! shared holders in this process are counted: the first takes the lock,
//! the last releases it. Exclusive holders must first exclude this process's
//! readers (the caller's write lock does that).

use std::io;
use std::sync::Mutex;

/// The lock state of one open table file.
pub struct TableLock {
    fd: i32,
    readers: Mutex<usize>,
}

/// A shared hold; released on drop.
pub struct SharedGuard<'a>(&'a TableLock);

/// An exclusive hold; released on drop.
pub struct ExclusiveGuard<'a>(&'a TableLock);

fn set_lock(fd: i32, kind: i32, wait: bool) -> io::Result<()> {
    // SAFETY: flock is plain data; zeroed is a valid whole-file lock request.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    let cmd = if wait { libc::F_SETLKW } else { libc::F_SETLK };
    loop {
        // SAFETY: fd is an open file; fl is valid for the call.
        if unsafe { libc::fcntl(fd, cmd, &fl) } == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

fn would_block(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES))
}

impl TableLock {
    /// Locks on the file open as `fd`.
    pub fn new(fd: i32) -> TableLock {
        TableLock {
            fd,
            readers: Mutex::new(0),
        }
    }

    /// Hold the file shared. With `wait == false`, `Ok(None)` when another
    /// process holds it exclusively.
    pub fn shared(&self, wait: bool) -> io::Result<Option<SharedGuard<'_>>> {
        let mut readers = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        if *readers == 0 {
            match set_lock(self.fd, libc::F_RDLCK, wait) {
                Ok(()) => {}
                Err(e) if !wait && would_block(&e) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        *readers += 1;
        Ok(Some(SharedGuard(self)))
    }

    /// Hold the file exclusively (waiting for other processes). The caller
    /// guarantees that no shared guard of this process is alive.
    pub fn exclusive(&self) -> io::Result<ExclusiveGuard<'_>> {
        set_lock(self.fd, libc::F_WRLCK, true)?;
        Ok(ExclusiveGuard(self))
    }
}

impl Drop for SharedGuard<'_> {
    fn drop(&mut self) {
        let mut readers = self.0.readers.lock().unwrap_or_else(|e| e.into_inner());
        *readers -= 1;
        if *readers == 0 {
            let _ = set_lock(self.0.fd, libc::F_UNLCK, false);
        }
    }
}

impl Drop for ExclusiveGuard<'_> {
    fn drop(&mut self) {
        let _ = set_lock(self.0.fd, libc::F_UNLCK, false);
    }
}
