//! The `query` and `result_format` templates of Postfix's SQL tables
//! (db_common): parsing, which keys they suppress, and expansion.
//!
//! | spec | in `query` (value = the key) | in `result_format` (value = a result) |
//! |---|---|---|
//! | `%%` | `%` | `%` |
//! | `%s` | the key | the result |
//! | `%u` | the key's local part (whole key without `@`) | the result's local part |
//! | `%d` | the key's domain | the result's domain |
//! | `%S` `%U` `%D` | as `%s` `%u` `%d` | the key's whole, local part, domain |
//! | `%1`…`%9` | the key's domain labels from the right | the same |
//!
//! Both templates of a table share one [`Context`]: the parts of the key
//! that either needs decide which keys are never queried (no `@` or an
//! empty domain where a domain is needed, an empty local part where a
//! local part is, too few domain labels). A result lacking the domain or
//! local part its format needs is skipped. Any other `%` sequence is an
//! invalid template (fatal in Postfix).

/// The key's local part is needed.
const KEY_USER: u8 = 1;
/// The key's domain is needed.
const KEY_DOMAIN: u8 = 2;
/// A result's local part is needed.
const VALUE_USER: u8 = 4;
/// A result's domain is needed.
const VALUE_DOMAIN: u8 = 8;

/// What the templates of one table need of keys and results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Context {
    flags: u8,
    /// The highest `%1`…`%9` used.
    labels: usize,
}

/// One element of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(Vec<u8>),
    /// `%s`
    Value,
    /// `%u`
    ValueUser,
    /// `%d`
    ValueDomain,
    /// `%S`
    Key,
    /// `%U`
    KeyUser,
    /// `%D`
    KeyDomain,
    /// `%1`…`%9`
    Label(usize),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// A piece of an expanded query: literal text, or a value the database
/// connection must escape (Postfix's quote callback) before it goes in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Template text, sent as it is.
    Text(Vec<u8>),
    /// Part of the key, to be escaped for the connection (no quotes added).
    Escaped(Vec<u8>),
}

impl Piece {
    /// The statement text of `pieces`, each [`Piece::Escaped`] value passed
    /// through `escape` (the connection's quoting), cut at its first NUL.
    pub fn render(pieces: &[Piece], mut escape: impl FnMut(&[u8], &mut Vec<u8>)) -> Vec<u8> {
        let mut sql = Vec::new();
        for piece in pieces {
            match piece {
                Piece::Text(text) => sql.extend_from_slice(text),
                Piece::Escaped(value) => escape(c_str(value), &mut sql),
            }
        }
        sql
    }
}

/// `bytes` up to its first NUL: Postfix handles keys and values as C
/// strings.
pub fn c_str(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&b| b == 0) {
        Some(nul) => &bytes[..nul],
        None => bytes,
    }
}

/// Which template a message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `query`
    Query,
    /// `result_format`
    Result,
}

impl Template {
    /// Parse `format`, adding what it needs to `ctx`. `Err` carries the
    /// message Postfix dies with (`table` is the table's name).
    pub fn parse(
        format: &str,
        kind: Kind,
        ctx: &mut Context,
        table: &str,
    ) -> Result<Template, String> {
        let query = kind == Kind::Query;
        let mut parts = Vec::new();
        let mut literal = Vec::new();
        let mut bytes = format.bytes();
        while let Some(b) = bytes.next() {
            if b != b'%' {
                literal.push(b);
                continue;
            }
            let spec = bytes.next();
            let part = match spec {
                Some(b'%') => {
                    literal.push(b'%');
                    continue;
                }
                Some(b's') => Part::Value,
                Some(b'S') => Part::Key,
                Some(b'u') => {
                    ctx.flags |= if query { KEY_USER } else { VALUE_USER };
                    Part::ValueUser
                }
                Some(b'd') => {
                    ctx.flags |= if query { KEY_DOMAIN } else { VALUE_DOMAIN };
                    Part::ValueDomain
                }
                Some(b'U') => {
                    ctx.flags |= KEY_USER;
                    Part::KeyUser
                }
                Some(b'D') => {
                    ctx.flags |= KEY_DOMAIN;
                    Part::KeyDomain
                }
                Some(d @ b'1'..=b'9') => {
                    let n = usize::from(d - b'0');
                    ctx.labels = ctx.labels.max(n);
                    ctx.flags |= KEY_DOMAIN;
                    Part::Label(n)
                }
                _ => {
                    return Err(format!(
                        "db_common_parse: {table}: Invalid {} template: {format}",
                        if query { "query" } else { "result" }
                    ))
                }
            };
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(part);
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Template { parts })
    }

