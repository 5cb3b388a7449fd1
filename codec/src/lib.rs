//! The proxymap wire codec: attr0 framing, request parsing and reply encoding.
//!
//! A crate of its own (`proxymapd-codec`), used by the proxymapd host as
//! `proxymapd::codec` and by the fuzz targets in `codec/fuzz`, which build it
//! without the rest of the server. Nothing in it performs I/O. The server feeds received bytes into a
//! [`attr::FrameDecoder`], turns complete frames into [`request::Request`]s and
//! writes the bytes produced by [`reply::Reply::encode`]. Every Postfix dialect
//! (3.0–3.5 without greeting, 3.6–3.10 with greeting, 3.11+ with instance flags)
//! is handled here, so the rest of the server never sees wire details.

pub mod attr;
pub mod dialect;
pub mod reply;
pub mod request;

pub use attr::{Attr, Decoded, Frame, FrameDecoder, FrameError, Limits, Overflow};
pub use dialect::Greeting;
pub use reply::{Reply, Status};
pub use request::{Oversized, ParseError, Request, RequestKind};
