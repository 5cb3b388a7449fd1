//! Log output in Postfix's style: `proxymapd[PID]: warning: text` on standard
//! error, through `tracing`. Errors read `error:`, warnings `warning:`, info
//! has no prefix, debug and trace read `debug:`.

use std::fmt;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::registry::LookupSpan;

/// Formats events as Postfix log lines.
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

/// Install the global subscriber; `level` is an env-filter directive such
/// as `info` (the `PROXYMAPD_LOG` environment variable overrides it).
pub fn init(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PROXYMAPD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .event_format(PostfixFormat {
            program: "proxymapd".into(),
        })
        .try_init();
}
