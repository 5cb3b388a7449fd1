//! `proxymapd-bench echo-server`: the fixed-reply echo server on a socket,
//! the ceiling the side-by-side run measures next to the table servers.

use anyhow::Result;
use clap::Args;
use proxymapd_bench::echo;
use proxymapd_codec::Greeting;
use std::path::PathBuf;

/// Options of `echo-server`.
#[derive(Args)]
pub(crate) struct EchoServerArgs {
    /// Socket to listen on.
    #[arg(long, value_name = "PATH")]
    socket: PathBuf,
    /// Do not send the Postfix 3.6+ greeting.
    #[arg(long)]
    no_greeting: bool,
}

/// Serve until killed.
pub(crate) fn run(args: &EchoServerArgs) -> Result<i32> {
    let greeting = if args.no_greeting {
        Greeting::None
    } else {
        Greeting::Proxymap
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(echo::run(&args.socket, greeting))?;
    Ok(0)
}
