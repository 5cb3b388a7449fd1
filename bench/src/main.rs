//! The `proxymapd-bench` command: load a proxymap-protocol server and report
//! rate and latency (the top-level options), run the same load against a
//! private Postfix proxymap and proxymapd side by side (`vs-postfix`), or
//! serve the fixed-reply ceiling (`echo-server`). Argument parsing and
//! dispatch only; each command lives in its own file under `cmd/`.

mod cmd;

use clap::{Parser, Subcommand};

/// Load generator and side-by-side benchmark for proxymap servers.
///
/// Without a subcommand, loads the server at --socket and reports rate and
/// latency.
#[derive(Parser)]
#[command(
    name = "proxymapd-bench",
    version,
    about,
    args_conflicts_with_subcommands = true,
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    load: Option<cmd::load::LoadArgs>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the same load against a private Postfix proxymap and proxymapd, side by side.
    VsPostfix(cmd::vs_postfix::VsPostfixArgs),
    /// Answer every request with one fixed reply: the throughput ceiling.
    EchoServer(cmd::echo_server::EchoServerArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match (cli.command, cli.load) {
        (Some(Command::VsPostfix(args)), _) => cmd::vs_postfix::run(args),
        (Some(Command::EchoServer(args)), _) => cmd::echo_server::run(&args),
        (None, Some(args)) => cmd::load::run(args),
        (None, None) => unreachable!("clap requires arguments or a subcommand"),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(err) => {
            eprintln!("proxymapd-bench: fatal: {err:#}");
            std::process::exit(2);
        }
    }
}
