//! The stand-in for a table that could not be opened, as Postfix's proxymap
//! serves one: `open` succeeds (a pattern table, flags 32, as stock
//! reports), and every lookup, update, delete and sequence answers RETRY
//! with a warning naming the table and why it is unavailable. Postfix
//! clients then defer the mail instead of retrying the open forever. The
//! registry keeps trying to open the real table, so one that appears or is
//! fixed is used from the next request on.

use super::{Dict, DictError, Entry, OpenError, SeqStep};
use crate::flags;

/// A table that answers RETRY to every operation.
pub(crate) struct Surrogate {
    /// `type:name`, as requested.
    table: String,
    /// Why the real table could not be opened.
    reason: String,
}

impl Surrogate {
    /// The stand-in for the table `err` could not open.
    pub(crate) fn for_error(err: &OpenError) -> Surrogate {
        Surrogate {
            table: err.table.clone(),
            reason: err.reason(),
        }
    }

    fn unavailable<T>(&self) -> Result<T, DictError> {
        crate::warn_limited!(
            "table unavailable",
            "{} is unavailable. {}",
            self.table,
            self.reason
        );
        Err(DictError::Unavailable(format!(
            "{} is unavailable. {}",
            self.table, self.reason
        )))
    }
}

impl Dict for Surrogate {
    fn flags(&self) -> u32 {
        flags::PATTERN
    }

    fn lookup(&self, _key: &[u8], _flags: u32) -> Result<Option<Vec<u8>>, DictError> {
        self.unavailable()
    }

    fn update(&self, _key: &[u8], _value: &[u8], _flags: u32) -> Result<(), DictError> {
        self.unavailable()
    }

    fn delete(&self, _key: &[u8], _flags: u32) -> Result<bool, DictError> {
        self.unavailable()
    }

    fn sequence(&self, _step: SeqStep, _flags: u32) -> Result<Option<Entry>, DictError> {
        self.unavailable()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_answers_retry_naming_table_and_reason() {
        let err = OpenError::io(
            "hash:/etc/postfix/missing",
            "/etc/postfix/missing.db",
            "open database",
            &std::io::Error::from_raw_os_error(libc::ENOENT),
        );
        let s = Surrogate::for_error(&err);
        assert_eq!(s.flags(), flags::PATTERN);
        let Err(DictError::Unavailable(text)) = s.lookup(b"k", 0) else {
            panic!("lookup on a surrogate must answer RETRY");
        };
        assert!(
            text.starts_with("hash:/etc/postfix/missing is unavailable. ")
                && text
                    .ends_with("open database /etc/postfix/missing.db: No such file or directory"),
            "{text}"
        );
        assert!(matches!(
            s.update(b"k", b"v", 0),
            Err(DictError::Unavailable(_))
        ));
        assert!(matches!(s.delete(b"k", 0), Err(DictError::Unavailable(_))));
        assert!(matches!(
            s.sequence(SeqStep::First, 0),
            Err(DictError::Unavailable(_))
        ));
    }
}
