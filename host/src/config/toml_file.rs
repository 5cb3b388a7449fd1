//! proxymapd's own TOML configuration. Unknown keys and bad values stop
//! startup with a message naming the file, the key and the problem.
//! `$config_dir` in table lists and paths expands to the file's directory,
//! so a configuration can ship with its tables.
//!
//! ```toml
//! queue_directory = "/var/spool/postfix"     # sockets: $queue_directory/private/{proxymap,proxywrite}
//! # proxymap_socket = "/path/proxymap"       # or name each socket
//! # proxywrite_socket = "/path/proxywrite"   # "" disables the write service
//! proxy_read_maps = "proxy:texthash:$config_dir/tables/virtual"
//! proxy_write_maps = "proxy:lmdb:$config_dir/tables/cache"
//! greeting = "auto"          # auto | none (Postfix 3.0-3.5) | proxymap (3.6+)
//! smtputf8 = false           # full Unicode key folding
//! request_timeout = 10       # seconds per read of a request and per reply write
//! request_deadline = 1       # seconds from a request's first byte to its last
//! idle_timeout = 3600        # seconds
//! max_string = 1048576       # bytes per request attribute (longer keys: NOKEY)
//! max_frame = 2162688        # bytes per request (default: 2 × max_string + 64 KiB)
//! max_attrs = 64             # attributes per request
//! # max_connections = 7680   # concurrent clients (default: open-files limit less a reserve)
//! # max_request_memory = 268435456  # bytes of unfinished requests, all clients together
//! log_level = "info"
//! plugin_dirs = ["/etc/proxymapd/plugins"]   # searched before the shipped plugins
//! plugin_cache_dir = "/var/cache/proxymapd"  # compiled plugins
//! sandboxed_map_types = ["hash"]  # serve these by their plugin, not natively
//! sql_pool_size = 4          # connections per database server, shared by its SQL tables
//! ```

use super::{installed_postfix_greeting, ConfigError, ConfigSource, Settings};
use crate::codec::{Greeting, Limits};
use crate::server::ConnectionSettings;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

type Result<T, E = ConfigError> = std::result::Result<T, E>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlConfig {
    queue_directory: Option<String>,
    proxymap_socket: Option<String>,
    proxywrite_socket: Option<String>,
    #[serde(default)]
    proxy_read_maps: String,
    #[serde(default)]
    proxy_write_maps: String,
    #[serde(default = "default_greeting")]
    greeting: String,
    #[serde(default)]
    smtputf8: bool,
    #[serde(default = "default_request_timeout")]
    request_timeout: u64,
    #[serde(default = "default_request_deadline")]
    request_deadline: f64,
    #[serde(default = "default_idle_timeout")]
    idle_timeout: u64,
    #[serde(default = "default_max_string")]
    max_string: usize,
    max_frame: Option<usize>,
    #[serde(default = "default_max_attrs")]
    max_attrs: usize,
    max_connections: Option<usize>,
    max_request_memory: Option<usize>,
    #[serde(default = "default_log_level")]
    log_level: String,
    #[serde(default)]
    plugin_dirs: Vec<String>,
    plugin_cache_dir: Option<String>,
    #[serde(default)]
    sandboxed_map_types: Vec<String>,
    #[serde(default = "default_sql_pool_size")]
    sql_pool_size: usize,
}

fn default_sql_pool_size() -> usize {
    crate::sql::DEFAULT_POOL_SIZE
}

fn default_greeting() -> String {
    "auto".into()
}
fn default_request_timeout() -> u64 {
    10
}
fn default_request_deadline() -> f64 {
    ConnectionSettings::default().request_deadline.as_secs_f64()
}
fn default_idle_timeout() -> u64 {
    3600
}
fn default_max_string() -> usize {
    Limits::default().max_string
}
fn default_max_attrs() -> usize {
    Limits::default().max_attrs
}
fn default_log_level() -> String {
    "info".into()
}

/// Load settings from a TOML file.
pub fn load(file: &Path) -> Result<Settings> {
    let text = std::fs::read_to_string(file).map_err(|source| ConfigError::ReadFile {
        file: file.to_path_buf(),
        source,
    })?;
    let dir = file
        .canonicalize()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    parse(&text, file, &dir)
}

