//! `proxymapd-bench vs-postfix`: the side-by-side run. Starts a private
//! Postfix, two proxymapd servers (native and sandboxed plugin) and the echo
//! server on identical tables, measures each in turn and writes the Markdown
//! and SVG reports (`bench/vs-postfix.sh` runs it for docs/benchmarks.md);
//! `--smoke` only checks identical answers and zero errors.

use anyhow::{Context, Result};
use clap::Args;
use proxymapd_bench::{harness, report};
use std::path::PathBuf;

/// Options of `vs-postfix`.
#[derive(Args)]
pub(crate) struct VsPostfixArgs {
    /// Scratch directory for tables, instances and sockets.
    #[arg(long, default_value = "/tmp/proxymapd-bench")]
    workdir: PathBuf,
    /// Write benchmarks.md and benchmarks.svg here.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// The proxymapd binary to measure (default: the one beside this
    /// program, else proxymapd on PATH).
    #[arg(long, value_name = "PATH")]
    proxymapd: Option<PathBuf>,
    /// Seconds per timed run.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Concurrency levels.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32,128")]
    concurrency: Vec<usize>,
    /// Repetitions per (server, table, C), alternating the servers.
    #[arg(long, default_value_t = 2)]
    repetitions: usize,
    /// Entries per table.
    #[arg(long, default_value_t = 100_000)]
    entries: usize,
    /// Fraction of lookups that miss.
    #[arg(long, default_value_t = 0.1)]
    miss_ratio: f64,
    /// Only check identical answers and zero errors with a few hundred requests.
    #[arg(long)]
    smoke: bool,
    /// Measure only the proxywrite `btree:` table (C = 1 and 8) and the
    /// echo ceiling; the report goes to benchmarks-write.md.
    #[arg(long)]
    write_only: bool,
    /// Measure only the SQL tables (pgsql and mysql on private servers
    /// started here, sqlite; plain and 1 ms queries) and the echo ceiling;
    /// the report, with the database connections each server held, goes
    /// to benchmarks-sql.md.
    #[arg(long)]
    sql: bool,
    /// proxymapd's pool size in the SQL run (connections per database
    /// server shared by its tables).
    #[arg(long, default_value_t = 4)]
    sql_pool_size: usize,
}

