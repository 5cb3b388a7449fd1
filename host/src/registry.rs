//! The table registry: one shared open table per (service, table name,
//! instance flags), opened with the first requester's flags and never closed
//! when clients disconnect. A table whose files changed is reopened in place
//! before the next request that uses it; a table that fails to open answers
//! CONFIG, logs its error once, and is retried on later requests until it
//! opens.

use crate::dict::{Dict, MapTypes, OpenError};
use crate::flags;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The state of one shared table.
enum TableState {
    Open(Arc<dyn Dict>),
    Failed(OpenError),
}

/// One shared table instance.
pub struct Table {
    name: String,
    instance_flags: u32,
    open_flags: u32,
    writable: bool,
    state: RwLock<TableState>,
}

/// An open table as seen by one request.
#[derive(Clone)]
pub struct OpenTable {
    /// The table implementation.
    pub dict: Arc<dyn Dict>,
    /// Flags the table was opened with (instance and first requester's bits).
    pub open_flags: u32,
}

impl OpenTable {
    /// The table's flags as Postfix reports them: open flags, implementation
    /// and learned NUL bits, with the request's own request bits.
    pub fn reply_flags(&self, request_flags: u32) -> u32 {
        let keep = self.open_flags & !(flags::IMPL_MASK | flags::TRY0NULL | flags::TRY1NULL);
        flags::with_request_bits(keep | self.dict.flags(), request_flags)
    }
}

/// All shared tables, and the map types that open them.
pub struct Registry {
    types: Arc<MapTypes>,
    utf8: bool,
    /// Instances by table name; a name rarely has more than one.
    tables: RwLock<HashMap<String, Vec<Arc<Table>>>>,
}

impl Registry {
    /// A registry opening tables with `types`; `utf8` turns on full Unicode
    /// key folding (Postfix's `smtputf8_enable`).
    pub fn new(types: MapTypes, utf8: bool) -> Registry {
        Registry {
            types: Arc::new(types),
            utf8,
            tables: RwLock::new(HashMap::new()),
        }
    }

    /// The map types this registry opens tables with.
    pub fn types(&self) -> &MapTypes {
        &self.types
    }

    /// The shared instance of `name` for these instance flags, opening it
    /// with `open_flags` when it is new or changed. Opening may block.
    pub fn acquire(
        &self,
        name: &str,
        instance_flags: u32,
        open_flags: u32,
        writable: bool,
    ) -> Result<OpenTable, OpenError> {
        let instance_flags = instance_flags & flags::INST_MASK;
        let table = {
            let mut tables = self.tables.write().unwrap_or_else(|e| e.into_inner());
            match find(&tables, name, instance_flags, writable) {
                Some(t) => t,
                None => {
                    let table = Arc::new(Table {
                        name: name.to_string(),
                        instance_flags,
                        open_flags,
                        writable,
                        state: RwLock::new(TableState::Failed(OpenError::new(
                            name,
                            "not yet opened",
                        ))),
                    });
                    tables
                        .entry(name.to_string())
                        .or_default()
                        .push(table.clone());
                    // Open outside the map lock; the table's own lock orders
                    // concurrent first users.
                    let mut state = table.state.write().unwrap_or_else(|e| e.into_inner());
                    drop(tables);
                    *state = self.open_state(&table, None);
                    drop(state);
                    return self.current(&table);
                }
            }
        };
        self.current(&table)
    }

    /// The shared instance of `name` when it is already open and unchanged;
    /// never opens anything, so it is cheap enough for the event loop.
    pub fn ready(&self, name: &str, instance_flags: u32, writable: bool) -> Option<OpenTable> {
        let table = {
            let tables = self.tables.read().unwrap_or_else(|e| e.into_inner());
            find(&tables, name, instance_flags & flags::INST_MASK, writable)?
        };
        let state = table.state.read().unwrap_or_else(|e| e.into_inner());
        match &*state {
            TableState::Open(dict) if !dict.changed() => Some(OpenTable {
                dict: dict.clone(),
                open_flags: table.open_flags,
            }),
            _ => None,
        }
    }

    fn current(&self, table: &Table) -> Result<OpenTable, OpenError> {
        {
            let state = table.state.read().unwrap_or_else(|e| e.into_inner());
            if let TableState::Open(dict) = &*state {
                if !dict.changed() {
                    return Ok(OpenTable {
                        dict: dict.clone(),
                        open_flags: table.open_flags,
                    });
                }
            }
        }
        let mut state = table.state.write().unwrap_or_else(|e| e.into_inner());
        // Another request may have reopened it while we waited.
        let needs_open = match &*state {
            TableState::Open(dict) => dict.changed(),
            TableState::Failed(_) => true,
        };
        if needs_open {
            let previous = match &*state {
                TableState::Failed(e) => Some(e.clone()),
                TableState::Open(_) => {
                    tracing::info!("table {} changed, reopening", table.name);
                    None
                }
            };
            *state = self.open_state(table, previous.as_ref());
        }
        match &*state {
            TableState::Open(dict) => Ok(OpenTable {
                dict: dict.clone(),
                open_flags: table.open_flags,
            }),
            TableState::Failed(e) => Err(e.clone()),
        }
    }

    fn open_state(&self, table: &Table, previous: Option<&OpenError>) -> TableState {
        match self
            .types
            .open(&table.name, table.open_flags, table.writable, self.utf8)
        {
            Ok(dict) => {
                if previous.is_some() {
                    tracing::info!("table {} is open again", table.name);
                }
                TableState::Open(dict)
            }
            Err(err) => {
                if previous != Some(&err) {
                    tracing::error!("{err}");
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
            .map(Vec::len)
            .sum()
    }

    /// True when no table was ever requested.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The instance of `name` with these instance flags on this service.
fn find(
    tables: &HashMap<String, Vec<Arc<Table>>>,
    name: &str,
    instance_flags: u32,
    writable: bool,
) -> Option<Arc<Table>> {
    tables
        .get(name)?
        .iter()
        .find(|t| t.instance_flags == instance_flags && t.writable == writable)
        .cloned()
}
