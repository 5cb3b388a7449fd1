//! Berkeley DB files written through the system's libdb: [`Db`] is one open
//! hash or btree database (no environment, like Postfix's dict_db), with
//! get, put, delete, sync and a cursor that survives updates and deletes
//! between its steps (verify(8)'s cache clean-up deletes the entry it just
//! read). Not thread-safe by itself: the caller serialises use, under
//! Postfix's flock on [`Db::fd`]. A handle opened with
//! [`Db::open_journaled`] keeps a rollback journal of its writes between
//! syncs ([`journal`]), so a writer's death never leaves a torn file behind.

#![cfg_attr(proxymapd_no_libdb, allow(dead_code, unused_variables, unused_imports))]

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};

pub mod journal;

/// Which access method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// DB_HASH (`hash:`).
    Hash,
    /// DB_BTREE (`btree:`).
    Btree,
}

/// A libdb failure: its status code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// libdb's status (an errno value or a DB_* error).
    pub code: i32,
    /// libdb's text for it.
    pub message: String,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// A key and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

#[repr(C)]
struct RawDb {
    _private: [u8; 0],
}

#[repr(C)]
struct RawCursor {
    _private: [u8; 0],
}

#[cfg(not(proxymapd_no_libdb))]
extern "C" {
    fn pm_notfound() -> c_int;
    fn pm_keyexist() -> c_int;
    fn pm_strerror(err: c_int) -> *const c_char;
    fn pm_last_message() -> *const c_char;
    fn pm_free(p: *mut c_void);
    fn pm_open(
        path: *const c_char,
        btree: c_int,
        create: c_int,
        mode: c_int,
        out: *mut *mut RawDb,
    ) -> c_int;
    fn pm_close(db: *mut RawDb) -> c_int;
    fn pm_close_nosync(db: *mut RawDb) -> c_int;
    fn pm_sync(db: *mut RawDb) -> c_int;
    fn pm_get(
        db: *mut RawDb,
        k: *const c_void,
        kl: usize,
        v: *mut *mut c_void,
        vl: *mut usize,
    ) -> c_int;
    fn pm_put(
        db: *mut RawDb,
        k: *const c_void,
        kl: usize,
        v: *const c_void,
        vl: usize,
        nooverwrite: c_int,
    ) -> c_int;
    fn pm_del(db: *mut RawDb, k: *const c_void, kl: usize) -> c_int;
    fn pm_cursor(db: *mut RawDb, out: *mut *mut RawCursor) -> c_int;
    fn pm_cursor_close(c: *mut RawCursor) -> c_int;
    fn pm_cursor_get(
        c: *mut RawCursor,
        first: c_int,
        k: *mut *mut c_void,
        kl: *mut usize,
        v: *mut *mut c_void,
        vl: *mut usize,
    ) -> c_int;
    fn pm_fd(db: *mut RawDb, fd: *mut c_int) -> c_int;
}

#[cfg(not(proxymapd_no_libdb))]
fn error(code: c_int) -> Error {
    // SAFETY: db_strerror returns a static or thread-local C string.
    let mut message = unsafe { CStr::from_ptr(pm_strerror(code)) }
        .to_string_lossy()
        .into_owned();
    // SAFETY: the shim's thread-local buffer, NUL-terminated.
    let detail = unsafe { CStr::from_ptr(pm_last_message()) }.to_string_lossy();
    if !detail.is_empty() {
        message = format!("{message} ({detail})");
    }
    Error { code, message }
}

#[cfg(not(proxymapd_no_libdb))]
fn check(code: c_int) -> Result<(), Error> {
    if code == 0 {
        Ok(())
    } else {
        Err(error(code))
    }
}

/// Copy a buffer libdb allocated and free it.
#[cfg(not(proxymapd_no_libdb))]
fn take(p: *mut c_void, len: usize) -> Vec<u8> {
    if p.is_null() {
        return Vec::new();
    }
    // SAFETY: libdb allocated `len` bytes at `p` with malloc (DB_DBT_MALLOC).
    let bytes = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) }.to_vec();
    // SAFETY: as above; freed once, here.
    unsafe { pm_free(p) };
    bytes
}

/// An open database.
pub struct Db {
    db: *mut RawDb,
    cursor: *mut RawCursor,
    /// The file and its journal, for journaled handles.
    journal: Option<(PathBuf, journal::Attachment)>,
}

// SAFETY: the handle is used by one thread at a time (the caller's lock);
// libdb handles without DB_THREAD may move between threads.
unsafe impl Send for Db {}

