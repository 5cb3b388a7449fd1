//! Lookups that ran into their plugin's time limit, remembered for a while:
//! the same key asked again (with the same flags) within [`COOL_DOWN`]
//! answers RETRY at once instead of spending another whole time limit of
//! processor. Clients retry a failed lookup, so a key that makes a table
//! hang (a runaway pattern, a crafted address) would otherwise keep a core
//! busy for as long as they keep asking. Other keys of the table are not
//! affected. At most [`MAX_KEYS`] keys are remembered.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a runaway key answers RETRY without being tried.
pub(crate) const COOL_DOWN: Duration = Duration::from_secs(30);

/// Most keys remembered per table.
pub(crate) const MAX_KEYS: usize = 1024;

/// The runaway keys of one table.
#[derive(Default)]
pub(crate) struct RunawayKeys {
    /// True while any key is remembered: the common case costs one load.
    any: AtomicBool,
    keys: Mutex<HashMap<(Vec<u8>, u32), Instant>>,
}

impl RunawayKeys {
    /// When `key` (with `flags`) last ran out of time, if within the cool-down.
    pub(crate) fn recent(&self, key: &[u8], flags: u32) -> Option<Duration> {
        if !self.any.load(Ordering::Relaxed) {
            return None;
        }
        let keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let ago = keys.get(&(key.to_vec(), flags))?.elapsed();
        (ago < COOL_DOWN).then_some(ago)
    }

    /// Remember that `key` (with `flags`) ran out of time just now.
    pub(crate) fn note(&self, key: &[u8], flags: u32) {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if keys.len() >= MAX_KEYS {
            keys.retain(|_, at| at.elapsed() < COOL_DOWN);
        }
        if keys.len() < MAX_KEYS {
            keys.insert((key.to_vec(), flags), Instant::now());
        }
        self.any.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_runaway_keys_only_and_stays_bounded() {
        let keys = RunawayKeys::default();
        assert_eq!(keys.recent(b"k", 0), None);
        keys.note(b"k", 0);
        assert!(keys.recent(b"k", 0).is_some());
        assert_eq!(keys.recent(b"k", 1), None, "other flags are another lookup");
        assert_eq!(keys.recent(b"other", 0), None);
        for i in 0..3 * MAX_KEYS {
            keys.note(format!("k{i}").as_bytes(), 0);
        }
        assert!(keys.keys.lock().unwrap().len() <= MAX_KEYS);
    }
}
