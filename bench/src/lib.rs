//! Measuring instruments for proxymap servers: a load generator that speaks
//! the proxymap protocol to any server (ours or Postfix's), a fixed-reply
//! echo server that marks the ceiling no table server can beat on a machine,
//! /proc sampling of the server's CPU time and memory, a private Postfix
//! instance and the side-by-side harness with its Markdown and SVG reports.
//!
//! The `proxymapd-bench` crate: it talks to servers through the wire client
//! (`proxymapd-client`) and the codec only, so the server build carries none
//! of it. Its binary (`proxymapd-bench --socket ...`, `echo-server`,
//! `vs-postfix`) is in `main.rs`; `bench/vs-postfix.sh` drives the
//! side-by-side run.

pub mod echo;
pub mod harness;
pub mod load;
pub mod pattern_tables;
pub mod postfix;
pub mod procstat;
pub mod report;
pub mod sql_tables;
