//! The `proxymapd` command: argument parsing and dispatch. Each subcommand
//! (`serve`, `check`, `query`, `convert`, `demo`, `componentize`, `digest`) lives in its
//! own file under `cmd/`, and so does the master(8) child mode, chosen when
//! the first argument is a Postfix daemon option; the server itself is the
//! `proxymapd` library.

mod cmd;

use clap::{Parser, Subcommand};
use cmd::query::QueryArgs;
use cmd::settings::ConfigArgs;
use std::path::PathBuf;

/// A wire-compatible replacement for Postfix's proxymap(8) table server.
#[derive(Parser)]
#[command(name = "proxymapd", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the proxymap and proxywrite sockets.
    Serve(ConfigArgs),
    /// Validate the configuration and open every approved table.
    Check(ConfigArgs),
    /// Query a running server, like `postmap -q KEY proxy:TABLE`.
    Query(QueryArgs),
    /// Turn a plugin's core WebAssembly module into a component (plugin builds use this).
    Componentize {
        /// Core module (or component) to read.
        input: PathBuf,
        /// Component to write.
        output: PathBuf,
    },
    /// Print the blake3 digest of a plugin, for its manifest's `digest` key.
    Digest {
        /// The plugin file.
        file: PathBuf,
    },
    /// Copy a hash: or btree: table into an lmdb: or cdb: table, without libdb.
    Convert {
        /// The table to read, e.g. hash:/etc/postfix/virtual.
        from: String,
        /// The table to write, e.g. lmdb:/etc/postfix/virtual.
        to: String,
    },
    /// Serve the bundled example tables and show a lookup.
    Demo {
        /// Directory for the example tables and sockets.
        #[arg(long, default_value = "/tmp/proxymapd-demo")]
        dir: PathBuf,
        /// Exit after showing the lookup instead of serving on.
        #[arg(long)]
        once: bool,
    },
}

fn main() {
    // master(8) puts Postfix's daemon options first: `proxymapd -l -n
    // proxymap -t unix -u`.
    let args: Vec<String> = std::env::args().collect();
    if proxymapd::master::options::is_master_invocation(&args[1..]) {
        std::process::exit(cmd::master::run(&args[0], &args[1..]));
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => cmd::serve::run(&args),
        Command::Check(args) => cmd::check::run(&args),
        Command::Query(args) => cmd::query::run(args),
        Command::Demo { dir, once } => cmd::demo::run(&dir, once),
        Command::Componentize { input, output } => cmd::componentize::run(&input, &output),
        Command::Digest { file } => cmd::digest::run(&file),
        Command::Convert { from, to } => cmd::convert::run(&from, &to),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(err) => {
            eprintln!("proxymapd: fatal: {err:#}");
            std::process::exit(2);
        }
    }
}
