//! Dialect selection: whether the server greets clients on connect.
//!
//! Postfix 3.0–3.5 clients speak first; 3.6 and later expect the server to
//! send `protocol=proxymap_protocol` before anything else and refuse a server
//! that does not. Whether a request carries `instance_flags` (3.11+) is told
//! per request by the request parser, so only the greeting is configured.

use crate::attr::{encode_attr, end_frame};

/// Whether to greet clients, i.e. which Postfix generation we serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Greeting {
    /// Postfix 3.0–3.5: no greeting, the client speaks first.
    None,
    /// Postfix 3.6 and later: send the protocol greeting after accept.
    #[default]
    Proxymap,
}

impl Greeting {
    /// The greeting for clients of the given Postfix version
    /// (`mail_version`, e.g. `3.7.11`); unparsable versions get a greeting.
    pub fn for_mail_version(version: &str) -> Greeting {
        let mut parts = version.trim().split('.');
        let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(99);
        let minor: u32 = parts
            .next()
            .and_then(|p| {
                let digits: String = p.chars().take_while(|c| c.is_ascii_digit()).collect();
                digits.parse().ok()
            })
            .unwrap_or(99);
        if major < 3 || (major == 3 && minor < 6) {
            Greeting::None
        } else {
            Greeting::Proxymap
        }
    }

    /// The bytes to send right after accepting a connection (possibly none).
    pub fn bytes(self) -> Vec<u8> {
        let mut out = Vec::new();
        if self == Greeting::Proxymap {
            encode_attr(&mut out, "protocol", b"proxymap_protocol");
            end_frame(&mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_selects_greeting() {
        assert_eq!(Greeting::for_mail_version("3.5.18"), Greeting::None);
        assert_eq!(Greeting::for_mail_version("2.11.3"), Greeting::None);
        assert_eq!(Greeting::for_mail_version("3.6.0"), Greeting::Proxymap);
        assert_eq!(Greeting::for_mail_version("3.7.11"), Greeting::Proxymap);
        assert_eq!(
            Greeting::for_mail_version("3.11-20250101"),
            Greeting::Proxymap
        );
        assert_eq!(
            Greeting::Proxymap.bytes(),
            b"protocol\0proxymap_protocol\0\0"
        );
        assert!(Greeting::None.bytes().is_empty());
    }
}
