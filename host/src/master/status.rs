//! The status channel to master(8): descriptor 5, one end of a socket pair
//! shared by every process of the service. A child writes 12-byte records
//! `{pid, generation, available}` (native byte order, one write each);
//! master never writes back, and closes its end on `postfix reload` and
//! when it exits, so end-of-file (or anything readable) means "leave".
//! proxymapd serves every connection in one process, so it announces itself
//! once, TAKEN then AVAIL, when it is ready: master then counts it as
//! available, never forks a second copy, and takes a later crash for a
//! crash rather than for a command that cannot start.

use std::os::fd::{BorrowedFd, RawFd};

/// The descriptor master(8) passes for status records.
pub const STATUS_FD: RawFd = 5;

/// The first listening descriptor master(8) passes.
pub const LISTEN_FD: RawFd = 6;

/// One status record, as master(8) reads it.
fn record(generation: u32, available: bool) -> [u8; 12] {
    let mut bytes = [0u8; 12];
    bytes[0..4].copy_from_slice(&(std::process::id() as i32).to_ne_bytes());
    bytes[4..8].copy_from_slice(&generation.to_ne_bytes());
    bytes[8..12].copy_from_slice(&i32::from(available).to_ne_bytes());
    bytes
}

/// Write one record to `fd` in one `write`.
fn send(fd: RawFd, generation: u32, available: bool) -> std::io::Result<()> {
    let bytes = record(generation, available);
    loop {
        // SAFETY: `bytes` is a live buffer of the length passed.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n == bytes.len() as isize {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if n < 0 && err.kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        if n >= 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::WriteZero,
                "short status write",
            ));
        }
        return Err(err);
    }
}

/// Tell master this process is ready: one TAKEN record, then one AVAIL.
pub fn announce_ready(generation: u32) -> std::io::Result<()> {
    send(STATUS_FD, generation, false)?;
    send(STATUS_FD, generation, true)
}

/// `GENERATION` from the environment: octal, absent means 0; anything but
/// octal digits is an error, as for Postfix's daemons.
pub fn generation() -> Result<u32, String> {
    match std::env::var("GENERATION") {
        Err(_) => Ok(0),
        Ok(text) => {
            u32::from_str_radix(text.trim(), 8).map_err(|_| format!("bad generation: {text}"))
        }
    }
}

/// Mark descriptors close-on-exec, as every Postfix daemon does with what
/// master passes, so nothing proxymapd runs (postconf) inherits them.
/// Descriptors that are not open are skipped.
pub fn close_on_exec(fds: impl IntoIterator<Item = RawFd>) {
    for fd in fds {
        // SAFETY: fcntl on a number takes no pointers; EBADF is harmless.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
}

/// Whether descriptor `fd` is open.
pub fn is_open(fd: RawFd) -> bool {
    // SAFETY: as above.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// Wait until the status channel is readable: master closed its end
/// (reload, exit) or wrote something. Returns at once if it cannot be
/// watched at all, since a child that cannot hear master must not linger.
/// Watches a duplicate of descriptor 5 (same socket), which stays open for
/// status writes.
pub async fn master_gone() {
    let watched = dup_status().and_then(|stream| {
        stream.set_nonblocking(true)?;
        tokio::net::UnixStream::from_std(stream)
    });
    match watched {
        Ok(stream) => {
            let _ = stream.readable().await;
        }
        Err(e) => tracing::warn!("cannot watch the master status channel: {e}"),
    }
}

fn dup_status() -> std::io::Result<std::os::unix::net::UnixStream> {
    // SAFETY: descriptor 5 stays open for the life of the process; the
    // borrow ends before this returns.
    let fd = unsafe { BorrowedFd::borrow_raw(STATUS_FD) };
    Ok(std::os::unix::net::UnixStream::from(
        fd.try_clone_to_owned()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_pid_generation_and_availability() {
        let r = record(0o17, true);
        assert_eq!(
            i32::from_ne_bytes(r[0..4].try_into().unwrap()),
            std::process::id() as i32
        );
        assert_eq!(u32::from_ne_bytes(r[4..8].try_into().unwrap()), 15);
        assert_eq!(i32::from_ne_bytes(r[8..12].try_into().unwrap()), 1);
    }
}
