//! SQLite files through the system's libsqlite3, as Postfix's dict_sqlite
//! uses it: one statement prepared from the text (the first; the rest is
//! ignored), stepped row by row, each value read as `sqlite3_column_text`
//! renders it (so numbers print exactly as Postfix prints them), keys
//! quoted as `%q` quotes them (each `'` doubled). Unlike Postfix 3.7, which
//! opens read-write and creates a missing file, files are opened read-only
//! (Postfix 3.10's behaviour). A pool per file keeps a few connections,
//! each used by one thread at a time.

use super::{Piece, Rows, SqlError};
use std::collections::HashMap;
use std::ffi::{c_char, c_int, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};

#[repr(C)]
struct RawDb {
    _private: [u8; 0],
}

#[repr(C)]
struct RawStmt {
    _private: [u8; 0],
}

const SQLITE_OK: c_int = 0;
const SQLITE_ROW: c_int = 100;
const SQLITE_DONE: c_int = 101;
const SQLITE_NULL: c_int = 5;
const SQLITE_OPEN_READONLY: c_int = 0x0000_0001;
const SQLITE_OPEN_NOMUTEX: c_int = 0x0000_8000;

#[link(name = "sqlite3")]
extern "C" {
    fn sqlite3_open_v2(
        filename: *const c_char,
        db: *mut *mut RawDb,
        flags: c_int,
        vfs: *const c_char,
    ) -> c_int;
    fn sqlite3_close(db: *mut RawDb) -> c_int;
    fn sqlite3_errmsg(db: *mut RawDb) -> *const c_char;
    fn sqlite3_prepare_v2(
        db: *mut RawDb,
        sql: *const c_char,
        bytes: c_int,
        stmt: *mut *mut RawStmt,
        tail: *mut *const c_char,
    ) -> c_int;
    fn sqlite3_step(stmt: *mut RawStmt) -> c_int;
    fn sqlite3_column_count(stmt: *mut RawStmt) -> c_int;
    fn sqlite3_column_type(stmt: *mut RawStmt, column: c_int) -> c_int;
    fn sqlite3_column_text(stmt: *mut RawStmt, column: c_int) -> *const u8;
    fn sqlite3_column_bytes(stmt: *mut RawStmt, column: c_int) -> c_int;
    fn sqlite3_finalize(stmt: *mut RawStmt) -> c_int;
}

/// One open connection.
struct Connection {
    db: *mut RawDb,
}

// SAFETY: opened with SQLITE_OPEN_NOMUTEX and used by one thread at a time
// (the pool hands a connection to one caller); SQLite connections may move
// between threads.
unsafe impl Send for Connection {}

impl Connection {
    fn open(path: &Path) -> Result<Connection, String> {
        use std::os::unix::ffi::OsStrExt;
        let c_path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| format!("{}: path contains a NUL byte", path.display()))?;
        let mut db = std::ptr::null_mut();
        // SAFETY: valid C string and out pointer; no VFS name.
        let rc = unsafe {
            sqlite3_open_v2(
                c_path.as_ptr(),
                &mut db,
                SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                std::ptr::null(),
            )
        };
        let conn = Connection { db };
        if rc != SQLITE_OK {
            return Err(format!(
                "{}: Can't open database: {}",
                path.display(),
                conn.error()
            ));
        }
        Ok(conn)
    }

    fn error(&self) -> String {
        if self.db.is_null() {
            return "out of memory".into();
        }
        // SAFETY: open handle; the message is a NUL-terminated string owned
        // by SQLite, copied at once.
        unsafe { CStr::from_ptr(sqlite3_errmsg(self.db)) }
            .to_string_lossy()
            .into_owned()
    }

    fn query(&mut self, sql: &[u8]) -> Result<Rows, SqlError> {
        let mut stmt = std::ptr::null_mut();
        let len = c_int::try_from(sql.len())
            .map_err(|_| SqlError::Unavailable("statement too long".into()))?;
        // SAFETY: open handle; `sql` valid for `len` bytes; out pointers
        // valid. Only the first statement is prepared (the tail is ignored,
        // as Postfix ignores it).
        let rc = unsafe {
            sqlite3_prepare_v2(
                self.db,
                sql.as_ptr().cast(),
                len,
                &mut stmt,
                std::ptr::null_mut(),
            )
        };
        if rc != SQLITE_OK {
            return Err(SqlError::Unavailable(format!(
                "SQL prepare failed: {}",
                self.error()
            )));
        }
        let mut rows = Rows::default();
        if stmt.is_null() {
            // Nothing but white space or comments.
            return Ok(rows);
        }
        // SAFETY: prepared statement.
        rows.columns = unsafe { sqlite3_column_count(stmt) }.max(0) as u32;
        let result = loop {
            // SAFETY: prepared statement.
            match unsafe { sqlite3_step(stmt) } {
                SQLITE_ROW => {
                    for column in 0..rows.columns as c_int {
                        rows.cells.push(column_text(stmt, column));
                    }
                }
                SQLITE_DONE => break Ok(rows),
                _ => break Err(SqlError::Unavailable(format!("sql step: {}", self.error()))),
            }
        };
        // SAFETY: prepared statement, finalized once.
        unsafe { sqlite3_finalize(stmt) };
        result
    }
}

