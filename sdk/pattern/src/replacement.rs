//! Result templates of regexp and pcre rules: `$1`, `${1}` and `$(1)` are
//! the text of capture group 1 (empty if the group took no part), `$$` is a
//! `$`. Templates are checked when the table loads, as Postfix does, so a
//! bad reference skips the rule instead of failing a lookup.

/// One piece of a template.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Piece {
    /// Text copied as is.
    Text(Vec<u8>),
    /// The text of a capture group.
    Group(u32),
}

/// A parsed result template.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Template {
    /// The pieces in order.
    pub pieces: Vec<Piece>,
}

/// Why a template was refused: the log lines Postfix writes, in order. A
/// line with `prefixed` set is written after "TYPE map NAME, line N: ".
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TemplateError {
    /// `(prefixed, text)` log lines.
    pub lines: Vec<(bool, String)>,
}

/// Wording that differs between the regexp and pcre tables.
#[derive(Clone, Copy, Debug)]
pub struct Wording {
    /// How `$0` is described ("out-of-range" or "out of range").
    pub zero_index: &'static str,
}

impl Template {
    /// Whether the template refers to any capture group.
    pub fn uses_groups(&self) -> bool {
        self.pieces.iter().any(|p| matches!(p, Piece::Group(_)))
    }

    /// Expand with `group(n)` giving the text of group `n`, if it matched.
    pub fn expand<'a>(&self, mut group: impl FnMut(u32) -> Option<&'a [u8]>) -> Vec<u8> {
        let mut out = Vec::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.extend_from_slice(t),
                Piece::Group(n) => out.extend_from_slice(group(*n).unwrap_or(b"")),
            }
        }
        out
    }

    /// Parse `text` for a pattern with `groups` capture groups.
    pub fn parse(text: &[u8], groups: u32, wording: Wording) -> Result<Template, TemplateError> {
        let shown = String::from_utf8_lossy(text).into_owned();
        let bad = |mut lines: Vec<(bool, String)>| {
            lines.push((true, "bad replacement syntax: skipping this rule".into()));
            TemplateError { lines }
        };
        let mut pieces: Vec<Piece> = Vec::new();
        let mut literal = Vec::new();
        let mut i = 0;
        while i < text.len() {
            if text[i] != b'$' {
                literal.push(text[i]);
                i += 1;
                continue;
            }
            let rest = &text[i + 1..];
            let (name, used) = match rest.first() {
                Some(b'$') => {
                    literal.push(b'$');
                    i += 2;
                    continue;
                }
                Some(&open @ (b'{' | b'(')) => {
                    let close = if open == b'{' { b'}' } else { b')' };
                    match rest[1..].iter().position(|&c| c == close) {
                        Some(end)
                            if !rest[1..1 + end]
                                .iter()
                                .any(|&c| matches!(c, b'{' | b'(' | b'}' | b')')) =>
                        {
                            (&rest[1..1 + end], end + 2)
                        }
                        _ => {
                            let shown = String::from_utf8_lossy(&text[i..]).into_owned();
                            return Err(bad(vec![(
                                false,
                                format!("truncated macro reference: \"{shown}\""),
                            )]));
                        }
                    }
                }
                _ => {
                    let n = rest
                        .iter()
                        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                        .count();
                    (&rest[..n], n)
                }
            };
            if name.is_empty() {
                return Err(bad(vec![(false, format!("empty macro name: \"{shown}\""))]));
            }
            let name_text = String::from_utf8_lossy(name).into_owned();
            if !name.iter().all(u8::is_ascii_digit) {
                return Err(bad(vec![(
                    true,
                    format!("non-numeric replacement index \"{name_text}\""),
                )]));
            }
            let number: u64 = name_text.parse().unwrap_or(u64::MAX);
            if number == 0 {
                return Err(bad(vec![(
                    true,
                    format!("{} replacement index \"{name_text}\"", wording.zero_index),
                )]));
            }
            if number > u64::from(groups) {
                return Err(TemplateError {
                    lines: vec![(
                        true,
                        format!(
                            "out of range replacement index \"{name_text}\": skipping this rule"
                        ),
                    )],
                });
            }
            if !literal.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut literal)));
            }
            pieces.push(Piece::Group(number as u32));
            i += 1 + used;
        }
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(Template { pieces })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Wording = Wording {
        zero_index: "out-of-range",
    };

    fn expand(t: &str, groups: &[Option<&str>]) -> String {
        let tpl = Template::parse(t.as_bytes(), groups.len() as u32, W).unwrap();
        String::from_utf8(tpl.expand(|n| groups[n as usize - 1].map(str::as_bytes))).unwrap()
    }

    #[test]
    fn forms_expand_as_postfix_does() {
        let g = [Some("a"), None, Some("c")];
        assert_eq!(expand("[$1][${2}][$(3)]", &g), "[a][][c]");
        assert_eq!(
            expand("$$1 $$$1 pre$$post ${01}$1.x", &g),
            "$1 $a pre$post aa.x"
        );
    }

    #[test]
    fn bad_references_are_refused() {
        for bad in [
            "$1x", "$a", "${ 1 }", "$0", "$2", "end$", "$", "$-x", "${}", "${1", "${1)", "$(1}",
        ] {
            assert!(Template::parse(bad.as_bytes(), 1, W).is_err(), "{bad}");
        }
        let e = Template::parse(b"$2", 1, W).unwrap_err();
        assert_eq!(
            e.lines,
            vec![(
                true,
                "out of range replacement index \"2\": skipping this rule".into()
            )]
        );
    }
}
