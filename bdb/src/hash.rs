//! The hash access method: the meta page's bucket geometry, bucket → page
//! mapping, and the key/data item pairs on hash pages (types 2 and 13) and
//! their overflow chains.
//!
//! Meta page fields used: max_bucket, high_mask, low_mask at 72/76/80 and
//! the 32 `spares` at 96. On a hash page item `i` runs from its offset to
//! the offset of item `i - 1` (the page end for item 0); its first byte is
//! its type: 1 inline data, 3 off-page (first overflow page at +4, total
//! length at +8). Pages of type 13 keep their pairs sorted by key, so
//! lookups binary-search them; type 2 pages are scanned.

use crate::page::{Layout, Page};
use crate::{err, BdbError, Pair, Source};
use std::borrow::Cow;
use std::cmp::Ordering;

const P_INVALID: u8 = 0;
const P_HASH_UNSORTED: u8 = 2;
const P_HASH: u8 = 13;
const H_KEYDATA: u8 = 1;
const H_DUPLICATE: u8 = 2;
const H_OFFPAGE: u8 = 3;
const H_OFFDUP: u8 = 4;

/// Berkeley DB's default hash function (`__ham_func5`, 32-bit FNV-1 from 0).
pub fn hash(key: &[u8]) -> u32 {
    key.iter()
        .fold(0u32, |h, &c| h.wrapping_mul(16_777_619) ^ u32::from(c))
}

/// Bucket geometry from the hash meta page.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HashMeta {
    pub max_bucket: u32,
    pub high_mask: u32,
    pub low_mask: u32,
    pub spares: [u32; 32],
}

impl HashMeta {
    /// Parse the geometry from the meta page bytes.
    pub fn parse(layout: &Layout, meta: &[u8]) -> Result<HashMeta, BdbError> {
        let word = |at: usize| layout.u32_of([meta[at], meta[at + 1], meta[at + 2], meta[at + 3]]);
        let mut spares = [0u32; 32];
        for (i, s) in spares.iter_mut().enumerate() {
            *s = word(96 + 4 * i);
        }
        let m = HashMeta {
            max_bucket: word(72),
            high_mask: word(76),
            low_mask: word(80),
            spares,
        };
        // Bucket pages come in doubling groups, so a real file has at least
        // about half as many pages as buckets.
        if u64::from(m.max_bucket) > 2 * u64::from(layout.pages) + 64 {
            return Err(err(
                Some(0),
                format!(
                    "max_bucket {} is impossible in a file of {} pages",
                    m.max_bucket, layout.pages
                ),
            ));
        }
        if m.max_bucket > m.high_mask || m.low_mask > m.high_mask {
            return Err(err(
                Some(0),
                format!(
                    "inconsistent bucket geometry (max_bucket {}, high_mask {:#x}, low_mask {:#x})",
                    m.max_bucket, m.high_mask, m.low_mask
                ),
            ));
        }
        Ok(m)
    }

    /// The bucket `key` lives in.
    pub fn bucket(&self, key: &[u8]) -> u32 {
        let b = hash(key) & self.high_mask;
        if b > self.max_bucket {
            b & self.low_mask
        } else {
            b
        }
    }

    /// The first page of `bucket`.
    pub fn bucket_page(&self, bucket: u32) -> Result<u32, BdbError> {
        let index = (u32::BITS - bucket.leading_zeros()) as usize;
        let spare = *self
            .spares
            .get(index)
            .ok_or_else(|| err(None, format!("bucket {bucket} out of range")))?;
        bucket
            .checked_add(spare)
            .ok_or_else(|| err(None, format!("bucket {bucket} maps outside the file")))
    }
}

/// Where a walk over a hash file stands: the bucket, the page within the
/// bucket's chain and the pair's index on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashCursor {
    bucket: u32,
    page: u32,
    item: u16,
}

/// A page of a bucket's chain; `None` for a bucket page Berkeley DB has
/// allocated but never written (all zeroes, or past the end of the file,
/// which it reads as zeroes): an empty bucket.
fn hash_page<'s, S: Source + ?Sized>(
    layout: &Layout,
    source: &'s S,
    number: u32,
    first_in_bucket: bool,
) -> Result<Option<Page<'s>>, BdbError> {
    if first_in_bucket && number >= layout.pages && number != 0 {
        return Ok(None);
    }
    let page = layout.page(source, number)?;
    match page.kind() {
        P_HASH | P_HASH_UNSORTED => Ok(Some(page)),
        P_INVALID if first_in_bucket && page.u32(8)? == 0 && page.u16(20)? == 0 => Ok(None),
        k => Err(err(
            Some(number),
            format!("expected a hash page, found page type {k}"),
        )),
    }
}

/// The start and end of item `i` on a hash page.
fn item_range(page: &Page<'_>, i: u16) -> Result<(usize, usize), BdbError> {
    let off = page.offset(i)?;
    let end = if i == 0 {
        page.bytes.len()
    } else {
        page.offset(i - 1)?
    };
    if off >= end {
        return Err(err(
            Some(page.number),
            format!("item {i} has a bad extent {off}..{end}"),
        ));
    }
    Ok((off, end))
}

