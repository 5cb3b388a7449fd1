//! Settings: where to listen, which tables each service may open, which
//! dialect to greet in, limits and logging. Built either from a Postfix
//! configuration directory (`postfix`) or from our own TOML file
//! ([`toml_file`]); both produce the same [`Settings`]. Bad configuration is
//! an error that names the file, the key and what to fix.

pub(crate) mod main_cf;
pub(crate) mod postfix;
pub mod toml_file;

use crate::allowlist::Allowlists;
use crate::codec::Greeting;
use crate::server::ConnectionSettings;
use std::path::PathBuf;

/// Why settings could not be loaded. Each variant carries what the operator
/// must fix: the file, and the key, parameter or line at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The TOML configuration file cannot be read.
    #[error("cannot read configuration file {}", file.display())]
    ReadFile {
        /// The configuration file.
        file: PathBuf,
        /// Why reading it failed.
        #[source]
        source: std::io::Error,
    },
    /// The TOML file does not parse, or names a key proxymapd does not know.
    #[error("{}: {message}", file.display())]
    Syntax {
        /// The configuration file.
        file: PathBuf,
        /// The line at fault (1-based), when the parser knows it.
        line: Option<usize>,
        /// The parser's message, which quotes the line.
        message: String,
    },
    /// A key of the TOML file has a value proxymapd cannot use.
    #[error("{}: key `{key}`: {problem}", file.display())]
    BadValue {
        /// The configuration file.
        file: PathBuf,
        /// The key at fault.
        key: &'static str,
        /// What is wrong with its value, and what to use instead.
        problem: String,
    },
    /// The TOML file says neither where the sockets are nor where the queue is.
    #[error(
        "{}: set `queue_directory` or `proxymap_socket` so proxymapd knows where to listen",
        file.display()
    )]
    NoSocket {
        /// The configuration file.
        file: PathBuf,
    },
    /// The Postfix configuration directory has no main.cf.
    #[error(
        "{} does not exist: --postfix-config must name a Postfix configuration directory",
        main_cf.display()
    )]
    NoMainCf {
        /// The main.cf that is missing.
        main_cf: PathBuf,
    },
    /// A main.cf parameter that must be an absolute path is not one.
    #[error("{}: {parameter} must be an absolute path", main_cf.display())]
    NotAbsolute {
        /// The main.cf.
        main_cf: PathBuf,
        /// The parameter at fault.
        parameter: &'static str,
    },
    /// A master(8) child needs postconf and none was found.
    #[error(
        "postconf not found in PATH, /usr/sbin or /usr/local/sbin; under master(8) \
         proxymapd reads main.cf through postconf"
    )]
    NoPostconf,
    /// `postconf` is installed but cannot be run.
    #[error("cannot run postconf")]
    RunPostconf(#[source] std::io::Error),
    /// `postconf` rejected the configuration directory.
    #[error("postconf -c {} failed: {stderr}", dir.display())]
    Postconf {
        /// The Postfix configuration directory.
        dir: PathBuf,
        /// What postconf said (it names the file and line at fault).
        stderr: String,
    },
    /// main.cf cannot be read (without postconf).
    #[error("cannot read {}", main_cf.display())]
    ReadMainCf {
        /// The main.cf.
        main_cf: PathBuf,
        /// Why reading it failed.
        #[source]
        source: std::io::Error,
    },
}

/// Where the settings came from, for reloads and messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// A Postfix configuration directory (main.cf).
    Postfix(PathBuf),
    /// A proxymapd TOML file.
    Toml(PathBuf),
}

impl ConfigSource {
    /// Load (or reload) the settings from this source.
    pub fn load(&self) -> Result<Settings, ConfigError> {
        match self {
            ConfigSource::Postfix(dir) => postfix::load(dir),
            ConfigSource::Toml(file) => toml_file::load(file),
        }
    }

    /// Load settings from the Postfix configuration directory `dir` as a
    /// daemon under master(8) sees them: with its `-o name=value` overrides,
    /// and through postconf only.
    pub fn load_postfix_daemon(
        dir: &std::path::Path,
        overrides: &[(String, String)],
    ) -> Result<Settings, ConfigError> {
        postfix::load_with(dir, overrides, true)
    }

