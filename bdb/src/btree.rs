//! The btree access method (`btree:` tables, and the address-verify and
//! postscreen caches Postfix keeps in them): descent from the root through
//! internal pages (type 3) to leaf pages (type 5) holding key/data pairs,
//! leaves chained left to right for sequencing.
//!
//! The root page number is at 88 of the meta page. Items are found through
//! the page's offset table and carry their own length: a leaf item is
//! `len u16, type u8, data` (type 1) or an overflow reference (type 3:
//! first page at +4, total length at +8); an internal item is `len u16,
//! type u8, pad, child page u32, record count u32, key`. The type's high bit
//! marks a deleted item. Keys compare as byte strings, shorter first — the
//! default Berkeley DB ordering Postfix uses.

use crate::page::{Layout, Page};
use crate::{err, BdbError, Pair, Source};
use std::borrow::Cow;
use std::cmp::Ordering;

const P_IBTREE: u8 = 3;
const P_LBTREE: u8 = 5;
const B_KEYDATA: u8 = 1;
const B_DUPLICATE: u8 = 2;
const B_OVERFLOW: u8 = 3;
const B_DELETE: u8 = 0x80;
/// Deeper trees than this mean a loop in a corrupt file.
const MAX_DEPTH: usize = 64;

/// Btree geometry from the meta page.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BtreeMeta {
    pub root: u32,
}

impl BtreeMeta {
    /// Parse the root page number from the meta page bytes.
    pub fn parse(layout: &Layout, meta: &[u8]) -> Result<BtreeMeta, BdbError> {
        let root = layout.u32_of([meta[88], meta[89], meta[90], meta[91]]);
        if root == 0 || root >= layout.pages {
            return Err(err(
                Some(0),
                format!(
                    "root page {root} is outside the file ({} pages)",
                    layout.pages
                ),
            ));
        }
        Ok(BtreeMeta { root })
    }
}

/// Where a walk over a btree file stands: a leaf page and a pair on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BtreeCursor {
    page: u32,
    item: u16,
}

/// A leaf or internal item's type byte (deleted bit included) and where its
/// payload starts.
fn item_type(page: &Page<'_>, i: u16) -> Result<(usize, u8), BdbError> {
    let off = page.offset(i)?;
    Ok((off, page.u8(off + 2)?))
}

/// The bytes of an item at `off`: inline data after a header of `header`
/// bytes, or a leaf overflow reference.
fn payload<'s, S: Source + ?Sized>(
    source: &'s S,
    page: &Page<'s>,
    off: usize,
    header: usize,
    kind: u8,
    i: u16,
) -> Result<Cow<'s, [u8]>, BdbError> {
    match kind & !B_DELETE {
        B_KEYDATA => {
            let len = page.u16(off)? as usize;
            page.data(off + header, len)
        }
        B_OVERFLOW => page.overflow_ref(source, off).map(Cow::Owned),
        t @ B_DUPLICATE => Err(page.unsupported_item(i, t, true)),
        t => Err(page.unsupported_item(i, t, false)),
    }
}

/// Item `i` of a leaf page.
fn leaf_item<'s, S: Source + ?Sized>(
    source: &'s S,
    page: &Page<'s>,
    i: u16,
) -> Result<Cow<'s, [u8]>, BdbError> {
    let (off, kind) = item_type(page, i)?;
    payload(source, page, off, 3, kind, i)
}

/// The key and child page of item `i` of an internal page.
fn internal_item<'s, S: Source + ?Sized>(
    source: &'s S,
    page: &Page<'s>,
    i: u16,
) -> Result<(Cow<'s, [u8]>, u32), BdbError> {
    let (off, kind) = item_type(page, i)?;
    let child = page.u32(off + 4)?;
    let key = match kind & !B_DELETE {
        // An overflow key's reference sits where an inline key's bytes would.
        B_OVERFLOW => Cow::Owned(page.overflow_ref(source, off + 12)?),
        _ => payload(source, page, off, 12, kind, i)?,
    };
    Ok((key, child))
}

fn typed_page<'s, S: Source + ?Sized>(
    layout: &Layout,
    source: &'s S,
    number: u32,
) -> Result<Page<'s>, BdbError> {
    let page = layout.page(source, number)?;
    match page.kind() {
        P_IBTREE | P_LBTREE => Ok(page),
        k => Err(err(
            Some(number),
            format!("expected a btree page, found page type {k}"),
        )),
    }
}

