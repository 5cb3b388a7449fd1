//! File identity stamps, for noticing that a table file was rewritten or
//! replaced (mtime, size, inode) so its table can be reopened in place.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What a file looked like when its table was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStamp {
    path: PathBuf,
    identity: Option<(u64, u64, i64, i64, u64)>,
}

impl FileStamp {
    /// Stamp `path` as it is now (a missing file has an empty stamp).
    pub fn take(path: &Path) -> FileStamp {
        FileStamp {
            path: path.to_path_buf(),
            identity: Self::identity(path),
        }
    }

    fn identity(path: &Path) -> Option<(u64, u64, i64, i64, u64)> {
        std::fs::metadata(path)
            .ok()
            .map(|m| (m.dev(), m.ino(), m.mtime(), m.mtime_nsec(), m.size()))
    }

    /// The stamped file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when the file now differs from the stamp (rewritten, replaced,
    /// created or removed).
    pub fn changed(&self) -> bool {
        Self::identity(&self.path) != self.identity
    }

    /// True when the file was replaced by another inode or removed; in-place
    /// rewrites do not count.
    pub fn replaced(&self) -> bool {
        let now = Self::identity(&self.path);
        match (now, self.identity) {
            (Some(a), Some(b)) => (a.0, a.1) != (b.0, b.1),
            (a, b) => a.is_some() != b.is_some(),
        }
    }
}
