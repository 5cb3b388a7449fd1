//! The README runs as written. Its command blocks marked with an HTML comment
//! `<!-- readme-test: NAME -->` right before a ```` ```sh ```` fence are read
//! out of README.md and run on a scratch configuration: the two set-up
//! commands at the top, pointing proxymapd at a Postfix configuration, the
//! plugin-authoring walkthrough and the `proxymapd query` examples. A README
//! walkthrough that breaks, or a marked block that disappears, fails here.
//!
//! Paths the README writes for a real system (`/etc/postfix`,
//! `/etc/proxymapd/plugins`, `/var/lib/postfix`, `/path/to/proxymapd`) are
//! rewritten to scratch ones, and each rewrite must find its text, so a README
//! edit never sends a command to the real system; Postfix's own commands read
//! the scratch configuration through `MAIL_CONFIG`, and `proxymapd` is the
//! binary cargo built for these tests, first on `PATH`. The demo runs on that
//! binary instead of `cargo run --release` (a release build takes minutes);
//! the test command cannot run inside the tests it runs, so it is checked to
//! be exactly what CI runs.

mod common;

use common::{Need, Server};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Every block name a README marker may carry; each is run by a test below.
const BLOCKS: [&str; 4] = ["setup", "postfix", "plugin", "query"];

/// The workspace root, where README.md lives.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The workspace root as text, for substituting into commands.
fn root_dir() -> String {
    root().display().to_string()
}

fn readme() -> String {
    std::fs::read_to_string(root().join("README.md")).expect("read README.md")
}

fn marker(name: &str) -> String {
    format!("<!-- readme-test: {name} -->")
}

/// The text of the README block marked `name`, without its fences.
fn block(name: &str) -> String {
    let text = readme();
    let marker = marker(name);
    let mut lines = text.lines().skip_while(|l| l.trim() != marker);
    assert!(
        lines.next().is_some(),
        "README.md has lost the line `{marker}` before its `{name}` commands: \
         tests/readme.rs runs that block, so put the marker back before it"
    );
    assert_eq!(
        lines.next().map(str::trim),
        Some("```sh"),
        "`{marker}` in README.md must come right before a ```sh block"
    );
    let mut body = String::new();
    for line in lines {
        if line.trim() == "```" {
            assert!(!body.trim().is_empty(), "the README block {name} is empty");
            return body;
        }
        body.push_str(line);
        body.push('\n');
    }
    panic!("the README block marked {name} is never closed");
}

/// The one-line commands of a block, each with its trailing `# comment`.
fn commands(name: &str) -> Vec<(String, String)> {
    block(name)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match l.split_once(" #") {
            Some((command, note)) => (command.trim().to_string(), note.trim().to_string()),
            None => (l.trim().to_string(), String::new()),
        })
        .collect()
}

/// `text` with `from` replaced by `to`; `from` must occur, so that a README
/// edit cannot slip a system path past the test.
fn rewrite(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "the README block no longer contains `{from}`; adjust tests/readme.rs:\n{text}"
    );
    text.replace(from, to)
}

/// Fails if a command still names the real system after the rewrites: a
/// path that starts with `/etc/` or `/var/` (not one inside the scratch
/// directory), the README's placeholder, or `pidof`.
fn assert_scratch_only(script: &str) {
    for system in ["/etc/", "/var/"] {
        for (at, _) in script.match_indices(system) {
            let before = script[..at].chars().next_back();
            assert!(
                before.is_some_and(|c| c.is_alphanumeric() || "._-".contains(c)),
                "a README command still names a path under `{system}` after the rewrites:\n{script}"
            );
        }
    }
    for system in ["/path/to/", "pidof"] {
        assert!(
            !script.contains(system),
            "a README command still names `{system}` after the rewrites:\n{script}"
        );
    }
}

