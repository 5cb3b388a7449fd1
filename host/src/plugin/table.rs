//! A table served by a plugin: a small pool of instances, each with the table
//! open, so reads of one table run in parallel. A call that traps, exceeds
//! its time or memory limit costs that request only: it answers RETRY, the
//! failure is logged with plugin and table, the instance is discarded and a
//! fresh one is started on demand.

use super::instance::{
    describe_trap, is_timeout, CallError, Instance, InstanceSpec, WitError, WitOpenRequest,
    WitSeqStep,
};
use super::runaway_keys::{self, RunawayKeys};
use crate::dict::stamp::{load_stable, Unstable};
use crate::dict::{Dict, DictError, Entry, FileStamp, OpenError, SeqStep};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Instant;

/// Largest value a plugin may return; larger replies cost the request
/// (RETRY) instead of flooding the client.
pub(crate) const MAX_VALUE: usize = 1 << 20;

/// Lookups of a table run on the server's event loop (no thread hand-off)
/// once this many calls in a row finished within [`FAST_CALL`]...
const PROMOTE_AFTER: u32 = 64;
/// ... the bound for a call to count as fast ...
const FAST_CALL: std::time::Duration = std::time::Duration::from_millis(1);
/// ... and there they get this many epoch ticks (10 ms each) before they are
/// cut off, the table is demoted and the lookup is redone off the event loop
/// with the plugin's full time limit.
const INLINE_TICKS: u64 = 3;

struct Pool {
    idle: Vec<Instance>,
    live: usize,
}

/// An open plugin table.
pub(crate) struct PluginTable {
    spec: InstanceSpec,
    request: WitOpenRequest,
    pool: Mutex<Pool>,
    returned: Condvar,
    max: usize,
    flags: AtomicU32,
    stamps: Vec<FileStamp>,
    /// Sequence cursors live inside an instance: sequences use their own.
    sequencer: Mutex<Option<Instance>>,
    /// Consecutive fast calls on the blocking path.
    fast_streak: AtomicU32,
    /// Lookups may run on the event loop.
    inline: AtomicBool,
    /// Keys whose lookup ran into the time limit lately.
    runaway: RunawayKeys,
    /// The table file is a database read under Postfix's lock (hash, btree).
    locked: bool,
}

fn plugin_error(e: WitError) -> DictError {
    match e {
        WitError::Retry(m) => DictError::Retry(m),
        WitError::Config(m) => DictError::Config(m),
    }
}

impl PluginTable {
    /// Open the table in a first instance; more start on demand, up to `max`.
    /// `files` are the table's files; `locked` says the plugin reads them
    /// under Postfix's lock, so they need not be watched while it loads.
    pub(crate) fn open(
        spec: InstanceSpec,
        request: WitOpenRequest,
        max: usize,
        files: &[PathBuf],
        locked: bool,
        plugin_stamps: Vec<FileStamp>,
    ) -> Result<PluginTable, OpenError> {
        let table_name = spec.table.to_string();
        // The first instance reads the table: only from files that held
        // still while it did, unless it reads under Postfix's lock (which
        // keeps writers out while it reads).
        let start = |stamps| Instance::start(&spec, &request).map(|instance| (instance, stamps));
        let started = if locked {
            start(files.iter().map(|f| FileStamp::take(f)).collect()).map_err(Unstable::Load)
        } else {
            load_stable(files, start)
        };
        let (mut first, mut stamps) = started.map_err(|e| match e {
            Unstable::Load(CallError::Plugin(WitError::Config(m) | WitError::Retry(m))) => {
                OpenError::new(&table_name, m)
            }
            Unstable::Load(CallError::Trap(t)) => OpenError::new(
                &table_name,
                format!("plugin {}: {}", spec.plugin, describe_trap(&t)),
            ),
            Unstable::Changing(path) => OpenError::in_file(
                &table_name,
                path,
                None,
                "file keeps changing while being read",
            )
            .temporary(),
        })?;
        stamps.extend(plugin_stamps);
        let flags = first
            .flags()
            .map_err(|_| OpenError::new(&table_name, "plugin failed to report its flags"))?;
        Ok(PluginTable {
            spec,
            request,
            pool: Mutex::new(Pool {
                idle: vec![first],
                live: 1,
            }),
            returned: Condvar::new(),
            max: max.max(1),
            flags: AtomicU32::new(flags),
            stamps,
            sequencer: Mutex::new(None),
            fast_streak: AtomicU32::new(0),
            inline: AtomicBool::new(false),
            runaway: RunawayKeys::default(),
            locked,
        })
    }

