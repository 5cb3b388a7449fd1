//! MySQL and MariaDB for `mysql:` tables, as Postfix 3.7's dict_mysql uses
//! them: the `hosts` of the table's `.cf` (`unix:/path/to/socket`,
//! `inet:host[:port]`, `host[:port]`, port 3306 by default; a bare
//! `localhost` is the server's UNIX socket, as the client library takes
//! it, found in `option_file` or Debian's default), with `user`,
//! `password` and `dbname`; statements run as text queries; the first
//! result set counts and must be there (`require_result_set`, default
//! yes); a further result set with rows is an error, and so are several
//! statements in one query (Postfix's client does not enable them). Key parts are escaped as mysql_real_escape_string
//! escapes them for the session: NUL, newline, CR, `\`, `'`, `"` and
//! Ctrl-Z get a backslash, or only `'` is doubled when the server runs
//! with NO_BACKSLASH_ESCAPES. A NULL comes back as NULL (skipped without a
//! warning by the plugin, as Postfix skips a NULL pointer).
//!
//! Connections, host order and failover are the shared [`super::pool`]'s.

use super::pool::{Connector, Registry};
use super::{Piece, Rows};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Value};
use proxymapd_sqlcommon::cf::CfFile;
use std::sync::OnceLock;

/// Where the client library looks for a bare `localhost`'s socket when
/// no option file names one (Debian's MariaDB).
const DEFAULT_SOCKET: &str = "/run/mysqld/mysqld.sock";

/// How a host is reached, in Postfix's order of preference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Target {
    /// A UNIX-domain socket file.
    Unix(String),
    /// `host[:port]`.
    Inet(String, u16),
}

impl Target {
    /// A `hosts` entry; `localhost_socket` is where a bare `localhost`
    /// goes (the client library's rule).
    fn parse(spec: &str, localhost_socket: &str) -> Target {
        if let Some(path) = spec.strip_prefix("unix:") {
            return Target::Unix(path.to_string());
        }
        let hostport = spec.strip_prefix("inet:").unwrap_or(spec);
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() => (h, p.parse().unwrap_or(3306)),
            _ => (hostport, 3306),
        };
        if host == "localhost" {
            return Target::Unix(localhost_socket.to_string());
        }
        Target::Inet(host.to_string(), port)
    }

    fn rank(&self) -> u8 {
        match self {
            Target::Unix(_) => 0,
            Target::Inet(..) => 1,
        }
    }

    fn name(&self) -> String {
        match self {
            Target::Unix(path) => format!("unix:{path}"),
            Target::Inet(h, p) => format!("inet:{h}:{p}"),
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
    require_result_set: bool,
}

/// The `socket` of group `group` in the option file `text` (`[group]`
/// sections of `name = value` or `name=value` lines).
fn option_socket(text: &str, group: &str) -> Option<String> {
    let mut in_group = false;
    let mut socket = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_group = name.trim() == group;
            continue;
        }
        if !in_group || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some((name, value)) = line.split_once('=') {
            if name.trim().replace('_', "-") == "socket" {
                socket = Some(value.trim().trim_matches('"').to_string());
            }
        }
    }
    socket
}

impl Spec {
    /// The connect settings of a mysql: `.cf` file. TLS settings are
    /// refused: this build has no TLS for MySQL.
    pub(crate) fn from_cf(cf: &CfFile) -> Result<Spec, String> {
        let text = |name: &str| cf.string(name, "", 0, 0).map_err(|e| e.0);
        for tls in [
            "tls_cert_file",
            "tls_key_file",
            "tls_CAfile",
            "tls_CApath",
            "tls_ciphers",
        ] {
            if !text(tls)?.is_empty() {
                return Err(format!(
                    "{}: {tls}: TLS to MySQL servers is not supported by this proxymapd; \
                     reach the server over a UNIX socket or a private network",
                    cf.path
                ));
            }
        }
        let option_file = text("option_file")?;
        let group = cf.string("option_group", "client", 0, 0).map_err(|e| e.0)?;
        let localhost_socket = if option_file.is_empty() {
            None
        } else {
            let options = std::fs::read_to_string(&option_file)
                .map_err(|e| format!("{}: option_file {option_file}: {e}", cf.path))?;
            option_socket(&options, &group)
        }
        .unwrap_or_else(|| DEFAULT_SOCKET.to_string());
        let hosts = text("hosts")?;
        let mut targets: Vec<Target> = hosts
            .split(|c: char| c == ',' || c.is_ascii_whitespace())
            .filter(|s| !s.is_empty())
            .map(|h| Target::parse(h, &localhost_socket))
            .collect();
        if targets.is_empty() {
            targets.push(Target::Unix(localhost_socket));
        }
        Ok(Spec {
            targets,
            user: text("user")?,
            password: text("password")?,
            dbname: cf.string("dbname", "", 1, 0).map_err(|e| e.0)?,
            require_result_set: cf.boolean("require_result_set", true).map_err(|e| e.0)?,
        })
    }
}

