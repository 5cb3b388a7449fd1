//! One plugin instance serving one table: its own store (memory limit, epoch
//! deadline), the component instantiated without WASI, the host functions it
//! may import (logging, reading the table's granted files), and the open
//! table resource inside it.

use std::path::PathBuf;
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker, ResourceAny};
use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder};

/// Bindings generated from the WIT world (`wit/`).
#[allow(missing_docs)]
mod bindings {
    wasmtime::component::bindgen!({
        world: "plugin",
        path: "../wit",
    });
}
pub(crate) use bindings::{Plugin, PluginPre};

// Through `bindings::` by name: the generated `proxymapd` module would be
// ambiguous with this crate's own name where it is an extern (doc tests).
pub(crate) use bindings::exports::proxymapd::dict::dict::{
    Error as WitError, OpenRequest as WitOpenRequest, SeqStep as WitSeqStep,
};
use bindings::proxymapd::dict::host::{Host, Level};
use bindings::proxymapd::dict::sql;

/// Per-instance state the host functions see.
pub(crate) struct HostState {
    limits: StoreLimits,
    /// The plugin's map type, for log lines.
    plugin: Arc<str>,
    /// The table served, for log lines.
    table: Arc<str>,
    /// The files this table may read, by index.
    files: Arc<GrantedFiles>,
    /// The database this table's configuration names (SQL map types).
    database: Option<Arc<dyn crate::sql::Database>>,
    /// The tables its `domain` list names, by name.
    domain_tables: Arc<Vec<(String, Arc<dyn crate::dict::Dict>)>>,
    /// Time the current call spent waiting for the database: it does not
    /// count against the plugin's time limit (the host bounds it).
    database_wait: std::time::Duration,
}

/// The files granted to one table, read once and shared by all of the
/// table's instances.
pub(crate) struct GrantedFiles {
    paths: Vec<PathBuf>,
    flock: bool,
    contents: Vec<std::sync::OnceLock<Result<Arc<[u8]>, FileError>>>,
}

impl GrantedFiles {
    /// Grant `paths` (nothing is read until a plugin asks).
    pub(crate) fn new(paths: Vec<PathBuf>) -> GrantedFiles {
        let contents = paths.iter().map(|_| std::sync::OnceLock::new()).collect();
        GrantedFiles {
            paths,
            flock: false,
            contents,
        }
    }

    /// Read each file under a shared flock(2), waiting for writers.
    pub(crate) fn with_flock(mut self, flock: bool) -> GrantedFiles {
        self.flock = flock;
        self
    }

    /// The content of file `index`, read on first use.
    pub(crate) fn get(&self, index: u32) -> Result<Arc<[u8]>, FileError> {
        let i = index as usize;
        let path = self.paths.get(i).ok_or(FileError::NotGranted(index))?;
        self.contents[i]
            .get_or_init(|| {
                read_granted(path, self.flock)
                    .map(Arc::from)
                    .map_err(|e| FileError::Read {
                        path: path.clone(),
                        cause: Arc::new(e),
                    })
            })
            .clone()
    }
}

/// Why a plugin cannot have a file it asked for. The plugin receives the
/// message as the error string of its host call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FileError {
    /// The plugin asked for a file number this table was not granted.
    #[error("no file number {0} was granted to this table")]
    NotGranted(u32),
    /// The granted file could not be read. The message is the system's
    /// reason alone (as Postfix's `%m`): plugins name the file themselves
    /// ("open database PATH: No such file or directory").
    #[error("{}", crate::dict::strerror(cause))]
    Read {
        /// The granted file.
        path: PathBuf,
        /// Why reading it failed (shared: the outcome is kept for every
        /// instance of the table).
        cause: Arc<std::io::Error>,
    },
}

// The host interface's errors are WIT strings: a `FileError` crosses into
// the plugin as its message.
impl Host for HostState {
    fn log(&mut self, level: Level, message: String) {
        // A message that names its table's file is logged as the plugin
        // wrote it: the shipped plugins use Postfix's own words ("regexp
        // map FILE, line N: ..."), which operators' log checks know.
        // Anything else is prefixed with the plugin and table it came from.
        let (plugin, table) = (&self.plugin, &self.table);
        let file = table.split_once(':').map_or(&**table, |(_, f)| f);
        let text = if !file.is_empty() && message.contains(file) {
            message
        } else {
            format!("plugin {plugin}: table {table}: {message}")
        };
        match level {
            Level::Error => tracing::error!("{text}"),
            Level::Warning => tracing::warn!("{text}"),
            Level::Info => tracing::info!("{text}"),
            Level::Debug => tracing::debug!("{text}"),
        }
    }

    fn read_file(&mut self, index: u32) -> Result<Vec<u8>, String> {
        self.files
            .get(index)
            .map(|data| data.to_vec())
            .map_err(|e| e.to_string())
    }

    fn file_size(&mut self, index: u32) -> Result<u64, String> {
        self.files
            .get(index)
            .map(|data| data.len() as u64)
            .map_err(|e| e.to_string())
    }

