//! The memory all connections may spend on requests still being received.
//! Each connection's partial request is bounded by the decoder
//! (`max_frame`); this bounds their sum, so thousands of clients each
//! trickling a huge request cannot exhaust memory together. A connection
//! holding more than [`SMALL`] bytes of unfinished request while the total is
//! over the budget is closed; ordinary requests (well under a kilobyte)
//! are never refused.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A partial request this small is never refused.
pub(crate) const SMALL: usize = 64 * 1024;

/// The shared budget.
#[derive(Debug)]
pub(crate) struct RequestMemory {
    used: AtomicUsize,
    limit: usize,
}

impl RequestMemory {
    /// A budget of `limit` bytes over all connections.
    pub(crate) fn new(limit: usize) -> Arc<RequestMemory> {
        Arc::new(RequestMemory {
            used: AtomicUsize::new(0),
            limit,
        })
    }

    /// Bytes held now over all connections.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

/// One connection's share of the budget; given back when dropped.
#[derive(Debug)]
pub(crate) struct Charge {
    budget: Arc<RequestMemory>,
    held: usize,
}

impl Charge {
    /// A connection's charge against `budget`, holding nothing yet.
    pub(crate) fn new(budget: Arc<RequestMemory>) -> Charge {
        Charge { budget, held: 0 }
    }

    /// Record that the connection now holds `bytes` of unfinished request.
    /// False when it must be closed: it holds more than [`SMALL`] and all
    /// connections together hold more than the budget.
    pub(crate) fn hold(&mut self, bytes: usize) -> bool {
        if bytes >= self.held {
            self.budget
                .used
                .fetch_add(bytes - self.held, Ordering::Relaxed);
        } else {
            self.budget
                .used
                .fetch_sub(self.held - bytes, Ordering::Relaxed);
        }
        self.held = bytes;
        bytes <= SMALL || self.budget.used() <= self.budget.limit
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.held, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_partial_requests_are_refused_once_the_total_is_over() {
        let budget = RequestMemory::new(3 * SMALL);
        let mut a = Charge::new(budget.clone());
        let mut b = Charge::new(budget.clone());
        let mut small = Charge::new(budget.clone());
        assert!(a.hold(2 * SMALL));
        assert!(!b.hold(2 * SMALL), "4 × SMALL held, budget 3 × SMALL");
        // Small requests are never refused, whatever the total.
        assert!(small.hold(100));
        drop(b);
        assert_eq!(budget.used(), 2 * SMALL + 100);
        assert!(a.hold(10));
        drop(a);
        drop(small);
        assert_eq!(budget.used(), 0);
    }
}