/// One open session.
pub(crate) struct Session {
    conn: Conn,
    /// The server runs with NO_BACKSLASH_ESCAPES.
    no_backslash_escapes: bool,
    /// A query failed in a way that leaves the connection unusable.
    broken: bool,
}

/// mysql_real_escape_string for a session.
fn escape(value: &[u8], no_backslash_escapes: bool, out: &mut Vec<u8>) {
    for &b in value {
        if no_backslash_escapes {
            if b == b'\'' {
                out.push(b'\'');
            }
            out.push(b);
            continue;
        }
        match b {
            0 => out.extend_from_slice(b"\\0"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\'' => out.extend_from_slice(b"\\'"),
            b'"' => out.extend_from_slice(b"\\\""),
            0x1a => out.extend_from_slice(b"\\Z"),
            _ => out.push(b),
        }
    }
}

/// A cell as Postfix sees it: NULL stays NULL, everything else its text.
fn cell(value: Option<Value>) -> Option<Vec<u8>> {
    match value {
        None | Some(Value::NULL) => None,
        Some(Value::Bytes(b)) => Some(b),
        // The text protocol sends bytes; other variants are not expected,
        // but render them as the server would print them.
        Some(other) => Some(other.as_sql(true).into_bytes()),
    }
}

impl Connector for Spec {
    type Session = Session;
    const KIND: &'static str = "mysql";

    fn hosts(&self) -> Vec<(String, u8)> {
        self.targets.iter().map(|t| (t.name(), t.rank())).collect()
    }

    async fn connect(&self, i: usize) -> Result<Session, String> {
        let target = &self.targets[i];
        let mut opts = OptsBuilder::default()
            .prefer_socket(false)
            .stmt_cache_size(0)
            .db_name(Some(&self.dbname));
        if !self.user.is_empty() {
            opts = opts.user(Some(&self.user));
        }
        if !self.password.is_empty() {
            opts = opts.pass(Some(&self.password));
        }
        opts = match target {
            Target::Unix(path) => opts.socket(Some(path)),
            Target::Inet(host, port) => opts.ip_or_hostname(host).tcp_port(*port),
        };
        let name = target.name();
        let mut conn = Conn::new(opts)
            .await
            .map_err(|e| format!("connect to mysql server {name}: {e}"))?;
        let mode: Option<String> = conn
            .query_first("SELECT @@SESSION.sql_mode")
            .await
            .map_err(|e| format!("mysql server {name}: {e}"))?;
        Ok(Session {
            conn,
            no_backslash_escapes: mode.is_some_and(|m| m.contains("NO_BACKSLASH_ESCAPES")),
            broken: false,
        })
    }

    async fn run(&self, session: &mut Session, pieces: &[Piece]) -> Result<Rows, String> {
        let statement = Piece::render(pieces, |value, out| {
            escape(value, session.no_backslash_escapes, out)
        });
        let outcome = self
            .collect(&mut session.conn, &statement, session.no_backslash_escapes)
            .await;
        if let Err(Failure::Connection(_)) = &outcome {
            session.broken = true;
        }
        outcome.map_err(|f| match f {
            Failure::Connection(m) | Failure::Result(m) => m,
        })
    }

    fn is_closed(session: &Session) -> bool {
        session.broken
    }

    fn pools() -> &'static Registry<Self> {
        static POOLS: OnceLock<Registry<Spec>> = OnceLock::new();
        POOLS.get_or_init(Default::default)
    }
}

/// Why a statement gave no rows.
enum Failure {
    /// The connection failed (the host rests for every table).
    Connection(String),
    /// The statement or its results are wrong (this table's problem).
    Result(String),
}

