//! The `proxymapd-bench` binary's commands, one file each (private to the
//! binary; the instruments they drive are in the library).

pub(crate) mod echo_server;
pub(crate) mod load;
pub(crate) mod vs_postfix;
