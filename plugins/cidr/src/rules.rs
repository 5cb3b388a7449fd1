//! Parsing and matching cidr_table(5) rules the way Postfix 3.7 does (see
//! docs/pattern-tables.md): `[!...]pattern result`, `if [!]pattern` …
//! `endif`; patterns are bare IPv4/IPv6 addresses or `net/len`, optionally
//! in `[]`; addresses parse as inet_pton does (no leading zeros in IPv4
//! octets, no scope ids). A bad rule is skipped with a warning naming the
//! line; families never match across IPv4 and IPv6, negated or not; an
//! `if` whose block never ends stops the lookup when its condition fails.

use crate::index::RunIndex;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An address as a number with its family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addr {
    pub(crate) v6: bool,
    pub(crate) bits: u128,
}

/// Parse a lookup key or an address pattern as inet_pton would: IPv6 when
/// it contains a colon, IPv4 otherwise.
pub fn parse_addr(text: &str) -> Option<Addr> {
    if text.contains(':') {
        Ipv6Addr::from_str(text).ok().map(|a| Addr {
            v6: true,
            bits: u128::from(a),
        })
    } else {
        Ipv4Addr::from_str(text).ok().map(|a| Addr {
            v6: false,
            bits: u128::from(u32::from(a)),
        })
    }
}

/// A network: address family, network bits and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    pub(crate) v6: bool,
    pub(crate) net: u128,
    pub(crate) mask: u128,
}

impl Net {
    fn width(v6: bool) -> u32 {
        if v6 {
            128
        } else {
            32
        }
    }

    fn mask_of(v6: bool, len: u32) -> u128 {
        let width = Net::width(v6);
        let all = if v6 { u128::MAX } else { u128::from(u32::MAX) };
        if len == 0 {
            0
        } else {
            all & !((1u128 << (width - len)) - 1) & all
        }
    }

    /// True when `addr` is inside this network (same family only).
    pub fn contains(&self, addr: Addr) -> bool {
        addr.v6 == self.v6 && addr.bits & self.mask == self.net
    }
}

fn show(v6: bool, bits: u128) -> String {
    if v6 {
        Ipv6Addr::from(bits).to_string()
    } else {
        Ipv4Addr::from(bits as u32).to_string()
    }
}

/// Parse a pattern: `addr`, `addr/len`, `[addr]`, `[addr]/len`, `[addr/len]`.
pub fn parse_net(pattern: &str) -> Result<Net, String> {
    let text = if let Some(inner) = pattern.strip_prefix('[') {
        let Some(close) = inner.find(']') else {
            return Err(format!("missing ']' character after \"{pattern}\""));
        };
        let rest = &inner[close + 1..];
        if !rest.is_empty() && !rest.starts_with('/') {
            return Err(format!("garbage after \"[{}]\"", &inner[..close]));
        }
        format!("{}{rest}", &inner[..close])
    } else {
        pattern.to_string()
    };
    match text.split_once('/') {
        None => {
            let addr =
                parse_addr(&text).ok_or_else(|| format!("bad address pattern: \"{text}\""))?;
            Ok(Net {
                v6: addr.v6,
                net: addr.bits,
                mask: Net::mask_of(addr.v6, Net::width(addr.v6)),
            })
        }
        Some((addr_text, len_text)) => {
            if len_text.is_empty() || !len_text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("bad mask value in \"{text}\""));
            }
            let v6 = addr_text.contains(':');
            let len = len_text.parse::<u32>().unwrap_or(u32::MAX);
            if len > Net::width(v6) {
                return Err(format!("bad mask length in \"{text}\""));
            }
            let addr =
                parse_addr(addr_text).ok_or_else(|| format!("bad network value in \"{text}\""))?;
            let mask = Net::mask_of(v6, len);
            if addr.bits & !mask & Net::mask_of(v6, Net::width(v6)) != 0 {
                return Err(format!(
                    "non-null host address bits in \"{text}\", perhaps you should use \"{}/{len}\" instead",
                    show(v6, addr.bits & mask)
                ));
            }
            Ok(Net {
                v6,
                net: addr.bits & mask,
                mask,
            })
        }
    }
}

