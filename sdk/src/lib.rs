//! proxymapd plugin SDK: write a Postfix map type in Rust and export it as a
//! WebAssembly component that proxymapd loads from its plugin directory.
//!
//! Implement [`MapType`] for your table type and call [`export_map_type!`]:
//!
//! ```ignore
//! use proxymapd_sdk::{MapType, OpenRequest, Error, flags};
//!
//! struct Upper;
//!
//! impl MapType for Upper {
//!     fn open(_req: &OpenRequest) -> Result<Self, Error> { Ok(Upper) }
//!     fn lookup(&self, key: &[u8], _flags: u32) -> Result<Option<Vec<u8>>, Error> {
//!         Ok(Some(key.to_ascii_uppercase()))
//!     }
//! }
//!
//! proxymapd_sdk::export_map_type!(Upper);
//! ```
//!
//! Build it with `sdk/build-plugin.sh PATH/TO/CRATE OUT.wasm`. The helpers
//! here — [`flags`], [`source`] (postmap source syntax), [`fold`] (key case
//! folding) and [`nul`] (trailing-NUL conventions) — are the same code the
//! proxymapd host uses, so plugins behave like built-in map types.

pub mod braces;
pub mod flags;
pub mod fold;
pub mod nul;
pub mod source;

#[cfg(feature = "guest")]
mod guest;
#[cfg(feature = "guest")]
pub use guest::*;

use std::fmt;

/// Everything known about a table being opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenRequest {
    /// The map type (`cdb` in `cdb:/etc/postfix/virtual`).
    pub map_type: String,
    /// The table name (`/etc/postfix/virtual`).
    pub name: String,
    /// Postfix open flags ([`flags`]).
    pub flags: u32,
    /// The files the table may read, in order; read file `i` with
    /// `read_file(i)`.
    pub files: Vec<String>,
    /// Opened by the read-write proxywrite service.
    pub writable: bool,
    /// Full Unicode key folding is on.
    pub utf8: bool,
}

/// Why an operation produced no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Temporary: the client should try again later (status RETRY).
    Retry(String),
    /// Table or configuration error (status CONFIG).
    Config(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Retry(m) => write!(f, "temporary failure: {m}"),
            Error::Config(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

/// A key and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// Where a sequence continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqStep {
    /// Restart at the first entry.
    First,
    /// Continue after the entry returned last.
    Next,
}

/// A Postfix map type. One value is one open table; proxymapd may open the
/// same table in several plugin instances, each used by one call at a time,
/// so methods take `&self` (keep cursors in a `Cell`/`RefCell`).
pub trait MapType: Sized + 'static {
    /// Open a table: read its files, parse, index. Report syntax errors with
    /// file and line (see [`source`]).
    fn open(request: &OpenRequest) -> Result<Self, Error>;

    /// Implementation flags: [`flags::FIXED`] for exact-key tables (the
    /// default), [`flags::PATTERN`] for pattern tables, plus learned
    /// TRY0NULL/TRY1NULL.
    fn flags(&self) -> u32 {
        flags::FIXED
    }

    /// Look `key` up with the request's `flags`.
    fn lookup(&self, key: &[u8], flags: u32) -> Result<Option<Vec<u8>>, Error>;

    /// Store a value (proxywrite). Read-only map types keep the default.
    fn update(&self, _key: &[u8], _value: &[u8], _flags: u32) -> Result<(), Error> {
        Err(Error::Config("update operation is not supported".into()))
    }

    /// Remove a key; `Ok(false)` when absent. Read-only types keep the default.
    fn delete(&self, _key: &[u8], _flags: u32) -> Result<bool, Error> {
        Err(Error::Config("delete operation is not supported".into()))
    }

    /// First or next entry; `None` at the end.
    fn sequence(&self, _step: SeqStep, _flags: u32) -> Result<Option<Entry>, Error> {
        Err(Error::Config("sequence operation is not supported".into()))
    }
}
