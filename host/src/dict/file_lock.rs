//! Postfix-compatible locks on a table file, shared to read and exclusive to
//! write, in the style Postfix uses for the map type: whole-file fcntl(2)
//! locks (lmdb:) or flock(2) (hash:, btree: — Postfix's internal lock style
//! on Linux, as strace of postmap shows). Both belong to the process (the
//! open file), not the thread, so shared holders in this process are
//! counted: the first takes the lock, the last releases it. Exclusive
//! holders must first exclude this process's readers (the caller's write
//! lock does that).

use std::io;
use std::sync::Mutex;

/// Which system call a map type's locks use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockStyle {
    /// fcntl(2) whole-file record locks.
    Fcntl,
    /// flock(2) file locks.
    Flock,
}

/// The lock state of one open table file.
pub(crate) struct TableLock {
    fd: i32,
    style: LockStyle,
    readers: Mutex<usize>,
}

/// A shared hold; released on drop.
pub(crate) struct SharedGuard<'a>(&'a TableLock);

/// An exclusive hold; released on drop.
pub(crate) struct ExclusiveGuard<'a>(&'a TableLock);

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

fn set_flock(fd: i32, op: i32, wait: bool) -> io::Result<()> {
    let op = if wait { op } else { op | libc::LOCK_NB };
    loop {
        // SAFETY: fd is an open file; flock takes no pointers.
        if unsafe { libc::flock(fd, op) } == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// What a lock operation asks for.
#[derive(Clone, Copy)]
enum Want {
    Shared,
    Exclusive,
    Unlock,
}

fn apply(fd: i32, style: LockStyle, want: Want, wait: bool) -> io::Result<()> {
    match style {
        LockStyle::Fcntl => {
            let kind = match want {
                Want::Shared => libc::F_RDLCK,
                Want::Exclusive => libc::F_WRLCK,
                Want::Unlock => libc::F_UNLCK,
            };
            set_lock(fd, kind, wait)
        }
        LockStyle::Flock => {
            let op = match want {
                Want::Shared => libc::LOCK_SH,
                Want::Exclusive => libc::LOCK_EX,
                Want::Unlock => libc::LOCK_UN,
            };
            set_flock(fd, op, wait)
        }
    }
}

fn would_block(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES))
}

impl TableLock {
    /// fcntl(2) locks on the file open as `fd`.
    pub(crate) fn new(fd: i32) -> TableLock {
        TableLock::with_style(fd, LockStyle::Fcntl)
    }

    /// Locks of `style` on the file open as `fd`.
    pub(crate) fn with_style(fd: i32, style: LockStyle) -> TableLock {
        TableLock {
            fd,
            style,
            readers: Mutex::new(0),
        }
    }

    /// Hold the file shared. With `wait == false`, `Ok(None)` when another
    /// process holds it exclusively.
    pub(crate) fn shared(&self, wait: bool) -> io::Result<Option<SharedGuard<'_>>> {
        let mut readers = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        if *readers == 0 {
            match apply(self.fd, self.style, Want::Shared, wait) {
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
    pub(crate) fn exclusive(&self) -> io::Result<ExclusiveGuard<'_>> {
        apply(self.fd, self.style, Want::Exclusive, true)?;
        Ok(ExclusiveGuard(self))
    }
}

impl Drop for SharedGuard<'_> {
    fn drop(&mut self) {
        let mut readers = self.0.readers.lock().unwrap_or_else(|e| e.into_inner());
        *readers -= 1;
        if *readers == 0 {
            let _ = apply(self.0.fd, self.0.style, Want::Unlock, false);
        }
    }
}

impl Drop for ExclusiveGuard<'_> {
    fn drop(&mut self) {
        let _ = apply(self.0.fd, self.0.style, Want::Unlock, false);
    }
}
