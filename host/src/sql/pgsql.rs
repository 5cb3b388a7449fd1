//! PostgreSQL for `pgsql:` tables, as Postfix 3.7's dict_pgsql uses it:
//! the `hosts` of the table's `.cf` (`unix:/dir`, `inet:host[:port]`,
//! `host[:port]`, `postgresql:` URIs) tried UNIX first, then INET, then
//! URI, in random order among equals; a host that failed (connect, escape
//! or query) is left alone for `retry_interval` (60 s); the statement runs
//! as one simple query and its last statement's rows count; text comes
//! back as PostgreSQL renders it. Postfix 3.7 declares its session LATIN1:
//! the statement's bytes are sent as Latin-1 characters and results that
//! do not fit Latin-1 fail, as PostgreSQL's conversion fails there. Key
//! parts are escaped as PQescapeStringConn escapes them for the session
//! (`'` doubled; `\` doubled too when standard_conforming_strings is off).
//!
//! Unlike Postfix's one connection per table per host per process, every
//! table naming the same hosts, user, password and database shares one
//! pool here, at most [`POOL_SIZE`] connections per host. Which hosts are
//! resting is kept per table, as Postfix keeps it ([`PgTable`]): a query
//! that fails in one table (a bad template, a value that does not fit
//! LATIN1) rests that table's host, not the others'. A host that cannot be
//! reached at all rests for every table of the pool.

use super::{Piece, Rows, SqlError};
use proxymapd_sqlcommon::cf::CfFile;
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};
use tokio_postgres::{Client, Config, NoTls, SimpleQueryMessage};

/// Connections per host and pool.
pub(crate) const POOL_SIZE: usize = 4;

/// How long a failed host is left alone (Postfix 3.7: fixed 60 s).
const RETRY_INTERVAL: Duration = Duration::from_secs(60);

/// A connection idle this long is closed (Postfix: `idle_interval`, 60 s).
const IDLE_INTERVAL: Duration = Duration::from_secs(60);

/// Longest connect or query.
const TIMEOUT: Duration = Duration::from_secs(10);

/// How a host is reached, in Postfix's order of preference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Target {
    /// A directory holding PostgreSQL's socket (port 5432's name).
    Unix(String),
    /// `host[:port]`.
    Inet(String, u16),
    /// A `postgresql:` URI.
    Uri(String),
}

impl Target {
    fn parse(spec: &str) -> Target {
        if let Some(dir) = spec.strip_prefix("unix:") {
            return Target::Unix(dir.to_string());
        }
        if spec.starts_with("postgresql:") {
            return Target::Uri(spec.to_string());
        }
        let hostport = spec.strip_prefix("inet:").unwrap_or(spec);
        match hostport.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() => {
                Target::Inet(h.to_string(), p.parse().unwrap_or(5432))
            }
            _ => Target::Inet(hostport.to_string(), 5432),
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Target::Unix(_) => 0,
            Target::Inet(..) => 1,
            Target::Uri(_) => 2,
        }
    }

    fn name(&self) -> String {
        match self {
            Target::Unix(d) => format!("unix:{d}"),
            Target::Inet(h, p) => format!("inet:{h}:{p}"),
            Target::Uri(u) => u.clone(),
        }
    }
}

/// What a pool is shared by: the same hosts, account and database.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Spec {
    targets: Vec<Target>,
    user: String,
    password: String,
    dbname: String,
}

impl Spec {
    /// The connect settings of a pgsql: `.cf` file.
    pub(crate) fn from_cf(cf: &CfFile) -> Result<Spec, String> {
        let hosts = cf.string("hosts", "", 0, 0).map_err(|e| e.0)?;
        let mut targets: Vec<Target> = hosts
            .split(|c: char| c == ',' || c.is_ascii_whitespace())
            .filter(|s| !s.is_empty())
            .map(Target::parse)
            .collect();
        if targets.is_empty() {
            targets.push(Target::Inet("localhost".into(), 5432));
        }
        Ok(Spec {
            targets,
            user: cf.string("user", "", 0, 0).map_err(|e| e.0)?,
            password: cf.string("password", "", 0, 0).map_err(|e| e.0)?,
            dbname: cf.string("dbname", "", 1, 0).map_err(|e| e.0)?,
        })
    }

    fn config(&self, target: &Target) -> Result<Config, String> {
        let mut config = match target {
            Target::Uri(uri) => uri.parse::<Config>().map_err(|e| format!("{uri}: {e}"))?,
            _ => Config::new(),
        };
        match target {
            Target::Unix(dir) => {
                config.host_path(dir).port(5432);
            }
            Target::Inet(host, port) => {
                config.host(host).port(*port);
            }
            Target::Uri(_) => {}
        }
        if config.get_user().is_none() && !self.user.is_empty() {
            config.user(&self.user);
        }
        if config.get_password().is_none() && !self.password.is_empty() {
            config.password(&self.password);
        }
        if config.get_dbname().is_none() {
            config.dbname(&self.dbname);
        }
        config.connect_timeout(TIMEOUT);
        Ok(config)
    }
}

