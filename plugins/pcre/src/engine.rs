//! The matching side of pcre tables. Each pattern is parsed as PCRE2 reads
//! it (byte mode, C-locale tables) and compiled once:
//! - a regular pattern (no lookaround, back-references, atomic groups or
//!   possessive repeats) goes to the `regex` crate's bytes engine and into a
//!   set of all such patterns, which says in one pass which can match;
//!   leftmost-first groups are what PCRE2 reports;
//! - any other pattern, and one that repeats a capture group that can match
//!   empty (PCRE2 keeps the last, empty repetition; Rust's automata skip
//!   it), goes to `fancy-regex`, a backtracking engine, over
//!   the key as Latin-1 text (one character per byte). A pattern that
//!   backtracks without end is stopped by the plugin's time limit.
//!
//! PCRE2's `$` also matches before a newline that ends the key; the bytes
//! engine cannot look ahead, so keys ending in a newline use a Latin-1
//! version of the pattern that spells this out.

use proxymapd_pattern::ast::{Assertion, Node};
use proxymapd_pattern::emit::{emit, Target};
use proxymapd_pattern::pcre::{self, Options};
use proxymapd_pattern::table::{Compiled, Compiler};
use proxymapd_pattern::{latin1, latin1_offset};
use std::cell::OnceCell;

/// Compile limit for one pattern and for the set of all patterns.
const SIZE_LIMIT: usize = 64 << 20;

/// One compiled rule pattern.
struct PcrePattern {
    node: Node,
    /// The bytes engine, for regular patterns.
    regex: Option<regex::bytes::Regex>,
    /// Position in the set, for regular patterns.
    set_index: Option<usize>,
    /// The backtracking engine over Latin-1 text; built at load for
    /// patterns that need it, else on first use by a newline-ended key.
    fancy: OnceCell<Result<fancy_regex::Regex, String>>,
    /// Whether a trailing newline in the key changes what `$` means here.
    newline_sensitive: bool,
}

fn build_fancy(node: &Node) -> Result<fancy_regex::Regex, String> {
    let text = emit(node, Target::Latin1)?;
    fancy_regex::RegexBuilder::new(&text)
        .backtrack_limit(usize::MAX)
        .build()
        .map_err(|e| e.to_string())
}

impl PcrePattern {
    fn fancy(&self) -> Result<&fancy_regex::Regex, String> {
        self.fancy
            .get_or_init(|| build_fancy(&self.node))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Whether this key must go to the backtracking engine.
    fn use_fancy(&self, key: &[u8]) -> bool {
        self.regex.is_none() || self.newline_sensitive && key.last() == Some(&b'\n')
    }
}

/// All patterns of one table.
#[derive(Default)]
pub struct Patterns {
    patterns: Vec<PcrePattern>,
    set: Option<regex::bytes::RegexSet>,
}

impl Compiler for Patterns {
    fn compile(&mut self, pattern: &[u8], flags: &[u8]) -> Result<Compiled, String> {
        let mut options = Options {
            caseless: true,
            dotall: true,
            ..Options::default()
        };
        let mut anchored = false;
        let mut warnings = Vec::new();
        for &f in flags {
            match f {
                b'i' => options.caseless = !options.caseless,
                b'm' => options.multiline = !options.multiline,
                b's' => options.dotall = !options.dotall,
                b'x' => options.extended = !options.extended,
                b'A' => anchored = !anchored,
                b'E' => options.dollar_endonly = !options.dollar_endonly,
                b'U' => options.ungreedy = !options.ungreedy,
                b'X' => warnings.push("ignoring obsolete regexp option \"X\"".to_string()),
                _ => {
                    return Err(format!(
                        "unknown regexp option \"{}\": skipping this rule",
                        f as char
                    ))
                }
            }
        }
        let parsed = pcre::parse(pattern, options)?;
        let node = if anchored {
            Node::Concat(vec![
                Node::Assert(Assertion::TextStart),
                Node::Group {
                    node: Box::new(parsed.node),
                    capture: None,
                },
            ])
        } else {
            parsed.node
        };
        let newline_sensitive = node.has_assertion(Assertion::TextEndOrFinalNewline);
        let automata = if node.repeats_empty_capture() {
            // Rust's automata would drop a last, empty repetition's group.
            Err("empty repetition".to_string())
        } else {
            emit(&node, Target::Bytes)
        };
        let regex = match automata {
            Ok(text) => Some(
                regex::bytes::RegexBuilder::new(&text)
                    .unicode(false)
                    .size_limit(SIZE_LIMIT)
                    .build()
                    .map_err(|e| format!("error in regex at offset 0: {e}"))?,
            ),
            Err(_) => None,
        };
        let compiled = PcrePattern {
            node,
            regex,
            set_index: None,
            fancy: OnceCell::new(),
            newline_sensitive,
        };
        if compiled.regex.is_none() {
            compiled
                .fancy()
                .map_err(|e| format!("error in regex at offset 0: {e}"))?;
        }
        self.patterns.push(compiled);
        Ok(Compiled {
            id: self.patterns.len() - 1,
            groups: parsed.captures,
            warnings,
        })
    }
}

/// Which regular patterns match one key.
pub struct Scan(Option<regex::bytes::SetMatches>);

/// A key as Latin-1 text, made once per lookup when first needed.
pub struct KeyText<'a> {
    key: &'a [u8],
    text: OnceCell<String>,
}

