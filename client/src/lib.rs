//! A blocking proxymap client: what Postfix's dict_proxy does, for the
//! `proxymapd query` command, the tests and load generation. Speaks every
//! dialect: it reads the greeting when told to expect one and sends
//! `instance_flags` when asked to act as a Postfix 3.11+ client.
//!
//! A crate of its own (`proxymapd-client`), needing only the wire codec and
//! the SDK's [`flags`] constants (re-exported here, the same ones the server
//! and plugins use), so the benchmark tools in `bench/` talk to servers
//! without building one; the host re-exports it as `proxymapd::client`.

pub use proxymapd_sdk::flags;

use anyhow::{bail, Context, Result};
use proxymapd_codec::attr::{encode_attr, encode_num, end_frame, Decoded};
use proxymapd_codec::{Attr, FrameDecoder, Limits};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// A connection to a proxymap or proxywrite socket.
pub struct Client {
    stream: UnixStream,
    decoder: FrameDecoder,
    pending: Vec<u8>,
    buf: Vec<u8>,
    out: Vec<u8>,
    instance_flags: Option<u32>,
}

/// A decoded reply: its attributes by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyAttrs(pub Vec<Attr>);

impl ReplyAttrs {
    /// The value of attribute `name`.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|a| a.name == name.as_bytes())
            .map(|a| a.value.as_slice())
    }

    /// The numeric `status`.
    pub fn status(&self) -> Option<u32> {
        self.get("status")
            .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
    }
}

impl Client {
    /// Connect to `socket`; `greeting` says whether the server greets.
    pub fn connect(socket: &Path, greeting: bool) -> Result<Client> {
        let stream = UnixStream::connect(socket)
            .with_context(|| format!("connect to {}", socket.display()))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut client = Client {
            stream,
            decoder: FrameDecoder::new(Limits::for_max_string(1 << 24)),
            pending: Vec::new(),
            buf: vec![0; 64 * 1024],
            out: Vec::with_capacity(512),
            instance_flags: None,
        };
        if greeting {
            let hello = client.read_reply()?;
            if hello.get("protocol") != Some(b"proxymap_protocol") {
                bail!("unexpected greeting from {}: {:?}", socket.display(), hello);
            }
        }
        Ok(client)
    }

    /// The instance flags sent with every request (3.11+ dialect), if any.
    pub fn instance_flags(&self) -> Option<u32> {
        self.instance_flags
    }

    /// Act as a Postfix 3.11+ client sending these instance flags.
    pub fn with_instance_flags(mut self, flags: Option<u32>) -> Client {
        self.instance_flags = flags;
        self
    }

    /// Send raw bytes and read one reply frame.
    pub fn raw(&mut self, bytes: &[u8]) -> Result<ReplyAttrs> {
        self.stream.write_all(bytes)?;
        self.read_reply()
    }

    /// Send one request (`flags` left out when `None`) and read its reply.
    /// Buffers are reused, so this is cheap enough for load generation.
    pub fn request(
        &mut self,
        name: &str,
        table: &str,
        flags: Option<u32>,
        rest: &[(&str, &[u8])],
    ) -> Result<ReplyAttrs> {
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        encode_attr(&mut out, "request", name.as_bytes());
        encode_attr(&mut out, "table", table.as_bytes());
        if let Some(inst) = self.instance_flags {
            encode_num(&mut out, "instance_flags", inst);
        }
        if let Some(f) = flags {
            encode_num(&mut out, "flags", f);
        }
        for (n, v) in rest {
            encode_attr(&mut out, n, v);
        }
        end_frame(&mut out);
        let result = self
            .stream
            .write_all(&out)
            .map_err(Into::into)
            .and_then(|()| self.read_reply());
        self.out = out;
        result
    }

    /// Read one frame.
    pub fn read_reply(&mut self) -> Result<ReplyAttrs> {
        loop {
            if !self.pending.is_empty() {
                let (used, out) = self.decoder.feed(&self.pending);
                self.pending.drain(..used);
                match out {
                    Some(Decoded::Frame(attrs)) => return Ok(ReplyAttrs(attrs)),
                    Some(Decoded::Malformed(e)) => bail!("malformed reply: {e}"),
                    Some(Decoded::Oversized { overflows, .. }) => bail!(
                        "reply value of {} bytes is over the client's bound",
                        overflows[0].len
                    ),
                    None => {}
                }
            }
            let n = match self.stream.read(&mut self.buf) {
                Ok(n) => n,
                // A signal, not an answer: read again.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            if n == 0 {
                bail!("server closed the connection");
            }
            self.pending.extend_from_slice(&self.buf[..n]);
        }
    }

    /// `open`: returns status and the table's flags.
    pub fn open(&mut self, table: &str, flags: u32) -> Result<ReplyAttrs> {
        let f = if self.instance_flags.is_some() {
            None
        } else {
            Some(flags)
        };
        self.request("open", table, f, &[])
    }

    /// `lookup`.
    pub fn lookup(&mut self, table: &str, flags: u32, key: &[u8]) -> Result<ReplyAttrs> {
        self.request("lookup", table, Some(flags), &[("key", key)])
    }

    /// `update`.
    pub fn update(
        &mut self,
        table: &str,
        flags: u32,
        key: &[u8],
        value: &[u8],
    ) -> Result<ReplyAttrs> {
        self.request(
            "update",
            table,
            Some(flags),
            &[("key", key), ("value", value)],
        )
    }

    /// `delete`.
    pub fn delete(&mut self, table: &str, flags: u32, key: &[u8]) -> Result<ReplyAttrs> {
        self.request("delete", table, Some(flags), &[("key", key)])
    }

    /// `sequence` with function 0 (first) or 1 (next).
    pub fn sequence(&mut self, table: &str, flags: u32, first: bool) -> Result<ReplyAttrs> {
        let f: &[u8] = if first { b"0" } else { b"1" };
        self.request("sequence", table, Some(flags), &[("function", f)])
    }
}
