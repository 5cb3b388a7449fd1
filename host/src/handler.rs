//! Request handling: from a parsed request to a reply, the way Postfix's
//! proxymap answers it. Applies the service's allowlist, forces the update
//! and delete flags, runs the table operation (off the event loop when the
//! table may block, in one of the table's bounded turns) and maps outcomes
//! onto status codes. A request whose key or value was too big to keep is
//! answered (NOKEY, or RETRY for an update) without running it. Knows nothing
//! of sockets; the server calls `Handler::handle` once per frame.

use crate::allowlist::{strip_proxy, Allowlist, Allowlists};
use crate::codec::{ParseError, Reply, Request, RequestKind, Status};
use crate::dict::{DictError, SeqStep};
use crate::flags;
use crate::gate::GateError;
use crate::registry::{OpenTable, Registry};
use crate::server::config_watch::ConfigWatch;
use crate::server::Service;
use std::sync::{Arc, OnceLock, RwLock};

/// Answers requests using the registry and the current allowlists.
pub(crate) struct Handler {
    registry: Arc<Registry>,
    allowlists: RwLock<Arc<Allowlists>>,
    /// The configuration to reread before refusing a table, when followed.
    config: OnceLock<Arc<ConfigWatch>>,
}

/// Outcome of one table operation, before it becomes a reply.
struct Outcome {
    status: Status,
    key: Vec<u8>,
    value: Vec<u8>,
}

impl Outcome {
    fn status(status: Status) -> Outcome {
        Outcome {
            status,
            key: Vec::new(),
            value: Vec::new(),
        }
    }
}

fn error_status(err: &DictError) -> Status {
    match err {
        DictError::Retry(_) | DictError::Unavailable(_) => Status::Retry,
        DictError::Config(_) | DictError::Unsupported(_) => Status::Config,
    }
}

impl Handler {
    /// A handler over `registry` with the given allowlists.
    pub(crate) fn new(registry: Arc<Registry>, allowlists: Allowlists) -> Handler {
        Handler {
            registry,
            allowlists: RwLock::new(Arc::new(allowlists)),
            config: OnceLock::new(),
        }
    }

    /// Reread `watch`'s configuration before refusing a table when it has
    /// changed since it was read.
    pub(crate) fn follow_config(&self, watch: Arc<ConfigWatch>) {
        let _ = self.config.set(watch);
    }

    /// Whether `table` is approved for `service`, after rereading the
    /// configuration if it changed: a table listed since is never refused
    /// on a stale list.
    async fn approved_now(&self, service: Service, table: &str) -> bool {
        if self.allowed(service, table) {
            return true;
        }
        self.reload_config_if_changed().await && self.allowed(service, table)
    }

    /// Reread the followed configuration (off the event loop: it may run
    /// postconf) and use its allowlists; false when nothing was reloaded.
    pub(crate) async fn reload_config(&self, why: &'static str) -> bool {
        let Some(watch) = self.config.get().cloned() else {
            return false;
        };
        match tokio::task::spawn_blocking(move || watch.reload(why)).await {
            Ok(Some(lists)) => {
                self.set_allowlists(lists);
                true
            }
            _ => false,
        }
    }

    /// [`Handler::reload_config`] when the configuration file changed.
    pub(crate) async fn reload_config_if_changed(&self) -> bool {
        let changed = self.config.get().is_some_and(|w| w.changed());
        changed && self.reload_config("configuration file changed").await
    }

    /// Replace the allowlists (configuration reload).
    pub(crate) fn set_allowlists(&self, allowlists: Allowlists) {
        *self.allowlists.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(allowlists);
    }

    fn allowlist(&self, service: Service) -> Allowlist {
        let lists = self
            .allowlists
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match service {
            Service::Read => lists.read.clone(),
            Service::Write => lists.write.clone(),
        }
    }

    fn allowed(&self, service: Service, table: &str) -> bool {
        let lists = self.allowlists.read().unwrap_or_else(|e| e.into_inner());
        match service {
            Service::Read => lists.read.allows(table),
            Service::Write => lists.write.allows(table),
        }
    }

    /// The approved tables of `service`.
    pub(crate) fn approved(&self, service: Service) -> Vec<String> {
        self.allowlist(service)
            .tables()
            .map(str::to_string)
            .collect()
    }

