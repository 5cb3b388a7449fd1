//! cidr:/path — Postfix's cidr_table(5) as a proxymapd plugin. The table is
//! parsed once at open (bad rules are skipped with a warning naming the
//! line, as Postfix does); lookups walk the rules in order, first match
//! wins, jumping over long runs of plain rules through an index. Keys are addresses and are never folded; the table reports the
//! PATTERN flag, so clients do not try partial keys. The inline form
//! `cidr:{ {rule}, {rule} }` takes its rules from the table name. Read-only,
//! and like Postfix's cidr tables it cannot be sequenced.

pub mod index;
pub mod rules;

use index::RunIndex;
use proxymapd_sdk::source::logical_lines;
use proxymapd_sdk::{flags, log, read_file, Error, MapType, OpenRequest};
use rules::Rule;

/// An open cidr table.
pub struct CidrTable {
    rules: Vec<Rule>,
    index: RunIndex,
}

impl MapType for CidrTable {
    fn open(request: &OpenRequest) -> Result<Self, Error> {
        let (path, lines) = if request.name.starts_with('{') {
            (request.name.clone(), inline_rules(&request.name)?)
        } else {
            let path = request
                .files
                .first()
                .cloned()
                .ok_or_else(|| Error::Config("no table file was granted".into()))?;
            let content = read_file(0).map_err(|e| Error::Config(format!("open {path}: {e}")))?;
            let lines = logical_lines(&content)
                .into_iter()
                .map(|l| (l.lineno, String::from_utf8_lossy(&l.text).into_owned()))
                .collect();
            (path, lines)
        };
        let (rules, warnings) = rules::parse(&lines);
        for (lineno, message) in warnings {
            log::warning(&format!("cidr map {path}, line {lineno}: {message}"));
        }
        let index = RunIndex::build(&rules);
        Ok(CidrTable { rules, index })
    }

    fn flags(&self) -> u32 {
        flags::PATTERN
    }

    fn lookup(&self, key: &[u8], _request_flags: u32) -> Result<Option<Vec<u8>>, Error> {
        let Ok(key) = std::str::from_utf8(key) else {
            return Ok(None);
        };
        Ok(rules::lookup_indexed(&self.rules, &self.index, key).map(|r| r.as_bytes().to_vec()))
    }
}

/// The rules of an inline table `{ {rule}, {rule} }`, numbered from 1.
fn inline_rules(name: &str) -> Result<Vec<(usize, String)>, Error> {
    let rules = proxymapd_sdk::braces::inline_rules(name, "cidr").map_err(Error::Config)?;
    Ok(rules
        .into_iter()
        .map(|(n, text)| (n, text.to_string()))
        .collect())
}

proxymapd_sdk::export_map_type!(CidrTable);