/// The proxymapd to measure when none is named: the one installed or built
/// beside this program (cargo puts both in one target directory), else
/// whatever `proxymapd` the PATH finds.
fn default_proxymapd(me: &std::path::Path) -> PathBuf {
    me.parent()
        .map(|dir| dir.join("proxymapd"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("proxymapd"))
}

/// What `cmd args` printed, trimmed (empty if it could not run).
fn command_output(cmd: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Run the comparison (or the smoke check) and print or write the report.
pub(crate) fn run(args: VsPostfixArgs) -> Result<i32> {
    let me = std::env::current_exe().context("locate proxymapd-bench")?;
    let opts = harness::Options {
        workdir: args.workdir.clone(),
        proxymapd: args
            .proxymapd
            .clone()
            .unwrap_or_else(|| default_proxymapd(&me)),
        echo_server: me,
        duration: std::time::Duration::from_secs_f64(args.duration),
        concurrency: args.concurrency.clone(),
        repetitions: args.repetitions.max(1),
        entries: if args.smoke {
            args.entries.min(2_000)
        } else {
            args.entries
        },
        miss_ratio: args.miss_ratio,
        smoke: args.smoke,
        write_only: args.write_only,
        sql: args.sql,
        sql_pool_size: args.sql_pool_size.max(1),
    };
    let servers = harness::Servers::start(&opts)?;
    if args.smoke {
        for line in servers.smoke()? {
            println!("{line}");
        }
        return Ok(0);
    }
    let rows = harness::run(&opts, &servers, |r| {
        eprintln!(
            "{:9} {:8} C={:<3} {:>8.0} req/s  p50 {:>7.0} us  p99 {:>7.0} us  cpu {:>5.1} us/req  errors {}",
            r.server, r.table, r.concurrency, r.rps, r.p50_us, r.p99_us, r.cpu_us_per_request, r.errors
        )
    })?;
    drop(servers);
    let rows = report::average(&rows);
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let header = format!(
        "Run on {date} by `bash bench/vs-postfix.sh`: {cores} cores ({cpu_model}), Linux {kernel}, \
         Postfix {postfix} (private instance, stock process limits), proxymapd {version}.\n\n\
         Each client is a strict request→reply loop like a Postfix client, over UNIX sockets, on the same machine as \
         the servers (the load generator shares the cores). Tables: {entries} entries, the same source as `texthash:` and \
         as `lmdb:`, `hash:` and `cdb:` files built by Postfix's postmap; proxymapd serves `hash:` natively and, as \
         server `proxymapd-plugin` (a second proxymapd started with `--sandbox hash`), through the WebAssembly plugin, \
         and `cdb:` through its plugin; {miss:.0}% of lookups miss. `regexp-500` is a 500-rule regexp table shaped like \
         smtpd checks (host names, sender rewriting with `$1`, header-check rules, if/endif blocks) and `cidr-10k` a \
         10,000-line cidr client list, both through proxymapd's plugins; about a third of their keys match a rule, the \
         rest walk every rule. `btree-write-update` is the proxywrite service: verify(8)'s update (flags \
         UTF8_REQUEST, OPEN_LOCK, SYNC_UPDATE, DUP_REPLACE: each one synced to the file before the answer, which \
         proxymapd also journals) of random keys into a `btree:` file of each server's own, at C = 1 and 8; \
         `btree-write-lookup` looks keys up on proxywrite in the table those updates filled; Postfix runs one \
         proxywrite process (maxproc 1), as stock master.cf does. Each (server, table, C) ran {reps}× for \
         {dur} s after a 0.3 s warm-up, Postfix and proxymapd alternating so drift cancels; the echo server answers every \
         request with a fixed reply (the ceiling for this protocol on this machine). CPU µs/req is server CPU time \
         (all its processes) per request; client CPU µs/req is the load generator's own, on the same cores.",
        date = command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        cores = command_output("nproc", &[]),
        kernel = command_output("uname", &["-r"]),
        postfix = command_output("postconf", &["-dh", "mail_version"]),
        // The measured binary's own version, not this program's.
        version = command_output(&opts.proxymapd, &["--version"])
            .trim_start_matches("proxymapd "),
        entries = opts.entries,
        miss = opts.miss_ratio * 100.0,
        reps = opts.repetitions,
        dur = args.duration,
    );
    let header = if args.sql {
        sql_header(&header, opts.sql_pool_size)
    } else {
        header
    };
    let headline = if args.sql {
        report::sql_headline(&rows)
    } else if args.write_only {
        report::write_headline(&rows)
    } else {
        format!(
            "{} {}",
            report::headline(&rows, 32),
            report::write_headline(&rows)
        )
    };
    let mut md = format!(
        "{}\n## Headline\n\n{headline}\n",
        report::markdown(&rows, &header),
    );
    if args.sql {
        // No plot for the SQL run.
        md = md.replace(
            "\n\n![req/s and p99 latency against concurrency](benchmarks.svg)",
            "",
        );
    }
    println!("{headline}");
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out)?;
        if args.sql {
            std::fs::write(out.join("benchmarks-sql.md"), md)?;
            println!("wrote {}/benchmarks-sql.md", out.display());
        } else if args.write_only {
            std::fs::write(out.join("benchmarks-write.md"), md)?;
            println!("wrote {}/benchmarks-write.md", out.display());
        } else {
            std::fs::write(out.join("benchmarks.md"), md)?;
            std::fs::write(out.join("benchmarks.svg"), report::svg(&rows))?;
            println!("wrote {}/benchmarks.md and benchmarks.svg", out.display());
        }
    } else {
        println!("{md}");
    }
    Ok(0)
}

/// The SQL run's description: which tables, on which servers, and how the
/// connections are counted (the general header's first sentence kept).
fn sql_header(general: &str, pool_size: usize) -> String {
    let first = general.split("\n\n").next().unwrap_or_default();
    format!(
        "{first}\n\n\
         Each client is a strict request→reply loop like a Postfix client, over UNIX sockets, on the \
         same machine as the servers and the databases. Tables: `users(address, dest)` with 10,000 \
         rows (primary key on address) in a private PostgreSQL cluster and a private MariaDB \
         server (both started by the benchmark, TCP on loopback with password authentication) and \
         in a SQLite file; `pgsql`, `mysql` and `sqlite` look a key up by `SELECT dest FROM users \
         WHERE address='%s'`, `pgsql-1ms` and `mysql-1ms` run the same lookup with a 1 ms wait in \
         the database (`pg_sleep(0.001)`, `SLEEP(0.001)`). 10% of lookups miss. Postfix's proxymap \
         runs with stock process limits (up to 100 processes, each with its own connection per \
         table), proxymapd with `--sql-pool-size {pool_size}`: at most {pool_size} connections per \
         database server, shared by every table (a table holds at most one less while another \
         shares the pool). Each server connects as a database user of its own; `connections` is how \
         many that user held right after the run (`pg_stat_activity`, MariaDB's processlist). \
         The echo server answers every request with a fixed reply (the protocol's ceiling here)."
    )
}
