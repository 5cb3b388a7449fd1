//! `proxymapd convert`: copy a Berkeley DB table (`hash:` or `btree:`, read
//! by the pure-Rust reader, no libdb) into an `lmdb:` or `cdb:` table, for
//! sites moving off Berkeley DB. Entries are copied as Postfix stores them
//! in each format: lmdb keeps the trailing NUL Berkeley DB tables carry,
//! cdb stores keys and values without it, as `postmap cdb:` does. The
//! source is read under Postfix's shared flock; the output is written to a
//! temporary file beside the target and renamed over it, so a reader never
//! sees it half-written.

use crate::dict::file_lock::{LockStyle, TableLock};
use crate::dict::lmdb_env::Env;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Why a conversion failed; the text names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// A table name this command does not convert from or to.
    #[error("{0}")]
    Usage(String),
    /// Reading the source failed.
    #[error("{path}: {message}")]
    Read {
        /// The source file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Writing the target failed.
    #[error("{path}: {message}")]
    Write {
        /// The target file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// Keys and values as stored.
type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Split `TYPE:NAME`.
fn split(table: &str) -> Result<(&str, &str), ConvertError> {
    table
        .split_once(':')
        .filter(|(t, n)| !t.is_empty() && !n.is_empty())
        .ok_or_else(|| ConvertError::Usage(format!("{table}: expected TYPE:NAME")))
}

/// Every entry of the Berkeley DB table `NAME.db`, as stored.
fn read_berkeley(name: &str, kind: &str) -> Result<Entries, ConvertError> {
    let path = PathBuf::from(format!("{name}.db"));
    let fail = |message: String| ConvertError::Read {
        path: path.clone(),
        message,
    };
    let file = std::fs::File::open(&path).map_err(|e| fail(e.to_string()))?;
    let lock = TableLock::with_style(file.as_raw_fd(), LockStyle::Flock);
    let bytes = {
        let _shared = lock.shared(true).map_err(|e| fail(format!("lock: {e}")))?;
        std::fs::read(&path).map_err(|e| fail(e.to_string()))?
    };
    let db = proxymapd_bdb::Db::open(&bytes[..]).map_err(|e| fail(e.to_string()))?;
    if db.kind().map_type() != kind {
        return Err(fail(format!(
            "the file is a {} database, not {kind}",
            db.kind().map_type()
        )));
    }
    let mut entries = Vec::new();
    let mut cursor = None;
    while let Some((c, (k, v))) = db.next(cursor).map_err(|e| fail(e.to_string()))? {
        entries.push((k.into_owned(), v.into_owned()));
        cursor = Some(c);
    }
    Ok(entries)
}

fn strip_nul(b: &[u8]) -> &[u8] {
    b.strip_suffix(&[0]).unwrap_or(b)
}

/// Write `entries` as an lmdb file at `path`.
fn write_lmdb(path: &Path, entries: &Entries) -> Result<(), String> {
    let bytes: usize = entries.iter().map(|(k, v)| k.len() + v.len() + 64).sum();
    let map_size = (bytes * 3).max(16 << 20);
    let mut env = Env::open(path, true, map_size).map_err(|e| e.to_string())?;
    for (k, v) in entries {
        env.put(k, v).map_err(|e| e.to_string())?;
    }
    env.sync().map_err(|e| e.to_string())
}

/// djb's cdb hash.
fn cdb_hash(key: &[u8]) -> u32 {
    key.iter().fold(5381u32, |h, &c| {
        (h.wrapping_shl(5).wrapping_add(h)) ^ u32::from(c)
    })
}

/// Write `entries` as a cdb file at `path` (keys and values without NUL).
fn write_cdb(path: &Path, entries: &Entries) -> Result<(), String> {
    let mut body = Vec::new();
    let mut slots: Vec<Vec<(u32, u32)>> = vec![Vec::new(); 256];
    let mut offset: u64 = 2048;
    for (k, v) in entries {
        let (k, v) = (strip_nul(k), strip_nul(v));
        let h = cdb_hash(k);
        let at = u32::try_from(offset).map_err(|_| "table over 4 GiB".to_string())?;
        slots[(h & 255) as usize].push((h, at));
        body.extend_from_slice(&(k.len() as u32).to_le_bytes());
        body.extend_from_slice(&(v.len() as u32).to_le_bytes());
        body.extend_from_slice(k);
        body.extend_from_slice(v);
        offset += 8 + k.len() as u64 + v.len() as u64;
    }
    let mut header = Vec::with_capacity(2048);
    let mut tables = Vec::new();
    for slot in &slots {
        let len = slot.len() * 2;
        let at = u32::try_from(offset).map_err(|_| "table over 4 GiB".to_string())?;
        header.extend_from_slice(&at.to_le_bytes());
        header.extend_from_slice(&(len as u32).to_le_bytes());
        let mut table = vec![(0u32, 0u32); len];
        for &(h, pos) in slot {
            let mut i = ((h >> 8) as usize) % len;
            while table[i].1 != 0 {
                i = (i + 1) % len;
            }
            table[i] = (h, pos);
        }
        for (h, pos) in table {
            tables.extend_from_slice(&h.to_le_bytes());
            tables.extend_from_slice(&pos.to_le_bytes());
        }
        offset += len as u64 * 8;
    }
    let mut file = std::fs::File::create(path).map_err(|e| e.to_string())?;
    for part in [&header, &body, &tables] {
        file.write_all(part).map_err(|e| e.to_string())?;
    }
    file.sync_all().map_err(|e| e.to_string())
}

/// Convert the table `from` (`hash:NAME` or `btree:NAME`) into `to`
/// (`lmdb:NAME` or `cdb:NAME`); returns the number of entries.
pub fn convert(from: &str, to: &str) -> Result<usize, ConvertError> {
    let (from_type, from_name) = split(from)?;
    let (to_type, to_name) = split(to)?;
    if !matches!(from_type, "hash" | "btree") {
        return Err(ConvertError::Usage(format!(
            "{from}: convert reads hash: and btree: tables"
        )));
    }
    let suffix = match to_type {
        "lmdb" => "lmdb",
        "cdb" => "cdb",
        _ => {
            return Err(ConvertError::Usage(format!(
                "{to}: convert writes lmdb: and cdb: tables"
            )))
        }
    };
    let entries = read_berkeley(from_name, from_type)?;
    let target = PathBuf::from(format!("{to_name}.{suffix}"));
    let temp = PathBuf::from(format!("{to_name}.{suffix}.tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&temp);
    let written = match to_type {
        "lmdb" => write_lmdb(&temp, &entries),
        _ => write_cdb(&temp, &entries),
    };
    let fail = |message: String| ConvertError::Write {
        path: target.clone(),
        message,
    };
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(fail(e));
    }
    std::fs::rename(&temp, &target).map_err(|e| fail(e.to_string()))?;
    Ok(entries.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdb_hash_is_djbs() {
        // Known value: hash("") = 5381.
        assert_eq!(cdb_hash(b""), 5381);
        assert_eq!(cdb_hash(b"a"), (5381u32 * 33) ^ 97);
    }

    #[test]
    fn names_are_checked() {
        assert!(matches!(
            convert("texthash:/x", "lmdb:/y"),
            Err(ConvertError::Usage(_))
        ));
        assert!(matches!(
            convert("hash:/x", "pcre:/y"),
            Err(ConvertError::Usage(_))
        ));
        assert!(matches!(
            convert("hash", "lmdb:/y"),
            Err(ConvertError::Usage(_))
        ));
    }
}
