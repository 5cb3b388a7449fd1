//! Strict parsing of request frames, the way Postfix's proxymap scans them.
//!
//! A request frame starts with `request`; the remaining attributes must be
//! exactly the ones that request takes, in order. Postfix 3.11+ clients add
//! `instance_flags` right after `table` (and send it instead of `flags` on
//! `open`); its presence selects that dialect for the reply. Anything else is a
//! [`ParseError`], which the server answers with status BAD. Numbers are read
//! the way Postfix's `sscanf("%u%c")` reads them (see [`number`]). A key or an
//! update's value that the decoder dropped for being over its bounds marks the
//! request [`Request::oversized`]; any other dropped value is a [`ParseError`].

use crate::attr::{Attr, Frame, Overflow};
use std::fmt;

/// The request names proxymap understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// Open a table and learn its flags.
    Open,
    /// Look a key up.
    Lookup,
    /// Store a key/value pair (proxywrite only).
    Update,
    /// Remove a key (proxywrite only).
    Delete,
    /// Iterate over a table (first/next).
    Sequence,
}

impl RequestKind {
    /// The wire name of the request.
    pub fn name(self) -> &'static str {
        match self {
            RequestKind::Open => "open",
            RequestKind::Lookup => "lookup",
            RequestKind::Update => "update",
            RequestKind::Delete => "delete",
            RequestKind::Sequence => "sequence",
        }
    }

    fn from_name(name: &[u8]) -> Option<RequestKind> {
        Some(match name {
            b"open" => RequestKind::Open,
            b"lookup" => RequestKind::Lookup,
            b"update" => RequestKind::Update,
            b"delete" => RequestKind::Delete,
            b"sequence" => RequestKind::Sequence,
            _ => return None,
        })
    }

    /// Attributes after `table` (and `instance_flags`, when present).
    fn tail(self, with_instance_flags: bool) -> &'static [&'static str] {
        match (self, with_instance_flags) {
            (RequestKind::Open, false) => &["flags"],
            (RequestKind::Open, true) => &[],
            (RequestKind::Lookup, _) => &["flags", "key"],
            (RequestKind::Update, _) => &["flags", "key", "value"],
            (RequestKind::Delete, _) => &["flags", "key"],
            (RequestKind::Sequence, _) => &["flags", "function"],
        }
    }
}

/// A well-formed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Which request this is.
    pub kind: RequestKind,
    /// The table name as sent (may still carry `proxy:` prefixes).
    pub table: String,
    /// The client's open flags, sent by Postfix 3.11+ clients only.
    pub instance_flags: Option<u32>,
    /// Request flags (for `open` from older clients: the open flags).
    pub flags: u32,
    /// Key of lookup, update and delete requests.
    pub key: Vec<u8>,
    /// Value of update requests.
    pub value: Vec<u8>,
    /// Sequence function: 0 = first, 1 = next.
    pub function: u32,
    /// Set when the key or the value was over the decoder's bounds and was
    /// dropped (it is empty above): such a request must be answered without
    /// running it.
    pub oversized: Option<Oversized>,
}

/// The dropped attribute of an oversized request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Oversized {
    /// `"key"` or `"value"`.
    pub name: &'static str,
    /// Its length as sent, in bytes.
    pub len: usize,
}

impl Request {
    /// True for Postfix 3.11+ requests, whose replies carry `flags`.
    pub fn has_instance_flags(&self) -> bool {
        self.instance_flags.is_some()
    }
}

/// Why a frame is not a valid request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The first attribute is not `request`.
    NoRequest,
    /// The request name is not one proxymap knows.
    UnknownRequest(String),
    /// A known request with missing, extra, repeated or invalid attributes.
    BadAttributes {
        /// The request that was malformed.
        kind: RequestKind,
        /// Whether `instance_flags` was present (selects the reply shape).
        instance_flags: bool,
        /// What was wrong, for the log.
        reason: String,
    },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::NoRequest => write!(f, "frame does not start with a request attribute"),
            ParseError::UnknownRequest(name) => write!(f, "unrecognized request: \"{name}\""),
            ParseError::BadAttributes { kind, reason, .. } => {
                write!(f, "malformed {} request: {reason}", kind.name())
            }
        }
    }
}

