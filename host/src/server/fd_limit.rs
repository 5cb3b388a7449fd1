//! The process's open-files limit. Every client connection is a descriptor,
//! and the usual soft limit of 1024 would turn away about half of 2,000
//! concurrent clients; like Postfix's master, `serve` raises the soft
//! RLIMIT_NOFILE to the hard limit at start. The limit then sizes the
//! default connection cap, leaving a reserve for tables, plugins and logs.

/// Descriptors kept back from the connection cap for everything else.
const RESERVE: u64 = 256;

/// The soft open-files limit before and after [`raise_to_hard`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FdLimit {
    /// The soft limit found at start.
    pub before: u64,
    /// The soft limit now in force.
    pub now: u64,
}

/// Raise the soft RLIMIT_NOFILE to the hard limit (capped at the kernel's
/// `fs.nr_open` when the hard limit is unlimited).
pub(crate) fn raise_to_hard() -> std::io::Result<FdLimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let before = lim.rlim_cur;
    let mut target = lim.rlim_max;
    if target == libc::RLIM_INFINITY {
        target = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(1 << 20);
    }
    if target <= lim.rlim_cur {
        return Ok(FdLimit {
            before,
            now: before,
        });
    }
    let raised = libc::rlimit {
        rlim_cur: target,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: setrlimit reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(FdLimit {
        before,
        now: target,
    })
}

/// The default cap on concurrent connections for a soft limit of `limit`
/// descriptors: the limit less a reserve (at least half the limit).
pub(crate) fn default_max_connections(limit: u64) -> usize {
    let reserve = RESERVE.max(limit / 16);
    limit.saturating_sub(reserve).max(limit / 2).max(1) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cap_leaves_a_reserve() {
        assert_eq!(default_max_connections(1024), 768);
        assert_eq!(default_max_connections(8192), 7680);
        assert_eq!(default_max_connections(1 << 20), (1 << 20) - (1 << 16));
        assert_eq!(default_max_connections(100), 50);
        assert_eq!(default_max_connections(0), 1);
    }
}
