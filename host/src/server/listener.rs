//! The accept loops. Each bound service socket accepts until shutdown, hands
//! every connection to its own task, then waits for its connections to
//! finish. A process-wide [`ConnectionBudget`] caps concurrent connections:
//! beyond it a new connection is accepted and closed at once, so the client
//! sees end-of-file and retries instead of hanging in the listen queue. When
//! accept fails for lack of descriptors (EMFILE/ENFILE) the loop frees a
//! descriptor it keeps in reserve, accepts the waiting connection, closes it
//! and takes the reserve back, for the same reason; other accept errors are
//! retried after a short pause. All of these warnings are rate-limited.

use super::request_memory::{Charge, RequestMemory};
use super::socket::BoundService;
use super::{connection, ConnectionSettings};
use crate::handler::Handler;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The cap on concurrent connections, shared by every service.
#[derive(Debug)]
pub(crate) struct ConnectionBudget {
    open: AtomicUsize,
    /// Connections closed so far (master(8)'s use count).
    closed: AtomicUsize,
    max: usize,
    /// The memory all connections' unfinished requests may hold.
    request_memory: Arc<RequestMemory>,
}

/// One admitted connection; dropping it gives the slot back.
struct Slot(Arc<ConnectionBudget>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
        self.0.closed.fetch_add(1, Ordering::AcqRel);
    }
}

impl ConnectionBudget {
    /// A budget of `max` concurrent connections whose unfinished requests
    /// hold at most `request_memory` bytes together.
    pub(crate) fn new(max: usize, request_memory: usize) -> Arc<ConnectionBudget> {
        Arc::new(ConnectionBudget {
            open: AtomicUsize::new(0),
            closed: AtomicUsize::new(0),
            max,
            request_memory: RequestMemory::new(request_memory),
        })
    }

    /// The cap.
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// Connections open now.
    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Connections closed since the start.
    pub(crate) fn closed(&self) -> usize {
        self.closed.load(Ordering::Acquire)
    }

    fn admit(self: &Arc<Self>) -> Option<Slot> {
        let mut open = self.open.load(Ordering::Acquire);
        loop {
            if open >= self.max {
                return None;
            }
            match self.open.compare_exchange_weak(
                open,
                open + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(Slot(self.clone())),
                Err(now) => open = now,
            }
        }
    }
}

/// A descriptor held back so that an accept can still succeed when the
/// process is out of descriptors.
struct Reserve(Option<std::fs::File>);

impl Reserve {
    fn new() -> Reserve {
        Reserve(std::fs::File::open("/dev/null").ok())
    }

    /// Out of descriptors: use the reserve to accept one waiting connection
    /// and close it, then take the reserve back. Without a reserve (it could
    /// not be reopened) just pause so the loop does not spin.
    async fn shed(&mut self, bound: &BoundService) {
        if self.0.take().is_none() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        } else if let Ok(Ok((stream, _))) =
            tokio::time::timeout(Duration::from_millis(10), bound.listener.accept()).await
        {
            drop(stream);
        }
        self.0 = std::fs::File::open("/dev/null").ok();
    }
}

fn out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// Accept connections on `bound` until shutdown, then remove its socket and
/// wait for its connections to finish. Returns the number of connections
/// served.
pub(crate) async fn run(
    bound: BoundService,
    handler: Arc<Handler>,
    settings: ConnectionSettings,
    budget: Arc<ConnectionBudget>,
    mut shutdown: watch::Receiver<bool>,
) -> usize {
    let active = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(tokio::sync::Notify::new());
    let mut served = 0usize;
    let mut reserve = Reserve::new();
    tracing::info!(
        "{} listening on {}",
        bound.service.name(),
        bound.path.display()
    );
    loop {
        tokio::select! {
            accepted = bound.listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let Some(slot) = budget.admit() else {
                        crate::warn_limited!(
                            "connection limit",
                            "{}: {} connections open, the max_connections limit; closing a new one",
                            bound.path.display(),
                            budget.max()
                        );
                        drop(stream);
                        continue;
                    };
                    served += 1;
                    active.fetch_add(1, Ordering::SeqCst);
                    let charge = Charge::new(budget.request_memory.clone());
                    let (handler, rx, active, done) = (handler.clone(), shutdown.clone(), active.clone(), done.clone());
                    let service = bound.service;
                    tokio::spawn(async move {
                        let span = tracing::debug_span!("connection", service = service.name(), id = served);
                        let _ = tracing::Instrument::instrument(
                            connection::serve(stream, service, handler, settings, rx, charge),
                            span,
                        ).await;
                        drop(slot);
                        if active.fetch_sub(1, Ordering::SeqCst) == 1 {
                            done.notify_waiters();
                        }
                    });
                }
                Err(e) if out_of_descriptors(&e) => {
                    crate::warn_limited!(
                        "accept: out of descriptors",
                        "accept on {}: {e}; closing a waiting connection (raise the open-files \
                         limit or lower max_connections)",
                        bound.path.display()
                    );
                    reserve.shed(&bound).await;
                }
                Err(e) => {
                    crate::warn_limited!("accept error", "accept on {}: {e}", bound.path.display());
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
    drop(bound);
    while active.load(Ordering::SeqCst) > 0 {
        let notified = done.notified();
        if active.load(Ordering::SeqCst) == 0 {
            break;
        }
        let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
    }
    served
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_admits_up_to_its_cap_and_takes_slots_back() {
        let budget = ConnectionBudget::new(2, 1 << 20);
        let a = budget.admit().expect("first");
        let _b = budget.admit().expect("second");
        assert!(budget.admit().is_none());
        assert_eq!(budget.open(), 2);
        drop(a);
        assert!(budget.admit().is_some());
    }
}