/// The full bytes of item `i`: inline data, or its overflow chain.
fn item<'s, S: Source + ?Sized>(
    source: &'s S,
    page: &Page<'s>,
    i: u16,
) -> Result<Cow<'s, [u8]>, BdbError> {
    let (off, end) = item_range(page, i)?;
    match page.bytes[off] {
        H_KEYDATA => page.data(off + 1, end - off - 1),
        H_OFFPAGE => {
            if end - off < 12 {
                return Err(err(
                    Some(page.number),
                    format!("item {i}: short off-page item"),
                ));
            }
            page.overflow_ref(source, off).map(Cow::Owned)
        }
        t @ (H_DUPLICATE | H_OFFDUP) => Err(page.unsupported_item(i, t, true)),
        t => Err(page.unsupported_item(i, t, false)),
    }
}

/// How item `i` compares with `key` (bytes, shorter first — Berkeley DB's
/// default order, which sorted hash pages follow). Inline items compare in
/// place; off-page items are read only when their length could match or
/// the order needs them.
fn key_cmp<S: Source + ?Sized>(
    source: &S,
    page: &Page<'_>,
    i: u16,
    key: &[u8],
) -> Result<Ordering, BdbError> {
    let (off, end) = item_range(page, i)?;
    match page.bytes[off] {
        H_KEYDATA => Ok(page.bytes[off + 1..end].cmp(key)),
        _ => Ok(item(source, page, i)?.as_ref().cmp(key)),
    }
}

/// Look `key` up (exact bytes).
pub(crate) fn get<'s, S: Source + ?Sized>(
    layout: &Layout,
    meta: &HashMeta,
    source: &'s S,
    key: &[u8],
) -> Result<Option<Cow<'s, [u8]>>, BdbError> {
    let mut number = meta.bucket_page(meta.bucket(key))?;
    let mut previous = 0;
    let mut hops = 0u32;
    while number != 0 {
        hops += 1;
        if hops > layout.pages {
            return Err(err(Some(number), "bucket page chain loops"));
        }
        let Some(page) = hash_page(layout, source, number, hops == 1)? else {
            return Ok(None);
        };
        page.links_back_to(previous)?;
        previous = number;
        let pairs = page.entries()? / 2;
        if page.kind() == P_HASH {
            // Sorted pages (Berkeley DB 4.6 and later): binary search.
            let (mut lo, mut hi) = (0u16, pairs);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                match key_cmp(source, &page, 2 * mid, key)? {
                    Ordering::Less => lo = mid + 1,
                    Ordering::Greater => hi = mid,
                    Ordering::Equal => return item(source, &page, 2 * mid + 1).map(Some),
                }
            }
        } else {
            for pair in 0..pairs {
                if key_cmp(source, &page, 2 * pair, key)? == Ordering::Equal {
                    return item(source, &page, 2 * pair + 1).map(Some);
                }
            }
        }
        number = page.next()?;
    }
    Ok(None)
}

/// The pair after `cursor` (the first pair when `None`), bucket by bucket.
pub(crate) fn next<'s, S: Source + ?Sized>(
    layout: &Layout,
    meta: &HashMeta,
    source: &'s S,
    cursor: Option<HashCursor>,
) -> Result<Option<(HashCursor, Pair<'s>)>, BdbError> {
    let mut at = match cursor {
        None => HashCursor {
            bucket: 0,
            page: meta.bucket_page(0)?,
            item: 0,
        },
        Some(c) => HashCursor {
            item: c.item.saturating_add(2),
            ..c
        },
    };
    // A bucket's first page starts its chain; later pages must link back.
    let mut previous = match cursor {
        None => Some(0),
        Some(_) => None,
    };
    let limit = u64::from(layout.pages) + u64::from(meta.max_bucket) + 2;
    let mut hops = 0u64;
    loop {
        hops += 1;
        if hops > limit {
            return Err(err(Some(at.page), "bucket page chain loops"));
        }
        let first_in_bucket = at.page == meta.bucket_page(at.bucket)?;
        let page = hash_page(layout, source, at.page, first_in_bucket)?;
        if let (Some(page), Some(previous)) = (&page, previous) {
            page.links_back_to(previous)?;
        }
        if let Some(page) = &page {
            if u32::from(at.item) + 1 < u32::from(page.entries()?) {
                let key = item(source, page, at.item)?;
                let value = item(source, page, at.item + 1)?;
                return Ok(Some((at, (key, value))));
            }
        }
        let next = match &page {
            Some(page) => page.next()?,
            None => 0,
        };
        if next != 0 {
            previous = Some(at.page);
            at = HashCursor {
                page: next,
                item: 0,
                ..at
            };
        } else if at.bucket < meta.max_bucket {
            previous = Some(0);
            let bucket = at.bucket + 1;
            at = HashCursor {
                bucket,
                page: meta.bucket_page(bucket)?,
                item: 0,
            };
        } else {
            return Ok(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_function_is_fnv1_from_zero() {
        assert_eq!(hash(b""), 0);
        assert_eq!(hash(b"a"), 0x61);
        assert_eq!(hash(b"ab"), 0x61u32.wrapping_mul(16_777_619) ^ 0x62);
    }
}