    fn read_at(&mut self, index: u32, offset: u64, length: u32) -> Result<Vec<u8>, String> {
        let data = self.files.get(index).map_err(|e| e.to_string())?;
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(data.len());
        let end = start.saturating_add(length as usize).min(data.len());
        Ok(data[start..end].to_vec())
    }
}

/// Read exactly one granted file through a capability on its directory:
/// only that name is opened, relative to that directory.
fn read_granted(path: &std::path::Path, flock: bool) -> std::io::Result<Vec<u8>> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"))?;
    let dir = cap_std::fs::Dir::open_ambient_dir(dir, cap_std::ambient_authority())?;
    if !flock {
        return dir.read(name);
    }
    let file = dir.open(name)?.into_std();
    let lock = crate::dict::file_lock::TableLock::with_style(
        std::os::fd::AsRawFd::as_raw_fd(&file),
        crate::dict::file_lock::LockStyle::Flock,
    );
    let _shared = lock.shared(true)?;
    let mut data = Vec::new();
    std::io::Read::read_to_end(&mut &file, &mut data)?;
    Ok(data)
}

// The sql interface: statements on the table's own database, nothing else.
impl sql::Host for HostState {
    fn query(&mut self, statement: Vec<sql::Piece>) -> Result<sql::Rows, sql::SqlError> {
        let Some(database) = &self.database else {
            return Err(sql::SqlError::NotPermitted(format!(
                "table {} has no database (plugin {} declares none in its manifest)",
                self.table, self.plugin
            )));
        };
        let pieces: Vec<crate::sql::Piece> = statement
            .into_iter()
            .map(|p| match p {
                sql::Piece::Text(t) => crate::sql::Piece::Text(t),
                sql::Piece::Escaped(v) => crate::sql::Piece::Escaped(v),
            })
            .collect();
        let started = std::time::Instant::now();
        let result = database.query(&pieces);
        // Waiting on a database server does not count against the plugin's
        // time limit; SQLite's work in this process does.
        if database.server_parallelism().is_some() {
            self.database_wait += started.elapsed();
        }
        match result {
            Ok(rows) => Ok(sql::Rows {
                columns: rows.columns,
                cells: rows.cells,
            }),
            Err(e) => Err(sql::SqlError::Unavailable(e.to_string())),
        }
    }

    fn domain_lookup(&mut self, table: String, key: String) -> Result<Option<Vec<u8>>, String> {
        let Some((_, dict)) = self.domain_tables.iter().find(|(name, _)| *name == table) else {
            return Err(format!(
                "table {}: {table} is not in its domain list",
                self.table
            ));
        };
        dict.lookup(key.as_bytes(), dict.flags())
            .map_err(|e| format!("domain table {table}: {e}"))
    }
}

/// What an instance needs to start.
pub(crate) struct InstanceSpec {
    /// The pre-linked component.
    pub pre: PluginPre<HostState>,
    /// Map type name.
    pub plugin: Arc<str>,
    /// Table name (`type:name`).
    pub table: Arc<str>,
    /// Granted files.
    pub files: Arc<GrantedFiles>,
    /// The table's database (SQL map types only).
    pub database: Option<Arc<dyn crate::sql::Database>>,
    /// The tables its `domain` list names (SQL map types only).
    pub domain_tables: Arc<Vec<(String, Arc<dyn crate::dict::Dict>)>>,
    /// Memory limit in bytes.
    pub memory_bytes: usize,
    /// Epoch ticks a call may take.
    pub deadline_ticks: u64,
}

/// A live instance with its open table.
pub(crate) struct Instance {
    store: Store<HostState>,
    bindings: Plugin,
    table: ResourceAny,
    deadline_ticks: u64,
}

/// Why a call failed.
pub(crate) enum CallError {
    /// The plugin answered with an error.
    Plugin(WitError),
    /// The instance trapped, ran out of time or memory: it must be discarded.
    Trap(wasmtime::Error),
}

/// Link the host interface (and nothing else) for plugins.
pub(crate) fn linker(engine: &Engine) -> Result<Linker<HostState>, super::PluginError> {
    let mut linker = Linker::new(engine);
    Plugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).map_err(super::PluginError::Link)?;
    Ok(linker)
}