impl<'a> KeyText<'a> {
    /// Wrap `key`.
    pub fn new(key: &'a [u8]) -> KeyText<'a> {
        KeyText {
            key,
            text: OnceCell::new(),
        }
    }
    fn text(&self) -> &str {
        self.text.get_or_init(|| latin1(self.key))
    }
}

impl Patterns {
    /// Build the set of regular patterns once loading is done.
    pub fn finish(&mut self) {
        let mut texts = Vec::new();
        for p in &mut self.patterns {
            if let Some(r) = &p.regex {
                p.set_index = Some(texts.len());
                texts.push(r.as_str().to_string());
            }
        }
        if texts.len() < 2 {
            for p in &mut self.patterns {
                p.set_index = None;
            }
            return;
        }
        self.set = regex::bytes::RegexSetBuilder::new(texts)
            .unicode(false)
            .size_limit(SIZE_LIMIT * 4)
            .dfa_size_limit(SIZE_LIMIT)
            .build()
            .ok();
    }

    /// Run the set over `key`.
    pub fn scan(&self, key: &[u8]) -> Scan {
        Scan(self.set.as_ref().map(|s| s.matches(key)))
    }

    /// Whether pattern `id` matches. An engine error (which a time limit
    /// makes unlikely) counts as no match, as in Postfix.
    pub fn is_match(&self, scan: &Scan, id: usize, key: &KeyText) -> Result<bool, String> {
        let p = &self.patterns[id];
        if p.use_fancy(key.key) {
            return p.fancy()?.is_match(key.text()).map_err(|e| e.to_string());
        }
        match (&scan.0, p.set_index) {
            (Some(m), Some(i)) => Ok(m.matched(i)),
            _ => Ok(p.regex.as_ref().is_some_and(|r| r.is_match(key.key))),
        }
    }

    /// The groups of pattern `id`'s match (index 0 is the whole match), as
    /// byte ranges of the key.
    pub fn groups(&self, id: usize, key: &KeyText) -> Result<Vec<Option<(usize, usize)>>, String> {
        let p = &self.patterns[id];
        if p.use_fancy(key.key) {
            let text = key.text();
            let Some(caps) = p.fancy()?.captures(text).map_err(|e| e.to_string())? else {
                return Ok(Vec::new());
            };
            return Ok((0..caps.len())
                .map(|g| {
                    caps.get(g)
                        .map(|m| (latin1_offset(text, m.start()), latin1_offset(text, m.end())))
                })
                .collect());
        }
        let Some(caps) = p.regex.as_ref().and_then(|r| r.captures(key.key)) else {
            return Ok(Vec::new());
        };
        Ok((0..caps.len())
            .map(|g| caps.get(g).map(|m| (m.start(), m.end())))
            .collect())
    }
}
