//! A rollback journal under libdb's page writes, so that a writer killed in
//! the middle of a sync leaves a file that can be put back to its last
//! complete state. libdb without an environment (Postfix's way) writes the
//! changed pages of an update one by one when the handle is synced; a kill
//! between two of those writes leaves a file whose pages disagree (a meta
//! page that counts a page never written, a split half done).
//!
//! libdb lets a program replace its `write` and `ftruncate` calls
//! (`db_env_set_func_*`, process-wide). The replacements here pass every
//! descriptor through untouched except those of handles with a journal
//! attached. For those, before the first change of each region of the file
//! since the last commit, the region's old bytes go to `FILE-journal`
//! followed by a hash of the bytes about to be written; only then does the
//! write happen. The handle's owner commits after each completed sync by
//! clearing the journal's header (one small write: the journal file stays,
//! so a commit costs no file creation or removal). A journal with a valid
//! header when a writer opens the file is therefore the trace of a writer
//! that died between a change and its commit: [`recover`] writes the old
//! bytes back, cuts the file to its old length and clears the header. Each
//! epoch has a random number of its own in its header and in every record's
//! checksum, so records of earlier epochs further down the file never count.
//!
//! The guarantee is against the death of the process (kill -9, an OOM kill,
//! an abort): the kernel keeps every write a process made, in order. The
//! journal is not flushed to disk before the data writes, so a power loss
//! gets what libdb alone gives (the file is fsynced at each commit).
//!
//! Before rolling back, [`recover`] checks that each journalled region holds
//! either its old bytes or bytes the dead writer wrote there (by hash), and
//! that the file is still the one the journal was made for (device and
//! inode). If another program wrote the file since, the journal is set
//! aside as `FILE-journal.stale` and the file left as it is.

use std::collections::HashMap;
use std::ffi::c_int;
use std::fs::File;
use std::io::{self, Read};
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

const MAGIC: &[u8; 8] = b"PMJRNL02";
/// Magic, epoch number, old length, device, inode, checksum.
const HEADER_LEN: usize = 8 + 8 * 4 + 8;
const TAG_OLD: u8 = 1;
const TAG_WRITTEN: u8 = 2;
const TAG_CUT: u8 = 3;

/// What [`recover`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// No journal: the last writer finished.
    Clean,
    /// A journal with a header and no change recorded: the writer died
    /// before changing the file. Cleared.
    Empty,
    /// The file was put back: `regions` regions rewritten, length restored
    /// to `length`.
    RolledBack {
        /// How many regions got their old bytes back.
        regions: usize,
        /// The file's length afterwards.
        length: u64,
    },
    /// The file changed since the journal was written (another program
    /// wrote it, or it was replaced); the journal was renamed to
    /// `FILE-journal.stale` and the file left alone. The text says why.
    Stale(String),
}

/// The journal's path for a database file: `FILE-journal`.
pub fn journal_path(db_path: &Path) -> PathBuf {
    let mut name = db_path.as_os_str().to_owned();
    name.push("-journal");
    PathBuf::from(name)
}

fn checksum(parts: &[&[u8]]) -> [u8; 8] {
    let mut h = blake3::Hasher::new();
    for p in parts {
        h.update(p);
    }
    let mut out = [0u8; 8];
    out.copy_from_slice(&h.finalize().as_bytes()[..8]);
    out
}

/// A number for a new epoch, different from every earlier one.
fn epoch_number() -> u64 {
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let count = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut h = blake3::Hasher::new();
    h.update(&now.to_le_bytes());
    h.update(&std::process::id().to_le_bytes());
    h.update(&count.to_le_bytes());
    u64::from_le_bytes(h.finalize().as_bytes()[..8].try_into().expect("8 bytes"))
}

/// One open journal: the changes since the last commit.
struct Epoch {
    /// This epoch's number (in the header and every record's checksum).
    number: u64,
    /// Where the next record goes.
    end: u64,
    /// The data file's length when the epoch began.
    old_length: u64,
    /// Regions of `[0, old_length)` whose old bytes are saved, as sorted,
    /// disjoint half-open ranges.
    saved: Vec<(u64, u64)>,
}

