//! File identity stamps, for noticing that a table file was rewritten or
//! replaced (mtime, size, inode) so its table can be reopened in place, and
//! [`load_stable`], which loads a table only from whole files: files that
//! did not change while they were read and had been left alone for a
//! moment before, so a file still being written in place is never loaded.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A file modified within this time may still be being written: it is
/// loaded only once it held still for [`SETTLE`]. Generous, because file
/// times come from a coarse clock and truncation does not always advance
/// them.
pub(crate) const RECENT: Duration = Duration::from_secs(2);

/// How long a recently modified file must hold still before it is loaded:
/// a writer rewriting it in place is assumed to be still at work until then.
pub(crate) const SETTLE: Duration = Duration::from_millis(100);

/// Longest time [`load_stable`] keeps waiting for files to hold still.
pub(crate) const STABLE_WAIT: Duration = Duration::from_secs(3);

/// What a file looked like when its table was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileStamp {
    path: PathBuf,
    identity: Option<(u64, u64, i64, i64, u64)>,
}

impl FileStamp {
    /// Stamp `path` as it is now (a missing file has an empty stamp).
    pub(crate) fn take(path: &Path) -> FileStamp {
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

    /// True when the file now differs from the stamp (rewritten, replaced,
    /// created or removed).
    pub(crate) fn changed(&self) -> bool {
        Self::identity(&self.path) != self.identity
    }

    /// True when the file was modified less than [`RECENT`] ago (a writer
    /// may still be at work).
    fn recent(&self, now: SystemTime) -> bool {
        let Some((_, _, secs, nanos, _)) = self.identity else {
            return false;
        };
        let Some(mtime) = u64::try_from(secs)
            .ok()
            .map(|s| UNIX_EPOCH + Duration::new(s, nanos as u32))
        else {
            return false;
        };
        match now.duration_since(mtime) {
            Ok(age) => age < RECENT,
            // A modification time slightly ahead of our clock is a write
            // happening now; far ahead is a skewed clock, not a writer.
            Err(ahead) => ahead.duration() < Duration::from_secs(1),
        }
    }

    /// True when the file was replaced by another inode or removed; in-place
    /// rewrites do not count.
    pub(crate) fn replaced(&self) -> bool {
        let now = Self::identity(&self.path);
        match (now, self.identity) {
            (Some(a), Some(b)) => (a.0, a.1) != (b.0, b.1),
            (a, b) => a.is_some() != b.is_some(),
        }
    }
}

/// Why [`load_stable`] gave up.
#[derive(Debug)]
pub(crate) enum Unstable<E> {
    /// The load itself failed, on files that held still while it ran.
    Load(E),
    /// The files kept changing for [`STABLE_WAIT`]; names the last one seen
    /// changing.
    Changing(PathBuf),
}

/// Run `load` until it has read files that held still: files modified
/// within [`RECENT`] must keep the same stamp for [`SETTLE`] first, and
/// every file must carry the same stamp after the load as before it. `load`
/// receives the stamps taken before it ran (the table keeps them to notice
/// later changes). Gives up after [`STABLE_WAIT`].
pub(crate) fn load_stable<T, E>(
    paths: &[PathBuf],
    mut load: impl FnMut(Vec<FileStamp>) -> Result<T, E>,
) -> Result<T, Unstable<E>> {
    let started = std::time::Instant::now();
    let stamps = || -> Vec<FileStamp> { paths.iter().map(|p| FileStamp::take(p)).collect() };
    let first_changed = |before: &[FileStamp]| before.iter().find(|s| s.changed()).cloned();
    loop {
        let before = stamps();
        let now = SystemTime::now();
        let mut moving = None;
        if before.iter().any(|s| s.recent(now)) {
            std::thread::sleep(SETTLE);
            moving = first_changed(&before);
        }
        if moving.is_none() {
            let result = load(before.clone());
            match first_changed(&before) {
                None => return result.map_err(Unstable::Load),
                changed => moving = changed,
            }
        }
        if let Some(stamp) = moving {
            if started.elapsed() >= STABLE_WAIT {
                return Err(Unstable::Changing(stamp.path));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn waits_for_a_file_being_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("table");
        std::fs::write(&path, "a 1\n").unwrap();
        let writer_path = path.clone();
        // A writer appending in pieces, 20 ms apart, for 300 ms.
        let writer = std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&writer_path)
                .unwrap();
            for i in 0..15 {
                writeln!(f, "k{i} v").unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
            writeln!(f, "last v").unwrap();
        });
        std::thread::sleep(Duration::from_millis(30));
        let paths = vec![path.clone()];
        let text = load_stable(&paths, |_| std::fs::read_to_string(&path)).unwrap();
        writer.join().unwrap();
        assert!(
            text.ends_with("last v\n"),
            "loaded a partial file: {text:?}"
        );
    }

    #[test]
    fn gives_up_on_a_file_that_never_holds_still() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("table");
        std::fs::write(&path, "x").unwrap();
        let paths = vec![path.clone()];
        let mut runs = 0;
        let started = std::time::Instant::now();
        let result: Result<(), Unstable<()>> = load_stable(&paths, |_| {
            runs += 1;
            // Every load is overlapped by a write.
            std::fs::write(&path, format!("x{runs}")).unwrap();
            Ok(())
        });
        assert!(matches!(result, Err(Unstable::Changing(p)) if p == path));
        assert!(started.elapsed() >= STABLE_WAIT);
    }

    #[test]
    fn a_missing_file_is_stable() {
        let dir = tempfile::tempdir().unwrap();
        let paths = vec![dir.path().join("absent")];
        let result: Result<u32, Unstable<()>> = load_stable(&paths, |_| Ok(7));
        assert_eq!(result.unwrap(), 7);
    }
}
