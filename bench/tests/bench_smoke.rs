//! The benchmark harness, smoke-sized: a private Postfix instance (real
//! master and proxymap) and proxymapd serve the same tables; both must give
//! identical answers to hits, misses and upper-case keys, and a few hundred
//! concurrent requests each must see no error. No timing is asserted.
//! Runs `proxymapd-bench vs-postfix --smoke` against the proxymapd binary
//! (and its plugins) built in the same target directory.

#[path = "../../tests/common/skip.rs"]
mod skip;

use skip::Need;
use std::process::Command;

#[test]
fn postfix_and_proxymapd_give_identical_answers_under_load() {
    if skip::skip_without(&[Need::Postfix, Need::Proxymapd]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_proxymapd-bench"))
        .args(["vs-postfix", "--smoke", "--proxymapd"])
        .arg(skip::proxymapd_exe())
        .arg("--workdir")
        .arg(dir.path().join("work"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for table in ["texthash", "lmdb", "cdb"] {
        assert!(
            stdout.contains(&format!("{table}: 300 probes identical"))
                && stdout.contains("0 errors"),
            "{stdout}"
        );
    }
}
