//! hash:/path and btree:/path on the proxywrite service: Postfix's Berkeley
//! DB tables written as Postfix writes them, through the system's libdb
//! (the `proxymapd-libdb` crate), so the files are libdb's own and stock
//! Postfix, `postmap -q` and `postmap -s` read them unchanged. The read
//! service keeps the pure-Rust reader (`berkeley.rs`); only writers need
//! libdb, and only where Postfix itself uses Berkeley DB.
//!
//! Every operation holds Postfix's flock(2) on the `.db` file (shared to
//! read, exclusive to write), and updates and deletes are synced before the
//! lock is released (the handler asks for SYNC_UPDATE), so a reader never
//! sees a half-written change. libdb keeps pages in its own cache; when the
//! file changed under another writer since this handle's last operation
//! (size or modification time differ), the handle is reopened before use.
//! Writes are journaled (`proxymapd_libdb::journal`): the old bytes of each
//! page go to `FILE.db-journal` before libdb overwrites it, and each sync
//! clears the journal. A writer killed half-way through a sync leaves the
//! journal pending; the next open here, or the next write after the file
//! changed under another writer, puts the file back to its last synced
//! state first, under the exclusive lock. A new file is made
//! under a temporary name and linked into place whole.
//! Keys are folded with FOLD_FIX and written with a trailing NUL unless the
//! table already holds them without, as Postfix's dict_db does; the cursor
//! of `sequence` lives across requests, so verify(8)'s clean-up (read an
//! entry, delete it, read the next) walks the whole table.

use super::file_lock::{LockStyle, TableLock};
use super::nul_write::{self, strip_nul, with_nul};
use super::{fold::fold_fixed, Dict, DictError, Entry, OpenError, OpenParams, SeqStep};
use crate::flags;
use proxymapd_libdb::journal::{self, Recovery};
use proxymapd_libdb::{Db, Kind};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

/// The mode of files created here, before the umask (Postfix's daemons run
/// with umask 077; the result is what stock proxywrite creates: 0600).
const FILE_MODE: u32 = 0o600;

/// A writable hash: or btree: table.
pub(crate) struct BerkeleyWriter {
    kind: Kind,
    path: PathBuf,
    /// `FILE.db-journal`.
    journal: PathBuf,
    /// Our own descriptor of the file, for Postfix's flock.
    lock_file: File,
    lock: TableLock,
    state: Mutex<Handle>,
    nul_flags: AtomicU32,
    utf8: bool,
    replaced: AtomicBool,
}

/// The libdb handle (none after a failed write, until the next operation
/// opens one) and the file's stamp after its last operation.
struct Handle {
    db: Option<Db>,
    seen: Option<(u64, i64, i64)>,
}

fn stamp(meta: &std::fs::Metadata) -> (u64, i64, i64) {
    (meta.size(), meta.mtime(), meta.mtime_nsec())
}

impl BerkeleyWriter {
    fn retry(&self, what: &str, e: impl std::fmt::Display) -> DictError {
        DictError::Retry(format!("{}: {what}: {e}", self.path.display()))
    }

    /// Run `op` on the handle with the file locked (`exclusive` to write),
    /// reopening the handle first when another process changed the file.
    fn with_db<T>(
        &self,
        exclusive: bool,
        op: impl FnOnce(&mut Db) -> Result<T, proxymapd_libdb::Error>,
    ) -> Result<T, DictError> {
        self.with_db_if(exclusive, true, op)
            .expect("a waiting call always runs")
    }

    /// [`Self::with_db`]; without `wait`, `None` instead of waiting for the
    /// handle or a shared lock held elsewhere.
    fn with_db_if<T>(
        &self,
        exclusive: bool,
        wait: bool,
        op: impl FnOnce(&mut Db) -> Result<T, proxymapd_libdb::Error>,
    ) -> Option<Result<T, DictError>> {
        let mut state = if wait {
            self.state.lock().unwrap_or_else(|e| e.into_inner())
        } else {
            self.state.try_lock().ok()?
        };
        let _shared;
        let _exclusive;
        if exclusive {
            _exclusive = match self.lock.exclusive() {
                Ok(guard) => guard,
                Err(e) => return Some(Err(self.retry("lock", e))),
            };
        } else {
            _shared = match self.lock.shared(wait) {
                Ok(Some(guard)) => guard,
                Ok(None) => return None,
                Err(e) => return Some(Err(self.retry("lock", e))),
            };
        }
        Some(self.locked(&mut state, exclusive, op))
    }

