//! The `proxymapd` binary's subcommands, one file each. Private to the
//! binary (declared from `main.rs`, not part of the library): each turns
//! parsed arguments into calls on the `proxymapd` library and returns the
//! process exit status.

pub(crate) mod check;
pub(crate) mod componentize;
pub(crate) mod convert;
pub(crate) mod demo;
pub(crate) mod digest;
pub(crate) mod master;
pub(crate) mod query;
pub(crate) mod serve;
pub(crate) mod settings;