impl Instance {
    /// Instantiate and open the table.
    pub(crate) fn start(
        spec: &InstanceSpec,
        request: &WitOpenRequest,
    ) -> Result<Instance, CallError> {
        let engine = spec.pre.engine();
        let state = HostState {
            limits: StoreLimitsBuilder::new()
                .memory_size(spec.memory_bytes)
                .instances(4)
                .trap_on_grow_failure(true)
                .build(),
            plugin: spec.plugin.clone(),
            table: spec.table.clone(),
            files: spec.files.clone(),
            database: spec.database.clone(),
            domain_tables: spec.domain_tables.clone(),
            database_wait: std::time::Duration::ZERO,
        };
        let mut store = Store::new(engine, state);
        store.limiter(|s| &mut s.limits);
        // At the deadline, time spent waiting for the database is given
        // back once; otherwise the call has run out of time.
        store.epoch_deadline_callback(|mut ctx| {
            let waited = std::mem::take(&mut ctx.data_mut().database_wait);
            if waited.is_zero() {
                return Err(wasmtime::Trap::Interrupt.into());
            }
            let ticks = waited.as_millis() / super::TICK.as_millis() + 1;
            Ok(wasmtime::UpdateDeadline::Continue(
                u64::try_from(ticks).unwrap_or(u64::MAX),
            ))
        });
        store.set_epoch_deadline(spec.deadline_ticks);
        let bindings = spec.pre.instantiate(&mut store).map_err(CallError::Trap)?;
        let opened = bindings
            .proxymapd_dict_dict()
            .table()
            .call_open(&mut store, request);
        let table = match opened {
            Ok(Ok(table)) => table,
            Ok(Err(e)) => return Err(CallError::Plugin(e)),
            Err(trap) => return Err(CallError::Trap(trap)),
        };
        Ok(Instance {
            store,
            bindings,
            table,
            deadline_ticks: spec.deadline_ticks,
        })
    }

    /// Start a call's clock: `ticks` epoch ticks, none waited yet.
    fn arm_for(&mut self, ticks: u64) {
        self.store.data_mut().database_wait = std::time::Duration::ZERO;
        self.store.set_epoch_deadline(ticks);
    }

    fn arm(&mut self) {
        self.arm_for(self.deadline_ticks);
    }

    /// The table's flags.
    pub(crate) fn flags(&mut self) -> Result<u32, CallError> {
        self.arm();
        let t = self.table;
        self.bindings
            .proxymapd_dict_dict()
            .table()
            .call_flags(&mut self.store, t)
            .map_err(CallError::Trap)
    }

    /// lookup.
    pub(crate) fn lookup(&mut self, key: &[u8], flags: u32) -> Result<Option<Vec<u8>>, CallError> {
        self.lookup_within(key, flags, self.deadline_ticks)
    }

    /// lookup with a deadline of `ticks` epoch ticks instead of the plugin's own.
    pub(crate) fn lookup_within(
        &mut self,
        key: &[u8],
        flags: u32,
        ticks: u64,
    ) -> Result<Option<Vec<u8>>, CallError> {
        self.arm_for(ticks);
        let t = self.table;
        flatten(self.bindings.proxymapd_dict_dict().table().call_lookup(
            &mut self.store,
            t,
            key,
            flags,
        ))
    }

    /// update.
    pub(crate) fn update(&mut self, key: &[u8], value: &[u8], flags: u32) -> Result<(), CallError> {
        self.arm();
        let t = self.table;
        flatten(self.bindings.proxymapd_dict_dict().table().call_update(
            &mut self.store,
            t,
            key,
            value,
            flags,
        ))
    }

    /// delete.
    pub(crate) fn delete(&mut self, key: &[u8], flags: u32) -> Result<bool, CallError> {
        self.arm();
        let t = self.table;
        flatten(self.bindings.proxymapd_dict_dict().table().call_delete(
            &mut self.store,
            t,
            key,
            flags,
        ))
    }

    /// sequence.
    pub(crate) fn sequence(
        &mut self,
        step: WitSeqStep,
        flags: u32,
    ) -> Result<Option<crate::dict::Entry>, CallError> {
        self.arm();
        let t = self.table;
        flatten(self.bindings.proxymapd_dict_dict().table().call_sequence(
            &mut self.store,
            t,
            step,
            flags,
        ))
        .map(|e| e.map(|e| (e.key, e.value)))
    }
}

fn flatten<T>(r: wasmtime::Result<Result<T, WitError>>) -> Result<T, CallError> {
    match r {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(CallError::Plugin(e)),
        Err(trap) => Err(CallError::Trap(trap)),
    }
}

/// True when the trap is the epoch deadline (the call ran out of time).
pub(crate) fn is_timeout(err: &wasmtime::Error) -> bool {
    matches!(
        err.downcast_ref::<wasmtime::Trap>(),
        Some(wasmtime::Trap::Interrupt)
    )
}

/// Describe a trap for the log (timeout, memory, panic).
pub(crate) fn describe_trap(err: &wasmtime::Error) -> String {
    if let Some(trap) = err.downcast_ref::<wasmtime::Trap>() {
        return match trap {
            wasmtime::Trap::Interrupt => "time limit exceeded".to_string(),
            other => format!("trap: {other}"),
        };
    }
    let text = format!("{err:?}");
    let first = text.lines().next().unwrap_or("").to_string();
    if text.contains("memory") && (text.contains("limit") || text.contains("grow")) {
        format!("memory limit reached: {first}")
    } else {
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn granted_file_errors_give_the_reason_the_plugin_words_as_postfix() {
        let files = GrantedFiles::new(vec![PathBuf::from("/nonexistent/proxymapd-table")]);
        assert_eq!(
            files.get(1).unwrap_err().to_string(),
            "no file number 1 was granted to this table"
        );
        // Plugins name the file themselves ("open database PATH: ..."),
        // so the reason is the system's words alone, as Postfix's %m.
        assert_eq!(
            files.get(0).unwrap_err().to_string(),
            "No such file or directory"
        );
    }
}
