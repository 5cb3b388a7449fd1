//! Postfix pattern tables (regexp_table(5), pcre_table(5)) for proxymapd
//! plugins.
//!
//! The pieces fit together like this:
//! - [`table`] reads rule lines (`/pattern/flags result`, `!`, `if`/`endif`)
//!   and walks them for a lookup; it knows nothing of regular expressions
//!   and asks a [`table::Compiler`] to turn each pattern into an id.
//! - [`replacement`] parses and expands `$1`, `${1}`, `$(1)` and `$$`.
//! - [`posix`] (glibc `regcomp` as Postfix calls it, C locale) and [`pcre`]
//!   (PCRE2 without UTF) parse pattern text into the byte-level tree of
//!   [`ast`], with case-insensitivity and newline options already applied.
//! - [`emit`] writes a tree as a pattern for the `regex` crate (bytes API)
//!   or for `fancy-regex` (keys as Latin-1 text), so both match bytes the
//!   way Postfix's C libraries do; [`engines`] runs them.
//! - [`map`] ties a table to a dialect's [`map::Engine`]: the lookup, and
//!   with the `guest` feature the plugin map type itself.

pub mod ast;
pub mod emit;
pub mod engines;
pub mod inline;
pub mod map;
pub mod pcre;
pub mod posix;
pub mod replacement;
pub mod table;

/// Each byte of `bytes` as the Unicode scalar with the same number (Latin-1),
/// so a text-only engine sees one character per byte.
pub fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| b as char).collect()
}

/// The byte offset in the original bytes of a byte offset into
/// [`latin1`]`(bytes)`.
pub fn latin1_offset(text: &str, offset: usize) -> usize {
    text[..offset].chars().count()
}
