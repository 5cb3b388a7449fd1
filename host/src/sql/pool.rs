//! Connection pools for the networked SQL backends (pgsql, mysql), with
//! Postfix's host handling: a table lists hosts; they are tried UNIX
//! first, then INET, then URI, in random order among equals; a host that
//! cannot be reached rests for `retry_interval`; a query that fails closes
//! its connection and rests that host for the table whose query it was;
//! connections idle for `idle_interval` are closed by a timer.
//!
//! Unlike Postfix's one connection per table per host per process, every
//! table naming the same connect settings shares one [`Pool`], at most
//! `size` connections per host. While several tables share a pool, none
//! of them holds more than `size - 1` connections at once, so a table
//! whose queries are slow never makes the others wait for a connection.
//! What a backend adds is a [`Connector`]: how to open a session to host
//! `i` and run one statement on it. A session runs its I/O on a small
//! runtime of its own, driven by the thread that uses it, so a query costs
//! no hand-off between threads.

use super::{Piece, Rows, SqlError};
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

/// How a pool behaves: the parts of its key that are not connect settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct PoolSettings {
    /// Connections per host.
    pub size: usize,
    /// How long a failed host is left alone.
    pub retry_interval: Duration,
    /// An idle connection is closed after this long.
    pub idle_interval: Duration,
    /// Longest connect or query.
    pub timeout: Duration,
}

impl PoolSettings {
    /// Postfix's defaults (60 s rest and idle close) with `size`
    /// connections per host and `timeout` per connect or query.
    pub(crate) fn new(size: usize, timeout: Duration) -> PoolSettings {
        PoolSettings {
            size: size.max(1),
            retry_interval: Duration::from_secs(60),
            idle_interval: Duration::from_secs(60),
            timeout,
        }
    }
}

/// A backend's way to its hosts.
pub(crate) trait Connector: Clone + Eq + Hash + Send + Sync + 'static {
    /// One open connection.
    type Session: Send + 'static;
    /// The map type, for messages (`pgsql`, `mysql`).
    const KIND: &'static str;
    /// The hosts the settings list, each as messages name it and with its
    /// place in Postfix's order (0 UNIX, 1 INET, 2 URI).
    fn hosts(&self) -> Vec<(String, u8)>;
    /// Open a session to host `i` (run on the session's own runtime).
    fn connect(&self, i: usize) -> impl Future<Output = Result<Self::Session, String>>;
    /// Run one statement; the message of an `Err` is logged as is.
    fn run(
        &self,
        session: &mut Self::Session,
        statement: &[Piece],
    ) -> impl Future<Output = Result<Rows, String>>;
    /// The session can no longer be used (the server went away).
    fn is_closed(session: &Self::Session) -> bool;
    /// This backend's pools (a `static` in the implementation).
    fn pools() -> &'static Registry<Self>;
}

/// A backend's pools by connect settings and pool settings, each alive
/// while some table holds it.
pub(crate) type Registry<C> = Mutex<HashMap<(C, PoolSettings), Weak<Pool<C>>>>;

/// A session with the runtime its I/O runs on, driven by whichever
/// thread uses the session.
pub(crate) struct Live<S> {
    runtime: Option<tokio::runtime::Runtime>,
    session: Option<S>,
}

impl<S> Live<S> {
    fn session(&self) -> &S {
        self.session
            .as_ref()
            .unwrap_or_else(|| unreachable!("taken only on drop"))
    }
}

impl<S> Drop for Live<S> {
    fn drop(&mut self) {
        // The session closes its connection inside its own runtime, which
        // goes after it, without blocking (this may run on the event loop).
        if let Some(runtime) = self.runtime.take() {
            let inside = runtime.enter();
            drop(self.session.take());
            drop(inside);
            runtime.shutdown_background();
        }
    }
}

struct Idle<S> {
    session: Live<S>,
    since: Instant,
}

struct HostState<S> {
    idle: Vec<Idle<S>>,
    open: usize,
    failed_until: Option<Instant>,
}

/// The shared connections of one connect-spec.
pub(crate) struct Pool<C: Connector> {
    connector: C,
    /// Each host's name, for messages.
    names: Vec<String>,
    /// Each host's place in the order of preference.
    ranks: Vec<u8>,
    settings: PoolSettings,
    hosts: Mutex<Vec<HostState<C::Session>>>,
    /// Signalled when a session comes back or a connection closes.
    returned: Condvar,
    /// How many tables use the pool.
    tables: AtomicUsize,
}

