//! Reading the Berkeley DB files Postfix's `postmap` writes on Linux —
//! `hash:` and `btree:` tables (BDB 4.x/5.x formats, either byte order) —
//! without libdb.
//!
//! The caller supplies random access to the file through [`Source`] (a
//! memory mapping, a byte slice, or reads through a plugin's host); this
//! crate decides nothing about files, locks or caching. When the source
//! lends out its bytes (a mapping), lookups copy nothing but the answer.
//! Every access is bounds-checked and every chain walk is bounded: a corrupt
//! or truncated file gives a [`BdbError`] naming the page, never a panic,
//! an out-of-bounds read or an endless loop.
//!
//! Keys and values are returned as stored: Postfix stores both with a
//! trailing NUL, and learning whether a table does is the caller's business.

mod btree;
mod hash;
mod page;

pub use btree::BtreeCursor;
pub use hash::{hash, HashCursor};

use btree::BtreeMeta;
use hash::HashMeta;
use page::Layout;
use std::borrow::Cow;
use std::fmt;

/// Random access to a database file.
pub trait Source {
    /// The file's size in bytes.
    fn size(&self) -> u64;
    /// `len` bytes at `offset`: borrowed when the source holds the bytes in
    /// memory (a mapping), read into a buffer otherwise.
    fn read(&self, offset: u64, len: usize) -> Result<Cow<'_, [u8]>, String>;
}

impl Source for [u8] {
    fn size(&self) -> u64 {
        self.len() as u64
    }

    fn read(&self, offset: u64, len: usize) -> Result<Cow<'_, [u8]>, String> {
        usize::try_from(offset)
            .ok()
            .and_then(|start| Some((start, start.checked_add(len)?)))
            .and_then(|(start, end)| self.get(start..end))
            .map(Cow::Borrowed)
            .ok_or_else(|| format!("{len} bytes at offset {offset} run past the end of the file"))
    }
}

impl Source for Vec<u8> {
    fn size(&self) -> u64 {
        self.as_slice().size()
    }

    fn read(&self, offset: u64, len: usize) -> Result<Cow<'_, [u8]>, String> {
        self.as_slice().read(offset, len)
    }
}

impl<T: Source + ?Sized> Source for &T {
    fn size(&self) -> u64 {
        (**self).size()
    }

    fn read(&self, offset: u64, len: usize) -> Result<Cow<'_, [u8]>, String> {
        (**self).read(offset, len)
    }
}

