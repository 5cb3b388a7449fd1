//! The table registry: one shared open table per (service, table name,
//! instance flags), opened with the first requester's flags and never closed
//! when clients disconnect. A table whose files changed is reopened in place
//! before the next request that uses it; a table that fails to open logs
//! its error once and is served by a surrogate (open OK, every operation
//! RETRY), as Postfix's proxymap serves it, and is retried on later requests
//! until it opens.
//!
//! Resources are bounded per table name: at most [`MAX_INSTANCES`] instances
//! (different instance flags or services) are kept, the least recently used
//! one is evicted to make room, and all instances of a name share one
//! [`TableGate`], which decides how many of its blocking operations (opens
//! included) run at once and where.

use crate::dict::surrogate::Surrogate;
use crate::dict::{Dict, MapTypes, OpenError};
use crate::flags;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

pub(crate) use crate::gate::{TableGate, TableLimits};

/// Most instances kept per table name; a new instance beyond this evicts
/// the least recently used one (requests in flight keep theirs alive).
pub const MAX_INSTANCES: usize = 8;

/// The state of one shared table.
enum TableState {
    /// Created, not yet opened.
    Unopened,
    Open(Arc<dyn Dict>),
    Failed(OpenError),
}

/// One shared instance of a table (name, instance flags, service): opened
/// or not, and the gate of its name. A request gets it open as an
/// [`OpenTable`].
pub(crate) struct TableInstance {
    name: String,
    instance_flags: u32,
    open_flags: u32,
    writable: bool,
    state: RwLock<TableState>,
    /// The registry's use clock when this instance was last used.
    last_used: AtomicU64,
    gate: Arc<TableGate>,
}

impl TableInstance {
    /// The gate shared by every instance of this table name.
    pub(crate) fn gate(&self) -> &Arc<TableGate> {
        &self.gate
    }

    fn open_table(&self, dict: &Arc<dyn Dict>) -> OpenTable {
        OpenTable {
            dict: dict.clone(),
            open_flags: self.open_flags,
            gate: self.gate.clone(),
        }
    }
}

/// Everything the registry keeps for one table name.
struct NameEntry {
    gate: Arc<TableGate>,
    instances: Vec<Arc<TableInstance>>,
}

/// An open table as seen by one request.
#[derive(Clone)]
pub struct OpenTable {
    /// The table implementation.
    pub dict: Arc<dyn Dict>,
    /// Flags the table was opened with (instance and first requester's bits).
    pub open_flags: u32,
    /// The gate of the table's name.
    pub gate: Arc<TableGate>,
}

impl OpenTable {
    /// The table's flags as Postfix reports them: open flags, implementation
    /// and learned NUL bits, with the request's own request bits.
    pub(crate) fn reply_flags(&self, request_flags: u32) -> u32 {
        reply_flags(self.open_flags, self.dict.flags(), request_flags)
    }
}

/// The flags Postfix reports for a table opened with `open_flags` whose
/// dict has `dict_flags`: the open flags without implementation and NUL
/// bits, the dict's own, and the request's request bits.
pub(crate) fn reply_flags(open_flags: u32, dict_flags: u32, request_flags: u32) -> u32 {
    let keep = open_flags & !(flags::IMPL_MASK | flags::TRY0NULL | flags::TRY1NULL);
    flags::with_request_bits(keep | dict_flags, request_flags)
}

/// All shared tables, and the map types that open them.
pub struct Registry {
    types: Arc<MapTypes>,
    utf8: bool,
    limits: TableLimits,
    /// Ticks once per new instance; instances remember it when used.
    clock: AtomicU64,
    /// Instances by table name; a name rarely has more than one.
    tables: RwLock<HashMap<String, NameEntry>>,
}

impl Registry {
    /// A registry opening tables with `types`; `utf8` turns on full Unicode
    /// key folding (Postfix's `smtputf8_enable`).
    pub fn new(types: MapTypes, utf8: bool) -> Registry {
        Registry {
            types: Arc::new(types),
            utf8,
            limits: TableLimits::default(),
            clock: AtomicU64::new(0),
            tables: RwLock::new(HashMap::new()),
        }
    }

    /// The map types this registry opens tables with.
    pub fn types(&self) -> &MapTypes {
        &self.types
    }

    /// The shared instance of `name` for the instance bits of `open_flags`,
    /// opening it with `open_flags` when it is new or changed. Opening may
    /// block.
    pub fn acquire(
        &self,
        name: &str,
        open_flags: u32,
        writable: bool,
    ) -> Result<OpenTable, OpenError> {
        let table = self.instance(name, open_flags, writable);
        self.current(&table)
    }