/// One open session.
struct Session {
    client: Client,
    /// standard_conforming_strings is on (`\` is not an escape).
    standard_strings: bool,
    idle_since: Instant,
}

/// One host of a pool.
struct HostState {
    target: Target,
    idle: Vec<Session>,
    open: usize,
    failed_until: Option<Instant>,
}

/// The pool of one [`Spec`].
pub(crate) struct PgPool {
    spec: Spec,
    runtime: tokio::runtime::Handle,
    hosts: Mutex<Vec<HostState>>,
    /// Signalled when a session comes back or a connection closes.
    returned: Condvar,
}

/// Latin-1 text of `bytes` (each byte the character of that number).
fn latin1_decode(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// Latin-1 bytes of `text`; `None` when a character does not fit.
fn latin1_encode(text: &str) -> Option<Vec<u8>> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect()
}

/// PQescapeStringConn for a session: `'` doubled, `\` doubled unless
/// standard_conforming_strings.
fn escape(value: &[u8], standard_strings: bool, out: &mut Vec<u8>) {
    for &b in value {
        if b == b'\'' || (b == b'\\' && !standard_strings) {
            out.push(b);
        }
        out.push(b);
    }
}

impl PgPool {
    /// Take an idle session of host `i` or open one, waiting (up to
    /// [`TIMEOUT`]) while all of the host's connections are in use; `None`
    /// when the host is resting after a connection failure.
    fn session(&self, i: usize) -> Result<Option<Session>, String> {
        let deadline = Instant::now() + TIMEOUT;
        let target = {
            let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                let host = &mut hosts[i];
                if host.failed_until.is_some_and(|t| Instant::now() < t) {
                    return Ok(None);
                }
                while let Some(session) = host.idle.pop() {
                    if session.idle_since.elapsed() < IDLE_INTERVAL && !session.client.is_closed() {
                        return Ok(Some(session));
                    }
                    host.open -= 1;
                }
                if host.open < POOL_SIZE {
                    host.open += 1;
                    break host.target.clone();
                }
                let now = Instant::now();
                if now >= deadline {
                    return Err(format!(
                        "pgsql server {}: all {POOL_SIZE} connections busy for {} s",
                        host.target.name(),
                        TIMEOUT.as_secs()
                    ));
                }
                hosts = self
                    .returned
                    .wait_timeout(hosts, deadline - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        };
        match self.connect(&target) {
            Ok(session) => Ok(Some(session)),
            Err(e) => {
                self.failed(i);
                Err(e)
            }
        }
    }

    fn connect(&self, target: &Target) -> Result<Session, String> {
        let config = self.spec.config(target)?;
        let name = target.name();
        self.runtime.block_on(async {
            let (client, connection) = tokio::time::timeout(TIMEOUT, config.connect(NoTls))
                .await
                .map_err(|_| format!("connect to pgsql server {name}: timed out"))?
                .map_err(|e| format!("connect to pgsql server {name}: {e}"))?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            let standard_strings = match client
                .simple_query("SHOW standard_conforming_strings")
                .await
            {
                Ok(messages) => messages
                    .iter()
                    .any(|m| matches!(m, SimpleQueryMessage::Row(r) if r.get(0) == Some("on"))),
                Err(e) => return Err(format!("pgsql server {name}: {e}")),
            };
            Ok(Session {
                client,
                standard_strings,
                idle_since: Instant::now(),
            })
        })
    }

    /// Host `i` cannot be reached: every table leaves it alone for
    /// [`RETRY_INTERVAL`], and its idle sessions are closed.
    fn failed(&self, i: usize) {
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        let host = &mut hosts[i];
        host.failed_until = Some(Instant::now() + RETRY_INTERVAL);
        host.open = host.open.saturating_sub(1 + host.idle.len());
        host.idle.clear();
        drop(hosts);
        self.returned.notify_all();
    }

    /// A session whose query failed is closed (Postfix closes it too).
    fn discard(&self, i: usize) {
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        hosts[i].open = hosts[i].open.saturating_sub(1);
        drop(hosts);
        self.returned.notify_one();
    }

    fn give_back(&self, i: usize, mut session: Session) {
        session.idle_since = Instant::now();
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        hosts[i].idle.push(session);
        drop(hosts);
        self.returned.notify_one();
    }

    /// The order to try the hosts in: UNIX, INET, URI; random among equals.
    fn order(&self) -> Vec<usize> {
        let hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        let mut order: Vec<usize> = (0..hosts.len()).collect();
        fastrand::shuffle(&mut order);
        order.sort_by_key(|&i| hosts[i].target.rank());
        order
    }

    fn run(&self, session: &Session, pieces: &[Piece]) -> Result<Rows, String> {
        let sql = Piece::render(pieces, |value, out| {
            escape(value, session.standard_strings, out)
        });
        // Postfix 3.7's session is LATIN1: its bytes are Latin-1 text.
        let text = latin1_decode(&sql);
        let messages = self.runtime.block_on(async {
            tokio::time::timeout(TIMEOUT, session.client.simple_query(&text))
                .await
                .map_err(|_| "pgsql query failed: timed out".to_string())?
                .map_err(|e| format!("pgsql query failed: {}", describe(&e)))
        })?;
        // PQexec's result is the last statement's.
        let mut rows = Rows::default();
        let mut current: Vec<Option<Vec<u8>>> = Vec::new();
        let mut columns = 0u32;
        for message in messages {
            match message {
                SimpleQueryMessage::RowDescription(cols) => columns = cols.len() as u32,
                SimpleQueryMessage::Row(row) => {
                    columns = row.len() as u32;
                    for i in 0..row.len() {
                        let cell = match row.get(i) {
                            // PQgetvalue gives "" for NULL.
                            None => Some(Vec::new()),
                            Some(v) => Some(latin1_encode(v).ok_or_else(|| {
                                format!(
                                    "pgsql query failed: a value has no equivalent in LATIN1: {v}"
                                )
                            })?),
                        };
                        current.push(cell);
                    }
                }
                SimpleQueryMessage::CommandComplete(_) => {
                    rows = Rows {
                        columns,
                        cells: std::mem::take(&mut current),
                    };
                    columns = 0;
                }
                _ => {}
            }
        }
        Ok(rows)
    }
}

/// The server's message of a failed query.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => e.to_string(),
    }
}

