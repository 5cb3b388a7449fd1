//! Keeping the server alive when a mapped table file shrinks behind its back.
//! A reader of a memory mapping gets SIGBUS when it touches a page past the
//! file's end — which happens when something rewrites the file without
//! Postfix's lock (`cp new.db table.db`) while a lookup runs. Mappings
//! register their address range here; the process-wide SIGBUS handler puts a
//! zero page in place of the missing one and marks the mapping poisoned, so
//! the lookup finishes (answering RETRY) and the mapping is redone. Faults
//! outside registered ranges go to the handler that was there before (the
//! WebAssembly runtime's, or the default action).
//!
//! The handler is installed explicitly, once, by [`install`]: the server
//! does it as it starts (`server::lifecycle::run`), and so does anything else
//! that reads mapped tables (`proxymapd check`). Registering a range does not
//! install it; until [`install`] has run, a fault ends the process as it
//! would without this module.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Once, OnceLock};

/// How many mappings can be protected at once (tables open at once).
const SLOTS: usize = 1024;

struct Slot {
    start: AtomicUsize,
    end: AtomicUsize,
    poisoned: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE: Slot = Slot {
    start: AtomicUsize::new(0),
    end: AtomicUsize::new(0),
    poisoned: AtomicBool::new(false),
};

static RANGES: [Slot; SLOTS] = [FREE; SLOTS];
static PAGE_SIZE: AtomicUsize = AtomicUsize::new(4096);
static PREVIOUS: OnceLock<libc::sigaction> = OnceLock::new();
static INSTALL: Once = Once::new();

/// A registered mapping range; unregistered on drop.
pub(crate) struct Protected {
    slot: Option<usize>,
}

impl Protected {
    /// A range that is not registered.
    pub(crate) fn none() -> Protected {
        Protected { slot: None }
    }

    /// True when a page of the range was lost (the file shrank under it).
    pub(crate) fn poisoned(&self) -> bool {
        self.slot
            .is_some_and(|s| RANGES[s].poisoned.load(Ordering::Acquire))
    }
}

impl Drop for Protected {
    fn drop(&mut self) {
        if let Some(s) = self.slot {
            RANGES[s].end.store(0, Ordering::Release);
            RANGES[s].poisoned.store(false, Ordering::Release);
            RANGES[s].start.store(0, Ordering::Release);
        }
    }
}

/// Protect `len` mapped bytes at `start`. With every slot taken the range
/// is not protected (a fault there then ends the process, as without this).
/// The range is guarded only once [`install`] has run.
pub(crate) fn protect(start: usize, len: usize) -> Protected {
    for (i, slot) in RANGES.iter().enumerate() {
        if slot
            .start
            .compare_exchange(0, start, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            slot.poisoned.store(false, Ordering::Release);
            slot.end.store(start + len, Ordering::Release);
            return Protected { slot: Some(i) };
        }
    }
    tracing::warn!(
        "more than {SLOTS} mapped tables: a table truncated without its lock can stop the server"
    );
    Protected { slot: None }
}

/// Install the process-wide SIGBUS handler that guards registered
/// mappings. Idempotent: the first call installs it, later calls do nothing.
/// Call it before serving or reading mapped tables; a handler installed
/// before this one (the WebAssembly runtime's) is kept and called for faults
/// outside our mappings.
pub fn install() {
    INSTALL.call_once(|| {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if page > 0 {
            PAGE_SIZE.store(page as usize, Ordering::Relaxed);
        }
        // SAFETY: sigaction structs are plain data; the handler is an
        // extern "C" fn with the SA_SIGINFO signature.
        unsafe {
            let mut previous: libc::sigaction = std::mem::zeroed();
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_sigbus as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER;
            libc::sigemptyset(&mut action.sa_mask);
            if libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut previous) == 0 {
                let _ = PREVIOUS.set(previous);
                libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut());
            }
        }
    });
}

extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    for slot in RANGES.iter() {
        let start = slot.start.load(Ordering::Acquire);
        if start == 0 || addr < start || addr >= slot.end.load(Ordering::Acquire) {
            continue;
        }
        let page = addr & !(PAGE_SIZE.load(Ordering::Relaxed) - 1);
        // SAFETY: replaces one page inside a mapping we own with zeroes;
        // mmap is a plain system call, safe to make in a handler.
        let p = unsafe {
            libc::mmap(
                page as *mut libc::c_void,
                PAGE_SIZE.load(Ordering::Relaxed),
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if p != libc::MAP_FAILED {
            slot.poisoned.store(true, Ordering::Release);
            return;
        }
    }
    // Not ours: hand over to whoever handled SIGBUS before.
    if let Some(previous) = PREVIOUS.get() {
        let handler = previous.sa_sigaction;
        if handler == libc::SIG_IGN {
            return;
        }
        if handler != libc::SIG_DFL {
            // SAFETY: calling the previous handler with the arguments we got,
            // in the form its flags declare.
            unsafe {
                if previous.sa_flags & libc::SA_SIGINFO != 0 {
                    let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                        std::mem::transmute(handler);
                    f(sig, info, context);
                } else {
                    let f: extern "C" fn(libc::c_int) = std::mem::transmute(handler);
                    f(sig);
                }
            }
            return;
        }
    }
    // Default action: restore it; returning re-runs the access, which kills
    // the process as it would have without us.
    // SAFETY: resetting a signal disposition.
    unsafe {
        libc::signal(libc::SIGBUS, libc::SIG_DFL);
    }
}

#[cfg(test)]
mod tests {
    use crate::dict::mapping::Mapping;
    use std::io::Write;

    #[test]
    fn a_file_truncated_under_its_mapping_poisons_it_instead_of_killing_us() {
        super::install();
        super::install();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut file = std::fs::File::create(&path).unwrap();
        file.write_all(&vec![7u8; 3 * 4096]).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let map = Mapping::new(&file, 3 * 4096).unwrap();
        assert_eq!(map.bytes()[2 * 4096 + 5], 7);
        assert!(!map.poisoned());
        // Rewritten without any lock: the file is now one page long.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(4096)
            .unwrap();
        let byte = std::hint::black_box(map.bytes())[2 * 4096 + 5];
        assert_eq!(byte, 0);
        assert!(map.poisoned());
        assert_eq!(map.bytes()[5], 7, "pages still in the file read normally");
    }
}