/// One rule of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// `pattern result`: answer `result` when the key matches.
    Match {
        /// The network.
        net: Net,
        /// True for `!pattern`.
        negate: bool,
        /// The answer.
        result: String,
    },
    /// `if pattern`: when the key does not match, continue after `end`
    /// (the index of the matching `endif`; `None`: the lookup ends).
    If {
        /// The network.
        net: Net,
        /// True for `if !pattern`.
        negate: bool,
        /// Index of the matching `endif`.
        end: Option<usize>,
    },
    /// `endif`.
    EndIf,
}

fn matches(net: &Net, negate: bool, key: Addr) -> bool {
    key.v6 == net.v6 && net.contains(key) != negate
}

fn is_space(c: char) -> bool {
    c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\x0b' || c == '\x0c'
}

/// Strip any run of `!` and white space; true when the count of `!` is odd.
fn negation(text: &str) -> (bool, &str) {
    let rest = text.trim_start_matches(|c: char| c == '!' || is_space(c));
    let bangs = text[..text.len() - rest.len()]
        .chars()
        .filter(|&c| c == '!')
        .count();
    (bangs % 2 == 1, rest)
}

/// `keyword` at the start of `text`, case-insensitively, not followed by an
/// alphanumeric character; returns the rest.
fn keyword<'t>(text: &'t str, keyword: &str) -> Option<&'t str> {
    let head = text.get(..keyword.len())?;
    let rest = &text[keyword.len()..];
    (head.eq_ignore_ascii_case(keyword) && !rest.starts_with(|c: char| c.is_ascii_alphanumeric()))
        .then_some(rest)
}

/// The rules of a table, and warnings as (line, message) for rules skipped.
pub fn parse(lines: &[(usize, String)]) -> (Vec<Rule>, Vec<(usize, String)>) {
    let mut rules = Vec::new();
    let mut warnings = Vec::new();
    let mut open_ifs: Vec<(usize, usize)> = Vec::new();
    for (lineno, text) in lines {
        let text = text.trim_matches(is_space);
        let parsed = if let Some(rest) = keyword(text, "endif") {
            if !rest.trim_matches(is_space).is_empty() {
                Err("garbage after ENDIF".to_string())
            } else if let Some((at, _)) = open_ifs.pop() {
                let here = rules.len();
                if let Rule::If { end, .. } = &mut rules[at] {
                    *end = Some(here);
                }
                Ok(Rule::EndIf)
            } else {
                Err("ENDIF without IF".to_string())
            }
        } else if let Some(rest) = keyword(text, "if") {
            let (negate, pattern) = negation(rest);
            let pattern = pattern.trim_matches(is_space);
            if pattern.is_empty() {
                Err("no address pattern".to_string())
            } else {
                parse_net(pattern).map(|net| {
                    open_ifs.push((rules.len(), *lineno));
                    Rule::If {
                        net,
                        negate,
                        end: None,
                    }
                })
            }
        } else {
            let (negate, rest) = negation(text);
            let cut = rest.find(is_space).unwrap_or(rest.len());
            let (pattern, result) = (&rest[..cut], rest[cut..].trim_matches(is_space));
            if pattern.is_empty() {
                Err("no address pattern".to_string())
            } else {
                match parse_net(pattern) {
                    Err(e) => Err(e),
                    Ok(_) if result.is_empty() => Err("no lookup result".to_string()),
                    Ok(net) => Ok(Rule::Match {
                        net,
                        negate,
                        result: result.to_string(),
                    }),
                }
            }
        };
        match parsed {
            Ok(rule) => rules.push(rule),
            Err(e) => warnings.push((*lineno, format!("{e}: skipping this rule"))),
        }
    }
    for (_, lineno) in open_ifs {
        warnings.push((lineno, "IF has no matching ENDIF".to_string()));
    }
    (rules, warnings)
}

