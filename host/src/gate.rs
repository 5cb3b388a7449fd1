//! Where and how much of a table's blocking work runs. Every operation that
//! may block (opening a table, a lookup waiting for a lock, a plugin call)
//! passes through the [`TableGate`] of its table name: at most
//! `concurrency` of them run at once, a request waits for its turn
//! asynchronously (holding no thread) and gives up with `GateError::Busy`
//! after about `wait` (±25 %). Work of a table that recently proved slow (one
//! operation of `SLOW` or more, opens aside) runs in the slow lane: a few
//! threads at a low priority (nice 10, `SLOW_LANE_NICE`), which yield most of
//! the processor to everything else without being starved by it, so a hanging or CPU-bound
//! table neither takes the blocking threads the other tables need nor
//! delays their requests on the processor. Its
//! RETRY answers are paced to `SLOW`, so clients retrying at once do not
//! turn a hanging table into a flood of requests.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// An operation that takes this long (a plugin's default time limit) marks
/// its table slow: far beyond what a healthy table's lookup takes, since
/// slow-lane work gets the processor last.
pub(crate) const SLOW: Duration = Duration::from_secs(1);

/// How long a table stays marked slow after its last slow operation.
pub(crate) const SLOW_FOR: Duration = Duration::from_secs(30);

/// The nice value of slow-lane threads: against a busy neighbour at nice 0
/// they get about a tenth of a processor (19 would leave them 1.5 %, so a
/// 1 s operation could take over a minute on a loaded machine).
pub(crate) const SLOW_LANE_NICE: i32 = 10;

/// Why an operation did not run to completion.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum GateError {
    /// Every turn stayed taken for the whole wait.
    #[error("too busy: every turn taken for the whole wait")]
    Busy,
    /// The operation panicked.
    #[error("operation panicked: {0}")]
    Panicked(String),
}

/// How much blocking work of one table name runs at once, and how long a
/// request waits for its turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TableLimits {
    /// Operations of one table name running off the event loop at once.
    pub concurrency: usize,
    /// Longest wait for a turn before the request answers RETRY.
    pub wait: Duration,
}

impl Default for TableLimits {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        TableLimits {
            concurrency: (2 * cores).max(4),
            wait: Duration::from_secs(5),
        }
    }
}

/// Bounds the blocking work of one table name.
pub struct TableGate {
    permits: Arc<Semaphore>,
    /// How many permits there are in all.
    concurrency: std::sync::atomic::AtomicUsize,
    /// One change (update, delete, sequence step) at a time, in the order
    /// the requests came: they take the table's file lock exclusively
    /// anyway, and waiting here, in turn, keeps the slowest of them close
    /// to the others instead of leaving them to the lock's lottery.
    changes: Arc<Semaphore>,
    wait: Duration,
    /// Milliseconds since [`epoch`] until which the table counts as slow.
    slow_until: AtomicU64,
}

/// A fixed origin for the gates' clocks.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64
}

impl TableGate {
    /// A gate letting `limits.concurrency` operations run at once, each
    /// request waiting about `limits.wait` for its turn.
    pub(crate) fn new(limits: TableLimits) -> TableGate {
        TableGate {
            permits: Arc::new(Semaphore::new(limits.concurrency.max(1))),
            concurrency: std::sync::atomic::AtomicUsize::new(limits.concurrency.max(1)),
            changes: Arc::new(Semaphore::new(1)),
            wait: limits.wait,
            slow_until: AtomicU64::new(0),
        }
    }

    /// Let at least `n` operations run at once (for a table whose
    /// operations wait on a server rather than use a processor).
    pub(crate) fn allow_at_least(&self, n: usize) {
        let before = self.concurrency.fetch_max(n, Ordering::Relaxed);
        if n > before {
            self.permits.add_permits(n - before);
        }
    }

    /// True while the table counts as slow.
    pub(crate) fn is_slow(&self) -> bool {
        now_ms() < self.slow_until.load(Ordering::Relaxed)
    }

    /// Hold a RETRY answer of a slow table until its request is about
    /// [`SLOW`] old (±25 %), as a hanging table would have: a client that retries at once
    /// then loops at the pace the table would set, without the table
    /// spending anything (the wait is a timer, not a thread).
    pub(crate) async fn pace_retry(&self, started: tokio::time::Instant) {
        if self.is_slow() {
            // Jittered, like the turn wait, so retries do not come in waves.
            let pace = SLOW.mul_f64(0.75 + fastrand::f64() / 2.0);
            tokio::time::sleep_until(started + pace).await;
        }
    }

