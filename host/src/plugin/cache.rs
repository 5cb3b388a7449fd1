//! The compiled-component cache: native code for a plugin is kept on disk
//! under a key made of the component's blake3 digest and the engine's
//! compatibility hash, so a restart (or a second table of the same plugin)
//! compiles nothing. Loading native code bypasses both the sandbox and the
//! manifest's digest pin, so the cache lives in a `TrustedDir` (checked
//! ownership and modes; opening the cache fails otherwise) and each entry is
//! an `artifact` bound to the exact component bytes it was
//! compiled from. An entry that is not trusted, belongs to another component
//! or is damaged is logged and compiled afresh, never loaded. Entries are
//! written to a private temporary file and renamed.

use super::artifact::{self, ArtifactError};
use super::trusted_dir::{TrustError, TrustedDir};
use crate::error_chain::Chain;
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::path::Path;
use wasmtime::component::Component;
use wasmtime::Engine;

/// Where compiled plugins are kept.
pub struct CompileCache {
    dir: Option<TrustedDir>,
}

/// A component wasmtime cannot compile. Its text is wasmtime's full report
/// (the error with its causes, as `{:?}` shows them).
#[derive(Debug, thiserror::Error)]
#[error("{0:?}")]
pub struct CompileError(pub wasmtime::Error);

/// Why a cache entry could not be loaded or stored (logged, then compiled
/// afresh).
#[derive(Debug, thiserror::Error)]
enum EntryError {
    /// The cache directory or the entry is not trusted, or its I/O failed.
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// Reading the entry failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The entry is damaged or belongs to other component bytes.
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    /// wasmtime refused to serialize or deserialize the native code.
    #[error("{0}")]
    Engine(wasmtime::Error),
}

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Compiled now.
    Compiled,
    /// Loaded from the cache.
    Cached,
}

impl CompileCache {
    /// A cache in `dir`, created (mode 0700) when missing. Fails when the
    /// directory or one above it may be written by someone other than root
    /// or proxymapd's user ([`TrustError::Unsafe`]), or cannot be created or
    /// opened ([`TrustError::Io`]).
    pub fn open(dir: &Path) -> Result<CompileCache, TrustError> {
        Ok(CompileCache {
            dir: Some(TrustedDir::open(dir)?),
        })
    }

    /// No cache: every plugin is compiled when loaded.
    pub fn disabled() -> CompileCache {
        CompileCache { dir: None }
    }

    fn key(engine: &Engine, digest: &str) -> String {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        format!("{digest}-{:016x}.cwasm", h.finish())
    }

    /// The compiled component for `bytes` (whose blake3 hex digest is `digest`).
    pub(crate) fn component(
        &self,
        engine: &Engine,
        digest: &str,
        bytes: &[u8],
    ) -> Result<(Component, Origin), CompileError> {
        let compile = || Component::from_binary(engine, bytes).map_err(CompileError);
        let Some(dir) = &self.dir else {
            return Ok((compile()?, Origin::Compiled));
        };
        let name = Self::key(engine, digest);
        match load(dir, &name, engine, bytes) {
            Ok(Some(component)) => return Ok((component, Origin::Cached)),
            Ok(None) => {}
            Err(e) => tracing::warn!(
                "compiled plugin cache {}: {}; not loading it, recompiling",
                dir.path().join(&name).display(),
                Chain(&e)
            ),
        }
        let component = compile()?;
        let stored = component
            .serialize()
            .map_err(EntryError::Engine)
            .and_then(|code| Ok(dir.write_file(&name, &artifact::encode(bytes, &code))?));
        if let Err(e) = stored {
            tracing::warn!(
                "cannot write compiled plugin cache {}: {}",
                dir.path().join(&name).display(),
                Chain(&e)
            );
        }
        Ok((component, Origin::Compiled))
    }
}