/// A column of the current row as SQLite renders it as text.
fn column_text(stmt: *mut RawStmt, column: c_int) -> Option<Vec<u8>> {
    // SAFETY: a statement positioned on a row; the column is in range; the
    // text stays valid until the next step, and is copied now.
    unsafe {
        if sqlite3_column_type(stmt, column) == SQLITE_NULL {
            return None;
        }
        let text = sqlite3_column_text(stmt, column);
        let len = sqlite3_column_bytes(stmt, column).max(0) as usize;
        if text.is_null() {
            return Some(Vec::new());
        }
        Some(std::slice::from_raw_parts(text, len).to_vec())
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if !self.db.is_null() {
            // SAFETY: open handle, closed once; statements are finalized
            // after each query.
            unsafe { sqlite3_close(self.db) };
        }
    }
}

/// `sqlite3_mprintf("%q")`: every `'` doubled.
fn quote(value: &[u8], out: &mut Vec<u8>) {
    for &b in value {
        if b == b'\'' {
            out.push(b'\'');
        }
        out.push(b);
    }
}

/// Connections kept idle per file.
const IDLE_PER_FILE: usize = 4;

/// The connections to one file.
pub(crate) struct SqlitePool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl super::Database for SqlitePool {
    fn query(&self, pieces: &[Piece]) -> Result<Rows, SqlError> {
        let sql = Piece::render(pieces, quote);
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut conn = match idle {
            Some(conn) => conn,
            None => Connection::open(&self.path).map_err(SqlError::Unavailable)?,
        };
        let result = conn.query(&sql);
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < IDLE_PER_FILE {
            idle.push(conn);
        }
        result
    }
}

/// The pool of `path`, shared by every table that names it; the file is
/// opened once now, so a table whose file cannot be opened fails to open.
pub(crate) fn pool(path: &Path) -> Result<Arc<SqlitePool>, String> {
    static POOLS: OnceLock<Mutex<HashMap<PathBuf, Weak<SqlitePool>>>> = OnceLock::new();
    let pools = POOLS.get_or_init(|| Mutex::new(HashMap::new()));
    super::shared_pool(pools, path.to_path_buf(), || {
        Ok(SqlitePool {
            path: path.to_path_buf(),
            idle: Mutex::new(vec![Connection::open(path)?]),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::super::Database;
    use super::*;

    #[test]
    fn rows_nulls_quoting_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let made = std::process::Command::new("sqlite3")
            .arg(&path)
            .arg(
                "create table r(k text, v text, n real); \
                 insert into r values('o''neil', 'one', 1.5), ('o''neil', NULL, 1e20), ('x', '', 42);",
            )
            .status();
        if !made.is_ok_and(|s| s.success()) {
            eprintln!("sqlite3 (the command) is missing; skipped");
            return;
        }
        let db = pool(&path).unwrap();
        let rows = db
            .query(&[
                Piece::Text(b"SELECT v, n FROM r WHERE k='".to_vec()),
                Piece::Escaped(b"o'neil".to_vec()),
                Piece::Text(b"'".to_vec()),
            ])
            .unwrap();
        assert_eq!(rows.columns, 2);
        assert_eq!(
            rows.cells,
            vec![
                Some(b"one".to_vec()),
                Some(b"1.5".to_vec()),
                None,
                Some(b"1.0e+20".to_vec())
            ]
        );
        // Only the first statement runs.
        let rows = db
            .query(&[Piece::Text(b"SELECT 'first'; SELECT 'second'".to_vec())])
            .unwrap();
        assert_eq!(rows.cells, vec![Some(b"first".to_vec())]);
        let err = db
            .query(&[Piece::Text(b"SELECT nope FROM r".to_vec())])
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("SQL prepare failed: no such column"),
            "{err}"
        );
        // Read-only: a write is refused.
        assert!(db.query(&[Piece::Text(b"DELETE FROM r".to_vec())]).is_err());
        // A missing file is an error at open, not a new file.
        let missing = dir.path().join("missing.db");
        assert!(pool(&missing).is_err());
        assert!(!missing.exists());
    }
}
