//! regexp:/path — Postfix's regexp_table(5) as a proxymapd plugin. The
//! table is parsed once at open: bad rules are skipped with Postfix's
//! warning naming the line, patterns are compiled for Rust's automata with
//! glibc's meaning (see `engine`), and every lookup first asks one
//! multi-pattern automaton which rules can match. Rules apply in order,
//! first match wins, with `!`, `if`/`endif`, `$N` substitution and the
//! inline form `regexp:{ {rule}, {rule} }`. Keys are lowercased only when
//! the client asks for FOLD_MUL. The table reports the PATTERN flag and,
//! like Postfix's, cannot be sequenced.

pub mod engine;

use engine::Patterns;
use proxymapd_pattern::inline::table_lines;
use proxymapd_pattern::replacement::Wording;
use proxymapd_pattern::table::{Dialect, Rule, Table};
use proxymapd_sdk::{flags, log, Error, MapType, OpenRequest};

/// How regexp tables word their messages.
const DIALECT: Dialect = Dialect {
    map_type: "regexp",
    missing_delimiter_verb: "skipping",
    wording: Wording {
        zero_index: "out-of-range",
    },
    second_pattern: true,
};

/// An open regexp table.
pub struct RegexpTable {
    name: String,
    table: Table,
    patterns: Patterns,
}

impl MapType for RegexpTable {
    fn open(request: &OpenRequest) -> Result<Self, Error> {
        let (name, lines) = table_lines(request, "regexp")?;
        let mut patterns = Patterns::default();
        let no_regsub = request.flags & flags::NO_REGSUB != 0;
        let (table, warnings) = Table::load(&lines, &name, &DIALECT, no_regsub, &mut patterns);
        for warning in warnings {
            log::warning(&warning);
        }
        patterns.finish();
        Ok(RegexpTable {
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
        let scan = self.patterns.scan(key);
        let mut failure = None;
        let answer = self.table.lookup(|id| {
            self.patterns.is_match(&scan, id, key).unwrap_or_else(|e| {
                failure.get_or_insert(e);
                false
            })
        });
        if let Some(e) = failure {
            log::warning(&format!("regexp map {}: {e}", self.name));
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
        let groups = self.patterns.groups(*pattern, key).map_err(Error::Retry)?;
        Ok(Some(result.expand(|n| {
            groups
                .get(n as usize)
                .copied()
                .flatten()
                .map(|(s, e)| &key[s..e])
        })))
    }
}

proxymapd_sdk::export_map_type!(RegexpTable);
