//! cdb:/path — Postfix's cdb tables (`/path.cdb`, made by `postmap cdb:`)
//! as a proxymapd plugin. Lookups fold keys with FOLD_FIX and learn the
//! trailing-NUL convention (Postfix writes cdb keys without one); the table
//! is read-only and, as in Postfix, cannot be sequenced.

pub mod reader;

use proxymapd_sdk::nul::NulLearning;
use proxymapd_sdk::{flags, fold, granted_file, read_at, Error, MapType, OpenRequest};
use reader::{past_end, Cdb, CdbError, Source};

/// Granted file number 0, read through the host piece by piece: the table
/// stays out of the plugin's memory.
pub struct HostFile {
    size: u64,
}

impl Source for HostFile {
    fn size(&self) -> u64 {
        self.size
    }

    fn read(&self, offset: u64, len: u32) -> Result<Vec<u8>, CdbError> {
        let data = read_at(0, offset, len).map_err(CdbError)?;
        if data.len() != len as usize {
            return Err(past_end(offset));
        }
        Ok(data)
    }
}

/// An open cdb table.
pub struct CdbTable {
    cdb: Cdb<HostFile>,
    path: String,
    nul: NulLearning,
    utf8: bool,
}

impl MapType for CdbTable {
    fn open(request: &OpenRequest) -> Result<Self, Error> {
        let (path, size) = granted_file(request)?;
        let cdb = Cdb::new(HostFile { size }).map_err(|e| Error::Config(format!("{path}: {e}")))?;
        Ok(CdbTable {
            cdb,
            path,
            nul: NulLearning::new(request.flags),
            utf8: request.utf8,
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

    // No sequence: Postfix's cdb tables do not support it either
    // (`postmap -s cdb:...` fails with "sequence operation is not supported").
}

proxymapd_sdk::export_map_type!(CdbTable);
