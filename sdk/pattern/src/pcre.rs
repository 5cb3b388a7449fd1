//! PCRE2 patterns as Postfix's pcre: tables compile them (no UTF mode, so
//! one byte is one character; PCRE2's default C-locale character tables),
//! parsed into [`crate::ast`].
//!
//! Supported: literals and escapes, classes with POSIX names, `.`, anchors
//! (`^ $ \A \z \Z \G \b \B`), capturing, non-capturing and named groups,
//! inline options `(?imsxU-imsxU)` and `(?i:…)`, greedy, lazy and
//! possessive quantifiers, alternation, back-references (`\1`, `\g{n}`,
//! `\g{-n}`, `\k<name>`, `(?P=name)`), lookahead, lookbehind, atomic
//! groups, `\Q…\E` and comments. Recursion, conditionals, callouts,
//! backtracking verbs and Unicode properties are refused with an error,
//! which skips the rule. Errors read "error in regex at offset N: …" as
//! Postfix's do.

use crate::ast::{posix_class, space_bytes, word_bytes, Assertion, ByteSet, Greed, Node, Pattern};
use std::collections::HashMap;

/// Compile options from the rule's flags.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// PCRE2_CASELESS.
    pub caseless: bool,
    /// PCRE2_DOTALL.
    pub dotall: bool,
    /// PCRE2_MULTILINE.
    pub multiline: bool,
    /// PCRE2_EXTENDED.
    pub extended: bool,
    /// PCRE2_UNGREEDY.
    pub ungreedy: bool,
    /// PCRE2_DOLLAR_ENDONLY.
    pub dollar_endonly: bool,
}

/// Largest repeat count PCRE2 accepts.
const REPEAT_MAX: u32 = 65535;

/// Parse `pattern`; an error is the text Postfix logs for it.
pub fn parse(pattern: &[u8], options: Options) -> Result<Pattern, String> {
    let mut p = Parser {
        s: pattern,
        i: 0,
        groups: 0,
        names: HashMap::new(),
    };
    let result = p.alternation(options, 0).and_then(|node| {
        if p.i < p.s.len() {
            Err(p.error("unmatched closing parenthesis"))
        } else {
            Ok(node)
        }
    });
    let node = result?;
    Ok(Pattern {
        node,
        captures: p.groups,
    })
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    groups: u32,
    names: HashMap<Vec<u8>, u32>,
}

fn set_of(bytes: &[u8]) -> ByteSet {
    let mut s = ByteSet::new();
    for &b in bytes {
        s.insert(b);
    }
    s
}

/// The class an escape letter stands for (`\d`, `\s`, …), if any.
fn escape_class(c: u8) -> Option<ByteSet> {
    let digits = {
        let mut s = ByteSet::new();
        s.insert_range(b'0', b'9');
        s
    };
    let space = space_bytes();
    let hspace = set_of(b" \t\xa0");
    let vspace = set_of(b"\n\x0b\x0c\r\x85");
    Some(match c {
        b'd' => digits,
        b'D' => digits.negated(),
        b'w' => word_bytes(),
        b'W' => word_bytes().negated(),
        b's' => space,
        b'S' => space.negated(),
        b'h' => hspace,
        b'H' => hspace.negated(),
        b'v' => vspace,
        b'V' => vspace.negated(),
        _ => return None,
    })
}

/// Bytes with a Unicode property, reading each byte as the code point of
/// the same number (PCRE2 without UTF applies properties that way).
fn property(name: &[u8]) -> Option<ByteSet> {
    let pred: fn(char) -> bool = match name {
        b"Any" => |_| true,
        b"Xan" => char::is_alphanumeric,
        b"L" | b"L&" => char::is_alphabetic,
        b"Lu" => char::is_uppercase,
        b"Ll" => |c| c.is_lowercase() && c != '\u{aa}' && c != '\u{ba}',
        b"N" => char::is_numeric,
        b"Nd" => |c| c.is_ascii_digit(),
        b"Z" | b"Zs" => |c| c == ' ' || c == '\u{a0}',
        b"Xsp" | b"Xps" => char::is_whitespace,
        b"Xwd" => |c| c.is_alphanumeric() || c == '_',
        _ => return None,
    };
    let mut s = ByteSet::new();
    for b in 0..=255u8 {
        if pred(b as char) {
            s.insert(b);
        }
    }
    Some(s)
}