impl Db {
    /// Open `path` as a `kind` database, creating it (with `mode`) when
    /// `create` and missing.
    pub fn open(path: &Path, kind: Kind, create: bool, mode: u32) -> Result<Db, Error> {
        #[cfg(proxymapd_no_libdb)]
        {
            Err(Error {
                code: libc_enosys(),
                message: "this proxymapd was built without libdb (Berkeley DB), so it cannot \
                          write hash: or btree: tables"
                    .into(),
            })
        }
        #[cfg(not(proxymapd_no_libdb))]
        {
            use std::os::unix::ffi::OsStrExt;
            let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|_| Error {
                code: 22,
                message: "path contains a NUL byte".into(),
            })?;
            let mut db = std::ptr::null_mut();
            // SAFETY: valid C string and out pointer.
            check(unsafe {
                pm_open(
                    c_path.as_ptr(),
                    c_int::from(kind == Kind::Btree),
                    c_int::from(create),
                    mode as c_int,
                    &mut db,
                )
            })?;
            Ok(Db {
                db,
                cursor: std::ptr::null_mut(),
                journal: None,
            })
        }
    }

    /// Open the existing `path` for writing with a rollback journal at
    /// [`journal::journal_path`]: every sync that succeeds is a commit; a
    /// handle dropped after a failed write, or a process that dies between
    /// syncs, leaves the file to be put back by [`journal::recover`]
    /// (called by the next writer, under the file's exclusive lock, before
    /// it opens the file).
    pub fn open_journaled(path: &Path, kind: Kind) -> Result<Db, Error> {
        let mut db = Db::open(path, kind, false, 0)?;
        let fd = db.fd()?;
        let attachment =
            journal::Attachment::attach(fd, journal::journal_path(path)).map_err(|e| Error {
                code: e.raw_os_error().unwrap_or(5),
                message: format!("journal: {e}"),
            })?;
        db.journal = Some((path.to_path_buf(), attachment));
        Ok(db)
    }

    /// The descriptor libdb uses for the file (Postfix flocks it).
    pub fn fd(&self) -> Result<i32, Error> {
        #[cfg(proxymapd_no_libdb)]
        unreachable!("no database can be open");
        #[cfg(not(proxymapd_no_libdb))]
        {
            let mut fd = -1;
            // SAFETY: open handle, valid out pointer.
            check(unsafe { pm_fd(self.db, &mut fd) })?;
            Ok(fd)
        }
    }

    /// The value stored under `key`.
    pub fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        #[cfg(proxymapd_no_libdb)]
        unreachable!("no database can be open");
        #[cfg(not(proxymapd_no_libdb))]
        {
            let (mut v, mut vl) = (std::ptr::null_mut(), 0usize);
            // SAFETY: open handle; key slice valid for its length.
            let rc = unsafe { pm_get(self.db, key.as_ptr().cast(), key.len(), &mut v, &mut vl) };
            // SAFETY: plain function.
            if rc == unsafe { pm_notfound() } {
                return Ok(None);
            }
            check(rc)?;
            Ok(Some(take(v, vl)))
        }
    }

    /// Store `value` under `key`; with `replace` false an existing key is
    /// left alone and `Ok(false)` returned.
    pub fn put(&mut self, key: &[u8], value: &[u8], replace: bool) -> Result<bool, Error> {
        #[cfg(proxymapd_no_libdb)]
        unreachable!("no database can be open");
        #[cfg(not(proxymapd_no_libdb))]
        {
            // SAFETY: open handle; slices valid for their lengths.
            let rc = unsafe {
                pm_put(
                    self.db,
                    key.as_ptr().cast(),
                    key.len(),
                    value.as_ptr().cast(),
                    value.len(),
                    c_int::from(!replace),
                )
            };
            // SAFETY: plain function.
            if rc == unsafe { pm_keyexist() } {
                return Ok(false);
            }
            check(rc)?;
            Ok(true)
        }
    }

    /// Remove `key`; whether it was there.
    pub fn delete(&mut self, key: &[u8]) -> Result<bool, Error> {
        #[cfg(proxymapd_no_libdb)]
        unreachable!("no database can be open");
        #[cfg(not(proxymapd_no_libdb))]
        {
            // SAFETY: open handle; key valid for its length.
            let rc = unsafe { pm_del(self.db, key.as_ptr().cast(), key.len()) };
            // SAFETY: plain function.
            if rc == unsafe { pm_notfound() } {
                return Ok(false);
            }
            check(rc)?;
            Ok(true)
        }
    }

    /// Write every change to the file.
    pub fn sync(&mut self) -> Result<(), Error> {
        #[cfg(proxymapd_no_libdb)]
        unreachable!("no database can be open");
        #[cfg(not(proxymapd_no_libdb))]
        {
            // SAFETY: open handle.
            check(unsafe { pm_sync(self.db) })?;
            if let Some((_, attachment)) = &self.journal {
                attachment.commit().map_err(|e| Error {
                    code: e.raw_os_error().unwrap_or(5),
                    message: format!("journal commit: {e}"),
                })?;
            }
            Ok(())
        }
    }

    /// Why this handle's writes are not journaled (the journal's directory
    /// is not writable), once: the caller logs it. Writes then go ahead as
    /// libdb alone makes them, without crash protection.
    pub fn unprotected(&self) -> Option<String> {
        self.journal.as_ref().and_then(|(_, a)| a.unprotected())
    }

    /// Close the handle without writing its changed pages, and put the file
    /// back as it was at the last sync (after a failed update: libdb's
    /// cache may hold half of it). What the journal did is returned.
    pub fn discard(mut self) -> std::io::Result<journal::Recovery> {
        self.close_cursor();
        // Still attached while closing: libdb may write cached pages as it
        // closes even so, and those writes must be journaled too.
        #[cfg(not(proxymapd_no_libdb))]
        // SAFETY: open handle, closed once (the pointer is cleared).
        unsafe {
            pm_close_nosync(self.db)
        };
        self.db = std::ptr::null_mut();
        match self.journal.take() {
            Some((path, attachment)) => {
                let recovered = attachment.roll_back(&path);
                attachment.detach();
                recovered
            }
            None => Ok(journal::Recovery::Clean),
        }
    }

    /// The first entry (`first`) or the one after the cursor's; the cursor
    /// stays open between calls and follows updates and deletes made
    /// through this handle.
    pub fn step(&mut self, first: bool) -> Result<Option<Entry>, Error> {
        #[cfg(proxymapd_no_libdb)]
        unreachable!("no database can be open");
        #[cfg(not(proxymapd_no_libdb))]
        {
            if self.cursor.is_null() {
                if !first {
                    return Ok(None);
                }
                // SAFETY: open handle, valid out pointer.
                check(unsafe { pm_cursor(self.db, &mut self.cursor) })?;
            }
            let (mut k, mut kl, mut v, mut vl) =
                (std::ptr::null_mut(), 0usize, std::ptr::null_mut(), 0usize);
            // SAFETY: open cursor, valid out pointers.
            let rc = unsafe {
                pm_cursor_get(
                    self.cursor,
                    c_int::from(first),
                    &mut k,
                    &mut kl,
                    &mut v,
                    &mut vl,
                )
            };
            // SAFETY: plain function.
            if rc == unsafe { pm_notfound() } {
                self.close_cursor();
                return Ok(None);
            }
            if let Err(e) = check(rc) {
                self.close_cursor();
                return Err(e);
            }
            Ok(Some((take(k, kl), take(v, vl))))
        }
    }

    fn close_cursor(&mut self) {
        #[cfg(not(proxymapd_no_libdb))]
        if !self.cursor.is_null() {
            // SAFETY: open cursor, closed once.
            unsafe { pm_cursor_close(self.cursor) };
            self.cursor = std::ptr::null_mut();
        }
    }
}

