//! Turning a plugin's core WebAssembly module (as `cargo build --target
//! wasm32-unknown-unknown` produces it, with the component-type section
//! wit-bindgen embeds) into a component. Components pass through unchanged.

use anyhow::{anyhow, Result};

/// True when `bytes` is a component rather than a core module.
pub(crate) fn is_component(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[4..8] == [0x0d, 0x00, 0x01, 0x00]
}

/// The component for `bytes` (a core module with embedded WIT metadata, or
/// already a component).
pub fn componentize(bytes: &[u8]) -> Result<Vec<u8>> {
    if is_component(bytes) {
        return Ok(bytes.to_vec());
    }
    wit_component::ComponentEncoder::default()
        .module(bytes)
        .and_then(|e| e.validate(true).encode())
        .map_err(|e| anyhow!("cannot make a component of this module: {e:#}"))
}