/// A scratch Postfix configuration in `dir/etc`, approving `read_maps` and
/// `write_maps` (`$root` expands to `dir`), with empty `dir/var`,
/// `dir/plugins` and `dir/cache`.
fn scratch_postfix(read_maps: &str, write_maps: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    for sub in ["etc", "var", "plugins", "cache"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    // Laid out as on a Postfix host, because `proxymapd serve` started as
    // root runs as mail_owner: tables readable by all, the write tables'
    // directory and the compile cache owned by mail_owner.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    if proxymapd::privileges::running_as_root() {
        let owner = proxymapd::privileges::lookup("postfix").expect("the postfix user");
        for sub in ["var", "cache"] {
            proxymapd::privileges::give(&dir.path().join(sub), &owner).unwrap();
        }
    }
    std::fs::write(
        dir.path().join("etc/main.cf"),
        format!(
            "queue_directory = {root}/queue\ncompatibility_level = 3.6\n\
             proxy_read_maps = {}\nproxy_write_maps = {}\n",
            read_maps.replace("$root", &root),
            write_maps.replace("$root", &root)
        ),
    )
    .unwrap();
    dir
}

/// Start proxymapd with the `proxymapd serve` line of the README's Postfix
/// block, `/etc/postfix` being the scratch configuration. The plugin
/// directory and compile cache are scratch ones too (`--plugin-dir`,
/// `PROXYMAPD_CACHE_DIR`): the defaults are the system's.
fn serve_as_the_readme_says(dir: tempfile::TempDir) -> Server {
    let (line, _) = commands("postfix")
        .into_iter()
        .find(|(c, _)| c.starts_with("proxymapd serve "))
        .expect("the README's Postfix block has a `proxymapd serve` line");
    let etc = dir.path().join("etc").display().to_string();
    let line = rewrite(&line, "/etc/postfix", &etc);
    assert_scratch_only(&line);
    let plugins = dir.path().join("plugins").display().to_string();
    let cache = dir.path().join("cache").display().to_string();
    let mut args: Vec<&str> = line.split_whitespace().skip(1).collect();
    args.extend(["--plugin-dir", &plugins]);
    Server::spawn(dir, &args, &[("PROXYMAPD_CACHE_DIR", &cache)])
}

/// Run `script` with bash in `cwd`: stops at the first failing command,
/// traces each command to stderr, finds the built `proxymapd` first on
/// `PATH`, and Postfix's commands read `dir/etc` (`MAIL_CONFIG`).
fn sh(dir: &Path, cwd: &Path, script: &str, env: &[(&str, &str)]) -> Output {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_proxymapd")).parent().unwrap();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let path = std::env::join_paths(
        std::iter::once(bin_dir.to_path_buf()).chain(std::env::split_paths(&path)),
    )
    .unwrap();
    Command::new("bash")
        .args(["-e", "-x", "-c", script])
        .current_dir(cwd)
        .env("PATH", path)
        .env("MAIL_CONFIG", dir.join("etc"))
        .env("PROXYMAPD", env!("CARGO_BIN_EXE_proxymapd"))
        .envs(env.iter().copied())
        .output()
        .expect("run bash")
}

/// Panics with everything the script said unless it succeeded.
fn assert_ran(out: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn every_readme_marker_names_a_block_this_test_runs() {
    let text = readme();
    let mut found: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("<!-- readme-test: "))
        .map(|l| l.trim_end_matches("-->").trim())
        .collect();
    found.sort_unstable();
    let mut expected = BLOCKS.to_vec();
    expected.sort_unstable();
    assert_eq!(
        found, expected,
        "README.md's readme-test markers (each exactly once) differ from those tests/readme.rs runs"
    );
}

