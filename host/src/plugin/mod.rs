//! WebAssembly map-type plugins. Each `NAME.wasm` in a plugin directory is a
//! component of the `plugin` world (wit/dict.wit) providing map type `NAME`;
//! an optional `NAME.toml` manifest pins its blake3 digest and sets limits.
//! Directories are searched in order, so an operator's directory adds to or
//! overrides the plugins shipped inside the proxymapd binary (`plugin/shipped.rs`),
//! which are searched last. Components are compiled once
//! (kept in the compile cache) and pre-linked; a changed `.wasm` is reloaded
//! and its tables reopen between requests.

mod artifact;
pub mod cache;
pub mod componentize;
pub(crate) mod instance;
pub(crate) mod manifest;
mod runaway_keys;
mod shipped;
pub(crate) mod table;
pub mod trusted_dir;

use crate::dict::{Dict, FileStamp, MapTypeSource, OpenError, OpenParams};
use crate::error_chain::Chain;
use cache::{CompileCache, CompileError, Origin};
use componentize::ComponentizeError;
use instance::{linker, GrantedFiles, HostState, InstanceSpec, PluginPre, WitOpenRequest};
use manifest::{Manifest, ManifestError};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wasmtime::component::Linker;
use wasmtime::{Config, Engine};

/// How often the engine's epoch advances (the time-limit granularity).
const TICK: Duration = Duration::from_millis(10);

/// Why the plugin host could not start, or a plugin could not be loaded.
/// Each names the plugin and its file; wasmtime's own errors are carried
/// inside.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The WebAssembly engine cannot be set up.
    #[error("plugin engine: {0}")]
    Engine(wasmtime::Error),
    /// The thread that advances the plugins' time limit cannot be started.
    #[error("start the plugin timer thread")]
    Timer(#[source] std::io::Error),
    /// The host interface cannot be linked for plugins.
    #[error("link host interface: {0}")]
    Link(wasmtime::Error),
    /// The plugin's `.wasm` file cannot be read.
    #[error("read plugin {}", path.display())]
    Read {
        /// The `.wasm` file.
        path: PathBuf,
        /// Why reading it failed.
        #[source]
        source: std::io::Error,
    },
    /// The plugin's manifest cannot be used.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// No plugin of this map type is shipped in the binary.
    #[error("no plugin for map type {0} is shipped")]
    NotShipped(String),
    /// The `.wasm` file is not the one its manifest pins.
    #[error(
        "plugin {}: blake3 digest mismatch: manifest {} expects {expected}, file has {actual}; refusing to load",
        path.display(),
        path.with_extension("toml").display()
    )]
    DigestMismatch {
        /// The `.wasm` file (its manifest is the `.toml` beside it).
        path: PathBuf,
        /// The digest the manifest pins.
        expected: String,
        /// The file's digest.
        actual: String,
    },
    /// The file is not a component and cannot be made one.
    #[error("plugin {name} ({from}): {}", Chain(.cause))]
    NotAComponent {
        /// The map type.
        name: String,
        /// Where the plugin came from.
        from: PluginSource,
        /// Why it cannot be made a component.
        cause: ComponentizeError,
    },
    /// wasmtime cannot compile the component.
    #[error("plugin {name} ({from}): not a valid proxymapd plugin component: {cause}")]
    Compile {
        /// The map type.
        name: String,
        /// Where the plugin came from.
        from: PluginSource,
        /// wasmtime's report.
        cause: CompileError,
    },
    /// The component imports or exports something other than the plugin world.
    #[error(
        "plugin {name} ({from}): does not fit the proxymapd:dict/plugin world (it may only import proxymapd:dict/host): {cause}"
    )]
    WrongWorld {
        /// The map type.
        name: String,
        /// Where the plugin came from.
        from: PluginSource,
        /// wasmtime's reason.
        cause: wasmtime::Error,
    },
}

/// A loaded, compiled plugin.
pub(crate) struct LoadedPlugin {
    /// Map type name.
    pub name: String,
    /// Where it came from.
    pub source: PluginSource,
    /// Limits and file rules.
    pub manifest: Manifest,
    /// The `.wasm` file and manifest as loaded (none for shipped plugins).
    stamps: Vec<FileStamp>,
    pre: PluginPre<HostState>,
}