/// The answer for `key`, first match wins.
pub fn lookup<'r>(rules: &'r [Rule], key: &str) -> Option<&'r str> {
    lookup_indexed(rules, &RunIndex::default(), key)
}

/// [`lookup`], jumping over indexed runs of plain rules with `index`.
pub fn lookup_indexed<'r>(rules: &'r [Rule], index: &RunIndex, key: &str) -> Option<&'r str> {
    let key = parse_addr(key)?;
    let mut i = 0;
    while i < rules.len() {
        if let Some((found, end)) = index.at(i, key) {
            match found {
                Some(r) => {
                    if let Rule::Match { result, .. } = &rules[r] {
                        return Some(result);
                    }
                }
                None => {
                    i = end;
                    continue;
                }
            }
        }
        match &rules[i] {
            Rule::Match {
                net,
                negate,
                result,
            } => {
                if matches(net, *negate, key) {
                    return Some(result);
                }
            }
            Rule::If { net, negate, end } => {
                if !matches(net, *negate, key) {
                    i = (*end)?;
                }
            }
            Rule::EndIf => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> (Vec<Rule>, Vec<(usize, String)>) {
        let lines: Vec<(usize, String)> = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.to_string()))
            .collect();
        parse(&lines)
    }

    #[test]
    fn forms_negation_blocks_and_errors() {
        let (rules, warnings) = table(
            "1.2.3.4 bare4\n10.0.0.0/8 net8\n[2001:db8:1::]/48 br6a\n[192.168.3.0/24] br4b\n\
             1.2.3.4/24 hb\n010.1.1.1 oct\nif 172.16.0.0/12\n!172.16.1.0/24 not1\nendif\n\
             ::/0 any6\nendif\n1.1.1.3\n",
        );
        assert_eq!(lookup(&rules, "1.2.3.4"), Some("bare4"));
        assert_eq!(lookup(&rules, "10.9.9.9"), Some("net8"));
        assert_eq!(lookup(&rules, "2001:db8:1::5"), Some("br6a"));
        assert_eq!(lookup(&rules, "192.168.3.7"), Some("br4b"));
        assert_eq!(lookup(&rules, "1.2.3.9"), None);
        assert_eq!(lookup(&rules, "172.16.2.1"), Some("not1"));
        assert_eq!(lookup(&rules, "172.16.1.1"), None);
        assert_eq!(lookup(&rules, "2001:db8::1"), Some("any6"));
        assert_eq!(lookup(&rules, "010.1.1.1"), None);
        assert_eq!(lookup(&rules, "[1.2.3.4]"), None);
        let text: Vec<String> = warnings.iter().map(|(l, m)| format!("{l}: {m}")).collect();
        assert_eq!(
            text,
            [
                "5: non-null host address bits in \"1.2.3.4/24\", perhaps you should use \"1.2.3.0/24\" instead: skipping this rule",
                "6: bad address pattern: \"010.1.1.1\": skipping this rule",
                "11: ENDIF without IF: skipping this rule",
                "12: no lookup result: skipping this rule",
            ]
        );
    }

    #[test]
    fn an_if_without_endif_ends_the_lookup_when_false() {
        let (rules, warnings) = table("if 10.0.0.0/8\n10.1.0.0/16 a\n0.0.0.0/0 b\n");
        assert_eq!(lookup(&rules, "10.2.2.2"), Some("b"));
        assert_eq!(lookup(&rules, "11.1.1.1"), None);
        assert_eq!(warnings, [(1, "IF has no matching ENDIF".to_string())]);
    }

    #[test]
    fn families_never_match_across() {
        let (rules, _) = table("!10.0.0.0/8 notten\n");
        assert_eq!(lookup(&rules, "11.1.1.1"), Some("notten"));
        assert_eq!(lookup(&rules, "2001:db8::1"), None);
    }
}