    /// Run `call` on an idle instance (starting or waiting for one).
    fn with<T>(
        &self,
        what: &str,
        call: impl FnOnce(&mut Instance) -> Result<T, CallError>,
    ) -> Result<T, DictError> {
        self.call(call).map_err(|e| self.failed(what, e))
    }

    /// Run `call` on an instance of the pool; an instance that traps is
    /// discarded.
    fn call<T>(
        &self,
        call: impl FnOnce(&mut Instance) -> Result<T, CallError>,
    ) -> Result<T, CallError> {
        let mut instance = {
            let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if let Some(i) = pool.idle.pop() {
                    break i;
                }
                if pool.live < self.max {
                    pool.live += 1;
                    drop(pool);
                    match self.start_same() {
                        Ok(i) => break i,
                        Err(e) => {
                            self.pool.lock().unwrap_or_else(|e| e.into_inner()).live -= 1;
                            self.returned.notify_one();
                            return Err(e);
                        }
                    }
                }
                pool = self.returned.wait(pool).unwrap_or_else(|e| e.into_inner());
            }
        };
        let started = Instant::now();
        let result = call(&mut instance);
        self.note_duration(started.elapsed());
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Err(CallError::Trap(t)) => {
                pool.live -= 1;
                drop(pool);
                self.returned.notify_one();
                Err(CallError::Trap(t))
            }
            other => {
                pool.idle.push(instance);
                drop(pool);
                self.returned.notify_one();
                other
            }
        }
    }

    /// Start another instance of the pool. It reads the table's files again,
    /// so it must see them as the table opened them: a file changed since
    /// (the table is reopened on the next request) or while this instance
    /// read it costs this request a RETRY, never a partial table.
    fn start_same(&self) -> Result<Instance, CallError> {
        let unchanged = || {
            if self.stamps.iter().any(FileStamp::changed) {
                Err(CallError::Plugin(WitError::Retry(format!(
                    "table {} changed while starting an instance",
                    self.spec.table
                ))))
            } else {
                Ok(())
            }
        };
        unchanged()?;
        let instance = Instance::start(&self.spec, &self.request)?;
        unchanged()?;
        Ok(instance)
    }

    /// RETRY for a key whose lookup ran out of time lately.
    fn runaway_retry(&self, key: &[u8], flags: u32) -> Result<(), DictError> {
        match self.runaway.recent(key, flags) {
            None => Ok(()),
            Some(ago) => Err(DictError::Retry(format!(
                "plugin {}: this key's lookup ran out of time {}s ago; not tried again for {}s",
                self.spec.plugin,
                ago.as_secs(),
                runaway_keys::COOL_DOWN.as_secs()
            ))),
        }
    }

    /// Promote the table to event-loop lookups after a run of fast calls.
    fn note_duration(&self, took: std::time::Duration) {
        if took <= FAST_CALL {
            // A table whose database is a server waits on it: never on the
            // event loop (SQLite files are read here, like other tables).
            let waits_on_server = self
                .spec
                .database
                .as_ref()
                .is_some_and(|db| db.server_parallelism().is_some());
            if !waits_on_server
                && self.fast_streak.fetch_add(1, Ordering::Relaxed) + 1 >= PROMOTE_AFTER
            {
                self.inline.store(true, Ordering::Relaxed);
            }
        } else {
            self.fast_streak.store(0, Ordering::Relaxed);
        }
    }

    /// Refuse values over [`MAX_VALUE`].
    fn bounded(&self, value: Option<Vec<u8>>) -> Result<Option<Vec<u8>>, DictError> {
        match value {
            Some(v) if v.len() > MAX_VALUE => {
                tracing::error!(
                    "plugin {}: table {}: lookup returned {} bytes, more than the {MAX_VALUE}-byte limit",
                    self.spec.plugin,
                    self.spec.table,
                    v.len()
                );
                Err(DictError::Retry(format!(
                    "plugin {} returned an oversized value",
                    self.spec.plugin
                )))
            }
            other => Ok(other),
        }
    }

    fn failed(&self, what: &str, e: CallError) -> DictError {
        match e {
            CallError::Plugin(e) => plugin_error(e),
            CallError::Trap(t) => {
                let why = describe_trap(&t);
                tracing::error!(
                    "plugin {}: table {}: {what} failed: {why}; instance discarded",
                    self.spec.plugin,
                    self.spec.table
                );
                DictError::Retry(format!("plugin {} {what}: {why}", self.spec.plugin))
            }
        }
    }
}

