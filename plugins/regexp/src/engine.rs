//! The matching side of regexp tables: each rule's pattern, parsed as glibc
//! parses it, compiled for Rust's automata, and a set of all patterns that
//! answers "which patterns match this key" in one pass.
//!
//! POSIX matching is leftmost-longest; Rust's engines are leftmost-first.
//! Whether a pattern matches at all does not depend on that, so the set
//! decides matches. Only when a result uses `$N` are the groups needed:
//! the match starts where any engine finds it to start, it ends at the
//! longest end an all-matches DFA reports from there, and the groups are
//! those of the first (Perl-order) way through the pattern that spans
//! exactly that text, which is how glibc assigns them. The text after the
//! match stays visible to assertions at its end.
//!
//! A pattern with back-references is not regular; it runs on `fancy-regex`
//! over the key as Latin-1 text. Whether it matches is exact; its groups
//! are the backtracking engine's first match, which can differ from
//! glibc's leftmost-longest choice.

use proxymapd_pattern::emit::{emit, Target};
use proxymapd_pattern::engines::{bytes_regex, Backtracking, Groups, RegularSet, Scan};
use proxymapd_pattern::map::Engine;
use proxymapd_pattern::posix::{self, Options};
use proxymapd_pattern::replacement::Wording;
use proxymapd_pattern::table::{Compiled, Compiler, Dialect};
use regex_automata::hybrid::dfa::DFA;
use regex_automata::nfa::thompson::{self, pikevm::PikeVM};
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input, MatchKind};
use std::cell::RefCell;

/// One compiled rule pattern.
enum PosixPattern {
    /// A regular pattern, on automata.
    Automata {
        /// Pattern text for Rust's engines.
        text: String,
        /// Finds where a match starts (and matches alone without a set).
        regex: regex::bytes::Regex,
        /// Position in the set of all regular patterns.
        set_index: Option<usize>,
        /// Built the first time a result needs this pattern's groups.
        groups: RefCell<Option<Box<GroupFinder>>>,
    },
    /// A pattern with back-references, on a backtracking engine.
    Backtracking(Box<Backtracking>),
}

/// Leftmost-longest extent plus glibc's choice of groups within it.
struct GroupFinder {
    longest: DFA,
    longest_cache: regex_automata::hybrid::dfa::Cache,
    /// The pattern, then the end of the key: for matches that end there.
    at_end: PikeVM,
    at_end_cache: regex_automata::nfa::thompson::pikevm::Cache,
    /// The pattern, then exactly one byte: for matches that end before the
    /// last byte, run on the key cut one byte after the match, so that
    /// assertions at the match's end (`\b`, `\>`, `$`) still see the byte
    /// that follows it.
    before_end: PikeVM,
    before_end_cache: regex_automata::nfa::thompson::pikevm::Cache,
}

fn syntax_config() -> syntax::Config {
    syntax::Config::new().unicode(false).utf8(false)
}

fn pike(text: &str) -> Result<PikeVM, String> {
    PikeVM::builder()
        .syntax(syntax_config())
        .thompson(thompson::Config::new().utf8(false))
        .build(text)
        .map_err(|e| e.to_string())
}

impl GroupFinder {
    fn new(text: &str) -> Result<GroupFinder, String> {
        let longest = DFA::builder()
            .configure(DFA::config().match_kind(MatchKind::All))
            .syntax(syntax_config())
            .thompson(thompson::Config::new().utf8(false))
            .build(text)
            .map_err(|e| e.to_string())?;
        let at_end = pike(&format!("(?:{text})\\z"))?;
        let before_end = pike(&format!("(?:{text})(?s-u:.)\\z"))?;
        Ok(GroupFinder {
            longest_cache: longest.create_cache(),
            longest,
            at_end_cache: at_end.create_cache(),
            at_end,
            before_end_cache: before_end.create_cache(),
            before_end,
        })
    }

