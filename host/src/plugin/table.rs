//! A table served by a plugin: a small pool of instances, each with the table
//! open, so reads of one table run in parallel. A call that traps, exceeds
//! its time or memory limit costs that request only: it answers RETRY, the
//! failure is logged with plugin and table, the instance is discarded and a
//! fresh one is started on demand.

use super::instance::{
    describe_trap, CallError, Instance, InstanceSpec, WitError, WitOpenRequest, WitSeqStep,
};
use crate::dict::{Dict, DictError, Entry, FileStamp, OpenError, SeqStep};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Condvar, Mutex};

/// Largest value a plugin may return; larger replies cost the request
/// (RETRY) instead of flooding the client.
pub const MAX_VALUE: usize = 1 << 20;

struct Pool {
    idle: Vec<Instance>,
    live: usize,
}

/// An open plugin table.
pub struct PluginTable {
    spec: InstanceSpec,
    request: WitOpenRequest,
    pool: Mutex<Pool>,
    returned: Condvar,
    max: usize,
    flags: AtomicU32,
    stamps: Vec<FileStamp>,
    /// Sequence cursors live inside an instance: sequences use their own.
    sequencer: Mutex<Option<Instance>>,
}

fn plugin_error(e: WitError) -> DictError {
    match e {
        WitError::Retry(m) => DictError::Retry(m),
        WitError::Config(m) => DictError::Config(m),
    }
}

impl PluginTable {
    /// Open the table in a first instance; more start on demand, up to `max`.
    pub fn open(
        spec: InstanceSpec,
        request: WitOpenRequest,
        max: usize,
        stamps: Vec<FileStamp>,
    ) -> Result<PluginTable, OpenError> {
        let table_name = spec.table.to_string();
        let mut first = Instance::start(&spec, &request).map_err(|e| match e {
            CallError::Plugin(WitError::Config(m) | WitError::Retry(m)) => {
                OpenError::new(&table_name, m)
            }
            CallError::Trap(t) => OpenError::new(
                &table_name,
                format!("plugin {}: {}", spec.plugin, describe_trap(&t)),
            ),
        })?;
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
        })
    }

    /// Run `call` on an idle instance (starting or waiting for one).
    fn with<T>(
        &self,
        what: &str,
        call: impl FnOnce(&mut Instance) -> Result<T, CallError>,
    ) -> Result<T, DictError> {
        let mut instance = {
            let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if let Some(i) = pool.idle.pop() {
                    break i;
                }
                if pool.live < self.max {
                    pool.live += 1;
                    drop(pool);
                    match Instance::start(&self.spec, &self.request) {
                        Ok(i) => break i,
                        Err(e) => {
                            self.pool.lock().unwrap_or_else(|e| e.into_inner()).live -= 1;
                            self.returned.notify_one();
                            return Err(self.failed(what, e));
                        }
                    }
                }
                pool = self.returned.wait(pool).unwrap_or_else(|e| e.into_inner());
            }
        };
        let result = call(&mut instance);
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Err(CallError::Trap(t)) => {
                pool.live -= 1;
                drop(pool);
                self.returned.notify_one();
                Err(self.failed(what, CallError::Trap(t)))
            }
            other => {
                pool.idle.push(instance);
                drop(pool);
                self.returned.notify_one();
                other.map_err(|e| self.failed(what, e))
            }
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

    fn lookup(&self, key: &[u8], flags: u32) -> Result<Option<Vec<u8>>, DictError> {
        let value = self.with("lookup", |i| {
            let v = i.lookup(key, flags)?;
            if let Ok(f) = i.flags() {
                self.flags.store(f, Ordering::Relaxed);
            }
            Ok(v)
        })?;
        self.bounded(value)
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
    }

    fn may_block(&self) -> bool {
        true
    }
}