/// The leaf page that holds `key` if anything does; `None` for a descent to
/// the leftmost leaf.
fn find_leaf<'s, S: Source + ?Sized>(
    layout: &Layout,
    meta: &BtreeMeta,
    source: &'s S,
    key: Option<&[u8]>,
) -> Result<Page<'s>, BdbError> {
    let mut page = typed_page(layout, source, meta.root)?;
    for _ in 0..MAX_DEPTH {
        if page.kind() == P_LBTREE {
            return Ok(page);
        }
        let n = page.entries()?;
        if n == 0 {
            return Err(err(Some(page.number), "internal page without entries"));
        }
        // The last child whose separator is <= key; item 0 is below everything.
        let child = match key {
            None => internal_item(source, &page, 0)?.1,
            Some(key) => {
                let (mut lo, mut hi) = (0u16, n - 1);
                while lo < hi {
                    let mid = lo + (hi - lo).div_ceil(2);
                    if internal_item(source, &page, mid)?.0.as_ref() <= key {
                        lo = mid;
                    } else {
                        hi = mid - 1;
                    }
                }
                internal_item(source, &page, lo)?.1
            }
        };
        let level = page.level();
        let next = typed_page(layout, source, child)?;
        if next.level() >= level {
            return Err(err(
                Some(child),
                format!(
                    "child of level {} below a page of level {level}",
                    next.level()
                ),
            ));
        }
        page = next;
    }
    Err(err(Some(page.number), "tree deeper than any real file"))
}

/// Look `key` up (exact bytes).
pub(crate) fn get<'s, S: Source + ?Sized>(
    layout: &Layout,
    meta: &BtreeMeta,
    source: &'s S,
    key: &[u8],
) -> Result<Option<Cow<'s, [u8]>>, BdbError> {
    let page = find_leaf(layout, meta, source, Some(key))?;
    let pairs = page.entries()? / 2;
    // First pair whose key is >= `key`.
    let (mut lo, mut hi) = (0u16, pairs);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if leaf_item(source, &page, 2 * mid)?.as_ref().cmp(key) == Ordering::Less {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    for pair in lo..pairs {
        if leaf_item(source, &page, 2 * pair)?.as_ref() != key {
            break;
        }
        let (_, kind) = item_type(&page, 2 * pair + 1)?;
        if kind & B_DELETE == 0 {
            return leaf_item(source, &page, 2 * pair + 1).map(Some);
        }
    }
    Ok(None)
}

/// The pair after `cursor` (the first pair when `None`), in key order.
pub(crate) fn next<'s, S: Source + ?Sized>(
    layout: &Layout,
    meta: &BtreeMeta,
    source: &'s S,
    cursor: Option<BtreeCursor>,
) -> Result<Option<(BtreeCursor, Pair<'s>)>, BdbError> {
    let mut at = match cursor {
        None => BtreeCursor {
            page: find_leaf(layout, meta, source, None)?.number,
            item: 0,
        },
        Some(c) => BtreeCursor {
            item: c.item.saturating_add(2),
            ..c
        },
    };
    // The leftmost leaf starts the chain; later leaves must link back.
    let mut previous = cursor.is_none().then_some(0);
    let mut hops = 0u32;
    loop {
        hops += 1;
        if hops > layout.pages {
            return Err(err(Some(at.page), "leaf page chain loops"));
        }
        let page = typed_page(layout, source, at.page)?;
        if page.kind() != P_LBTREE {
            return Err(err(Some(at.page), "leaf chain leads to an internal page"));
        }
        if let Some(previous) = previous {
            page.links_back_to(previous)?;
        }
        let n = page.entries()?;
        while u32::from(at.item) + 1 < u32::from(n) {
            let (_, kind) = item_type(&page, at.item + 1)?;
            if kind & B_DELETE == 0 {
                let key = leaf_item(source, &page, at.item)?;
                let value = leaf_item(source, &page, at.item + 1)?;
                return Ok(Some((at, (key, value))));
            }
            at.item += 2;
        }
        match page.next()? {
            0 => return Ok(None),
            next => {
                previous = Some(page.number);
                at = BtreeCursor {
                    page: next,
                    item: 0,
                }
            }
        }
    }
}
