//! A small safe wrapper over liblmdb 0.9 (the format Postfix's lmdb: tables
//! use): one environment on one file, opened the way Postfix opens it
//! (MDB_NOSUBDIR | MDB_NOLOCK, the unnamed database), with whole-operation
//! transactions. Callers serialise access; Postfix's own file locks are taken
//! by the caller around each operation.

// Why lmdb-rkv-sys (archived upstream) and not another binding: Postfix's
// lmdb: tables are written by Debian's liblmdb0 0.9.24 (data format 1, lock
// format 1, robust process-shared pthread mutexes). lmdb-rkv-sys 0.11.2
// vendors LMDB 0.9.24: lmdb.h is identical to Debian's, mdb.c is the
// LMDB_0.9.24 release plus portability-only edits, it uses the same robust
// mutexes, and its lock file interoperates with liblmdb0 holding the same
// environment open. (Both sides open with MDB_NOLOCK, so the lock format is a
// safeguard rather than a current need.) Compared and rejected:
// - lmdb-master-sys 0.2.6 (heed, maintained): the unreleased mdb.master
//   branch, "0.9.70", MDB_LOCK_VERSION 2; a lock file held by liblmdb0 makes
//   it fail with MDB_VERSION_MISMATCH, and the reverse. Data format 1.
// - lmdb-master3-sys 0.2.6: data format 3, lock format 2.
// - lmdb-sys 0.8.0 and liblmdb-sys 0.2.2: unmaintained, older (0.9.21, 0.9.18).
// - the system liblmdb through our own declarations: the same library as
//   Postfix, but a build would need liblmdb-dev, and a plain `cargo install`
//   would no longer give every map type.
// Revisit when a maintained crate vendors an LMDB 0.9 release (mdb.RE/0.9).

use lmdb_sys as ffi;
use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr;

use super::Entry;

/// Mode of a table file proxywrite creates: its owner's only, as Postfix's
/// proxywrite leaves it (Postfix daemons run with umask 077).
const FILE_MODE: libc::mode_t = 0o600;

/// An LMDB error code with its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LmdbError {
    /// The liblmdb or errno code.
    pub code: i32,
}

impl std::fmt::Display for LmdbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // SAFETY: mdb_strerror returns a pointer to a static NUL-terminated string.
        let text = unsafe { CStr::from_ptr(ffi::mdb_strerror(self.code)) };
        f.write_str(&text.to_string_lossy())
    }
}

impl LmdbError {
    /// The database ran out of map space.
    pub(crate) fn is_map_full(&self) -> bool {
        self.code == ffi::MDB_MAP_FULL
    }
    /// Another process grew the map beyond our mapping.
    pub(crate) fn is_map_resized(&self) -> bool {
        self.code == ffi::MDB_MAP_RESIZED
    }
}

fn check(code: i32) -> Result<(), LmdbError> {
    if code == 0 {
        Ok(())
    } else {
        Err(LmdbError { code })
    }
}

/// One open LMDB file.
pub(crate) struct Env {
    env: *mut ffi::MDB_env,
    dbi: ffi::MDB_dbi,
    map_size: usize,
}

// SAFETY: an MDB_env may be used from any thread; with MDB_NOLOCK (which
// implies no thread-local reader slots) transactions are not tied to threads,
// and the owner serialises all use of one Env.
unsafe impl Send for Env {}
// SAFETY: see above; shared access is serialised by the owner's mutex.
unsafe impl Sync for Env {}

impl Drop for Env {
    fn drop(&mut self) {
        // SAFETY: env was created by mdb_env_create and is closed once.
        unsafe { ffi::mdb_env_close(self.env) };
    }
}

struct Txn(*mut ffi::MDB_txn);

impl Txn {
    fn commit(mut self) -> Result<(), LmdbError> {
        let txn = std::mem::replace(&mut self.0, ptr::null_mut());
        // SAFETY: txn is a live transaction; commit frees it.
        check(unsafe { ffi::mdb_txn_commit(txn) })
    }
}