#[cfg(proxymapd_no_libdb)]
fn libc_enosys() -> i32 {
    38
}

impl Drop for Db {
    fn drop(&mut self) {
        self.close_cursor();
        #[cfg(not(proxymapd_no_libdb))]
        if !self.db.is_null() {
            if let Some((path, attachment)) = self.journal.take() {
                // Closing syncs: a clean close is a commit; after a failed
                // one the file goes back to the last sync.
                // SAFETY: open handle, closed once.
                let closed = unsafe { pm_close(self.db) } == 0;
                let _ = if closed {
                    attachment.commit()
                } else {
                    attachment.roll_back(&path).map(|_| ())
                };
                attachment.detach();
            } else {
                // SAFETY: open handle, closed once.
                unsafe { pm_close(self.db) };
            }
        }
    }
}

#[cfg(all(test, not(proxymapd_no_libdb)))]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_a_reopen_and_the_cursor_survives_deletes() {
        let dir = std::env::temp_dir().join(format!("pm-libdb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for kind in [Kind::Hash, Kind::Btree] {
            let path = dir.join(format!("{kind:?}.db"));
            let _ = std::fs::remove_file(&path);
            let mut db = Db::open(&path, kind, true, 0o600).unwrap();
            for i in 0..500u32 {
                assert!(db
                    .put(format!("k{i}").as_bytes(), &i.to_le_bytes(), true)
                    .unwrap());
            }
            assert!(!db.put(b"k1", b"x", false).unwrap(), "kept without replace");
            db.sync().unwrap();
            drop(db);
            let mut db = Db::open(&path, kind, false, 0).unwrap();
            assert_eq!(db.get(b"k7").unwrap(), Some(7u32.to_le_bytes().to_vec()));
            // Walk and delete every entry as it is read, as verify does.
            let mut seen = 0;
            let mut entry = db.step(true).unwrap();
            while let Some((k, _)) = entry {
                assert!(db.delete(&k).unwrap());
                seen += 1;
                entry = db.step(false).unwrap();
            }
            assert_eq!(seen, 500);
            assert_eq!(db.get(b"k7").unwrap(), None);
            assert!(db.fd().unwrap() >= 0);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// db5.3_verify's verdict on `path`, where the tool is installed.
    fn verifies(path: &Path) -> Option<bool> {
        std::process::Command::new("db5.3_verify")
            .arg("-q")
            .arg(path)
            .status()
            .ok()
            .map(|s| s.success())
    }

    #[test]
    fn a_sync_that_fails_half_way_is_rolled_back_to_the_last_commit() {
        let dir = std::env::temp_dir().join(format!("pm-libdb-torn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut rolled = 0;
        for kind in [Kind::Hash, Kind::Btree] {
            let path = dir.join(format!("{kind:?}.db"));
            let _ = std::fs::remove_file(&path);
            drop(Db::open(&path, kind, true, 0o600).unwrap());
            let mut model = std::collections::BTreeMap::new();
            let mut db = Db::open_journaled(&path, kind).unwrap();
            for round in 0..60u32 {
                // A committed batch, with values that overflow pages and
                // deletes, so splits, overflow chains and the free list
                // all change.
                for i in 0..30u32 {
                    let key = format!("r{round}k{i}").into_bytes();
                    let value = if i % 7 == 0 {
                        vec![b'v'; 1500 + (i as usize) * 10]
                    } else {
                        format!("value {round} {i}").into_bytes()
                    };
                    db.put(&key, &value, true).unwrap();
                    model.insert(key, value);
                }
                if round > 0 {
                    for i in (0..30u32).step_by(3) {
                        let key = format!("r{}k{i}", round - 1).into_bytes();
                        db.delete(&key).unwrap();
                        model.remove(&key);
                    }
                }
                db.sync().unwrap();
                // A batch whose sync fails after a few page writes.
                for i in 0..30u32 {
                    db.put(format!("lost{round}k{i}").as_bytes(), &[b'x'; 900], true)
                        .unwrap();
                }
                journal::fault::arm(db.fd().unwrap(), i64::from(round % 5));
                let failed = db.sync().is_err();
                journal::fault::disarm();
                assert!(failed, "round {round}: the sync should have failed");
                match db.discard().unwrap() {
                    journal::Recovery::RolledBack { .. } => rolled += 1,
                    journal::Recovery::Clean => {}
                    other => panic!("round {round}: {other:?}"),
                }
                assert_ne!(verifies(&path), Some(false), "round {round}: {kind:?} torn");
                db = Db::open_journaled(&path, kind).unwrap();
                let mut seen = std::collections::BTreeMap::new();
                let mut entry = db.step(true).unwrap();
                while let Some((k, v)) = entry {
                    seen.insert(k, v);
                    entry = db.step(false).unwrap();
                }
                let extra: Vec<_> = seen
                    .keys()
                    .filter(|k| !model.contains_key(*k))
                    .map(|k| String::from_utf8_lossy(k).into_owned())
                    .take(5)
                    .collect();
                let missing: Vec<_> = model
                    .keys()
                    .filter(|k| !seen.contains_key(*k))
                    .map(|k| String::from_utf8_lossy(k).into_owned())
                    .take(5)
                    .collect();
                assert!(seen == model, "round {round}: {kind:?} differs from the model: extra {extra:?} missing {missing:?} ({} vs {})", seen.len(), model.len());
            }
            drop(db);
            assert!(!journal::pending(&journal::journal_path(&path)));
        }
        assert!(rolled > 60, "only {rolled} rollbacks");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
