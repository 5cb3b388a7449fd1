//! What the tests that run a private Postfix master(8) share: the command
//! for a master.cf line that runs the built proxymapd, Postfix's commands on
//! a private configuration directory, and the proxymapd processes master
//! started.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The master.cf command that runs the built proxymapd: master runs
/// `$daemon_directory/COMMAND` (an absolute command fails), so a path
/// relative to the daemon directory.
pub fn command_for_master() -> String {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_proxymapd"));
    let out = Command::new("postconf")
        .args(["-dh", "daemon_directory"])
        .output()
        .expect("postconf");
    let daemon_dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let ups = daemon_dir.components().count().saturating_sub(1);
    let mut rel = "../".repeat(ups);
    rel.push_str(exe.to_string_lossy().trim_start_matches('/'));
    rel
}

/// Run a Postfix command (`postfix`, `postmap`, …) with `-c etc`.
pub fn postfix_command(program: &str, etc: &Path, args: &[&str]) -> Output {
    Command::new(program)
        .arg("-c")
        .arg(etc)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

/// `postfix -c etc stop`, quietly, for clean-up after a failed test.
pub fn stop_quietly(etc: &Path) {
    let _ = Command::new("postfix")
        .arg("-c")
        .arg(etc)
        .arg("stop")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The proxymapd processes whose parent is the master whose pid file is
/// `queue/pid/master.pid`, with their command lines.
pub fn proxymapd_children(queue: &Path) -> Vec<(i32, String)> {
    let Some(master) = std::fs::read_to_string(queue.join("pid/master.pid"))
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok())
    else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if !cmdline.contains("proxymapd") {
            continue;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let ppid: i32 = stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        if ppid == master {
            found.push((pid, cmdline));
        }
    }
    found
}

/// Whether process `pid` exists.
pub fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}
