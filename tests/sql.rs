//! SQL map types against Postfix's own clients: every case is a `.cf` file
//! and a set of keys, looked up by the real `postmap -q -` directly (Postfix
//! 3.7's sqlite client) and through proxymapd (`proxy:sqlite:`); the output
//! and exit status must be identical. The corpus covers Postfix's template
//! expansions (`%s %u %d %1-%9 %S %U %D %%`), which keys are never queried,
//! result_format, expansion_limit, several rows and columns, NULL and empty
//! values, quotes, backslashes, `%` and injection attempts in keys, UTF-8
//! and Latin-1 bytes, the `domain` filter and the legacy query fields.

mod common;

use common::postfix::Postfix;
use common::Need;
use std::path::Path;
use std::process::Command;

/// The database every case queries.
const SCHEMA: &str = "
CREATE TABLE users (address TEXT, dest TEXT, extra TEXT, n REAL);
INSERT INTO users VALUES
  ('alice@example.com', 'alice@dest.org', 'x', 1.5),
  ('bob@example.com', 'bob@dest.org', NULL, 42),
  ('multi@example.com', 'one@a.org', 'c1', 1e20),
  ('multi@example.com', 'two@b.org', 'c2', NULL),
  ('multi@example.com', NULL, 'c3', 0.1),
  ('multi@example.com', '', 'c4', -7),
  ('multi@example.com', 'nodomain', 'c5', 3),
  ('o''neil@example.com', 'quote@dest.org', NULL, NULL),
  ('back\\slash@example.com', 'backslash@dest.org', NULL, NULL),
  ('pct%s@example.com', 'percent@dest.org', NULL, NULL),
  ('grüße@example.com', 'utf8@dest.org', NULL, NULL),
  ('utf8val@example.com', 'wert-ä-€', NULL, NULL),
  ('Upper@Example.com', 'case@dest.org', NULL, NULL),
  ('example.com', 'domain-key', NULL, NULL),
  ('sub.example.com', 'sub-domain-key', NULL, NULL);
CREATE TABLE domains (name TEXT, label TEXT);
INSERT INTO domains VALUES ('example.com', 'two-labels'), ('mx.example.com', 'three-labels');
";

/// `(file name, .cf text)`; `$DB` is the database path.
const CASES: &[(&str, &str)] = &[
    ("plain.cf", "dbpath = $DB\nquery = SELECT dest FROM users WHERE address='%s'\n"),
    (
        "parts.cf",
        "dbpath = $DB\nquery = SELECT 'u=%u d=%d s=%s S=%S U=%U D=%D 1=%1 2=%2 pct=%%'\n",
    ),
    (
        "labels.cf",
        "dbpath = $DB\nquery = SELECT label FROM domains WHERE name='%2.%1'\n",
    ),
    (
        "format.cf",
        "dbpath = $DB\nquery = SELECT dest FROM users WHERE address='%s'\n\
         result_format = [%s|%u|%d|%S|%U|%D|%1|%%]\n",
    ),
    (
        "pooled.cf",
        "dbpath = $DB\nquery = SELECT dest FROM users WHERE address='%s'\n\
         result_format = %U+%u at %d for %D\n",
    ),
    (
        "limit1.cf",
        "dbpath = $DB\nquery = SELECT dest FROM users WHERE address='%s'\nexpansion_limit = 1\n",
    ),
    (
        "limit3.cf",
        "dbpath = $DB\nquery = SELECT dest FROM users WHERE address='%s'\nexpansion_limit = 3\n",
    ),
    (
        "columns.cf",
        "dbpath = $DB\nquery = SELECT extra, dest, n FROM users WHERE address='%s'\n",
    ),
    ("numbers.cf", "dbpath = $DB\nquery = SELECT n FROM users WHERE address='%s'\n"),
    ("echo.cf", "dbpath = $DB\nquery = SELECT '[%s]'\n"),
    (
        "multi-statement.cf",
        "dbpath = $DB\nquery = SELECT 'first-%s'; SELECT 'second-%s'\n",
    ),
    (
        "domain.cf",
        "dbpath = $DB\nquery = SELECT dest FROM users WHERE address='%s'\n\
         domain = example.com, !bad.example.com EXAMPLE.ORG\n",
    ),
    (
        "legacy.cf",
        "dbpath = $DB\ntable = users\nselect_field = dest\nwhere_field = address\n\
         additional_conditions = AND dest <> ''\n",
    ),
    (
        "continued.cf",
        "# a comment\ndbpath = $DB\nquery = SELECT dest\n  FROM users\n# between\n  WHERE address='%s'\n",
    ),
];

/// Keys every case is asked (one per line for `postmap -q -`).
fn keys() -> Vec<String> {
    [
        "alice@example.com",
        "ALICE@EXAMPLE.COM",
        "bob@example.com",
        "multi@example.com",
        "nobody@example.com",
        "o'neil@example.com",
        "back\\slash@example.com",
        "pct%s@example.com",
        "grüße@example.com",
        "utf8val@example.com",
        "Upper@Example.com",
        "example.com",
        "sub.example.com",
        "user@mx.example.com",
        "user@bad.example.com",
        "user@example.org",
        "plain",
        "@example.com",
        "user@",
        "u@a..c",
        "u@.c",
        "u@c.",
        "x' OR '1'='1",
        "x'; DROP TABLE users; --@example.com",
        "a\"b@example.com",
        "100%@example.com",
        "tab\there@example.com",
    ]
    .iter()
    .map(|k| k.to_string())
    .collect()
}

fn make_database(path: &Path) {
    let out = Command::new("sqlite3")
        .arg(path)
        .arg(SCHEMA)
        .output()
        .expect("sqlite3 (package sqlite3) must be installed");
    assert!(out.status.success(), "sqlite3: {out:?}");
}

#[test]
fn sqlite_tables_answer_through_proxymapd_as_postfix_reads_them() {
    if common::skip_without(&[Need::Postfix]) {
        return;
    }
    let maps: Vec<String> = CASES
        .iter()
        .map(|(file, _)| format!("proxy:sqlite:$data/{file}"))
        .collect();
    let pf = Postfix::start(&maps.join(" "), "", |data| {
        let db = data.join("mail.sqlite");
        make_database(&db);
        for (file, text) in CASES {
            let path = data.join(file);
            std::fs::write(&path, text.replace("$DB", &db.to_string_lossy())).unwrap();
            // Postfix waits for a .cf file changed in the last second.
            let old = std::time::SystemTime::now() - std::time::Duration::from_secs(120);
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
    });
    let keys = keys();
    let mut answered = 0;
    for (file, _) in CASES {
        let out = pf.assert_same(&format!("sqlite:$data/{file}"), &keys);
        answered += out.lines().count();
    }
    // Spot checks on top of the comparison: postmap folds the key, and an
    // injection attempt is quoted into a string.
    let spec = pf.table("proxy:sqlite:$data/plain.cf");
    assert_eq!(
        pf.query_one(&spec, "ALICE@EXAMPLE.COM"),
        (Some(0), "alice@dest.org\n".to_string())
    );
    assert_eq!(
        pf.query_one(&pf.table("proxy:sqlite:$data/echo.cf"), "x' OR '1'='1"),
        (Some(0), "[x' or '1'='1]\n".to_string())
    );
    assert!(answered > 60, "only {answered} answers in the corpus");
    eprintln!(
        "sqlite corpus: {} tables x {} keys, {answered} answers, all equal to Postfix's",
        CASES.len(),
        keys.len()
    );
}