/// The cached component `name` compiled from `bytes`, if there is one.
fn load(
    dir: &TrustedDir,
    name: &str,
    engine: &Engine,
    bytes: &[u8],
) -> Result<Option<Component>, EntryError> {
    let Some(mut file) = dir.open_file(name)? else {
        return Ok(None);
    };
    let mut stored = Vec::new();
    file.read_to_end(&mut stored)?;
    let code = artifact::decode(&stored, bytes)?;
    // SAFETY: `code` was read from a file that only root or proxymapd's user
    // can have written (TrustedDir checked the directory chain and the open
    // file), whose header shows it was serialized for exactly `bytes` and
    // is intact; deserialize also checks the engine's compatibility.
    let component = unsafe { Component::deserialize(engine, code) }.map_err(EntryError::Engine)?;
    Ok(Some(component))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// The smallest component: the component preamble alone.
    const EMPTY: &[u8] = b"\0asm\x0d\x00\x01\x00";

    /// Another small component: the preamble and a custom section.
    fn other() -> Vec<u8> {
        let mut c = EMPTY.to_vec();
        c.extend_from_slice(&[0x00, 0x04, 0x03, b'a', b'b', b'c']);
        c
    }

    fn engine() -> Engine {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        Engine::new(&config).unwrap()
    }

    fn digest(bytes: &[u8]) -> String {
        blake3::hash(bytes).to_hex().to_string()
    }

    fn entry(dir: &Path, engine: &Engine, bytes: &[u8]) -> std::path::PathBuf {
        dir.join(CompileCache::key(engine, &digest(bytes)))
    }

    #[test]
    fn a_good_cache_is_used() {
        let tmp = tempfile::tempdir().unwrap();
        let engine = engine();
        let cache = CompileCache::open(tmp.path()).unwrap();
        let (_, origin) = cache.component(&engine, &digest(EMPTY), EMPTY).unwrap();
        assert_eq!(origin, Origin::Compiled);
        let cache = CompileCache::open(tmp.path()).unwrap();
        let (_, origin) = cache.component(&engine, &digest(EMPTY), EMPTY).unwrap();
        assert_eq!(origin, Origin::Cached);
    }

    #[test]
    fn an_entry_copied_over_another_digest_is_rejected_and_recompiled() {
        let tmp = tempfile::tempdir().unwrap();
        let engine = engine();
        let other = other();
        let cache = CompileCache::open(tmp.path()).unwrap();
        cache.component(&engine, &digest(EMPTY), EMPTY).unwrap();
        cache.component(&engine, &digest(&other), &other).unwrap();
        // Put the empty component's code under the other one's name.
        std::fs::copy(
            entry(tmp.path(), &engine, EMPTY),
            entry(tmp.path(), &engine, &other),
        )
        .unwrap();
        let (_, origin) = cache.component(&engine, &digest(&other), &other).unwrap();
        assert_eq!(origin, Origin::Compiled, "the swapped entry is not loaded");
        // The recompiled code replaced it.
        let (_, origin) = cache.component(&engine, &digest(&other), &other).unwrap();
        assert_eq!(origin, Origin::Cached);
    }

    #[test]
    fn an_untrusted_entry_is_not_loaded() {
        let tmp = tempfile::tempdir().unwrap();
        let engine = engine();
        let cache = CompileCache::open(tmp.path()).unwrap();
        cache.component(&engine, &digest(EMPTY), EMPTY).unwrap();
        let path = entry(tmp.path(), &engine, EMPTY);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let (_, origin) = cache.component(&engine, &digest(EMPTY), EMPTY).unwrap();
        assert_eq!(origin, Origin::Compiled, "a world-writable entry");
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
            let (_, origin) = cache.component(&engine, &digest(EMPTY), EMPTY).unwrap();
            assert_eq!(origin, Origin::Compiled, "an entry owned by another user");
        }
        let (_, origin) = cache.component(&engine, &digest(EMPTY), EMPTY).unwrap();
        assert_eq!(origin, Origin::Cached, "replaced by a trusted entry");
    }

    #[test]
    fn a_world_writable_cache_directory_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cache");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = CompileCache::open(&dir).err().expect("refused").to_string();
        assert!(
            err.contains(&format!("{} is owned by uid", dir.display())) && err.contains("0777"),
            "{err}"
        );
    }
}
