//! A minimal main.cf reader, used only when `postconf` is not installed:
//! `name = value` lines, continuation lines, comments, and `$name`,
//! `${name}`, `$(name)` expansion. Parameters not set in main.cf expand to
//! the defaults given by the caller, else to nothing — which loses no
//! approved table, because Postfix's built-in defaults name no `proxy:` maps.

use std::collections::HashMap;

/// Parameters of a main.cf file.
#[derive(Debug, Default, Clone)]
pub(crate) struct MainCf {
    values: HashMap<String, String>,
}

impl MainCf {
    /// Parse main.cf text.
    pub(crate) fn parse(text: &str) -> MainCf {
        let mut values = HashMap::new();
        let mut last: Option<String> = None;
        for line in text.lines() {
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            if line.starts_with(char::is_whitespace) {
                if let Some(name) = &last {
                    let v: &mut String = values.get_mut(name).expect("last parameter was stored");
                    v.push(' ');
                    v.push_str(trimmed);
                }
                continue;
            }
            if let Some((name, value)) = line.split_once('=') {
                let name = name.trim().to_string();
                values.insert(name.clone(), value.trim().to_string());
                last = Some(name);
            }
        }
        MainCf { values }
    }

    /// The fully expanded value of `name`, falling back to `defaults`.
    pub(crate) fn expanded(&self, name: &str, defaults: &HashMap<&str, &str>) -> String {
        self.expand_name(name, defaults, 0)
    }

    /// Every parameter's expanded value, joined with spaces.
    pub(crate) fn all_expanded(&self, defaults: &HashMap<&str, &str>) -> String {
        let mut names: Vec<&String> = self.values.keys().collect();
        names.sort();
        names
            .into_iter()
            .map(|n| self.expanded(n, defaults))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn expand_name(&self, name: &str, defaults: &HashMap<&str, &str>, depth: usize) -> String {
        let raw = self
            .values
            .get(name)
            .map(String::as_str)
            .or_else(|| defaults.get(name).copied())
            .unwrap_or("");
        if depth > 32 {
            return raw.to_string();
        }
        self.expand_text(raw, defaults, depth + 1)
    }

    fn expand_text(&self, text: &str, defaults: &HashMap<&str, &str>, depth: usize) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let (name, skip) = match after.chars().next() {
                Some(open @ ('{' | '(')) => {
                    let close = if open == '{' { '}' } else { ')' };
                    match after.find(close) {
                        Some(end) => (&after[1..end], end + 1),
                        None => ("", 0),
                    }
                }
                _ => {
                    let end = after
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(after.len());
                    (&after[..end], end)
                }
            };
            if name.is_empty() {
                out.push('$');
                rest = after;
            } else {
                out.push_str(&self.expand_name(name, defaults, depth));
                rest = &after[skip..];
            }
        }
        out.push_str(rest);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_parameters() {
        let cf = MainCf::parse(
            "# c\nvirtual_alias_maps = proxy:hash:$config_directory/virt\n  proxy:lmdb:${a}\na = /x\nproxy_read_maps = $virtual_alias_maps $(missing)\n",
        );
        let defaults = HashMap::from([("config_directory", "/etc/postfix")]);
        assert_eq!(
            cf.expanded("proxy_read_maps", &defaults),
            "proxy:hash:/etc/postfix/virt proxy:lmdb:/x "
        );
    }
}
