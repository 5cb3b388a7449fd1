//! lmdb:/path: Postfix's LMDB tables (`/path.lmdb`), read and written with
//! Postfix's conventions: the unnamed database of a MDB_NOSUBDIR|MDB_NOLOCK
//! file, fcntl(2) whole-file locks around every operation when the request
//! carries LOCK (shared to read, exclusive to write), keys and values with a
//! trailing NUL (learned per table: TRY1NULL/TRY0NULL), FOLD_FIX folding.

use super::lmdb_env::{Env, LmdbError};
use super::{fold::fold_fixed, Dict, DictError, Entry, FileStamp, OpenError, OpenRequest, SeqStep};
use crate::flags;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

/// Postfix's default `lmdb_map_size`.
pub const DEFAULT_MAP_SIZE: usize = 16 * 1024 * 1024;

/// An open lmdb: table.
pub struct LmdbDict {
    path: PathBuf,
    env: Mutex<Env>,
    /// Learned TRY0NULL/TRY1NULL bits.
    nul_flags: AtomicU32,
    /// Last key returned by sequence.
    cursor: Mutex<Option<Vec<u8>>>,
    stamp: FileStamp,
    utf8: bool,
}

/// A held fcntl(2) lock on the table file; released on drop.
struct FileLock(Option<i32>);

impl FileLock {
    fn take(fd: i32, exclusive: bool, wanted: bool) -> Result<FileLock, std::io::Error> {
        if !wanted {
            return Ok(FileLock(None));
        }
        let kind = if exclusive {
            libc::F_WRLCK
        } else {
            libc::F_RDLCK
        };
        set_lock(fd, kind, true)?;
        Ok(FileLock(Some(fd)))
    }

    /// A shared lock if it is free right now; `Ok(None)` when another
    /// process holds the file exclusively.
    fn try_shared(fd: i32, wanted: bool) -> Result<Option<FileLock>, std::io::Error> {
        if !wanted {
            return Ok(Some(FileLock(None)));
        }
        match set_lock(fd, libc::F_RDLCK, false) {
            Ok(()) => Ok(Some(FileLock(Some(fd)))),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES)) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        if let Some(fd) = self.0 {
            let _ = set_lock(fd, libc::F_UNLCK, false);
        }
    }
}

fn set_lock(fd: i32, kind: i32, wait: bool) -> Result<(), std::io::Error> {
    // SAFETY: flock is plain data; zeroed is a valid whole-file lock request.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    loop {
        let cmd = if wait { libc::F_SETLKW } else { libc::F_SETLK };
        // SAFETY: fd is the open table file; fl is valid for the call.
        if unsafe { libc::fcntl(fd, cmd, &fl) } == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

impl LmdbDict {
    fn retry(&self, what: &str, err: impl std::fmt::Display) -> DictError {
        DictError::Retry(format!("{}: {what}: {err}", self.path.display()))
    }

    fn key<'k>(&self, key: &'k [u8], req_flags: u32) -> std::borrow::Cow<'k, [u8]> {
        fold_fixed(key, req_flags, self.utf8)
    }

    /// Run `op` with the environment and Postfix's file lock held.
    fn locked<T>(
        &self,
        exclusive: bool,
        req_flags: u32,
        op: impl FnOnce(&mut Env) -> Result<T, LmdbError>,
    ) -> Result<T, DictError> {
        let mut env = self.env.lock().unwrap_or_else(|e| e.into_inner());
        let _lock = FileLock::take(env.fd(), exclusive, req_flags & flags::LOCK != 0)
            .map_err(|e| self.retry("lock", e))?;
        op(&mut env).map_err(|e| self.retry(if exclusive { "write" } else { "read" }, e))
    }
}

fn with_nul(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.extend_from_slice(key);
    k.push(0);
    k
}

fn strip_nul(mut v: Vec<u8>) -> Vec<u8> {
    if v.last() == Some(&0) {
        v.pop();
    }
    v
}

impl LmdbDict {
    /// Look a (folded) key up with Postfix's trailing-NUL learning.
    fn get(&self, env: &Env, key: &[u8]) -> Result<Option<Vec<u8>>, LmdbError> {
        let nul = self.nul_flags.load(Ordering::Relaxed);
        if nul & flags::TRY1NULL != 0 {
            if let Some(v) = env.get(&with_nul(key))? {
                self.nul_flags
                    .fetch_and(!flags::TRY0NULL, Ordering::Relaxed);
                return Ok(Some(strip_nul(v)));
            }
        }
        if nul & flags::TRY0NULL != 0 {
            if let Some(v) = env.get(key)? {
                self.nul_flags
                    .fetch_and(!flags::TRY1NULL, Ordering::Relaxed);
                return Ok(Some(v));
            }
        }
        Ok(None)
    }
}

