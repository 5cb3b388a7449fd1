//! environ:name: looks keys up in the server's own process environment.

use super::{fold::fold_fixed, Dict, DictError, OpenError, OpenParams};
use crate::flags;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

/// A table backed by the process environment.
pub(crate) struct EnvironDict {
    utf8: bool,
}

impl Dict for EnvironDict {
    fn flags(&self) -> u32 {
        flags::FIXED
    }

    fn lookup(&self, key: &[u8], req_flags: u32) -> Result<Option<Vec<u8>>, DictError> {
        let key = fold_fixed(key, req_flags, self.utf8);
        if key.is_empty() || key.contains(&b'=') || key.contains(&0) {
            return Ok(None);
        }
        Ok(std::env::var_os(OsStr::from_bytes(&key)).map(|v| v.as_bytes().to_vec()))
    }
}

/// Open an environ: table.
pub(crate) fn open(req: &OpenParams<'_>) -> Result<Arc<dyn Dict>, OpenError> {
    Ok(Arc::new(EnvironDict { utf8: req.utf8 }))
}
