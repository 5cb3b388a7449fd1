//! The rule syntax shared by regexp_table(5) and pcre_table(5), and the walk
//! over the rules for one lookup.
//!
//! A rule is `[!…]DELIM pattern DELIM [flags] [result]`, where DELIM is any
//! byte that is neither alphanumeric nor `!`; a backslash before DELIM keeps
//! it in the pattern (the backslash stays too). `if PATTERN` … `endif` make a
//! block that is skipped when the pattern does not match. Bad rules are
//! skipped with a warning and the table keeps loading, as in Postfix. This
//! module asks a [`Compiler`] to turn pattern text into an id; it never sees
//! a regular expression itself.

use crate::replacement::{Template, Wording};

/// What differs between the map types that share this syntax.
#[derive(Clone, Copy, Debug)]
pub struct Dialect {
    /// `regexp` or `pcre`, as written in messages.
    pub map_type: &'static str,
    /// The verb after a missing closing delimiter ("skipping"/"ignoring").
    pub missing_delimiter_verb: &'static str,
    /// Template wording.
    pub wording: Wording,
    /// Whether `/a/!/b/` (match a unless b) is accepted.
    pub second_pattern: bool,
}

/// A compiled pattern as the table sees it.
pub struct Compiled {
    /// The compiler's id for the pattern, passed back at lookup.
    pub id: usize,
    /// How many capture groups the pattern has.
    pub groups: u32,
    /// Warnings to log (for example an obsolete flag that is ignored).
    pub warnings: Vec<String>,
}

/// Turns pattern text and flags into something a lookup can test.
pub trait Compiler {
    /// Compile `pattern` with `flags` (the letters after the closing
    /// delimiter). An error is the whole warning text after the
    /// "TYPE map NAME, line N: " prefix.
    fn compile(&mut self, pattern: &[u8], flags: &[u8]) -> Result<Compiled, String>;
}

/// One loaded rule.
#[derive(Debug)]
pub enum Rule {
    /// `pattern result`: the lookup answers `result` when it matches.
    Match {
        /// Line number, for messages.
        line: usize,
        /// The pattern's id.
        pattern: usize,
        /// `!pattern`: matches when the pattern does not.
        negated: bool,
        /// regexp's `/a/!/b/`: the rule does not match when this does.
        unless: Option<usize>,
        /// The result template.
        result: Template,
    },
    /// `if pattern`: the rules up to `endif` apply only when it matches.
    If {
        /// Line number, for messages.
        line: usize,
        /// The pattern's id.
        pattern: usize,
        /// `if !pattern`.
        negated: bool,
        /// Index of the matching Endif; None when the table has none, and
        /// then a failed condition ends the lookup.
        endif: Option<usize>,
    },
    /// The end of an if block.
    Endif,
}

/// A loaded table.
#[derive(Debug, Default)]
pub struct Table {
    /// The rules in file order.
    pub rules: Vec<Rule>,
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'\x0b' | b'\x0c')
}

fn skip_space(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| is_space(b)).count();
    &s[n..]
}

/// `if`/`endif` keyword test: case-insensitive, not followed by an
/// alphanumeric byte. Returns the text after the keyword.
fn keyword<'a>(line: &'a [u8], word: &str) -> Option<&'a [u8]> {
    let n = word.len();
    if line.len() >= n
        && line[..n].eq_ignore_ascii_case(word.as_bytes())
        && !line.get(n).is_some_and(u8::is_ascii_alphanumeric)
    {
        Some(&line[n..])
    } else {
        None
    }
}

/// A pattern as written: text between delimiters and its flags.
struct Written<'a> {
    negated: bool,
    text: &'a [u8],
    flags: &'a [u8],
    rest: &'a [u8],
}

impl Table {
    /// Load `lines` (line number, logical line) of table `name`. Returns the
    /// table and the warnings to log, each complete.
    pub fn load(
        lines: &[(usize, Vec<u8>)],
        name: &str,
        dialect: &Dialect,
        no_regsub: bool,
        compiler: &mut dyn Compiler,
    ) -> (Table, Vec<String>) {
        let mut loader = Loader {
            name,
            dialect,
            no_regsub,
            compiler,
            warnings: Vec::new(),
            rules: Vec::new(),
            open_ifs: Vec::new(),
            line: 0,
        };
        for (lineno, text) in lines {
            loader.line = *lineno;
            loader.statement(text);
        }
        for (_, line) in std::mem::take(&mut loader.open_ifs) {
            loader.line = line;
            loader.warn("IF has no matching ENDIF".into());
        }
        (
            Table {
                rules: loader.rules,
            },
            loader.warnings,
        )
    }

    /// The line of the rule that uses pattern `id`.
    pub fn line_of(&self, id: usize) -> Option<usize> {
        self.rules.iter().find_map(|r| match r {
            Rule::Match {
                line,
                pattern,
                unless,
                ..
            } if *pattern == id || *unless == Some(id) => Some(*line),
            Rule::If { line, pattern, .. } if *pattern == id => Some(*line),
            _ => None,
        })
    }