impl std::error::Error for ParseError {}

/// Parse a decoded frame strictly.
pub fn parse(frame: &Frame) -> Result<Request, ParseError> {
    parse_oversized(frame, &[])
}

/// Parse a frame whose values listed in `overflows` were dropped by the
/// decoder (see [`crate::attr::Decoded::Oversized`]). A dropped key, or an
/// update's dropped value, gives a request marked [`Request::oversized`];
/// any other dropped value is a [`ParseError`].
pub fn parse_oversized(frame: &Frame, overflows: &[Overflow]) -> Result<Request, ParseError> {
    let (first, rest) = frame.split_first().ok_or(ParseError::NoRequest)?;
    if first.name != b"request" {
        return Err(ParseError::NoRequest);
    }
    if let Some(o) = overflows.iter().find(|o| o.index == 0) {
        return Err(ParseError::UnknownRequest(format!(
            "({} bytes of request name)",
            o.len
        )));
    }
    let kind = RequestKind::from_name(&first.value).ok_or_else(|| {
        ParseError::UnknownRequest(String::from_utf8_lossy(&first.value).into_owned())
    })?;
    let with_if = rest.get(1).is_some_and(|a| a.name == b"instance_flags");
    let bad = |reason: String| ParseError::BadAttributes {
        kind,
        instance_flags: with_if,
        reason,
    };
    let mut expected: Vec<&str> = vec!["table"];
    if with_if {
        expected.push("instance_flags");
    }
    expected.extend_from_slice(kind.tail(with_if));
    for (i, name) in expected.iter().enumerate() {
        match rest.get(i) {
            None => return Err(bad(format!("missing attribute \"{name}\""))),
            Some(a) if a.name != name.as_bytes() => {
                return Err(bad(format!(
                    "unexpected attribute \"{}\" where \"{name}\" belongs",
                    String::from_utf8_lossy(&a.name)
                )))
            }
            Some(_) => {}
        }
    }
    if let Some(extra) = rest.get(expected.len()) {
        return Err(bad(format!(
            "unexpected attribute \"{}\"",
            String::from_utf8_lossy(&extra.name)
        )));
    }
    let mut oversized = None;
    for o in overflows {
        let attr_name = frame.get(o.index).map_or(&b"?"[..], |a| &a.name);
        let name = match (attr_name, kind) {
            (b"key", RequestKind::Lookup | RequestKind::Delete | RequestKind::Update) => "key",
            (b"value", RequestKind::Update) => "value",
            (other, _) => {
                return Err(bad(format!(
                    "attribute \"{}\" too long ({} bytes)",
                    String::from_utf8_lossy(other),
                    o.len
                )))
            }
        };
        oversized.get_or_insert(Oversized { name, len: o.len });
    }
    let mut req = Request {
        kind,
        table: String::new(),
        instance_flags: None,
        flags: 0,
        key: Vec::new(),
        value: Vec::new(),
        function: 0,
        oversized,
    };
    for attr in rest {
        let Attr { name, value } = attr;
        match name.as_slice() {
            b"table" => {
                req.table = String::from_utf8(value.clone())
                    .map_err(|_| bad("table name is not UTF-8".into()))?
            }
            b"instance_flags" => req.instance_flags = Some(number(value).map_err(&bad)?),
            b"flags" => req.flags = number(value).map_err(&bad)?,
            b"key" => req.key = value.clone(),
            b"value" => req.value = value.clone(),
            b"function" => req.function = number(value).map_err(&bad)?,
            _ => unreachable!("names were checked above"),
        }
    }
    if kind == RequestKind::Open {
        if let Some(inst) = req.instance_flags {
            req.flags = inst;
        }
    }
    Ok(req)
}