    /// Run `work` off the event loop in one of the table's turns: in tokio's
    /// blocking pool, or in the slow lane while the table counts as slow.
    /// Work that takes [`SLOW`] or more marks the table slow.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, GateError> {
        self.run_in_turn(work, true).await
    }

    /// Like [`TableGate::run`] for a change to the table: changes take
    /// their turns one at a time, first come first served.
    pub(crate) async fn run_change<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, GateError> {
        let change = self.turn(&self.changes).await?;
        self.run_in_turn(
            move || {
                let _change = change;
                work()
            },
            true,
        )
        .await
    }

    /// Like [`TableGate::run`] for opening the table, which never marks it
    /// slow: an open's cost (compiling a plugin the first time, reading a
    /// large file) is paid once and says nothing of the lookups after it.
    pub(crate) async fn run_open<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, GateError> {
        self.run_in_turn(work, false).await
    }

    /// A permit of `permits`, waited for about `wait`: jittered (±25 %),
    /// so that clients which all came at once to a hanging table do not
    /// all get their RETRY, and come back, at once.
    async fn turn(&self, permits: &Arc<Semaphore>) -> Result<OwnedSemaphorePermit, GateError> {
        let wait = self.wait.mul_f64(0.75 + fastrand::f64() / 2.0);
        tokio::time::timeout(wait, permits.clone().acquire_owned())
            .await
            .map_err(|_| GateError::Busy)?
            .map_err(|_| GateError::Busy)
    }

    async fn run_in_turn<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
        marks_slow: bool,
    ) -> Result<T, GateError> {
        let turn = self.turn(&self.permits).await?;
        let started = Instant::now();
        // The turn is held until the work ends, even when the request that
        // started it has gone: the table's share stays bounded.
        let timed = move || {
            let _turn = turn;
            work()
        };
        let result = if self.is_slow() {
            slow_lane().run(timed).await
        } else {
            tokio::task::spawn_blocking(timed)
                .await
                .map_err(|e| GateError::Panicked(e.to_string()))
        };
        if marks_slow && started.elapsed() >= SLOW {
            let until = now_ms() + SLOW_FOR.as_millis() as u64;
            self.slow_until.fetch_max(until, Ordering::Relaxed);
        }
        result
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// A few lowest-priority threads running the work of slow tables in turn.
struct SlowLane {
    jobs: Mutex<mpsc::Sender<Job>>,
}

fn slow_lane() -> &'static SlowLane {
    static LANE: OnceLock<SlowLane> = OnceLock::new();
    LANE.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let threads = std::thread::available_parallelism()
            .map_or(2, usize::from)
            .max(2)
            * 2;
        for n in 0..threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("proxymapd-slow-{n}"))
                .spawn(move || {
                    // On Linux the nice value belongs to the thread, named
                    // by its thread id; any thread may lower its own. Not
                    // SCHED_IDLE: on a machine kept busy by other programs
                    // that would never run the table's work at all.
                    // SAFETY: gettid takes no arguments.
                    let tid = unsafe { libc::gettid() };
                    // SAFETY: setpriority takes no pointers.
                    if unsafe {
                        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, SLOW_LANE_NICE)
                    } != 0
                    {
                        tracing::warn!(
                            "slow lane: cannot lower the thread's priority: {}",
                            std::io::Error::last_os_error()
                        );
                    }
                    loop {
                        let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!("cannot start a slow-lane thread: {e}");
            }
        }
        SlowLane {
            jobs: Mutex::new(tx),
        }
    })
}

impl SlowLane {
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, GateError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let result = std::panic::catch_unwind(AssertUnwindSafe(work));
            let _ = tx.send(result);
        });
        let sent = self
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(job);
        if sent.is_err() {
            return Err(GateError::Panicked("the slow lane has stopped".into()));
        }
        match rx.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) => Err(GateError::Panicked("slow-lane work panicked".into())),
            Err(_) => Err(GateError::Panicked("slow-lane work was dropped".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bounds_concurrency_and_gives_up_after_the_wait() {
        let gate = Arc::new(TableGate::new(TableLimits {
            concurrency: 2,
            wait: Duration::from_millis(1500),
        }));
        let running = Arc::new(AtomicU64::new(0));
        let most = Arc::new(AtomicU64::new(0));
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let (gate, running, most) = (gate.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    gate.run(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(SLOW);
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
                })
            })
            .collect();
        let mut busy = 0;
        for t in tasks {
            if t.await.unwrap() == Err(GateError::Busy) {
                busy += 1;
            }
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
        // Two run at once for SLOW (1 s) each; a 1.5 s wait (±25 %) admits four.
        assert_eq!(busy, 2);
        // Operations that slow mark the table slow.
        assert!(gate.is_slow());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slow_tables_run_at_low_priority_and_panics_are_contained() {
        let gate = TableGate::new(TableLimits {
            concurrency: 1,
            wait: Duration::from_secs(5),
        });
        // A slow open (a plugin compiling) is paid once: not slow.
        gate.run_open(|| std::thread::sleep(SLOW + Duration::from_millis(10)))
            .await
            .unwrap();
        assert!(!gate.is_slow());
        gate.run(|| std::thread::sleep(SLOW + Duration::from_millis(10)))
            .await
            .unwrap();
        assert!(gate.is_slow());
        // SAFETY: gettid and getpriority take no pointers.
        let nice = gate
            .run(|| unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) })
            .await
            .unwrap();
        assert_eq!(nice, SLOW_LANE_NICE);
        let panicked = gate.run(|| panic!("on purpose")).await;
        assert!(matches!(panicked, Err(GateError::Panicked(_))));
        assert_eq!(gate.run(|| 7).await, Ok(7));
    }
}