    /// Group spans of the leftmost-longest match starting at `start`.
    fn groups(&mut self, key: &[u8], start: usize) -> Option<Groups> {
        let input = Input::new(key).range(start..).anchored(Anchored::Yes);
        let end = self
            .longest
            .try_search_fwd(&mut self.longest_cache, &input)
            .ok()??
            .offset();
        let (vm, cache, cut) = if end == key.len() {
            (&self.at_end, &mut self.at_end_cache, end)
        } else {
            (&self.before_end, &mut self.before_end_cache, end + 1)
        };
        let mut caps = vm.create_captures();
        let input = Input::new(&key[..cut])
            .range(start..cut)
            .anchored(Anchored::Yes);
        vm.search(cache, &input, &mut caps);
        if !caps.is_match() {
            return None;
        }
        Some(
            (0..caps.group_len())
                .map(|g| caps.get_group(g).map(|s| (s.start, s.end)))
                .collect(),
        )
    }
}

/// All patterns of one table.
#[derive(Default)]
pub struct Patterns {
    patterns: Vec<PosixPattern>,
    set: RegularSet,
}

impl Compiler for Patterns {
    fn compile(&mut self, pattern: &[u8], flags: &[u8]) -> Result<Compiled, String> {
        let mut options = Options {
            extended: true,
            icase: true,
            newline: false,
        };
        for &f in flags {
            match f {
                b'i' => options.icase = !options.icase,
                b'x' => options.extended = !options.extended,
                b'm' => options.newline = !options.newline,
                _ => {
                    return Err(format!(
                        "unknown regexp option \"{}\": skipping this rule",
                        f as char
                    ))
                }
            }
        }
        let parsed = posix::parse(pattern, options)?;
        let too_big = |_| "Regular expression too big".to_string();
        let compiled = if parsed.node.needs_backtracking() {
            PosixPattern::Backtracking(Box::new(Backtracking::new(&parsed.node)?))
        } else {
            let text = emit(&parsed.node, Target::Bytes)?;
            let regex = bytes_regex(&text).map_err(too_big)?;
            PosixPattern::Automata {
                text,
                regex,
                set_index: None,
                groups: RefCell::new(None),
            }
        };
        self.patterns.push(compiled);
        Ok(Compiled {
            id: self.patterns.len() - 1,
            groups: parsed.captures,
            warnings: Vec::new(),
        })
    }
}

impl Engine for Patterns {
    const DIALECT: Dialect = Dialect {
        map_type: "regexp",
        missing_delimiter_verb: "skipping",
        wording: Wording {
            zero_index: "out-of-range",
        },
        second_pattern: true,
    };

    fn finish(&mut self) {
        let mut texts = Vec::new();
        for p in &mut self.patterns {
            if let PosixPattern::Automata {
                text, set_index, ..
            } = p
            {
                *set_index = Some(texts.len());
                texts.push(text.clone());
            }
        }
        self.set = RegularSet::build(texts);
    }

    fn scan<'k>(&self, key: &'k [u8]) -> Scan<'k> {
        self.set.scan(key)
    }

    fn is_match(&self, scan: &Scan, id: usize) -> Result<bool, String> {
        match &self.patterns[id] {
            PosixPattern::Automata {
                regex, set_index, ..
            } => Ok(scan.regular_match(*set_index, regex)),
            PosixPattern::Backtracking(re) => re.is_match(scan),
        }
    }

    fn groups(&self, scan: &Scan, id: usize) -> Result<Groups, String> {
        let (regex, text, groups) = match &self.patterns[id] {
            PosixPattern::Automata {
                regex,
                text,
                groups,
                ..
            } => (regex, text, groups),
            PosixPattern::Backtracking(re) => return re.groups(scan),
        };
        let key = scan.key;
        let Some(found) = regex.find(key) else {
            return Ok(Vec::new());
        };
        let mut slot = groups.borrow_mut();
        if slot.is_none() {
            *slot = Some(Box::new(GroupFinder::new(text)?));
        }
        let finder = slot.as_mut().ok_or("no group finder")?;
        Ok(finder.groups(key, found.start()).unwrap_or_default())
    }
}
