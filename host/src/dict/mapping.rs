//! Read-only memory mappings of table files, so native readers look keys up
//! in the page cache without copying pages. A mapping is shared (MAP_SHARED):
//! a file rewritten in place shows its new bytes; a file that changes size
//! needs a new mapping, which the reader makes under the table's lock, when
//! no cooperating writer can be changing the file. A writer that ignores the
//! lock and shrinks the file under a reader poisons the mapping instead of
//! killing the process ([`super::sigbus`]).

use super::sigbus;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// A read-only mapping of a whole file (as long as it was when mapped).
pub(crate) struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
    protected: sigbus::Protected,
}

// SAFETY: the mapping is read-only and owned; sharing the pointer across
// threads only allows concurrent reads.
unsafe impl Send for Mapping {}
// SAFETY: as above; no interior mutation happens through `Mapping`.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Map `len` bytes of `file` (its current size). An empty file cannot be
    /// mapped and is an error. The mapping is registered with [`sigbus`];
    /// a shrunk file poisons it rather than killing the process once
    /// [`sigbus::install`] has run (the server and `check` call it).
    pub(crate) fn new(file: &File, len: u64) -> io::Result<Mapping> {
        let len = usize::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "file too large to map"))?;
        if len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the file is empty",
            ));
        }
        // SAFETY: a fresh read-only shared mapping of an open file; the
        // kernel picks the address; failure is checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping {
            ptr,
            len,
            protected: sigbus::protect(ptr as usize, len),
        })
    }

    /// The mapped length.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// True when a page was lost because the file shrank while mapped
    /// (rewritten without the lock): what was read from it is not to be
    /// trusted and the file must be mapped again.
    pub(crate) fn poisoned(&self) -> bool {
        self.protected.poisoned()
    }

    /// The mapped bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: ptr..ptr+len is mapped readable for the life of self.
        unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // Unregister first, so the range is not ours once unmapped.
        drop(std::mem::replace(
            &mut self.protected,
            sigbus::Protected::none(),
        ));
        // SAFETY: ptr/len come from a successful mmap and are unmapped once.
        unsafe {
            libc::munmap(self.ptr, self.len);
        }
    }
}
