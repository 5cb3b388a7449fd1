//! A table's `.cf` file, read as Postfix reads it (`dict_load_file` and
//! `cfg_parser`): `name = value` lines; blank lines and lines whose first
//! non-blank character is `#` are skipped; a line that starts with
//! whitespace continues the one before (joined with nothing in between,
//! its leading whitespace kept). A logical line that is not `name = value`
//! is an error naming the file and line; a name given twice logs a warning
//! and the last value wins. Values are not `$name`-expanded.

use std::collections::HashMap;
use std::fmt;

/// A `.cf` file that cannot be used, with Postfix's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CfError(pub String);

impl fmt::Display for CfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CfError {}

/// The settings of one `.cf` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CfFile {
    /// The file's path, for messages.
    pub path: String,
    entries: HashMap<String, String>,
    /// Warnings met while reading (Postfix logs them and goes on).
    pub warnings: Vec<String>,
}

fn is_space(b: u8) -> bool {
    b.is_ascii_whitespace()
}

fn trim(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_ascii_whitespace())
}

/// Logical lines with the number of the physical line each ended on.
fn logical_lines(text: &str, path: &str, warnings: &mut Vec<String>) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (n, line) in text.split('\n').enumerate() {
        let number = n + 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        let content = line.trim_start_matches(|c: char| c.is_ascii_whitespace());
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let continues = line.as_bytes().first().is_some_and(|b| is_space(*b));
        match (&mut current, continues) {
            (Some((end, text)), true) => {
                text.push_str(line);
                *end = number;
            }
            (None, true) => warnings.push(format!(
                "{path}: logical line must not start with whitespace: \"{}{}\"",
                line.chars().take(30).collect::<String>(),
                if line.chars().count() > 30 { "..." } else { "" }
            )),
            (_, false) => {
                if let Some(done) = current.take() {
                    out.push(done);
                }
                current = Some((number, line.to_string()));
            }
        }
    }
    out.extend(current);
    out
}

impl CfFile {
    /// Read `text`, the content of the file at `path`.
    pub fn parse(path: &str, text: &[u8]) -> Result<CfFile, CfError> {
        let text = String::from_utf8_lossy(text);
        let mut warnings = Vec::new();
        let mut entries = HashMap::new();
        for (line, logical) in logical_lines(&text, path, &mut warnings) {
            let Some((name, value)) = logical.split_once('=') else {
                return Err(CfError(format!(
                    "{path}, line {line}: missing '=' after attribute name: \"{}\"",
                    trim(&logical)
                )));
            };
            let name = trim(name);
            if name.is_empty() {
                return Err(CfError(format!(
                    "{path}, line {line}: missing attribute name: \"{}\"",
                    trim(&logical)
                )));
            }
            if entries
                .insert(name.to_string(), trim(value).to_string())
                .is_some()
            {
                warnings.push(format!(
                    "{path}, line {line}: overriding earlier entry: {name}={}",
                    trim(value)
                ));
            }
        }
        Ok(CfFile {
            path: path.to_string(),
            entries,
            warnings,
        })
    }

    /// A setting as written, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries.get(name).map(String::as_str)
    }

    /// A string setting (`default` when absent) whose length must be at
    /// least `min` and, unless `max` is 0, at most `max`.
    pub fn string(
        &self,
        name: &str,
        default: &str,
        min: usize,
        max: usize,
    ) -> Result<String, CfError> {
        let value = self.get(name).unwrap_or(default);
        let len = value.len();
        if len < min {
            return Err(CfError(format!(
                "{}: bad string length {len} < {min}: {name} = {value}",
                self.path
            )));
        }
        if max > 0 && len > max {
            return Err(CfError(format!(
                "{}: bad string length {len} > {max}: {name} = {value}",
                self.path
            )));
        }
        Ok(value.to_string())
    }

    /// A whole-number setting (`default` when absent) within `min..=max`
    /// (`max` 0: no upper bound). Trailing junk is an error, as in Postfix.
    pub fn int(&self, name: &str, default: i64, min: i64, max: i64) -> Result<i64, CfError> {
        let value = match self.get(name) {
            None => default,
            Some(text) => parse_int(text).ok_or_else(|| {
                CfError(format!(
                    "{}: bad numerical configuration: {name} = {text}",
                    self.path
                ))
            })?,
        };
        if value < min {
            return Err(CfError(format!(
                "{}: invalid {name} parameter value {value} < {min}",
                self.path
            )));
        }
        if max > 0 && value > max {
            return Err(CfError(format!(
                "{}: invalid {name} parameter value {value} > {max}",
                self.path
            )));
        }
        Ok(value)
    }

    /// A `yes`/`no` setting (either case), `default` when absent.
    pub fn boolean(&self, name: &str, default: bool) -> Result<bool, CfError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("yes") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("no") => Ok(false),
            Some(v) => Err(CfError(format!(
                "{}: bad boolean configuration: {name} = {v}",
                self.path
            ))),
        }
    }
}

/// `strtol(…, 10)` with nothing after the number (leading blanks and a sign
/// allowed, as strtol takes them).
fn parse_int(text: &str) -> Option<i64> {
    let t = text.trim_start_matches(|c: char| c.is_ascii_whitespace());
    if t.is_empty() {
        return None;
    }
    t.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_comments_continuations_and_overrides() {
        let text = b"# comment\n\nhosts = db1 db2\nquery = SELECT x\n  FROM t\n# inside\n   WHERE k='%s'\n\
                     dbname=mail\ndbname = other\n  \n";
        let cf = CfFile::parse("/etc/postfix/t.cf", text).unwrap();
        assert_eq!(cf.get("hosts"), Some("db1 db2"));
        assert_eq!(cf.get("query"), Some("SELECT x  FROM t   WHERE k='%s'"));
        assert_eq!(cf.get("dbname"), Some("other"));
        assert_eq!(cf.warnings.len(), 1);
        assert!(
            cf.warnings[0].contains("line 9: overriding earlier entry"),
            "{:?}",
            cf.warnings
        );
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let err = CfFile::parse("/x.cf", b"hosts = a\nnot a setting\n").unwrap_err();
        assert_eq!(
            err.0,
            "/x.cf, line 2: missing '=' after attribute name: \"not a setting\""
        );
        let cf = CfFile::parse("/x.cf", b"expansion_limit = 2x\nflag = maybe\n").unwrap();
        assert!(cf.int("expansion_limit", 0, 0, 0).is_err());
        assert!(cf.boolean("flag", false).is_err());
        assert_eq!(cf.int("absent", 7, 0, 0).unwrap(), 7);
        assert!(cf
            .string("dbname", "", 1, 0)
            .unwrap_err()
            .0
            .contains("bad string length 0 < 1"));
    }

    #[test]
    fn a_leading_continuation_is_skipped_with_a_warning() {
        let cf = CfFile::parse("/x.cf", b"  orphan = 1\nhosts = a\n").unwrap();
        assert_eq!(cf.get("orphan"), None);
        assert_eq!(cf.get("hosts"), Some("a"));
        assert!(cf.warnings[0].contains("must not start with whitespace"));
    }
}
