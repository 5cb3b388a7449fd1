//! inline:{ key=value, { key = value with spaces } }: a table written in the
//! table name itself.

use super::braces::{split_outside_braces, strip_braces};
use super::memory::{Duplicates, MemoryDict};
use super::{Dict, OpenError, OpenParams};
use crate::flags;
use std::sync::Arc;

/// Open an inline: table.
pub(crate) fn open(req: &OpenParams<'_>) -> Result<Arc<dyn Dict>, OpenError> {
    let inner = strip_braces(req.name).map_err(|e| OpenError::new(req.table, e))?;
    let fold_keys = req.flags & flags::FOLD_FIX != 0;
    let mut dict = MemoryDict::new(req.utf8, Vec::new());
    for element in split_outside_braces(inner, ", \t\r\n") {
        let element = if element.starts_with('{') {
            strip_braces(element).map_err(|e| OpenError::new(req.table, e))?
        } else {
            element
        };
        let (key, value) = element.split_once('=').ok_or_else(|| {
            OpenError::new(
                req.table,
                format!("expected name=value format, got \"{element}\""),
            )
        })?;
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() {
            return Err(OpenError::new(
                req.table,
                format!("expected name=value format, got \"{element}\""),
            ));
        }
        dict.insert(
            key.as_bytes(),
            value.as_bytes(),
            fold_keys,
            Duplicates::Replace,
        );
    }
    if dict.is_empty() {
        return Err(OpenError::new(req.table, "empty table"));
    }
    Ok(Arc::new(dict))
}