impl Epoch {
    fn begin(journal: &File, data: &File) -> io::Result<Epoch> {
        let meta = data.metadata()?;
        let number = epoch_number();
        let mut header = Vec::with_capacity(HEADER_LEN);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&number.to_le_bytes());
        header.extend_from_slice(&meta.size().to_le_bytes());
        header.extend_from_slice(&meta.dev().to_le_bytes());
        header.extend_from_slice(&meta.ino().to_le_bytes());
        let sum = checksum(&[&header]);
        header.extend_from_slice(&sum);
        journal.write_all_at(&header, 0)?;
        Ok(Epoch {
            number,
            end: HEADER_LEN as u64,
            old_length: meta.size(),
            saved: Vec::new(),
        })
    }

    /// One record's bytes.
    fn record(&self, tag: u8, offset: u64, length: u64, payload: &[u8]) -> Vec<u8> {
        let mut head = [0u8; 17];
        head[0] = tag;
        head[1..9].copy_from_slice(&offset.to_le_bytes());
        head[9..17].copy_from_slice(&length.to_le_bytes());
        let sum = checksum(&[&self.number.to_le_bytes(), &head, payload]);
        let mut rec = Vec::with_capacity(head.len() + payload.len() + sum.len());
        rec.extend_from_slice(&head);
        rec.extend_from_slice(payload);
        rec.extend_from_slice(&sum);
        rec
    }

    /// Append records (one write).
    fn append(&mut self, journal: &File, records: &[u8]) -> io::Result<()> {
        journal.write_all_at(records, self.end)?;
        self.end += records.len() as u64;
        Ok(())
    }

    /// Records of the old bytes of `[start, end)` that are not saved yet,
    /// appended to `out`.
    fn save(&mut self, data: &File, start: u64, end: u64, out: &mut Vec<u8>) -> io::Result<()> {
        let end = end.min(self.old_length);
        let mut cursor = start;
        let mut gaps = Vec::new();
        for &(s, e) in &self.saved {
            if e <= cursor || s >= end {
                continue;
            }
            if s > cursor {
                gaps.push((cursor, s));
            }
            cursor = cursor.max(e);
        }
        if cursor < end {
            gaps.push((cursor, end));
        }
        for (s, e) in gaps {
            let mut old = vec![0u8; (e - s) as usize];
            data.read_exact_at(&mut old, s)?;
            out.extend_from_slice(&self.record(TAG_OLD, s, e - s, &old));
            self.saved.push((s, e));
        }
        self.saved.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(self.saved.len());
        for &(s, e) in &self.saved {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        self.saved = merged;
        Ok(())
    }
}

/// A file with a journal, by device and inode: libdb may close and reopen
/// its descriptor (it does when a sync fails), and every descriptor of the
/// file is journaled. Handles of one file take turns under its flock, so
/// one epoch at a time.
struct Attached {
    users: usize,
    path: PathBuf,
    /// The journal file, opened at the first change and kept.
    journal: Option<File>,
    epoch: Option<Epoch>,
    /// Why the journal cannot be created (its directory is not writable):
    /// writes then go ahead unprotected, as libdb alone would make them.
    unprotected: Option<String>,
    /// Whether `unprotected` was reported.
    reported: bool,
}

type FileKey = (u64, u64);

impl Attached {
    fn before_write(&mut self, data: &File, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let Some((journal, epoch)) = self.epoch(data)? else {
            return Ok(());
        };
        let mut records = Vec::new();
        let end = offset + bytes.len() as u64;
        if offset < epoch.old_length {
            epoch.save(data, offset, end, &mut records)?;
        }
        records.extend_from_slice(&epoch.record(
            TAG_WRITTEN,
            offset,
            bytes.len() as u64,
            blake3::hash(bytes).as_bytes(),
        ));
        epoch.append(journal, &records)
    }

    fn before_cut(&mut self, data: &File, length: u64) -> io::Result<()> {
        let Some((journal, epoch)) = self.epoch(data)? else {
            return Ok(());
        };
        let mut records = Vec::new();
        if length < epoch.old_length {
            epoch.save(data, length, epoch.old_length, &mut records)?;
        }
        records.extend_from_slice(&epoch.record(TAG_CUT, length, 0, &[]));
        epoch.append(journal, &records)
    }

