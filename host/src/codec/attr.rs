//! attr0 framing: `name NUL value NUL ... NUL`, where an empty name ends a frame.
//!
//! [`FrameDecoder`] is incremental (bytes may arrive in any split) and bounded:
//! a string longer than [`Limits::max_string`] or a frame with more than
//! [`Limits::max_attrs`] attributes is reported as malformed once the frame's
//! closing NUL arrives, without buffering the excess, so the connection stays
//! in step with the client. [`encode_attr`] and [`end_frame`] write frames.

use std::fmt;

/// One `name=value` attribute of a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    /// Attribute name (never empty).
    pub name: Vec<u8>,
    /// Attribute value (may be empty).
    pub value: Vec<u8>,
}

/// A complete frame: its attributes in the order they arrived.
pub type Frame = Vec<Attr>;

/// Bounds applied while decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest accepted name or value, in bytes. Postfix bounds attribute
    /// strings at four times `line_limit` (2048), i.e. 8 KiB.
    pub max_string: usize,
    /// Most attributes accepted in one frame.
    pub max_attrs: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_string: 4 * 2048,
            max_attrs: 64,
        }
    }
}

/// Why a frame was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// A name or value exceeded [`Limits::max_string`].
    StringTooLong {
        /// The configured bound.
        limit: usize,
    },
    /// The frame had more than [`Limits::max_attrs`] attributes.
    TooManyAttrs {
        /// The configured bound.
        limit: usize,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::StringTooLong { limit } => {
                write!(f, "attribute string longer than {limit} bytes")
            }
            FrameError::TooManyAttrs { limit } => write!(f, "more than {limit} attributes"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Result of feeding bytes to the decoder: a whole frame, good or malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A well-formed frame.
    Frame(Frame),
    /// A frame that broke a limit; its bytes have all been consumed.
    Malformed(FrameError),
}

/// Incremental, bounded attr0 frame decoder.
#[derive(Debug)]
pub struct FrameDecoder {
    limits: Limits,
    attrs: Frame,
    /// Name of the attribute whose value is being read, if any.
    pending_name: Option<Vec<u8>>,
    /// Bytes of the string being read (name or value).
    current: Vec<u8>,
    /// Length of the current string counted so far, even when discarding.
    current_len: usize,
    /// First limit broken in this frame; the rest of the frame is discarded.
    error: Option<FrameError>,
}

impl FrameDecoder {
    /// A decoder with the given bounds.
    pub fn new(limits: Limits) -> Self {
        FrameDecoder {
            limits,
            attrs: Vec::new(),
            pending_name: None,
            current: Vec::new(),
            current_len: 0,
            error: None,
        }
    }

    /// True when no partial frame is buffered.
    pub fn is_idle(&self) -> bool {
        self.attrs.is_empty()
            && self.pending_name.is_none()
            && self.current_len == 0
            && self.error.is_none()
    }

    /// Consume bytes from `input` until a frame completes or input runs out.
    /// Returns how many bytes were consumed and the completed frame, if any;
    /// bytes after a completed frame are left for the next call.
    pub fn feed(&mut self, input: &[u8]) -> (usize, Option<Decoded>) {
        let mut pos = 0;
        while pos < input.len() {
            let rest = &input[pos..];
            let (chunk, terminated) = match rest.iter().position(|&b| b == 0) {
                Some(n) => (&rest[..n], true),
                None => (rest, false),
            };
            pos += chunk.len() + usize::from(terminated);
            self.current_len += chunk.len();
            if self.error.is_none() {
                if self.current_len > self.limits.max_string {
                    self.error = Some(FrameError::StringTooLong {
                        limit: self.limits.max_string,
                    });
                    self.current.clear();
                } else {
                    self.current.extend_from_slice(chunk);
                }
            }
            if !terminated {
                break;
            }
            if let Some(done) = self.finish_string() {
                return (pos, Some(done));
            }
        }
        (pos, None)
    }

    /// A NUL ended the current string: it is a name, a value, or the frame end.
    fn finish_string(&mut self) -> Option<Decoded> {
        let string = std::mem::take(&mut self.current);
        let len = std::mem::replace(&mut self.current_len, 0);
        match self.pending_name.take() {
            None if len == 0 => {
                let attrs = std::mem::take(&mut self.attrs);
                Some(match self.error.take() {
                    Some(err) => Decoded::Malformed(err),
                    None => Decoded::Frame(attrs),
                })
            }
            None => {
                self.pending_name = Some(string);
                None
            }
            Some(name) => {
                if self.error.is_none() {
                    if self.attrs.len() >= self.limits.max_attrs {
                        self.error = Some(FrameError::TooManyAttrs {
                            limit: self.limits.max_attrs,
                        });
                        self.attrs.clear();
                    } else {
                        self.attrs.push(Attr {
                            name,
                            value: string,
                        });
                    }
                }
                None
            }
        }
    }
}

/// Append one `name NUL value NUL` attribute to `out`.
pub fn encode_attr(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    out.extend_from_slice(value);
    out.push(0);
}

/// Append one numeric attribute (unsigned decimal text) to `out`.
pub fn encode_num(out: &mut Vec<u8>, name: &str, value: u32) {
    encode_attr(out, name, value.to_string().as_bytes());
}

/// Close the frame being written to `out`.
pub fn end_frame(out: &mut Vec<u8>) {
    out.push(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(n: &str, v: &str) -> Attr {
        Attr {
            name: n.as_bytes().to_vec(),
            value: v.as_bytes().to_vec(),
        }
    }

    #[test]
    fn decodes_split_input_byte_by_byte() {
        let wire = b"request\0lookup\0key\0\0\0rest";
        let mut dec = FrameDecoder::new(Limits::default());
        let mut got = None;
        let mut used = 0;
        for i in 0..wire.len() {
            let (n, out) = dec.feed(&wire[i..i + 1]);
            used += n;
            if out.is_some() {
                got = out;
                break;
            }
        }
        assert_eq!(used, 21);
        assert_eq!(
            got,
            Some(Decoded::Frame(vec![
                attr("request", "lookup"),
                attr("key", "")
            ]))
        );
        assert!(dec.is_idle());
    }

    #[test]
    fn leaves_bytes_after_frame() {
        let mut dec = FrameDecoder::new(Limits::default());
        let (n, out) = dec.feed(b"a\0b\0\0c\0d\0\0");
        assert_eq!(n, 5);
        assert_eq!(out, Some(Decoded::Frame(vec![attr("a", "b")])));
        let (n, out) = dec.feed(b"c\0d\0\0");
        assert_eq!(n, 5);
        assert_eq!(out, Some(Decoded::Frame(vec![attr("c", "d")])));
    }

    #[test]
    fn oversized_string_is_discarded_to_frame_end() {
        let limits = Limits {
            max_string: 4,
            max_attrs: 8,
        };
        let mut dec = FrameDecoder::new(limits);
        let (n, out) = dec.feed(b"key\0");
        assert_eq!((n, out), (4, None));
        let (_, out) = dec.feed(b"123456789");
        assert_eq!(out, None);
        let (_, out) = dec.feed(b"0\0x\0y\0\0");
        assert_eq!(
            out,
            Some(Decoded::Malformed(FrameError::StringTooLong { limit: 4 }))
        );
        assert!(dec.is_idle());
        let (_, out) = dec.feed(b"a\0b\0\0");
        assert_eq!(out, Some(Decoded::Frame(vec![attr("a", "b")])));
    }

    #[test]
    fn too_many_attributes() {
        let limits = Limits {
            max_string: 16,
            max_attrs: 2,
        };
        let mut dec = FrameDecoder::new(limits);
        let (_, out) = dec.feed(b"a\0\0b\0\0c\0\0\0");
        assert_eq!(
            out,
            Some(Decoded::Malformed(FrameError::TooManyAttrs { limit: 2 }))
        );
    }

    #[test]
    fn encodes() {
        let mut out = Vec::new();
        encode_attr(&mut out, "status", b"0");
        encode_num(&mut out, "flags", 16476);
        end_frame(&mut out);
        assert_eq!(out, b"status\x000\x00flags\x0016476\x00\x00");
    }
}
