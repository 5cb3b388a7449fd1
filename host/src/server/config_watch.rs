//! Following the configuration the way Postfix's own daemons do, without
//! a signal: when the configuration file changes (an operator edits
//! main.cf and runs `postfix reload`), the allowlists are reread — by a
//! check every second, and at once before a request would be refused, so a
//! daemon restarted by `postfix reload` that asks for a newly listed table
//! is never told DENY by a stale list. SIGHUP still reloads at once. A
//! reload that fails keeps the old configuration and logs why.

use crate::allowlist::Allowlists;
use crate::config::ConfigSource;
use crate::dict::stamp::FileStamp;
use std::sync::Mutex;
use std::time::Duration;

/// How often the configuration files are checked for changes.
pub(crate) const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The configuration source and what its files looked like when it was
/// last read.
pub(crate) struct ConfigWatch {
    source: ConfigSource,
    stamps: Mutex<Vec<FileStamp>>,
}

impl ConfigWatch {
    /// Watch `source`, as read just now.
    pub(crate) fn new(source: ConfigSource) -> ConfigWatch {
        let stamps = Self::stamps_of(&source);
        ConfigWatch {
            source,
            stamps: Mutex::new(stamps),
        }
    }

    fn stamps_of(source: &ConfigSource) -> Vec<FileStamp> {
        source.files().iter().map(|f| FileStamp::take(f)).collect()
    }

    /// True when a configuration file changed since it was last read (a
    /// stat per file: cheap enough for every refused request).
    pub(crate) fn changed(&self) -> bool {
        self.stamps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(FileStamp::changed)
    }

    /// Read the configuration again (may run postconf: off the event
    /// loop). The new allowlists, or `None` when the configuration is
    /// broken, which is logged and not read again until it changes.
    pub(crate) fn reload(&self, why: &str) -> Option<Allowlists> {
        let stamps = Self::stamps_of(&self.source);
        let loaded = self.source.load();
        *self.stamps.lock().unwrap_or_else(|e| e.into_inner()) = stamps;
        match loaded {
            Ok(settings) => {
                let lists = settings.allowlists();
                tracing::info!(
                    "configuration reloaded ({why}): {} read, {} write tables approved",
                    lists.read.len(),
                    lists.write.len()
                );
                Some(lists)
            }
            Err(e) => {
                tracing::error!(
                    "reload failed, keeping the old configuration: {}",
                    crate::error_chain::Chain(&e)
                );
                None
            }
        }
    }
}
