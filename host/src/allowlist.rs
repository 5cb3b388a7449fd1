//! Which tables a service may open, computed from `proxy_read_maps` /
//! `proxy_write_maps` the way Postfix's proxymap computes it: only entries
//! that start with `proxy:` count, all leading `proxy:` are stripped, brace
//! forms `{ type:name ... }` count by their table name, and tables nested
//! inside `unionmap:{...}` / `pipemap:{...}` count too. Requests must then
//! match an entry exactly (after stripping their own `proxy:` prefixes).
//! [`Allowlists`] holds both services' lists: the configuration builds it
//! and the handler consults it.

use crate::dict::braces::{split_outside_braces, strip_braces};
use std::collections::BTreeSet;

const SEPARATORS: &str = " \t\r\n,";
const PROXY: &str = "proxy:";

/// Strip every leading `proxy:` from a table name.
pub(crate) fn strip_proxy(mut name: &str) -> &str {
    while let Some(rest) = name.strip_prefix(PROXY) {
        name = rest;
    }
    name
}

/// The set of approved table names for one service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    tables: BTreeSet<String>,
}

impl Allowlist {
    /// Build from a Postfix-syntax list (already `$parameter`-expanded).
    pub(crate) fn parse(list: &str) -> Allowlist {
        let mut allow = Allowlist::default();
        allow.scan(list);
        allow
    }

    fn scan(&mut self, list: &str) {
        for token in split_outside_braces(list, SEPARATORS) {
            let token = if token.starts_with('{') {
                // { type:name attr=value ... }: the first word names the table.
                match strip_braces(token)
                    .ok()
                    .and_then(|inner| split_outside_braces(inner, SEPARATORS).first().copied())
                {
                    Some(first) => first,
                    None => continue,
                }
            } else {
                token
            };
            let name = strip_proxy(token);
            if name.len() != token.len() && name.contains(':') {
                self.tables.insert(name.to_string());
            }
            for nested in ["unionmap:", "pipemap:"] {
                if let Some(inner) = name.strip_prefix(nested) {
                    if let Ok(inner) = strip_braces(inner) {
                        self.scan(inner);
                    }
                }
            }
        }
    }

    /// True when `table` (already stripped of `proxy:`) is approved.
    pub(crate) fn allows(&self, table: &str) -> bool {
        self.tables.contains(table)
    }

    /// The approved table names.
    pub fn tables(&self) -> impl Iterator<Item = &str> {
        self.tables.iter().map(String::as_str)
    }

    /// Number of approved tables.
    pub fn len(&self) -> usize {
        self.tables.len()
    }

    /// True when nothing is approved.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }
}

/// Approved tables of both services.
#[derive(Debug, Clone, Default)]
pub struct Allowlists {
    /// Tables of `proxy_read_maps`.
    pub read: Allowlist,
    /// Tables of `proxy_write_maps`.
    pub write: Allowlist,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn computes_like_postfix() {
        let list = "proxy:hash:/etc/postfix/virtual, hash:/not/proxied \
            proxy:proxy:lmdb:/x {proxy:texthash:/t attr=1} \
            unionmap:{proxy:cdb:/a, hash:/b} proxy:pipemap:{proxy:inline:{a=b}, static:x} \
            proxy:nocolon $unexpanded";
        let allow = Allowlist::parse(list);
        let got: Vec<&str> = allow.tables().collect();
        assert_eq!(
            got,
            vec![
                "cdb:/a",
                "hash:/etc/postfix/virtual",
                "inline:{a=b}",
                "lmdb:/x",
                "pipemap:{proxy:inline:{a=b}, static:x}",
                "texthash:/t",
            ]
        );
        assert!(!allow.allows("hash:/not/proxied"));
        assert_eq!(strip_proxy("proxy:proxy:lmdb:/x"), "lmdb:/x");
    }
}
