//! Pages of a Berkeley DB file: the common 26-byte page header, byte-order
//! aware field access, bounds-checked slicing and overflow chains. Shared by
//! the hash and btree readers; every access is checked so a corrupt page is
//! an error naming it, never a panic.

use crate::{err, BdbError, Source};
use std::borrow::Cow;

/// Size of the header every page (except the meta page) starts with.
pub(crate) const PAGE_HEADER: usize = 26;
/// Page type of overflow pages (long keys and values).
pub(crate) const P_OVERFLOW: u8 = 7;

/// Byte order and geometry of one file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    pub big_endian: bool,
    pub page_size: u32,
    pub pages: u32,
}

impl Layout {
    /// A u32 in the file's byte order from `b`.
    pub fn u32_of(&self, b: [u8; 4]) -> u32 {
        if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    }

    /// Read page `number` (never the meta page).
    pub fn page<'s, S: Source + ?Sized>(
        &self,
        source: &'s S,
        number: u32,
    ) -> Result<Page<'s>, BdbError> {
        if number == 0 || number >= self.pages {
            return Err(err(
                Some(number),
                format!(
                    "page number out of range (the file has {} pages)",
                    self.pages
                ),
            ));
        }
        let bytes = source
            .read(
                u64::from(number) * u64::from(self.page_size),
                self.page_size as usize,
            )
            .map_err(|e| err(Some(number), e))?;
        if bytes.len() != self.page_size as usize {
            return Err(err(Some(number), "short read"));
        }
        Ok(Page {
            number,
            bytes,
            layout: *self,
        })
    }

    /// The `total` bytes of an overflow chain starting at page `first`.
    pub fn overflow<S: Source + ?Sized>(
        &self,
        source: &S,
        first: u32,
        total: usize,
    ) -> Result<Vec<u8>, BdbError> {
        let max_total = (self.pages as usize).saturating_mul(self.page_size as usize);
        if total > max_total {
            return Err(err(
                Some(first),
                format!("overflow item of {total} bytes is larger than the file"),
            ));
        }
        let mut out = Vec::with_capacity(total);
        let mut number = first;
        let mut hops = 0u32;
        while out.len() < total {
            hops += 1;
            if number == 0 || hops > self.pages {
                return Err(err(Some(number), "overflow chain ends early or loops"));
            }
            let page = self.page(source, number)?;
            if page.kind() != P_OVERFLOW {
                return Err(err(
                    Some(number),
                    format!("expected an overflow page, found page type {}", page.kind()),
                ));
            }
            let len = page.u16(22)? as usize;
            out.extend_from_slice(page.slice(PAGE_HEADER, len)?);
            number = page.next()?;
        }
        out.truncate(total);
        Ok(out)
    }
}

/// One page, borrowed from a mapping or read into memory.
pub(crate) struct Page<'s> {
    pub number: u32,
    pub bytes: Cow<'s, [u8]>,
    pub layout: Layout,
}

impl<'s> Page<'s> {
    fn field<const N: usize>(&self, at: usize) -> Result<[u8; N], BdbError> {
        self.bytes
            .get(at..at + N)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                err(
                    Some(self.number),
                    format!("field at offset {at} is past the page end"),
                )
            })
    }

    /// A u16 field at byte `at`.
    pub fn u16(&self, at: usize) -> Result<u16, BdbError> {
        let b = self.field::<2>(at)?;
        Ok(if self.layout.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    }

    /// A u32 field at byte `at`.
    pub fn u32(&self, at: usize) -> Result<u32, BdbError> {
        Ok(self.layout.u32_of(self.field::<4>(at)?))
    }

    /// A u8 field at byte `at`.
    pub fn u8(&self, at: usize) -> Result<u8, BdbError> {
        Ok(self.field::<1>(at)?[0])
    }

    /// The page type.
    pub fn kind(&self) -> u8 {
        self.bytes[25]
    }

    /// The btree level (1 for leaves).
    pub fn level(&self) -> u8 {
        self.bytes[24]
    }

    /// The next page in this page's chain (0 for none).
    pub fn next(&self) -> Result<u32, BdbError> {
        self.u32(16)
    }

    /// The previous page in this page's chain (0 for none).
    pub fn prev(&self) -> Result<u32, BdbError> {
        self.u32(12)
    }

    /// Check that this page links back to `previous` (0: chain start).
    /// Chains whose back links agree cannot loop, so walks end.
    pub fn links_back_to(&self, previous: u32) -> Result<(), BdbError> {
        let prev = self.prev()?;
        if prev != previous {
            return Err(err(
                Some(self.number),
                format!("chain is broken: page links back to {prev}, expected {previous}"),
            ));
        }
        Ok(())
    }

    /// Number of item slots.
    pub fn entries(&self) -> Result<u16, BdbError> {
        let n = self.u16(20)?;
        if PAGE_HEADER + 2 * n as usize > self.bytes.len() {
            return Err(err(
                Some(self.number),
                format!("{n} entries do not fit in the page"),
            ));
        }
        Ok(n)
    }

    /// The offset of item `i` (checked against the entry count).
    pub fn offset(&self, i: u16) -> Result<usize, BdbError> {
        let n = self.entries()?;
        if i >= n {
            return Err(err(Some(self.number), format!("item {i} of {n}")));
        }
        let off = self.u16(PAGE_HEADER + 2 * i as usize)? as usize;
        if off < PAGE_HEADER || off >= self.bytes.len() {
            return Err(err(
                Some(self.number),
                format!("item {i} has a bad offset {off}"),
            ));
        }
        Ok(off)
    }

    /// The bytes an overflow reference at `at` points to: the first
    /// overflow page at +4 and the total length at +8 (the same layout in
    /// hash and btree items).
    pub fn overflow_ref<S: Source + ?Sized>(
        &self,
        source: &S,
        at: usize,
    ) -> Result<Vec<u8>, BdbError> {
        let first = self.u32(at + 4)?;
        let total = self.u32(at + 8)? as usize;
        self.layout.overflow(source, first, total)
    }

    /// The error for item `i` of type `kind`, which the readers do not handle.
    pub fn unsupported_item(&self, i: u16, kind: u8, duplicates: bool) -> BdbError {
        let message = if duplicates {
            format!("item {i}: duplicate data items are not supported (Postfix never writes them)")
        } else {
            format!("item {i}: unknown item type {kind}")
        };
        err(Some(self.number), message)
    }

    /// `len` bytes at `at`, checked.
    pub fn slice(&self, at: usize, len: usize) -> Result<&[u8], BdbError> {
        at.checked_add(len)
            .and_then(|end| self.bytes.get(at..end))
            .ok_or_else(|| {
                err(
                    Some(self.number),
                    format!("{len} bytes at offset {at} run past the page end"),
                )
            })
    }

    /// Like [`Page::slice`], but borrowed for as long as the source when the
    /// page is mapped, and copied when it was read into memory.
    pub fn data(&self, at: usize, len: usize) -> Result<Cow<'s, [u8]>, BdbError> {
        self.slice(at, len)?;
        Ok(match &self.bytes {
            Cow::Borrowed(b) => {
                let b: &'s [u8] = b;
                Cow::Borrowed(&b[at..at + len])
            }
            Cow::Owned(v) => Cow::Owned(v[at..at + len].to_vec()),
        })
    }
}
