//! `proxymapd digest`: print a plugin file's blake3 digest, the value its
//! manifest's `digest` key pins.

use anyhow::Result;
use std::path::Path;

/// Print the digest of `file`.
pub(crate) fn run(file: &Path) -> Result<i32> {
    let bytes = std::fs::read(file).map_err(|e| anyhow::anyhow!("read {}: {e}", file.display()))?;
    println!("{}", blake3::hash(&bytes).to_hex());
    Ok(0)
}
