//! texthash: a postmap-format text file loaded into memory at open time, with
//! postmap's syntax (comments, continuation lines, key folding, duplicates).

use super::memory::{Duplicates, Inserted, MemoryDict};
use super::source::{logical_lines, split_key_value};
use super::{Dict, FileStamp, OpenError, OpenRequest};
use crate::flags;
use std::path::Path;
use std::sync::Arc;

/// Open a texthash: table.
pub fn open(req: &OpenRequest<'_>) -> Result<Arc<dyn Dict>, OpenError> {
    let path = Path::new(req.name);
    let stamp = FileStamp::take(path);
    let content = std::fs::read(path)
        .map_err(|e| OpenError::in_file(req.table, path, None, format!("open: {e}")))?;
    let dups = Duplicates::from_flags(req.flags);
    let fold_keys = req.flags & flags::FOLD_FIX != 0;
    let mut dict = MemoryDict::new(req.utf8, vec![stamp]);
    for line in logical_lines(&content) {
        let Some((key, value)) = split_key_value(&line.text) else {
            tracing::warn!(
                "{}, line {}: expected format: key whitespace value -- ignoring line",
                path.display(),
                line.lineno
            );
            continue;
        };
        if dict.insert(key, value, fold_keys, dups) == Inserted::Duplicate {
            let what = format!("duplicate entry: \"{}\"", String::from_utf8_lossy(key));
            match dups {
                Duplicates::Fail => {
                    return Err(OpenError::in_file(req.table, path, Some(line.lineno), what))
                }
                Duplicates::Warn => {
                    tracing::warn!("{}, line {}: {what}", path.display(), line.lineno)
                }
                Duplicates::Ignore | Duplicates::Replace => {}
            }
        }
    }
    Ok(Arc::new(dict))
}
