//! What `serve`, `check`, `query` and `demo` share: the configuration
//! options (`--postfix-config`, `--config`, `--plugin-dir`, `--sandbox`,
//! `--sql-pool-size`),
//! loading the settings from them, and building the map types (built-ins,
//! then plugins, with the compiled-plugin cache).

use anyhow::{bail, Context, Result};
use clap::Args;
use proxymapd::config::{ConfigSource, Settings};
use proxymapd::dict::MapTypes;
use proxymapd::plugin::cache::CompileCache;
use proxymapd::plugin::trusted_dir::TrustError;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the configuration comes from, and plugin options on top of it.
#[derive(Args, Clone)]
pub(crate) struct ConfigArgs {
    /// Postfix configuration directory whose main.cf to serve (default /etc/postfix).
    #[arg(long, value_name = "DIR", conflicts_with = "config")]
    postfix_config: Option<PathBuf>,
    /// proxymapd TOML configuration file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Plugin directory searched before the defaults (repeatable).
    #[arg(long = "plugin-dir", value_name = "DIR")]
    plugin_dirs: Vec<PathBuf>,
    /// Serve map type TYPE by its WebAssembly plugin instead of natively
    /// (repeatable; e.g. --sandbox hash).
    #[arg(long = "sandbox", value_name = "TYPE")]
    sandboxed: Vec<String>,
    /// Connections per database server shared by the SQL tables naming it
    /// (default: the configuration's `sql_pool_size`, else 4).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    sql_pool_size: Option<u16>,
    /// Started as root, serve as USER once the sockets are bound (default:
    /// main.cf's mail_owner; `root` keeps root's rights).
    #[arg(long, value_name = "USER")]
    pub(crate) user: Option<String>,
}

impl ConfigArgs {
    /// The configuration named by the options (default /etc/postfix).
    pub(crate) fn source(&self) -> ConfigSource {
        match (&self.config, &self.postfix_config) {
            (Some(file), _) => ConfigSource::Toml(file.clone()),
            (None, Some(dir)) => ConfigSource::Postfix(dir.clone()),
            (None, None) => ConfigSource::Postfix(PathBuf::from("/etc/postfix")),
        }
    }
}

/// Load settings from `source`.
pub(crate) fn load(source: &ConfigSource) -> Result<Settings> {
    source.load().context("configuration error")
}

/// Load settings, adding plugin directories given on the command line.
pub(crate) fn load_args(args: &ConfigArgs) -> Result<Settings> {
    let mut settings = load(&args.source())?;
    let mut dirs = args.plugin_dirs.clone();
    dirs.append(&mut settings.plugin_dirs);
    settings.plugin_dirs = dirs;
    for t in &args.sandboxed {
        if !settings.sandboxed_map_types.contains(t) {
            settings.sandboxed_map_types.push(t.clone());
        }
    }
    if let Some(size) = args.sql_pool_size {
        settings.sql_pool_size = usize::from(size);
    }
    Ok(settings)
}

/// The map types: built-ins, then plugins from the search path.
pub(crate) fn map_types(settings: &Settings) -> Result<MapTypes> {
    let mut types = MapTypes::builtin();
    let cache = open_cache(&settings.cache_dir())?;
    let host = proxymapd::plugin::PluginHost::new(settings.plugin_search_path(), cache)?
        .with_sql_pool_size(settings.sql_pool_size);
    tracing::info!("plugin map types available: {}", host.available().join(" "));
    for name in &settings.sandboxed_map_types {
        if host.locate(name).is_none() {
            anyhow::bail!(
                "sandboxed map type {name}: no {name}.wasm in the plugin directories ({}); \
                 install the plugin there or stop asking for it to be sandboxed",
                host.dirs()
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        types.unregister(name);
        tracing::info!("map type {name}: served by its WebAssembly plugin");
    }
    types.add_source(Arc::new(host));
    Ok(types)
}

/// The compiled-plugin cache in `dir`. A directory others could write to
/// stops startup (its native code would run unchecked in this process); one
/// that cannot be created or opened only disables caching.
fn open_cache(dir: &Path) -> Result<CompileCache> {
    match CompileCache::open(dir) {
        Ok(_) if !writable(dir) => {
            tracing::warn!(
                "compiled-plugin cache {} is not writable by uid {}; plugins compile at every \
                 start (give the directory to that user to cache them)",
                dir.display(),
                // SAFETY: geteuid has no preconditions.
                unsafe { libc::geteuid() }
            );
            Ok(CompileCache::disabled())
        }
        Ok(cache) => Ok(cache),
        Err(e @ TrustError::Io { .. }) => {
            tracing::warn!("compiled-plugin cache unusable ({e}); plugins compile at every start");
            Ok(CompileCache::disabled())
        }
        Err(e) => bail!("refusing the compiled-plugin cache: {e}"),
    }
}

/// Whether this process may create files in `dir`.
fn writable(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: c is a valid C string.
    unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}

/// Before becoming `account`: create the compiled-plugin cache directory
/// for it when missing, so that it can still cache after the switch. An
/// existing directory is left as the operator set it up.
pub(crate) fn give_cache_dir(settings: &Settings, account: &proxymapd::privileges::Account) {
    let dir = settings.cache_dir();
    if dir.exists() {
        return;
    }
    let made = std::fs::create_dir_all(&dir)
        .and_then(|()| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        })
        .and_then(|()| proxymapd::privileges::give(&dir, account));
    if let Err(e) = made {
        tracing::warn!(
            "cannot create the compiled-plugin cache {} for {}: {e}",
            dir.display(),
            account.name
        );
    }
}
