//! Running as a child of Postfix's master(8), as the command of the
//! `proxymap` and `proxywrite` lines of master.cf: the daemon command line
//! master builds ([`options`]) and the status channel through which a
//! child says it is ready and hears that master wants it gone ([`status`]).
//! The child's life itself is `server::lifecycle::run_child`; the binary's
//! `cmd/master.rs` puts the pieces together in Postfix's startup order.

pub mod options;
pub mod status;
