//! The socket side: UNIX-domain listeners for the `proxymap` and `proxywrite`
//! services, one tokio task per connection, graceful shutdown on SIGTERM (no
//! new connections; requests in flight finish) and configuration reload on
//! SIGHUP without dropping connections. Knows nothing of table formats: every
//! decoded request goes to the [`Handler`](crate::handler::Handler).

pub mod connection;
pub mod listener;

use crate::codec::{Greeting, Limits};
use std::time::Duration;

/// Connection-level settings shared by every connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionSettings {
    /// Whether to greet clients on connect.
    pub greeting: Greeting,
    /// Decoder bounds.
    pub limits: Limits,
    /// Longest wait for each read of a started request and for sending a
    /// reply or the greeting.
    pub request_timeout: Duration,
    /// Longest time from the first byte of a request to its last; the
    /// connection is closed when it passes (Postfix's proxymap: 1 s).
    pub request_deadline: Duration,
    /// Longest time a connection may sit idle between requests.
    pub idle_timeout: Duration,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        ConnectionSettings {
            greeting: Greeting::Proxymap,
            limits: Limits::default(),
            request_timeout: Duration::from_secs(10),
            request_deadline: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(3600),
        }
    }
}
