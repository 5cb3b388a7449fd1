//! Skipping a test whose prerequisites are missing (Postfix, LMDB's tools,
//! the built plugins or proxymapd binary), with one line saying why, or
//! failing it under the test command's strict mode. Shared by the tests in
//! this directory (through `common`) and by the benchmark crate's tests,
//! which include this file alone: nothing here needs the proxymapd package.

#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;

/// Set by the README's test command (tests/run.sh): a missing prerequisite
/// then fails the test instead of skipping it, so CI cannot pass by skipping.
pub const STRICT_VAR: &str = "PROXYMAPD_TESTS_STRICT";

/// What a test needs beyond a Rust toolchain.
#[derive(Debug, Clone, Copy)]
pub enum Need {
    /// Postfix's own programs (`postmap`, `postconf`), for side-by-side answers.
    Postfix,
    /// The test plugins (tests/plugins, examples), built beside the
    /// proxymapd binary; the shipped plugins are always in it.
    Plugins,
    /// The proxymapd binary itself (always there for the proxymapd
    /// package's tests; other packages' tests find it in the target
    /// directory once `cargo build -p proxymapd` has run).
    Proxymapd,
    /// LMDB's tools (`mdb_dump`, `mdb_stat`).
    LmdbTools,
    /// Debian's `systemd-socket-activate` (package systemd).
    SocketActivate,
    /// PostgreSQL's server programs (package postgresql) and Postfix's
    /// pgsql client (package postfix-pgsql).
    Postgres,
    /// MariaDB's server programs (package mariadb-server) and Postfix's
    /// mysql client (package postfix-mysql).
    Mysql,
}

/// The proxymapd binary: cargo's for the proxymapd package's own tests,
/// otherwise the one in the target directory this test was built into.
pub fn proxymapd_exe() -> PathBuf {
    if let Some(exe) = option_env!("CARGO_BIN_EXE_proxymapd") {
        return PathBuf::from(exe);
    }
    // Tests run from <target>/<profile>/deps/; binaries sit in <profile>/.
    let me = std::env::current_exe().expect("test executable path");
    me.parent()
        .and_then(|deps| deps.parent())
        .expect("test executable in a target directory")
        .join("proxymapd")
}

/// The newest installed PostgreSQL's server programs.
pub fn postgres_bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
        .collect();
    dirs.sort();
    dirs.pop()
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

fn missing(need: Need) -> Option<&'static str> {
    let present = match need {
        Need::Postfix => on_path("postmap") && on_path("postconf"),
        Need::Plugins => {
            let exe = proxymapd_exe();
            let dir = exe.parent().unwrap();
            dir.join("test-plugins/hostile.wasm").exists()
        }
        Need::LmdbTools => on_path("mdb_dump") && on_path("mdb_stat"),
        Need::Proxymapd => proxymapd_exe().is_file(),
        Need::SocketActivate => on_path("systemd-socket-activate"),
        Need::Postgres => {
            postgres_bin_dir().is_some()
                && std::fs::read_to_string("/etc/postfix/dynamicmaps.cf")
                    .is_ok_and(|t| t.lines().any(|l| l.starts_with("pgsql")))
        }
        Need::Mysql => {
            std::path::Path::new("/usr/sbin/mariadbd").exists()
                && on_path("mariadb-install-db")
                && std::fs::read_to_string("/etc/postfix/dynamicmaps.cf")
                    .is_ok_and(|t| t.lines().any(|l| l.starts_with("mysql")))
        }
    };
    (!present).then_some(match need {
        Need::Postfix => "Postfix (postmap, postconf) is not installed",
        Need::Plugins => "the test plugins are not built beside the proxymapd binary",
        Need::LmdbTools => "LMDB's tools (mdb_dump, mdb_stat) are not installed",
        Need::Proxymapd => "the proxymapd binary is not built (cargo build -p proxymapd)",
        Need::SocketActivate => "systemd-socket-activate (Debian package systemd) is not installed",
        Need::Postgres => "PostgreSQL (package postgresql) or Postfix's pgsql client (postfix-pgsql) is not installed",
        Need::Mysql => "MariaDB (package mariadb-server) or Postfix's mysql client (postfix-mysql) is not installed",
    })
}

/// True when the calling test must be skipped for a missing prerequisite
/// (after printing one line saying why); `bash tests/run.sh` installs and
/// builds them all. Under [`STRICT_VAR`] a missing prerequisite panics.
pub fn skip_without(needs: &[Need]) -> bool {
    let Some(why) = needs.iter().find_map(|n| missing(*n)) else {
        return false;
    };
    if std::env::var_os(STRICT_VAR).is_some() {
        panic!("{why} ({STRICT_VAR} is set: missing prerequisites fail)");
    }
    // Straight to the stream: the test harness captures eprintln!.
    let _ = writeln!(
        std::io::stderr(),
        "skipped: {why}; `bash tests/run.sh` installs and builds everything"
    );
    true
}