/// One table's view of its pool: which hosts this table leaves alone
/// after a failed query.
pub(crate) struct PgTable {
    pool: Arc<PgPool>,
    resting: Mutex<HashMap<usize, Instant>>,
}

impl super::Database for PgTable {
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
            let session = match pool.session(i) {
                Ok(Some(s)) => s,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!("{e}");
                    errors.push(e);
                    continue;
                }
            };
            match pool.run(&session, pieces) {
                Ok(rows) => {
                    pool.give_back(i, session);
                    return Ok(rows);
                }
                Err(e) => {
                    tracing::warn!("{e}");
                    if session.client.is_closed() {
                        pool.failed(i);
                    } else {
                        pool.discard(i);
                    }
                    self.resting
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(i, Instant::now() + RETRY_INTERVAL);
                    errors.push(e);
                }
            }
        }
        Err(SqlError::Unavailable(if errors.is_empty() {
            "no pgsql server is available".into()
        } else {
            errors.join("; ")
        }))
    }
}

/// A table on the pool of `spec`, shared by every table with the same
/// spec.
pub(crate) fn table(spec: Spec) -> Result<PgTable, String> {
    Ok(PgTable {
        pool: pool(spec)?,
        resting: Mutex::new(HashMap::new()),
    })
}

/// The pool of `spec`, shared by every table with the same spec.
fn pool(spec: Spec) -> Result<Arc<PgPool>, String> {
    static POOLS: OnceLock<Mutex<HashMap<Spec, Weak<PgPool>>>> = OnceLock::new();
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| "pgsql: no runtime to run database connections on".to_string())?;
    let pools = POOLS.get_or_init(|| Mutex::new(HashMap::new()));
    super::shared_pool(pools, spec.clone(), || {
        let hosts = spec
            .targets
            .iter()
            .map(|t| HostState {
                target: t.clone(),
                idle: Vec::new(),
                open: 0,
                failed_until: None,
            })
            .collect();
        Ok(PgPool {
            spec,
            runtime,
            hosts: Mutex::new(hosts),
            returned: Condvar::new(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_escaping_and_latin1() {
        assert_eq!(
            Target::parse("unix:/run/pg"),
            Target::Unix("/run/pg".into())
        );
        assert_eq!(
            Target::parse("inet:db:5433"),
            Target::Inet("db".into(), 5433)
        );
        assert_eq!(Target::parse("db"), Target::Inet("db".into(), 5432));
        assert!(matches!(Target::parse("postgresql://u@/d"), Target::Uri(_)));
        let mut out = Vec::new();
        escape(b"a'b\\c", true, &mut out);
        assert_eq!(out, b"a''b\\c");
        out.clear();
        escape(b"a'b\\c", false, &mut out);
        assert_eq!(out, b"a''b\\\\c");
        assert_eq!(latin1_decode(&[0x67, 0xfc]), "gü");
        assert_eq!(latin1_encode("gü"), Some(vec![0x67, 0xfc]));
        assert_eq!(latin1_encode("€"), None);
    }
}
