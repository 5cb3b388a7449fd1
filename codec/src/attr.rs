//! attr0 framing: `name NUL value NUL ... NUL`, where an empty name ends a frame.
//!
//! [`FrameDecoder`] is incremental (bytes may arrive in any split) and bounded:
//! it never holds more than [`Limits::max_string`] bytes of one string nor
//! more than [`Limits::max_frame`] bytes of one frame. A value that would break
//! either bound is dropped as it streams in and the frame is still delivered,
//! as [`Decoded::Oversized`] naming the dropped values, so the server can give
//! the answer Postfix gives (stock proxymap has no length limit: a huge key is
//! simply not found). An over-long name, or more than [`Limits::max_attrs`]
//! attributes, makes the frame [`Decoded::Malformed`]. Either way the whole
//! frame is consumed, so the connection stays in step with the client.
//! [`encode_attr`] and [`end_frame`] write frames.

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
    /// Longest name or value kept, in bytes. Stock Postfix has no bound (a
    /// 1,000,000-byte key is read and looked up), so the default is 1 MiB.
    pub max_string: usize,
    /// Most attributes accepted in one frame.
    pub max_attrs: usize,
    /// Most bytes of names and values kept for one frame; a value that would
    /// cross it is dropped like one over [`Limits::max_string`]. The default
    /// lets an update carry a key and a value of `max_string` bytes each.
    pub max_frame: usize,
}

impl Limits {
    /// Room in a frame for everything besides an update's key and value.
    const FRAME_SLACK: usize = 64 * 1024;

    /// The default bounds with strings of up to `max_string` bytes and a
    /// frame bound that fits two of them.
    pub fn for_max_string(max_string: usize) -> Limits {
        Limits {
            max_string,
            max_attrs: 64,
            max_frame: max_string
                .saturating_mul(2)
                .saturating_add(Self::FRAME_SLACK),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::for_max_string(1 << 20)
    }
}

/// Why a frame was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// An attribute name exceeded [`Limits::max_string`] or
    /// [`Limits::max_frame`].
    NameTooLong {
        /// The bound that was crossed.
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
            FrameError::NameTooLong { limit } => {
                write!(f, "attribute name longer than {limit} bytes")
            }
            FrameError::TooManyAttrs { limit } => write!(f, "more than {limit} attributes"),
        }
    }
}

impl std::error::Error for FrameError {}

/// A value the decoder dropped because it was over the bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow {
    /// Position of the attribute in the frame; its value there is empty.
    pub index: usize,
    /// Length of the value as sent, in bytes.
    pub len: usize,
}

/// Result of feeding bytes to the decoder: a whole frame, good or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A well-formed frame within the bounds.
    Frame(Frame),
    /// A well-formed frame with one or more values over the bounds. Those
    /// attributes are present with empty values; `overflows` lists them in
    /// frame order.
    Oversized {
        /// The frame, dropped values left empty.
        frame: Frame,
        /// The dropped values (at least one).
        overflows: Vec<Overflow>,
    },
    /// A frame with an over-long name or too many attributes; all of its
    /// bytes have been consumed and none kept.
    Malformed(FrameError),
}