    /// The journal and its open epoch, begun now if need be; `None` when
    /// the journal cannot be created for lack of permission.
    fn epoch(&mut self, data: &File) -> io::Result<Option<(&File, &mut Epoch)>> {
        if self.epoch.is_none() {
            match self.journal_file() {
                Ok(()) => self.unprotected = None,
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                    if self.unprotected.is_none() {
                        self.reported = false;
                    }
                    self.unprotected = Some(format!("create {}: {e}", self.path.display()));
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
            let journal = self.journal.as_ref().expect("just opened");
            self.epoch = Some(Epoch::begin(journal, data)?);
        }
        match (&self.journal, &mut self.epoch) {
            (Some(journal), Some(epoch)) => Ok(Some((journal, epoch))),
            _ => Ok(None),
        }
    }

    /// Open (or create) the journal unless the open one is still the file
    /// at its path (an operator may have removed it, a recovery renamed
    /// it).
    fn journal_file(&mut self) -> io::Result<()> {
        if let Some(open) = &self.journal {
            let at_path = std::fs::metadata(&self.path)
                .ok()
                .map(|m| (m.dev(), m.ino()));
            let meta = open.metadata()?;
            if at_path == Some((meta.dev(), meta.ino())) {
                return Ok(());
            }
        }
        self.journal = Some(
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&self.path)?,
        );
        Ok(())
    }

    /// End the epoch: clear the header.
    fn commit(&mut self) -> io::Result<()> {
        if self.epoch.take().is_some() {
            if let Some(journal) = &self.journal {
                journal.write_all_at(&[0u8; 8], 0)?;
            }
        }
        Ok(())
    }
}

fn registry() -> &'static Mutex<HashMap<FileKey, Attached>> {
    static REGISTRY: OnceLock<Mutex<HashMap<FileKey, Attached>>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(HashMap::new()))
}

fn with_registry<T>(f: impl FnOnce(&mut HashMap<FileKey, Attached>) -> T) -> T {
    let mut map = registry().lock().unwrap_or_else(|e| e.into_inner());
    f(&mut map)
}

/// The journal entry of the file open at `fd`, if it has one.
fn attached_to<'m>(
    map: &'m mut HashMap<FileKey, Attached>,
    data: &File,
) -> io::Result<Option<&'m mut Attached>> {
    if map.is_empty() {
        return Ok(None);
    }
    let meta = data.metadata()?;
    Ok(map.get_mut(&(meta.dev(), meta.ino())))
}

/// Borrow a descriptor as a `File` without taking ownership.
fn borrowed(fd: c_int) -> ManuallyDrop<File> {
    // SAFETY: the descriptor stays open for the call (libdb is using it);
    // ManuallyDrop keeps it from being closed here.
    ManuallyDrop::new(unsafe { File::from_raw_fd(fd) })
}

fn set_errno(err: &io::Error) {
    // SAFETY: errno is this thread's.
    unsafe { *libc::__errno_location() = err.raw_os_error().unwrap_or(libc::EIO) };
}

/// libdb's write(2): journal first for attached descriptors. With this
/// set, libdb does every page write as a seek and a write (no pwrite), so
/// the offset is the descriptor's position.
unsafe extern "C" fn journalled_write(fd: c_int, buf: *const libc::c_void, len: usize) -> isize {
    let failed = with_registry(|map| {
        let data = borrowed(fd);
        let attached = match attached_to(map, &data) {
            Ok(a) => a?,
            Err(e) => return Some(e),
        };
        #[cfg(test)]
        if fault::strikes(fd) {
            return Some(io::Error::from_raw_os_error(libc::EIO));
        }
        // SAFETY: plain system call on an open descriptor.
        let offset = unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) };
        if offset < 0 {
            return Some(io::Error::last_os_error());
        }
        // SAFETY: libdb passes `len` readable bytes at `buf`.
        let bytes = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len) };
        attached.before_write(&data, offset as u64, bytes).err()
    });
    if let Some(err) = failed {
        set_errno(&err);
        return -1;
    }
    // SAFETY: as libdb's own call would be.
    unsafe { libc::write(fd, buf, len) }
}

/// Failures on demand, for tests: the Nth journaled write to one
/// descriptor fails, as a full disk would fail it.
#[cfg(test)]
pub(crate) mod fault {
    use std::sync::atomic::{AtomicI64, Ordering};

    static FD: AtomicI64 = AtomicI64::new(-1);
    static LEFT: AtomicI64 = AtomicI64::new(0);

    /// Let `writes` more writes to `fd` succeed, then fail the rest.
    pub(crate) fn arm(fd: i32, writes: i64) {
        LEFT.store(writes, Ordering::SeqCst);
        FD.store(i64::from(fd), Ordering::SeqCst);
    }

