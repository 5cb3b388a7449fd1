//! Measuring instruments: a load generator that speaks the proxymap protocol
//! to any server (ours or Postfix's), a fixed-reply echo server that marks the
//! ceiling no table server can beat on a machine, and /proc sampling of the
//! server's CPU time and memory. Used by `proxymapd bench`, `proxymapd
//! echo-server` and the side-by-side harness in `bench/`.

pub mod echo;
pub mod harness;
pub mod load;
pub mod pattern_tables;
pub mod postfix;
pub mod procstat;
pub mod report;
