//! Log output in Postfix's style, through `tracing`. Errors read `error:`,
//! warnings `warning:`, info has no prefix, debug and trace read `debug:`.
//! Run by hand, proxymapd writes `proxymapd[PID]: warning: text` to standard
//! error ([`init`]). Run by master(8), where standard error is /dev/null, it
//! logs as a Postfix daemon does ([`init_daemon`]): one datagram per record
//! to postlogd (`$POSTLOG_SERVICE`, when `maillog_file` is set), in the
//! text postlogd writes to the file as is, or to syslog under the daemon's
//! tag and facility.

use std::fmt;
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::Arc;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

/// The target of error events that end the process: they read `fatal:`
/// (`tracing::error!(target: "fatal", ...)`).
pub const FATAL: &str = "fatal";

/// Formats events as Postfix log lines: `TAG[PID]: severity: text`.
pub(crate) struct PostfixFormat {
    program: String,
}

impl<S, N> FormatEvent<S, N> for PostfixFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(writer, "{}[{}]: ", self.program, std::process::id())?;
        if event.metadata().target() == FATAL {
            write!(writer, "fatal: ")?;
            ctx.field_format().format_fields(writer.by_ref(), event)?;
            return writeln!(writer);
        }
        match *event.metadata().level() {
            Level::ERROR => write!(writer, "error: ")?,
            Level::WARN => write!(writer, "warning: ")?,
            Level::INFO => {}
            Level::DEBUG | Level::TRACE => write!(writer, "debug: ")?,
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

fn filter(level: &str) -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_env("PROXYMAPD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level))
}

/// Install the global subscriber; `level` is an env-filter directive such
/// as `info` (the `PROXYMAPD_LOG` environment variable overrides it).
pub fn init(level: &str) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter(level))
        .with_writer(std::io::stderr)
        .event_format(PostfixFormat {
            program: "proxymapd".into(),
        })
        .try_init();
}

/// Where a daemon's log records go.
#[derive(Debug, Clone)]
pub enum DaemonLog {
    /// postlogd's datagram socket (`$POSTLOG_SERVICE`), with the host name
    /// to write (`$POSTLOG_HOSTNAME`, its first label).
    Postlog {
        /// The socket.
        socket: PathBuf,
        /// The host name written in each record.
        hostname: String,
    },
    /// syslog (`/dev/log`), with the facility number (`mail` is 2).
    Syslog {
        /// The facility, as in syslog.h divided by 8.
        facility: u8,
    },
}

impl DaemonLog {
    /// postlogd when master(8) says so in the environment, else syslog
    /// with `facility` (a `syslog_facility` name).
    pub fn from_environment(facility: &str) -> DaemonLog {
        match std::env::var_os("POSTLOG_SERVICE") {
            Some(socket) if !socket.is_empty() => DaemonLog::Postlog {
                socket: PathBuf::from(socket),
                hostname: std::env::var("POSTLOG_HOSTNAME")
                    .ok()
                    .and_then(|h| h.split('.').next().map(str::to_string))
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(short_hostname),
            },
            _ => DaemonLog::Syslog {
                facility: facility_number(facility).unwrap_or(2),
            },
        }
    }
}

/// syslog's facility names and numbers.
pub fn facility_number(name: &str) -> Option<u8> {
    let names = [
        ("kern", 0),
        ("user", 1),
        ("mail", 2),
        ("daemon", 3),
        ("auth", 4),
        ("syslog", 5),
        ("lpr", 6),
        ("news", 7),
        ("uucp", 8),
        ("cron", 9),
        ("authpriv", 10),
        ("ftp", 11),
        ("local0", 16),
        ("local1", 17),
        ("local2", 18),
        ("local3", 19),
        ("local4", 20),
        ("local5", 21),
        ("local6", 22),
        ("local7", 23),
    ];
    let name = name.to_ascii_lowercase();
    names.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

fn short_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer and its length match.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).into_owned();
    name.split('.').next().unwrap_or("localhost").to_string()
}

/// `Mmm dd HH:MM:SS` in local time, as Postfix's logger writes it.
fn timestamp() -> String {
    // SAFETY: time, localtime_r and strftime get valid pointers and the
    // buffer's length.
    unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&now, &mut tm);
        let mut buf = [0u8; 64];
        let n = libc::strftime(
            buf.as_mut_ptr().cast(),
            buf.len(),
            c"%b %d %H:%M:%S".as_ptr(),
            &tm,
        );
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

/// The shared state of a daemon's log writer.
struct DaemonSink {
    target: DaemonLog,
    /// The syslog facility once the configuration is read (0 = as
    /// `target` says).
    facility: std::sync::atomic::AtomicU8,
    socket: Option<UnixDatagram>,
    also_stderr: bool,
}

