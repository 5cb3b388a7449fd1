//! Map types: the [`Dict`] trait every table implements, the errors tables
//! report, and the [`MapTypes`] catalogue that turns `type:name` into an open
//! table. The registry calls only this interface, so a new map type (built-in,
//! native or plugin) is one more entry in the catalogue and nothing else.

pub(crate) mod berkeley;
pub(crate) mod berkeley_write;
pub(crate) mod composite;
pub(crate) mod environ;
pub(crate) mod fail;
pub(crate) mod file_lock;
pub(crate) mod inline;
pub(crate) mod lmdb;
pub(crate) mod lmdb_env;
pub(crate) mod lmdb_file;
pub(crate) mod mapping;
pub(crate) mod memory;
pub(crate) mod nul_write;
pub(crate) mod randmap;
pub mod sigbus;
pub(crate) mod stamp;
pub(crate) mod static_map;
pub(crate) mod surrogate;
pub(crate) mod texthash;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

pub(crate) use proxymapd_sdk::{braces, fold, source};
pub(crate) use stamp::FileStamp;

/// Why a table operation did not produce an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DictError {
    /// A temporary failure; the client should try again later (status RETRY).
    #[error("temporary failure: {0}")]
    Retry(String),
    /// A configuration or table error (status CONFIG).
    #[error("{0}")]
    Config(String),
    /// The map type does not support this operation (status CONFIG).
    #[error("{0} operation is not supported")]
    Unsupported(&'static str),
    /// The table could not be opened and a surrogate answers for it (status
    /// RETRY); the surrogate has logged why.
    #[error("{0}")]
    Unavailable(String),
}

/// Why a table could not be opened; names the table and, when known, the
/// file and line at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenError {
    /// The table name, `type:name`.
    pub table: String,
    /// The file at fault, if any.
    pub file: Option<PathBuf>,
    /// The line at fault, if any (1-based).
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
    /// A passing condition (out of file descriptors or memory, a file still
    /// being written): the table answers RETRY, not CONFIG, until it opens.
    pub temporary: bool,
    /// The table's file does not exist (proxywrite creates it on the first
    /// update).
    pub missing: bool,
}

impl OpenError {
    /// An error about the table as a whole.
    pub(crate) fn new(table: &str, message: impl Into<String>) -> OpenError {
        OpenError {
            table: table.to_string(),
            file: None,
            line: None,
            message: message.into(),
            temporary: false,
            missing: false,
        }
    }

    /// An error about a file of the table, optionally at a line.
    pub(crate) fn in_file(
        table: &str,
        file: impl Into<PathBuf>,
        line: Option<usize>,
        message: impl Into<String>,
    ) -> OpenError {
        OpenError {
            table: table.to_string(),
            file: Some(file.into()),
            line,
            message: message.into(),
            temporary: false,
            missing: false,
        }
    }

    /// An error about a file of the table from a failed system call: `what`
    /// was being done. Running out of descriptors or memory is temporary.
    pub(crate) fn io(
        table: &str,
        file: impl Into<PathBuf>,
        what: &str,
        err: &std::io::Error,
    ) -> OpenError {
        let mut e = OpenError::in_file(table, file, None, format!("{what}: {}", strerror(err)));
        e.temporary = is_temporary_errno(err.raw_os_error());
        e.missing = err.kind() == std::io::ErrorKind::NotFound;
        e
    }

    /// The same error, marked temporary.
    pub(crate) fn temporary(mut self) -> OpenError {
        self.temporary = true;
        self
    }
}