/// The 1-based line holding byte `offset` of `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let before = &text.as_bytes()[..offset.min(text.len())];
    before.iter().filter(|&&b| b == b'\n').count() + 1
}

/// Parse TOML text; `file` names it in errors, `dir` is `$config_dir`.
pub(crate) fn parse(text: &str, file: &Path, dir: &Path) -> Result<Settings> {
    let cfg: TomlConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
        file: file.to_path_buf(),
        line: e.span().map(|span| line_of(text, span.start)),
        message: e.to_string().trim_end().to_string(),
    })?;
    let expand = |s: &str| s.replace("$config_dir", &dir.to_string_lossy());
    let bad = |key: &'static str, problem: String| ConfigError::BadValue {
        file: file.to_path_buf(),
        key,
        problem,
    };
    let greeting = match cfg.greeting.as_str() {
        "auto" => installed_postfix_greeting(),
        "none" => Greeting::None,
        "proxymap" => Greeting::Proxymap,
        other => {
            return Err(bad(
                "greeting",
                format!("unknown value \"{other}\"; use \"auto\", \"none\" or \"proxymap\""),
            ))
        }
    };
    let queue = cfg
        .queue_directory
        .as_deref()
        .map(|q| PathBuf::from(expand(q)));
    let proxymap_socket = match (&cfg.proxymap_socket, &queue) {
        (Some(p), _) => PathBuf::from(expand(p)),
        (None, Some(q)) => q.join("private/proxymap"),
        (None, None) => {
            return Err(ConfigError::NoSocket {
                file: file.to_path_buf(),
            })
        }
    };
    let proxywrite_socket = match (&cfg.proxywrite_socket, &queue) {
        (Some(p), _) if p.is_empty() => None,
        (Some(p), _) => Some(PathBuf::from(expand(p))),
        (None, Some(q)) => Some(q.join("private/proxywrite")),
        (None, None) => None,
    };
    if cfg.request_timeout == 0 {
        return Err(bad("request_timeout", "must be at least 1 second".into()));
    }
    if !(0.01..=3600.0).contains(&cfg.request_deadline) {
        return Err(bad(
            "request_deadline",
            format!(
                "{} is out of range; use 0.01 to 3600 seconds",
                cfg.request_deadline
            ),
        ));
    }
    if cfg.idle_timeout == 0 {
        return Err(bad("idle_timeout", "must be at least 1 second".into()));
    }
    if cfg.max_connections == Some(0) {
        return Err(bad("max_connections", "must be at least 1".into()));
    }
    if cfg.max_string < 256 {
        return Err(bad(
            "max_string",
            format!("{} is too small; use at least 256", cfg.max_string),
        ));
    }
    let mut limits = Limits::for_max_string(cfg.max_string);
    if let Some(max_frame) = cfg.max_frame {
        if max_frame < cfg.max_string {
            return Err(bad(
                "max_frame",
                format!(
                    "{max_frame} is smaller than max_string ({}); use at least that",
                    cfg.max_string
                ),
            ));
        }
        limits.max_frame = max_frame;
    }
    limits.max_attrs = cfg.max_attrs;
    if cfg.max_attrs < 8 {
        return Err(bad(
            "max_attrs",
            format!("{} is too small; use at least 8", cfg.max_attrs),
        ));
    }
    if !["error", "warn", "info", "debug", "trace"].contains(&cfg.log_level.as_str()) {
        return Err(bad(
            "log_level",
            format!(
                "unknown level \"{}\"; use error, warn, info, debug or trace",
                cfg.log_level
            ),
        ));
    }
    if cfg.sql_pool_size == 0 {
        return Err(bad("sql_pool_size", "must be at least 1".into()));
    }
    for t in &cfg.sandboxed_map_types {
        if t.is_empty()
            || !t
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(bad(
                "sandboxed_map_types",
                format!("\"{t}\" is not a map type name"),
            ));
        }
    }
    Ok(Settings {
        source: ConfigSource::Toml(file.to_path_buf()),
        proxymap_socket,
        proxywrite_socket,
        proxy_read_maps: expand(&cfg.proxy_read_maps),
        proxy_write_maps: expand(&cfg.proxy_write_maps),
        connection: ConnectionSettings {
            greeting,
            limits,
            request_timeout: Duration::from_secs(cfg.request_timeout),
            request_deadline: Duration::from_secs_f64(cfg.request_deadline),
            idle_timeout: Duration::from_secs(cfg.idle_timeout),
            max_connections: cfg.max_connections,
            max_request_memory: cfg
                .max_request_memory
                .unwrap_or(ConnectionSettings::default().max_request_memory),
        },
        utf8: cfg.smtputf8,
        log_level: cfg.log_level,
        plugin_dirs: cfg
            .plugin_dirs
            .iter()
            .map(|d| PathBuf::from(expand(d)))
            .collect(),
        plugin_cache_dir: cfg
            .plugin_cache_dir
            .as_deref()
            .map(|d| PathBuf::from(expand(d))),
        sandboxed_map_types: cfg.sandboxed_map_types,
        sql_pool_size: cfg.sql_pool_size,
        postfix_parameters: Default::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn try_parse(text: &str) -> Result<Settings> {
        parse(text, Path::new("/etc/proxymapd.toml"), Path::new("/etc"))
    }

    #[test]
    fn expands_and_defaults() {
        let s = try_parse(
            "queue_directory = \"/q\"\nproxy_read_maps = \"proxy:texthash:$config_dir/t\"\ngreeting = \"none\"",
        )
        .unwrap();
        assert_eq!(s.proxymap_socket, PathBuf::from("/q/private/proxymap"));
        assert_eq!(
            s.proxywrite_socket,
            Some(PathBuf::from("/q/private/proxywrite"))
        );
        assert_eq!(s.proxy_read_maps, "proxy:texthash:/etc/t");
        assert_eq!(s.connection.greeting, Greeting::None);
        assert_eq!(s.connection.limits, Limits::default());
        assert_eq!(s.connection.request_deadline, Duration::from_secs(1));
    }

    #[test]
    fn limits_and_deadline_are_configurable() {
        let s = try_parse(
            "queue_directory = \"/q\"\nmax_string = 1000\nmax_frame = 5000\nrequest_deadline = 0.5",
        )
        .unwrap();
        let limits = s.connection.limits;
        assert_eq!((limits.max_string, limits.max_frame), (1000, 5000));
        assert_eq!(s.connection.request_deadline, Duration::from_millis(500));
        let s =
            try_parse("queue_directory = \"/q\"\nmax_string = 1000\nrequest_deadline = 3").unwrap();
        assert_eq!(s.connection.limits.max_frame, 2000 + 64 * 1024);
        assert_eq!(s.connection.request_deadline, Duration::from_secs(3));
        let e = try_parse("queue_directory = \"/q\"\nmax_string = 1000\nmax_frame = 999")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`max_frame`"), "{e}");
        let e = try_parse("queue_directory = \"/q\"\nrequest_deadline = 0")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`request_deadline`"), "{e}");
    }

    #[test]
    fn errors_name_file_key_and_problem() {
        let e = try_parse("queue_directory = \"/q\"\nproxy_read_map = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/etc/proxymapd.toml") && e.contains("proxy_read_map"),
            "{e}"
        );
        let e = try_parse("queue_directory = \"/q\"\ngreeting = \"old\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`greeting`") && e.contains("\"old\""), "{e}");
        let e = try_parse("queue_directory = \"/q\"\nrequest_timeout = \"ten\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("request_timeout"), "{e}");
        let e = try_parse("proxy_read_maps = \"\"").unwrap_err().to_string();
        assert!(e.contains("queue_directory"), "{e}");
    }

    #[test]
    fn syntax_errors_carry_the_line() {
        match try_parse("queue_directory = \"/q\"\nproxy_read_map = \"x\"") {
            Err(ConfigError::Syntax { line, .. }) => assert_eq!(line, Some(2)),
            other => panic!("{other:?}"),
        }
    }
}