impl<C: Connector> Pool<C> {
    /// How many connections one table may hold while another table shares
    /// the pool: all but one, so that the others always get one.
    fn shared_share(&self) -> usize {
        self.settings.size.saturating_sub(1).max(1)
    }

    /// How many connections one table may hold at once now.
    fn share(&self) -> usize {
        if self.tables.load(Ordering::Relaxed) > 1 {
            self.shared_share()
        } else {
            self.settings.size
        }
    }

    /// Take an idle session of host `i` or open one for a table that holds
    /// `in_use` sessions, waiting (up to the timeout) while all of the
    /// host's connections, or the table's share, are in use; `None` when
    /// the host is resting after a connection failure. `in_use` changes
    /// only under the hosts lock.
    fn session(&self, i: usize, in_use: &AtomicUsize) -> Result<Option<Live<C::Session>>, String> {
        let deadline = Instant::now() + self.settings.timeout;
        {
            let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                let share = self.share();
                let host = &mut hosts[i];
                if host.failed_until.is_some_and(|t| Instant::now() < t) {
                    return Ok(None);
                }
                if in_use.load(Ordering::Relaxed) < share {
                    while let Some(idle) = host.idle.pop() {
                        if idle.since.elapsed() < self.settings.idle_interval
                            && !C::is_closed(idle.session.session())
                        {
                            in_use.fetch_add(1, Ordering::Relaxed);
                            return Ok(Some(idle.session));
                        }
                        host.open -= 1;
                    }
                    if host.open < self.settings.size {
                        host.open += 1;
                        in_use.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
                let now = Instant::now();
                if now >= deadline {
                    return Err(format!(
                        "{} server {}: all {} connections busy for {} s",
                        C::KIND,
                        self.names[i],
                        self.settings.size,
                        self.settings.timeout.as_secs()
                    ));
                }
                hosts = self
                    .returned
                    .wait_timeout(hosts, deadline - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
        match self.connect(i) {
            Ok(session) => Ok(Some(session)),
            Err(e) => {
                self.failed(i, in_use, None);
                Err(e)
            }
        }
    }

    /// A new session to host `i`, on a runtime of its own.
    fn connect(&self, i: usize) -> Result<Live<C::Session>, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("{}: cannot start a session runtime: {e}", C::KIND))?;
        // The timer is made inside the session's runtime (block_on's
        // future), not in whatever runtime this thread may belong to.
        let session = runtime
            .block_on(async {
                tokio::time::timeout(self.settings.timeout, self.connector.connect(i)).await
            })
            .unwrap_or_else(|_| {
                Err(format!(
                    "connect to {} server {}: timed out",
                    C::KIND,
                    self.names[i]
                ))
            })?;
        Ok(Live {
            runtime: Some(runtime),
            session: Some(session),
        })
    }

    /// Host `i` cannot be reached (the caller's session to it, if any, is
    /// closed here): every table leaves it alone for the retry interval,
    /// and its idle sessions are closed.
    fn failed(&self, i: usize, in_use: &AtomicUsize, session: Option<Live<C::Session>>) {
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        in_use.fetch_sub(1, Ordering::Relaxed);
        let host = &mut hosts[i];
        host.failed_until = Some(Instant::now() + self.settings.retry_interval);
        host.open = host.open.saturating_sub(1 + host.idle.len());
        let closed = std::mem::take(&mut host.idle);
        drop(hosts);
        drop((closed, session));
        self.returned.notify_all();
    }

    /// A session whose query failed is closed (Postfix closes it too).
    fn discard(&self, i: usize, session: Live<C::Session>, in_use: &AtomicUsize) {
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        hosts[i].open = hosts[i].open.saturating_sub(1);
        in_use.fetch_sub(1, Ordering::Relaxed);
        drop(hosts);
        drop(session);
        self.returned.notify_all();
    }

    fn give_back(&self, i: usize, session: Live<C::Session>, in_use: &AtomicUsize) {
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        hosts[i].idle.push(Idle {
            session,
            since: Instant::now(),
        });
        in_use.fetch_sub(1, Ordering::Relaxed);
        drop(hosts);
        self.returned.notify_all();
    }

    /// Close the sessions idle for longer than the idle interval.
    fn close_idle(&self) {
        let mut closed = Vec::new();
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        for host in hosts.iter_mut() {
            let (old, fresh): (Vec<_>, Vec<_>) = std::mem::take(&mut host.idle)
                .into_iter()
                .partition(|s| s.since.elapsed() >= self.settings.idle_interval);
            host.open -= old.len();
            host.idle = fresh;
            closed.extend(old);
        }
        drop(hosts);
        if !closed.is_empty() {
            tracing::debug!("{}: closing {} idle connections", C::KIND, closed.len());
            drop(closed);
            self.returned.notify_all();
        }
    }

    /// The order to try the hosts in: UNIX, INET, URI; random among equals.
    fn order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.names.len()).collect();
        fastrand::shuffle(&mut order);
        order.sort_by_key(|&i| self.ranks[i]);
        order
    }

