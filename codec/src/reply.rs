//! Reply encoding: the status codes and the attribute shape of each reply.
//!
//! Every reply starts with `status`. Replies to Postfix 3.11+ requests (those
//! that carried `instance_flags`) add `flags` right after it; `open` replies
//! always carry `flags`. Lookups add `value`, sequences `key` and `value`.

use crate::attr::{encode_attr, encode_num, end_frame};
use crate::request::{ParseError, RequestKind};

/// Postfix's proxymap status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Status {
    /// Found / done.
    Ok = 0,
    /// Key not found.
    NoKey = 1,
    /// Temporary failure; the client defers.
    Retry = 2,
    /// Malformed request.
    Bad = 3,
    /// Table not approved, or write on the read-only service.
    Deny = 4,
    /// Table configuration error.
    Config = 5,
}

impl Status {
    /// Every status, in code order.
    pub const ALL: [Status; 6] = [
        Status::Ok,
        Status::NoKey,
        Status::Retry,
        Status::Bad,
        Status::Deny,
        Status::Config,
    ];

    /// The status with this wire code, if there is one.
    pub fn from_code(code: u32) -> Option<Status> {
        Status::ALL.into_iter().find(|s| *s as u32 == code)
    }

    /// Postfix's name for it (`PROXY_STAT_` without the prefix): `OK`,
    /// `NOKEY`, `RETRY`, `BAD`, `DENY`, `CONFIG`.
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::NoKey => "NOKEY",
            Status::Retry => "RETRY",
            Status::Bad => "BAD",
            Status::Deny => "DENY",
            Status::Config => "CONFIG",
        }
    }

    /// What it means to a client, in a few words.
    pub fn meaning(self) -> &'static str {
        match self {
            Status::Ok => "found or done",
            Status::NoKey => "key not found",
            Status::Retry => "temporary failure",
            Status::Bad => "bad request",
            Status::Deny => "table not approved or service not writable",
            Status::Config => "table configuration error",
        }
    }
}

/// The meaning and the name, e.g. `temporary failure (RETRY)`.
impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.meaning(), self.name())
    }
}

/// A reply to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The request answered, or `None` for a frame with no known request.
    pub kind: Option<RequestKind>,
    /// Whether the request used the 3.11+ dialect (adds `flags`).
    pub instance_flags: bool,
    /// Outcome.
    pub status: Status,
    /// Table flags (open replies, and every 3.11+ reply).
    pub flags: u32,
    /// Key (sequence replies).
    pub key: Vec<u8>,
    /// Value (lookup and sequence replies).
    pub value: Vec<u8>,
}

impl Reply {
    /// A reply with the given status and empty fields.
    pub fn status(kind: Option<RequestKind>, instance_flags: bool, status: Status) -> Reply {
        Reply {
            kind,
            instance_flags,
            status,
            flags: 0,
            key: Vec::new(),
            value: Vec::new(),
        }
    }

    /// The BAD reply to a frame that did not parse: shaped for its request
    /// when the request is known, the bare status otherwise.
    pub fn rejecting(err: &ParseError) -> Reply {
        match err {
            ParseError::NoRequest | ParseError::UnknownRequest(_) => {
                Reply::status(None, false, Status::Bad)
            }
            ParseError::BadAttributes {
                kind,
                instance_flags,
                ..
            } => Reply::status(Some(*kind), *instance_flags, Status::Bad),
        }
    }

    /// Append the reply's wire bytes to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        encode_num(out, "status", self.status as u32);
        let with_flags =
            self.kind == Some(RequestKind::Open) || (self.kind.is_some() && self.instance_flags);
        if with_flags {
            encode_num(out, "flags", self.flags);
        }
        match self.kind {
            Some(RequestKind::Lookup) => encode_attr(out, "value", &self.value),
            Some(RequestKind::Sequence) => {
                encode_attr(out, "key", &self.key);
                encode_attr(out, "value", &self.value);
            }
            _ => {}
        }
        end_frame(out);
    }

    /// The reply's wire bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_names_and_meanings() {
        for (code, status) in Status::ALL.into_iter().enumerate() {
            assert_eq!(Status::from_code(code as u32), Some(status));
        }
        assert_eq!(Status::from_code(6), None);
        assert_eq!(Status::NoKey.name(), "NOKEY");
        assert_eq!(Status::Retry.to_string(), "temporary failure (RETRY)");
    }

    #[test]
    fn shapes() {
        let mut r = Reply::status(Some(RequestKind::Lookup), false, Status::Ok);
        r.value = b"bar".to_vec();
        assert_eq!(r.to_bytes(), b"status\x000\x00value\x00bar\x00\x00");
        r.instance_flags = true;
        r.flags = 16;
        assert_eq!(
            r.to_bytes(),
            b"status\x000\x00flags\x0016\x00value\x00bar\x00\x00"
        );
        let r = Reply::status(None, false, Status::Bad);
        assert_eq!(r.to_bytes(), b"status\x003\x00\x00");
        let r = Reply::status(Some(RequestKind::Update), false, Status::Deny);
        assert_eq!(r.to_bytes(), b"status\x004\x00\x00");
    }
}
