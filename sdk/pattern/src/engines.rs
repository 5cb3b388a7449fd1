//! The engine pieces both pattern plugins run: a set of all regular
//! patterns of a table that says in one pass which of them match a key
//! (`regex`, bytes API), the backtracking engine for the rest
//! (`fancy-regex` over the key read as Latin-1), and the per-lookup state
//! that carries the key between them.

use crate::ast::Node;
use crate::emit::{emit, Target};
use crate::{latin1, latin1_offset};
use std::cell::OnceCell;

/// Compile limit for one pattern; the set of all patterns gets four times
/// as much.
pub const SIZE_LIMIT: usize = 64 << 20;

/// Capture groups of a match as byte ranges of the key (index 0: the whole
/// match; None: the group took no part).
pub type Groups = Vec<Option<(usize, usize)>>;

/// Compile [`Target::Bytes`] pattern text for the `regex` bytes engine.
pub fn bytes_regex(text: &str) -> Result<regex::bytes::Regex, regex::Error> {
    regex::bytes::RegexBuilder::new(text)
        .unicode(false)
        .size_limit(SIZE_LIMIT)
        .build()
}

/// The groups of a `regex` bytes match.
pub fn bytes_groups(regex: &regex::bytes::Regex, key: &[u8]) -> Groups {
    regex.captures(key).map_or_else(Vec::new, |caps| {
        caps.iter()
            .map(|m| m.map(|m| (m.start(), m.end())))
            .collect()
    })
}

/// One set of a table's regular patterns.
#[derive(Default)]
pub struct RegularSet(Option<regex::bytes::RegexSet>);

impl RegularSet {
    /// A set over `texts` ([`Target::Bytes`] pattern texts, in the order
    /// their set indexes give). Fewer than two patterns, or a table too
    /// large for one automaton, give no set: each pattern then runs alone.
    pub fn build(texts: Vec<String>) -> RegularSet {
        if texts.len() < 2 {
            return RegularSet(None);
        }
        RegularSet(
            regex::bytes::RegexSetBuilder::new(texts)
                .unicode(false)
                .size_limit(SIZE_LIMIT * 4)
                .dfa_size_limit(SIZE_LIMIT)
                .build()
                .ok(),
        )
    }

    /// The per-lookup state for `key`, with the set already run over it.
    pub fn scan<'k>(&self, key: &'k [u8]) -> Scan<'k> {
        Scan {
            key,
            text: OnceCell::new(),
            set: self.0.as_ref().map(|s| s.matches(key)),
        }
    }
}

/// One lookup's key: what the set found, and the key as Latin-1 text for
/// the backtracking engine, made on first use.
pub struct Scan<'k> {
    /// The key.
    pub key: &'k [u8],
    text: OnceCell<String>,
    set: Option<regex::bytes::SetMatches>,
}

impl Scan<'_> {
    /// Whether the regular pattern at `set_index` (or `regex`, when there is
    /// no set) matches.
    pub fn regular_match(&self, set_index: Option<usize>, regex: &regex::bytes::Regex) -> bool {
        match (&self.set, set_index) {
            (Some(m), Some(i)) => m.matched(i),
            _ => regex.is_match(self.key),
        }
    }

    /// The key as Latin-1 text.
    pub fn text(&self) -> &str {
        self.text.get_or_init(|| latin1(self.key))
    }
}

/// A pattern on the backtracking engine, matched against Latin-1 text.
/// There is no backtrack limit: the plugin's call time limit stops a
/// pattern that backtracks without end.
pub struct Backtracking(fancy_regex::Regex);

impl Backtracking {
    /// Compile `node`.
    pub fn new(node: &Node) -> Result<Backtracking, String> {
        let text = emit(node, Target::Latin1)?;
        fancy_regex::RegexBuilder::new(&text)
            .backtrack_limit(usize::MAX)
            .build()
            .map(Backtracking)
            .map_err(|e| e.to_string())
    }

    /// Whether the pattern matches the key.
    pub fn is_match(&self, scan: &Scan) -> Result<bool, String> {
        self.0.is_match(scan.text()).map_err(|e| e.to_string())
    }

    /// The groups of the first match, as byte ranges of the key.
    pub fn groups(&self, scan: &Scan) -> Result<Groups, String> {
        let text = scan.text();
        let Some(caps) = self.0.captures(text).map_err(|e| e.to_string())? else {
            return Ok(Vec::new());
        };
        Ok(caps
            .iter()
            .map(|m| m.map(|m| (latin1_offset(text, m.start()), latin1_offset(text, m.end()))))
            .collect())
    }
}