    /// The body of [`Self::with_db_if`], under the handle and the lock.
    fn locked<T>(
        &self,
        state: &mut Handle,
        exclusive: bool,
        op: impl FnOnce(&mut Db) -> Result<T, proxymapd_libdb::Error>,
    ) -> Result<T, DictError> {
        let meta = self
            .lock_file
            .metadata()
            .map_err(|e| self.retry("stat", e))?;
        if meta.nlink() == 0 {
            // Replaced by a rename: the registry reopens by name.
            self.replaced.store(true, Ordering::Relaxed);
        }
        let changed = state.seen.is_some_and(|seen| seen != stamp(&meta));
        if exclusive && changed && journal::pending(&self.journal) {
            // A writer in another process died between a change and its
            // sync (it changed the file, so the stamp moved): put the file
            // back before anyone uses it.
            state.db = None;
            recover(&self.path, &self.journal).map_err(|e| self.retry("journal", e))?;
        }
        if changed && state.db.is_some() {
            tracing::debug!(
                "{}: changed by another writer; reopening",
                self.path.display()
            );
            state.db = None;
        }
        let db = match state.db.as_mut() {
            Some(db) => db,
            None => state.db.insert(
                Db::open_journaled(&self.path, self.kind).map_err(|e| self.retry("reopen", e))?,
            ),
        };
        let out = op(db).map_err(|e| self.retry("database", e));
        if let Some(why) = db.unprotected() {
            tracing::warn!(
                "{}: writes are not protected against a crash ({why}); let proxymapd's \
                 user write to {}",
                self.path.display(),
                self.path
                    .parent()
                    .unwrap_or_else(|| Path::new("/"))
                    .display()
            );
        }
        if out.is_err() && exclusive {
            // libdb's cache may hold half of the failed change: drop the
            // handle and put the file back to its last sync.
            if let Some(db) = state.db.take() {
                match db.discard() {
                    Ok(done) => log_recovery(&self.path, &done),
                    Err(e) => tracing::warn!("{}: journal: {e}", self.path.display()),
                }
            }
        }
        // A read leaves the file as it was.
        state.seen = if exclusive {
            self.lock_file.metadata().ok().map(|m| stamp(&m))
        } else {
            Some(stamp(&meta))
        };
        out
    }

    fn key<'k>(&self, key: &'k [u8], req_flags: u32) -> std::borrow::Cow<'k, [u8]> {
        fold_fixed(key, req_flags, self.utf8)
    }
}

impl Dict for BerkeleyWriter {
    fn flags(&self) -> u32 {
        flags::FIXED | self.nul_flags.load(Ordering::Relaxed)
    }

    fn lookup(&self, key: &[u8], req_flags: u32) -> Result<Option<Vec<u8>>, DictError> {
        let key = self.key(key, req_flags);
        self.with_db(false, |db| {
            nul_write::get(&self.nul_flags, &key, |k| db.get(k))
        })
    }

    fn try_lookup(&self, key: &[u8], req_flags: u32) -> Option<Result<Option<Vec<u8>>, DictError>> {
        let key = self.key(key, req_flags);
        self.with_db_if(false, false, |db| {
            nul_write::get(&self.nul_flags, &key, |k| db.get(k))
        })
    }

    fn update(&self, key: &[u8], value: &[u8], req_flags: u32) -> Result<(), DictError> {
        let key = self.key(key, req_flags);
        let nul = nul_write::update_with_nul(&self.nul_flags);
        let replace = req_flags & flags::DUP_REPLACE != 0;
        let sync = req_flags & flags::SYNC_UPDATE != 0;
        let stored = self.with_db(true, |db| {
            let stored = if nul {
                db.put(&with_nul(&key), &with_nul(value), replace)?
            } else {
                db.put(&key, value, replace)?
            };
            if sync {
                db.sync()?;
            }
            Ok(stored)
        })?;
        if !stored {
            // Postfix's DUP_IGNORE/DUP_WARN: keep the old entry.
            tracing::warn!(
                "{}: duplicate entry: \"{}\"",
                self.path.display(),
                String::from_utf8_lossy(&key)
            );
        }
        Ok(())
    }

