//! `csv:/path/to/file.csv` — a Postfix table kept as a CSV file of
//! `key,value` records (a header line `key,value` is skipped; fields may be
//! double-quoted, with `""` for a quote inside). Keys are folded like
//! postmap does (FOLD_FIX), lookups are exact, and `postmap -s`-style
//! sequencing lists records in file order.

use proxymapd_sdk::{flags, fold, log, read_file, Entry, Error, MapType, OpenRequest, SeqStep};
use std::cell::Cell;
use std::collections::HashMap;

/// An open CSV table.
pub struct CsvTable {
    records: Vec<(Vec<u8>, Vec<u8>)>,
    index: HashMap<Vec<u8>, usize>,
    utf8: bool,
    cursor: Cell<usize>,
}

/// Split one CSV line into fields.
pub fn fields(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', false) if field.is_empty() && !was_quoted => {
                quoted = true;
                was_quoted = true;
            }
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            (',', false) => {
                out.push(std::mem::take(&mut field));
                was_quoted = false;
            }
            (c, _) => field.push(c),
        }
    }
    if quoted {
        return Err("unterminated quoted field".into());
    }
    out.push(field);
    Ok(out)
}

impl MapType for CsvTable {
    fn open(request: &OpenRequest) -> Result<Self, Error> {
        let path = request.files.first().cloned().unwrap_or_default();
        let bytes = read_file(0).map_err(|e| Error::Config(format!("open {path}: {e}")))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::Config(format!("{path}: not UTF-8 text")))?;
        let fold_keys = request.flags & flags::FOLD_FIX != 0;
        let mut table = CsvTable {
            records: Vec::new(),
            index: HashMap::new(),
            utf8: request.utf8,
            cursor: Cell::new(0),
        };
        for (n, line) in text.lines().enumerate() {
            let lineno = n + 1;
            if line.trim().is_empty()
                || line.starts_with('#')
                || (lineno == 1 && line.trim() == "key,value")
            {
                continue;
            }
            let f =
                fields(line).map_err(|e| Error::Config(format!("{path}, line {lineno}: {e}")))?;
            if f.len() != 2 || f[0].is_empty() {
                return Err(Error::Config(format!(
                    "{path}, line {lineno}: expected key,value"
                )));
            }
            let key = if fold_keys {
                fold::fold(f[0].as_bytes(), request.utf8).into_owned()
            } else {
                f[0].as_bytes().to_vec()
            };
            if table.index.contains_key(&key) {
                log::warning(&format!(
                    "{path}, line {lineno}: duplicate key {}, ignored",
                    f[0]
                ));
                continue;
            }
            table.index.insert(key.clone(), table.records.len());
            table.records.push((key, f[1].as_bytes().to_vec()));
        }
        Ok(table)
    }

    fn lookup(&self, key: &[u8], request_flags: u32) -> Result<Option<Vec<u8>>, Error> {
        let key = fold::fold_fixed(key, request_flags, self.utf8);
        Ok(self
            .index
            .get(key.as_ref())
            .map(|&i| self.records[i].1.clone()))
    }

    fn sequence(&self, step: SeqStep, _flags: u32) -> Result<Option<Entry>, Error> {
        let at = if step == SeqStep::First {
            0
        } else {
            self.cursor.get()
        };
        let entry = self.records.get(at).cloned();
        self.cursor.set(at + 1);
        Ok(entry)
    }
}

proxymapd_sdk::export_map_type!(CsvTable);

#[cfg(test)]
mod tests {
    use super::fields;

    #[test]
    fn splits_csv() {
        assert_eq!(fields("a,b").unwrap(), vec!["a", "b"]);
        assert_eq!(
            fields("\"x, y\",\"say \"\"hi\"\"\"").unwrap(),
            vec!["x, y", "say \"hi\""]
        );
        assert!(fields("\"open").is_err());
    }
}