    /// Stop failing.
    pub(crate) fn disarm() {
        FD.store(-1, Ordering::SeqCst);
    }

    pub(super) fn strikes(fd: i32) -> bool {
        FD.load(Ordering::SeqCst) == i64::from(fd) && LEFT.fetch_sub(1, Ordering::SeqCst) <= 0
    }
}

/// libdb's ftruncate(2): journal the cut-off bytes first.
unsafe extern "C" fn journalled_ftruncate(fd: c_int, length: libc::off_t) -> c_int {
    let failed = with_registry(|map| {
        let data = borrowed(fd);
        let attached = match attached_to(map, &data) {
            Ok(a) => a?,
            Err(e) => return Some(e),
        };
        attached.before_cut(&data, length.max(0) as u64).err()
    });
    if let Some(err) = failed {
        set_errno(&err);
        return -1;
    }
    // SAFETY: as libdb's own call would be.
    unsafe { libc::ftruncate(fd, length) }
}

#[cfg(not(proxymapd_no_libdb))]
extern "C" {
    fn db_env_set_func_write(
        f: Option<unsafe extern "C" fn(c_int, *const libc::c_void, usize) -> isize>,
    ) -> c_int;
    fn db_env_set_func_ftruncate(
        f: Option<unsafe extern "C" fn(c_int, libc::off_t) -> c_int>,
    ) -> c_int;
}

/// Route libdb's writes through the journal (once per process).
pub(crate) fn install_hooks() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[cfg(not(proxymapd_no_libdb))]
        // SAFETY: sets two function pointers in libdb's globals, before any
        // handle that needs them exists; the functions are valid for the
        // process's life.
        unsafe {
            db_env_set_func_write(Some(journalled_write));
            db_env_set_func_ftruncate(Some(journalled_ftruncate));
        }
    });
}

/// A journal attached to one handle's descriptor.
pub(crate) struct Attachment {
    key: FileKey,
    path: PathBuf,
}

impl Attachment {
    /// Journal the writes libdb makes to the file open at `fd` in `path`.
    pub(crate) fn attach(fd: c_int, path: PathBuf) -> io::Result<Attachment> {
        install_hooks();
        let meta = borrowed(fd).metadata()?;
        let key = (meta.dev(), meta.ino());
        with_registry(|map| {
            map.entry(key)
                .or_insert_with(|| Attached {
                    users: 0,
                    path: path.clone(),
                    journal: None,
                    epoch: None,
                    unprotected: None,
                    reported: false,
                })
                .users += 1;
        });
        Ok(Attachment { key, path })
    }

    /// The file is complete again (synced): forget the saved bytes.
    pub(crate) fn commit(&self) -> io::Result<()> {
        with_registry(|map| match map.get_mut(&self.key) {
            Some(a) => a.commit(),
            None => Ok(()),
        })
    }

    /// Put the file back as it was at the last commit (the handle that
    /// wrote it is closed without syncing first).
    pub(crate) fn roll_back(&self, data_path: &Path) -> io::Result<Recovery> {
        with_registry(|map| {
            if let Some(a) = map.get_mut(&self.key) {
                a.epoch = None;
            }
        });
        recover(data_path, &self.path)
    }

    /// Why writes to the file go unjournaled, the first time it is asked
    /// after that began (for one log line, not one per write).
    pub(crate) fn unprotected(&self) -> Option<String> {
        with_registry(|map| {
            let a = map.get_mut(&self.key)?;
            if a.reported {
                return None;
            }
            a.reported = true;
            a.unprotected.clone()
        })
    }

    /// Stop journalling for this handle.
    pub(crate) fn detach(&self) {
        with_registry(|map| {
            if let Some(a) = map.get_mut(&self.key) {
                a.users -= 1;
                if a.users == 0 {
                    map.remove(&self.key);
                }
            }
        });
    }
}

/// One parsed record.
enum Record {
    Old {
        offset: u64,
        bytes: Vec<u8>,
    },
    Written {
        offset: u64,
        length: u64,
        hash: [u8; 32],
    },
    Cut {
        length: u64,
    },
}