    /// The reply to a frame that did not parse.
    pub(crate) fn reject(&self, err: &ParseError) -> Reply {
        crate::warn_limited!("unparsable request", "{err}");
        Reply::rejecting(err)
    }

    /// Answer one request on `service`.
    pub(crate) async fn handle(self: &Arc<Self>, service: Service, req: Request) -> Reply {
        let kind = Some(req.kind);
        let dialect_c = req.has_instance_flags();
        match self.answer(service, req).await {
            Ok((outcome, flags)) => Reply {
                kind,
                instance_flags: dialect_c,
                status: outcome.status,
                flags,
                key: outcome.key,
                value: outcome.value,
            },
            Err(status) => Reply::status(kind, dialect_c, status),
        }
    }

    /// The outcome of one request and the table's reply flags; `Err` with
    /// the bare status when the request is answered without running its
    /// operation (malformed name, refused, unapproved, table not open, no
    /// turn on the table).
    async fn answer(
        self: &Arc<Self>,
        service: Service,
        req: Request,
    ) -> Result<(Outcome, u32), Status> {
        let started = tokio::time::Instant::now();
        let kind = req.kind;
        let table_name = strip_proxy(&req.table).to_string();
        if !table_name.contains(':') {
            tracing::warn!("malformed table name: \"{}\"", req.table);
            return Err(Status::Bad);
        }
        if matches!(kind, RequestKind::Update | RequestKind::Delete) && service == Service::Read {
            tracing::warn!(
                "refusing {} {} request on non-updatable service {}",
                table_name,
                kind.name(),
                service.name()
            );
            return Err(Status::Deny);
        }
        if !self.approved_now(service, &table_name).await {
            crate::warn_limited!(
                "unapproved table",
                "request for unapproved table: \"{table_name}\""
            );
            crate::warn_limited!(
                "unapproved table hint",
                "to approve this table for {} access, list proxy:{table_name} in main.cf:{}",
                if service == Service::Read {
                    "read-only"
                } else {
                    "read-write"
                },
                service.parameter()
            );
            return Err(Status::Deny);
        }
        let instance_flags = req.instance_flags.unwrap_or(req.flags);
        let writable = service == Service::Write;
        let opened = match self.registry.ready(&table_name, instance_flags, writable) {
            Some(table) => Ok(table),
            None => {
                // Opening may read files or take locks: never on the event
                // loop, and only in one of the table's turns.
                let table = self
                    .registry
                    .instance(&table_name, instance_flags, writable);
                let this = self.clone();
                let gate = table.gate().clone();
                // A table that cannot be opened gets its surrogate: never
                // CONFIG or RETRY to `open`, which Postfix clients would
                // retry forever.
                gate.run_open(move || this.registry.current_or_surrogate(&table))
                    .await
            }
        };
        let table = match opened {
            Ok(table) => table,
            Err(err) if kind == RequestKind::Open => {
                // No turn to open in within the wait, or the open itself
                // failed unexpectedly: answer as for a surrogate, so that
                // the client goes on; its requests get RETRY until the
                // table is open.
                crate::warn_limited!(
                    "open not finished",
                    "table {table_name}: open not finished ({err}); answering as for a table that \
                     cannot be opened"
                );
                return Ok((
                    Outcome::status(Status::Ok),
                    crate::registry::reply_flags(instance_flags, flags::PATTERN, req.flags),
                ));
            }
            Err(GateError::Busy) => return Err(busy(&table_name)),
            Err(err) => {
                tracing::error!("table {table_name}: open failed: {err}");
                return Err(Status::Retry);
            }
        };
        let request_flags = match kind {
            RequestKind::Update => req.flags | flags::SYNC_UPDATE | flags::DUP_REPLACE,
            RequestKind::Delete => req.flags | flags::SYNC_UPDATE,
            _ => req.flags,
        };
        let request_bits = req.flags;
        // The event-loop policy (ARCHITECTURE.md, "Where the work runs"): an
        // operation that cannot block answers here, on the event loop
        // (`try_lookup`, or any operation of a table that never blocks);
        // everything else runs in one of the table's turns (`TableGate::run`).
        let fast = match (kind, req.oversized) {
            // A key or value over the decoder's bounds was dropped: no table
            // holds such a key (Postfix answers NOKEY for a huge one), and a
            // truncated update must never be stored.
            (_, Some(big)) => {
                let status = if kind == RequestKind::Update {
                    Status::Retry
                } else {
                    Status::NoKey
                };
                crate::warn_limited!(
                    "oversized request",
                    "{} {} request for {table_name}: {} of {} bytes is over the size bound; answered {status:?} without running it",
                    service.name(),
                    kind.name(),
                    big.name,
                    big.len
                );
                Some(Outcome::status(status))
            }
            (RequestKind::Open, None) => Some(Outcome::status(Status::Ok)),
            (RequestKind::Lookup, None) => table
                .dict
                .try_lookup(&req.key, request_flags)
                .map(|result| lookup_outcome(&table_name, result)),
            _ if !table.dict.may_block() => Some(run(&table, &req, request_flags)),
            _ => None,
        };
        let outcome = if let Some(outcome) = fast {
            outcome
        } else {
            let t = table.clone();
            let work = move || run(&t, &req, request_flags);
            let done = if kind == RequestKind::Lookup {
                table.gate.run(work).await
            } else {
                table.gate.run_change(work).await
            };
            match done {
                Ok(outcome) => outcome,
                Err(GateError::Busy) => return Err(busy(&table_name)),
                Err(err) => {
                    tracing::error!("table {table_name}: {} failed: {err}", kind.name());
                    Outcome::status(Status::Retry)
                }
            }
        };
        if outcome.status == Status::Retry || outcome.status == Status::Config {
            tracing::debug!(
                "table {table_name}: {} answered {:?}",
                kind.name(),
                outcome.status
            );
        }
        if outcome.status == Status::Retry {
            table.gate.pace_retry(started).await;
        }
        Ok((outcome, table.reply_flags(request_bits)))
    }
}

