//! One client connection: greet, then read frames and answer them strictly in
//! order (Postfix clients never pipeline, but pipelined frames are answered
//! in order too). A started request must arrive whole within the request
//! deadline, counted from its first byte (Postfix gives it 1 s); each read and
//! each reply write is also bounded by the request timeout. Idle connections
//! close after the idle timeout; on shutdown the connection closes once no
//! request is in flight. A client that hangs up while its request is being
//! answered abandons it: a wait for a table's turn ends at once, and work
//! already running finishes within its table's bounds.

use super::request_memory::Charge;
use super::ConnectionSettings;
use super::Service;
use crate::codec::attr::Decoded;
use crate::codec::{request, FrameDecoder, Reply, Status};
use crate::handler::Handler;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::watch;
use tokio::time::{timeout, timeout_at, Instant};
use tracing::Instrument;

/// Serve one connection until the client closes it, it times out, or the
/// server shuts down.
pub(crate) async fn serve(
    mut stream: UnixStream,
    service: Service,
    handler: Arc<Handler>,
    settings: ConnectionSettings,
    mut shutdown: watch::Receiver<bool>,
    mut charge: Charge,
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
    // When the request being received must be complete; `None` while idle.
    let mut deadline: Option<Instant> = None;
    loop {
        // Answer every complete frame already received.
        let mut offset = 0;
        while offset < pending.len() {
            let (used, decoded) = decoder.feed(&pending[offset..]);
            offset += used;
            let Some(decoded) = decoded else { break };
            // Bytes after this frame start the next request now.
            deadline = None;
            let parsed = match decoded {
                Decoded::Frame(frame) => Ok(request::parse(&frame)),
                Decoded::Oversized { frame, overflows } => {
                    Ok(request::parse_oversized(&frame, &overflows))
                }
                Decoded::Malformed(err) => Err(err),
            };
            let reply = match parsed {
                Ok(Ok(req)) => {
                    let span =
                        tracing::debug_span!("request", kind = req.kind.name(), table = %req.table);
                    let work = handler.handle(service, req).instrument(span);
                    match unless_client_gone(work, &stream, &mut pending).await {
                        Some(reply) => reply,
                        None => {
                            tracing::debug!("client hung up; its request is abandoned");
                            return;
                        }
                    }
                }
                Ok(Err(err)) => handler.reject(&err),
                Err(err) => {
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
        let holding = decoder.buffered() + pending.len();
        if !charge.hold(holding) {
            crate::warn_limited!(
                "request memory",
                "{} client: unfinished requests of all clients hold more than max_request_memory; closing this one, which holds {holding} bytes",
                service.name()
            );
            return;
        }
        let idle = decoder.is_idle() && pending.is_empty();
        if idle {
            deadline = None;
            if *shutdown.borrow() {
                return;
            }
        } else if deadline.is_none() {
            // Unanswered bytes remain after a reply: a new request started.
            deadline = Some(Instant::now() + settings.request_deadline);
        }
        let now = Instant::now();
        let wait_until = match deadline {
            None => now + settings.idle_timeout,
            Some(d) if now >= d => {
                deadline_passed(service, &settings);
                return;
            }
            Some(d) => d.min(now + settings.request_timeout),
        };
        let read = tokio::select! {
            r = timeout_at(wait_until, stream.read(&mut buf)) => r,
            _ = shutdown.changed(), if idle => continue,
        };
        match read {
            Ok(Ok(0)) => return,
            Ok(Ok(n)) => {
                if idle {
                    // The first byte of a request: its deadline starts now.
                    deadline = Some(Instant::now() + settings.request_deadline);
                }
                pending.extend_from_slice(&buf[..n]);
            }
            Ok(Err(e)) => {
                tracing::debug!("read failed: {e}");
                return;
            }
            Err(_) => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    deadline_passed(service, &settings);
                } else if !idle {
                    tracing::warn!("timeout receiving request from {} client", service.name());
                }
                return;
            }
        }
    }
}

/// Await `work` unless the client hangs up first (`None`). Bytes the client
/// sends meanwhile (a pipelined request) are kept in `pending`; a client that
/// only shut down its sending side still gets its answer.
async fn unless_client_gone<T>(
    work: impl std::future::Future<Output = T>,
    stream: &UnixStream,
    pending: &mut Vec<u8>,
) -> Option<T> {
    tokio::pin!(work);
    let mut chunk = [0u8; 4096];
    let mut half_closed = false;
    loop {
        tokio::select! {
            biased;
            reply = &mut work => return Some(reply),
            ready = stream.readable(), if !half_closed => {
                if ready.is_err() {
                    return None;
                }
                match stream.try_read(&mut chunk) {
                    Ok(0) if hung_up(stream) => return None,
                    Ok(0) => half_closed = true,
                    Ok(n) => pending.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => return None,
                }
            }
        }
    }
}

/// True when the peer closed both directions (it can no longer read a
/// reply), as opposed to shutting down only its sending side.
fn hung_up(stream: &UnixStream) -> bool {
    let mut poll = libc::pollfd {
        fd: std::os::fd::AsRawFd::as_raw_fd(stream),
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid pollfd; a zero timeout never blocks.
    let ready = unsafe { libc::poll(&mut poll, 1, 0) };
    ready > 0 && poll.revents & (libc::POLLHUP | libc::POLLERR) != 0
}

/// Log the one warning for a request that missed its deadline.
fn deadline_passed(service: Service, settings: &ConnectionSettings) {
    tracing::warn!(
        "{} client did not send a whole request within {:?} of its first byte; closing the connection",
        service.name(),
        settings.request_deadline
    );
}