fn parse(bytes: &[u8]) -> Option<(u64, u64, u64, Vec<Record>)> {
    if bytes.len() < HEADER_LEN || &bytes[..8] != MAGIC {
        return None;
    }
    let (header, sum) = bytes[..HEADER_LEN].split_at(HEADER_LEN - 8);
    if checksum(&[header]) != sum {
        return None;
    }
    let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let (number, old_length, dev, ino) = (word(8), word(16), word(24), word(32));
    let mut records = Vec::new();
    let mut at = HEADER_LEN;
    // Records up to the first incomplete one: the writer died while
    // writing it, so the data write it announced never started.
    while at + 17 <= bytes.len() {
        let tag = bytes[at];
        let offset = word(at + 1);
        let length = word(at + 9);
        let payload = match tag {
            TAG_OLD if length <= bytes.len() as u64 => length as usize,
            TAG_WRITTEN => 32,
            TAG_CUT => 0,
            _ => break,
        };
        let end = at + 17 + payload;
        if end + 8 > bytes.len()
            || checksum(&[&number.to_le_bytes(), &bytes[at..end]]) != bytes[end..end + 8]
        {
            break;
        }
        let body = &bytes[at + 17..end];
        records.push(match tag {
            TAG_OLD => Record::Old {
                offset,
                bytes: body.to_vec(),
            },
            TAG_WRITTEN => Record::Written {
                offset,
                length,
                hash: body.try_into().expect("32 bytes"),
            },
            _ => Record::Cut { length: offset },
        });
        at = end + 8;
    }
    Some((old_length, dev, ino, records))
}

/// Why the file cannot be rolled back safely, if it cannot.
fn foreign_change(data: &File, records: &[Record]) -> io::Result<Option<String>> {
    let size = data.metadata()?.size();
    for record in records {
        let Record::Old { offset, bytes } = record else {
            continue;
        };
        let end = offset + bytes.len() as u64;
        // A region the dead writer cut into may be short or gone.
        let cut_into = records
            .iter()
            .any(|r| matches!(r, Record::Cut { length } if *length < end));
        if cut_into {
            continue;
        }
        if end > size {
            return Ok(Some(format!("bytes {offset}..{end} are missing")));
        }
        let mut now = vec![0u8; bytes.len()];
        data.read_exact_at(&mut now, *offset)?;
        if now == *bytes {
            continue;
        }
        let hash = *blake3::hash(&now).as_bytes();
        let written = records.iter().any(|r| {
            matches!(r, Record::Written { offset: o, length: l, hash: h }
                if *o == *offset && *l == bytes.len() as u64 && *h == hash)
        });
        if !written {
            return Ok(Some(format!(
                "bytes {offset}..{end} hold neither their old contents nor what the \
                 interrupted writer wrote"
            )));
        }
    }
    Ok(None)
}

/// Whether `journal` records an epoch that was never committed.
pub fn pending(journal: &Path) -> bool {
    let mut header = [0u8; HEADER_LEN];
    File::open(journal)
        .and_then(|f| f.read_exact_at(&mut header, 0))
        .is_ok()
        && parse(&header).is_some()
}

/// Clear the journal's header: nothing is pending any more.
fn clear(journal: &Path) -> io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(journal)?
        .write_all_at(&[0u8; 8], 0)
}

/// Put `data_path` back as it was before the changes `journal` records, if
/// it records an epoch never committed. The caller holds the file's
/// exclusive lock, so no writer is live.
pub fn recover(data_path: &Path, journal: &Path) -> io::Result<Recovery> {
    let mut bytes = Vec::new();
    match File::open(journal) {
        Ok(mut f) => {
            f.read_to_end(&mut bytes)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Recovery::Clean),
        Err(e) => return Err(e),
    }
    let Some((old_length, dev, ino, records)) = parse(&bytes) else {
        return Ok(Recovery::Clean);
    };
    let data = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(data_path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return set_aside(journal, "the file is gone".into());
        }
        Err(e) => return Err(e),
    };
    let meta = data.metadata()?;
    if (meta.dev(), meta.ino()) != (dev, ino) {
        return set_aside(journal, "the file was replaced".into());
    }
    if records.is_empty() && meta.size() == old_length {
        clear(journal)?;
        return Ok(Recovery::Empty);
    }
    if let Some(why) = foreign_change(&data, &records)? {
        return set_aside(journal, why);
    }
    let mut regions = 0;
    for record in records.iter().rev() {
        if let Record::Old { offset, bytes } = record {
            data.write_all_at(bytes, *offset)?;
            regions += 1;
        }
    }
    data.set_len(old_length)?;
    data.sync_all()?;
    clear(journal)?;
    Ok(Recovery::RolledBack {
        regions,
        length: old_length,
    })
}