/// The status for a request that got no turn on its table within the wait:
/// RETRY, so the client defers instead of waiting longer.
fn busy(table_name: &str) -> Status {
    crate::warn_limited!(
        "table too busy",
        "table {table_name}: too busy (every turn taken for the whole wait), answering RETRY"
    );
    Status::Retry
}

/// Map a lookup result to a status and value.
/// The answer to an operation that failed, with a warning naming the
/// table (a surrogate has logged Postfix's own warning already).
fn failure(table_name: &str, operation: &str, err: DictError) -> Outcome {
    if !matches!(err, DictError::Unavailable(_)) {
        crate::warn_limited!(
            "table operation failed",
            "table {table_name}: {operation} failed: {err}"
        );
    }
    Outcome::status(error_status(&err))
}

fn lookup_outcome(table_name: &str, result: Result<Option<Vec<u8>>, DictError>) -> Outcome {
    match result {
        Ok(Some(value)) => Outcome {
            status: Status::Ok,
            key: Vec::new(),
            value,
        },
        Ok(None) => Outcome::status(Status::NoKey),
        Err(err) => failure(table_name, "lookup", err),
    }
}

/// Run one table operation and map its result to a status.
fn run(table: &OpenTable, req: &Request, request_flags: u32) -> Outcome {
    let dict = &table.dict;
    let table_name = strip_proxy(&req.table);
    let fail = |err: DictError| failure(table_name, req.kind.name(), err);
    match req.kind {
        RequestKind::Open => Outcome::status(Status::Ok),
        RequestKind::Lookup => lookup_outcome(table_name, dict.lookup(&req.key, request_flags)),
        RequestKind::Update => match dict.update(&req.key, &req.value, request_flags) {
            Ok(()) => Outcome::status(Status::Ok),
            Err(err) => fail(err),
        },
        RequestKind::Delete => match dict.delete(&req.key, request_flags) {
            Ok(true) => Outcome::status(Status::Ok),
            Ok(false) => Outcome::status(Status::NoKey),
            Err(err) => fail(err),
        },
        RequestKind::Sequence => {
            let step = match req.function {
                0 => SeqStep::First,
                1 => SeqStep::Next,
                other => {
                    tracing::warn!("table {table_name}: unknown sequence function {other}");
                    return Outcome::status(Status::Bad);
                }
            };
            match dict.sequence(step, request_flags) {
                Ok(Some((key, value))) => Outcome {
                    status: Status::Ok,
                    key,
                    value,
                },
                Ok(None) => Outcome::status(Status::NoKey),
                Err(err) => fail(err),
            }
        }
    }
}