/// A number as Postfix's attribute scanner reads it: `sscanf(text, "%u%c")`
/// must convert exactly one item. With glibc that is `strtoul` in base 10
/// on a 64-bit `unsigned long`, stored into an `unsigned int`: leading
/// white space (C locale) is skipped, one optional sign is taken, then at
/// least one decimal digit and nothing after it. A value beyond 64 bits
/// saturates to `ULONG_MAX` whatever the sign; otherwise a minus sign
/// negates modulo 2^64. The result is truncated to 32 bits, so `-1` is
/// 0xFFFFFFFF and `99999999999` is 1215752191.
pub fn number(text: &[u8]) -> Result<u32, String> {
    let malformed = || {
        format!(
            "malformed numerical data \"{}\"",
            String::from_utf8_lossy(text)
        )
    };
    let mut rest = text;
    while let [b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r', tail @ ..] = rest {
        rest = tail;
    }
    let negative = match rest {
        [b'-', tail @ ..] => {
            rest = tail;
            true
        }
        [b'+', tail @ ..] => {
            rest = tail;
            false
        }
        _ => false,
    };
    if rest.is_empty() || !rest.iter().all(u8::is_ascii_digit) {
        return Err(malformed());
    }
    let magnitude = rest.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    });
    let value = match magnitude {
        None => u64::MAX,
        Some(m) if negative => m.wrapping_neg(),
        Some(m) => m,
    };
    Ok(value as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(pairs: &[(&str, &str)]) -> Frame {
        pairs
            .iter()
            .map(|(n, v)| Attr {
                name: n.as_bytes().to_vec(),
                value: v.as_bytes().to_vec(),
            })
            .collect()
    }

    #[test]
    fn parses_classic_lookup() {
        let req = parse(&frame(&[
            ("request", "lookup"),
            ("table", "hash:/x"),
            ("flags", "16448"),
            ("key", "Foo"),
        ]))
        .unwrap();
        assert_eq!(req.kind, RequestKind::Lookup);
        assert_eq!(req.table, "hash:/x");
        assert_eq!(req.flags, 16448);
        assert_eq!(req.key, b"Foo");
        assert!(!req.has_instance_flags());
    }

    #[test]
    fn parses_instance_flags_dialect() {
        let req = parse(&frame(&[
            ("request", "open"),
            ("table", "lmdb:/x"),
            ("instance_flags", "16448"),
        ]))
        .unwrap();
        assert_eq!(req.instance_flags, Some(16448));
        assert_eq!(req.flags, 16448);
        let req = parse(&frame(&[
            ("request", "sequence"),
            ("table", "lmdb:/x"),
            ("instance_flags", "64"),
            ("flags", "16448"),
            ("function", "1"),
        ]))
        .unwrap();
        assert_eq!(
            (req.instance_flags, req.flags, req.function),
            (Some(64), 16448, 1)
        );
    }

    #[test]
    fn rejects_missing_extra_repeated_and_bad_numbers() {
        let cases: Vec<Vec<(&str, &str)>> = vec![
            vec![("request", "lookup"), ("table", "t:x"), ("flags", "0")],
            vec![
                ("request", "lookup"),
                ("table", "t:x"),
                ("flags", "0"),
                ("key", "k"),
                ("x", "y"),
            ],
            vec![
                ("request", "lookup"),
                ("table", "t:x"),
                ("table", "t:x"),
                ("flags", "0"),
            ],
            vec![
                ("request", "lookup"),
                ("table", "t:x"),
                ("flags", "524353 "),
                ("key", "k"),
            ],
            vec![
                ("request", "lookup"),
                ("table", "t:x"),
                ("flags", "0x10"),
                ("key", "k"),
            ],
        ];
        for case in cases {
            match parse(&frame(&case)) {
                Err(ParseError::BadAttributes { kind, .. }) => {
                    assert_eq!(kind, RequestKind::Lookup)
                }
                other => panic!("{case:?} gave {other:?}"),
            }
        }
        assert_eq!(
            parse(&frame(&[("request", "close")])),
            Err(ParseError::UnknownRequest("close".into()))
        );
        assert_eq!(parse(&frame(&[("table", "x")])), Err(ParseError::NoRequest));
        assert_eq!(parse(&Vec::new()), Err(ParseError::NoRequest));
    }

    #[test]
    fn numbers_as_glibc_sscanf_reads_them() {
        let ok: &[(&str, u32)] = &[
            ("524353", 524353),
            (" 524353", 524353),
            ("\t\n\x0b\x0c\r 7", 7),
            ("+524353", 524353),
            ("007", 7),
            ("-0", 0),
            ("-1", 0xFFFF_FFFF),
            ("99999999999", 1_215_752_191),
            ("4294967296", 0),
            ("-4294967297", 0xFFFF_FFFF),
            ("-99999999999", 3_079_215_105),
            ("18446744073709551615", 0xFFFF_FFFF),
            ("-18446744073709551615", 1),
            // Beyond 64 bits strtoul saturates to ULONG_MAX, sign or not.
            ("18446744073709551616", 0xFFFF_FFFF),
            ("-18446744073709551616", 0xFFFF_FFFF),
            ("99999999999999999999999", 0xFFFF_FFFF),
            ("-99999999999999999999999", 0xFFFF_FFFF),
        ];
        for (text, want) in ok {
            assert_eq!(number(text.as_bytes()), Ok(*want), "{text:?}");
        }
        let bad = [
            "", " ", "abc", "524353 ", "0x10", "1a", "+", "-", "+-1", "--1", "1 2", "\u{a0}1",
        ];
        for text in bad {
            assert!(number(text.as_bytes()).is_err(), "{text:?}");
        }
        assert!(number(b"\xff1").is_err());
    }

    #[test]
    fn numbers_in_requests_follow_the_same_rules() {
        for (flags, want) in [(" 524353", 524353), ("+524353", 524353), ("-1", u32::MAX)] {
            let req = parse(&frame(&[
                ("request", "lookup"),
                ("table", "t:x"),
                ("flags", flags),
                ("key", "k"),
            ]))
            .unwrap();
            assert_eq!(req.flags, want);
        }
    }

    fn overflow(index: usize, len: usize) -> Overflow {
        Overflow { index, len }
    }

    #[test]
    fn dropped_key_or_update_value_marks_the_request_oversized() {
        let lookup = frame(&[
            ("request", "lookup"),
            ("table", "t:x"),
            ("flags", "0"),
            ("key", ""),
        ]);
        let req = parse_oversized(&lookup, &[overflow(3, 5_000_000)]).unwrap();
        assert_eq!(
            req.oversized,
            Some(Oversized {
                name: "key",
                len: 5_000_000
            })
        );
        assert_eq!(parse(&lookup).unwrap().oversized, None);
        let update = frame(&[
            ("request", "update"),
            ("table", "t:x"),
            ("flags", "0"),
            ("key", "k"),
            ("value", ""),
        ]);
        let req = parse_oversized(&update, &[overflow(4, 9)]).unwrap();
        assert_eq!(req.kind, RequestKind::Update);
        assert_eq!(req.oversized.map(|o| o.name), Some("value"));
        let req = parse_oversized(&update, &[overflow(3, 8), overflow(4, 9)]).unwrap();
        assert_eq!(req.oversized.map(|o| (o.name, o.len)), Some(("key", 8)));
    }

    #[test]
    fn any_other_dropped_value_is_bad() {
        let lookup = frame(&[
            ("request", "lookup"),
            ("table", ""),
            ("flags", "0"),
            ("key", "k"),
        ]);
        match parse_oversized(&lookup, &[overflow(1, 10)]) {
            Err(ParseError::BadAttributes { kind, reason, .. }) => {
                assert_eq!(kind, RequestKind::Lookup);
                assert!(reason.contains("table"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        // A "value" attribute only belongs to updates.
        let seq = frame(&[
            ("request", "sequence"),
            ("table", "t:x"),
            ("flags", "0"),
            ("function", ""),
        ]);
        assert!(parse_oversized(&seq, &[overflow(3, 10)]).is_err());
        assert!(matches!(
            parse_oversized(&frame(&[("request", "")]), &[overflow(0, 10)]),
            Err(ParseError::UnknownRequest(_))
        ));
        // A malformed frame stays malformed whatever was dropped.
        let missing = frame(&[("request", "lookup"), ("table", "t:x"), ("key", "")]);
        assert!(matches!(
            parse_oversized(&missing, &[overflow(2, 10)]),
            Err(ParseError::BadAttributes { .. })
        ));
        // Bogus overflow positions are an error, not a panic.
        assert!(parse_oversized(&lookup, &[overflow(99, 1)]).is_err());
    }
}