/// Why a database could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BdbError {
    /// The page at fault, when there is one (0 is the meta page).
    pub page: Option<u32>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for BdbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.page {
            Some(p) => write!(f, "page {p}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for BdbError {}

pub(crate) fn err(page: Option<u32>, message: impl Into<String>) -> BdbError {
    BdbError {
        page,
        message: message.into(),
    }
}

const HASH_MAGIC: u32 = 0x0006_1561;
const BTREE_MAGIC: u32 = 0x0005_3162;
/// Bytes of the meta page the readers look at (hash spares end at 224).
const META_BYTES: usize = 256;

/// The access method of a database file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Extended linear hashing (`hash:` tables).
    Hash,
    /// B+tree (`btree:` tables).
    Btree,
}

impl Kind {
    /// Postfix's map type name for this access method.
    pub fn map_type(self) -> &'static str {
        match self {
            Kind::Hash => "hash",
            Kind::Btree => "btree",
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Access {
    Hash(HashMeta),
    Btree(BtreeMeta),
}

/// Where a walk over all pairs stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    /// In a hash file.
    Hash(HashCursor),
    /// In a btree file.
    Btree(BtreeCursor),
}

/// A key/value pair as stored, borrowed from the source where it can be.
pub type Pair<'s> = (Cow<'s, [u8]>, Cow<'s, [u8]>);

/// An open database.
pub struct Db<S: Source> {
    source: S,
    layout: Layout,
    access: Access,
}

impl<S: Source> Db<S> {
    /// Read and check the meta page; the file must be a hash or btree
    /// database (see [`Db::kind`]).
    pub fn open(source: S) -> Result<Db<S>, BdbError> {
        let size = source.size();
        if size < 512 {
            return Err(err(
                Some(0),
                format!("file of {size} bytes is too short for a Berkeley DB meta page"),
            ));
        }
        let meta = source.read(0, META_BYTES).map_err(|e| err(Some(0), e))?;
        if meta.len() != META_BYTES {
            return Err(err(Some(0), "short read"));
        }
        let le = u32::from_le_bytes([meta[12], meta[13], meta[14], meta[15]]);
        let (kind, big_endian) = match le {
            HASH_MAGIC => (Kind::Hash, false),
            BTREE_MAGIC => (Kind::Btree, false),
            m if m.swap_bytes() == HASH_MAGIC => (Kind::Hash, true),
            m if m.swap_bytes() == BTREE_MAGIC => (Kind::Btree, true),
            m => {
                return Err(err(
                    Some(0),
                    format!("not a Berkeley DB hash or btree file (magic number {m:#x})"),
                ))
            }
        };
        let word = |at: usize| {
            let b = [meta[at], meta[at + 1], meta[at + 2], meta[at + 3]];
            if big_endian {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        let version = word(16);
        if !(8..=10).contains(&version) {
            return Err(err(
                Some(0),
                format!(
                    "unsupported {} version {version} (Berkeley DB 4.x/5.x files are read)",
                    kind.map_type()
                ),
            ));
        }
        let page_size = word(20);
        if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
            return Err(err(Some(0), format!("bad page size {page_size}")));
        }
        let encrypted = meta[24];
        if encrypted != 0 {
            return Err(err(Some(0), "encrypted databases are not supported"));
        }
        let layout = Layout {
            big_endian,
            page_size,
            pages: u32::try_from(size / u64::from(page_size)).unwrap_or(u32::MAX),
        };
        let access = match kind {
            Kind::Hash => Access::Hash(HashMeta::parse(&layout, &meta)?),
            Kind::Btree => Access::Btree(BtreeMeta::parse(&layout, &meta)?),
        };
        drop(meta);
        Ok(Db {
            source,
            layout,
            access,
        })
    }

    /// The access method.
    pub fn kind(&self) -> Kind {
        match self.access {
            Access::Hash(_) => Kind::Hash,
            Access::Btree(_) => Kind::Btree,
        }
    }

    /// The page size.
    pub fn page_size(&self) -> u32 {
        self.layout.page_size
    }

    /// True when the file was written on a big-endian machine.
    pub fn big_endian(&self) -> bool {
        self.layout.big_endian
    }

    /// The data stored under `key`, exact bytes (Postfix keys carry a
    /// trailing NUL).
    pub fn get(&self, key: &[u8]) -> Result<Option<Cow<'_, [u8]>>, BdbError> {
        match &self.access {
            Access::Hash(m) => hash::get(&self.layout, m, &self.source, key),
            Access::Btree(m) => btree::get(&self.layout, m, &self.source, key),
        }
    }

    /// The pair after `cursor` (the first pair when `None`) and the cursor
    /// to continue from; `None` at the end. Hash files list bucket by
    /// bucket, btree files in key order.
    pub fn next(&self, cursor: Option<Cursor>) -> Result<Option<(Cursor, Pair<'_>)>, BdbError> {
        match (&self.access, cursor) {
            (Access::Hash(m), None) => Ok(hash::next(&self.layout, m, &self.source, None)?
                .map(|(c, pair)| (Cursor::Hash(c), pair))),
            (Access::Hash(m), Some(Cursor::Hash(c))) => {
                Ok(hash::next(&self.layout, m, &self.source, Some(c))?
                    .map(|(c, pair)| (Cursor::Hash(c), pair)))
            }
            (Access::Btree(m), None) => Ok(btree::next(&self.layout, m, &self.source, None)?
                .map(|(c, pair)| (Cursor::Btree(c), pair))),
            (Access::Btree(m), Some(Cursor::Btree(c))) => {
                Ok(btree::next(&self.layout, m, &self.source, Some(c))?
                    .map(|(c, pair)| (Cursor::Btree(c), pair)))
            }
            _ => Err(err(None, "cursor from a database of another kind")),
        }
    }

    /// Every pair, checking the whole file on the way (a walk that ends in
    /// an error reports it). For tests and `proxymapd check`.
    pub fn check(&self) -> Result<usize, BdbError> {
        let mut count = 0usize;
        let mut cursor = None;
        while let Some((c, _)) = self.next(cursor)? {
            count += 1;
            cursor = Some(c);
        }
        Ok(count)
    }
}

/// Open `bytes` as a database and exercise every read path: lookups of
/// `probes`, and a bounded walk. Errors are fine; panics, out-of-bounds
/// reads and endless loops are bugs. The body of the fuzz targets.
pub fn exercise(bytes: &[u8], probes: &[&[u8]]) {
    if let Ok(db) = Db::open(bytes) {
        for key in probes {
            let _ = db.get(key);
        }
        let mut cursor = None;
        for _ in 0..10_000 {
            match db.next(cursor) {
                Ok(Some((c, (k, _)))) => {
                    let _ = db.get(&k);
                    cursor = Some(c);
                }
                _ => break,
            }
        }
    }
}
