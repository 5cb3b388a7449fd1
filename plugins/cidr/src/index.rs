//! An index over long runs of plain cidr rules (no `!`, no `if`/`endif`
//! between them), the shape of RBL-style access lists with thousands of
//! networks. Within a run the first matching rule is the one with the
//! lowest index among all networks containing the key, so the run keeps one
//! hash map per (family, prefix length) from network to its first rule. A
//! lookup then costs one probe per prefix length used in the run instead of
//! one comparison per rule; rules outside runs are walked as before.

use crate::rules::{Addr, Rule};
use std::collections::HashMap;

/// Runs shorter than this are walked rule by rule.
const MIN_RUN: usize = 16;

/// Networks of one family and prefix length in a run.
#[derive(Debug)]
struct Length {
    v6: bool,
    mask: u128,
    first_rule: HashMap<u128, usize>,
}

/// One indexed run of rules, ending before `end`.
#[derive(Debug)]
struct Run {
    end: usize,
    lengths: Vec<Length>,
}

/// The indexed runs of a table.
#[derive(Debug, Default)]
pub struct RunIndex {
    runs: Vec<Run>,
    /// For each rule, 1 + the index of the run starting there, or 0; empty
    /// when the table has no runs.
    run_at: Vec<u32>,
}

impl RunIndex {
    /// Index every long run of plain rules in `rules`.
    pub fn build(rules: &[Rule]) -> RunIndex {
        let plain = |r: &Rule| matches!(r, Rule::Match { negate: false, .. });
        let mut index = RunIndex::default();
        let mut i = 0;
        while i < rules.len() {
            if !plain(&rules[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < rules.len() && plain(&rules[i]) {
                i += 1;
            }
            if i - start >= MIN_RUN {
                index.run_at.resize(rules.len(), 0);
                index.runs.push(Run::build(rules, start, i));
                index.run_at[start] = index.runs.len() as u32;
            }
        }
        index
    }

    /// If an indexed run starts at rule `i`: the first rule in it that
    /// matches `key` (if any) and the index just past the run.
    pub fn at(&self, i: usize, key: Addr) -> Option<(Option<usize>, usize)> {
        let run = self
            .runs
            .get((*self.run_at.get(i)? as usize).checked_sub(1)?)?;
        let found = run
            .lengths
            .iter()
            .filter(|l| l.v6 == key.v6)
            .filter_map(|l| l.first_rule.get(&(key.bits & l.mask)).copied())
            .min();
        Some((found, run.end))
    }
}

impl Run {
    fn build(rules: &[Rule], start: usize, end: usize) -> Run {
        let mut lengths: Vec<Length> = Vec::new();
        for (index, rule) in rules.iter().enumerate().take(end).skip(start) {
            let Rule::Match { net, .. } = rule else {
                continue;
            };
            let slot = match lengths
                .iter()
                .position(|l| l.v6 == net.v6 && l.mask == net.mask)
            {
                Some(p) => p,
                None => {
                    lengths.push(Length {
                        v6: net.v6,
                        mask: net.mask,
                        first_rule: HashMap::new(),
                    });
                    lengths.len() - 1
                }
            };
            lengths[slot].first_rule.entry(net.net).or_insert(index);
        }
        Run { end, lengths }
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::{lookup, lookup_indexed, parse};

    use super::*;

    #[test]
    fn indexed_lookups_equal_the_rule_walk() {
        let mut rng = fastrand_like(7);
        let mut text = String::from("if 10.0.0.0/8\n10.1.0.0/16 in-if\nendif\n");
        for i in 0..400 {
            let len = [8u32, 16, 24, 32][i % 4];
            let base = (rng() as u32) & (u32::MAX << (32 - len));
            text.push_str(&format!("{}/{len} r{i}\n", std::net::Ipv4Addr::from(base)));
        }
        text.push_str("!1.2.3.4 not-1234\n::/0 v6\n");
        let lines: Vec<(usize, String)> = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.to_string()))
            .collect();
        let (rules, _) = parse(&lines);
        let index = RunIndex::build(&rules);
        assert_eq!(index.runs.len(), 1);
        for _ in 0..5000 {
            let key = std::net::Ipv4Addr::from(rng() as u32).to_string();
            assert_eq!(
                lookup_indexed(&rules, &index, &key),
                lookup(&rules, &key),
                "{key}"
            );
        }
        assert_eq!(lookup_indexed(&rules, &index, "10.1.2.3"), Some("in-if"));
        assert_eq!(lookup_indexed(&rules, &index, "2001:db8::1"), Some("v6"));
    }

    /// A small xorshift generator, enough for test keys.
    fn fastrand_like(seed: u64) -> impl FnMut() -> u64 {
        let mut s = seed;
        move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        }
    }
}
