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
//! Connections, host order and failover are the shared [`super::pool`]'s;
//! this file knows how to reach a PostgreSQL host and run a statement.

use super::pool::{Connector, Registry};
use super::{Piece, Rows};
use proxymapd_sqlcommon::cf::CfFile;
use std::sync::OnceLock;
use tokio_postgres::{Client, Config, NoTls, SimpleQueryMessage};

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
        Ok(config)
    }
}

/// One open session.
pub(crate) struct Session {
    client: Client,
    /// standard_conforming_strings is on (`\` is not an escape).
    standard_strings: bool,
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

impl Connector for Spec {
    type Session = Session;
    const KIND: &'static str = "pgsql";

    fn hosts(&self) -> Vec<(String, u8)> {
        self.targets.iter().map(|t| (t.name(), t.rank())).collect()
    }

    async fn connect(&self, i: usize) -> Result<Session, String> {
        let target = &self.targets[i];
        let config = self.config(target)?;
        let name = target.name();
        let (client, connection) = config
            .connect(NoTls)
            .await
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
        })
    }

    fn is_closed(session: &Session) -> bool {
        session.client.is_closed()
    }

    fn pools() -> &'static Registry<Self> {
        static POOLS: OnceLock<Registry<Spec>> = OnceLock::new();
        POOLS.get_or_init(Default::default)
    }

    async fn run(&self, session: &mut Session, pieces: &[Piece]) -> Result<Rows, String> {
        let sql = Piece::render(pieces, |value, out| {
            escape(value, session.standard_strings, out)
        });
        // Postfix 3.7's session is LATIN1: its bytes are Latin-1 text.
        let text = latin1_decode(&sql);
        let messages = session
            .client
            .simple_query(&text)
            .await
            .map_err(|e| format!("pgsql query failed: {}", describe(&e)))?;
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
