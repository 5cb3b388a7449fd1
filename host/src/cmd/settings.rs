//! What `serve`, `check`, `query` and `demo` share: the configuration
//! options (`--postfix-config`, `--config`, `--plugin-dir`, `--sandbox`),
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
    Ok(settings)
}

/// The map types: built-ins, then plugins from the search path.
pub(crate) fn map_types(settings: &Settings) -> Result<MapTypes> {
    let mut types = MapTypes::builtin();
    let cache = open_cache(&settings.cache_dir())?;
    let host = proxymapd::plugin::PluginHost::new(settings.plugin_search_path(), cache)?;
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
        Ok(cache) => Ok(cache),
        Err(e @ TrustError::Io { .. }) => {
            tracing::warn!("compiled-plugin cache unusable ({e}); plugins compile at every start");
            Ok(CompileCache::disabled())
        }
        Err(e) => bail!("refusing the compiled-plugin cache: {e}"),
    }
}