fn set_aside(journal: &Path, why: String) -> io::Result<Recovery> {
    let mut stale = journal.as_os_str().to_owned();
    stale.push(".stale");
    std::fs::rename(journal, PathBuf::from(stale))?;
    Ok(Recovery::Stale(why))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pm-journal-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A file holding `contents`, open with its journal attached.
    fn attached_file(path: &Path, contents: &[u8]) -> (File, Attachment) {
        use std::os::fd::AsRawFd;
        std::fs::write(path, contents).unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        let att = Attachment::attach(file.as_raw_fd(), journal_path(path)).unwrap();
        (file, att)
    }

    /// Write through the hooks as libdb would: seek, then write.
    fn hooked_write(file: &File, offset: u64, bytes: &[u8]) {
        use std::os::fd::AsRawFd;
        let fd = file.as_raw_fd();
        // SAFETY: test descriptor; valid buffer.
        unsafe {
            assert!(libc::lseek(fd, offset as libc::off_t, libc::SEEK_SET) >= 0);
            assert_eq!(
                journalled_write(fd, bytes.as_ptr().cast(), bytes.len()),
                bytes.len() as isize
            );
        }
    }

    #[test]
    fn an_interrupted_epoch_rolls_back_and_a_committed_one_stays() {
        use std::os::fd::AsRawFd;
        let dir = scratch("roll");
        let path = dir.join("t.db");
        let jpath = journal_path(&path);
        let original: Vec<u8> = (0..4096u32 * 3).map(|i| (i % 251) as u8).collect();
        let (file, att) = attached_file(&path, &original);
        // A committed change stays.
        hooked_write(&file, 4096, &[7u8; 4096]);
        att.commit().unwrap();
        assert!(!pending(&jpath));
        let committed = std::fs::read(&path).unwrap();
        // An interrupted one: two pages rewritten (one twice), the file
        // grown, then cut below its old length.
        hooked_write(&file, 0, &[1u8; 4096]);
        hooked_write(&file, 8192, &[2u8; 4096]);
        hooked_write(&file, 0, &[3u8; 4096]);
        hooked_write(&file, 16384, &[4u8; 4096]);
        // SAFETY: test descriptor.
        assert_eq!(unsafe { journalled_ftruncate(file.as_raw_fd(), 6000) }, 0);
        assert!(pending(&jpath));
        att.detach();
        drop(file);
        match recover(&path, &jpath).unwrap() {
            Recovery::RolledBack { length, .. } => assert_eq!(length, 3 * 4096),
            other => panic!("{other:?}"),
        }
        assert_eq!(std::fs::read(&path).unwrap(), committed);
        assert!(!pending(&jpath));
        assert_eq!(recover(&path, &jpath).unwrap(), Recovery::Clean);
        // A shorter epoch over the same journal file: the longer epoch's
        // records further down never count (the rollback touches page 0
        // only; had page 8192's old record counted, the foreign-change
        // check would refuse).
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let att = Attachment::attach(file.as_raw_fd(), jpath.clone()).unwrap();
        hooked_write(&file, 0, &[8u8; 4096]);
        att.detach();
        drop(file);
        match recover(&path, &jpath).unwrap() {
            Recovery::RolledBack { regions, .. } => assert_eq!(regions, 1),
            other => panic!("{other:?}"),
        }
        assert_eq!(std::fs::read(&path).unwrap(), committed);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_torn_record_ends_the_journal_and_a_foreign_change_is_left_alone() {
        let dir = scratch("foreign");
        let path = dir.join("t.db");
        let jpath = journal_path(&path);
        let (file, att) = attached_file(&path, &[9u8; 8192]);
        hooked_write(&file, 0, &[1u8; 4096]);
        att.detach();
        // A half-written record after the complete ones is ignored.
        let mut j = std::fs::OpenOptions::new()
            .append(true)
            .open(&jpath)
            .unwrap();
        j.write_all(&[TAG_OLD, 0, 16]).unwrap();
        drop(j);
        // Another program rewrote the page since.
        file.write_all_at(&[5u8; 4096], 0).unwrap();
        drop(file);
        match recover(&path, &jpath).unwrap() {
            Recovery::Stale(why) => assert!(why.contains("0..4096"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(std::fs::read(&path).unwrap()[..4096], [5u8; 4096]);
        assert!(!jpath.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