/// Incremental, bounded attr0 frame decoder.
#[derive(Debug)]
pub struct FrameDecoder {
    limits: Limits,
    attrs: Frame,
    /// Name of the attribute whose value is being read, if any.
    pending_name: Option<Vec<u8>>,
    /// Bytes of the string being read (name or value), unless dropping it.
    current: Vec<u8>,
    /// Length of the current string counted so far, even when dropping it.
    current_len: usize,
    /// True once the current string crossed a bound: its bytes are dropped.
    dropping: bool,
    /// Bytes of names and values kept for this frame, `current` excluded.
    kept: usize,
    /// Values of this frame dropped so far.
    overflows: Vec<Overflow>,
    /// First error in this frame; the rest of the frame is discarded.
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
            dropping: false,
            kept: 0,
            overflows: Vec::new(),
            error: None,
        }
    }

    /// The decoder's bounds.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// True when no partial frame is buffered.
    pub fn is_idle(&self) -> bool {
        self.attrs.is_empty()
            && self.pending_name.is_none()
            && self.current_len == 0
            && self.error.is_none()
    }

    /// Bytes of names and values currently held for the partial frame; never
    /// more than [`Limits::max_frame`].
    pub fn buffered(&self) -> usize {
        self.kept + self.current.len()
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
            self.current_len = self.current_len.saturating_add(chunk.len());
            if self.error.is_none() && !self.dropping {
                if self.current_len > self.limits.max_string
                    || self.kept + self.current_len > self.limits.max_frame
                {
                    self.dropping = true;
                    self.current = Vec::new();
                } else {
                    self.keep(chunk);
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

    /// Append to the current string, growing its buffer no further than
    /// the bounds allow (the caller checked that `chunk` fits).
    fn keep(&mut self, chunk: &[u8]) {
        let need = self.current.len() + chunk.len();
        if need > self.current.capacity() {
            let room = self
                .limits
                .max_string
                .min(self.limits.max_frame - self.kept);
            let target = need.max(self.current.capacity() * 2).min(room);
            self.current.reserve_exact(target - self.current.len());
        }
        self.current.extend_from_slice(chunk);
    }

    /// A NUL ended the current string: it is a name, a value, or the frame end.
    fn finish_string(&mut self) -> Option<Decoded> {
        let string = std::mem::take(&mut self.current);
        let len = std::mem::replace(&mut self.current_len, 0);
        let dropped = std::mem::replace(&mut self.dropping, false);
        if self.error.is_some() {
            // Skipping the rest of a broken frame, keeping only the
            // name/value alternation (an empty `pending_name` marks "a value
            // comes next") to find the empty name that ends it.
            if self.pending_name.take().is_none() {
                if len == 0 {
                    return self.error.take().map(Decoded::Malformed);
                }
                self.pending_name = Some(Vec::new());
            }
            return None;
        }
        match self.pending_name.take() {
            None if len == 0 => Some(self.finish_frame()),
            None if dropped => {
                self.fail(FrameError::NameTooLong {
                    limit: self.limits.max_string.min(self.limits.max_frame),
                });
                self.pending_name = Some(Vec::new());
                None
            }
            None => {
                self.kept += string.len();
                self.pending_name = Some(string);
                None
            }
            Some(name) => {
                if self.attrs.len() >= self.limits.max_attrs {
                    self.fail(FrameError::TooManyAttrs {
                        limit: self.limits.max_attrs,
                    });
                    return None;
                }
                if dropped {
                    self.overflows.push(Overflow {
                        index: self.attrs.len(),
                        len,
                    });
                } else {
                    self.kept += string.len();
                }
                self.attrs.push(Attr {
                    name,
                    value: string,
                });
                None
            }
        }
    }

    /// The empty name arrived: hand over the frame and start afresh.
    fn finish_frame(&mut self) -> Decoded {
        let frame = std::mem::take(&mut self.attrs);
        let overflows = std::mem::take(&mut self.overflows);
        self.kept = 0;
        if overflows.is_empty() {
            Decoded::Frame(frame)
        } else {
            Decoded::Oversized { frame, overflows }
        }
    }

    /// Give up on this frame: drop what it kept and skip to its end.
    fn fail(&mut self, err: FrameError) {
        self.error = Some(err);
        self.attrs = Vec::new();
        self.overflows = Vec::new();
        self.kept = 0;
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

    fn small(max_string: usize, max_attrs: usize, max_frame: usize) -> Limits {
        Limits {
            max_string,
            max_attrs,
            max_frame,
        }
    }

    #[test]
    fn default_limits_fit_a_megabyte_key_and_an_update() {
        let limits = Limits::default();
        assert!(limits.max_string >= 1_000_000);
        assert!(limits.max_frame >= 2 * limits.max_string);
        let mut dec = FrameDecoder::new(limits);
        let mut wire = b"request\0lookup\0key\0".to_vec();
        wire.extend(std::iter::repeat_n(b'k', 1_000_000));
        wire.extend_from_slice(b"\0\0");
        let (n, out) = dec.feed(&wire);
        assert_eq!(n, wire.len());
        match out {
            Some(Decoded::Frame(f)) => assert_eq!(f[1].value.len(), 1_000_000),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn oversized_value_is_dropped_and_the_frame_still_delivered() {
        let mut dec = FrameDecoder::new(small(4, 8, 100));
        let (n, out) = dec.feed(b"key\0");
        assert_eq!((n, out), (4, None));
        let (n, out) = dec.feed(b"123456789");
        assert_eq!((n, out), (9, None));
        assert_eq!(dec.buffered(), 3, "only the name is kept");
        let (_, out) = dec.feed(b"0\0x\0y\0\0");
        assert_eq!(
            out,
            Some(Decoded::Oversized {
                frame: vec![attr("key", ""), attr("x", "y")],
                overflows: vec![Overflow { index: 0, len: 10 }],
            })
        );
        assert!(dec.is_idle());
        assert_eq!(dec.buffered(), 0);
        let (_, out) = dec.feed(b"a\0b\0\0");
        assert_eq!(out, Some(Decoded::Frame(vec![attr("a", "b")])));
    }

    #[test]
    fn a_value_exactly_at_the_bound_is_kept() {
        let mut dec = FrameDecoder::new(small(4, 8, 100));
        let (_, out) = dec.feed(b"k\x001234\0\0");
        assert_eq!(out, Some(Decoded::Frame(vec![attr("k", "1234")])));
    }

    #[test]
    fn the_frame_bound_drops_the_value_that_crosses_it() {
        // Each value fits max_string, but the second crosses max_frame.
        let mut dec = FrameDecoder::new(small(8, 8, 12));
        let (_, out) = dec.feed(b"a\0bbbbbbbb\0c\0ddddd\0e\0f\0\0");
        assert_eq!(
            out,
            Some(Decoded::Oversized {
                frame: vec![attr("a", "bbbbbbbb"), attr("c", ""), attr("e", "f")],
                overflows: vec![Overflow { index: 1, len: 5 }],
            })
        );
    }

    #[test]
    fn overlong_name_makes_the_frame_malformed_and_resyncs() {
        let mut dec = FrameDecoder::new(small(4, 8, 100));
        let (n, out) = dec.feed(b"toolongname\0value\0x\0y\0\0a\0b\0\0");
        assert_eq!(n, 23);
        assert_eq!(
            out,
            Some(Decoded::Malformed(FrameError::NameTooLong { limit: 4 }))
        );
        assert!(dec.is_idle());
        let (_, out) = dec.feed(b"a\0b\0\0");
        assert_eq!(out, Some(Decoded::Frame(vec![attr("a", "b")])));
    }

    #[test]
    fn empty_values_inside_a_broken_frame_do_not_end_it() {
        let mut dec = FrameDecoder::new(small(4, 8, 100));
        // After the bad name, "\0" is its (empty) value, then x="" and the end.
        let (n, out) = dec.feed(b"toolong\0\0x\0\0\0");
        assert_eq!(n, 13);
        assert!(matches!(out, Some(Decoded::Malformed(_))));
        assert!(dec.is_idle());
    }

    #[test]
    fn buffer_capacity_stays_within_the_bounds() {
        let mut dec = FrameDecoder::new(small(1000, 8, 1000));
        dec.feed(b"k\0");
        for _ in 0..99 {
            dec.feed(b"0123456789");
        }
        assert!(dec.current.capacity() <= 999, "{}", dec.current.capacity());
        assert_eq!(dec.buffered(), 991);
    }

    #[test]
    fn too_many_attributes() {
        let mut dec = FrameDecoder::new(small(16, 2, 100));
        let (n, out) = dec.feed(b"a\0\0b\0\0c\0\0\0z");
        assert_eq!(n, 10);
        assert_eq!(
            out,
            Some(Decoded::Malformed(FrameError::TooManyAttrs { limit: 2 }))
        );
        assert!(dec.is_idle());
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
