//! Databases for the SQL map types: the host side of the WIT `sql`
//! interface. A SQL plugin's table names its database in its own `.cf`
//! file; the host reads that file itself ([`open_for_table`]), finds or
//! opens the shared connection pool for that database, and hands the
//! plugin nothing but the ability to run statements on it. Pools are
//! shared by every table naming the same database and live as long as one
//! of those tables does.

mod mysql;
mod pgsql;
mod pool;
mod sqlite;

use proxymapd_sqlcommon::cf::CfFile;
use std::collections::HashMap;
use std::hash::Hash;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// Which database a table uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    /// SQLite files, opened read-only.
    Sqlite,
    /// PostgreSQL servers.
    Pgsql,
    /// MySQL or MariaDB servers.
    Mysql,
}

impl Backend {
    /// The backend of this name (a map type's name).
    pub(crate) fn from_name(name: &str) -> Option<Backend> {
        match name {
            "sqlite" => Some(Backend::Sqlite),
            "pgsql" => Some(Backend::Pgsql),
            "mysql" => Some(Backend::Mysql),
            _ => None,
        }
    }
}

/// A plugin manifest's `database`: one backend, or the one named like the
/// map type a table is opened as (one plugin serving several SQL types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DatabaseRule {
    /// Always this backend.
    Fixed(Backend),
    /// The backend named like the table's map type.
    ByMapType,
}

impl DatabaseRule {
    /// Parse a manifest value.
    pub(crate) fn from_name(name: &str) -> Option<DatabaseRule> {
        if name == "by-map-type" {
            return Some(DatabaseRule::ByMapType);
        }
        Backend::from_name(name).map(DatabaseRule::Fixed)
    }

    /// The backend of a table of map type `map_type`.
    pub(crate) fn backend(self, map_type: &str) -> Result<Backend, String> {
        match self {
            DatabaseRule::Fixed(b) => Ok(b),
            DatabaseRule::ByMapType => Backend::from_name(map_type)
                .ok_or_else(|| format!("no database backend for map type {map_type}")),
        }
    }
}

/// A piece of a statement ([`Piece::Escaped`] goes through the
/// connection's escaping): the type the SQL plugins build statements of.
pub(crate) use proxymapd_sqlcommon::template::Piece;

/// A statement's result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Rows {
    /// Cells per row.
    pub columns: u32,
    /// The cells, row after row; `None` for NULL.
    pub cells: Vec<Option<Vec<u8>>>,
}

/// Why a statement returned nothing (the message is logged by the caller
/// and passed to the plugin).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SqlError {
    /// The statement failed or the database is out of reach.
    #[error("{0}")]
    Unavailable(String),
}

/// One table's database.
pub(crate) trait Database: Send + Sync {
    /// Run one statement.
    fn query(&self, statement: &[Piece]) -> Result<Rows, SqlError>;

    /// For a database on a server (pgsql, mysql), whose statements wait on
    /// the network: how many statements of one table are worth running at
    /// once (more would only wait for a connection, each holding a thread).
    /// `None` for a database this process reads itself (sqlite).
    fn server_parallelism(&self) -> Option<usize> {
        None
    }
}

/// Connections per database server unless the configuration says
/// otherwise.
pub const DEFAULT_POOL_SIZE: usize = 4;

/// Longest connect or query on a database server.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// What the host sets up for one SQL table from its `.cf` file: the
/// database the file names, and the files and tables its `domain` list
/// names.
pub(crate) struct TableSetup {
    /// The table's database.
    pub database: Arc<dyn Database>,
    /// Files and tables of its `domain` list.
    pub domain: DomainSources,
}

