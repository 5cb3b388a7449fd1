//! Printing an error with its causes, as `anyhow` prints `{:#}`: the error,
//! then each source after `": "`. The library logs typed errors this way so
//! operators read the same lines the binary prints.

use std::fmt;

/// Displays an error followed by its chain of sources, `": "`-separated.
pub(crate) struct Chain<'a>(pub(crate) &'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn prints_like_anyhow_alternate() {
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(Chain(&e).to_string(), "outer: inner");
        assert_eq!(
            Chain(&e).to_string(),
            format!(
                "{:#}",
                anyhow::Error::from(Outer(std::io::Error::other("inner")))
            )
        );
    }
}