    fn run(&self, live: &mut Live<C::Session>, pieces: &[Piece]) -> Result<Rows, String> {
        let timeout = self.settings.timeout;
        let Live { runtime, session } = live;
        let (Some(runtime), Some(session)) = (runtime.as_ref(), session.as_mut()) else {
            unreachable!("taken only on drop")
        };
        runtime.block_on(async {
            tokio::time::timeout(timeout, self.connector.run(session, pieces))
                .await
                .unwrap_or_else(|_| Err(format!("{} query failed: timed out", C::KIND)))
        })
    }
}

/// One table's view of its pool: which hosts this table leaves alone
/// after a failed query.
pub(crate) struct Table<C: Connector> {
    pool: Arc<Pool<C>>,
    resting: Mutex<HashMap<usize, Instant>>,
    /// Sessions this table holds now.
    in_use: AtomicUsize,
}

impl<C: Connector> Drop for Table<C> {
    fn drop(&mut self) {
        self.pool.tables.fetch_sub(1, Ordering::Relaxed);
        self.pool.returned.notify_all();
    }
}

impl<C: Connector> super::Database for Table<C> {
    fn server_parallelism(&self) -> Option<usize> {
        Some(self.pool.shared_share())
    }

    fn query(&self, pieces: &[Piece]) -> Result<Rows, SqlError> {
        let pool = &self.pool;
        let mut errors = Vec::new();
        for i in pool.order() {
            let resting = self
                .resting
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&i)
                .is_some_and(|until| Instant::now() < *until);
            if resting {
                continue;
            }
            let mut session = match pool.session(i, &self.in_use) {
                Ok(Some(s)) => s,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!("{e}");
                    errors.push(e);
                    continue;
                }
            };
            match pool.run(&mut session, pieces) {
                Ok(rows) => {
                    pool.give_back(i, session, &self.in_use);
                    return Ok(rows);
                }
                Err(e) => {
                    // Logged by the plugin, with the table's file.
                    if C::is_closed(session.session()) {
                        pool.failed(i, &self.in_use, Some(session));
                    } else {
                        pool.discard(i, session, &self.in_use);
                    }
                    self.resting
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(i, Instant::now() + pool.settings.retry_interval);
                    errors.push(e);
                }
            }
        }
        Err(SqlError::Unavailable(if errors.is_empty() {
            format!("no {} server is available", C::KIND)
        } else {
            errors.join("; ")
        }))
    }
}

/// A table on the pool of `connector` with `settings`, shared by every
/// table with the same both.
pub(crate) fn table<C: Connector>(
    connector: C,
    settings: PoolSettings,
) -> Result<Table<C>, String> {
    let pool = pool(connector, settings)?;
    pool.tables.fetch_add(1, Ordering::Relaxed);
    Ok(Table {
        pool,
        resting: Mutex::new(HashMap::new()),
        in_use: AtomicUsize::new(0),
    })
}

fn pool<C: Connector>(connector: C, settings: PoolSettings) -> Result<Arc<Pool<C>>, String> {
    let mut created = false;
    let pool = super::shared_pool(C::pools(), (connector.clone(), settings), || {
        created = true;
        let (names, ranks): (Vec<String>, Vec<u8>) = connector.hosts().into_iter().unzip();
        let hosts = (0..names.len())
            .map(|_| HostState {
                idle: Vec::new(),
                open: 0,
                failed_until: None,
            })
            .collect();
        Ok(Pool {
            connector,
            names,
            ranks,
            settings,
            hosts: Mutex::new(hosts),
            returned: Condvar::new(),
            tables: AtomicUsize::new(0),
        })
    })?;
    if created {
        let weak = Arc::downgrade(&pool);
        let tick = (settings.idle_interval / 4).max(Duration::from_millis(250));
        // The idle-close timer: a thread that ends with the pool.
        std::thread::Builder::new()
            .name(format!("{}-idle", C::KIND))
            .spawn(move || loop {
                std::thread::sleep(tick);
                match weak.upgrade() {
                    Some(pool) => pool.close_idle(),
                    None => break,
                }
            })
            .map_err(|e| format!("{}: cannot start the idle-close timer: {e}", C::KIND))?;
    }
    Ok(pool)
}
