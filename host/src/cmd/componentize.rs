//! `proxymapd componentize`: turn a plugin's core WebAssembly module into a
//! component (the plugin build scripts call it) and print its digest.

use anyhow::{Context, Result};
use std::path::Path;

/// Read `input`, write the component to `output`.
pub(crate) fn run(input: &Path, output: &Path) -> Result<i32> {
    let bytes = std::fs::read(input).with_context(|| format!("read {}", input.display()))?;
    let component = proxymapd::plugin::componentize::componentize(&bytes)?;
    std::fs::write(output, &component).with_context(|| format!("write {}", output.display()))?;
    println!(
        "{} ({} bytes, blake3 {})",
        output.display(),
        component.len(),
        blake3::hash(&component).to_hex()
    );
    Ok(0)
}
