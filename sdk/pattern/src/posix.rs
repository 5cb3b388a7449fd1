//! glibc's POSIX regular expressions as Postfix's regexp: tables compile
//! them (`regcomp` with REG_EXTENDED and REG_ICASE by default, in the C
//! locale, so one byte is one character), parsed into [`crate::ast`].
//!
//! Extended syntax (ERE) is the default; the `x` rule flag selects basic
//! syntax (BRE) with GNU's `\+`, `\?` and `\|`. glibc's operators `\w`,
//! `\W`, `\s`, `\S`, `\b`, `\B`, `\<`, `\>`, `` \` `` and `\'` work in both.
//! Errors carry glibc's own `regerror` wording, which Postfix logs.
//!
//! Two glibc details that look like bugs are reproduced because Postfix
//! answers with them: with REG_ICASE an escaped lower-case letter other than
//! an operator (`\d`, `\n`) matches nothing, and a backslash inside a
//! bracket expression is an ordinary character. Back-references (`\1`)
//! parse into [`Node::Backref`]; they need a backtracking engine.

use crate::ast::{posix_class, space_bytes, word_bytes, Assertion, ByteSet, Greed, Node, Pattern};

/// regcomp options.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// REG_EXTENDED (ERE) rather than BRE.
    pub extended: bool,
    /// REG_ICASE.
    pub icase: bool,
    /// REG_NEWLINE: `.` and `[^…]` do not match a newline, `^`/`$` work at
    /// line boundaries.
    pub newline: bool,
}

/// Largest repetition count glibc accepts (RE_DUP_MAX).
const DUP_MAX: u32 = 0x7fff;

/// Parse `pattern`; an error is glibc's message for it.
pub fn parse(pattern: &[u8], options: Options) -> Result<Pattern, String> {
    let mut p = Parser {
        s: pattern,
        i: 0,
        o: options,
        groups: 0,
        depth: 0,
    };
    let node = p.alternation()?;
    if p.i < p.s.len() {
        // Only an unmatched `\)` in BRE stops the top level early.
        return Err("Unmatched ) or \\)".into());
    }
    Ok(Pattern {
        node,
        captures: p.groups,
    })
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    o: Options,
    groups: u32,
    depth: u32,
}

/// glibc's message for a bracket expression that does not end.
const UNMATCHED_BRACKET: &str = "Unmatched [, [^, [:, [., or [=";

/// The byte of a collating element `[.c.]`/`[=c=]` (only single bytes exist
/// in the C locale).
fn collating(body: &[u8]) -> Result<u8, String> {
    match body {
        [b] => Ok(*b),
        _ => Err("Invalid collation character".into()),
    }
}