/// Where a plugin comes from: a plugin directory, or the binary itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PluginSource {
    /// `NAME.wasm` in a plugin directory (its manifest is `NAME.toml` beside it).
    File(PathBuf),
    /// Shipped inside the proxymapd binary.
    Shipped,
}

impl std::fmt::Display for PluginSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PluginSource::File(path) => write!(f, "{}", path.display()),
            PluginSource::Shipped => f.write_str("shipped in proxymapd"),
        }
    }
}

/// Finds, verifies, compiles and instantiates plugins.
pub struct PluginHost {
    engine: Engine,
    linker: Linker<HostState>,
    dirs: Vec<PathBuf>,
    cache: CompileCache,
    loaded: Mutex<HashMap<String, Arc<LoadedPlugin>>>,
    sql_pool_size: usize,
}

impl PluginHost {
    /// A host searching `dirs` in order, keeping compiled code in `cache`.
    pub fn new(dirs: Vec<PathBuf>, cache: CompileCache) -> Result<PluginHost, PluginError> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        let engine = Engine::new(&config).map_err(PluginError::Engine)?;
        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("plugin-epoch".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(TICK);
                }
            })
            .map_err(PluginError::Timer)?;
        Ok(PluginHost {
            linker: linker(&engine)?,
            engine,
            dirs,
            cache,
            loaded: Mutex::new(HashMap::new()),
            sql_pool_size: crate::sql::DEFAULT_POOL_SIZE,
        })
    }

    /// Give SQL tables pools of at most `size` connections per database
    /// server (default 4).
    pub fn with_sql_pool_size(mut self, size: usize) -> PluginHost {
        self.sql_pool_size = size;
        self
    }

    /// The plugin directories, in search order.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Where the plugin for map type `name` comes from: the first plugin
    /// directory with a `NAME.wasm`, else the plugins shipped in the binary.
    pub fn locate(&self, name: &str) -> Option<PluginSource> {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return None;
        }
        self.dirs
            .iter()
            .map(|d| d.join(format!("{name}.wasm")))
            .find(|p| p.is_file())
            .map(PluginSource::File)
            .or_else(|| shipped::find(name).map(|_| PluginSource::Shipped))
    }

    /// Map types available from the plugin directories and the binary.
    pub fn available(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .dirs
            .iter()
            .filter_map(|d| std::fs::read_dir(d).ok())
            .flatten()
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_suffix(".wasm")
                    .map(str::to_string)
            })
            .chain(shipped::SHIPPED.iter().map(|p| p.name.to_string()))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Load (or reuse) the plugin for map type `name` from `source`.
    pub(crate) fn load(
        &self,
        name: &str,
        source: &PluginSource,
    ) -> Result<Arc<LoadedPlugin>, PluginError> {
        {
            let loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(p) = loaded.get(name) {
                if p.source == *source && !p.stamps.iter().any(FileStamp::changed) {
                    return Ok(p.clone());
                }
            }
        }
        let (bytes, manifest, stamps) = match source {
            PluginSource::File(path) => {
                let manifest_path = path.with_extension("toml");
                let stamps = vec![FileStamp::take(path), FileStamp::take(&manifest_path)];
                let bytes = std::fs::read(path).map_err(|source| PluginError::Read {
                    path: path.clone(),
                    source,
                })?;
                let manifest = Manifest::load(&manifest_path)?;
                (std::borrow::Cow::Owned(bytes), manifest, stamps)
            }
            PluginSource::Shipped => {
                let shipped =
                    shipped::find(name).ok_or_else(|| PluginError::NotShipped(name.to_string()))?;
                let manifest = Manifest::parse(
                    shipped.manifest,
                    Path::new(&format!("(shipped) {name}.toml")),
                )?;
                (
                    std::borrow::Cow::Borrowed(shipped.wasm),
                    manifest,
                    Vec::new(),
                )
            }
        };
        let digest = blake3::hash(&bytes).to_hex().to_string();
        if let (PluginSource::File(path), Some(expected)) = (source, &manifest.digest) {
            if *expected != digest {
                return Err(PluginError::DigestMismatch {
                    path: path.clone(),
                    expected: expected.clone(),
                    actual: digest,
                });
            }
        }
        let path = source;
        let component_bytes =
            componentize::componentize(&bytes).map_err(|cause| PluginError::NotAComponent {
                name: name.to_string(),
                from: source.clone(),
                cause,
            })?;
        let (component, origin) = self
            .cache
            .component(&self.engine, &digest, &component_bytes)
            .map_err(|cause| PluginError::Compile {
                name: name.to_string(),
                from: source.clone(),
                cause,
            })?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .and_then(PluginPre::new)
            .map_err(|cause| PluginError::WrongWorld {
                name: name.to_string(),
                from: source.clone(),
                cause,
            })?;
        tracing::info!(
            "plugin {name}: loaded from {path} (blake3 {digest}, {})",
            if origin == Origin::Cached {
                "compiled code from cache"
            } else {
                "compiled"
            }
        );
        let plugin = Arc::new(LoadedPlugin {
            name: name.to_string(),
            source: source.clone(),
            manifest,
            stamps,
            pre,
        });
        self.loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), plugin.clone());
        Ok(plugin)
    }

    /// The files a table of `plugin` named `name` may read.
    fn files_of(plugin: &LoadedPlugin, name: &str) -> Vec<PathBuf> {
        if !plugin.manifest.files || name.is_empty() {
            return Vec::new();
        }
        vec![PathBuf::from(format!(
            "{name}{}",
            plugin.manifest.file_suffix
        ))]
    }

    fn open_table(
        &self,
        plugin: Arc<LoadedPlugin>,
        req: &OpenParams<'_>,
    ) -> Result<Arc<dyn Dict>, OpenError> {
        let mut files = Self::files_of(&plugin, req.name);
        // A SQL map type's table reaches the database its own .cf names,
        // read here by the host (a table that cannot get it gets its
        // surrogate, with the reason). It also reads the files its `domain`
        // list names, and looks domains up in the tables the list names
        // (opened here, as Postfix opens them inside the proxymap process).
        let mut database = None;
        let mut domain_tables = Vec::new();
        if let (Some(rule), Some(cf)) = (plugin.manifest.database, files.first()) {
            let map_type = req.table.split_once(':').map_or(req.table, |(t, _)| t);
            let setup = rule
                .backend(map_type)
                .and_then(|backend| crate::sql::open_for_table(backend, cf, self.sql_pool_size))
                .map_err(|e| OpenError::new(req.table, e))?;
            for name in setup.domain.tables {
                let dict = req
                    .types
                    .open(
                        &name,
                        crate::flags::LOCK | crate::flags::FOLD_FIX,
                        false,
                        req.utf8,
                    )
                    .map_err(|e| OpenError::new(req.table, format!("domain: {}", e.reason())))?;
                domain_tables.push((name, dict));
            }
            database = Some(setup.database);
            files.extend(setup.domain.files);
        }
        let plugin_stamps = plugin.stamps.clone();
        let request = WitOpenRequest {
            map_type: plugin.name.clone(),
            name: req.name.to_string(),
            flags: req.flags,
            files: files
                .iter()
                .map(|f| f.to_string_lossy().into_owned())
                .collect(),
            writable: req.writable,
            utf8: req.utf8,
        };
        let ticks = plugin
            .manifest
            .call_timeout_ms
            .div_ceil(TICK.as_millis() as u64)
            + 1;
        let spec = InstanceSpec {
            pre: plugin.pre.clone(),
            plugin: plugin.name.as_str().into(),
            table: req.table.into(),
            database,
            domain_tables: Arc::new(domain_tables),
            files: Arc::new(GrantedFiles::new(files.clone()).with_flock(plugin.manifest.flock)),
            memory_bytes: plugin.manifest.memory_bytes,
            deadline_ticks: ticks,
        };
        let table = table::PluginTable::open(
            spec,
            request,
            plugin.manifest.instances,
            &files,
            plugin.manifest.flock,
            plugin_stamps,
        )?;
        Ok(Arc::new(table))
    }
}

impl MapTypeSource for PluginHost {
    fn open_type(
        &self,
        type_name: &str,
        req: &OpenParams<'_>,
    ) -> Option<Result<Arc<dyn Dict>, OpenError>> {
        let source = self.locate(type_name)?;
        Some(
            self.load(type_name, &source)
                .map_err(|e| OpenError::new(req.table, Chain(&e).to_string()))
                .and_then(|plugin| self.open_table(plugin, req)),
        )
    }
}
