//! pcre:/path — Postfix's pcre_table(5) as a proxymapd plugin. The table
//! is parsed once at open (bad rules are skipped with Postfix's warning
//! naming the line), each pattern is compiled for the engine that fits it
//! (see `engine`), and a lookup first asks one multi-pattern automaton
//! which regular patterns match. Rules apply in order, first match wins,
//! with `!`, `if`/`endif`, `$N` substitution and the inline form
//! `pcre:{ {rule}, {rule} }`. Keys are lowercased only when the client asks
//! for FOLD_MUL. The table reports the PATTERN flag and, like Postfix's,
//! cannot be sequenced.

pub mod engine;

use engine::{KeyText, Patterns};
use proxymapd_pattern::inline::table_lines;
use proxymapd_pattern::replacement::Wording;
use proxymapd_pattern::table::{Dialect, Rule, Table};
use proxymapd_sdk::{flags, log, Error, MapType, OpenRequest};
use std::cell::RefCell;

/// How pcre tables word their messages.
pub const DIALECT: Dialect = Dialect {
    map_type: "pcre",
    missing_delimiter_verb: "ignoring",
    wording: Wording {
        zero_index: "out of range",
    },
    second_pattern: false,
};

/// An open pcre table.
pub struct PcreTable {
    name: String,
    table: Table,
    patterns: Patterns,
}

impl MapType for PcreTable {
    fn open(request: &OpenRequest) -> Result<Self, Error> {
        let (name, lines) = table_lines(request, "pcre")?;
        let mut patterns = Patterns::default();
        let no_regsub = request.flags & flags::NO_REGSUB != 0;
        let (table, warnings) = Table::load(&lines, &name, &DIALECT, no_regsub, &mut patterns);
        for warning in warnings {
            log::warning(&warning);
        }
        patterns.finish();
        Ok(PcreTable {
            name,
            table,
            patterns,
        })
    }

    fn flags(&self) -> u32 {
        flags::PATTERN
    }

    fn lookup(&self, key: &[u8], request_flags: u32) -> Result<Option<Vec<u8>>, Error> {
        let folded;
        let key = if request_flags & flags::FOLD_MUL != 0 {
            folded = key.to_ascii_lowercase();
            &folded[..]
        } else {
            key
        };
        let text = KeyText::new(key);
        let scan = self.patterns.scan(key);
        let failures = RefCell::new(Vec::new());
        let answer = self.table.lookup(|id| {
            self.patterns
                .is_match(&scan, id, &text)
                .unwrap_or_else(|e| {
                    failures.borrow_mut().push((id, e));
                    false
                })
        });
        for (id, e) in failures.into_inner() {
            let line = self.table.rules.iter().find_map(|r| match r {
                Rule::Match { line, pattern, .. } | Rule::If { line, pattern, .. }
                    if *pattern == id =>
                {
                    Some(*line)
                }
                _ => None,
            });
            log::warning(&format!(
                "pcre map {}, line {}: {e}",
                self.name,
                line.unwrap_or(0)
            ));
        }
        let Some(index) = answer else {
            return Ok(None);
        };
        let Rule::Match {
            pattern, result, ..
        } = &self.table.rules[index]
        else {
            return Ok(None);
        };
        if !result.uses_groups() {
            return Ok(Some(result.expand(|_| None)));
        }
        let groups = self
            .patterns
            .groups(*pattern, &text)
            .map_err(Error::Retry)?;
        Ok(Some(result.expand(|n| {
            groups
                .get(n as usize)
                .copied()
                .flatten()
                .map(|(s, e)| &key[s..e])
        })))
    }
}

proxymapd_sdk::export_map_type!(PcreTable);
