//! lmdb:/path: Postfix's LMDB tables (`/path.lmdb`), read and written with
//! Postfix's conventions: the unnamed database of a MDB_NOSUBDIR|MDB_NOLOCK
//! file, fcntl(2) whole-file locks around every operation when the request
//! carries LOCK (shared to read, exclusive to write), keys and values with a
//! trailing NUL (learned per table: TRY1NULL/TRY0NULL), FOLD_FIX folding.
//! Every instance of one file shares its environment and lock
//! (`LmdbFile`), so there is one writer per file in the process.

use super::lmdb_env::{Env, LmdbError};
use super::lmdb_file::LmdbFile;
use super::nul_write::{self, strip_nul, with_nul};
use super::{fold::fold_fixed, Dict, DictError, Entry, FileStamp, OpenError, OpenParams, SeqStep};
use crate::flags;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

/// Postfix's default `lmdb_map_size`.
pub(crate) const DEFAULT_MAP_SIZE: usize = 16 * 1024 * 1024;

/// An open lmdb: table.
pub(crate) struct LmdbDict {
    path: PathBuf,
    /// The file's environment and lock, shared with every other instance of
    /// the file: readers share it, writers have it to themselves.
    file: Arc<LmdbFile>,
    /// Learned TRY0NULL/TRY1NULL bits.
    nul_flags: AtomicU32,
    /// Last key returned by sequence.
    cursor: Mutex<Option<Vec<u8>>>,
    stamp: FileStamp,
    utf8: bool,
}

impl LmdbDict {
    fn retry(&self, what: &str, err: impl std::fmt::Display) -> DictError {
        DictError::Retry(format!("{}: {what}: {err}", self.path.display()))
    }

    fn key<'k>(&self, key: &'k [u8], req_flags: u32) -> std::borrow::Cow<'k, [u8]> {
        fold_fixed(key, req_flags, self.utf8)
    }

    /// Run a read with the environment shared and Postfix's shared file
    /// lock held (when the request asks for locking).
    fn reading<T>(
        &self,
        req_flags: u32,
        op: impl Fn(&Env) -> Result<T, LmdbError>,
    ) -> Result<T, DictError> {
        let run = |op: &dyn Fn(&Env) -> Result<T, LmdbError>| {
            let state = self.file.read();
            let _lock = if req_flags & flags::LOCK != 0 {
                state.lock.shared(true).map_err(|e| self.retry("lock", e))?
            } else {
                None
            };
            Ok(op(&state.env))
        };
        match run(&op)? {
            Err(e) if e.is_map_resized() => {
                // Another process grew the file: adopt its size, then retry.
                self.file
                    .write()
                    .env
                    .adopt_map_size()
                    .map_err(|e| self.retry("resize", e))?;
                run(&op)?.map_err(|e| self.retry("read", e))
            }
            other => other.map_err(|e| self.retry("read", e)),
        }
    }

    /// Run a write with the environment to ourselves and Postfix's exclusive
    /// file lock held (when the request asks for locking).
    fn writing<T>(
        &self,
        req_flags: u32,
        op: impl FnOnce(&mut Env) -> Result<T, LmdbError>,
    ) -> Result<T, DictError> {
        let mut state = self.file.write();
        let state = &mut *state;
        let _lock = if req_flags & flags::LOCK != 0 {
            Some(state.lock.exclusive().map_err(|e| self.retry("lock", e))?)
        } else {
            None
        };
        op(&mut state.env).map_err(|e| self.retry("write", e))
    }
}

impl LmdbDict {
    /// Look a (folded) key up with Postfix's trailing-NUL learning.
    fn get(&self, env: &Env, key: &[u8]) -> Result<Option<Vec<u8>>, LmdbError> {
        nul_write::get(&self.nul_flags, key, |k| env.get(k))
    }
}

impl Dict for LmdbDict {
    fn flags(&self) -> u32 {
        flags::FIXED | flags::MULTI_WRITER | self.nul_flags.load(Ordering::Relaxed)
    }

    fn lookup(&self, key: &[u8], req_flags: u32) -> Result<Option<Vec<u8>>, DictError> {
        let key = self.key(key, req_flags);
        self.reading(req_flags, |env| self.get(env, &key))
    }

