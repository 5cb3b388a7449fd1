//! The command line master(8) gives a Postfix daemon, parsed as Postfix's
//! own daemons parse it: `getopt("+cdDi:lm:n:o:s:St:uvVz")`, options first,
//! parsing stopping at the first argument that is not one. What is left are
//! proxymapd's own `name=value` settings. [`is_master_invocation`] tells a
//! master(8) command line from a `proxymapd SUBCOMMAND` one.

use crate::server::Service;
use std::path::PathBuf;

/// The option letters of Postfix's daemons; those followed by `:` take a
/// value.
const OPTSTRING: &str = "cdDi:lm:n:o:s:St:uvVz";

/// A daemon command line, as master(8) builds it from a master.cf line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DaemonOptions {
    /// `-n`: the master.cf service name.
    pub service_name: Option<String>,
    /// `-t`: the transport type (`unix` is the only one served).
    pub transport: Option<String>,
    /// `-u`: the unprivileged column is not `n`: run as `mail_owner`.
    pub unprivileged: bool,
    /// `-i`: seconds without a client before exiting (overrides `max_idle`).
    pub max_idle: Option<u64>,
    /// `-m`: closed connections before exiting (overrides `max_use`).
    pub max_use: Option<u64>,
    /// `-o name=value`: main.cf overrides, in order.
    pub overrides: Vec<(String, String)>,
    /// `-v`: how many times verbose logging was asked for.
    pub verbose: u32,
    /// `-V`: also log to standard error.
    pub log_to_stderr: bool,
    /// `-d`: master is not detached (no tty check).
    pub foreground: bool,
    /// `-S`: started by hand for a test (no tty check).
    pub stand_alone: bool,
    /// `-s`: how many listening descriptors from 6 on (default 1).
    pub listen_fds: usize,
    /// `-D`: run under a debugger (ignored, with a warning).
    pub debugger: bool,
    /// `-l` (maxproc 1) or `-z` (maxproc 0): informational.
    pub process_limit_hint: Option<char>,
    /// `role=read|write`: the service served, for a custom service name.
    pub role: Option<Service>,
    /// `config=FILE`: a proxymapd TOML file instead of main.cf.
    pub config: Option<PathBuf>,
    /// `plugin_dir=DIR`: extra plugin directories, searched first.
    pub plugin_dirs: Vec<PathBuf>,
}

/// What is wrong with a daemon command line; the text is Postfix's where
/// Postfix has one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OptionError {
    /// A letter that is not a daemon option.
    #[error("invalid option: {0}")]
    Invalid(char),
    /// An option that takes a value came last.
    #[error("option requires an argument -- '{0}'")]
    MissingValue(char),
    /// A numeric option with a non-numeric value.
    #[error("bad numerical value for -{option}: {value}")]
    BadNumber {
        /// The option letter.
        option: char,
        /// Its value.
        value: String,
    },
    /// `-o` without `=`.
    #[error("-o {0}: expected name=value")]
    BadOverride(String),
    /// `-c`: proxymapd does not chroot.
    #[error("chroot is not supported: set the chroot column of this service to n in master.cf")]
    Chroot,
    /// A positional argument proxymapd does not know.
    #[error(
        "unknown argument \"{0}\" (proxymapd takes role=read|write, config=FILE and \
         plugin_dir=DIR after the daemon options)"
    )]
    UnknownArgument(String),
    /// `role=` with another value.
    #[error("role={0}: expected role=read or role=write")]
    BadRole(String),
}

/// Whether `args` (without the program name) is a master(8) command line:
/// its first argument is a Postfix daemon option. `-V` alone stays the
/// `--version` of the subcommand interface.
pub fn is_master_invocation(args: &[String]) -> bool {
    let Some(first) = args.first() else {
        return false;
    };
    if args.len() == 1 && (first == "-V" || first == "-h") {
        return false;
    }
    let mut chars = first.chars();
    chars.next() == Some('-')
        && chars
            .next()
            .is_some_and(|c| c != '-' && OPTSTRING.contains(c) && c != ':')
}

/// Parse `args` (without the program name).
pub fn parse(args: &[String]) -> Result<DaemonOptions, OptionError> {
    let mut options = DaemonOptions {
        listen_fds: 1,
        ..DaemonOptions::default()
    };
    let mut at = 0;
    while at < args.len() {
        let arg = &args[at];
        if arg == "--" {
            at += 1;
            break;
        }
        if !arg.starts_with('-') || arg.len() < 2 {
            break;
        }
        at += 1;
        let letters: Vec<char> = arg[1..].chars().collect();
        let mut i = 0;
        while i < letters.len() {
            let letter = letters[i];
            i += 1;
            let takes_value = match OPTSTRING.find(letter) {
                Some(pos) if letter != ':' => OPTSTRING[pos + 1..].starts_with(':'),
                _ => return Err(OptionError::Invalid(letter)),
            };
            let value = if takes_value {
                let rest: String = letters[i..].iter().collect();
                i = letters.len();
                if !rest.is_empty() {
                    Some(rest)
                } else if at < args.len() {
                    at += 1;
                    Some(args[at - 1].clone())
                } else {
                    return Err(OptionError::MissingValue(letter));
                }
            } else {
                None
            };
            apply(&mut options, letter, value)?;
        }
    }
    for arg in &args[at..] {
        positional(&mut options, arg)?;
    }
    Ok(options)
}