    /// True when the template uses anything but literal text and `%%`.
    pub fn is_dynamic(&self) -> bool {
        self.parts.iter().any(|p| !matches!(p, Part::Literal(_)))
    }
}

/// The text after the last `@`, if there is one.
fn domain_of(s: &[u8]) -> Option<&[u8]> {
    s.iter().rposition(|&b| b == b'@').map(|at| &s[at + 1..])
}

/// The text before the last `@` (the whole when there is none).
fn user_of(s: &[u8]) -> &[u8] {
    match s.iter().rposition(|&b| b == b'@') {
        Some(at) => &s[..at],
        None => s,
    }
}

/// Whether a domain-or-user split fails the needs in `user`/`domain`.
fn lacks(s: &[u8], need_user: bool, need_domain: bool) -> bool {
    match domain_of(s) {
        None => need_domain,
        Some(d) => (need_domain && d.is_empty()) || (need_user && s.len() == d.len() + 1),
    }
}

/// The domain's labels as Postfix splits them (empty ones dropped).
fn labels(domain: &[u8]) -> Vec<&[u8]> {
    domain
        .split(|&b| b == b'.')
        .filter(|l| !l.is_empty())
        .collect()
}

impl Context {
    /// Whether `key` is queried at all: keys lacking what the templates
    /// need are answered "not found" without a query (empty keys too, with
    /// the warning returned).
    pub fn admits(&self, key: &[u8]) -> Result<bool, String> {
        if key.is_empty() {
            return Err("empty query string -- ignored".into());
        }
        if lacks(
            key,
            self.flags & KEY_USER != 0,
            self.flags & KEY_DOMAIN != 0,
        ) {
            return Ok(false);
        }
        if self.labels > 0 {
            let domain = domain_of(key).unwrap_or_default();
            if labels(domain).len() < self.labels {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Expand the query template for `key` (already checked by
    /// [`Context::admits`]): key parts become [`Piece::Escaped`].
    pub fn expand_query(&self, template: &Template, key: &[u8]) -> Vec<Piece> {
        let mut out: Vec<Piece> = Vec::new();
        let domain = domain_of(key);
        let parts = labels(domain.unwrap_or_default());
        for part in &template.parts {
            let piece = match part {
                Part::Literal(text) => Piece::Text(text.clone()),
                Part::Value | Part::Key => Piece::Escaped(key.to_vec()),
                Part::ValueUser | Part::KeyUser => Piece::Escaped(user_of(key).to_vec()),
                Part::ValueDomain | Part::KeyDomain => {
                    Piece::Escaped(domain.unwrap_or_default().to_vec())
                }
                Part::Label(n) => Piece::Escaped(parts[parts.len() - n].to_vec()),
            };
            match (out.last_mut(), piece) {
                (Some(Piece::Text(prev)), Piece::Text(more)) => prev.extend(more),
                (_, piece) => out.push(piece),
            }
        }
        out
    }

    /// Expand the result template for one result `value` of `key`, or
    /// `None` when the result is skipped (it lacks the local part or domain
    /// the format needs). `Err` is a warning Postfix logs as it skips.
    pub fn expand_result(
        &self,
        template: &Template,
        value: &[u8],
        key: &[u8],
        table: &str,
    ) -> Result<Option<Vec<u8>>, String> {
        if lacks(
            value,
            self.flags & VALUE_USER != 0,
            self.flags & VALUE_DOMAIN != 0,
        ) {
            return Ok(None);
        }
        if lacks(
            key,
            self.flags & KEY_USER != 0,
            self.flags & KEY_DOMAIN != 0,
        ) {
            return Err(format!(
                "db_common_expand: {table}: lookup key '{}' skipped after query",
                String::from_utf8_lossy(value)
            ));
        }
        let key_domain = domain_of(key);
        let key_labels = labels(key_domain.unwrap_or_default());
        if key_labels.len() < self.labels {
            return Ok(None);
        }
        let mut out = Vec::new();
        for part in &template.parts {
            match part {
                Part::Literal(text) => out.extend_from_slice(text),
                Part::Value => out.extend_from_slice(value),
                Part::ValueUser => out.extend_from_slice(user_of(value)),
                Part::ValueDomain => out.extend_from_slice(domain_of(value).unwrap_or_default()),
                Part::Key => out.extend_from_slice(key),
                Part::KeyUser => out.extend_from_slice(user_of(key)),
                Part::KeyDomain => out.extend_from_slice(key_domain.unwrap_or_default()),
                Part::Label(n) => out.extend_from_slice(key_labels[key_labels.len() - n]),
            }
        }
        Ok(Some(out))
    }
}

/// Why a lookup's results give no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assembly {
    /// The joined results (empty: not found).
    Value(Vec<u8>),
    /// More results than `expansion_limit` (Postfix: a warning and RETRY).
    LimitExceeded,
}

/// Join the results of one lookup as Postfix does: each cell (`None` =
/// SQL NULL, skipped silently; empty, skipped with a warning) through the
/// result format, joined with commas, at most `limit` (0: any number).
/// Cells are cut at their first NUL (Postfix handles C strings).
/// Warnings are appended to `warnings`.
pub fn assemble<'c>(
    ctx: &Context,
    format: &Template,
    cells: impl IntoIterator<Item = Option<&'c [u8]>>,
    key: &[u8],
    limit: usize,
    type_and_name: &str,
    warnings: &mut Vec<String>,
) -> Assembly {
    let mut out: Vec<u8> = Vec::new();
    let mut expansions = 0;
    for cell in cells {
        let Some(cell) = cell else { continue };
        let cell = c_str(cell);
        if cell.is_empty() {
            warnings.push(format!(
                "table \"{type_and_name}\": empty lookup result for: \"{}\" -- ignored",
                String::from_utf8_lossy(key)
            ));
            continue;
        }
        let name = type_and_name
            .split_once(':')
            .map_or(type_and_name, |(_, n)| n);
        match ctx.expand_result(format, cell, key, name) {
            Ok(Some(text)) => {
                if !out.is_empty() {
                    out.push(b',');
                }
                out.extend_from_slice(&text);
                expansions += 1;
                if limit > 0 && expansions > limit {
                    return Assembly::LimitExceeded;
                }
            }
            Ok(None) => {}
            Err(warning) => warnings.push(warning),
        }
    }
    Assembly::Value(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse2(query: &str, result: &str) -> (Context, Template, Template) {
        let mut ctx = Context::default();
        let q = Template::parse(query, Kind::Query, &mut ctx, "t").unwrap();
        let r = Template::parse(result, Kind::Result, &mut ctx, "t").unwrap();
        (ctx, q, r)
    }

    fn flat(pieces: &[Piece]) -> String {
        pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => String::from_utf8_lossy(t).into_owned(),
                Piece::Escaped(e) => format!("<{}>", String::from_utf8_lossy(e)),
            })
            .collect()
    }

    #[test]
    fn query_expansion_and_suppression() {
        let (ctx, q, _) = parse2("u=%u d=%d s=%s %% 1=%1 2=%2", "%s");
        assert!(ctx.admits(b"alice@mx.example.com").unwrap());
        assert_eq!(
            flat(&ctx.expand_query(&q, b"alice@mx.example.com")),
            "u=<alice> d=<mx.example.com> s=<alice@mx.example.com> % 1=<com> 2=<example>"
        );
        for key in [&b"plain"[..], b"user@", b"@example.com", b"u@com"] {
            assert!(
                !ctx.admits(key).unwrap(),
                "{}",
                String::from_utf8_lossy(key)
            );
        }
        assert!(ctx.admits(b"").is_err());
        let (plain, q, _) = parse2("SELECT '%s'", "%s");
        assert!(plain.admits(b"@x").unwrap() && plain.admits(b"no-at").unwrap());
        assert_eq!(flat(&plain.expand_query(&q, b"a'b")), "SELECT '<a'b>'");
    }

    #[test]
    fn result_format_needs_are_pooled_into_the_query() {
        // %U/%D in the result format keep keys without a local part or
        // domain from being queried at all.
        let (ctx, _, r) = parse2("SELECT '%s'", "%U+%u at %d for %D");
        assert!(!ctx.admits(b"@example.net").unwrap());
        assert!(ctx.admits(b"bob@example.net").unwrap());
        assert_eq!(
            ctx.expand_result(&r, b"x@y.org", b"bob@example.net", "t")
                .unwrap(),
            Some(b"bob+x at y.org for example.net".to_vec())
        );
        // A result without a domain is skipped when the format needs one.
        assert_eq!(
            ctx.expand_result(&r, b"nodomain", b"bob@example.net", "t")
                .unwrap(),
            None
        );
    }

    #[test]
    fn invalid_templates_are_refused() {
        let mut ctx = Context::default();
        for bad in ["%x", "trailing %", "%0"] {
            let err = Template::parse(bad, Kind::Query, &mut ctx, "/t.cf").unwrap_err();
            assert_eq!(
                err,
                format!("db_common_parse: /t.cf: Invalid query template: {bad}")
            );
        }
    }

    #[test]
    fn results_lacking_what_the_format_needs_are_skipped_as_postfix_skips_them() {
        // Checked against postmap -q with Postfix 3.7.11's sqlite: rows
        // one, two, NULL, '', a@b.c, @d.e, f@ and `result_format = <%u|%d>`
        // give `<a|b.c>` and one warning (for '').
        let (ctx, _, r) = parse2("SELECT v FROM r WHERE k='%s'", "<%u|%d>");
        let cells: Vec<Option<&[u8]>> = vec![
            Some(b"one"),
            Some(b"two"),
            None,
            Some(b""),
            Some(b"a@b.c"),
            Some(b"@d.e"),
            Some(b"f@"),
        ];
        let mut warnings = Vec::new();
        assert_eq!(
            assemble(&ctx, &r, cells, b"k", 0, "sqlite:/t.cf", &mut warnings),
            Assembly::Value(b"<a|b.c>".to_vec())
        );
        assert_eq!(warnings.len(), 1);
        // And `u=%u d=%d 1=%1 2=%2` drops empty labels: u@a..c gives 2=a,
        // u@.c and u@c. are not queried.
        let (ctx, q, _) = parse2("u=%u d=%d 1=%1 2=%2", "%s");
        assert_eq!(
            flat(&ctx.expand_query(&q, b"u@a..c")),
            "u=<u> d=<a..c> 1=<c> 2=<a>"
        );
        assert!(!ctx.admits(b"u@.c").unwrap() && !ctx.admits(b"u@c.").unwrap());
    }

    #[test]
    fn assembly_joins_skips_and_limits() {
        let (ctx, _, r) = parse2("SELECT '%s'", "<%s>");
        let cells: Vec<Option<&[u8]>> = vec![Some(b"one"), None, Some(b""), Some(b"tw\0o")];
        let mut warnings = Vec::new();
        assert_eq!(
            assemble(
                &ctx,
                &r,
                cells.clone(),
                b"k",
                0,
                "pgsql:/t.cf",
                &mut warnings
            ),
            Assembly::Value(b"<one>,<tw>".to_vec())
        );
        assert_eq!(
            warnings,
            ["table \"pgsql:/t.cf\": empty lookup result for: \"k\" -- ignored"]
        );
        assert_eq!(
            assemble(&ctx, &r, cells, b"k", 1, "pgsql:/t.cf", &mut Vec::new()),
            Assembly::LimitExceeded
        );
    }
}
