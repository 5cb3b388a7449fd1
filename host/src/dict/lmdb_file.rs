//! One lmdb file as this process holds it: a single LMDB environment and a
//! single Postfix file lock per file (device + inode), shared by every table
//! instance that names the file, whatever its instance flags and on either
//! service. Environments are opened with MDB_NOLOCK, so LMDB itself does not
//! coordinate transactions: the `LmdbFile`'s read-write lock does. Reads
//! share it, writes (and map resizes) hold it alone, so there is one writer
//! per file in the process and no read overlaps a commit. fcntl(2) locks
//! belong to the process, which is why two environments of one file would
//! neither exclude each other nor survive each other's close.

use super::file_lock::TableLock;
use super::lmdb_env::{Env, LmdbError};
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};

/// A file's identity: device and inode.
type FileId = (u64, u64);

/// The environment and lock of one file; replaced whole when a read-only
/// environment is reopened for writing.
pub(crate) struct FileState {
    /// Postfix's fcntl lock on the environment's descriptor. Declared before
    /// `env` so it is dropped first; it does not own the descriptor.
    pub(crate) lock: TableLock,
    /// The LMDB environment.
    pub(crate) env: Env,
    writable: bool,
}

/// One lmdb file shared by all its table instances in this process.
pub(crate) struct LmdbFile {
    path: PathBuf,
    id: FileId,
    state: RwLock<FileState>,
}

/// Every lmdb file open in this process, by identity. Entries die with their
/// last table instance.
static OPEN_FILES: Mutex<Option<HashMap<FileId, Weak<LmdbFile>>>> = Mutex::new(None);

fn file_id(fd: i32) -> Result<FileId, LmdbError> {
    // SAFETY: stat is plain data, filled in by fstat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fd is the environment's open descriptor; st is valid.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return Err(LmdbError {
            code: std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO),
        });
    }
    Ok((st.st_dev, st.st_ino))
}

fn new_state(path: &Path, writable: bool, map_size: usize) -> Result<FileState, LmdbError> {
    let env = Env::open(path, writable, map_size)?;
    Ok(FileState {
        lock: TableLock::new(env.fd()),
        env,
        writable,
    })
}

impl LmdbFile {
    /// The shared file at `path`, opening it (read-write and created when
    /// missing if `writable`) when no instance of this process has it yet,
    /// and reopening a read-only environment for writing when `writable`.
    pub(crate) fn open(
        path: &Path,
        writable: bool,
        map_size: usize,
    ) -> Result<Arc<LmdbFile>, LmdbError> {
        // Opens are rare: one lock over the whole catalogue keeps two first
        // openers of one file from making two environments.
        let mut files = OPEN_FILES.lock().unwrap_or_else(|e| e.into_inner());
        let files = files.get_or_insert_with(HashMap::new);
        files.retain(|_, file| file.strong_count() > 0);
        if let Ok(meta) = std::fs::metadata(path) {
            if let Some(file) = files.get(&(meta.dev(), meta.ino())).and_then(Weak::upgrade) {
                if writable {
                    file.make_writable(map_size)?;
                }
                return Ok(file);
            }
        }
        let state = new_state(path, writable, map_size)?;
        let id = file_id(state.env.fd())?;
        if let Some(file) = files.get(&id).and_then(Weak::upgrade) {
            // The path was renamed onto a file we hold between the stat and
            // the open. Closing our descriptor would drop this process's
            // fcntl locks on the file, so close it only while no operation
            // of the shared environment holds one.
            let guard = file.write();
            drop(state);
            drop(guard);
            if writable {
                file.make_writable(map_size)?;
            }
            return Ok(file);
        }
        let file = Arc::new(LmdbFile {
            path: path.to_path_buf(),
            id,
            state: RwLock::new(state),
        });
        files.insert(id, Arc::downgrade(&file));
        Ok(file)
    }

    /// Reopen a read-only environment read-write, while no operation runs.
    fn make_writable(&self, map_size: usize) -> Result<(), LmdbError> {
        let mut state = self.write();
        if state.writable {
            return Ok(());
        }
        let map_size = map_size.max(state.env.map_size());
        // The old environment is closed (with its descriptor) before the new
        // one takes its locks: no operation holds the write guard's file.
        let replacement = new_state(&self.path, true, map_size)?;
        if file_id(replacement.env.fd())? != self.id {
            return Err(LmdbError { code: libc::ESTALE });
        }
        *state = replacement;
        Ok(())
    }

    /// Share the environment for reading.
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, FileState> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Share the environment for reading if no write is in progress.
    pub(crate) fn try_read(&self) -> Option<RwLockReadGuard<'_, FileState>> {
        match self.state.try_read() {
            Ok(guard) => Some(guard),
            Err(std::sync::TryLockError::WouldBlock) => None,
            Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
        }
    }

    /// Have the environment alone, for a write or a map resize.
    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, FileState> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }
}