impl Drop for Txn {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: txn is live and not yet committed.
            unsafe { ffi::mdb_txn_abort(self.0) };
        }
    }
}

fn val(bytes: &[u8]) -> ffi::MDB_val {
    ffi::MDB_val {
        mv_size: bytes.len(),
        mv_data: bytes.as_ptr() as *mut _,
    }
}

fn empty_val() -> ffi::MDB_val {
    ffi::MDB_val {
        mv_size: 0,
        mv_data: ptr::null_mut(),
    }
}

/// Copy the bytes an MDB_val points into (valid only inside its transaction).
///
/// # Safety
/// `v` must describe memory valid for `mv_size` bytes.
unsafe fn copy(v: &ffi::MDB_val) -> Vec<u8> {
    if v.mv_size == 0 {
        Vec::new()
    } else {
        // SAFETY: the caller guarantees v describes mv_size valid bytes.
        unsafe { std::slice::from_raw_parts(v.mv_data as *const u8, v.mv_size).to_vec() }
    }
}

impl Env {
    /// Open `path` (the `.lmdb` file itself). `writable` opens read-write and
    /// creates the file and database when missing.
    pub(crate) fn open(path: &Path, writable: bool, map_size: usize) -> Result<Env, LmdbError> {
        let cpath = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| LmdbError { code: libc::EINVAL })?;
        let mut env = ptr::null_mut();
        // SAFETY: env is an out-pointer for a new handle.
        check(unsafe { ffi::mdb_env_create(&mut env) })?;
        let mut this = Env {
            env,
            dbi: 0,
            map_size,
        };
        let mut flags = ffi::MDB_NOSUBDIR | ffi::MDB_NOLOCK;
        if !writable {
            flags |= ffi::MDB_RDONLY;
        }
        // SAFETY: env is live; path is NUL-terminated.
        unsafe {
            check(ffi::mdb_env_set_mapsize(env, map_size))?;
            check(ffi::mdb_env_open(env, cpath.as_ptr(), flags, FILE_MODE))?;
        }
        let txn = this.begin(!writable)?;
        let mut dbi = 0;
        let dbi_flags = if writable { ffi::MDB_CREATE } else { 0 };
        // SAFETY: txn is live; NULL names the unnamed database.
        check(unsafe { ffi::mdb_dbi_open(txn.0, ptr::null(), dbi_flags, &mut dbi) })?;
        txn.commit()?;
        this.dbi = dbi;
        Ok(this)
    }

    /// The map size the environment was last given.
    pub(crate) fn map_size(&self) -> usize {
        self.map_size
    }

    /// The file descriptor LMDB holds on the file (Postfix locks this file).
    pub(crate) fn fd(&self) -> i32 {
        let mut fd = -1;
        // SAFETY: env is live; fd is an out-pointer.
        unsafe { ffi::mdb_env_get_fd(self.env, &mut fd) };
        fd
    }

    fn begin(&self, read_only: bool) -> Result<Txn, LmdbError> {
        let mut txn = ptr::null_mut();
        let flags = if read_only { ffi::MDB_RDONLY } else { 0 };
        // SAFETY: env is live; txn is an out-pointer.
        let rc = unsafe { ffi::mdb_txn_begin(self.env, ptr::null_mut(), flags, &mut txn) };
        check(rc)?;
        Ok(Txn(txn))
    }

    /// Read the value stored under `key`.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, LmdbError> {
        let txn = self.begin(true)?;
        let mut k = val(key);
        let mut v = empty_val();
        // SAFETY: txn is live; k points at key for the call.
        let rc = unsafe { ffi::mdb_get(txn.0, self.dbi, &mut k, &mut v) };
        if rc == ffi::MDB_NOTFOUND {
            return Ok(None);
        }
        check(rc)?;
        // SAFETY: v points into the map, valid while txn lives.
        Ok(Some(unsafe { copy(&v) }))
    }

    /// Store `value` under `key` (replacing) and commit; grows the map when full.
    pub(crate) fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), LmdbError> {
        loop {
            let result = (|| {
                let txn = self.begin(false)?;
                let (mut k, mut v) = (val(key), val(value));
                // SAFETY: txn is a live write transaction.
                check(unsafe { ffi::mdb_put(txn.0, self.dbi, &mut k, &mut v, 0) })?;
                txn.commit()
            })();
            match result {
                Err(e) if e.is_map_full() && self.map_size < (1 << 40) => self.grow()?,
                other => return other,
            }
        }
    }

    /// Adopt the map size another process grew the file to (after
    /// [`LmdbError::is_map_resized`]); needs exclusive use of the environment.
    pub(crate) fn adopt_map_size(&mut self) -> Result<(), LmdbError> {
        // SAFETY: &mut self: no transaction of ours is active.
        check(unsafe { ffi::mdb_env_set_mapsize(self.env, 0) })
    }

    fn grow(&mut self) -> Result<(), LmdbError> {
        self.map_size *= 2;
        // SAFETY: no transaction is active (callers serialise).
        check(unsafe { ffi::mdb_env_set_mapsize(self.env, self.map_size) })
    }

    /// Remove `key` and commit; `Ok(false)` when it was not there.
    pub(crate) fn del(&mut self, key: &[u8]) -> Result<bool, LmdbError> {
        let txn = self.begin(false)?;
        let mut k = val(key);
        // SAFETY: txn is a live write transaction.
        let rc = unsafe { ffi::mdb_del(txn.0, self.dbi, &mut k, ptr::null_mut()) };
        if rc == ffi::MDB_NOTFOUND {
            return Ok(false);
        }
        check(rc)?;
        txn.commit()?;
        Ok(true)
    }

    /// Flush to disk.
    pub(crate) fn sync(&self) -> Result<(), LmdbError> {
        // SAFETY: env is live.
        check(unsafe { ffi::mdb_env_sync(self.env, 1) })
    }

    /// The first entry (`after == None`) or the first entry whose key sorts
    /// after `after`.
    pub(crate) fn next_after(&self, after: Option<&[u8]>) -> Result<Option<Entry>, LmdbError> {
        let txn = self.begin(true)?;
        let mut cursor = ptr::null_mut();
        // SAFETY: txn is live; cursor is an out-pointer, closed below.
        check(unsafe { ffi::mdb_cursor_open(txn.0, self.dbi, &mut cursor) })?;
        let result = (|| {
            let mut k = empty_val();
            let mut v = empty_val();
            let rc = match after {
                // SAFETY: cursor is live; k and v are out-parameters.
                None => unsafe { ffi::mdb_cursor_get(cursor, &mut k, &mut v, ffi::MDB_FIRST) },
                Some(prev) => {
                    k = val(prev);
                    // SAFETY: cursor is live; k points at prev for the call.
                    let rc =
                        unsafe { ffi::mdb_cursor_get(cursor, &mut k, &mut v, ffi::MDB_SET_RANGE) };
                    // SAFETY: on success k points into the map.
                    if rc == 0 && unsafe { copy(&k) } == prev {
                        // SAFETY: cursor is live and positioned.
                        unsafe { ffi::mdb_cursor_get(cursor, &mut k, &mut v, ffi::MDB_NEXT) }
                    } else {
                        rc
                    }
                }
            };
            if rc == ffi::MDB_NOTFOUND {
                return Ok(None);
            }
            check(rc)?;
            // SAFETY: k and v point into the map while txn lives.
            Ok(Some(unsafe { (copy(&k), copy(&v)) }))
        })();
        // SAFETY: cursor belongs to txn, which is still live.
        unsafe { ffi::mdb_cursor_close(cursor) };
        result
    }
}
