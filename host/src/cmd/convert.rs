//! `proxymapd convert FROM TO`: copy a hash: or btree: table into an lmdb:
//! or cdb: one without libdb (the work is `proxymapd::convert`).

use anyhow::Result;

/// Convert and say how many entries were copied.
pub(crate) fn run(from: &str, to: &str) -> Result<i32> {
    let n = proxymapd::convert::convert(from, to)?;
    println!("{from} -> {to}: {n} entries");
    Ok(0)
}
