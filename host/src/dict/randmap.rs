//! randmap:{ a, b, ... }: every lookup returns one of the listed values,
//! chosen at random (for spreading load over transports or relays).

use super::braces::{split_outside_braces, strip_braces};
use super::{Dict, DictError, OpenError, OpenParams};
use crate::flags;
use std::sync::Arc;

/// A table answering a random choice among fixed values.
pub(crate) struct RandDict {
    choices: Vec<Vec<u8>>,
}

impl Dict for RandDict {
    fn flags(&self) -> u32 {
        flags::PATTERN
    }

    fn lookup(&self, _key: &[u8], _flags: u32) -> Result<Option<Vec<u8>>, DictError> {
        Ok(Some(
            self.choices[fastrand::usize(..self.choices.len())].clone(),
        ))
    }
}

/// Open a randmap: table.
pub(crate) fn open(req: &OpenParams<'_>) -> Result<Arc<dyn Dict>, OpenError> {
    let inner = strip_braces(req.name).map_err(|e| OpenError::new(req.table, e))?;
    let mut choices = Vec::new();
    for item in split_outside_braces(inner, ", \t\r\n") {
        let item = if item.starts_with('{') {
            strip_braces(item).map_err(|e| OpenError::new(req.table, e))?
        } else {
            item
        };
        choices.push(item.as_bytes().to_vec());
    }
    if choices.is_empty() {
        return Err(OpenError::new(req.table, "empty table"));
    }
    Ok(Arc::new(RandDict { choices }))
}
