//! Plugin manifests: the optional `NAME.toml` beside `NAME.wasm`. It pins the
//! component's blake3 digest, sets resource limits and says which files a
//! table of this map type reads.
//!
//! ```toml
//! digest = "5f0c...e1"          # blake3 of NAME.wasm, hex; refused if it differs
//! memory_mib = 64               # per instance
//! call_timeout_ms = 1000        # per call (open included)
//! instances = 2                 # instances per table (parallel reads)
//! file_suffix = ".cdb"          # table `cdb:/x` reads `/x.cdb`; "" reads `/x`
//! files = true                  # false: tables read no file at all
//! file_lock = "none"            # "flock": copy the file under a shared flock(2),
//!                               # as Postfix locks Berkeley DB tables
//! database = "sqlite"           # a SQL map type: each table may run statements
//!                               # on the database its .cf file names ("sqlite",
//!                               # "pgsql", "mysql", or "by-map-type" for a plugin
//!                               # shipped under several SQL type names)
//! ```

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Why a plugin manifest cannot be used; each names the manifest file and
/// what in it to fix.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The manifest cannot be read.
    #[error("read {}", file.display())]
    Read {
        /// The manifest file.
        file: PathBuf,
        /// Why reading it failed.
        #[source]
        source: std::io::Error,
    },
    /// The manifest does not parse, or names a key proxymapd does not know.
    #[error("{}: {message}", file.display())]
    Syntax {
        /// The manifest file.
        file: PathBuf,
        /// The parser's message, which quotes the line.
        message: String,
    },
    /// A key has a value proxymapd cannot use.
    #[error("{}: key `{key}`: {problem}", file.display())]
    BadValue {
        /// The manifest file.
        file: PathBuf,
        /// The key at fault.
        key: &'static str,
        /// What is wrong with its value.
        problem: String,
    },
    /// A resource limit is out of range.
    #[error(
        "{}: limits out of range (memory_mib >= 1, call_timeout_ms >= 1, instances 1..=64)",
        file.display()
    )]
    Limits {
        /// The manifest file.
        file: PathBuf,
    },
}

/// Limits and capabilities of one plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Manifest {
    /// Expected blake3 digest (hex), if pinned.
    pub digest: Option<String>,
    /// Memory limit per instance, bytes.
    pub memory_bytes: usize,
    /// Time limit per call, milliseconds.
    pub call_timeout_ms: u64,
    /// Instances per open table.
    pub instances: usize,
    /// Suffix appended to the table name to find its file.
    pub file_suffix: String,
    /// Whether tables read a file at all.
    pub files: bool,
    /// Hold a shared flock(2) on the table file while the host reads it,
    /// so a writer that locks (postmap on Berkeley DB files) is waited for.
    pub flock: bool,
    /// The database backend of a SQL map type (none for the others).
    pub database: Option<crate::sql::DatabaseRule>,
}

impl Default for Manifest {
    fn default() -> Self {
        Manifest {
            digest: None,
            memory_bytes: 64 << 20,
            call_timeout_ms: 1000,
            instances: 2,
            file_suffix: String::new(),
            files: true,
            flock: false,
            database: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    digest: Option<String>,
    memory_mib: Option<usize>,
    call_timeout_ms: Option<u64>,
    instances: Option<usize>,
    file_suffix: Option<String>,
    files: Option<bool>,
    file_lock: Option<String>,
    database: Option<String>,
}

impl Manifest {
    /// Parse manifest text; `file` names it in errors.
    pub(crate) fn parse(text: &str, file: &Path) -> Result<Manifest, ManifestError> {
        let raw: Raw = toml::from_str(text).map_err(|e| ManifestError::Syntax {
            file: file.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let bad = |key: &'static str, problem: &str| ManifestError::BadValue {
            file: file.to_path_buf(),
            key,
            problem: problem.to_string(),
        };
        let d = Manifest::default();
        let m = Manifest {
            digest: raw.digest.map(|s| s.trim().to_ascii_lowercase()),
            memory_bytes: raw.memory_mib.map_or(d.memory_bytes, |m| m << 20),
            call_timeout_ms: raw.call_timeout_ms.unwrap_or(d.call_timeout_ms),
            instances: raw.instances.unwrap_or(d.instances),
            file_suffix: raw.file_suffix.unwrap_or(d.file_suffix),
            files: raw.files.unwrap_or(d.files),
            database: match raw.database.as_deref() {
                None => None,
                Some(name) => Some(crate::sql::DatabaseRule::from_name(name).ok_or_else(|| {
                    bad(
                        "database",
                        &format!(
                            "unknown database \"{name}\"; use \"sqlite\", \"pgsql\", \"mysql\" or \"by-map-type\""
                        ),
                    )
                })?),
            },
            flock: match raw.file_lock.as_deref() {
                None | Some("none") => false,
                Some("flock") => true,
                Some(other) => {
                    return Err(bad(
                        "file_lock",
                        &format!("unknown value \"{other}\"; use \"none\" or \"flock\""),
                    ))
                }
            },
        };
        if let Some(digest) = &m.digest {
            if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad("digest", "expected 64 hex digits of a blake3 hash"));
            }
        }
        if m.memory_bytes < (1 << 20)
            || m.call_timeout_ms == 0
            || m.instances == 0
            || m.instances > 64
        {
            return Err(ManifestError::Limits {
                file: file.to_path_buf(),
            });
        }
        if m.file_suffix.contains('/') {
            return Err(bad("file_suffix", "must not contain '/'"));
        }
        Ok(m)
    }

    /// Read `NAME.toml` if it exists, else the defaults.
    pub(crate) fn load(path: &Path) -> Result<Manifest, ManifestError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Manifest::parse(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Manifest::default()),
            Err(source) => Err(ManifestError::Read {
                file: path.to_path_buf(),
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_validates() {
        let f = Path::new("cdb.toml");
        let m =
            Manifest::parse("file_suffix = \".cdb\"\nmemory_mib = 8\ninstances = 4\n", f).unwrap();
        assert_eq!(
            (m.file_suffix.as_str(), m.memory_bytes, m.instances),
            (".cdb", 8 << 20, 4)
        );
        assert!(Manifest::parse("digest = \"xyz\"", f)
            .unwrap_err()
            .to_string()
            .contains("digest"));
        assert!(Manifest::parse("memroy_mib = 8", f)
            .unwrap_err()
            .to_string()
            .contains("memroy_mib"));
        assert!(Manifest::parse("file_suffix = \"/../x\"", f).is_err());
        assert!(Manifest::parse("file_lock = \"flock\"", f).unwrap().flock);
        assert!(Manifest::parse("file_lock = \"fcntl\"", f)
            .unwrap_err()
            .to_string()
            .contains("file_lock"));
    }
}