impl Dict for LmdbDict {
    fn flags(&self) -> u32 {
        flags::FIXED | flags::MULTI_WRITER | self.nul_flags.load(Ordering::Relaxed)
    }

    fn lookup(&self, key: &[u8], req_flags: u32) -> Result<Option<Vec<u8>>, DictError> {
        let key = self.key(key, req_flags);
        self.locked(false, req_flags, |env| self.get(env, &key))
    }

    fn try_lookup(&self, key: &[u8], req_flags: u32) -> Option<Result<Option<Vec<u8>>, DictError>> {
        let env = match self.env.try_lock() {
            Ok(env) => env,
            Err(std::sync::TryLockError::WouldBlock) => return None,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
        };
        let lock = match FileLock::try_shared(env.fd(), req_flags & flags::LOCK != 0) {
            Ok(Some(lock)) => lock,
            Ok(None) => return None,
            Err(e) => return Some(Err(self.retry("lock", e))),
        };
        let key = self.key(key, req_flags);
        let result = self.get(&env, &key).map_err(|e| self.retry("read", e));
        drop(lock);
        Some(result)
    }

    fn update(&self, key: &[u8], value: &[u8], req_flags: u32) -> Result<(), DictError> {
        let key = self.key(key, req_flags);
        // With nothing learned yet, write Postfix's default: with a NUL.
        let nul = self.nul_flags.load(Ordering::Relaxed);
        if nul & flags::TRY1NULL != 0 && nul & flags::TRY0NULL != 0 {
            self.nul_flags
                .fetch_and(!flags::TRY0NULL, Ordering::Relaxed);
        }
        let nul = self.nul_flags.load(Ordering::Relaxed) & flags::TRY1NULL != 0;
        let sync = req_flags & flags::SYNC_UPDATE != 0;
        self.locked(true, req_flags, |env| {
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
        let nul = self.nul_flags.load(Ordering::Relaxed);
        let sync = req_flags & flags::SYNC_UPDATE != 0;
        self.locked(true, req_flags, |env| {
            let mut found = false;
            if nul & flags::TRY1NULL != 0 && env.del(&with_nul(&key))? {
                self.nul_flags
                    .fetch_and(!flags::TRY0NULL, Ordering::Relaxed);
                found = true;
            }
            if !found && nul & flags::TRY0NULL != 0 && env.del(&key)? {
                self.nul_flags
                    .fetch_and(!flags::TRY1NULL, Ordering::Relaxed);
                found = true;
            }
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
        let entry = self.locked(false, req_flags, |env| env.next_after(after.as_deref()))?;
        *cursor = entry.as_ref().map(|(k, _)| k.clone());
        Ok(entry.map(|(k, v)| (strip_nul(k), strip_nul(v))))
    }

    fn changed(&self) -> bool {
        self.stamp.replaced()
    }

    fn may_block(&self) -> bool {
        true
    }
}

/// The file an lmdb: table name refers to.
pub fn file_of(name: &str) -> PathBuf {
    PathBuf::from(format!("{name}.lmdb"))
}

/// Open an lmdb: table.
pub fn open(req: &OpenRequest<'_>) -> Result<Arc<dyn Dict>, OpenError> {
    let path = file_of(req.name);
    open_file(req, &path)
}

fn open_file(req: &OpenRequest<'_>, path: &Path) -> Result<Arc<dyn Dict>, OpenError> {
    if !req.writable && !path.exists() {
        return Err(OpenError::in_file(
            req.table,
            path,
            None,
            "open database: No such file or directory",
        ));
    }
    let map_size = std::fs::metadata(path)
        .map(|m| (m.len() as usize).saturating_mul(2))
        .unwrap_or(0)
        .max(DEFAULT_MAP_SIZE);
    let env = Env::open(path, req.writable, map_size)
        .map_err(|e| OpenError::in_file(req.table, path, None, format!("open database: {e}")))?;
    let mut nul = req.flags & (flags::TRY0NULL | flags::TRY1NULL);
    if nul == 0 {
        nul = flags::TRY0NULL | flags::TRY1NULL;
    }
    Ok(Arc::new(LmdbDict {
        path: path.to_path_buf(),
        env: Mutex::new(env),
        nul_flags: AtomicU32::new(nul),
        cursor: Mutex::new(None),
        stamp: FileStamp::take(path),
        utf8: req.utf8,
    }))
}