impl OpenError {
    /// The reason as Postfix words it, without the table name: "open
    /// database /etc/postfix/x.db: No such file or directory", "FILE, line
    /// N: duplicate entry: \"a\"", "unsupported dictionary type: x".
    pub(crate) fn reason(&self) -> String {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => {
                format!("{}, line {line}: {}", file.display(), self.message)
            }
            (Some(file), None) => match self.message.split_once(": ") {
                Some((what, why)) => format!("{what} {}: {why}", file.display()),
                None => format!("{}: {}", file.display(), self.message),
            },
            (None, _) => self.message.clone(),
        }
    }
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "table {}", self.table)?;
        if let Some(file) = &self.file {
            write!(f, ": {}", file.display())?;
            if let Some(line) = self.line {
                write!(f, ", line {line}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for OpenError {}

/// The system's description of `err` as Postfix prints it (`%m`): without
/// the "(os error N)" that Rust appends.
pub(crate) fn strerror(err: &std::io::Error) -> String {
    let text = err.to_string();
    match text.rfind(" (os error ") {
        Some(at) if err.raw_os_error().is_some() && text.ends_with(')') => text[..at].to_string(),
        _ => text,
    }
}

/// True for errno values that a later attempt may not meet: out of file
/// descriptors (process or system) or memory, or interrupted.
pub(crate) fn is_temporary_errno(errno: Option<i32>) -> bool {
    matches!(
        errno,
        Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::EAGAIN | libc::EINTR)
    )
}

/// A key and its value, as sequence returns them.
pub(crate) type Entry = (Vec<u8>, Vec<u8>);

/// One sequence step: first or next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqStep {
    /// Restart at the first entry.
    First,
    /// Continue after the previous entry.
    Next,
}

/// An open table. Implementations are shared by every client of the table,
/// so they use interior mutability where they keep state.
pub trait Dict: Send + Sync {
    /// Implementation flags (FIXED, PATTERN, MULTI_WRITER) plus learned
    /// TRY0NULL/TRY1NULL state.
    fn flags(&self) -> u32;

    /// Look `key` up; `flags` are the request's flags (folding, UTF-8).
    fn lookup(&self, key: &[u8], flags: u32) -> Result<Option<Vec<u8>>, DictError>;

    /// Store `value` under `key`.
    fn update(&self, _key: &[u8], _value: &[u8], _flags: u32) -> Result<(), DictError> {
        Err(DictError::Unsupported("update"))
    }

    /// Remove `key`; `Ok(false)` when it was not there.
    fn delete(&self, _key: &[u8], _flags: u32) -> Result<bool, DictError> {
        Err(DictError::Unsupported("delete"))
    }

    /// Return the first or next entry, `None` at the end.
    fn sequence(&self, _step: SeqStep, _flags: u32) -> Result<Option<Entry>, DictError> {
        Err(DictError::Unsupported("sequence"))
    }

    /// True when the table's files changed since it was opened, so the
    /// registry should reopen it.
    fn changed(&self) -> bool {
        false
    }

    /// True when operations may block (disk locks, I/O, other processes):
    /// the server then runs them off its event loop.
    fn may_block(&self) -> bool {
        false
    }

    /// True for tables kept in a database file (Berkeley DB, lmdb) that
    /// `proxymapd check` reads whole, so a damaged page is found before a
    /// lookup meets it.
    fn is_database_file(&self) -> bool {
        false
    }

    /// How many lookups of this table may usefully run at once when that is
    /// more than the server's default: tables whose lookups mostly wait for
    /// a database server say how many they can have in flight.
    fn parallel_lookups(&self) -> Option<usize> {
        None
    }

    /// Look `key` up only if that needs no waiting; `None` when it would
    /// block (a lock held elsewhere), and the server then runs [`lookup`]
    /// off its event loop. Tables that never block just look up.
    ///
    /// [`lookup`]: Dict::lookup
    fn try_lookup(&self, key: &[u8], flags: u32) -> Option<Result<Option<Vec<u8>>, DictError>> {
        if self.may_block() {
            None
        } else {
            Some(self.lookup(key, flags))
        }
    }
}

/// Everything a `TableOpener` needs to open one table. (A plugin gets
/// the same facts as the WIT `open-request`, which the SDK hands its
/// `MapType::open` as `proxymapd_sdk::OpenRequest`.)
#[derive(Clone)]
pub struct OpenParams<'a> {
    /// Full table name, `type:name`.
    pub table: &'a str,
    /// The part after the first colon.
    pub name: &'a str,
    /// Open flags (the first requester's flags).
    pub flags: u32,
    /// True on the read-write service: open for writing, create if missing.
    pub writable: bool,
    /// True when Postfix's SMTPUTF8 support is on (full Unicode key folding).
    pub utf8: bool,
    /// The catalogue, for composite maps that open other tables.
    pub types: &'a MapTypes,
}