    fn delete(&self, key: &[u8], req_flags: u32) -> Result<bool, DictError> {
        let key = self.key(key, req_flags);
        let sync = req_flags & flags::SYNC_UPDATE != 0;
        self.with_db(true, |db| {
            let found = nul_write::delete(&self.nul_flags, &key, |k| db.delete(k))?;
            if found && sync {
                db.sync()?;
            }
            Ok(found)
        })
    }

    fn sequence(&self, step: SeqStep, _req_flags: u32) -> Result<Option<Entry>, DictError> {
        let first = step == SeqStep::First;
        // Moving the cursor off an entry deleted under it (verify's
        // clean-up) removes that entry from its page: a write, so the file
        // is held exclusively and synced, and no reader or db_verify ever
        // sees an entry only marked deleted.
        let entry = self.with_db(true, |db| {
            let entry = db.step(first)?;
            db.sync()?;
            Ok(entry)
        })?;
        Ok(entry.map(|(k, v)| (strip_nul(k), strip_nul(v))))
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

/// Log what the journal did, when it did something.
fn log_recovery(path: &Path, done: &Recovery) {
    match done {
        Recovery::Clean | Recovery::Empty => {}
        Recovery::RolledBack { regions, length } => tracing::warn!(
            "{}: put back to its last complete update after an interrupted write \
             ({regions} regions restored, {length} bytes)",
            path.display()
        ),
        Recovery::Stale(why) => tracing::warn!(
            "{}: an interrupted write's journal no longer matches the file ({why}); \
             kept as {}.stale, file left as it is",
            path.display(),
            journal::journal_path(path).display()
        ),
    }
}

/// Roll back an interrupted write, if its journal is there.
fn recover(path: &Path, journal: &Path) -> std::io::Result<()> {
    let done = journal::recover(path, journal)?;
    log_recovery(path, &done);
    Ok(())
}

/// Make an empty `kind` database at `path` unless one is there: built
/// under a temporary name and linked into place, so that nobody ever
/// opens a half-made file.
fn create_whole(path: &Path, kind: Kind) -> Result<(), String> {
    if path.exists() {
        return Ok(());
    }
    let mut temp = path.as_os_str().to_owned();
    temp.push(format!(".{}.new", std::process::id()));
    let temp = PathBuf::from(temp);
    let _ = std::fs::remove_file(&temp);
    let made = Db::open(&temp, kind, true, FILE_MODE)
        .map(drop)
        .map_err(|e| e.to_string())
        .and_then(|()| match std::fs::hard_link(&temp, path) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e.to_string()),
            _ => Ok(()),
        });
    let _ = std::fs::remove_file(&temp);
    made
}

/// Open `NAME.db` for writing as a `kind` table, creating it when missing.
pub(crate) fn open(req: &OpenParams<'_>, kind: Kind) -> Result<Arc<dyn Dict>, OpenError> {
    let path = PathBuf::from(format!("{}.db", req.name));
    let fail = |e: String| {
        OpenError::in_file(
            req.table,
            &path,
            None,
            format!("open database {}: {e}", path.display()),
        )
    };
    create_whole(&path, kind).map_err(fail)?;
    let lock_file =
        File::open(&path).map_err(|e| OpenError::io(req.table, &path, "open database", &e))?;
    let lock = TableLock::with_style(lock_file.as_raw_fd(), LockStyle::Flock);
    let journal = journal::journal_path(&path);
    let db = {
        let _exclusive = lock.exclusive().map_err(|e| fail(format!("lock: {e}")))?;
        recover(&path, &journal).map_err(|e| fail(format!("journal: {e}")))?;
        Db::open_journaled(&path, kind).map_err(|e| fail(e.to_string()))?
    };
    let seen = lock_file.metadata().ok().map(|m| stamp(&m));
    let mut nul = req.flags & (flags::TRY0NULL | flags::TRY1NULL);
    if nul == 0 {
        nul = flags::TRY0NULL | flags::TRY1NULL;
    }
    Ok(Arc::new(BerkeleyWriter {
        kind,
        path,
        journal,
        lock_file,
        lock,
        state: Mutex::new(Handle { db: Some(db), seen }),
        nul_flags: AtomicU32::new(nul),
        utf8: req.utf8,
        replaced: AtomicBool::new(false),
    }))
}
