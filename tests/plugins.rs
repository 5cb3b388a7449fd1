//! WebAssembly plugin tests: the shipped cdb plugin against real Postfix,
//! hostile plugins contained by the sandbox while other tables keep
//! serving, digest pinning, replacing a plugin at run time, the compile
//! cache, and the example CSV plugin. The plugins are built by tests/run.sh
//! into `plugins/` (shipped) and `test-plugins/` beside the proxymapd binary.

mod common;

use common::Need;

use common::{frame, install_plugin as install, read_frame, Server};
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const FLAGS: &[u8] = b"16448";

fn connect(path: &Path) -> UnixStream {
    let mut s = UnixStream::connect(path).unwrap();
    read_frame(&mut s);
    s
}

fn lookup(s: &mut UnixStream, table: &str, key: &str) -> Vec<u8> {
    s.write_all(&frame(&[
        ("request", b"lookup"),
        ("table", table.as_bytes()),
        ("flags", FLAGS),
        ("key", key.as_bytes()),
    ]))
    .unwrap();
    read_frame(s)
}

fn status(reply: &[u8]) -> u8 {
    reply[7] - b'0'
}

fn value(reply: &[u8]) -> String {
    let text = String::from_utf8_lossy(reply).into_owned();
    text.split('\0').nth(3).unwrap_or("").to_string()
}

fn plugin_server(read_maps: &str, setup: impl FnOnce(&Path)) -> Server {
    Server::start_toml(
        &format!(
            "proxy_read_maps = \"{read_maps}\"\nplugin_dirs = [\"$dir/plugins\"]\nplugin_cache_dir = \"$dir/cache\"\n"
        ),
        |dir| {
            std::fs::write(dir.join("good"), "alive yes\n").unwrap();
            setup(dir)
        },
    )
}

