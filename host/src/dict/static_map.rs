//! static:text and static:{ text with spaces }: every lookup returns the text.

use super::braces::strip_braces;
use super::{Dict, DictError, OpenError, OpenParams};
use crate::flags;
use std::sync::Arc;

/// A table that answers every key with the same value.
pub(crate) struct StaticDict {
    value: Vec<u8>,
}

impl Dict for StaticDict {
    fn flags(&self) -> u32 {
        flags::FIXED
    }

    fn lookup(&self, _key: &[u8], _flags: u32) -> Result<Option<Vec<u8>>, DictError> {
        Ok(Some(self.value.clone()))
    }
}

/// Open a static: table.
pub(crate) fn open(req: &OpenParams<'_>) -> Result<Arc<dyn Dict>, OpenError> {
    let value = if req.name.trim_start().starts_with('{') {
        strip_braces(req.name).map_err(|e| OpenError::new(req.table, e))?
    } else {
        req.name
    };
    Ok(Arc::new(StaticDict {
        value: value.as_bytes().to_vec(),
    }))
}