impl Spec {
    /// Run `statement` and read its results as Postfix reads them.
    async fn collect(
        &self,
        conn: &mut Conn,
        statement: &[u8],
        no_backslash_escapes: bool,
    ) -> Result<Rows, Failure> {
        let failed = |e: mysql_async::Error| match e {
            mysql_async::Error::Server(e) => {
                Failure::Result(format!("mysql query failed: {}", e.message))
            }
            other => Failure::Connection(format!("mysql query failed: {other}")),
        };
        // Postfix's client does not enable several statements in one query:
        // the server calls that a syntax error.
        if several_statements(statement, no_backslash_escapes) {
            return Err(Failure::Result(
                "mysql query failed: several statements in one query \
                 (Postfix's client sends one; the server rejects the rest as a syntax error)"
                    .into(),
            ));
        }
        let mut result = conn.query_iter(statement).await.map_err(failed)?;
        let mut rows: Option<Rows> = None;
        let mut extra = false;
        while !result.is_empty() {
            let columns = result.columns().map_or(0, |c| c.len());
            let set: Vec<mysql_async::Row> = result.collect().await.map_err(failed)?;
            if columns == 0 {
                continue;
            }
            if rows.is_some() {
                extra = true;
                continue;
            }
            let mut cells = Vec::with_capacity(set.len() * columns);
            for row in set {
                cells.extend(row.unwrap_raw().into_iter().map(cell));
            }
            rows = Some(Rows {
                columns: columns as u32,
                cells,
            });
        }
        drop(result);
        if extra {
            return Err(Failure::Result(
                "mysql query failed: unexpected multiple result sets".into(),
            ));
        }
        match rows {
            Some(rows) => Ok(rows),
            None if self.require_result_set => Err(Failure::Result(
                "mysql query failed: query returned no result set".into(),
            )),
            None => Ok(Rows::default()),
        }
    }
}

/// Whether `statement` holds a `;` outside strings, identifiers and
/// comments with more than blanks after it (one trailing `;` is allowed,
/// as the server allows it).
fn several_statements(statement: &[u8], no_backslash_escapes: bool) -> bool {
    let mut i = 0;
    while i < statement.len() {
        match statement[i] {
            quote @ (b'\'' | b'"' | b'`') => {
                i += 1;
                while i < statement.len() && statement[i] != quote {
                    if statement[i] == b'\\' && quote != b'`' && !no_backslash_escapes {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'#' => {
                while i < statement.len() && statement[i] != b'\n' {
                    i += 1;
                }
            }
            b'-' if statement.get(i + 1) == Some(&b'-')
                && statement.get(i + 2).is_none_or(|c| c.is_ascii_whitespace()) =>
            {
                while i < statement.len() && statement[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if statement.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < statement.len() && &statement[i..i + 2] != b"*/" {
                    i += 1;
                }
                i += 1;
            }
            b';' => {
                return statement[i + 1..].iter().any(|c| !c.is_ascii_whitespace());
            }
            _ => {}
        }
        i += 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_escaping_and_option_files() {
        let sock = "/run/x.sock";
        assert_eq!(
            Target::parse("unix:/s/m.sock", sock),
            Target::Unix("/s/m.sock".into())
        );
        assert_eq!(
            Target::parse("inet:db:3307", sock),
            Target::Inet("db".into(), 3307)
        );
        assert_eq!(Target::parse("db", sock), Target::Inet("db".into(), 3306));
        assert_eq!(Target::parse("localhost", sock), Target::Unix(sock.into()));
        let mut out = Vec::new();
        escape(b"a'b\\c\"d\0e\nf\rg\x1ah", false, &mut out);
        assert_eq!(out, b"a\\'b\\\\c\\\"d\\0e\\nf\\rg\\Zh");
        out.clear();
        escape(b"a'b\\c", true, &mut out);
        assert_eq!(out, b"a''b\\c");
        let options = "[mysqld]\nsocket=/wrong\n[client]\n# c\nsocket = /right.sock\n";
        assert_eq!(
            option_socket(options, "client").as_deref(),
            Some("/right.sock")
        );
        assert_eq!(option_socket(options, "other"), None);
        assert!(several_statements(b"SELECT 1; DO 1", false));
        assert!(!several_statements(b"SELECT 1;  ", false));
        assert!(!several_statements(b"SELECT 'a;b', `c;d`, \"e;f\"", false));
        assert!(!several_statements(b"SELECT 'a\\';b'", false));
        assert!(several_statements(b"SELECT 'a\\';b'", true));
        assert!(!several_statements(b"SELECT 1 -- ; x\n", false));
        assert!(!several_statements(b"SELECT 1 /* ; x */", false));
        assert!(!several_statements(b"SELECT 1 # ; x", false));
    }
}
