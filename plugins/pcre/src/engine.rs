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
use proxymapd_pattern::engines::{
    bytes_groups, bytes_regex, Backtracking, Groups, RegularSet, Scan,
};
use proxymapd_pattern::map::Engine;
use proxymapd_pattern::pcre::{self, Options};
use proxymapd_pattern::replacement::Wording;
use proxymapd_pattern::table::{Compiled, Compiler, Dialect};
use std::cell::OnceCell;

/// One compiled rule pattern.
struct PcrePattern {
    node: Node,
    /// The bytes engine, for regular patterns.
    regex: Option<regex::bytes::Regex>,
    /// Position in the set, for regular patterns.
    set_index: Option<usize>,
    /// The backtracking engine; built at load for patterns that need it,
    /// else on first use by a newline-ended key.
    fancy: OnceCell<Result<Backtracking, String>>,
    /// Whether a trailing newline in the key changes what `$` means here.
    newline_sensitive: bool,
}

impl PcrePattern {
    fn fancy(&self) -> Result<&Backtracking, String> {
        self.fancy
            .get_or_init(|| Backtracking::new(&self.node))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The bytes engine, unless this key must go to the backtracking one.
    fn regular(&self, key: &[u8]) -> Option<&regex::bytes::Regex> {
        let final_newline = self.newline_sensitive && key.last() == Some(&b'\n');
        self.regex.as_ref().filter(|_| !final_newline)
    }
}

/// All patterns of one table.
#[derive(Default)]
pub struct Patterns {
    patterns: Vec<PcrePattern>,
    set: RegularSet,
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
            Ok(text) => {
                Some(bytes_regex(&text).map_err(|e| format!("error in regex at offset 0: {e}"))?)
            }
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

impl Engine for Patterns {
    const DIALECT: Dialect = Dialect {
        map_type: "pcre",
        missing_delimiter_verb: "ignoring",
        wording: Wording {
            zero_index: "out of range",
        },
        second_pattern: false,
    };

    fn finish(&mut self) {
        let mut texts = Vec::new();
        for p in &mut self.patterns {
            if let Some(r) = &p.regex {
                p.set_index = Some(texts.len());
                texts.push(r.as_str().to_string());
            }
        }
        self.set = RegularSet::build(texts);
    }

    fn scan<'k>(&self, key: &'k [u8]) -> Scan<'k> {
        self.set.scan(key)
    }

    fn is_match(&self, scan: &Scan, id: usize) -> Result<bool, String> {
        let p = &self.patterns[id];
        match p.regular(scan.key) {
            Some(regex) => Ok(scan.regular_match(p.set_index, regex)),
            None => p.fancy()?.is_match(scan),
        }
    }

    fn groups(&self, scan: &Scan, id: usize) -> Result<Groups, String> {
        let p = &self.patterns[id];
        match p.regular(scan.key) {
            Some(regex) => Ok(bytes_groups(regex, scan.key)),
            None => p.fancy()?.groups(scan),
        }
    }
}