impl Dict for PluginTable {
    fn flags(&self) -> u32 {
        self.flags.load(Ordering::Relaxed)
    }

    /// A table with a database may have as many lookups in flight as it
    /// has instances and its database takes: they wait on the database,
    /// not on a processor.
    fn parallel_lookups(&self) -> Option<usize> {
        self.spec
            .database
            .as_ref()
            .and_then(|db| db.server_parallelism())
            .map(|n| self.max.min(n))
    }

    fn lookup(&self, key: &[u8], flags: u32) -> Result<Option<Vec<u8>>, DictError> {
        self.runaway_retry(key, flags)?;
        let value = self.call(|i| {
            let v = i.lookup(key, flags)?;
            // Tables learn TRY0NULL/TRY1NULL on their first hits; ask for
            // the flags again only while neither has been ruled out.
            let nul = crate::flags::TRY0NULL | crate::flags::TRY1NULL;
            if self.flags.load(Ordering::Relaxed) & nul == nul {
                if let Ok(f) = i.flags() {
                    self.flags.store(f, Ordering::Relaxed);
                }
            }
            Ok(v)
        });
        let value = value.map_err(|e| {
            if matches!(&e, CallError::Trap(t) if is_timeout(t)) {
                self.runaway.note(key, flags);
            }
            self.failed("lookup", e)
        })?;
        self.bounded(value)
    }

    fn try_lookup(&self, key: &[u8], flags: u32) -> Option<Result<Option<Vec<u8>>, DictError>> {
        // A runaway key is answered on the event loop: nothing to run.
        if let Err(e) = self.runaway_retry(key, flags) {
            return Some(Err(e));
        }
        if !self.inline.load(Ordering::Relaxed) {
            return None;
        }
        let mut instance = {
            let mut pool = self.pool.try_lock().ok()?;
            pool.idle.pop()?
        };
        match instance.lookup_within(key, flags, INLINE_TICKS) {
            Err(CallError::Trap(t)) => {
                self.pool.lock().unwrap_or_else(|e| e.into_inner()).live -= 1;
                self.returned.notify_one();
                self.inline.store(false, Ordering::Relaxed);
                self.fast_streak.store(0, Ordering::Relaxed);
                if is_timeout(&t) {
                    // Too slow for the event loop: redo it off the loop with
                    // the plugin's full time limit (lookups are idempotent).
                    None
                } else {
                    Some(Err(self.failed("lookup", CallError::Trap(t))))
                }
            }
            other => {
                self.pool
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .idle
                    .push(instance);
                self.returned.notify_one();
                Some(
                    other
                        .map_err(|e| self.failed("lookup", e))
                        .and_then(|v| self.bounded(v)),
                )
            }
        }
    }

    fn update(&self, key: &[u8], value: &[u8], flags: u32) -> Result<(), DictError> {
        self.with("update", |i| i.update(key, value, flags))
    }

    fn delete(&self, key: &[u8], flags: u32) -> Result<bool, DictError> {
        self.with("delete", |i| i.delete(key, flags))
    }

    fn sequence(&self, step: SeqStep, flags: u32) -> Result<Option<Entry>, DictError> {
        let step = match step {
            SeqStep::First => WitSeqStep::First,
            SeqStep::Next => WitSeqStep::Next,
        };
        let mut slot = self.sequencer.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(
                Instance::start(&self.spec, &self.request)
                    .map_err(|e| self.failed("sequence", e))?,
            );
        }
        let instance = slot.as_mut().expect("sequencer was just started");
        match instance.sequence(step, flags) {
            Err(CallError::Trap(t)) => {
                *slot = None;
                Err(self.failed("sequence", CallError::Trap(t)))
            }
            other => other.map_err(|e| self.failed("sequence", e)),
        }
    }

    fn changed(&self) -> bool {
        self.stamps.iter().any(FileStamp::changed)
            || self.spec.domain_tables.iter().any(|(_, d)| d.changed())
    }

    fn is_database_file(&self) -> bool {
        self.locked
    }

    fn may_block(&self) -> bool {
        true
    }
}
