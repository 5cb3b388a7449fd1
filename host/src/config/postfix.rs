//! Settings from a Postfix configuration directory: the same values Postfix
//! itself would use. With `postconf` installed we ask it (`postconf -c DIR
//! -xh`), so `$parameter` expansion and built-in defaults are Postfix's own;
//! without it we read main.cf with [`super::main_cf::MainCf`].

use super::main_cf::MainCf;
use super::{ConfigError, ConfigSource, Settings};
use crate::codec::Greeting;
use crate::server::ConnectionSettings;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const PARAMETERS: [&str; 10] = [
    "queue_directory",
    "proxy_read_maps",
    "proxy_write_maps",
    "smtputf8_enable",
    "mail_version",
    "mail_owner",
    "max_idle",
    "max_use",
    "syslog_name",
    "syslog_facility",
];

/// Load settings from the Postfix configuration directory `dir`.
pub(crate) fn load(dir: &Path) -> Result<Settings, ConfigError> {
    load_with(dir, &[], false)
}

/// Load settings from `dir` with `-o name=value` overrides, as a Postfix
/// daemon started by master(8) sees them. With `need_postconf`, a missing
/// postconf is an error instead of a fallback to reading main.cf.
pub(crate) fn load_with(
    dir: &Path,
    overrides: &[(String, String)],
    need_postconf: bool,
) -> Result<Settings, ConfigError> {
    let main_cf = dir.join("main.cf");
    if !main_cf.is_file() {
        return Err(ConfigError::NoMainCf { main_cf });
    }
    let values = match query_postconf(dir, overrides)? {
        Some(values) => values,
        None if need_postconf => return Err(ConfigError::NoPostconf),
        None => {
            let mut values = read_main_cf(dir, &main_cf)?;
            for (name, value) in overrides {
                values.insert(name.clone(), value.clone());
            }
            values
        }
    };
    let get = |name: &str| values.get(name).cloned().unwrap_or_default();
    let queue = PathBuf::from(get("queue_directory"));
    if !queue.is_absolute() {
        return Err(ConfigError::NotAbsolute {
            main_cf,
            parameter: "queue_directory",
        });
    }
    let mail_version = get("mail_version");
    Ok(Settings {
        source: ConfigSource::Postfix(dir.to_path_buf()),
        proxymap_socket: queue.join("private/proxymap"),
        proxywrite_socket: Some(queue.join("private/proxywrite")),
        proxy_read_maps: get("proxy_read_maps"),
        proxy_write_maps: get("proxy_write_maps"),
        connection: ConnectionSettings {
            greeting: if mail_version.is_empty() {
                Greeting::Proxymap
            } else {
                Greeting::for_mail_version(&mail_version)
            },
            ..ConnectionSettings::default()
        },
        utf8: matches!(get("smtputf8_enable").as_str(), "yes" | "true" | "1"),
        log_level: "info".into(),
        plugin_dirs: Vec::new(),
        plugin_cache_dir: None,
        sandboxed_map_types: Vec::new(),
        sql_pool_size: crate::sql::DEFAULT_POOL_SIZE,
        postfix_parameters: values,
    })
}

/// Ask postconf; `Ok(None)` when postconf is not installed.
fn query_postconf(
    dir: &Path,
    overrides: &[(String, String)],
) -> Result<Option<HashMap<String, String>>, ConfigError> {
    let Some(postconf) = super::postconf_program() else {
        tracing::warn!(
            "postconf not found (on PATH, /usr/sbin or /usr/local/sbin): reading {}/main.cf \
             directly, with proxymapd's own defaults and $parameter expansion",
            dir.display()
        );
        return Ok(None);
    };
    let output = match Command::new(postconf)
        .arg("-c")
        .arg(dir)
        .args(
            overrides
                .iter()
                .flat_map(|(n, v)| ["-o".to_string(), format!("{n}={v}")]),
        )
        .arg("-x")
        .args(PARAMETERS)
        .output()
    {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ConfigError::RunPostconf(e)),
    };
    if !output.status.success() {
        return Err(ConfigError::Postconf {
            dir: dir.to_path_buf(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut values = HashMap::new();
    for line in text.lines() {
        if let Some((name, value)) = line.split_once(" = ") {
            values.insert(name.trim().to_string(), value.to_string());
        } else if let Some(name) = line.strip_suffix(" =") {
            values.insert(name.trim().to_string(), String::new());
        }
    }
    Ok(Some(values))
}

fn read_main_cf(dir: &Path, main_cf: &Path) -> Result<HashMap<String, String>, ConfigError> {
    let text = std::fs::read_to_string(main_cf).map_err(|source| ConfigError::ReadMainCf {
        main_cf: main_cf.to_path_buf(),
        source,
    })?;
    let cf = MainCf::parse(&text);
    let dir_text = dir.to_string_lossy().into_owned();
    let defaults = HashMap::from([
        ("config_directory", dir_text.as_str()),
        ("queue_directory", "/var/spool/postfix"),
        ("mail_owner", "postfix"),
        ("max_idle", "100s"),
        ("max_use", "100"),
        ("syslog_name", "postfix"),
        ("syslog_facility", "mail"),
        ("smtputf8_enable", "no"),
        (
            "proxy_write_maps",
            "$smtp_sasl_auth_cache_name $lmtp_sasl_auth_cache_name $address_verify_map $postscreen_cache_map",
        ),
    ]);
    let mut values: HashMap<String, String> = PARAMETERS
        .iter()
        .map(|p| (p.to_string(), cf.expanded(p, &defaults)))
        .collect();
    // The read list's default names ~80 parameters; tables inherit through
    // them, so scan every parameter when proxy_read_maps is not set.
    if values["proxy_read_maps"].is_empty() {
        values.insert("proxy_read_maps".into(), cf.all_expanded(&defaults));
    }
    Ok(values)
}
