//! hash:/path and btree:/path — Postfix's Berkeley DB tables (`/path.db`)
//! as a proxymapd plugin, the sandboxed twin of the host's native reader:
//! the same proxymapd-bdb code, reading the granted file page by page
//! through the host (`read-at`), so the table stays out of plugin memory.
//! Installed as `hash.wasm` and `btree.wasm`; the map type of the request
//! says which access method the file must have. Keys are folded with
//! FOLD_FIX and tried with and without a trailing NUL, as Postfix does.
//! Read-only, like the native path: on proxywrite, update and delete answer
//! CONFIG and point at lmdb:.

use proxymapd_bdb::{Cursor, Db, Kind, Source};
use proxymapd_sdk::nul::NulLearning;
use proxymapd_sdk::{flags, fold, granted_file, read_at, Error, MapType, OpenRequest, SeqStep};
use std::borrow::Cow;
use std::cell::Cell;

/// Granted file number 0, read through the host.
pub struct HostFile {
    size: u64,
}

impl Source for HostFile {
    fn size(&self) -> u64 {
        self.size
    }

    fn read(&self, offset: u64, len: usize) -> Result<Cow<'_, [u8]>, String> {
        let want = u32::try_from(len).map_err(|_| format!("read of {len} bytes is too large"))?;
        let data = read_at(0, offset, want)?;
        if data.len() != len {
            return Err(format!(
                "{len} bytes at offset {offset} run past the end of the file"
            ));
        }
        Ok(Cow::Owned(data))
    }
}

/// An open hash: or btree: table.
pub struct BerkeleyTable {
    db: Db<HostFile>,
    path: String,
    nul: NulLearning,
    utf8: bool,
    cursor: Cell<Option<Cursor>>,
}

fn strip_nul(v: &[u8]) -> Vec<u8> {
    v.strip_suffix(&[0]).unwrap_or(v).to_vec()
}

impl BerkeleyTable {
    fn config(&self, e: impl std::fmt::Display) -> Error {
        Error::Config(format!("{}: {e}", self.path))
    }

    fn read_only(&self) -> Error {
        self.config(format!(
            "{} tables are read-only in proxymapd (it does not write Berkeley DB files); \
             serve this table as lmdb: instead",
            self.db.kind().map_type()
        ))
    }
}

impl MapType for BerkeleyTable {
    fn open(request: &OpenRequest) -> Result<Self, Error> {
        let kind = match request.map_type.as_str() {
            "btree" => Kind::Btree,
            _ => Kind::Hash,
        };
        let (path, size) = granted_file(request)?;
        let db = Db::open(HostFile { size }).map_err(|e| Error::Config(format!("{path}: {e}")))?;
        if db.kind() != kind {
            return Err(Error::Config(format!(
                "{path}: the file is a {} database, not {}",
                db.kind().map_type(),
                kind.map_type()
            )));
        }
        Ok(BerkeleyTable {
            db,
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
            .lookup(&key, |k| self.db.get(k).map(|v| v.map(Cow::into_owned)))
            .map_err(|e| self.config(e))
    }

    fn update(&self, _key: &[u8], _value: &[u8], _request_flags: u32) -> Result<(), Error> {
        Err(self.read_only())
    }

    fn delete(&self, _key: &[u8], _request_flags: u32) -> Result<bool, Error> {
        Err(self.read_only())
    }

    fn sequence(
        &self,
        step: SeqStep,
        _request_flags: u32,
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>, Error> {
        let from = match step {
            SeqStep::First => None,
            SeqStep::Next => match self.cursor.get() {
                Some(c) => Some(c),
                None => return Ok(None),
            },
        };
        let next = self.db.next(from).map_err(|e| self.config(e))?;
        self.cursor.set(next.as_ref().map(|(c, _)| *c));
        Ok(next.map(|(_, (k, v))| (strip_nul(&k), strip_nul(&v))))
    }
}

proxymapd_sdk::export_map_type!(BerkeleyTable);
