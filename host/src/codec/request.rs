//! Strict parsing of request frames, the way Postfix's proxymap scans them.
//!
//! A request frame starts with `request`; the remaining attributes must be
//! exactly the ones that request takes, in order. Postfix 3.11+ clients add
//! `instance_flags` right after `table` (and send it instead of `flags` on
//! `open`); its presence selects that dialect for the reply. Anything else is a
//! [`ParseError`], which the server answers with status BAD.

use super::attr::{Attr, Frame};
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
    let (first, rest) = frame.split_first().ok_or(ParseError::NoRequest)?;
    if first.name != b"request" {
        return Err(ParseError::NoRequest);
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
    let mut req = Request {
        kind,
        table: String::new(),
        instance_flags: None,
        flags: 0,
        key: Vec::new(),
        value: Vec::new(),
        function: 0,
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

/// An unsigned decimal number as Postfix writes it.
fn number(text: &[u8]) -> Result<u32, String> {
    let s = std::str::from_utf8(text).map_err(|_| "number is not text".to_string())?;
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("bad number \"{s}\""));
    }
    s.parse::<u32>()
        .map_err(|_| format!("number out of range \"{s}\""))
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
                ("flags", "-1"),
                ("key", "k"),
            ],
            vec![
                ("request", "lookup"),
                ("table", "t:x"),
                ("flags", "99999999999"),
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
}
