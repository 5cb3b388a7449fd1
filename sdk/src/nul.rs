//! Postfix's trailing-NUL conventions. Berkeley DB and LMDB tables store keys
//! and values with a trailing NUL, cdb tables without; readers try both until
//! one works and then remember it (TRY1NULL / TRY0NULL flags).

use crate::flags::{TRY0NULL, TRY1NULL};
use std::sync::atomic::{AtomicU32, Ordering};

/// What a reader has learned about trailing NULs in one table.
#[derive(Debug)]
pub struct NulLearning {
    bits: AtomicU32,
}

impl NulLearning {
    /// Start from the open flags; with neither bit set, try both.
    pub fn new(open_flags: u32) -> NulLearning {
        let mut bits = open_flags & (TRY0NULL | TRY1NULL);
        if bits == 0 {
            bits = TRY0NULL | TRY1NULL;
        }
        NulLearning {
            bits: AtomicU32::new(bits),
        }
    }

    /// The current TRY0NULL/TRY1NULL bits (to report in the table's flags).
    pub fn bits(&self) -> u32 {
        self.bits.load(Ordering::Relaxed)
    }

    /// Look `key` up with `get`, first with a trailing NUL (when allowed),
    /// then without, learning which form the table uses. A value found under
    /// the NUL form loses its own trailing NUL.
    pub fn lookup<E>(
        &self,
        key: &[u8],
        mut get: impl FnMut(&[u8]) -> Result<Option<Vec<u8>>, E>,
    ) -> Result<Option<Vec<u8>>, E> {
        if self.bits.load(Ordering::Relaxed) & TRY1NULL != 0 {
            let mut k = key.to_vec();
            k.push(0);
            if let Some(mut v) = get(&k)? {
                self.bits.fetch_and(!TRY0NULL, Ordering::Relaxed);
                if v.last() == Some(&0) {
                    v.pop();
                }
                return Ok(Some(v));
            }
        }
        if self.bits.load(Ordering::Relaxed) & TRY0NULL != 0 {
            if let Some(v) = get(key)? {
                self.bits.fetch_and(!TRY1NULL, Ordering::Relaxed);
                return Ok(Some(v));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_the_form_in_use() {
        let table =
            |k: &[u8]| -> Result<Option<Vec<u8>>, ()> { Ok((k == b"a").then(|| b"1".to_vec())) };
        let l = NulLearning::new(0);
        assert_eq!(l.bits(), TRY0NULL | TRY1NULL);
        assert_eq!(l.lookup(b"a", table), Ok(Some(b"1".to_vec())));
        assert_eq!(l.bits(), TRY0NULL);
        let with_nul = |k: &[u8]| -> Result<Option<Vec<u8>>, ()> {
            Ok((k == b"a\0").then(|| b"1\0".to_vec()))
        };
        let l = NulLearning::new(0);
        assert_eq!(l.lookup(b"a", with_nul), Ok(Some(b"1".to_vec())));
        assert_eq!(l.bits(), TRY1NULL);
    }
}
