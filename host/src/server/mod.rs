//! The socket side: UNIX-domain listeners for the `proxymap` and `proxywrite`
//! services, one tokio task per connection, graceful shutdown on SIGTERM (no
//! new connections; requests in flight finish) and configuration reload on
//! SIGHUP without dropping connections. One server per socket directory
//! (`instance_lock`); the open-files limit is raised at start
//! (`fd_limit`), concurrent connections are capped (`listener`) and so is
//! the memory their unfinished requests hold (`request_memory`).
//! Knows nothing of table formats: every decoded request goes to the
//! `Handler`. [`Service`] names the two services
//! a socket can offer.

pub(crate) mod activation;
pub(crate) mod config_watch;
pub(crate) mod connection;
pub(crate) mod fd_limit;
pub(crate) mod instance_lock;
pub mod lifecycle;
pub(crate) mod listener;
pub(crate) mod request_memory;
pub(crate) mod socket;

pub use instance_lock::LockError;
pub use socket::BindError;

use crate::codec::{Greeting, Limits};
use std::time::Duration;

/// The two proxymap services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// `proxymap`: read-only.
    Read,
    /// `proxywrite`: read-write.
    Write,
}

impl Service {
    /// The service name, as in master.cf.
    pub fn name(self) -> &'static str {
        match self {
            Service::Read => "proxymap",
            Service::Write => "proxywrite",
        }
    }

    /// The main.cf parameter that lists the service's approved tables.
    pub(crate) fn parameter(self) -> &'static str {
        match self {
            Service::Read => "proxy_read_maps",
            Service::Write => "proxy_write_maps",
        }
    }
}

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
    /// Most concurrent connections over all services (`None`: derived from
    /// the open-files limit).
    pub max_connections: Option<usize>,
    /// Most bytes of unfinished requests held over all connections
    /// (`request_memory`).
    pub max_request_memory: usize,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        ConnectionSettings {
            greeting: Greeting::Proxymap,
            limits: Limits::default(),
            request_timeout: Duration::from_secs(10),
            request_deadline: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(3600),
            max_connections: None,
            max_request_memory: 256 << 20,
        }
    }
}