/// The first set-up command, `cargo run --release -p proxymapd -- demo`, with
/// the binary cargo built for the tests in place of a release build (the
/// same program; a release build would take minutes) and a scratch `--dir`
/// in place of `/tmp/proxymapd-demo`. It shows a lookup, the `query` line it
/// suggests works, and Ctrl-C stops it cleanly.
#[test]
fn readme_demo_serves_shows_a_lookup_and_stops_on_ctrl_c() {
    let setup = commands("setup");
    assert_eq!(
        setup.len(),
        2,
        "the README opens with two commands: {setup:?}"
    );
    let args = setup[0]
        .0
        .strip_prefix("cargo run --release -p proxymapd -- ")
        .unwrap_or_else(|| panic!("the README's first command runs proxymapd: {setup:?}"));
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("demo.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_proxymapd"))
        .args(args.split_whitespace())
        .arg("--dir")
        .arg(dir.path().join("demo"))
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let (lines_tx, lines) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let try_line = loop {
        match lines.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => {
                if let Some(command) = line.trim().strip_prefix("Try: ") {
                    break command.to_string();
                }
                seen.push(line);
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the demo never suggested a query; stdout so far: {seen:?}\nstderr:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        }
    };
    assert!(
        seen.iter().any(|l| l.trim() == "-> admin@example.net"),
        "the demo shows a lookup: {seen:?}"
    );
    let out = sh(dir.path(), dir.path(), &try_line, &[]);
    let answer = assert_ran(&out, &format!("the demo's suggestion `{try_line}`"));
    assert!(answer.contains("sales@example.net"), "{answer}");
    // SAFETY: kill(2) on our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "the demo exits cleanly on Ctrl-C: {status}"
    );
}

/// The second set-up command is the test command: this test cannot run it
/// from inside the tests it runs, so it checks that it is exactly what CI
/// runs (`.ci/run`), and that it runs the whole workspace's tests.
#[test]
fn readme_test_command_is_what_ci_runs() {
    let setup = commands("setup");
    let test_command = &setup[1].0;
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    let ci_command = ci
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap();
    assert_eq!(
        test_command, ci_command,
        "the README's test command is CI's"
    );
    let script = test_command
        .strip_prefix("bash ")
        .expect("the test command is a bash script");
    let run = std::fs::read_to_string(root().join(script)).unwrap();
    assert!(
        run.contains("cargo test --workspace"),
        "{script} runs every test of the workspace"
    );
}

/// "Pointing it at an existing Postfix" and "`proxymapd query`": `check`
/// approves the scratch configuration, `serve` serves it, and each query
/// example answers with exit status 0, on an lmdb table made by `postmap`
/// and a cache that proxywrite creates.
#[test]
fn readme_postfix_and_query_examples_work() {
    if common::skip_without(&[Need::Postfix]) {
        return;
    }
    let dir = scratch_postfix(
        "proxy:lmdb:$root/etc/virtual",
        "proxy:lmdb:$root/var/lib/postfix/cache",
    );
    let root = dir.path().to_path_buf();
    std::fs::create_dir_all(root.join("var/lib/postfix")).unwrap();
    if proxymapd::privileges::running_as_root() {
        // data_directory belongs to mail_owner on a Postfix host.
        let owner = proxymapd::privileges::lookup("postfix").expect("the postfix user");
        proxymapd::privileges::give(&root.join("var/lib/postfix"), &owner).unwrap();
    }
    std::fs::write(
        root.join("etc/virtual"),
        "user@example.com user@elsewhere.example\n",
    )
    .unwrap();
    let made = sh(&root, &root, "postmap lmdb:$MAIL_CONFIG/virtual", &[]);
    assert_ran(&made, "postmap lmdb:virtual");
    let etc = root.join("etc").display().to_string();
    let var = root.join("var").display().to_string();
    let scratch = |line: &str| {
        let line = rewrite(line, "/etc/postfix", &etc).replace("/var/", &format!("{var}/"));
        assert_scratch_only(&line);
        line
    };

    let postfix = commands("postfix");
    let (check, _) = postfix
        .iter()
        .find(|(c, _)| c.starts_with("proxymapd check "))
        .expect("the README's Postfix block has a `proxymapd check` line");
    let checked = assert_ran(&sh(&root, &root, &scratch(check), &[]), check);
    assert!(checked.contains("ok: proxymap: lmdb:"), "{checked}");

    let _server = serve_as_the_readme_says(dir);
    let cache = format!("{var}/lib/postfix/cache");
    for (line, _) in commands("query") {
        let out = sh(&root, &root, &scratch(&line), &[]);
        let stdout = assert_ran(&out, &line);
        let words: Vec<&str> = line.split_whitespace().collect();
        if line.contains("--sequence") {
            assert!(stdout.contains("user@example.com"), "{line}: {stdout}");
        } else if line.contains("--write") {
            // Stored through proxywrite, readable by Postfix's own postmap.
            let [.., key, value] = words[..] else {
                panic!("{line}")
            };
            let direct = sh(&root, &root, &format!("postmap -q {key} lmdb:{cache}"), &[]);
            assert_eq!(assert_ran(&direct, "postmap -q").trim(), value, "{line}");
        } else if line.contains("--delete") {
            let key = words.last().unwrap();
            let direct = sh(&root, &root, &format!("postmap -q {key} lmdb:{cache}"), &[]);
            assert_eq!(direct.status.code(), Some(1), "{line}: the key is gone");
        } else {
            assert_eq!(stdout.trim(), "user@elsewhere.example", "{line}");
        }
    }
}

