//! Postfix's trailing-NUL rules for tables proxymapd writes (lmdb:, and
//! hash:/btree: through libdb): what a table has learned lives in its
//! TRY0NULL/TRY1NULL bits; a lookup tries the allowed forms and learns, an
//! update writes with a NUL unless the table is known to hold keys without,
//! and a delete removes whichever form is there and learns.

use crate::flags;
use std::sync::atomic::{AtomicU32, Ordering};

/// `key` with a trailing NUL.
pub(crate) fn with_nul(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.extend_from_slice(key);
    k.push(0);
    k
}

/// `v` without its trailing NUL, if it has one.
pub(crate) fn strip_nul(mut v: Vec<u8>) -> Vec<u8> {
    if v.last() == Some(&0) {
        v.pop();
    }
    v
}

/// Look `key` up with `get`, learning the table's form.
pub(crate) fn get<E>(
    nul: &AtomicU32,
    key: &[u8],
    mut get: impl FnMut(&[u8]) -> Result<Option<Vec<u8>>, E>,
) -> Result<Option<Vec<u8>>, E> {
    let bits = nul.load(Ordering::Relaxed);
    if bits & flags::TRY1NULL != 0 {
        if let Some(v) = get(&with_nul(key))? {
            nul.fetch_and(!flags::TRY0NULL, Ordering::Relaxed);
            return Ok(Some(strip_nul(v)));
        }
    }
    if bits & flags::TRY0NULL != 0 {
        if let Some(v) = get(key)? {
            nul.fetch_and(!flags::TRY1NULL, Ordering::Relaxed);
            return Ok(Some(v));
        }
    }
    Ok(None)
}

/// Whether an update writes the NUL form; with nothing learned yet,
/// Postfix's default (with a NUL) becomes what the table uses.
pub(crate) fn update_with_nul(nul: &AtomicU32) -> bool {
    let bits = nul.load(Ordering::Relaxed);
    if bits & flags::TRY1NULL != 0 && bits & flags::TRY0NULL != 0 {
        nul.fetch_and(!flags::TRY0NULL, Ordering::Relaxed);
    }
    nul.load(Ordering::Relaxed) & flags::TRY1NULL != 0
}

/// Delete `key` with `del` in whichever allowed form is there, learning it;
/// whether it was there.
pub(crate) fn delete<E>(
    nul: &AtomicU32,
    key: &[u8],
    mut del: impl FnMut(&[u8]) -> Result<bool, E>,
) -> Result<bool, E> {
    let bits = nul.load(Ordering::Relaxed);
    if bits & flags::TRY1NULL != 0 && del(&with_nul(key))? {
        nul.fetch_and(!flags::TRY0NULL, Ordering::Relaxed);
        return Ok(true);
    }
    if bits & flags::TRY0NULL != 0 && del(key)? {
        nul.fetch_and(!flags::TRY1NULL, Ordering::Relaxed);
        return Ok(true);
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_are_learned_from_lookups_updates_and_deletes() {
        let nul = AtomicU32::new(flags::TRY0NULL | flags::TRY1NULL);
        let found = get::<()>(&nul, b"k", |k| Ok((k == b"k").then(|| b"v".to_vec()))).unwrap();
        assert_eq!(found, Some(b"v".to_vec()));
        assert_eq!(nul.load(Ordering::Relaxed), flags::TRY0NULL);
        assert!(!update_with_nul(&nul));
        let fresh = AtomicU32::new(flags::TRY0NULL | flags::TRY1NULL);
        assert!(update_with_nul(&fresh));
        assert_eq!(fresh.load(Ordering::Relaxed), flags::TRY1NULL);
        let both = AtomicU32::new(flags::TRY0NULL | flags::TRY1NULL);
        assert!(delete::<()>(&both, b"k", |k| Ok(k == b"k")).unwrap());
        assert_eq!(both.load(Ordering::Relaxed), flags::TRY0NULL);
    }
}