#[test]
fn shipped_cdb_plugin_answers_like_postfix_without_configuration() {
    if common::skip_without(&[Need::Postfix, Need::Plugins]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (etc, data) = (dir.path().join("etc"), dir.path().join("data"));
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    let mut source = String::new();
    let mut keys = Vec::new();
    for i in 0..400 {
        let key = match i % 4 {
            0 => format!("user{i}@example.com"),
            1 => format!("jürgen{i}@exämple.de"),
            2 => format!("@domain{i}.example"),
            _ => format!("key-{i}"),
        };
        let value = if i % 9 == 0 {
            "v".repeat(1500)
        } else {
            format!("value {i} ü")
        };
        source.push_str(&format!("{key}  {value}\n"));
        keys.push(key.clone());
        keys.push(key.to_uppercase());
        keys.push(format!("missing-{key}"));
    }
    std::fs::write(data.join("virt"), source).unwrap();
    std::fs::write(
        etc.join("main.cf"),
        format!(
            "queue_directory = {}/queue\ncompatibility_level = 3.6\nproxy_read_maps = proxy:cdb:{}/virt\n",
            dir.path().display(),
            data.display()
        ),
    )
    .unwrap();
    let postmap = |args: &[&str], input: &str| {
        let mut child = Command::new("postmap")
            .arg("-c")
            .arg(&etc)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("postmap (tests/run.sh installs Postfix)");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let table = format!("cdb:{}/virt", data.display());
    assert!(postmap(&[&table], "").status.success());
    let cache = dir.path().join("cache");
    let etc_arg = etc.to_string_lossy().into_owned();
    let srv_dir = tempfile::tempdir().unwrap();
    let _srv = Server::spawn(
        srv_dir,
        &["serve", "--postfix-config", &etc_arg, "--user", "root"],
        &[("PROXYMAPD_CACHE_DIR", &cache.to_string_lossy())],
    );
    let input = keys.join("\n") + "\n";
    let proxied = postmap(&["-q", "-", &format!("proxy:{table}")], &input);
    let direct = postmap(&["-q", "-", &table], &input);
    assert_eq!(proxied.status.code(), direct.status.code());
    let out = String::from_utf8_lossy(&proxied.stdout);
    assert_eq!(out, String::from_utf8_lossy(&direct.stdout));
    assert!(
        out.lines().count() >= 800,
        "hits and upper-case hits: {}",
        out.lines().count()
    );
    // Postfix cannot sequence cdb tables (postmap -s fails); neither do we:
    // the request answers CONFIG.
    let ours = Command::new(env!("CARGO_BIN_EXE_proxymapd"))
        .args([
            "query",
            "--postfix-config",
            &etc_arg,
            "--sequence",
            &format!("proxy:{table}"),
        ])
        .output()
        .unwrap();
    let theirs = postmap(&["-s", &table], "");
    assert!(!theirs.status.success());
    assert!(String::from_utf8_lossy(&theirs.stderr).contains("sequence operation is not supported"));
    assert_eq!(ours.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&ours.stderr).contains("CONFIG"),
        "{}",
        String::from_utf8_lossy(&ours.stderr)
    );
    // Rebuilt by postmap (written to a temporary file and renamed): picked up.
    std::fs::write(data.join("virt"), "key-3 rebuilt\n").unwrap();
    assert!(postmap(&[&table], "").status.success());
    let after = postmap(&["-q", "key-3", &format!("proxy:{table}")], "");
    assert_eq!(String::from_utf8_lossy(&after.stdout), "rebuilt\n");
}

/// Run `probe` against a hostile table while another client hammers a
/// healthy table; the healthy client must see no error at all.
fn contained(mode: &str, expect_status: u8, expect_log: &str) {
    let srv = plugin_server(
        &format!("proxy:texthash:$dir/good proxy:hostile:{mode}"),
        |dir| {
            install(&dir.join("plugins"), "test-plugins", "hostile", "hostile");
        },
    );
    let good = format!("texthash:{}", srv.path("good").display());
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, bad) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let bystander = {
        let (stop, ok, bad, path, good) = (
            stop.clone(),
            ok.clone(),
            bad.clone(),
            srv.proxymap.clone(),
            good.clone(),
        );
        std::thread::spawn(move || {
            let mut s = connect(&path);
            while !stop.load(Ordering::Relaxed) {
                if value(&lookup(&mut s, &good, "alive")) == "yes" {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    bad.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let mut s = connect(&srv.proxymap);
    for _ in 0..2 {
        let started = Instant::now();
        let reply = lookup(&mut s, &format!("hostile:{mode}"), "k");
        assert_eq!(
            status(&reply),
            expect_status,
            "{mode}: {:?}",
            String::from_utf8_lossy(&reply)
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{mode} took {:?}",
            started.elapsed()
        );
    }
    let log = srv.wait_for_log(expect_log);
    assert!(log.contains(&format!("hostile:{mode}")), "{log}");
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    bystander.join().unwrap();
    assert!(
        ok.load(Ordering::Relaxed) > 10,
        "the healthy table kept answering"
    );
    assert_eq!(
        bad.load(Ordering::Relaxed),
        0,
        "the healthy table never failed"
    );
    // The server is still whole: the healthy table answers on a new connection.
    assert_eq!(
        value(&lookup(&mut connect(&srv.proxymap), &good, "alive")),
        "yes"
    );
}

#[test]
fn infinite_loop_costs_one_request() {
    if common::skip_without(&[Need::Postfix, Need::Plugins]) {
        return;
    }
    contained("loop", 2, "time limit exceeded");
}

#[test]
fn unbounded_allocation_costs_one_request() {
    if common::skip_without(&[Need::Postfix, Need::Plugins]) {
        return;
    }
    contained("alloc", 2, "lookup failed");
}

#[test]
fn panic_costs_one_request() {
    if common::skip_without(&[Need::Postfix, Need::Plugins]) {
        return;
    }
    contained("panic", 2, "lookup failed");
}

#[test]
fn escaping_the_sandbox_fails() {
    if common::skip_without(&[Need::Postfix, Need::Plugins]) {
        return;
    }
    contained("escape", 2, "escape attempts all failed");
}

#[test]
fn huge_reply_is_refused() {
    if common::skip_without(&[Need::Postfix, Need::Plugins]) {
        return;
    }
    contained("huge", 2, "more than the 1048576-byte limit");
}

/// An operator's plugin directory adds to and overrides the map types
/// shipped in the binary: a `cdb.wasm` there serves `cdb:` tables, and once
/// it is removed the shipped cdb plugin serves them again.
#[test]
fn a_plugin_directory_overrides_a_shipped_map_type() {
    if common::skip_without(&[Need::Plugins]) {
        return;
    }
    let srv = plugin_server("proxy:cdb:echo proxy:cdb:$dir/relocated", |dir| {
        install(&dir.join("plugins"), "test-plugins", "hostile", "cdb");
        let example =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/tables/relocated.cdb");
        std::fs::copy(example, dir.join("relocated.cdb")).unwrap();
    });
    let mut s = connect(&srv.proxymap);
    assert_eq!(value(&lookup(&mut s, "cdb:echo", "k")), "hostile:k");
    let log = srv.wait_for_log("plugin cdb: loaded from");
    assert!(log.contains("plugins/cdb.wasm"), "{log}");
    std::fs::remove_file(srv.path("plugins/cdb.wasm")).unwrap();
    std::fs::remove_file(srv.path("plugins/cdb.toml")).unwrap();
    let relocated = format!("cdb:{}", srv.path("relocated").display());
    assert_eq!(
        value(&lookup(&mut s, &relocated, "jdoe@example.com")),
        "jane.doe@example.net"
    );
    srv.wait_for_log("plugin cdb: loaded from shipped in proxymapd");
}

#[test]
fn digest_mismatch_is_refused_with_both_digests() {
    if common::skip_without(&[Need::Postfix, Need::Plugins]) {
        return;
    }
    let srv = plugin_server("proxy:hostile:echo", |dir| {
        install(&dir.join("plugins"), "test-plugins", "hostile", "hostile");
        let manifest = dir.join("plugins/hostile.toml");
        let text = std::fs::read_to_string(&manifest).unwrap();
        std::fs::write(
            &manifest,
            format!("digest = \"{}\"\n{text}", "0".repeat(64)),
        )
        .unwrap();
    });
    let mut s = connect(&srv.proxymap);
    // Refused: the table gets a surrogate, which answers RETRY.
    assert_eq!(status(&lookup(&mut s, "hostile:echo", "k")), 2);
    let log = srv.wait_for_log("digest mismatch");
    let actual = blake3_of(&srv.path("plugins/hostile.wasm"));
    assert!(
        log.contains(&"0".repeat(64)) && log.contains(&actual) && log.contains("hostile.wasm"),
        "{log}"
    );
    // Pinning the right digest makes it load.
    let manifest = srv.path("plugins/hostile.toml");
    let text = std::fs::read_to_string(&manifest)
        .unwrap()
        .replace(&"0".repeat(64), &actual);
    std::fs::write(&manifest, text).unwrap();
    assert_eq!(value(&lookup(&mut s, "hostile:echo", "k")), "hostile:k");
}

fn blake3_of(path: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_proxymapd"))
        .arg("digest")
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn example_csv_plugin_answers_and_a_replaced_plugin_is_picked_up() {
    if common::skip_without(&[Need::Postfix, Need::Plugins]) {
        return;
    }
    let srv = plugin_server("proxy:swap:$dir/aliases.csv", |dir| {
        install(&dir.join("plugins"), "test-plugins", "csv", "swap");
        std::fs::write(
            dir.join("aliases.csv"),
            "key,value\npostmaster@example.com,admin@example.net\n\"info@example.com\",\"sales@example.net, support@example.net\"\n",
        )
        .unwrap();
    });
    let table = format!("swap:{}", srv.path("aliases.csv").display());
    let mut s = connect(&srv.proxymap);
    assert_eq!(
        value(&lookup(&mut s, &table, "Postmaster@Example.COM")),
        "admin@example.net"
    );
    assert_eq!(
        value(&lookup(&mut s, &table, "info@example.com")),
        "sales@example.net, support@example.net"
    );
    assert_eq!(status(&lookup(&mut s, &table, "nobody@example.com")), 1);
    // Drop a different component in under the same name: the table reopens
    // with it before the next request, on the same connection.
    install(&srv.path("plugins"), "test-plugins", "hostile", "swap");
    assert_eq!(
        value(&lookup(&mut s, &table, "info@example.com")),
        "hostile:info@example.com"
    );
}

#[test]
fn compiled_plugins_are_cached_across_restarts() {
    if common::skip_without(&[Need::Postfix, Need::Plugins]) {
        return;
    }
    let setup = |dir: &Path| {
        install(&dir.join("plugins"), "test-plugins", "csv", "csv");
        std::fs::write(dir.join("t.csv"), "a,1\n").unwrap();
    };
    let first = plugin_server("proxy:csv:$dir/t.csv", setup);
    let table = format!("csv:{}", first.path("t.csv").display());
    assert_eq!(
        value(&lookup(&mut connect(&first.proxymap), &table, "a")),
        "1"
    );
    let log = first.wait_for_log("plugin csv: loaded");
    assert!(log.contains(", compiled)"), "{log}");
    // A second server on the same cache directory compiles nothing.
    let cache = first.path("cache");
    let plugins = first.path("plugins");
    let second = Server::start_toml(
        &format!(
            "proxy_read_maps = \"proxy:{table}\"\nplugin_dirs = [\"{}\"]\nplugin_cache_dir = \"{}\"\n",
            plugins.display(),
            cache.display()
        ),
        |_| {},
    );
    assert_eq!(
        value(&lookup(&mut connect(&second.proxymap), &table, "a")),
        "1"
    );
    let log = second.wait_for_log("plugin csv: loaded");
    assert!(log.contains("compiled code from cache"), "{log}");
}