/// A bracket class name glibc knows in the C locale.
fn class_bytes(name: &[u8]) -> Option<ByteSet> {
    match name {
        b"word" | b"ascii" => None,
        _ => posix_class(name),
    }
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn at(&self, text: &[u8]) -> bool {
        self.s[self.i..].starts_with(text)
    }

    /// Whether the parser is at an alternation bar.
    fn at_bar(&self) -> bool {
        if self.o.extended {
            self.at(b"|")
        } else {
            self.at(b"\\|")
        }
    }

    /// Whether the parser is at the close of a group.
    fn at_close(&self) -> bool {
        if self.o.extended {
            self.depth > 0 && self.at(b")")
        } else {
            self.at(b"\\)")
        }
    }

    fn alternation(&mut self) -> Result<Node, String> {
        let mut branches = vec![self.branch()?];
        while self.at_bar() {
            self.i += if self.o.extended { 1 } else { 2 };
            branches.push(self.branch()?);
        }
        Ok(if branches.len() == 1 {
            branches.pop().unwrap_or(Node::Empty)
        } else {
            Node::Alternation(branches)
        })
    }

    fn branch(&mut self) -> Result<Node, String> {
        let mut items: Vec<Node> = Vec::new();
        let start = self.i;
        while self.i < self.s.len() && !self.at_bar() && !self.at_close() {
            let branch_start = self.i == start;
            let atom = self.atom(branch_start)?;
            let atom = self.repeats(atom)?;
            items.push(atom);
        }
        Ok(match items.len() {
            0 => Node::Empty,
            1 => items.pop().unwrap_or(Node::Empty),
            _ => Node::Concat(items),
        })
    }

    /// Whether the parser is at a repetition operator.
    fn at_dup(&self) -> bool {
        match self.peek() {
            Some(b'*') => true,
            Some(b'+' | b'?' | b'{') if self.o.extended => true,
            Some(b'\\') if !self.o.extended => {
                matches!(self.s.get(self.i + 1), Some(b'+' | b'?' | b'{'))
            }
            _ => false,
        }
    }

    fn repeats(&mut self, mut node: Node) -> Result<Node, String> {
        let anchor = matches!(
            node,
            Node::Assert(Assertion::TextStart | Assertion::LineStart)
        );
        if anchor && self.o.extended && self.at_dup() {
            return Err("Invalid preceding regular expression".into());
        }
        while self.at_dup() {
            let (min, max) = match self.peek() {
                Some(b'*') => {
                    self.i += 1;
                    (0, None)
                }
                Some(b'+') => {
                    self.i += 1;
                    (1, None)
                }
                Some(b'?') => {
                    self.i += 1;
                    (0, Some(1))
                }
                Some(b'{') => {
                    self.i += 1;
                    self.interval()?
                }
                _ => {
                    let op = self.s[self.i + 1];
                    self.i += 2;
                    match op {
                        b'+' => (1, None),
                        b'?' => (0, Some(1)),
                        _ => self.interval()?,
                    }
                }
            };
            node = Node::Repeat {
                node: Box::new(node),
                min,
                max,
                greed: Greed::Greedy,
            };
        }
        Ok(node)
    }

    /// The interval after `{` (ERE) or `\{` (BRE), through its close.
    fn interval(&mut self) -> Result<(u32, Option<u32>), String> {
        let close: &[u8] = if self.o.extended { b"}" } else { b"\\}" };
        let Some(len) = self.s[self.i..]
            .windows(close.len())
            .position(|w| w == close)
        else {
            return Err("Unmatched \\{".into());
        };
        let body = &self.s[self.i..self.i + len];
        self.i += len + close.len();
        let bad = || "Invalid content of \\{\\}".to_string();
        let number = |t: &[u8]| -> Result<Option<u32>, String> {
            if t.is_empty() {
                return Ok(None);
            }
            if !t.iter().all(u8::is_ascii_digit) {
                return Err(bad());
            }
            let n: u64 = std::str::from_utf8(t)
                .ok()
                .and_then(|t| t.parse().ok())
                .unwrap_or(u64::MAX);
            if n > u64::from(DUP_MAX) {
                return Err("Regular expression too big".into());
            }
            Ok(Some(n as u32))
        };
        let (min, max) = match body.iter().position(|&b| b == b',') {
            None => {
                let n = number(body)?.ok_or_else(bad)?;
                (n, Some(n))
            }
            Some(comma) => (
                number(&body[..comma])?.unwrap_or(0),
                number(&body[comma + 1..])?,
            ),
        };
        if max.is_some_and(|m| m < min) {
            return Err(bad());
        }
        Ok((min, max))
    }

    fn literal(&self, b: u8) -> Node {
        let mut set = ByteSet::byte(b);
        if self.o.icase {
            set.fold_ascii_case();
        }
        Node::Bytes(set)
    }

    fn atom(&mut self, branch_start: bool) -> Result<Node, String> {
        let c = self.s[self.i];
        let ext = self.o.extended;
        if self.at_dup() {
            if ext {
                return Err("Invalid preceding regular expression".into());
            }
            if c == b'*' && branch_start {
                self.i += 1;
                return Ok(self.literal(b'*'));
            }
            if c == b'*' {
                // `*` right after a BRE `^` anchor is literal too.
                self.i += 1;
                return Ok(self.literal(b'*'));
            }
        }
        self.i += 1;
        match c {
            b'(' if ext => self.group(),
            b'^' if ext || branch_start => {
                let node = Node::Assert(if self.o.newline {
                    Assertion::LineStart
                } else {
                    Assertion::TextStart
                });
                if !ext && self.peek() == Some(b'*') {
                    // BRE: `^*` is an anchor followed by a literal star.
                    self.i += 1;
                    return Ok(Node::Concat(vec![node, self.literal(b'*')]));
                }
                Ok(node)
            }
            b'$' if ext || self.i == self.s.len() || self.at(b"\\)") || self.at(b"\\|") => {
                Ok(Node::Assert(if self.o.newline {
                    Assertion::LineEnd
                } else {
                    Assertion::TextEnd
                }))
            }
            b'.' => {
                let mut set = ByteSet::all();
                if self.o.newline {
                    set.remove(b'\n');
                }
                Ok(Node::Bytes(set))
            }
            b'[' => self.bracket(),
            b'\\' => self.escape(),
            _ => Ok(self.literal(c)),
        }
    }

    fn group(&mut self) -> Result<Node, String> {
        self.groups += 1;
        let number = self.groups;
        self.depth += 1;
        let inner = self.alternation()?;
        self.depth -= 1;
        let close: &[u8] = if self.o.extended { b")" } else { b"\\)" };
        if !self.at(close) {
            return Err("Unmatched ( or \\(".into());
        }
        self.i += close.len();
        Ok(Node::Group {
            node: Box::new(inner),
            capture: Some(number),
        })
    }

    fn escape(&mut self) -> Result<Node, String> {
        let Some(c) = self.peek() else {
            return Err("Trailing backslash".into());
        };
        self.i += 1;
        let set = |s: ByteSet| Ok(Node::Bytes(s));
        match c {
            b'(' if !self.o.extended => self.group(),
            b'{' if !self.o.extended => Err("Invalid preceding regular expression".into()),
            b'1'..=b'9' => {
                let group = u32::from(c - b'0');
                if group > self.groups {
                    return Err("Invalid back reference".into());
                }
                Ok(Node::Backref {
                    group,
                    caseless: self.o.icase,
                })
            }
            b'w' => set(word_bytes()),
            b'W' => set(word_bytes().negated()),
            b's' => set(space_bytes()),
            b'S' => set(space_bytes().negated()),
            b'b' => Ok(Node::Assert(Assertion::WordBoundary)),
            b'B' => Ok(Node::Assert(Assertion::NotWordBoundary)),
            b'<' => Ok(Node::Assert(Assertion::WordStart)),
            b'>' => Ok(Node::Assert(Assertion::WordEnd)),
            b'`' => Ok(Node::Assert(Assertion::TextStart)),
            b'\'' => Ok(Node::Assert(Assertion::TextEnd)),
            // glibc with REG_ICASE: an escaped lower-case letter matches
            // nothing at all.
            b'a'..=b'z' if self.o.icase => set(ByteSet::new()),
            _ => Ok(self.literal(c)),
        }
    }

    /// A `[:name:]`, `[.c.]` or `[=c=]` at the parser: its kind (`:`, `.`
    /// or `=`) and body, with the parser moved past it.
    fn bracket_term(&mut self) -> Result<Option<(u8, &[u8])>, String> {
        let Some(&kind) = self
            .s
            .get(self.i + 1)
            .filter(|k| matches!(k, b':' | b'.' | b'='))
        else {
            return Ok(None);
        };
        if self.peek() != Some(b'[') {
            return Ok(None);
        }
        let start = self.i + 2;
        let Some(len) = self.s[start..]
            .windows(2)
            .position(|w| w[0] == kind && w[1] == b']')
        else {
            return Err(UNMATCHED_BRACKET.into());
        };
        self.i = start + len + 2;
        Ok(Some((kind, &self.s[start..start + len])))
    }

    fn bracket(&mut self) -> Result<Node, String> {
        let unmatched = || UNMATCHED_BRACKET.to_string();
        let mut set = ByteSet::new();
        let negated = self.peek() == Some(b'^');
        if negated {
            self.i += 1;
        }
        let mut first = true;
        loop {
            let Some(c) = self.peek() else {
                return Err(unmatched());
            };
            if c == b']' && !first {
                self.i += 1;
                break;
            }
            first = false;
            // One element: a class, an equivalence/collating element or a
            // byte, possibly the start of a range.
            let lo = match self.bracket_term()? {
                Some((b':', body)) => {
                    let class = class_bytes(body).ok_or("Invalid character class name")?;
                    if self.peek() == Some(b'-') && self.s.get(self.i + 1) != Some(&b']') {
                        return Err("Invalid range end".into());
                    }
                    set.union(&class);
                    continue;
                }
                Some((_, body)) => collating(body)?,
                None => {
                    self.i += 1;
                    c
                }
            };
            if self.peek() == Some(b'-') && self.s.get(self.i + 1).is_some_and(|&b| b != b']') {
                self.i += 1;
                if self.at(b"[:") {
                    return Err("Invalid range end".into());
                }
                let hi = match self.bracket_term()? {
                    Some((_, body)) => collating(body)?,
                    None => {
                        self.i += 1;
                        self.s[self.i - 1]
                    }
                };
                if hi < lo {
                    return Err("Invalid range end".into());
                }
                set.insert_range(lo, hi);
            } else {
                set.insert(lo);
            }
        }
        if self.o.icase {
            set.fold_ascii_case();
        }
        if negated {
            set = set.negated();
            if self.o.newline {
                set.remove(b'\n');
            }
        }
        Ok(Node::Bytes(set))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ERE: Options = Options {
        extended: true,
        icase: true,
        newline: false,
    };

    #[test]
    fn glibc_errors() {
        for (p, e) in [
            ("(", "Unmatched ( or \\("),
            ("[z-a]", "Invalid range end"),
            ("a{", "Unmatched \\{"),
            ("x{$", "Unmatched \\{"),
            ("a{x}", "Invalid content of \\{\\}"),
            ("a{1,2,3}", "Invalid content of \\{\\}"),
            ("a{99999}", "Regular expression too big"),
            ("*a", "Invalid preceding regular expression"),
            ("a|*b", "Invalid preceding regular expression"),
            ("^*a", "Invalid preceding regular expression"),
            ("[[:foo:]]", "Invalid character class name"),
            ("[a", "Unmatched [, [^, [:, [., or [="),
            ("a\\", "Trailing backslash"),
        ] {
            assert_eq!(parse(p.as_bytes(), ERE).unwrap_err(), e, "{p}");
        }
    }

    #[test]
    fn groups_are_counted() {
        assert_eq!(parse(b"(a)(b(c))|()", ERE).unwrap().captures, 4);
        let bre = Options {
            extended: false,
            ..ERE
        };
        assert_eq!(parse(b"\\(a\\)(b)", bre).unwrap().captures, 1);
        assert!(parse(b"a)", ERE).is_ok());
    }
}