impl Parser<'_> {
    /// `\p{Name}` / `\pL` after the `p` or `P`; `negated` for `\P`.
    fn property_escape(&mut self, negated: bool) -> Result<ByteSet, String> {
        let name: Vec<u8> = if self.peek() == Some(b'{') {
            let start = self.i + 1;
            let Some(len) = self.s[start..].iter().position(|&b| b == b'}') else {
                return Err(self.error("malformed \\P or \\p sequence"));
            };
            self.i = start + len + 1;
            self.s[start..start + len].to_vec()
        } else {
            let Some(c) = self.peek() else {
                return Err(self.error("malformed \\P or \\p sequence"));
            };
            self.i += 1;
            vec![c]
        };
        let (negated, name) = match name.strip_prefix(b"^") {
            Some(rest) => (!negated, rest.to_vec()),
            None => (negated, name),
        };
        let set =
            property(&name).ok_or_else(|| self.error("unknown property name after \\P or \\p"))?;
        Ok(if negated { set.negated() } else { set })
    }

    fn error(&self, message: &str) -> String {
        format!("error in regex at offset {}: {message}", self.i)
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    /// Skip white space and `#` comments in extended mode, and `(?#…)`.
    fn skip_ignored(&mut self, o: Options) {
        loop {
            if o.extended {
                while self.peek().is_some_and(|b| b" \t\n\r\x0b\x0c".contains(&b)) {
                    self.i += 1;
                }
                if self.peek() == Some(b'#') {
                    while self.peek().is_some_and(|b| b != b'\n') {
                        self.i += 1;
                    }
                    continue;
                }
            }
            if self.s[self.i..].starts_with(b"(?#") {
                match self.s[self.i..].iter().position(|&b| b == b')') {
                    Some(n) => {
                        self.i += n + 1;
                        continue;
                    }
                    None => return,
                }
            }
            return;
        }
    }

    fn alternation(&mut self, mut o: Options, depth: u32) -> Result<Node, String> {
        let mut branches = vec![self.branch(&mut o, depth)?];
        while self.peek() == Some(b'|') {
            self.i += 1;
            branches.push(self.branch(&mut o, depth)?);
        }
        Ok(if branches.len() == 1 {
            branches.pop().unwrap_or(Node::Empty)
        } else {
            Node::Alternation(branches)
        })
    }

    fn branch(&mut self, o: &mut Options, depth: u32) -> Result<Node, String> {
        let mut items = Vec::new();
        loop {
            self.skip_ignored(*o);
            match self.peek() {
                None | Some(b'|') => break,
                Some(b')') if depth > 0 => break,
                Some(b')') => return Err(self.error("unmatched closing parenthesis")),
                _ => {}
            }
            // An option setting such as (?i) changes the rest of the branch.
            if let Some(changed) = self.option_setting(*o)? {
                *o = changed;
                continue;
            }
            let Some(atom) = self.atom(*o, depth)? else {
                continue;
            };
            // `\Q…\E` gives its characters as a Concat: a quantifier after
            // it applies to the last character only.
            let atom = match atom {
                Node::Concat(mut quoted) => match quoted.pop() {
                    Some(last) => {
                        items.extend(quoted);
                        last
                    }
                    None => continue,
                },
                other => other,
            };
            let atom = self.quantifiers(atom, *o)?;
            items.push(atom);
        }
        Ok(match items.len() {
            0 => Node::Empty,
            1 => items.pop().unwrap_or(Node::Empty),
            _ => Node::Concat(items),
        })
    }

    /// Parse option letters `imsxU` with an optional `-` part.
    fn option_letters(&mut self, mut o: Options) -> Result<Options, String> {
        let mut on = true;
        while let Some(c) = self.peek() {
            let flag = match c {
                b'-' => {
                    on = false;
                    self.i += 1;
                    continue;
                }
                b'i' => &mut o.caseless,
                b'm' => &mut o.multiline,
                b's' => &mut o.dotall,
                b'x' => &mut o.extended,
                b'U' => &mut o.ungreedy,
                b'n' | b'J' => {
                    self.i += 1;
                    continue;
                }
                b')' | b':' => return Ok(o),
                _ => return Err(self.error("unrecognized character after (? or (?-")),
            };
            *flag = on;
            self.i += 1;
        }
        Err(self.error("missing closing parenthesis"))
    }

    /// `(?flags)` with no colon: Some(new options).
    fn option_setting(&mut self, o: Options) -> Result<Option<Options>, String> {
        if !self.s[self.i..].starts_with(b"(?") {
            return Ok(None);
        }
        let save = self.i;
        let rest = &self.s[self.i + 2..];
        let letters = rest.iter().take_while(|b| b"imsxUnJ-".contains(b)).count();
        if rest.get(letters) != Some(&b')') || letters == 0 && rest.first() != Some(&b')') {
            return Ok(None);
        }
        self.i += 2;
        let changed = self.option_letters(o)?;
        if self.peek() != Some(b')') {
            self.i = save;
            return Ok(None);
        }
        self.i += 1;
        Ok(Some(changed))
    }

    fn literal(&self, b: u8, o: Options) -> Node {
        let mut set = ByteSet::byte(b);
        if o.caseless {
            set.fold_ascii_case();
        }
        Node::Bytes(set)
    }

    /// One atom, or None for something that matches nothing at all (`\E`).
    fn atom(&mut self, o: Options, depth: u32) -> Result<Option<Node>, String> {
        let c = self.s[self.i];
        match c {
            b'*' | b'+' | b'?' => {
                return Err(self.error("quantifier does not follow a repeatable item"))
            }
            b'{' if self.quantifier_ahead() => {
                return Err(self.error("quantifier does not follow a repeatable item"))
            }
            _ => {}
        }
        self.i += 1;
        Ok(Some(match c {
            b'(' => self.group(o, depth)?,
            b'[' => Node::Bytes(self.class(o)?),
            b'.' => {
                let mut set = ByteSet::all();
                if !o.dotall {
                    set.remove(b'\n');
                }
                Node::Bytes(set)
            }
            b'^' => Node::Assert(if o.multiline {
                Assertion::LineStart
            } else {
                Assertion::TextStart
            }),
            b'$' => Node::Assert(if o.multiline {
                Assertion::LineEnd
            } else if o.dollar_endonly {
                Assertion::TextEnd
            } else {
                Assertion::TextEndOrFinalNewline
            }),
            b'\\' => return self.escape(o),
            _ => self.literal(c, o),
        }))
    }

    /// Whether a `{…}` quantifier starts here.
    fn quantifier_ahead(&self) -> bool {
        let rest = &self.s[self.i..];
        if rest.first() != Some(&b'{') {
            return false;
        }
        let Some(close) = rest.iter().position(|&b| b == b'}') else {
            return false;
        };
        let body = &rest[1..close];
        let (a, b) = match body.iter().position(|&b| b == b',') {
            Some(c) => (&body[..c], Some(&body[c + 1..])),
            None => (body, None),
        };
        !a.is_empty()
            && a.iter().all(u8::is_ascii_digit)
            && b.is_none_or(|b| b.iter().all(u8::is_ascii_digit))
    }

    /// Whether a quantifier starts here.
    fn at_quantifier(&self) -> bool {
        matches!(self.peek(), Some(b'*' | b'+' | b'?')) || self.quantifier_ahead()
    }

    /// At most one quantifier (with its lazy or possessive suffix) after
    /// an atom; a second one, or one after an assertion, is an error.
    fn quantifiers(&mut self, node: Node, o: Options) -> Result<Node, String> {
        self.skip_ignored(o);
        if !self.at_quantifier() {
            return Ok(node);
        }
        if matches!(node, Node::Assert(_)) {
            return Err(self.error("quantifier does not follow a repeatable item"));
        }
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
            _ => {
                let close = self.i
                    + self.s[self.i..]
                        .iter()
                        .position(|&b| b == b'}')
                        .unwrap_or(0);
                let body = std::str::from_utf8(&self.s[self.i + 1..close]).unwrap_or("");
                let number = |t: &str| -> Result<u32, String> {
                    match t.parse::<u64>() {
                        Ok(n) if n <= u64::from(REPEAT_MAX) => Ok(n as u32),
                        _ => Err(self.error("number too big in {} quantifier")),
                    }
                };
                let (min, max) = match body.split_once(',') {
                    None => {
                        let n = number(body)?;
                        (n, Some(n))
                    }
                    Some((a, "")) => (number(a)?, None),
                    Some((a, b)) => (number(a)?, Some(number(b)?)),
                };
                self.i = close + 1;
                if max.is_some_and(|m| m < min) {
                    return Err(self.error("numbers out of order in {} quantifier"));
                }
                (min, max)
            }
        };
        let mut greed = if o.ungreedy {
            Greed::Lazy
        } else {
            Greed::Greedy
        };
        match self.peek() {
            Some(b'?') => {
                self.i += 1;
                greed = if o.ungreedy {
                    Greed::Greedy
                } else {
                    Greed::Lazy
                };
            }
            Some(b'+') => {
                self.i += 1;
                greed = Greed::Possessive;
            }
            _ => {}
        }
        self.skip_ignored(o);
        if self.at_quantifier() {
            return Err(self.error("quantifier does not follow a repeatable item"));
        }
        if matches!(node, Node::Look { .. }) {
            // A repeated lookaround is tried at most once; with a minimum of
            // zero the match may go on without it, so it has no effect.
            return Ok(if min == 0 { Node::Empty } else { node });
        }
        Ok(Node::Repeat {
            node: Box::new(node),
            min,
            max,
            greed,
        })
    }

    fn name_until(&mut self, end: u8) -> Result<Vec<u8>, String> {
        let start = self.i;
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            self.i += 1;
        }
        if self.peek() != Some(end) || self.i == start {
            return Err(self.error("syntax error in subpattern name (missing terminator?)"));
        }
        let name = self.s[start..self.i].to_vec();
        self.i += 1;
        Ok(name)
    }

    fn capture(&mut self, o: Options, depth: u32, name: Option<Vec<u8>>) -> Result<Node, String> {
        self.groups += 1;
        let number = self.groups;
        if let Some(name) = name {
            self.names.entry(name).or_insert(number);
        }
        let inner = self.alternation(o, depth + 1)?;
        self.close()?;
        Ok(Node::Group {
            node: Box::new(inner),
            capture: Some(number),
        })
    }

    fn close(&mut self) -> Result<(), String> {
        if self.peek() != Some(b')') {
            return Err(self.error("missing closing parenthesis"));
        }
        self.i += 1;
        Ok(())
    }

    fn named_backref(&mut self, name: &[u8], o: Options) -> Result<Node, String> {
        match self.names.get(name) {
            Some(&group) => Ok(Node::Backref {
                group,
                caseless: o.caseless,
            }),
            None => Err(self.error("reference to non-existent subpattern")),
        }
    }

    fn group(&mut self, o: Options, depth: u32) -> Result<Node, String> {
        if self.peek() == Some(b'*') {
            return Err(self.error("backtracking verbs are not supported"));
        }
        if self.peek() != Some(b'?') {
            return self.capture(o, depth, None);
        }
        self.i += 1;
        let look = |p: &mut Self, ahead: bool, negated: bool| -> Result<Node, String> {
            let inner = p.alternation(o, depth + 1)?;
            p.close()?;
            Ok(Node::Look {
                node: Box::new(inner),
                ahead,
                negated,
            })
        };
        let rest = &self.s[self.i..];
        if rest.starts_with(b"<=") || rest.starts_with(b"<!") {
            let negated = rest[1] == b'!';
            self.i += 2;
            return look(self, false, negated);
        }
        match self.peek() {
            Some(b':') => {
                self.i += 1;
                let inner = self.alternation(o, depth + 1)?;
                self.close()?;
                Ok(Node::Group {
                    node: Box::new(inner),
                    capture: None,
                })
            }
            Some(b'>') => {
                self.i += 1;
                let inner = self.alternation(o, depth + 1)?;
                self.close()?;
                Ok(Node::Atomic(Box::new(inner)))
            }
            Some(b'=') => {
                self.i += 1;
                look(self, true, false)
            }
            Some(b'!') => {
                self.i += 1;
                look(self, true, true)
            }
            Some(b'<') => {
                self.i += 1;
                let name = self.name_until(b'>')?;
                self.capture(o, depth, Some(name))
            }
            Some(b'\'') => {
                self.i += 1;
                let name = self.name_until(b'\'')?;
                self.capture(o, depth, Some(name))
            }
            Some(b'P') => {
                self.i += 1;
                match self.peek() {
                    Some(b'<') => {
                        self.i += 1;
                        let name = self.name_until(b'>')?;
                        self.capture(o, depth, Some(name))
                    }
                    Some(b'=') => {
                        self.i += 1;
                        let name = self.name_until(b')')?;
                        self.named_backref(&name, o)
                    }
                    _ => Err(self.error("unrecognized character after (?P")),
                }
            }
            Some(b'i' | b'm' | b's' | b'x' | b'U' | b'n' | b'J' | b'-') => {
                let inner_o = self.option_letters(o)?;
                if self.peek() != Some(b':') {
                    return Err(self.error("unrecognized character after (? or (?-"));
                }
                self.i += 1;
                let inner = self.alternation(inner_o, depth + 1)?;
                self.close()?;
                Ok(Node::Group {
                    node: Box::new(inner),
                    capture: None,
                })
            }
            _ => Err(self.error(
                "unsupported group (recursion, conditionals and callouts are not supported)",
            )),
        }
    }

    /// A number of up to `max` digits in `radix` at the current position.
    fn digits(&mut self, radix: u32, max: usize) -> Option<u32> {
        let start = self.i;
        let mut value: u32 = 0;
        while self.i - start < max {
            let Some(d) = self.peek().and_then(|b| (b as char).to_digit(radix)) else {
                break;
            };
            value = value.saturating_mul(radix).saturating_add(d);
            self.i += 1;
        }
        (self.i > start).then_some(value)
    }

    /// A byte value written as an escape (`\n`, `\x41`, `\101`, `\cA`);
    /// `c` has been consumed.
    fn escaped_byte(&mut self, c: u8) -> Result<Option<u8>, String> {
        let too_large =
            |p: &Self| p.error("character code point value in \\x{} or \\o{} is too large");
        Ok(Some(match c {
            b'n' => b'\n',
            b't' => b'\t',
            b'r' => b'\r',
            b'f' => 0x0c,
            b'e' => 0x1b,
            b'a' => 0x07,
            b'0' => self.digits(8, 2).unwrap_or(0) as u8,
            b'o' if self.peek() == Some(b'{') => {
                self.i += 1;
                let v = self
                    .digits(8, 12)
                    .ok_or_else(|| self.error("missing opening brace after \\o"))?;
                if self.peek() != Some(b'}') {
                    return Err(self.error("non-octal character in \\o{} (closing brace missing?)"));
                }
                self.i += 1;
                u8::try_from(v).map_err(|_| too_large(self))?
            }
            b'x' if self.peek() == Some(b'{') => {
                self.i += 1;
                let v = self.digits(16, 8).unwrap_or(0);
                if self.peek() != Some(b'}') {
                    return Err(self.error("non-hex character in \\x{} (closing brace missing?)"));
                }
                self.i += 1;
                u8::try_from(v).map_err(|_| too_large(self))?
            }
            b'x' => self.digits(16, 2).unwrap_or(0) as u8,
            b'c' => {
                let Some(x) = self.peek().filter(u8::is_ascii) else {
                    return Err(self.error("\\c must be followed by a printable ASCII character"));
                };
                self.i += 1;
                x.to_ascii_uppercase() ^ 0x40
            }
            _ => return Ok(None),
        }))
    }

    fn escape(&mut self, o: Options) -> Result<Option<Node>, String> {
        let Some(c) = self.peek() else {
            return Err(self.error("\\ at end of pattern"));
        };
        self.i += 1;
        if let Some(set) = escape_class(c) {
            return Ok(Some(Node::Bytes(set)));
        }
        if c == b'p' || c == b'P' {
            return Ok(Some(Node::Bytes(self.property_escape(c == b'P')?)));
        }
        let assert = |a| Ok(Some(Node::Assert(a)));
        match c {
            b'b' => return assert(Assertion::WordBoundary),
            b'B' => return assert(Assertion::NotWordBoundary),
            b'A' | b'G' => return assert(Assertion::TextStart),
            b'z' => return assert(Assertion::TextEnd),
            b'Z' => return assert(Assertion::TextEndOrFinalNewline),
            b'N' => {
                let mut set = ByteSet::all();
                set.remove(b'\n');
                return Ok(Some(Node::Bytes(set)));
            }
            b'R' => {
                let crlf = Node::Concat(vec![
                    Node::Bytes(ByteSet::byte(b'\r')),
                    Node::Bytes(ByteSet::byte(b'\n')),
                ]);
                return Ok(Some(Node::Atomic(Box::new(Node::Alternation(vec![
                    crlf,
                    Node::Bytes(set_of(b"\n\x0b\x0c\r\x85")),
                ])))));
            }
            b'Q' => {
                let end = self.s[self.i..]
                    .windows(2)
                    .position(|w| w == b"\\E")
                    .map_or(self.s.len(), |n| self.i + n);
                let text: Vec<Node> = self.s[self.i..end]
                    .iter()
                    .map(|&b| self.literal(b, o))
                    .collect();
                self.i = (end + 2).min(self.s.len());
                return Ok(Some(Node::Concat(text)));
            }
            b'E' => return Ok(None),
            b'1'..=b'9' => {
                self.i -= 1;
                let start = self.i;
                let n = self.digits(10, 5).unwrap_or(0);
                if n < 10 || n <= self.groups {
                    return Ok(Some(Node::Backref {
                        group: n,
                        caseless: o.caseless,
                    }));
                }
                // \12 with fewer groups is an octal escape.
                self.i = start;
                let v = self.digits(8, 3).unwrap_or(0);
                return Ok(Some(self.literal(v as u8, o)));
            }
            b'g' => {
                let braced = self.peek() == Some(b'{');
                if braced {
                    self.i += 1;
                }
                let negative = self.peek() == Some(b'-');
                if negative || self.peek() == Some(b'+') {
                    self.i += 1;
                }
                let group = match self.digits(10, 5) {
                    Some(n) if negative => self.groups + 1 - n.min(self.groups + 1),
                    Some(n) => n,
                    None if braced => {
                        let name = self.name_until(b'}')?;
                        return self.named_backref(&name, o).map(Some);
                    }
                    None => return Err(self.error("a numbered reference must not be zero")),
                };
                if braced {
                    self.close_brace()?;
                }
                if group == 0 {
                    return Err(self.error("a numbered reference must not be zero"));
                }
                return Ok(Some(Node::Backref {
                    group,
                    caseless: o.caseless,
                }));
            }
            b'k' => {
                let end = match self.peek() {
                    Some(b'<') => b'>',
                    Some(b'{') => b'}',
                    Some(b'\'') => b'\'',
                    _ => {
                        return Err(self.error(
                            "\\k is not followed by a braced, angle-bracketed, or quoted name",
                        ))
                    }
                };
                self.i += 1;
                let name = self.name_until(end)?;
                return self.named_backref(&name, o).map(Some);
            }
            _ => {}
        }
        if let Some(b) = self.escaped_byte(c)? {
            return Ok(Some(self.literal(b, o)));
        }
        if c.is_ascii_alphanumeric() {
            return Err(self.error("unrecognized character follows \\"));
        }
        Ok(Some(self.literal(c, o)))
    }

    fn close_brace(&mut self) -> Result<(), String> {
        if self.peek() != Some(b'}') {
            return Err(self.error("\\g is not followed by a braced, angle-bracketed, or quoted name/number or by a plain number"));
        }
        self.i += 1;
        Ok(())
    }

    /// A class after its `[`.
    fn class(&mut self, o: Options) -> Result<ByteSet, String> {
        let start = self.i - 1;
        let missing = |p: &Self| {
            format!(
                "error in regex at offset {}: missing terminating ] for character class",
                p.s.len().max(start)
            )
        };
        let mut set = ByteSet::new();
        let negated = self.peek() == Some(b'^');
        if negated {
            self.i += 1;
        }
        let mut first = true;
        loop {
            let Some(c) = self.peek() else {
                return Err(missing(self));
            };
            if c == b']' && !first {
                self.i += 1;
                break;
            }
            first = false;
            if c == b'[' && self.s.get(self.i + 1) == Some(&b':') {
                if let Some(len) = self.s[self.i + 2..].windows(2).position(|w| w == b":]") {
                    let mut name = &self.s[self.i + 2..self.i + 2 + len];
                    let not = name.first() == Some(&b'^');
                    if not {
                        name = &name[1..];
                    }
                    let Some(class) = posix_class(name) else {
                        self.i += 2;
                        return Err(self.error("unknown POSIX class name"));
                    };
                    set.union(&if not { class.negated() } else { class });
                    self.i += len + 4;
                    continue;
                }
            }
            let lo = match self.class_atom()? {
                ClassAtom::Set(s) => {
                    set.union(&s);
                    continue;
                }
                ClassAtom::Byte(b) => b,
            };
            if self.peek() == Some(b'-') && self.s.get(self.i + 1).is_some_and(|&b| b != b']') {
                let save = self.i;
                self.i += 1;
                let hi_at = self.i;
                match self.class_atom()? {
                    ClassAtom::Byte(hi) => {
                        if hi < lo {
                            return Err(format!(
                                "error in regex at offset {hi_at}: range out of order in character class"
                            ));
                        }
                        set.insert_range(lo, hi);
                    }
                    ClassAtom::Set(_) => {
                        // `a-\d`: the hyphen is literal.
                        self.i = save;
                        set.insert(lo);
                    }
                }
            } else {
                set.insert(lo);
            }
        }
        if o.caseless {
            set.fold_ascii_case();
        }
        Ok(if negated { set.negated() } else { set })
    }

    fn class_atom(&mut self) -> Result<ClassAtom, String> {
        let c = self.s[self.i];
        self.i += 1;
        if c != b'\\' {
            return Ok(ClassAtom::Byte(c));
        }
        let Some(e) = self.peek() else {
            return Err(self.error("\\ at end of pattern"));
        };
        self.i += 1;
        if let Some(set) = escape_class(e) {
            return Ok(ClassAtom::Set(set));
        }
        if e == b'p' || e == b'P' {
            return Ok(ClassAtom::Set(self.property_escape(e == b'P')?));
        }
        if e == b'b' {
            return Ok(ClassAtom::Byte(0x08));
        }
        if let b'1'..=b'7' = e {
            self.i -= 1;
            return Ok(ClassAtom::Byte(self.digits(8, 3).unwrap_or(0) as u8));
        }
        if let Some(b) = self.escaped_byte(e)? {
            return Ok(ClassAtom::Byte(b));
        }
        if e.is_ascii_alphanumeric() {
            return Err(self.error("unrecognized character follows \\"));
        }
        Ok(ClassAtom::Byte(e))
    }
}

enum ClassAtom {
    Byte(u8),
    Set(ByteSet),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o() -> Options {
        Options {
            caseless: true,
            dotall: true,
            ..Options::default()
        }
    }

    #[test]
    fn errors_name_offsets() {
        assert_eq!(
            parse(b"(", o()).unwrap_err(),
            "error in regex at offset 1: missing closing parenthesis"
        );
        assert_eq!(
            parse(b"[z-a]", o()).unwrap_err(),
            "error in regex at offset 3: range out of order in character class"
        );
    }

    #[test]
    fn groups_and_names() {
        let p = parse(b"(?<n>x)(?:y)(z)\\k<n>(?P=n)\\g{-1}", o()).unwrap();
        assert_eq!(p.captures, 2);
        assert!(p.node.needs_backtracking());
        assert!(!parse(b"^a(b|c)+?d{2,3}$", o())
            .unwrap()
            .node
            .needs_backtracking());
    }
}