/// "Writing a map type", from `cargo new` to the answering `postmap -q`:
/// the crate is made in a scratch directory, built with the SDK's one
/// command into the scratch plugin directory, approved with `postconf -e`
/// and the SIGHUP sent to the scratch server (not to every `proxymapd` that
/// `pidof` would find), whose reload the test awaits before the lookup,
/// which must print what the README's `# prints` comment says.
#[test]
fn readme_plugin_walkthrough_builds_a_plugin_postmap_can_query() {
    // The shipped plugins being built means the WebAssembly toolchain that
    // sdk/build-plugin.sh needs is there (tests/run.sh installs it).
    if common::skip_without(&[Need::Postfix, Need::Plugins]) {
        return;
    }
    let walkthrough = block("plugin");
    let expected = walkthrough
        .lines()
        .find_map(|l| l.split_once("# prints ").map(|(_, p)| p.trim().to_string()))
        .expect("the walkthrough's last command says what it prints");
    let dir = scratch_postfix("", "");
    let root = dir.path().to_path_buf();
    let plugins = root.join("plugins").display().to_string();
    let script = rewrite(&walkthrough, "/path/to/proxymapd", &root_dir());
    let script = rewrite(&script, "/etc/proxymapd/plugins", &plugins);
    let script = rewrite(
        &script,
        "kill -HUP $(pidof proxymapd)",
        "kill -HUP $PROXYMAPD_PID && wait_for_reload",
    );
    assert_scratch_only(&script);
    let server = serve_as_the_readme_says(dir);
    let preamble = "wait_for_reload() {
  for _ in $(seq 400); do
    grep -q 'configuration reloaded' \"$PROXYMAPD_LOG\" && return 0
    sleep 0.05
  done
  echo 'proxymapd logged no reload' >&2; return 1
}
";
    let pid = server.child.id().to_string();
    let log = server.path("proxymapd.log").display().to_string();
    // The crate lives at the same path on every run of this checkout:
    // build-plugin.sh may fold the crate's path into RUSTFLAGS, and a new
    // path each time would rebuild the standard library cached in
    // PLUGIN_TARGET_DIR. Not under the target directory: that may lie inside
    // this workspace, which `cargo new` would then join.
    let checkout = blake3::hash(root_dir().as_bytes()).to_hex();
    let work = std::env::temp_dir().join(format!("proxymapd-readme-{}", &checkout[..12]));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let out = sh(
        &root,
        &work,
        &format!("{preamble}{script}"),
        &[("PROXYMAPD_PID", &pid), ("PROXYMAPD_LOG", &log)],
    );
    let stdout = assert_ran(&out, "the README's plugin walkthrough");
    assert_eq!(
        stdout.lines().last().map(str::trim),
        Some(expected.as_str()),
        "the walkthrough's postmap -q prints what the README says:\n{stdout}\nserver log:\n{}",
        server.log_text()
    );
    // Kept when the test fails, to look into.
    let _ = std::fs::remove_dir_all(&work);
}
