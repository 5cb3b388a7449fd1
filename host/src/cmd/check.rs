//! `proxymapd check`: validate the configuration and open every approved
//! table of both services, reading database files whole, and say which
//! tables have problems (exit status 1 if any does).

use super::settings::{load_args, map_types, ConfigArgs};
use anyhow::Result;
use proxymapd::dict::{sigbus, Dict, DictError, SeqStep};
use proxymapd::server::Service;
use proxymapd::{flags, logging};

/// Check every approved table and report.
pub(crate) fn run(args: &ConfigArgs) -> Result<i32> {
    let settings = load_args(args)?;
    logging::init("error");
    let types = map_types(&settings)?;
    // Walking hash/btree files reads them through mappings: guard them as
    // the server does, so a file shrunk meanwhile is reported, not fatal.
    sigbus::install();
    let open_flags = flags::LOCK | flags::FOLD_FIX;
    let mut problems = 0;
    let mut count = 0;
    for (service, tables) in [
        (Service::Read, settings.allowlists().read),
        (Service::Write, settings.allowlists().write),
    ] {
        for table in tables.tables() {
            count += 1;
            match types.open(table, open_flags, false, settings.utf8) {
                Ok(dict) => match walk(&*dict) {
                    Ok(Some(n)) => println!("ok: {}: {table} ({n} entries read)", service.name()),
                    Ok(None) => println!("ok: {}: {table}", service.name()),
                    Err(e) => {
                        problems += 1;
                        println!("error: {}: table {table}: {e}", service.name());
                    }
                },
                Err(e) if service == Service::Write && e.missing => {
                    println!("ok: {}: {table} (created on first update)", service.name())
                }
                Err(e) => {
                    problems += 1;
                    println!("error: {}: {e}", service.name());
                }
            }
        }
    }
    println!("{count} approved tables, {problems} with problems");
    Ok(if problems == 0 { 0 } else { 1 })
}

/// Read every entry of a table kept in a database file (the map type says
/// so: hash, btree, lmdb), so a damaged file is found now rather than at the
/// lookup that meets the bad page; the count, or `None` for other tables.
fn walk(dict: &dyn Dict) -> Result<Option<usize>, DictError> {
    if !dict.is_database_file() {
        return Ok(None);
    }
    let mut step = SeqStep::First;
    let mut count = 0;
    loop {
        match dict.sequence(step, flags::LOCK) {
            Ok(Some(_)) => count += 1,
            Ok(None) => return Ok(Some(count)),
            Err(e) => return Err(e),
        }
        step = SeqStep::Next;
    }
}
