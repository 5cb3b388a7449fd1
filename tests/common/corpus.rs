//! The regexp/pcre differential corpora in tests/data (written by
//! tests/data/pattern-corpus.py): a rule table and its keys.

use std::path::PathBuf;

/// `tests/data/NAME`.
pub fn data_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data")
        .join(name)
}

/// The rule table and the keys of corpus `kind` (`regexp` or `pcre`).
pub fn corpus(kind: &str) -> (String, Vec<String>) {
    let table = std::fs::read_to_string(data_file(&format!("{kind}.table"))).unwrap();
    let keys = std::fs::read_to_string(data_file(&format!("{kind}.keys")))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    (table, keys)
}