fn number(option: char, value: &str) -> Result<u64, OptionError> {
    value.parse().map_err(|_| OptionError::BadNumber {
        option,
        value: value.to_string(),
    })
}

fn apply(o: &mut DaemonOptions, letter: char, value: Option<String>) -> Result<(), OptionError> {
    let value = value.unwrap_or_default();
    match letter {
        'c' => return Err(OptionError::Chroot),
        'd' => o.foreground = true,
        'D' => o.debugger = true,
        'i' => o.max_idle = Some(number('i', &value)?),
        'l' | 'z' => o.process_limit_hint = Some(letter),
        'm' => o.max_use = Some(number('m', &value)?),
        'n' => o.service_name = Some(value),
        'o' => {
            let (name, val) = value
                .split_once('=')
                .ok_or_else(|| OptionError::BadOverride(value.clone()))?;
            o.overrides
                .push((name.trim().to_string(), val.trim().to_string()));
        }
        's' => o.listen_fds = number('s', &value)? as usize,
        'S' => o.stand_alone = true,
        't' => o.transport = Some(value),
        'u' => o.unprivileged = true,
        'v' => o.verbose += 1,
        'V' => o.log_to_stderr = true,
        _ => return Err(OptionError::Invalid(letter)),
    }
    Ok(())
}

fn positional(o: &mut DaemonOptions, arg: &str) -> Result<(), OptionError> {
    match arg.split_once('=') {
        Some(("role", "read")) => o.role = Some(Service::Read),
        Some(("role", "write")) => o.role = Some(Service::Write),
        Some(("role", other)) => return Err(OptionError::BadRole(other.to_string())),
        Some(("config", file)) => o.config = Some(PathBuf::from(file)),
        Some(("plugin_dir", dir)) => o.plugin_dirs.push(PathBuf::from(dir)),
        _ => return Err(OptionError::UnknownArgument(arg.to_string())),
    }
    Ok(())
}

impl DaemonOptions {
    /// The service this process serves: `role=` if given, else from the
    /// service name, as proxymap(8) decides it.
    pub fn service(&self) -> Result<Service, String> {
        if let Some(role) = self.role {
            return Ok(role);
        }
        match self.service_name.as_deref() {
            Some("proxymap") => Ok(Service::Read),
            Some("proxywrite") => Ok(Service::Write),
            Some(other) => Err(format!(
                "service name must be one of proxymap or proxywrite (got \"{other}\"; \
                 add role=read or role=write to the master.cf line for another name)"
            )),
            None => Err("no service name given (master(8) passes -n NAME)".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_string).collect()
    }

    #[test]
    fn a_master_command_line_parses_like_getopt() {
        let o = parse(&args(
            "-l -n proxywrite -t unix -u -o max_idle=5 -vv role=write",
        ))
        .unwrap();
        assert_eq!(o.service_name.as_deref(), Some("proxywrite"));
        assert_eq!(o.transport.as_deref(), Some("unix"));
        assert!(o.unprivileged);
        assert_eq!(o.overrides, vec![("max_idle".into(), "5".into())]);
        assert_eq!(o.verbose, 2);
        assert_eq!(o.process_limit_hint, Some('l'));
        assert_eq!(o.service(), Ok(Service::Write));
        // Values glued to the letter, as getopt allows.
        let o = parse(&args("-z -nproxymap -tunix -i3")).unwrap();
        assert_eq!(o.max_idle, Some(3));
        assert_eq!(o.service(), Ok(Service::Read));
    }

    #[test]
    fn parsing_stops_at_the_first_non_option() {
        let err = parse(&args("-n proxymap mode=x -o a=b")).unwrap_err();
        assert_eq!(err, OptionError::UnknownArgument("mode=x".into()));
        assert_eq!(parse(&args("-x")).unwrap_err(), OptionError::Invalid('x'));
        assert_eq!(
            parse(&args("-c -n proxymap")).unwrap_err(),
            OptionError::Chroot
        );
        assert_eq!(
            parse(&args("-n")).unwrap_err(),
            OptionError::MissingValue('n')
        );
        let o = parse(&args("-n smtp")).unwrap();
        assert!(o.service().unwrap_err().contains("proxymap or proxywrite"));
    }

    #[test]
    fn master_command_lines_are_told_from_subcommands() {
        assert!(is_master_invocation(&args("-l -n proxymap")));
        assert!(is_master_invocation(&args("-n proxymap")));
        assert!(!is_master_invocation(&args(
            "serve --postfix-config /etc/postfix"
        )));
        assert!(!is_master_invocation(&args("--help")));
        assert!(!is_master_invocation(&args("-V")));
        assert!(!is_master_invocation(&[]));
    }
}