/// Read the `.cf` file at `cf_path` (the table's name) of a table of a
/// `backend` plugin, and open its database on a pool of at most
/// `pool_size` connections per host. `Err` says what to fix, naming the
/// file.
pub(crate) fn open_for_table(
    backend: Backend,
    cf_path: &Path,
    pool_size: usize,
) -> Result<TableSetup, String> {
    let text = std::fs::read(cf_path)
        .map_err(|e| format!("open {}: {}", cf_path.display(), crate::dict::strerror(&e)))?;
    let cf = CfFile::parse(&cf_path.display().to_string(), &text).map_err(|e| e.0)?;
    let database: Arc<dyn Database> = match backend {
        Backend::Sqlite => {
            let dbpath = cf.string("dbpath", "", 1, 0).map_err(|e| e.0)?;
            sqlite::pool(Path::new(&dbpath))?
        }
        Backend::Pgsql => Arc::new(pool::table(
            pgsql::Spec::from_cf(&cf)?,
            pool_settings(&cf, pool_size)?,
        )?),
        Backend::Mysql => Arc::new(pool::table(
            mysql::Spec::from_cf(&cf)?,
            pool_settings(&cf, pool_size)?,
        )?),
    };
    Ok(TableSetup {
        database,
        domain: domain_sources(&cf),
    })
}

/// What a SQL table's `domain` list names besides domains: files
/// (`/file/name` entries, and files named inside those), which the table's
/// plugin is granted beside its `.cf` file, and `type:name` tables, in
/// which the host looks domains up for it.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct DomainSources {
    /// Files, in the order the list names them.
    pub files: Vec<std::path::PathBuf>,
    /// Tables, in the order the list names them.
    pub tables: Vec<String>,
}

/// The [`DomainSources`] of `cf`. Files that cannot be read are left out:
/// the plugin then says so when it opens the table.
fn domain_sources(cf: &CfFile) -> DomainSources {
    struct Recorder(Vec<std::path::PathBuf>);
    impl proxymapd_sqlcommon::domain::Sources for Recorder {
        fn file(&mut self, path: &str) -> Result<Vec<u8>, String> {
            let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
            if !self.0.iter().any(|p| p.as_os_str() == path) {
                self.0.push(path.into());
            }
            Ok(bytes)
        }
        fn lookup(&mut self, _table: &str, _key: &str) -> Result<Option<Vec<u8>>, String> {
            Ok(None)
        }
    }
    let Some(domain) = cf.get("domain") else {
        return DomainSources::default();
    };
    let mut recorder = Recorder(Vec::new());
    let tables = proxymapd_sqlcommon::domain::DomainList::parse(domain, &mut recorder)
        .map(|list| list.tables().into_iter().map(str::to_string).collect())
        .unwrap_or_default();
    DomainSources {
        files: recorder.0,
        tables,
    }
}

/// A networked table's pool settings: `retry_interval` and
/// `idle_interval` from its `.cf` (seconds; Postfix 3.9's names, 60 s as
/// Postfix 3.7 fixes them).
fn pool_settings(cf: &CfFile, size: usize) -> Result<pool::PoolSettings, String> {
    let mut settings = pool::PoolSettings::new(size, QUERY_TIMEOUT);
    let seconds = |name: &str| {
        cf.int(name, 60, 1, 0)
            .map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(60)))
            .map_err(|e| e.0)
    };
    settings.retry_interval = seconds("retry_interval")?;
    settings.idle_interval = seconds("idle_interval")?;
    Ok(settings)
}

/// The pool for `key` in `pools`, shared while some table holds it, or a
/// new one from `make` (pools nobody holds are dropped from the map).
pub(crate) fn shared_pool<K: Eq + Hash, P>(
    pools: &Mutex<HashMap<K, Weak<P>>>,
    key: K,
    make: impl FnOnce() -> Result<P, String>,
) -> Result<Arc<P>, String> {
    let mut pools = pools.lock().unwrap_or_else(|e| e.into_inner());
    pools.retain(|_, p| p.strong_count() > 0);
    if let Some(pool) = pools.get(&key).and_then(Weak::upgrade) {
        return Ok(pool);
    }
    let pool = Arc::new(make()?);
    pools.insert(key, Arc::downgrade(&pool));
    Ok(pool)
}
