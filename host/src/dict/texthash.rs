//! texthash: a postmap-format text file loaded into memory at open time, with
//! postmap's syntax (comments, continuation lines, key folding, duplicates).

use super::memory::{Duplicates, Inserted, MemoryDict};
use super::source::{logical_lines, split_key_value};
use super::stamp::{load_stable, Unstable};
use super::{Dict, OpenError, OpenParams};
use crate::flags;
use std::path::Path;
use std::sync::Arc;

/// Open a texthash: table, from a whole copy of its file.
pub(crate) fn open(req: &OpenParams<'_>) -> Result<Arc<dyn Dict>, OpenError> {
    let path = Path::new(req.name);
    let (stamp, content) = load_stable(&[path.to_path_buf()], |mut stamps| {
        std::fs::read(path).map(|content| (stamps.remove(0), content))
    })
    .map_err(|e| match e {
        Unstable::Load(e) => OpenError::io(req.table, path, "open", &e),
        Unstable::Changing(_) => OpenError::in_file(
            req.table,
            path,
            None,
            "file keeps changing while being read",
        )
        .temporary(),
    })?;
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
