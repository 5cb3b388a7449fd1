//! A directory whose contents may be trusted as much as proxymapd itself,
//! for the compiled-plugin cache: native code loaded from there runs in the
//! server outside the WebAssembly sandbox, so nobody but proxymapd's user
//! (or root) may be able to place or replace files in it. Like OpenSSH's
//! StrictModes, the directory and every directory above it must be owned by
//! root or by the effective user and not writable by group or others (a
//! parent with the sticky bit, such as /tmp, may be world-writable: others
//! cannot rename what they do not own there). The directory is then held
//! open, files are opened relative to it with O_NOFOLLOW, and each opened
//! file is checked with fstat on its descriptor, so nothing can be swapped
//! between the check and the use.

use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Why a directory or file is not trusted.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// Owned by someone else, or writable by group or others.
    #[error(
        "{path} is owned by uid {uid} with mode {mode:04o}; compiled plugin code is loaded \
         from there, so it must be owned by root or uid {euid} (proxymapd's user) and not \
         writable by group or others: fix it with `chown {euid} {path}` and \
         `chmod go-w {path}`, or choose another plugin_cache_dir"
    )]
    Unsafe {
        /// The offending path.
        path: String,
        /// Its owner.
        uid: u32,
        /// Its permission bits.
        mode: u32,
        /// proxymapd's effective uid.
        euid: u32,
    },
    /// Not a directory or not a regular file, as required.
    #[error("{0} is not a {1}")]
    WrongType(PathBuf, &'static str),
    /// A system call failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// Whether an object with this owner and mode may be trusted; `sticky_ok`
/// accepts a world-writable directory with the sticky bit.
fn trusted(uid: u32, mode: u32, sticky_ok: bool) -> bool {
    let owner_ok = uid == 0 || uid == euid();
    let writable_by_others = mode & 0o022 != 0;
    let sticky = mode & libc::S_ISVTX != 0;
    owner_ok && (!writable_by_others || (sticky_ok && sticky))
}

fn check(path: &Path, uid: u32, mode: u32, sticky_ok: bool) -> Result<(), TrustError> {
    if trusted(uid, mode, sticky_ok) {
        Ok(())
    } else {
        Err(TrustError::Unsafe {
            path: path.display().to_string(),
            uid,
            mode: mode & 0o7777,
            euid: euid(),
        })
    }
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> TrustError + 'a {
    move |source| TrustError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// A checked directory, held open.
#[derive(Debug)]
pub(crate) struct TrustedDir {
    fd: OwnedFd,
    path: PathBuf,
}

impl TrustedDir {
    /// Open `path`, creating it (mode 0700) when missing, and check it and
    /// every directory above it.
    pub(crate) fn open(path: &Path) -> Result<TrustedDir, TrustError> {
        if !path.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(path)
                .map_err(io("create", path))?;
        }
        let real = path.canonicalize().map_err(io("resolve", path))?;
        for parent in real.ancestors().skip(1) {
            let meta = std::fs::symlink_metadata(parent).map_err(io("stat", parent))?;
            check(parent, meta.uid(), meta.mode(), true)?;
        }
        let c = CString::new(real.as_os_str().as_bytes())
            .map_err(|_| TrustError::WrongType(real.clone(), "path without NUL bytes"))?;
        // SAFETY: open with a valid C string; the descriptor is owned below.
        let raw = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(io("open", &real)(std::io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let dup = fd.try_clone().map_err(io("dup", &real))?;
        let meta = File::from(dup).metadata().map_err(io("stat", &real))?;
        check(&real, meta.uid(), meta.mode(), false)?;
        Ok(TrustedDir { fd, path: real })
    }

    /// The directory's path (resolved).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn name(&self, name: &str) -> Result<CString, TrustError> {
        if name.contains('/') {
            return Err(TrustError::WrongType(
                self.path.join(name),
                "plain file name",
            ));
        }
        CString::new(name)
            .map_err(|_| TrustError::WrongType(self.path.join(name), "plain file name"))
    }

    /// Open the regular file `name` in this directory for reading, refusing
    /// symbolic links and files that are not trusted; `Ok(None)` when there
    /// is no such file.
    pub(crate) fn open_file(&self, name: &str) -> Result<Option<File>, TrustError> {
        let path = self.path.join(name);
        let c = self.name(name)?;
        // SAFETY: openat on our directory descriptor with a valid C string.
        let raw = unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK,
            )
        };
        if raw < 0 {
            let err = std::io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::ENOENT) => Ok(None),
                Some(libc::ELOOP) => Err(TrustError::WrongType(path, "regular file (a symlink)")),
                _ => Err(io("open", &path)(err)),
            };
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let file = unsafe { File::from_raw_fd(raw) };
        let meta = file.metadata().map_err(io("stat", &path))?;
        if !meta.file_type().is_file() {
            return Err(TrustError::WrongType(path, "regular file"));
        }
        check(&path, meta.uid(), meta.mode(), false)?;
        Ok(Some(file))
    }

    /// Write `bytes` to `name` atomically: a new private temporary file,
    /// renamed over `name`.
    pub(crate) fn write_file(&self, name: &str, bytes: &[u8]) -> Result<(), TrustError> {
        let tmp_name = format!(".{name}.tmp{}", std::process::id());
        let tmp = self.name(&tmp_name)?;
        let target = self.name(name)?;
        let tmp_path = self.path.join(&tmp_name);
        // A temporary file left by a crashed run of this PID is ours to replace.
        // SAFETY: unlinkat/openat on our directory descriptor with valid C strings.
        unsafe { libc::unlinkat(self.fd.as_raw_fd(), tmp.as_ptr(), 0) };
        // SAFETY: openat on our directory descriptor with a valid C string.
        let raw = unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                tmp.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o600 as libc::c_uint,
            )
        };
        if raw < 0 {
            return Err(io("create", &tmp_path)(std::io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let mut file = unsafe { File::from_raw_fd(raw) };
        let written = file.write_all(bytes).and_then(|()| file.sync_all());
        drop(file);
        let renamed = written.and_then(|()| {
            // SAFETY: renameat within our directory with valid C strings.
            let rc = unsafe {
                libc::renameat(
                    self.fd.as_raw_fd(),
                    tmp.as_ptr(),
                    self.fd.as_raw_fd(),
                    target.as_ptr(),
                )
            };
            if rc == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
        if let Err(e) = renamed {
            // SAFETY: unlinkat within our directory with a valid C string.
            unsafe { libc::unlinkat(self.fd.as_raw_fd(), tmp.as_ptr(), 0) };
            return Err(io("write", &self.path.join(name))(e));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_missing_directory_is_created_private() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("a/cache");
        TrustedDir::open(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn a_world_writable_directory_or_parent_is_refused_by_name() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("cache");
        std::fs::create_dir(&dir).unwrap();
        chmod(&dir, 0o777);
        let err = TrustedDir::open(&dir).unwrap_err().to_string();
        assert!(
            err.contains(&dir.display().to_string()) && err.contains("mode 0777"),
            "{err}"
        );
        assert!(err.contains("chmod go-w"), "{err}");
        chmod(&dir, 0o755);
        chmod(base.path(), 0o775);
        let err = TrustedDir::open(&dir).unwrap_err().to_string();
        assert!(
            err.contains(&format!("{} is owned", base.path().display())),
            "{err}"
        );
        // A sticky parent (like /tmp) is fine.
        chmod(base.path(), 0o1777);
        TrustedDir::open(&dir).unwrap();
    }

    #[test]
    fn files_of_another_user_or_writable_by_others_or_symlinks_are_refused() {
        let base = tempfile::tempdir().unwrap();
        let dir = TrustedDir::open(base.path()).unwrap();
        dir.write_file("good", b"x").unwrap();
        assert!(dir.open_file("good").unwrap().is_some());
        assert!(dir.open_file("missing").unwrap().is_none());
        let mode = std::fs::metadata(base.path().join("good")).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        chmod(&base.path().join("good"), 0o666);
        assert!(dir.open_file("good").is_err());
        std::os::unix::fs::symlink("/etc/passwd", base.path().join("link")).unwrap();
        assert!(dir.open_file("link").is_err());
        if euid() == 0 {
            dir.write_file("theirs", b"x").unwrap();
            std::os::unix::fs::chown(base.path().join("theirs"), Some(65534), None).unwrap();
            let err = dir.open_file("theirs").unwrap_err().to_string();
            assert!(err.contains("owned by uid 65534"), "{err}");
        }
    }
}
