//! `proxymapd query`: one lookup, update, delete or table listing through a
//! running server, like `postmap -q KEY proxy:TABLE`, with postmap's exit
//! codes (0 found, 1 not found, 2 on errors).

use super::settings::{load, ConfigArgs};
use anyhow::{Context, Result};
use clap::Args;
use proxymapd::client::Client;
use proxymapd::codec::Status;
use proxymapd::flags;
use std::path::PathBuf;

/// Options of `query`.
#[derive(Args)]
pub(crate) struct QueryArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Socket to talk to (default: from the configuration).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Store KEY VALUE through proxywrite.
    #[arg(long, conflicts_with_all = ["delete", "sequence"])]
    write: bool,
    /// Delete KEY through proxywrite.
    #[arg(long, conflicts_with = "sequence")]
    delete: bool,
    /// List every key and value of the table.
    #[arg(long)]
    sequence: bool,
    /// Request flags (default: LOCK|FOLD_FIX, as postmap sends).
    #[arg(long, default_value_t = flags::LOCK | flags::FOLD_FIX)]
    flags: u32,
    /// Table, `type:name` (a leading `proxy:` is accepted).
    table: String,
    /// Key to look up, store or delete.
    key: Option<String>,
    /// Value to store (with --write).
    value: Option<String>,
}

/// Send the request(s) and print the answer.
pub(crate) fn run(args: QueryArgs) -> Result<i32> {
    let writing = args.write || args.delete;
    let (socket, greeting) = match &args.socket {
        Some(path) => (
            path.clone(),
            load(&args.config.source())
                .map(|s| s.connection.greeting)
                .unwrap_or_default(),
        ),
        None => {
            let s = load(&args.config.source())?;
            let socket = if writing {
                s.proxywrite_socket
                    .clone()
                    .context("this configuration has no proxywrite socket")?
            } else {
                s.proxymap_socket.clone()
            };
            (socket, s.connection.greeting)
        }
    };
    let mut client = Client::connect(&socket, greeting == proxymapd::codec::Greeting::Proxymap)?;
    let table = args.table.as_str();
    let key = || args.key.clone().context("a KEY is required");
    // Called for statuses other than OK and NOKEY.
    let status_error = |status: Option<u32>| -> anyhow::Error {
        match status.and_then(Status::from_code) {
            Some(status) => anyhow::anyhow!("{table}: {status}"),
            None => anyhow::anyhow!("{table}: unexpected reply"),
        }
    };
    if args.sequence {
        let mut first = true;
        loop {
            let reply = client.sequence(table, args.flags, first)?;
            first = false;
            match reply.status() {
                Some(0) => println!(
                    "{}\t{}",
                    String::from_utf8_lossy(reply.get("key").unwrap_or_default()),
                    String::from_utf8_lossy(reply.get("value").unwrap_or_default())
                ),
                Some(1) => return Ok(0),
                other => return Err(status_error(other)),
            }
        }
    }
    let reply = if args.write {
        let value = args.value.clone().context("--write needs KEY and VALUE")?;
        client.update(table, args.flags, key()?.as_bytes(), value.as_bytes())?
    } else if args.delete {
        client.delete(table, args.flags, key()?.as_bytes())?
    } else {
        client.lookup(table, args.flags, key()?.as_bytes())?
    };
    match reply.status() {
        Some(0) => {
            if !writing {
                println!(
                    "{}",
                    String::from_utf8_lossy(reply.get("value").unwrap_or_default())
                );
            }
            Ok(0)
        }
        Some(1) => Ok(1),
        other => Err(status_error(other)),
    }
}
