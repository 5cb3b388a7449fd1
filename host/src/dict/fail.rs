//! fail:name: every operation fails with a temporary error.

use super::{Dict, DictError, Entry, OpenError, OpenParams, SeqStep};
use crate::flags;
use std::sync::Arc;

/// A table whose every operation fails temporarily.
pub(crate) struct FailDict {
    table: String,
}

impl FailDict {
    fn fail<T>(&self) -> Result<T, DictError> {
        Err(DictError::Retry(format!(
            "{}: table is configured to fail",
            self.table
        )))
    }
}

impl Dict for FailDict {
    fn flags(&self) -> u32 {
        flags::PATTERN
    }

    fn lookup(&self, _key: &[u8], _flags: u32) -> Result<Option<Vec<u8>>, DictError> {
        self.fail()
    }

    fn update(&self, _key: &[u8], _value: &[u8], _flags: u32) -> Result<(), DictError> {
        self.fail()
    }

    fn delete(&self, _key: &[u8], _flags: u32) -> Result<bool, DictError> {
        self.fail()
    }

    fn sequence(&self, _step: SeqStep, _flags: u32) -> Result<Option<Entry>, DictError> {
        self.fail()
    }
}

/// Open a fail: table.
pub(crate) fn open(req: &OpenParams<'_>) -> Result<Arc<dyn Dict>, OpenError> {
    Ok(Arc::new(FailDict {
        table: req.table.to_string(),
    }))
}
