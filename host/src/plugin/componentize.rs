//! Turning a plugin's core WebAssembly module (as `cargo build --target
//! wasm32-unknown-unknown` produces it, with the component-type section
//! wit-bindgen embeds) into a component. Components pass through unchanged.

/// A core module that cannot be made a component (not WebAssembly, or
/// without the WIT metadata wit-bindgen embeds); the encoder's reasons are
/// the error's sources.
#[derive(Debug, thiserror::Error)]
#[error("cannot make a component of this module")]
pub struct ComponentizeError(#[source] Box<dyn std::error::Error + Send + Sync>);

/// True when `bytes` is a component rather than a core module.
pub(crate) fn is_component(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[4..8] == [0x0d, 0x00, 0x01, 0x00]
}

/// The component for `bytes` (a core module with embedded WIT metadata, or
/// already a component).
pub fn componentize(bytes: &[u8]) -> Result<Vec<u8>, ComponentizeError> {
    if is_component(bytes) {
        return Ok(bytes.to_vec());
    }
    wit_component::ComponentEncoder::default()
        .module(bytes)
        .and_then(|e| e.validate(true).encode())
        .map_err(|e| ComponentizeError(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_names_the_encoders_reason() {
        let e = componentize(b"not wasm").unwrap_err();
        assert_eq!(e.to_string(), "cannot make a component of this module");
        let chain = crate::error_chain::Chain(&e).to_string();
        assert!(
            chain.starts_with("cannot make a component of this module: decoding item in module: "),
            "{chain}"
        );
    }
}
