//! Command-line tests: `check` reports every approved table and fails on
//! broken ones, `demo --once` serves the bundled examples and shows a lookup,
//! `query` talks to a running server, `--version` and `--help` answer.

mod common;

use common::Server;
use std::process::Command;

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
    let out = proxymapd(&["demo", "--once", "--dir", &dir.path().to_string_lossy()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("-> admin@example.net"), "{text}");
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
