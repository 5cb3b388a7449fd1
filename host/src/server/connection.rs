//! One client connection: greet, then read frames and answer them strictly in
//! order (Postfix clients never pipeline, but pipelined frames are answered
//! in order too). A started request must complete within the request
//! deadline; idle connections close after the idle timeout; on shutdown the
//! connection closes once no request is in flight.

use super::ConnectionSettings;
use crate::codec::attr::Decoded;
use crate::codec::{request, FrameDecoder, Reply, Status};
use crate::handler::{Handler, Service};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::watch;
use tokio::time::timeout;

/// Serve one connection until the client closes it, it times out, or the
/// server shuts down.
pub async fn serve(
    mut stream: UnixStream,
    service: Service,
    handler: Arc<Handler>,
    settings: ConnectionSettings,
    mut shutdown: watch::Receiver<bool>,
) {
    let greeting = settings.greeting.bytes();
    if !greeting.is_empty() {
        if let Err(e) = timeout(settings.request_timeout, stream.write_all(&greeting)).await {
            tracing::debug!("greeting not sent: {e}");
            return;
        }
    }
    let mut decoder = FrameDecoder::new(settings.limits);
    let mut buf = vec![0u8; 16 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    loop {
        // Answer every complete frame already received.
        let mut offset = 0;
        while offset < pending.len() {
            let (used, decoded) = decoder.feed(&pending[offset..]);
            offset += used;
            let Some(decoded) = decoded else { break };
            let reply = match decoded {
                Decoded::Frame(frame) => match request::parse(&frame) {
                    Ok(req) => {
                        let span = tracing::debug_span!("request", kind = req.kind.name(), table = %req.table);
                        let _enter = span.enter();
                        handler.handle(service, req).await
                    }
                    Err(err) => handler.reject(&err),
                },
                Decoded::Malformed(err) => {
                    crate::warn_limited!("malformed request", "malformed request: {err}");
                    Reply::status(None, false, Status::Bad)
                }
            };
            out.clear();
            reply.encode(&mut out);
            match timeout(settings.request_timeout, stream.write_all(&out)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::debug!("write failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::warn!("timeout sending reply to {} client", service.name());
                    return;
                }
            }
        }
        pending.drain(..offset);
        let idle = decoder.is_idle() && pending.is_empty();
        if idle && *shutdown.borrow() {
            return;
        }
        let wait = if idle {
            settings.idle_timeout
        } else {
            settings.request_timeout
        };
        let read = tokio::select! {
            r = timeout(wait, stream.read(&mut buf)) => r,
            _ = shutdown.changed(), if idle => continue,
        };
        match read {
            Ok(Ok(0)) => return,
            Ok(Ok(n)) => pending.extend_from_slice(&buf[..n]),
            Ok(Err(e)) => {
                tracing::debug!("read failed: {e}");
                return;
            }
            Err(_) => {
                if !idle {
                    tracing::warn!("timeout receiving request from {} client", service.name());
                }
                return;
            }
        }
    }
}
