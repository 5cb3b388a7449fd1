//! The `domain` setting: when present, only keys `local@domain` whose
//! domain matches the list are queried (db_common_check_domain). The list
//! is Postfix's match-list syntax: entries separated by commas or
//! whitespace, each a domain (exact, either case; no parent matching), a
//! `/file/name` whose lines hold more entries, or a `type:table` in which
//! the domain is looked up; `!entry` negates. The first entry that matches
//! decides; none matching means no query.

/// How the list reaches files and tables (the plugin asks the host).
pub trait Sources {
    /// The content of the file named in the list.
    fn file(&mut self, path: &str) -> Result<Vec<u8>, String>;
    /// Look `key` up in the table named in the list.
    fn lookup(&mut self, table: &str, key: &str) -> Result<Option<Vec<u8>>, String>;
}

/// One entry of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Domain(String),
    Table(String),
}

/// A parsed `domain` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainList {
    entries: Vec<(bool, Entry)>,
}

/// What the filter says of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Query it.
    Query,
    /// Not found, without a query.
    Skip,
    /// A table in the list failed (Postfix: RETRY).
    Error(String),
}

fn split_entries(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| c == ',' || c.is_ascii_whitespace())
        .filter(|s| !s.is_empty())
}

impl DomainList {
    /// Parse `text` (the `domain` setting), reading `/file` entries now, as
    /// Postfix does when it opens the table.
    pub fn parse(text: &str, sources: &mut dyn Sources) -> Result<DomainList, String> {
        let mut entries = Vec::new();
        for item in split_entries(text) {
            Self::add(item, sources, &mut entries, false)?;
        }
        Ok(DomainList { entries })
    }

    fn add(
        item: &str,
        sources: &mut dyn Sources,
        entries: &mut Vec<(bool, Entry)>,
        negated_already: bool,
    ) -> Result<(), String> {
        let (negated, item) = match item.strip_prefix('!') {
            Some(rest) => (!negated_already, rest),
            None => (negated_already, item),
        };
        if item.starts_with('/') {
            let bytes = sources.file(item)?;
            let text = String::from_utf8_lossy(&bytes);
            for line in text.lines() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                for inner in split_entries(line) {
                    Self::add(inner, sources, entries, negated)?;
                }
            }
        } else if item.contains(':') {
            entries.push((negated, Entry::Table(item.to_string())));
        } else {
            entries.push((negated, Entry::Domain(item.to_ascii_lowercase())));
        }
        Ok(())
    }

    /// The tables the list names (the host grants exactly these).
    pub fn tables(&self) -> Vec<&str> {
        self.entries
            .iter()
            .filter_map(|(_, e)| match e {
                Entry::Table(t) => Some(t.as_str()),
                Entry::Domain(_) => None,
            })
            .collect()
    }

    /// Whether `key` is queried.
    pub fn check(&self, key: &[u8], sources: &mut dyn Sources) -> Verdict {
        let Some(at) = key.iter().rposition(|&b| b == b'@') else {
            return Verdict::Skip;
        };
        if at == 0 {
            return Verdict::Skip;
        }
        let domain = String::from_utf8_lossy(&key[at + 1..]).to_ascii_lowercase();
        for (negated, entry) in &self.entries {
            let matched = match entry {
                Entry::Domain(d) => *d == domain,
                Entry::Table(t) => match sources.lookup(t, &domain) {
                    Ok(found) => found.is_some(),
                    Err(e) => return Verdict::Error(e),
                },
            };
            if matched {
                return if *negated {
                    Verdict::Skip
                } else {
                    Verdict::Query
                };
            }
        }
        Verdict::Skip
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake;

    impl Sources for Fake {
        fn file(&mut self, path: &str) -> Result<Vec<u8>, String> {
            assert_eq!(path, "/etc/postfix/domains");
            Ok(b"# ours\nexample.com\n  example.org, !bad.example.org\n".to_vec())
        }
        fn lookup(&mut self, table: &str, key: &str) -> Result<Option<Vec<u8>>, String> {
            assert_eq!(table, "texthash:/etc/postfix/more");
            match key {
                "broken.test" => Err("table failed".into()),
                "more.test" => Ok(Some(b"ok".to_vec())),
                _ => Ok(None),
            }
        }
    }

    #[test]
    fn literal_file_table_and_negation() {
        let list = DomainList::parse(
            "/etc/postfix/domains, texthash:/etc/postfix/more !bad.example.net EXAMPLE.NET",
            &mut Fake,
        )
        .unwrap();
        assert_eq!(list.tables(), ["texthash:/etc/postfix/more"]);
        let v = |k: &str| list.check(k.as_bytes(), &mut Fake);
        assert_eq!(v("x@EXAMPLE.COM"), Verdict::Query);
        assert_eq!(v("x@example.org"), Verdict::Query);
        assert_eq!(v("x@bad.example.org"), Verdict::Skip);
        assert_eq!(v("x@example.net"), Verdict::Query);
        assert_eq!(v("x@bad.example.net"), Verdict::Skip);
        assert_eq!(v("x@sub.example.com"), Verdict::Skip);
        assert_eq!(v("x@more.test"), Verdict::Query);
        assert_eq!(v("example.com"), Verdict::Skip);
        assert_eq!(v("@example.com"), Verdict::Skip);
        assert!(matches!(v("x@broken.test"), Verdict::Error(_)));
    }
}
