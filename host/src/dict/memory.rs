//! An in-memory key/value table: the engine behind texthash: and inline:.
//! Keys are stored folded when the table was opened with FOLD_FIX; lookups
//! fold when the request asks for it. Sequence walks entries in load order.

use super::{
    fold::{fold, fold_fixed},
    Dict, DictError, Entry, FileStamp, SeqStep,
};
use crate::flags;
use std::collections::HashMap;
use std::sync::Mutex;

/// How duplicate keys are treated while loading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Duplicates {
    /// Keep the first value silently.
    Ignore,
    /// Keep the last value.
    Replace,
    /// Keep the first value and report the duplicate as a warning.
    Warn,
    /// Refuse the table.
    Fail,
}

impl Duplicates {
    /// The policy selected by open flags, as Postfix ranks them.
    pub(crate) fn from_flags(open_flags: u32) -> Duplicates {
        if open_flags & flags::DUP_IGNORE != 0 {
            Duplicates::Ignore
        } else if open_flags & flags::DUP_REPLACE != 0 {
            Duplicates::Replace
        } else if open_flags & flags::DUP_WARN != 0 {
            Duplicates::Warn
        } else {
            Duplicates::Fail
        }
    }
}

/// A table held in memory.
pub(crate) struct MemoryDict {
    index: HashMap<Vec<u8>, usize>,
    entries: Vec<(Vec<u8>, Vec<u8>)>,
    cursor: Mutex<usize>,
    utf8: bool,
    stamps: Vec<FileStamp>,
}

/// What [`MemoryDict::insert`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Inserted {
    /// A new key.
    New,
    /// The key was there; the policy was applied.
    Duplicate,
}

impl MemoryDict {
    /// An empty table; `utf8` selects full Unicode folding.
    pub(crate) fn new(utf8: bool, stamps: Vec<FileStamp>) -> MemoryDict {
        MemoryDict {
            index: HashMap::new(),
            entries: Vec::new(),
            cursor: Mutex::new(0),
            utf8,
            stamps,
        }
    }

    /// Add an entry while loading; `fold_keys` folds the key first.
    pub(crate) fn insert(
        &mut self,
        key: &[u8],
        value: &[u8],
        fold_keys: bool,
        dups: Duplicates,
    ) -> Inserted {
        let key = if fold_keys {
            fold(key, self.utf8).into_owned()
        } else {
            key.to_vec()
        };
        match self.index.get(&key) {
            Some(&at) => {
                if dups == Duplicates::Replace {
                    self.entries[at].1 = value.to_vec();
                }
                Inserted::Duplicate
            }
            None => {
                self.index.insert(key.clone(), self.entries.len());
                self.entries.push((key, value.to_vec()));
                Inserted::New
            }
        }
    }

    /// True when the table has no entries.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Dict for MemoryDict {
    fn flags(&self) -> u32 {
        flags::FIXED
    }

    fn lookup(&self, key: &[u8], req_flags: u32) -> Result<Option<Vec<u8>>, DictError> {
        let key = fold_fixed(key, req_flags, self.utf8);
        Ok(self
            .index
            .get(key.as_ref())
            .map(|&at| self.entries[at].1.clone()))
    }

    fn sequence(&self, step: SeqStep, _flags: u32) -> Result<Option<Entry>, DictError> {
        let mut cursor = self.cursor.lock().unwrap_or_else(|e| e.into_inner());
        if step == SeqStep::First {
            *cursor = 0;
        }
        let entry = self.entries.get(*cursor).cloned();
        if entry.is_some() {
            *cursor += 1;
        }
        Ok(entry)
    }

    fn changed(&self) -> bool {
        self.stamps.iter().any(FileStamp::changed)
    }
}