    /// Walk the rules for one key: `matches(id)` says whether pattern `id`
    /// matches the key. Returns the index of the rule that answers.
    pub fn lookup(&self, mut matches: impl FnMut(usize) -> bool) -> Option<usize> {
        let mut i = 0;
        while i < self.rules.len() {
            match &self.rules[i] {
                Rule::If {
                    pattern,
                    negated,
                    endif,
                    ..
                } => {
                    if matches(*pattern) == *negated {
                        match endif {
                            Some(end) => i = *end,
                            None => return None,
                        }
                    }
                }
                Rule::Endif => {}
                Rule::Match {
                    pattern,
                    negated,
                    unless,
                    ..
                } => {
                    if matches(*pattern) != *negated && !unless.is_some_and(&mut matches) {
                        return Some(i);
                    }
                }
            }
            i += 1;
        }
        None
    }
}

struct Loader<'a> {
    name: &'a str,
    dialect: &'a Dialect,
    no_regsub: bool,
    compiler: &'a mut dyn Compiler,
    warnings: Vec<String>,
    rules: Vec<Rule>,
    /// (rule index, line) of each If still waiting for its Endif.
    open_ifs: Vec<(usize, usize)>,
    line: usize,
}

impl Loader<'_> {
    fn warn(&mut self, text: String) {
        self.warnings.push(format!(
            "{} map {}, line {}: {text}",
            self.dialect.map_type, self.name, self.line
        ));
    }

    fn statement(&mut self, line: &[u8]) {
        let end = line
            .iter()
            .rposition(|&b| !is_space(b))
            .map_or(0, |e| e + 1);
        let line = &line[..end];
        if line.first().is_some_and(u8::is_ascii_alphanumeric) {
            if let Some(rest) = keyword(line, "if") {
                self.if_statement(rest);
            } else if let Some(rest) = keyword(line, "endif") {
                match self.open_ifs.pop() {
                    Some((index, _)) => {
                        if !skip_space(rest).is_empty() {
                            self.warn("ignoring extra text after ENDIF".into());
                        }
                        let here = self.rules.len();
                        if let Rule::If { endif, .. } = &mut self.rules[index] {
                            *endif = Some(here);
                        }
                        self.rules.push(Rule::Endif);
                    }
                    None => self.warn("ignoring ENDIF without matching IF".into()),
                }
            } else {
                self.warn("ignoring unrecognized request".into());
            }
            return;
        }
        self.match_rule(line);
    }

    /// Split `[!…]/text/flags rest`; None after logging why not.
    fn written<'s>(&mut self, text: &'s [u8], second: bool) -> Option<Written<'s>> {
        let mut negated = false;
        let mut i = 0;
        while i < text.len() && (text[i] == b'!' || is_space(text[i])) {
            negated ^= text[i] == b'!';
            i += 1;
        }
        let Some(&delim) = text.get(i) else {
            self.warn("no regexp: skipping this rule".into());
            return None;
        };
        let start = i + 1;
        let mut j = start;
        while j < text.len() && text[j] != delim {
            j += if text[j] == b'\\' && j + 1 < text.len() {
                2
            } else {
                1
            };
        }
        if j >= text.len() {
            let verb = self.dialect.missing_delimiter_verb;
            self.warn(format!(
                "no closing regexp delimiter \"{}\": {verb} this rule",
                delim as char
            ));
            return None;
        }
        let flags_start = j + 1;
        let flags_len = text[flags_start..]
            .iter()
            .take_while(|&&b| !(is_space(b) || second && b == b'!'))
            .count();
        Some(Written {
            negated,
            text: &text[start..j],
            flags: &text[flags_start..flags_start + flags_len],
            rest: &text[flags_start + flags_len..],
        })
    }

    fn compile(&mut self, w: &Written) -> Option<(usize, u32)> {
        match self.compiler.compile(w.text, w.flags) {
            Ok(c) => {
                for warning in c.warnings {
                    self.warn(warning);
                }
                Some((c.id, c.groups))
            }
            Err(message) => {
                self.warn(message);
                None
            }
        }
    }

    fn if_statement(&mut self, rest: &[u8]) {
        let Some(w) = self.written(rest, false) else {
            return;
        };
        let Some((pattern, _)) = self.compile(&w) else {
            return;
        };
        let extra = skip_space(w.rest);
        if !extra.is_empty() {
            let shown = String::from_utf8_lossy(extra).into_owned();
            self.warn(format!(
                "ignoring extra text after IF statement: \"{shown}\""
            ));
            self.warn("do not prepend whitespace to statements between IF and ENDIF".into());
        }
        self.open_ifs.push((self.rules.len(), self.line));
        self.rules.push(Rule::If {
            line: self.line,
            pattern,
            negated: w.negated,
            endif: None,
        });
    }

    fn match_rule(&mut self, line: &[u8]) {
        let second_allowed = self.dialect.second_pattern;
        let Some(w) = self.written(line, second_allowed) else {
            return;
        };
        let Some((pattern, groups)) = self.compile(&w) else {
            return;
        };
        let mut rest = w.rest;
        let mut unless = None;
        if second_allowed && rest.first() == Some(&b'!') {
            let Some(w2) = self.written(&rest[1..], false) else {
                return;
            };
            let Some((id, _)) = self.compile(&w2) else {
                return;
            };
            unless = Some(id);
            rest = w2.rest;
        }
        let result = skip_space(rest);
        if result.is_empty() {
            self.warn("no replacement text: using empty string".into());
        }
        let template = match Template::parse(result, groups, self.dialect.wording) {
            Ok(t) => t,
            Err(e) => {
                for (prefixed, text) in e.lines {
                    if prefixed {
                        self.warn(text);
                    } else {
                        self.warnings.push(text);
                    }
                }
                return;
            }
        };
        if template.uses_groups() && w.negated {
            self.warn(
                "$number found in negative match replacement text: skipping this rule".into(),
            );
            return;
        }
        if template.uses_groups() && self.no_regsub {
            self.warn("regular expression substitution is not allowed: skipping this rule".into());
            return;
        }
        self.rules.push(Rule::Match {
            line: self.line,
            pattern,
            negated: w.negated,
            unless,
            result: template,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Patterns are plain substrings; `(x)` counts as one group.
    #[derive(Default)]
    struct Substrings(Vec<Vec<u8>>);

    impl Compiler for Substrings {
        fn compile(&mut self, pattern: &[u8], flags: &[u8]) -> Result<Compiled, String> {
            if !flags.is_empty() {
                return Err("unknown regexp option".into());
            }
            self.0.push(pattern.to_vec());
            Ok(Compiled {
                id: self.0.len() - 1,
                groups: pattern.iter().filter(|&&b| b == b'(').count() as u32,
                warnings: Vec::new(),
            })
        }
    }

    const DIALECT: Dialect = Dialect {
        map_type: "regexp",
        missing_delimiter_verb: "skipping",
        wording: Wording {
            zero_index: "out-of-range",
        },
        second_pattern: true,
    };

    fn load(text: &str, no_regsub: bool) -> (Table, Substrings, Vec<String>) {
        let lines: Vec<(usize, Vec<u8>)> = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.as_bytes().to_vec()))
            .collect();
        let mut c = Substrings::default();
        let (t, w) = Table::load(&lines, "t", &DIALECT, no_regsub, &mut c);
        (t, c, w)
    }

    fn answer(t: &Table, c: &Substrings, key: &str) -> Option<String> {
        let found = t.lookup(|id| {
            key.as_bytes()
                .windows(c.0[id].len().max(1))
                .any(|w| c.0[id].is_empty() || w == &c.0[id][..])
        })?;
        match &t.rules[found] {
            Rule::Match { result, .. } => {
                Some(String::from_utf8(result.expand(|_| Some(b"G"))).unwrap())
            }
            _ => None,
        }
    }

    #[test]
    fn if_blocks_nest_and_a_missing_endif_ends_the_lookup() {
        let (t, c, w) = load(
            "if /a/\nif !/b/\n/c/ a-notb-c\nendif\n/a/ a\nendif\n/z/ z\nif /q/\n/q/ q\n/ / never",
            false,
        );
        assert_eq!(answer(&t, &c, "ac"), Some("a-notb-c".into()));
        assert_eq!(answer(&t, &c, "abc"), Some("a".into()));
        assert_eq!(
            answer(&t, &c, "x"),
            None,
            "the open IF on /q/ ends the lookup"
        );
        assert_eq!(answer(&t, &c, "q"), Some("q".into()));
        assert!(w
            .iter()
            .any(|w| w == "regexp map t, line 8: IF has no matching ENDIF"));
    }

    #[test]
    fn second_pattern_negation_and_substitution_rules() {
        let (t, c, w) = load(
            "/a/!/b/ a-not-b\n!/(x)/ neg $1\n!/y/ not-y\n/(k)/ k=$1",
            false,
        );
        assert_eq!(answer(&t, &c, "a"), Some("a-not-b".into()));
        assert_eq!(answer(&t, &c, "ab"), Some("not-y".into()));
        assert_eq!(answer(&t, &c, "y(k)"), Some("k=G".into()));
        assert!(w
            .iter()
            .any(|w| w.contains("line 2: $number found in negative match")));
        let (t, c, w) = load("/(k)/ k=$1\n/(k)/ plain", true);
        assert_eq!(answer(&t, &c, "(k)"), Some("plain".into()));
        assert!(w
            .iter()
            .any(|w| w.contains("line 1: regular expression substitution is not allowed")));
    }

    #[test]
    fn syntax_errors_are_skipped_with_their_line() {
        let (t, _, w) = load("/a x\nfoo bar\n/a/Q x\nendif\nif\n/ok/ fine", false);
        assert_eq!(t.rules.len(), 1);
        assert_eq!(
            w,
            vec![
                "regexp map t, line 1: no closing regexp delimiter \"/\": skipping this rule",
                "regexp map t, line 2: ignoring unrecognized request",
                "regexp map t, line 3: unknown regexp option",
                "regexp map t, line 4: ignoring ENDIF without matching IF",
                "regexp map t, line 5: no regexp: skipping this rule",
            ]
        );
    }
}
