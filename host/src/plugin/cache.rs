//! The compiled-component cache: native code for a plugin is kept on disk
//! under a key made of the component's blake3 digest and the engine's
//! compatibility hash, so a restart (or a second table of the same plugin)
//! compiles nothing. Entries are written to a temporary file and renamed.

use anyhow::{anyhow, Context, Result};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::component::Component;
use wasmtime::Engine;

/// Where compiled plugins are kept.
pub struct CompileCache {
    dir: Option<PathBuf>,
}

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Compiled now.
    Compiled,
    /// Loaded from the cache.
    Cached,
}

impl CompileCache {
    /// A cache in `dir` (created when missing); `None` disables caching.
    pub fn new(dir: Option<PathBuf>) -> CompileCache {
        CompileCache { dir }
    }

    fn key(engine: &Engine, digest: &str) -> String {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        format!("{digest}-{:016x}.cwasm", h.finish())
    }

    /// The compiled component for `bytes` (whose blake3 hex digest is `digest`).
    pub fn component(
        &self,
        engine: &Engine,
        digest: &str,
        bytes: &[u8],
    ) -> Result<(Component, Origin)> {
        let Some(dir) = &self.dir else {
            return Ok((
                Component::from_binary(engine, bytes).map_err(|e| anyhow!("{e:?}"))?,
                Origin::Compiled,
            ));
        };
        let path = dir.join(Self::key(engine, digest));
        if path.exists() {
            // SAFETY: the file was produced by Component::serialize with an
            // engine of the same compatibility hash, in a directory only
            // proxymapd writes.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(c) => return Ok((c, Origin::Cached)),
                Err(e) => {
                    tracing::warn!("compiled plugin cache {}: {e}; recompiling", path.display())
                }
            }
        }
        let component = Component::from_binary(engine, bytes).map_err(|e| anyhow!("{e:?}"))?;
        if let Err(e) = store(dir, &path, &component) {
            tracing::warn!(
                "cannot write compiled plugin cache {}: {e:#}",
                path.display()
            );
        }
        Ok((component, Origin::Compiled))
    }
}

fn store(dir: &Path, path: &Path, component: &Component) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, component.serialize().map_err(|e| anyhow!("{e}"))?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