    /// The files whose change means the configuration changed: main.cf,
    /// or the TOML file.
    pub fn files(&self) -> Vec<PathBuf> {
        match self {
            ConfigSource::Postfix(dir) => vec![dir.join("main.cf")],
            ConfigSource::Toml(file) => vec![file.clone()],
        }
    }
}

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The source these settings were read from.
    pub source: ConfigSource,
    /// Socket of the read-only `proxymap` service.
    pub proxymap_socket: PathBuf,
    /// Socket of the read-write `proxywrite` service, if it is served.
    pub proxywrite_socket: Option<PathBuf>,
    /// `proxy_read_maps`, `$parameter`-expanded, Postfix list syntax.
    pub proxy_read_maps: String,
    /// `proxy_write_maps`, likewise.
    pub proxy_write_maps: String,
    /// Connection behaviour (greeting, limits, deadlines).
    pub connection: ConnectionSettings,
    /// Full Unicode key folding (Postfix's `smtputf8_enable`).
    pub utf8: bool,
    /// Log filter (`error`, `warn`, `info`, `debug`, `trace`).
    pub log_level: String,
    /// Operator plugin directories, searched before the shipped ones.
    pub plugin_dirs: Vec<PathBuf>,
    /// Where compiled plugins are cached (`None`: the default location).
    pub plugin_cache_dir: Option<PathBuf>,
    /// Map types served by their WebAssembly plugin instead of the native
    /// reader in the host (for example `hash`, `btree`).
    pub sandboxed_map_types: Vec<String>,
    /// Connections per database server that the SQL tables naming it
    /// share.
    pub sql_pool_size: usize,
    /// Postfix parameters as postconf reported them (`mail_owner`,
    /// `max_idle`, `syslog_name`, …); empty for a TOML configuration.
    pub postfix_parameters: std::collections::HashMap<String, String>,
}

/// The operator's default plugin directory.
pub(crate) const OPERATOR_PLUGIN_DIR: &str = "/etc/proxymapd/plugins";

/// The default compiled-plugin cache.
pub(crate) const DEFAULT_CACHE_DIR: &str = "/var/cache/proxymapd";

impl Settings {
    /// Plugin directories in search order: the configured ones, the
    /// operator's default directory, then the plugins shipped with this
    /// binary (`plugins/` beside it, or `../lib/proxymapd/plugins`).
    pub fn plugin_search_path(&self) -> Vec<PathBuf> {
        let mut dirs = self.plugin_dirs.clone();
        dirs.push(PathBuf::from(OPERATOR_PLUGIN_DIR));
        if let Some(exe_dir) = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(|p| p.to_path_buf()))
        {
            dirs.push(exe_dir.join("plugins"));
            dirs.push(exe_dir.join("../lib/proxymapd/plugins"));
        }
        dirs
    }

    /// The compiled-plugin cache directory: configured, `PROXYMAPD_CACHE_DIR`,
    /// or the default.
    pub fn cache_dir(&self) -> PathBuf {
        self.plugin_cache_dir
            .clone()
            .or_else(|| std::env::var_os("PROXYMAPD_CACHE_DIR").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CACHE_DIR))
    }
}

impl Settings {
    /// A Postfix parameter's value, if the settings came from main.cf.
    pub fn postfix_parameter(&self, name: &str) -> Option<&str> {
        self.postfix_parameters.get(name).map(String::as_str)
    }

    /// The approved tables of both services.
    pub fn allowlists(&self) -> Allowlists {
        Allowlists {
            read: crate::allowlist::Allowlist::parse(&self.proxy_read_maps),
            write: crate::allowlist::Allowlist::parse(&self.proxy_write_maps),
        }
    }
}

/// Where Postfix's usual `command_directory` puts postconf; tried after
/// `PATH`, which master(8) and some service managers do not set.
const POSTCONF_FALLBACKS: [&str; 2] = ["/usr/sbin/postconf", "/usr/local/sbin/postconf"];

/// The postconf program: the first on `PATH`, else one in Postfix's usual
/// command directories; `None` when Postfix is not installed.
pub(crate) fn postconf_program() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("postconf"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        POSTCONF_FALLBACKS
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
    })
}

/// The greeting for the installed Postfix: from `postconf -h mail_version`
/// when Postfix is installed, else the 3.6+ greeting.
pub(crate) fn installed_postfix_greeting() -> Greeting {
    let Some(postconf) = postconf_program() else {
        return Greeting::Proxymap;
    };
    std::process::Command::new(postconf)
        .args(["-dh", "mail_version"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| Greeting::for_mail_version(&String::from_utf8_lossy(&o.stdout)))
        .unwrap_or(Greeting::Proxymap)
}

/// A Postfix time value (`max_idle = 100s`) in seconds: a number with an
/// optional unit (s, m, h, d, w); seconds when there is none.
pub fn time_value(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => text.split_at(at),
        None => (text, "s"),
    };
    let bad = || format!("bad time value: {text}");
    let number: u64 = number.parse().map_err(|_| bad())?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        "w" => 604800,
        _ => return Err(bad()),
    };
    Ok(number * scale)
}

#[cfg(test)]
mod time_tests {
    use super::time_value;

    #[test]
    fn time_values_take_postfix_units() {
        assert_eq!(time_value("100s").unwrap(), 100);
        assert_eq!(time_value("3").unwrap(), 3);
        assert_eq!(time_value("2m").unwrap(), 120);
        assert!(time_value("x").is_err());
        assert!(time_value("5y").is_err());
    }
}
