//! Writes a [`crate::ast`] tree as pattern text for a Rust regex engine.
//!
//! [`Target::Bytes`] is for the `regex` crate's bytes API and for
//! `regex-automata` (Unicode off, so `\b` and every class are ASCII/byte
//! based, as in the C locale). [`Target::Latin1`] is for `fancy-regex`,
//! which only matches text: the key is given as [`crate::latin1`] text and
//! every byte is written as the character with the same number, with word
//! boundaries spelled out as ASCII lookaround. Capture groups keep their
//! numbers: the emitter writes no capturing group of its own.

use crate::ast::{word_bytes, Assertion, ByteSet, Greed, Node};
use std::fmt::Write;

/// Which engine the text is for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Target {
    /// `regex::bytes` / `regex-automata`, Unicode off.
    Bytes,
    /// `fancy-regex` over Latin-1 text.
    Latin1,
}

/// Pattern text for `node`. Fails for a construct the target cannot express
/// (backtracking constructs for [`Target::Bytes`]).
pub fn emit(node: &Node, target: Target) -> Result<String, String> {
    let mut out = String::new();
    if target == Target::Bytes {
        out.push_str("(?-u)");
    }
    write_node(node, target, &mut out)?;
    Ok(out)
}

fn byte(b: u8, target: Target, out: &mut String) {
    match target {
        Target::Bytes => {
            let _ = write!(out, "\\x{b:02X}");
        }
        Target::Latin1 => {
            let _ = write!(out, "\\x{{{b:02X}}}");
        }
    }
}

fn set(s: &ByteSet, target: Target, out: &mut String) {
    if s.is_empty() {
        // Never matches.
        out.push_str(match target {
            Target::Bytes => "[^\\x00-\\xFF]",
            Target::Latin1 => "(?!)",
        });
        return;
    }
    let ranges = s.ranges();
    if let [(lo, hi)] = ranges[..] {
        if lo == hi {
            byte(lo, target, out);
            return;
        }
    }
    out.push('[');
    for (lo, hi) in ranges {
        byte(lo, target, out);
        if hi != lo {
            out.push('-');
            byte(hi, target, out);
        }
    }
    out.push(']');
}

fn word_class(target: Target) -> String {
    let mut s = String::new();
    set(&word_bytes(), target, &mut s);
    s
}

fn assertion(a: Assertion, target: Target, out: &mut String) {
    let w = word_class(target);
    let text = match (a, target) {
        (Assertion::TextStart, _) => "\\A".to_string(),
        (Assertion::TextEnd, _) => "\\z".to_string(),
        // The bytes engines cannot look ahead; callers use Latin1 text for
        // keys that end in a newline (see pcre plugin).
        (Assertion::TextEndOrFinalNewline, Target::Bytes) => "\\z".to_string(),
        (Assertion::TextEndOrFinalNewline, Target::Latin1) => "(?=\\n?\\z)".to_string(),
        (Assertion::LineStart, _) => "(?m:^)".to_string(),
        (Assertion::LineEnd, _) => "(?m:$)".to_string(),
        (Assertion::WordBoundary, Target::Bytes) => "\\b".to_string(),
        (Assertion::NotWordBoundary, Target::Bytes) => "\\B".to_string(),
        (Assertion::WordStart, Target::Bytes) => "\\b{start}".to_string(),
        (Assertion::WordEnd, Target::Bytes) => "\\b{end}".to_string(),
        (Assertion::WordBoundary, Target::Latin1) => {
            format!("(?:(?<={w})(?!{w})|(?<!{w})(?={w}))")
        }
        (Assertion::NotWordBoundary, Target::Latin1) => {
            format!("(?:(?<={w})(?={w})|(?<!{w})(?!{w}))")
        }
        (Assertion::WordStart, Target::Latin1) => format!("(?<!{w})(?={w})"),
        (Assertion::WordEnd, Target::Latin1) => format!("(?<={w})(?!{w})"),
    };
    out.push_str(&text);
}

fn write_node(node: &Node, target: Target, out: &mut String) -> Result<(), String> {
    let backtracking = |what: &str| Err(format!("{what} needs a backtracking engine"));
    match node {
        Node::Empty => out.push_str("(?:)"),
        Node::Bytes(s) => set(s, target, out),
        Node::Concat(parts) => {
            for p in parts {
                write_node(p, target, out)?;
            }
        }
        Node::Alternation(alts) => {
            out.push_str("(?:");
            for (i, a) in alts.iter().enumerate() {
                if i > 0 {
                    out.push('|');
                }
                write_node(a, target, out)?;
            }
            out.push(')');
        }
        Node::Repeat {
            node,
            min,
            max,
            greed,
        } => {
            if *greed == Greed::Possessive {
                if target == Target::Bytes {
                    return backtracking("a possessive quantifier");
                }
                out.push_str("(?>");
            }
            out.push_str("(?:");
            if target == Target::Latin1 && *max != Some(1) && node.nullable() && node.has_capture()
            {
                // An empty lookahead makes fancy-regex run this repetition
                // itself, keeping a last empty repetition as PCRE2 does.
                out.push_str("(?=)");
            }
            write_node(node, target, out)?;
            out.push(')');
            match max {
                Some(max) => {
                    let _ = write!(out, "{{{min},{max}}}");
                }
                None => {
                    let _ = write!(out, "{{{min},}}");
                }
            }
            match greed {
                Greed::Lazy => out.push('?'),
                Greed::Possessive => out.push(')'),
                Greed::Greedy => {}
            }
        }
        Node::Group { node, capture } => {
            out.push_str(if capture.is_some() { "(" } else { "(?:" });
            write_node(node, target, out)?;
            out.push(')');
        }
        Node::Assert(a) => assertion(*a, target, out),
        Node::Backref { group, caseless } => {
            if target == Target::Bytes {
                return backtracking("a back-reference");
            }
            if *caseless {
                let _ = write!(out, "(?i:\\{group})");
            } else {
                let _ = write!(out, "\\{group}");
            }
        }
        Node::Look {
            node,
            ahead,
            negated,
        } => {
            if target == Target::Bytes {
                return backtracking("a lookaround assertion");
            }
            out.push_str(match (ahead, negated) {
                (true, false) => "(?=",
                (true, true) => "(?!",
                (false, false) => "(?<=",
                (false, true) => "(?<!",
            });
            write_node(node, target, out)?;
            out.push(')');
        }
        Node::Atomic(node) => {
            if target == Target::Bytes {
                return backtracking("an atomic group");
            }
            out.push_str("(?>");
            write_node(node, target, out)?;
            out.push(')');
        }
    }
    Ok(())
}
