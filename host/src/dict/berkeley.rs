//! hash:/path and btree:/path — Postfix's Berkeley DB tables (`/path.db`,
//! made by `postmap hash:` / `postmap btree:`), read natively with the
//! proxymapd-bdb reader from a memory mapping: no libdb, no page copies.
//!
//! Every read holds Postfix's shared flock(2) on the file. postmap rebuilds
//! these files in place (truncate, then write) under its exclusive flock, so
//! a lookup waits for a rebuild to finish and never sees it half-written;
//! under the lock the file size is checked and the mapping redone when it
//! changed, and the meta page (bucket geometry, root) is read afresh, so an
//! in-place rebuild needs no reopen. That same fstat notices a file replaced
//! by rename (no links left): the next request reopens the table by name,
//! and the request in hand is answered from the old, complete file — no
//! per-request stat of the path. Keys
//! are folded with FOLD_FIX (full Unicode folding when SMTPUTF8 is on) and
//! tried with and without a trailing NUL, learning which the table uses.
//!
//! Read-only: on the proxywrite service these tables are opened by
//! `berkeley_write.rs` instead, through libdb.

use super::file_lock::{LockStyle, TableLock};
use super::mapping::Mapping;
use super::{fold::fold_fixed, Dict, DictError, Entry, OpenError, OpenParams, SeqStep};
use crate::flags;
use proxymapd_bdb::{Cursor, Db, Kind};
use proxymapd_sdk::nul::NulLearning;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// An open hash: or btree: table.
pub(crate) struct BerkeleyDict {
    kind: Kind,
    path: PathBuf,
    file: File,
    lock: TableLock,
    map: RwLock<Arc<Mapping>>,
    nul: NulLearning,
    utf8: bool,
    cursor: Mutex<Option<Cursor>>,
    /// Set when a read finds the file unlinked (replaced by a rename or
    /// removed): the registry then reopens the table by name. Rewrites in
    /// place need no reopen; every read follows them.
    replaced: AtomicBool,
}

impl BerkeleyDict {
    fn refuse_write(&self) -> DictError {
        DictError::Config(format!(
            "{}: {}",
            self.path.display(),
            read_only_message(self.kind)
        ))
    }
}

/// The message for a write to a Berkeley DB table on the read service.
fn read_only_message(kind: Kind) -> String {
    format!(
        "{} tables are written only through the proxywrite service",
        kind.map_type()
    )
}

impl BerkeleyDict {
    fn config(&self, e: impl std::fmt::Display) -> DictError {
        DictError::Config(format!("{}: {e}", self.path.display()))
    }

    /// Run `op` on the database as it is now, under the shared lock; `None`
    /// when `wait` is false and a writer holds the file.
    fn with_db<T>(
        &self,
        wait: bool,
        op: impl FnOnce(&Db<&[u8]>) -> Result<T, DictError>,
    ) -> Option<Result<T, DictError>> {
        let _lock = match self.lock.shared(wait) {
            Ok(Some(guard)) => guard,
            Ok(None) => return None,
            Err(e) => {
                return Some(Err(DictError::Retry(format!(
                    "{}: lock: {e}",
                    self.path.display()
                ))))
            }
        };
        Some(self.mapped().and_then(|map| {
            let answer = Db::open(map.bytes())
                .map_err(|e| self.config(e))
                .and_then(|db| {
                    if db.kind() != self.kind {
                        return Err(self.config(format!(
                            "the file is a {} database, not {}",
                            db.kind().map_type(),
                            self.kind.map_type()
                        )));
                    }
                    op(&db)
                });
            // A page lost under the read (file shrunk without the lock)
            // reads as zeroes: whatever came of it is not an answer.
            if map.poisoned() {
                return Err(DictError::Retry(format!(
                    "{}: the file shrank while being read: it was rewritten without \
                     Postfix's lock (use postmap, not cp)",
                    self.path.display()
                )));
            }
            answer
        }))
    }

    /// The mapping of the file as it is now (caller holds the lock).
    fn mapped(&self) -> Result<Arc<Mapping>, DictError> {
        let meta = self.file.metadata().map_err(|e| self.config(e))?;
        if meta.nlink() == 0 {
            self.replaced.store(true, Ordering::Relaxed);
        }
        let size = meta.len();
        let current = self.map.read().unwrap_or_else(|e| e.into_inner()).clone();
        if current.len() as u64 == size && !current.poisoned() {
            return Ok(current);
        }
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if map.len() as u64 != size || map.poisoned() {
            *map = Arc::new(Mapping::new(&self.file, size).map_err(|e| self.config(e))?);
        }
        Ok(map.clone())
    }