    fn try_lookup(&self, key: &[u8], req_flags: u32) -> Option<Result<Option<Vec<u8>>, DictError>> {
        let state = self.file.try_read()?;
        let _lock = if req_flags & flags::LOCK != 0 {
            match state.lock.shared(false) {
                Ok(Some(lock)) => Some(lock),
                Ok(None) => return None,
                Err(e) => return Some(Err(self.retry("lock", e))),
            }
        } else {
            None
        };
        let key = self.key(key, req_flags);
        match self.get(&state.env, &key) {
            // The slow path adopts the new map size.
            Err(e) if e.is_map_resized() => None,
            other => Some(other.map_err(|e| self.retry("read", e))),
        }
    }

    fn update(&self, key: &[u8], value: &[u8], req_flags: u32) -> Result<(), DictError> {
        let key = self.key(key, req_flags);
        let nul = nul_write::update_with_nul(&self.nul_flags);
        let sync = req_flags & flags::SYNC_UPDATE != 0;
        self.writing(req_flags, |env| {
            if nul {
                env.put(&with_nul(&key), &with_nul(value))?;
            } else {
                env.put(&key, value)?;
            }
            if sync {
                env.sync()?;
            }
            Ok(())
        })
    }

    fn delete(&self, key: &[u8], req_flags: u32) -> Result<bool, DictError> {
        let key = self.key(key, req_flags);
        let sync = req_flags & flags::SYNC_UPDATE != 0;
        self.writing(req_flags, |env| {
            let found = nul_write::delete(&self.nul_flags, &key, |k| env.del(k))?;
            if found && sync {
                env.sync()?;
            }
            Ok(found)
        })
    }

    fn sequence(&self, step: SeqStep, req_flags: u32) -> Result<Option<Entry>, DictError> {
        let mut cursor = self.cursor.lock().unwrap_or_else(|e| e.into_inner());
        let after = match step {
            SeqStep::First => None,
            SeqStep::Next => match cursor.as_ref() {
                Some(k) => Some(k.clone()),
                None => return Ok(None),
            },
        };
        let entry = self.reading(req_flags, |env| env.next_after(after.as_deref()))?;
        *cursor = entry.as_ref().map(|(k, _)| k.clone());
        Ok(entry.map(|(k, v)| (strip_nul(k), strip_nul(v))))
    }

    fn changed(&self) -> bool {
        self.stamp.replaced()
    }

    fn may_block(&self) -> bool {
        true
    }

    fn is_database_file(&self) -> bool {
        true
    }
}

/// The file an lmdb: table name refers to.
pub(crate) fn file_of(name: &str) -> PathBuf {
    PathBuf::from(format!("{name}.lmdb"))
}

/// Open an lmdb: table.
pub(crate) fn open(req: &OpenParams<'_>) -> Result<Arc<dyn Dict>, OpenError> {
    let path = file_of(req.name);
    open_file(req, &path)
}

fn open_file(req: &OpenParams<'_>, path: &Path) -> Result<Arc<dyn Dict>, OpenError> {
    if !req.writable && !path.exists() {
        let mut err = OpenError::in_file(
            req.table,
            path,
            None,
            "open database: No such file or directory",
        );
        err.missing = true;
        return Err(err);
    }
    let map_size = std::fs::metadata(path)
        .map(|m| (m.len() as usize).saturating_mul(2))
        .unwrap_or(0)
        .max(DEFAULT_MAP_SIZE);
    let file = LmdbFile::open(path, req.writable, map_size).map_err(|e| {
        let err = OpenError::in_file(req.table, path, None, format!("open database: {e}"));
        if super::is_temporary_errno(Some(e.code)) {
            err.temporary()
        } else {
            err
        }
    })?;
    let mut nul = req.flags & (flags::TRY0NULL | flags::TRY1NULL);
    if nul == 0 {
        nul = flags::TRY0NULL | flags::TRY1NULL;
    }
    Ok(Arc::new(LmdbDict {
        path: path.to_path_buf(),
        file,
        nul_flags: AtomicU32::new(nul),
        cursor: Mutex::new(None),
        stamp: FileStamp::take(path),
        utf8: req.utf8,
    }))
}
