//! proxymapd: a wire-compatible replacement for Postfix's proxymap(8).
//!
//! Layers, from the wire inwards: [`codec`] (bytes ↔ requests and replies,
//! no I/O; the `proxymapd-codec` crate, re-exported here), [`server`]
//! (sockets, connections, deadlines, signals; knows no table formats),
//! [`registry`] (shared open tables, allowlists, reopen on change) and
//! [`dict`] (map types behind one trait). [`config`] builds the
//! settings from a Postfix configuration directory or our own TOML file.

pub mod allowlist;
pub use proxymapd_client as client;
pub use proxymapd_codec as codec;
pub mod config;
pub mod convert;
pub mod dict;
mod error_chain;
pub mod gate;
pub use proxymapd_sdk::flags;
pub mod handler;
pub mod log_limit;
pub mod logging;
pub mod master;
pub mod plugin;
pub mod privileges;
pub mod registry;
pub mod server;
pub(crate) mod sql;