    fn get(
        &self,
        key: &[u8],
        req_flags: u32,
        wait: bool,
    ) -> Option<Result<Option<Vec<u8>>, DictError>> {
        let key = fold_fixed(key, req_flags, self.utf8);
        self.with_db(wait, |db| {
            self.nul
                .lookup(&key, |k| db.get(k).map(|v| v.map(|v| v.into_owned())))
                .map_err(|e| self.config(e))
        })
    }
}

fn strip_nul(v: &[u8]) -> Vec<u8> {
    v.strip_suffix(&[0]).unwrap_or(v).to_vec()
}

impl Dict for BerkeleyDict {
    fn flags(&self) -> u32 {
        flags::FIXED | self.nul.bits()
    }

    fn lookup(&self, key: &[u8], req_flags: u32) -> Result<Option<Vec<u8>>, DictError> {
        self.get(key, req_flags, true)
            .unwrap_or_else(|| Err(DictError::Retry("lock not granted".into())))
    }

    fn try_lookup(&self, key: &[u8], req_flags: u32) -> Option<Result<Option<Vec<u8>>, DictError>> {
        self.get(key, req_flags, false)
    }

    fn sequence(&self, step: SeqStep, _req_flags: u32) -> Result<Option<Entry>, DictError> {
        let mut cursor = self.cursor.lock().unwrap_or_else(|e| e.into_inner());
        let from = match step {
            SeqStep::First => None,
            SeqStep::Next => match *cursor {
                Some(c) => Some(c),
                None => return Ok(None),
            },
        };
        let next = self
            .with_db(true, |db| {
                Ok(db
                    .next(from)
                    .map_err(|e| self.config(e))?
                    .map(|(c, (k, v))| (c, strip_nul(&k), strip_nul(&v))))
            })
            .unwrap_or_else(|| Err(DictError::Retry("lock not granted".into())))?;
        *cursor = next.as_ref().map(|(c, _, _)| *c);
        Ok(next.map(|(_, k, v)| (k, v)))
    }

    fn update(&self, _key: &[u8], _value: &[u8], _flags: u32) -> Result<(), DictError> {
        Err(self.refuse_write())
    }

    fn delete(&self, _key: &[u8], _flags: u32) -> Result<bool, DictError> {
        Err(self.refuse_write())
    }

    fn changed(&self) -> bool {
        self.replaced.load(Ordering::Relaxed)
    }

    fn may_block(&self) -> bool {
        true
    }

    fn is_database_file(&self) -> bool {
        true
    }
}

fn open_kind(req: &OpenParams<'_>, kind: Kind) -> Result<Arc<dyn Dict>, OpenError> {
    if req.writable {
        let kind = match kind {
            Kind::Hash => proxymapd_libdb::Kind::Hash,
            Kind::Btree => proxymapd_libdb::Kind::Btree,
        };
        return super::berkeley_write::open(req, kind);
    }
    let path = PathBuf::from(format!("{}.db", req.name));
    let fail = |msg: String| OpenError::in_file(req.table, &path, None, msg);
    let file =
        File::open(&path).map_err(|e| OpenError::io(req.table, &path, "open database", &e))?;
    let lock = TableLock::with_style(file.as_raw_fd(), LockStyle::Flock);
    let map = {
        let _guard = lock.shared(true).map_err(|e| fail(format!("lock: {e}")))?;
        let size = file.metadata().map_err(|e| fail(e.to_string()))?.len();
        let map = Mapping::new(&file, size).map_err(|e| fail(format!("map database: {e}")))?;
        let db = Db::open(map.bytes()).map_err(|e| fail(e.to_string()))?;
        if db.kind() != kind {
            return Err(fail(format!(
                "the file is a {} database, not {}",
                db.kind().map_type(),
                kind.map_type()
            )));
        }
        map
    };
    Ok(Arc::new(BerkeleyDict {
        kind,
        path,
        lock,
        file,
        map: RwLock::new(Arc::new(map)),
        nul: NulLearning::new(req.flags),
        utf8: req.utf8,
        cursor: Mutex::new(None),
        replaced: AtomicBool::new(false),
    }))
}

/// Open a hash: table.
pub(crate) fn open_hash(req: &OpenParams<'_>) -> Result<Arc<dyn Dict>, OpenError> {
    open_kind(req, Kind::Hash)
}

/// Open a btree: table.
pub(crate) fn open_btree(req: &OpenParams<'_>) -> Result<Arc<dyn Dict>, OpenError> {
    open_kind(req, Kind::Btree)
}