impl DaemonSink {
    /// Send one formatted line (`TAG[PID]: text\n`) at `level`.
    fn send(&self, level: Level, line: &[u8]) {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        if self.also_stderr {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(line);
            let _ = err.write_all(b"\n");
        }
        let Some(socket) = &self.socket else {
            return;
        };
        let text = String::from_utf8_lossy(line);
        let (record, to) = match &self.target {
            DaemonLog::Postlog { socket, hostname } => {
                (format!("{} {hostname} {text}", timestamp()), socket.clone())
            }
            DaemonLog::Syslog { facility } => {
                let configured = self.facility.load(std::sync::atomic::Ordering::Relaxed);
                let facility = if configured > 0 {
                    &configured
                } else {
                    facility
                };
                let severity = match level {
                    Level::ERROR => 3,
                    Level::WARN => 4,
                    Level::INFO => 6,
                    Level::DEBUG | Level::TRACE => 7,
                };
                let priority = u32::from(*facility) * 8 + severity;
                (
                    format!("<{priority}>{} {text}", timestamp()),
                    PathBuf::from("/dev/log"),
                )
            }
        };
        let _ = socket.send_to(record.as_bytes(), &to);
    }
}

/// One record being formatted; sent when dropped.
pub(crate) struct DaemonRecord {
    sink: Arc<DaemonSink>,
    level: Level,
    text: Vec<u8>,
}

impl Write for DaemonRecord {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.text.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for DaemonRecord {
    fn drop(&mut self) {
        if !self.text.is_empty() {
            self.sink.send(self.level, &self.text);
        }
    }
}

/// Makes one [`DaemonRecord`] per event.
#[derive(Clone)]
pub(crate) struct DaemonWriter(Arc<DaemonSink>);

impl<'a> MakeWriter<'a> for DaemonWriter {
    type Writer = DaemonRecord;

    fn make_writer(&'a self) -> DaemonRecord {
        DaemonRecord {
            sink: self.0.clone(),
            level: Level::INFO,
            text: Vec::with_capacity(256),
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> DaemonRecord {
        DaemonRecord {
            sink: self.0.clone(),
            level: *meta.level(),
            text: Vec::with_capacity(256),
        }
    }
}

static DAEMON_SINK: std::sync::OnceLock<Arc<DaemonSink>> = std::sync::OnceLock::new();

/// Use main.cf's `syslog_facility` from now on (logging starts before the
/// configuration is read, with `mail`). Unknown names are reported.
pub fn set_daemon_facility(name: &str) -> Result<(), String> {
    let number = facility_number(name).ok_or_else(|| format!("unknown syslog_facility: {name}"))?;
    if let Some(sink) = DAEMON_SINK.get() {
        // `kern` (0) cannot be chosen this way; Postfix does not allow it.
        sink.facility
            .store(number.max(1), std::sync::atomic::Ordering::Relaxed);
    }
    Ok(())
}

/// Log as a Postfix daemon: records tagged `tag` (`postfix/proxymapd`) go
/// to `target`, and to standard error as well when `also_stderr` (`-V`).
pub fn init_daemon(level: &str, tag: &str, target: DaemonLog, also_stderr: bool) {
    let socket = UnixDatagram::unbound().ok();
    let sink = Arc::new(DaemonSink {
        target,
        facility: Default::default(),
        socket,
        also_stderr,
    });
    let _ = DAEMON_SINK.set(sink.clone());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter(level))
        .with_writer(DaemonWriter(sink))
        .event_format(PostfixFormat {
            program: tag.to_string(),
        })
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_postlog_record_is_what_postlogd_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("postlog");
        let receiver = UnixDatagram::bind(&path).unwrap();
        let sink = DaemonSink {
            target: DaemonLog::Postlog {
                socket: path.clone(),
                hostname: "mx1".into(),
            },
            facility: Default::default(),
            socket: UnixDatagram::unbound().ok(),
            also_stderr: false,
        };
        sink.send(Level::WARN, b"postfix/proxymapd[7]: warning: text\n");
        let mut buf = [0u8; 512];
        let n = receiver.recv(&mut buf).unwrap();
        let got = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(
            got.ends_with(" mx1 postfix/proxymapd[7]: warning: text"),
            "{got:?}"
        );
        // "Mmm dd HH:MM:SS " in front.
        assert_eq!(got.find(" mx1 "), Some(15), "{got:?}");
        assert_eq!(facility_number("LOCAL3"), Some(19));
        assert_eq!(facility_number("nope"), None);
    }
}
