//! cdb:/path — Postfix's cdb tables (`/path.cdb`, made by `postmap cdb:`)
//! as a proxymapd plugin. Lookups fold keys with FOLD_FIX and learn the
//! trailing-NUL convention (Postfix writes cdb keys without one); sequence
//! walks the records in file order; the table is read-only.

pub mod reader;

use proxymapd_sdk::nul::NulLearning;
use proxymapd_sdk::{flags, fold, read_file, Entry, Error, MapType, OpenRequest, SeqStep};
use reader::Cdb;
use std::cell::Cell;

/// An open cdb table.
pub struct CdbTable {
    cdb: Cdb,
    path: String,
    nul: NulLearning,
    utf8: bool,
    cursor: Cell<Option<u32>>,
}

impl MapType for CdbTable {
    fn open(request: &OpenRequest) -> Result<Self, Error> {
        let path = request
            .files
            .first()
            .cloned()
            .ok_or_else(|| Error::Config("no table file was granted".into()))?;
        let data = read_file(0).map_err(|e| Error::Config(format!("open database {path}: {e}")))?;
        let cdb = Cdb::new(data).map_err(|e| Error::Config(format!("{path}: {e}")))?;
        Ok(CdbTable {
            cdb,
            path,
            nul: NulLearning::new(request.flags),
            utf8: request.utf8,
            cursor: Cell::new(None),
        })
    }

    fn flags(&self) -> u32 {
        flags::FIXED | self.nul.bits()
    }

    fn lookup(&self, key: &[u8], request_flags: u32) -> Result<Option<Vec<u8>>, Error> {
        let key = fold::fold_fixed(key, request_flags, self.utf8);
        self.nul
            .lookup(&key, |k| self.cdb.get(k))
            .map_err(|e| Error::Config(format!("{}: {e}", self.path)))
    }

    fn sequence(&self, step: SeqStep, _flags: u32) -> Result<Option<Entry>, Error> {
        let pos = match step {
            SeqStep::First => self.cdb.first(),
            SeqStep::Next => match self.cursor.get() {
                Some(p) => p,
                None => return Ok(None),
            },
        };
        if self.cdb.at_end(pos) {
            self.cursor.set(None);
            return Ok(None);
        }
        let (k, v, next) = self
            .cdb
            .record(pos)
            .map_err(|e| Error::Config(format!("{}: {e}", self.path)))?;
        self.cursor.set(Some(next));
        let strip = |b: &[u8]| b.strip_suffix(b"\0").unwrap_or(b).to_vec();
        Ok(Some((strip(k), strip(v))))
    }
}

proxymapd_sdk::export_map_type!(CdbTable);
