//! The echo server: answers every request frame with one fixed, precomputed
//! lookup reply. No table, no parsing beyond finding where a frame ends: the
//! ceiling a proxymap server on this socket protocol and runtime can reach.

use anyhow::{Context, Result};
use proxymapd_codec::attr::{encode_attr, end_frame};
use proxymapd_codec::{FrameDecoder, Greeting, Limits};
use std::path::Path;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

/// The reply sent to every request.
pub fn fixed_reply() -> Vec<u8> {
    let mut out = Vec::new();
    encode_attr(&mut out, "status", b"0");
    encode_attr(&mut out, "value", b"value-from-echo");
    end_frame(&mut out);
    out
}

async fn serve(mut stream: UnixStream, greeting: Greeting) {
    let reply = fixed_reply();
    if stream.write_all(&greeting.bytes()).await.is_err() {
        return;
    }
    let mut decoder = FrameDecoder::new(Limits::default());
    let mut buf = vec![0u8; 16 * 1024];
    let mut out = Vec::new();
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mut at = 0;
        out.clear();
        while at < n {
            let (used, frame) = decoder.feed(&buf[at..n]);
            at += used;
            if frame.is_some() {
                out.extend_from_slice(&reply);
            }
        }
        if !out.is_empty() && stream.write_all(&out).await.is_err() {
            return;
        }
    }
}

/// Serve `socket` forever (until the process is killed).
pub async fn run(socket: &Path, greeting: Greeting) -> Result<()> {
    let _ = std::fs::remove_file(socket);
    let listener =
        UnixListener::bind(socket).with_context(|| format!("bind {}", socket.display()))?;
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(serve(stream, greeting));
    }
}
