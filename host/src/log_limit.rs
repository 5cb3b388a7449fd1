//! Rate limiting for repeated warnings, so the log grows with the trouble
//! rather than with the traffic: a client sending a megabyte of garbage must
//! not write tens of megabytes of log. Each noisy call site owns a static
//! `RateLimit` (created by [`warn_limited!`](crate::warn_limited)); it lets
//! `BURST` lines through per `WINDOW`, then counts. The count comes out as
//! one `KIND: N similar warnings suppressed` line, either before the next
//! warning of that kind or, when the flood has stopped, from a background
//! flusher. The hot path is a clock read and a few atomic operations; nothing
//! is formatted or allocated for a suppressed line.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Lines of one kind let through per window.
pub(crate) const BURST: u32 = 10;

/// The window length.
pub(crate) const WINDOW: Duration = Duration::from_secs(10);

/// How often the flusher looks for finished windows with suppressed lines.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// The limiter of one kind of warning. Declare it `static`.
pub(crate) struct RateLimit {
    kind: &'static str,
    /// Index of the current window (windows since [`epoch`]), plus one so
    /// that zero means "never used".
    window: AtomicU64,
    /// Lines allowed or refused in the current window.
    count: AtomicU32,
    /// Lines refused and not yet reported.
    suppressed: AtomicU64,
    /// Whether the flusher knows this limiter.
    registered: AtomicBool,
}

/// The process-wide time origin of the windows.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// The current window index, plus one.
fn current_window() -> u64 {
    let elapsed = epoch().elapsed().as_millis() as u64;
    elapsed / WINDOW.as_millis() as u64 + 1
}

impl RateLimit {
    /// A limiter for warnings of `kind` (a short fixed description, used in
    /// the summary line).
    pub(crate) const fn new(kind: &'static str) -> RateLimit {
        RateLimit {
            kind,
            window: AtomicU64::new(0),
            count: AtomicU32::new(0),
            suppressed: AtomicU64::new(0),
            registered: AtomicBool::new(false),
        }
    }

    /// Whether one more line may be logged now. A `true` answer may first
    /// log the summary of the lines suppressed in an earlier window.
    pub(crate) fn allow(&'static self) -> bool {
        self.allow_at(current_window())
    }

    fn allow_at(&'static self, now: u64) -> bool {
        let seen = self.window.load(Ordering::Relaxed);
        if seen != now
            && self
                .window
                .compare_exchange(seen, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            self.count.store(0, Ordering::Relaxed);
            self.report();
        }
        if self.count.fetch_add(1, Ordering::Relaxed) < BURST {
            return true;
        }
        if self.suppressed.fetch_add(1, Ordering::Relaxed) == 0 {
            self.register();
        }
        false
    }

    /// Log the summary of suppressed lines, if there are any.
    fn report(&self) {
        let n = self.suppressed.swap(0, Ordering::AcqRel);
        if n > 0 {
            tracing::warn!("{}: {n} similar warnings suppressed", self.kind);
        }
    }

    /// Lines suppressed and not yet reported.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> u64 {
        self.suppressed.load(Ordering::Relaxed)
    }

    /// Report suppressed lines whose window has ended.
    fn flush_at(&self, now: u64) {
        if self.window.load(Ordering::Acquire) != now {
            self.report();
        }
    }

    /// Make the flusher look at this limiter from now on.
    fn register(&'static self) {
        if self.registered.swap(true, Ordering::AcqRel) {
            return;
        }
        let list = flusher();
        list.lock().unwrap_or_else(|e| e.into_inner()).push(self);
    }
}

/// The registered limiters; the first call starts the flusher thread.
fn flusher() -> &'static Mutex<Vec<&'static RateLimit>> {
    static LIMITS: OnceLock<Mutex<Vec<&'static RateLimit>>> = OnceLock::new();
    LIMITS.get_or_init(|| {
        let spawned = std::thread::Builder::new()
            .name("log-flush".into())
            .spawn(|| loop {
                std::thread::sleep(FLUSH_EVERY);
                let now = current_window();
                let limits = flusher().lock().unwrap_or_else(|e| e.into_inner());
                for limit in limits.iter() {
                    limit.flush_at(now);
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot start the log flusher ({e}); suppression summaries come late");
        }
        Mutex::new(Vec::new())
    })
}

/// `tracing::warn!` limited per call-site kind: at most
/// `BURST` lines per
/// `WINDOW`, then a summary of how many were
/// suppressed. The first argument is a fixed description of the kind; the
/// rest are `warn!`'s format arguments, evaluated only when the line is logged.
#[macro_export]
macro_rules! warn_limited {
    ($kind:expr, $($arg:tt)+) => {{
        static LIMIT: $crate::log_limit::RateLimit = $crate::log_limit::RateLimit::new($kind);
        if LIMIT.allow() {
            ::tracing::warn!($($arg)+);
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lets_a_burst_through_per_window_then_counts() {
        static L: RateLimit = RateLimit::new("test burst");
        let allowed = (0..100).filter(|_| L.allow_at(7)).count();
        assert_eq!(allowed, BURST as usize);
        assert_eq!(L.pending(), 100 - BURST as u64);
        // A new window lets a burst through again and reports the count.
        assert!(L.allow_at(8));
        assert_eq!(L.pending(), 0);
        let allowed = (0..100).filter(|_| L.allow_at(8)).count();
        assert_eq!(allowed, BURST as usize - 1);
    }

    #[test]
    fn flush_reports_only_finished_windows() {
        static L: RateLimit = RateLimit::new("test flush");
        for _ in 0..(BURST + 5) {
            L.allow_at(3);
        }
        L.flush_at(3);
        assert_eq!(L.pending(), 5, "the window is still open");
        L.flush_at(4);
        assert_eq!(L.pending(), 0);
    }
}
