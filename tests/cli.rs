//! Command-line tests: `check` reports every approved table and fails on
//! broken ones, `demo --once` serves the bundled examples and shows a lookup,
//! `query` talks to a running server, `--version` and `--help` answer, and a
//! second `serve` on sockets already served refuses to start.

mod common;

use common::{lookup_reply, read_frame, Server};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::{Duration, Instant};

fn proxymapd(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_proxymapd"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn check_opens_every_approved_table_and_reports_problems() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    std::fs::write(dir.path().join("good"), "a b\n").unwrap();
    std::fs::write(dir.path().join("dup"), "a 1\na 2\n").unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "queue_directory = \"{d}/q\"\nproxy_read_maps = \"proxy:texthash:{d}/good proxy:texthash:{d}/dup proxy:nosuchtype:{d}/x\"\n\
             proxy_write_maps = \"proxy:lmdb:{d}/later\"\n"
        ),
    )
    .unwrap();
    let out = proxymapd(&["check", "--config", &config.to_string_lossy()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!("ok: proxymap: texthash:{d}/good")),
        "{text}"
    );
    assert!(
        text.contains(&format!("{d}/dup, line 2: duplicate entry")),
        "{text}"
    );
    assert!(
        text.contains("unsupported dictionary type: nosuchtype"),
        "{text}"
    );
    assert!(text.contains("(created on first update)"), "{text}");
    assert!(
        text.contains("4 approved tables, 2 with problems"),
        "{text}"
    );
    std::fs::write(
        &config,
        format!("queue_directory = \"{d}/q\"\nproxy_read_maps = \"proxy:texthash:{d}/good\"\n"),
    )
    .unwrap();
    let out = proxymapd(&["check", "--config", &config.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn demo_serves_the_examples_and_shows_a_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_proxymapd"))
        .args(["demo", "--once", "--dir", &dir.path().to_string_lossy()])
        // No plugin directory of ours: the plugin tables are served by the
        // plugins carried in the binary.
        .env("PROXYMAPD_CACHE_DIR", dir.path().join("cache"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}\n{log}");
    for (map_type, served_by, answer) in [
        ("texthash", "built in", "admin@example.net"),
        ("cdb", "WebAssembly plugin", "jane.doe@example.net"),
        ("cidr", "WebAssembly plugin", "REJECT documentation network"),
        ("regexp", "WebAssembly plugin", "REJECT spam subject"),
        ("pcre", "WebAssembly plugin", "PREPEND X-Flagged: score 12"),
    ] {
        assert!(
            text.contains(&format!("({map_type}: {served_by})\n  -> {answer}\n")),
            "{map_type}: {text}"
        );
    }
    for map_type in ["cdb", "cidr", "regexp", "pcre"] {
        assert!(
            log.contains(&format!(
                "plugin {map_type}: loaded from shipped in proxymapd"
            )),
            "{map_type}: {log}"
        );
    }
}

#[test]
fn query_prints_values_and_exit_codes_like_postmap() {
    let srv = Server::start_toml("proxy_read_maps = \"proxy:inline:{a=b, c=d}\"\n", |_| {});
    let config = srv.path("proxymapd.toml");
    let config = config.to_string_lossy();
    let out = proxymapd(&["query", "--config", &config, "proxy:inline:{a=b, c=d}", "A"]);
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).as_ref()
        ),
        (Some(0), "b\n")
    );
    let out = proxymapd(&["query", "--config", &config, "inline:{a=b, c=d}", "zz"]);
    assert_eq!(out.status.code(), Some(1));
    let out = proxymapd(&[
        "query",
        "--config",
        &config,
        "--sequence",
        "inline:{a=b, c=d}",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a\tb\nc\td\n");
    let out = proxymapd(&["query", "--config", &config, "static:denied", "k"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("DENY"));
}

#[test]
fn version_and_help() {
    let out = proxymapd(&["--version"]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("proxymapd "));
    let out = proxymapd(&["--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["serve", "check", "query", "demo"] {
        assert!(text.contains(cmd), "{text}");
    }
}

#[test]
fn sandboxed_map_type_without_its_plugin_stops_startup_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!("queue_directory = \"{d}/q\"\nsandboxed_map_types = [\"nosuchplugin\"]\n"),
    )
    .unwrap();
    let out = proxymapd(&["check", "--config", &config.to_string_lossy()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "sandboxed map type nosuchplugin: no nosuchplugin.wasm in the plugin directories"
        ),
        "{err}"
    );
    std::fs::write(
        &config,
        format!("queue_directory = \"{d}/q\"\nsandboxed_map_types = [\"bad/name\"]\n"),
    )
    .unwrap();
    let out = proxymapd(&["check", "--config", &config.to_string_lossy()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("sandboxed_map_types") && err.contains("bad/name"),
        "{err}"
    );
}

/// Run `proxymapd serve` on `config` and wait (at most 10 s) for it to exit:
/// its exit code and standard error.
fn serve_expecting_exit(config: &std::path::Path) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_proxymapd"))
        .args(["serve", "--config", &config.to_string_lossy()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            return (status.code(), err);
        }
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the second server did not exit within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_second_server_on_the_same_sockets_refuses_and_leaves_the_first_serving() {
    let srv = Server::start_toml(
        "greeting = \"proxymap\"\nproxy_read_maps = \"proxy:inline:{a=b}\"\n",
        |_| {},
    );
    let (code, err) = serve_expecting_exit(&srv.path("proxymapd.toml"));
    assert!(code.is_some_and(|c| c != 0), "{code:?}: {err}");
    assert!(
        err.contains(&format!("pid {}", srv.child.id())),
        "names the first server: {err}"
    );
    assert!(
        err.contains(&srv.proxymap.display().to_string()),
        "names the socket: {err}"
    );
    assert!(srv.proxymap.exists(), "the socket of the first is intact");
    let mut s = UnixStream::connect(&srv.proxymap).unwrap();
    read_frame(&mut s);
    assert_eq!(
        lookup_reply(&mut s, "inline:{a=b}", 0, "a"),
        (0, "b".to_string())
    );
}

#[test]
fn a_socket_served_by_another_program_is_not_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("queue/private");
    std::fs::create_dir_all(&private).unwrap();
    // Someone else (say, Postfix's proxymap) listens on the socket.
    let socket = private.join("proxymap");
    let other = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "queue_directory = \"{}/queue\"\ngreeting = \"proxymap\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let (code, err) = serve_expecting_exit(&config);
    assert!(code.is_some_and(|c| c != 0), "{code:?}: {err}");
    assert!(
        err.contains("served by another process")
            && err.contains(&format!("pid {}", std::process::id()))
            && err.contains("stop that service first"),
        "{err}"
    );
    assert!(socket.exists());
    drop(other);
    // Now nobody listens: the stale socket is replaced as usual.
    let mut child = Command::new(env!("CARGO_BIN_EXE_proxymapd"))
        .args(["serve", "--config", &config.to_string_lossy()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    // Another test's child may briefly hold a copy of the dropped listener
    // between its fork and exec, so a connection may still land there: retry.
    let served = loop {
        if let Ok(mut s) = UnixStream::connect(&socket) {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut byte = [0u8; 1];
            if matches!(std::io::Read::read(&mut s, &mut byte), Ok(1)) {
                break true;
            }
        }
        if start.elapsed() > Duration::from_secs(20) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(served, "proxymapd replaced the stale socket and answered");
}

/// Every `tests/*.rs` is an integration test cargo knows about: cargo
/// discovers them through the `host/tests` link to `tests/`, and this fails
/// if that link or discovery (`autotests = false`) ever goes, instead of new
/// test files silently never compiling. Asks `cargo metadata`, which takes
/// no build lock, so it runs fine inside `cargo test`.
#[test]
fn cargo_discovers_every_integration_test_file() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--no-deps",
            "--offline",
            "--format-version",
            "1",
        ])
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let canonical = |p: &std::path::Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let known: std::collections::HashSet<_> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap())
        .filter(|t| t["kind"].as_array().unwrap().iter().any(|k| k == "test"))
        .map(|t| canonical(std::path::Path::new(t["src_path"].as_str().unwrap())))
        .collect();
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(root.join("tests")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") && !known.contains(&canonical(&path)) {
            missing.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    assert!(
        known.contains(&canonical(&root.join("tests/cli.rs"))),
        "cargo metadata lists no test target for tests/cli.rs: {known:?}"
    );
    assert!(
        missing.is_empty(),
        "tests/{missing:?} are not integration tests cargo knows about: they never run \
         (host/tests must link to ../tests and the host package must keep autotests on)"
    );
}

/// The server's life is a library function: run in-process, answer, reload
/// and stop when told, and leave no socket behind.
#[test]
fn the_server_runs_in_process_and_stops_when_told() {
    use proxymapd::server::lifecycle::{self, Control};
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("virt"), "alive yes\n").unwrap();
    let config = dir.path().join("proxymapd.toml");
    std::fs::write(
        &config,
        format!(
            "queue_directory = \"{0}/queue\"\nproxy_read_maps = \"proxy:texthash:{0}/virt\"\ngreeting = \"proxymap\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let settings = proxymapd::config::toml_file::load(&config).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (control, commands) = tokio::sync::mpsc::channel(4);
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let server = runtime.spawn(lifecycle::run(
        settings.clone(),
        proxymapd::dict::MapTypes::builtin(),
        commands,
        Some(ready_tx),
    ));
    runtime.block_on(ready_rx).unwrap();
    let table = format!("texthash:{}/virt", dir.path().display());
    let mut client = proxymapd::client::Client::connect(&settings.proxymap_socket, true).unwrap();
    let reply = client.lookup(&table, 16448, b"alive").unwrap();
    assert_eq!(reply.get("value"), Some(&b"yes"[..]));
    runtime.block_on(control.send(Control::Reload)).unwrap();
    assert_eq!(
        client.lookup(&table, 16448, b"alive").unwrap().status(),
        Some(0),
        "the connection survives a reload"
    );
    drop(client);
    runtime.block_on(control.send(Control::Stop)).unwrap();
    runtime.block_on(server).unwrap().unwrap();
    assert!(
        !settings.proxymap_socket.exists(),
        "the socket is removed on stop"
    );
}

/// master(8) and some service managers start daemons without `PATH`:
/// postconf is still found in Postfix's usual command directory, so main.cf
/// is read as Postfix reads it (here: `$mail_version`, which only postconf
/// knows, expands).
#[test]
fn postconf_is_found_without_path() {
    if common::skip_without(&[common::Need::Postfix]) {
        return;
    }
    let version = Command::new("postconf")
        .args(["-dh", "mail_version"])
        .output()
        .unwrap();
    let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("main.cf"),
        format!(
            "queue_directory = {}/queue\nproxy_read_maps = proxy:static:$mail_version\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_proxymapd"))
        .args(["check", "--postfix-config"])
        .arg(dir.path())
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("ok: proxymap: static:{version}")),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