    /// The instance of `name` for the instance bits of `open_flags`
    /// (Postfix's instance flags, or the request flags of an older client),
    /// created (not yet opened) when new; a new instance is opened with all
    /// of `open_flags`, the first requester's. Never blocks on a table.
    /// Creating one beyond [`MAX_INSTANCES`] evicts the least recently used
    /// instance of the name.
    pub(crate) fn instance(
        &self,
        name: &str,
        open_flags: u32,
        writable: bool,
    ) -> Arc<TableInstance> {
        let instance_flags = open_flags & flags::INST_MASK;
        if let Some(table) = self.find(name, instance_flags, writable) {
            return table;
        }
        let mut tables = self.tables.write().unwrap_or_else(|e| e.into_inner());
        let entry = tables.entry(name.to_string()).or_insert_with(|| NameEntry {
            gate: Arc::new(TableGate::new(self.limits)),
            instances: Vec::new(),
        });
        if let Some(t) = entry
            .instances
            .iter()
            .find(|t| t.instance_flags == instance_flags && t.writable == writable)
        {
            return t.clone();
        }
        if entry.instances.len() >= MAX_INSTANCES {
            let oldest = entry
                .instances
                .iter()
                .enumerate()
                .min_by_key(|(_, t)| t.last_used.load(Ordering::Relaxed))
                .map_or(0, |(i, _)| i);
            let evicted = entry.instances.swap_remove(oldest);
            tracing::info!(
                "table {name}: more than {MAX_INSTANCES} instances, closing the least recently used (instance flags {:#x})",
                evicted.instance_flags
            );
        }
        let table = Arc::new(TableInstance {
            name: name.to_string(),
            instance_flags,
            open_flags,
            writable,
            state: RwLock::new(TableState::Unopened),
            last_used: AtomicU64::new(self.clock.fetch_add(1, Ordering::Relaxed) + 1),
            gate: entry.gate.clone(),
        });
        entry.instances.push(table.clone());
        table
    }

    /// The instance of `name` with these instance flags on this service,
    /// marked as used now.
    fn find(&self, name: &str, instance_flags: u32, writable: bool) -> Option<Arc<TableInstance>> {
        let tables = self.tables.read().unwrap_or_else(|e| e.into_inner());
        let table = tables
            .get(name)?
            .instances
            .iter()
            .find(|t| t.instance_flags == instance_flags && t.writable == writable)?
            .clone();
        let now = self.clock.load(Ordering::Relaxed);
        if table.last_used.load(Ordering::Relaxed) != now {
            table.last_used.store(now, Ordering::Relaxed);
        }
        Some(table)
    }

    /// The shared instance of `name` when it is already open and unchanged;
    /// never opens anything, so it is cheap enough for the event loop.
    pub fn ready(&self, name: &str, instance_flags: u32, writable: bool) -> Option<OpenTable> {
        let table = self.find(name, instance_flags & flags::INST_MASK, writable)?;
        // Called on the event loop: never wait here for an open or reopen
        // in progress (it may take seconds on a loaded machine, and every
        // connection of this worker thread would wait with it). A busy
        // table takes the slow path, which waits for its turn without
        // holding a thread.
        let state = match table.state.try_read() {
            Ok(state) => state,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return None,
        };
        match &*state {
            TableState::Open(dict) if !dict.changed() => Some(table.open_table(dict)),
            _ => None,
        }
    }

    /// The table open and current: opened, or reopened when its files
    /// changed or its last open failed. May block.
    pub(crate) fn current(&self, table: &TableInstance) -> Result<OpenTable, OpenError> {
        {
            let state = table.state.read().unwrap_or_else(|e| e.into_inner());
            if let TableState::Open(dict) = &*state {
                if !dict.changed() {
                    return Ok(table.open_table(dict));
                }
            }
        }
        let mut state = table.state.write().unwrap_or_else(|e| e.into_inner());
        // Another request may have reopened it while we waited.
        let previous = match &*state {
            TableState::Open(dict) if !dict.changed() => return Ok(table.open_table(dict)),
            TableState::Open(_) => {
                tracing::info!("table {} changed, reopening", table.name);
                None
            }
            TableState::Failed(e) => Some(e.clone()),
            TableState::Unopened => None,
        };
        *state = self.open_state(table, previous.as_ref());
        match &*state {
            TableState::Open(dict) => Ok(table.open_table(dict)),
            TableState::Failed(e) => Err(e.clone()),
            TableState::Unopened => unreachable!("open_state never leaves a table unopened"),
        }
    }

    /// Like [`Registry::current`], but a table that cannot be opened is
    /// served by its surrogate (open OK, every operation RETRY), as Postfix's
    /// proxymap serves it; the next request tries to open it again.
    pub(crate) fn current_or_surrogate(&self, table: &TableInstance) -> OpenTable {
        self.current(table).unwrap_or_else(|err| {
            let surrogate: Arc<dyn Dict> = Arc::new(Surrogate::for_error(&err));
            table.open_table(&surrogate)
        })
    }

    fn open_state(&self, table: &TableInstance, previous: Option<&OpenError>) -> TableState {
        match self
            .types
            .open(&table.name, table.open_flags, table.writable, self.utf8)
        {
            Ok(dict) => {
                if previous.is_some() {
                    tracing::info!("table {} is open again", table.name);
                }
                if let Some(n) = dict.parallel_lookups() {
                    table.gate.allow_at_least(n);
                }
                TableState::Open(dict)
            }
            Err(err) => {
                if previous != Some(&err) {
                    // Postfix's line: the reason alone; the surrogate's
                    // warnings name the table.
                    tracing::error!("{}", err.reason());
                }
                TableState::Failed(err)
            }
        }
    }

    /// Number of shared table instances (open or failed).
    pub fn len(&self) -> usize {
        self.tables
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|e| e.instances.len())
            .sum()
    }

    /// True when no table was ever requested.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