/// What opens tables of one map type: a built-in's `open` function, or a
/// plugin. (The SDK's `MapType`, by contrast, is one open table.)
pub(crate) trait TableOpener: Send + Sync {
    /// Open the table described by `req`.
    fn open(&self, req: &OpenParams<'_>) -> Result<Arc<dyn Dict>, OpenError>;
}

impl<F> TableOpener for F
where
    F: Fn(&OpenParams<'_>) -> Result<Arc<dyn Dict>, OpenError> + Send + Sync,
{
    fn open(&self, req: &OpenParams<'_>) -> Result<Arc<dyn Dict>, OpenError> {
        self(req)
    }
}

/// Map types found at run time (plugins), consulted for names the
/// catalogue does not have.
pub trait MapTypeSource: Send + Sync {
    /// Open a table of `type_name`; `None` when this source has no such type.
    fn open_type(
        &self,
        type_name: &str,
        req: &OpenParams<'_>,
    ) -> Option<Result<Arc<dyn Dict>, OpenError>>;
}

/// The catalogue of map types by name.
#[derive(Default)]
pub struct MapTypes {
    types: BTreeMap<String, Box<dyn TableOpener>>,
    sources: Vec<Arc<dyn MapTypeSource>>,
}

impl MapTypes {
    /// An empty catalogue.
    pub(crate) fn empty() -> MapTypes {
        MapTypes::default()
    }

    /// The built-in map types.
    pub fn builtin() -> MapTypes {
        let mut types = MapTypes::empty();
        types.register("texthash", texthash::open);
        types.register("inline", inline::open);
        types.register("static", static_map::open);
        types.register("fail", fail::open);
        types.register("environ", environ::open);
        types.register("unionmap", composite::open_union);
        types.register("pipemap", composite::open_pipe);
        types.register("randmap", randmap::open);
        types.register("lmdb", lmdb::open);
        types.register("hash", berkeley::open_hash);
        types.register("btree", berkeley::open_btree);
        types
    }

    /// Add or replace a map type.
    pub(crate) fn register(&mut self, name: &str, map_type: impl TableOpener + 'static) {
        self.types.insert(name.to_string(), Box::new(map_type));
    }

    /// Remove a map type, so that a plugin source can provide it instead.
    pub fn unregister(&mut self, name: &str) {
        self.types.remove(name);
    }

    /// Consult `source` for map types not in the catalogue.
    pub fn add_source(&mut self, source: Arc<dyn MapTypeSource>) {
        self.sources.push(source);
    }

    /// Names of the known map types.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.types.keys().map(String::as_str)
    }

    /// Open `table` (`type:name`) with the given flags.
    pub fn open(
        &self,
        table: &str,
        flags: u32,
        writable: bool,
        utf8: bool,
    ) -> Result<Arc<dyn Dict>, OpenError> {
        let (type_name, name) = table
            .split_once(':')
            .ok_or_else(|| OpenError::new(table, "table name must have the form type:name"))?;
        if type_name == "proxy" {
            return Err(OpenError::new(
                table,
                "proxy: tables cannot be opened inside the proxy server",
            ));
        }
        let req = OpenParams {
            table,
            name,
            flags,
            writable,
            utf8,
            types: self,
        };
        if let Some(map_type) = self.types.get(type_name) {
            return map_type.open(&req);
        }
        for source in &self.sources {
            if let Some(result) = source.open_type(type_name, &req) {
                return result;
            }
        }
        Err(OpenError::new(
            table,
            format!("unsupported dictionary type: {type_name}"),
        ))
    }
}
