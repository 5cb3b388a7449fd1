//! Key case folding as Postfix does it: ASCII lower case, or full Unicode
//! default case folding when SMTPUTF8 support is on and the key is UTF-8.

use std::borrow::Cow;

/// Fold `key` for a lookup or store in a table with FOLD_FIX/FOLD_MUL.
pub fn fold(key: &[u8], utf8: bool) -> Cow<'_, [u8]> {
    if key.is_ascii() || !utf8 {
        if key.iter().any(u8::is_ascii_uppercase) {
            return Cow::Owned(key.to_ascii_lowercase());
        }
        return Cow::Borrowed(key);
    }
    match std::str::from_utf8(key) {
        Ok(text) => {
            let folded = icu_casemap::CaseMapper::new().fold_string(text);
            match folded {
                Cow::Borrowed(_) => Cow::Borrowed(key),
                Cow::Owned(s) => Cow::Owned(s.into_bytes()),
            }
        }
        Err(_) => Cow::Owned(key.to_ascii_lowercase()),
    }
}

/// Fold `key` for a fixed-string table when the request carries FOLD_FIX.
pub fn fold_fixed(key: &[u8], request_flags: u32, utf8: bool) -> Cow<'_, [u8]> {
    if request_flags & crate::flags::FOLD_FIX != 0 {
        fold(key, utf8)
    } else {
        Cow::Borrowed(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds() {
        assert_eq!(fold(b"Foo@Example.COM", false).as_ref(), b"foo@example.com");
        assert!(matches!(fold(b"plain", true), Cow::Borrowed(_)));
        assert_eq!(
            fold("JÜRGEN".as_bytes(), false).as_ref(),
            "jÜrgen".as_bytes()
        );
        assert_eq!(
            fold("JÜRGEN".as_bytes(), true).as_ref(),
            "jürgen".as_bytes()
        );
        assert_eq!(
            fold("Straße".as_bytes(), true).as_ref(),
            "strasse".as_bytes()
        );
        assert_eq!(fold(b"\xffAB", true).as_ref(), b"\xffab");
    }
}
