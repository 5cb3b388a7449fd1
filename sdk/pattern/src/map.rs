//! A loaded pattern table and its lookup: the rule walk of [`crate::table`]
//! over an [`Engine`] that says which patterns match and with what groups,
//! then `$N` expansion. With the `guest` feature it is a proxymapd plugin
//! map type, so a plugin crate only supplies its engine.

use crate::engines::{Groups, Scan};
use crate::table::{Compiler, Dialect, Rule, Table};

/// The matching side of one pattern dialect.
pub trait Engine: Compiler + Default {
    /// The dialect's rule syntax and message wording.
    const DIALECT: Dialect;
    /// Called once every rule is compiled.
    fn finish(&mut self);
    /// Start a lookup of `key`.
    fn scan<'k>(&self, key: &'k [u8]) -> Scan<'k>;
    /// Whether pattern `id` matches the key.
    fn is_match(&self, scan: &Scan, id: usize) -> Result<bool, String>;
    /// The groups of pattern `id`'s match in the key.
    fn groups(&self, scan: &Scan, id: usize) -> Result<Groups, String>;
}

/// A loaded table.
pub struct PatternTable<E> {
    name: String,
    table: Table,
    engine: E,
}

impl<E: Engine> PatternTable<E> {
    /// Load rule `lines` of table `name`; also returns the warnings to log.
    pub fn load(name: String, lines: &[(usize, Vec<u8>)], no_regsub: bool) -> (Self, Vec<String>) {
        let mut engine = E::default();
        let (table, warnings) = Table::load(lines, &name, &E::DIALECT, no_regsub, &mut engine);
        engine.finish();
        (
            PatternTable {
                name,
                table,
                engine,
            },
            warnings,
        )
    }

    /// The answer for `key` (lowercased first when `fold`), and a warning
    /// for each pattern that failed to run; such a pattern counts as not
    /// matching, as in Postfix. An error is a failure to find the groups of
    /// the answering rule.
    pub fn lookup(&self, key: &[u8], fold: bool) -> (Result<Option<Vec<u8>>, String>, Vec<String>) {
        let folded;
        let key = if fold {
            folded = key.to_ascii_lowercase();
            &folded[..]
        } else {
            key
        };
        let scan = self.engine.scan(key);
        let mut failed = Vec::new();
        let answer = self.table.lookup(|id| {
            self.engine.is_match(&scan, id).unwrap_or_else(|e| {
                failed.push((id, e));
                false
            })
        });
        let warnings = failed
            .into_iter()
            .map(|(id, e)| {
                let line = self.table.line_of(id).unwrap_or(0);
                format!(
                    "{} map {}, line {line}: {e}",
                    E::DIALECT.map_type,
                    self.name
                )
            })
            .collect();
        let value = answer.map(|index| self.answer(&scan, index)).transpose();
        (value, warnings)
    }

    /// Expand the result of answering rule `index`.
    fn answer(&self, scan: &Scan, index: usize) -> Result<Vec<u8>, String> {
        let Rule::Match {
            pattern, result, ..
        } = &self.table.rules[index]
        else {
            return Ok(Vec::new());
        };
        if !result.uses_groups() {
            return Ok(result.expand(|_| None));
        }
        let groups = self.engine.groups(scan, *pattern)?;
        let key = scan.key;
        Ok(result.expand(|n| {
            groups
                .get(n as usize)
                .copied()
                .flatten()
                .map(|(s, e)| &key[s..e])
        }))
    }
}

#[cfg(feature = "guest")]
impl<E: Engine + 'static> proxymapd_sdk::MapType for PatternTable<E> {
    fn open(request: &proxymapd_sdk::OpenRequest) -> Result<Self, proxymapd_sdk::Error> {
        use proxymapd_sdk::flags;
        let (name, lines) = crate::inline::table_lines(request, E::DIALECT.map_type)?;
        let no_regsub = request.flags & flags::NO_REGSUB != 0;
        let (table, warnings) = PatternTable::load(name, &lines, no_regsub);
        for warning in warnings {
            proxymapd_sdk::log::warning(&warning);
        }
        Ok(table)
    }

    fn flags(&self) -> u32 {
        proxymapd_sdk::flags::PATTERN
    }

    fn lookup(
        &self,
        key: &[u8],
        request_flags: u32,
    ) -> Result<Option<Vec<u8>>, proxymapd_sdk::Error> {
        let fold = request_flags & proxymapd_sdk::flags::FOLD_MUL != 0;
        let (answer, warnings) = PatternTable::lookup(self, key, fold);
        for warning in warnings {
            proxymapd_sdk::log::warning(&warning);
        }
        answer.map_err(proxymapd_sdk::Error::Retry)
    }
}
