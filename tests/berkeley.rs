//! Berkeley DB tables (`hash:`, `btree:`) made by the real `postmap`,
//! served by proxymapd's native reader and by the sandboxed `hash` plugin
//! (`--sandbox hash --sandbox btree`), against Postfix's own answers: 100,000
//! entries, 10,000 probes, the same pairs listed by sequence; a table
//! rebuilt by postmap while 32 clients read; writes refused on proxywrite;
//! a damaged file answered CONFIG with the file and page in the log.

mod common;

use common::Need;

use common::postfix::{sorted_lines, Postfix};
use proxymapd::client::Client;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Postfix's proxied lookup flags: FOLD_FIX | LOCK.
const LOOKUP_FLAGS: u32 = 0x4000 | 0x40;

/// postmap source entries: ASCII, mixed case (postmap folds keys), UTF-8,
/// address-shaped keys, quoted keys with spaces, values with spaces and
/// values long enough for overflow pages.
fn entries(count: usize) -> Vec<(String, String)> {
    let mut rng = fastrand::Rng::with_seed(0xbdb);
    (0..count)
        .map(|i| {
            let key = match i % 5 {
                // postmap keeps the quotes of a quoted key: spaces inside.
                _ if i % 11 == 10 => format!("\"quoted key {i}\""),
                0 => format!("user{i}@example{}.com", rng.u32(..1000)),
                1 => format!("ünïcode{i}@exämple.de"),
                2 => format!("Domain{i}.Example"),
                3 => format!("@sub{i}.example.net"),
                _ => format!("k{i}-{}", rng.u64(..)),
            };
            let value = if i % 500 == 0 {
                "o".repeat(3000 + rng.usize(..6000))
            } else {
                format!("value {i} with spaces {}", rng.u32(..))
            };
            (key, value)
        })
        .collect()
}

fn source_text(entries: &[(String, String)]) -> String {
    let mut text = String::with_capacity(entries.len() * 48);
    for (k, v) in entries {
        text.push_str(k);
        text.push(' ');
        text.push_str(v);
        text.push('\n');
    }
    text
}

/// 10,000 probes: stored keys as stored, upper-cased, with a suffix that
/// misses, with spaces, and address shapes.
fn probes(entries: &[(String, String)]) -> Vec<String> {
    let mut rng = fastrand::Rng::with_seed(42);
    (0..10_000)
        .map(|i| {
            let (k, _) = &entries[rng.usize(..entries.len())];
            match i % 6 {
                0 => k.to_uppercase(),
                1 => format!("{k}.missing"),
                2 => format!("nobody@{k}"),
                3 => format!("{k} with spaces"),
                _ => k.clone(),
            }
        })
        .collect()
}

const MAPS: &str = "proxy:hash:$data/h proxy:btree:$data/b";

fn build_tables(data: &Path, entries: &[(String, String)]) {
    let text = source_text(entries);
    std::fs::write(data.join("h"), &text).unwrap();
    std::fs::write(data.join("b"), &text).unwrap();
}

#[test]
fn native_and_plugin_answer_like_postfix_on_100k_entry_tables() {
    if common::skip_without(&[Need::Postfix]) {
        return;
    }
    let entries = entries(100_000);
    let native = Postfix::start(MAPS, "", |data| build_tables(data, &entries));
    for spec in ["hash:$data/h", "btree:$data/b"] {
        let out = native.postmap(&[&native.table(spec)], "");
        assert!(
            out.status.success(),
            "postmap {spec}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let check = native.check();
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{text}");
    assert_eq!(text.matches("(100000 entries read)").count(), 2, "{text}");
    let data = native.data.to_string_lossy().into_owned();
    let sandboxed = Postfix::start_with(
        &MAPS.replace("$data", &data),
        "",
        &["--sandbox", "hash", "--sandbox", "btree"],
        |_| {},
    );
    sandboxed
        .server
        .wait_for_log("map type btree: served by its WebAssembly plugin");
    let probes = probes(&entries);
    for spec in ["hash:$data/h", "btree:$data/b"] {
        let table = native.table(spec);
        let from_native = native.assert_same(&table, &probes);
        let from_plugin = sandboxed.assert_same(&table, &probes);
        assert_eq!(
            from_native, from_plugin,
            "{table}: native and plugin answers differ"
        );
        let hits = from_native.lines().count();
        assert!(hits >= 4_500, "{table}: only {hits} hits");
        assert!(
            from_native.lines().any(|l| l.len() > 3000),
            "{table}: overflow values answered"
        );
        assert!(
            from_native.contains("ünïcode"),
            "{table}: UTF-8 keys answered"
        );
        let quoted = probes
            .iter()
            .find(|p| p.starts_with("\"quoted key"))
            .unwrap();
        let (code, answer) = native.query_one(&format!("proxy:{table}"), quoted);
        assert_eq!(code, Some(0), "{table}: {quoted} found through the proxy");
        assert_eq!((code, answer), native.query_one(&table, quoted));

        let theirs = sorted_lines(&native.postmap(&["-s", &table], "").stdout);
        assert_eq!(
            theirs.len(),
            100_000,
            "{table}: postmap -s lists every entry"
        );
        for pf in [&native, &sandboxed] {
            let ours = pf.proxymapd(&["--sequence", &format!("proxy:{table}")]);
            assert!(
                ours.status.success(),
                "{}",
                String::from_utf8_lossy(&ours.stderr)
            );
            assert_eq!(
                sorted_lines(&ours.stdout),
                theirs,
                "{table}: sequence lists the same pairs"
            );
        }
    }
    assert!(sandboxed.server.log_text().contains("plugin hash: loaded"));
    assert!(!native.server.log_text().contains("plugin hash: loaded"));
}

/// Source text whose every value names its version: `A-<key>` or `B-<key>`.
fn versioned_source(keys: &[String], version: char) -> String {
    keys.iter()
        .map(|k| format!("{k} {version}-{k}\n"))
        .collect()
}

#[test]
fn rebuild_by_postmap_while_32_clients_read_gives_no_error_and_no_mixed_answer() {
    if common::skip_without(&[Need::Postfix]) {
        return;
    }
    let keys: Vec<String> = (0..20_000).map(|i| format!("key{i}@example.org")).collect();
    for sandbox in [false, true] {
        let extra: &[&str] = if sandbox { &["--sandbox", "hash"] } else { &[] };
        let pf = Postfix::start_with("proxy:hash:$data/live", "", extra, |data| {
            std::fs::write(data.join("live"), versioned_source(&keys, 'A')).unwrap();
        });
        let table = pf.table("hash:$data/live");
        assert!(pf.postmap(&[&table], "").status.success());
        let done = Arc::new(AtomicBool::new(false));
        let (seen_a, seen_b) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let readers: Vec<_> = (0..32)
            .map(|n| {
                let (done, seen_a, seen_b) = (done.clone(), seen_a.clone(), seen_b.clone());
                let (socket, table, keys) =
                    (pf.server.proxymap.clone(), table.clone(), keys.clone());
                std::thread::spawn(move || {
                    let mut client = Client::connect(&socket, true).unwrap();
                    let mut rng = fastrand::Rng::with_seed(n);
                    let mut lookups = 0u64;
                    while !done.load(Ordering::Relaxed) || lookups == 0 {
                        let key = &keys[rng.usize(..keys.len())];
                        let reply = client.lookup(&table, LOOKUP_FLAGS, key.as_bytes()).unwrap();
                        let value = String::from_utf8_lossy(reply.get("value").unwrap_or_default());
                        assert_eq!(
                            reply.status(),
                            Some(0),
                            "{key}: status {:?} ({value})",
                            reply.status()
                        );
                        if value == format!("A-{key}") {
                            seen_a.fetch_add(1, Ordering::Relaxed);
                        } else if value == format!("B-{key}") {
                            seen_b.fetch_add(1, Ordering::Relaxed);
                        } else {
                            panic!("{key}: mixed answer {value:?}");
                        }
                        lookups += 1;
                    }
                    lookups
                })
            })
            .collect();
        for round in 0..6 {
            let version = if round % 2 == 0 { 'B' } else { 'A' };
            std::fs::write(pf.data.join("live"), versioned_source(&keys, version)).unwrap();
            let out = pf.postmap(&[&table], "");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(std::time::Duration::from_millis(150));
        }
        done.store(true, Ordering::Relaxed);
        let total: u64 = readers
            .into_iter()
            .map(|r| r.join().expect("reader failed"))
            .sum();
        let (a, b) = (
            seen_a.load(Ordering::Relaxed),
            seen_b.load(Ordering::Relaxed),
        );
        assert_eq!(a + b, total);
        assert!(
            a > 0 && b > 0,
            "sandbox={sandbox}: both versions answered (A {a}, B {b})"
        );
        // After the last rebuild (version A) every answer is the new one.
        let (code, out) = pf.query_one(&format!("proxy:{table}"), &keys[7]);
        assert_eq!(
            (code, out.trim()),
            (Some(0), format!("A-{}", keys[7]).as_str())
        );
    }
}

/// What verify(8) sends on proxywrite: `open` with OPEN_LOCK, then every
/// request with 590208.
const VERIFY_OPEN: u32 = 65536;
const VERIFY_FLAGS: u32 = 590208;

/// `db5.3_verify FILE` finds nothing wrong.
fn libdb_verifies(path: &Path) {
    let out = std::process::Command::new("db5.3_verify")
        .arg(path)
        .output()
        .expect("db5.3_verify (package db5.3-util)");
    assert!(
        out.status.success(),
        "db5.3_verify {}: {out:?}",
        path.display()
    );
}

#[test]
fn proxywrite_writes_berkeley_tables_that_postfix_reads() {
    if common::skip_without(&[Need::Postfix]) {
        return;
    }
    let pf = Postfix::start(
        "",
        "proxy:hash:$data/w proxy:btree:$data/wb proxy:hash:$data/new proxy:btree:$data/newb",
        |data| {
            std::fs::write(data.join("w"), "keep me\nDrop this\n").unwrap();
            std::fs::write(data.join("wb"), "keep me\nDrop this\n").unwrap();
        },
    );
    for (spec, file) in [
        ("hash:$data/w", "w.db"),
        ("btree:$data/wb", "wb.db"),
        ("hash:$data/new", "new.db"),
        ("btree:$data/newb", "newb.db"),
    ] {
        let table = pf.table(spec);
        let path = pf.data.join(file);
        let existing = !spec.contains("new");
        if existing {
            assert!(pf.postmap(&[&table], "").status.success());
            // postmap -d through proxywrite, as an operator would.
            let out = pf.postmap(&["-d", "drop", &format!("proxy:{table}")], "");
            assert!(out.status.success(), "{table}: {out:?}");
            libdb_verifies(&path);
        }
        let mut w = Client::connect(&pf.server.proxywrite, true).unwrap();
        assert_eq!(w.open(&table, VERIFY_OPEN).unwrap().status(), Some(0));
        libdb_verifies(&path);
        // Values longer than a quarter page go to overflow pages.
        let big = "v".repeat(3000);
        for i in 0..2000 {
            let value = if i % 100 == 0 {
                big.clone()
            } else {
                format!("value{i}")
            };
            let r = w
                .update(
                    &table,
                    VERIFY_FLAGS,
                    format!("key{i}").as_bytes(),
                    value.as_bytes(),
                )
                .unwrap();
            assert_eq!(r.status(), Some(0), "{table}: update key{i}");
        }
        let r = w
            .update(&table, VERIFY_FLAGS, b"key5", b"replaced")
            .unwrap();
        assert_eq!(r.status(), Some(0));
        libdb_verifies(&path);
        // Postfix's own postmap reads every entry, directly.
        let listed = pf.postmap(&["-s", &table], "");
        assert!(listed.status.success(), "{listed:?}");
        let lines = sorted_lines(&listed.stdout);
        assert_eq!(lines.len(), 2000 + usize::from(existing), "{table}");
        assert!(lines.contains(&"key5\treplaced".to_string()), "{table}");
        assert!(lines.contains(&format!("key100\t{big}")), "{table}");
        if existing {
            assert!(lines.contains(&"keep\tme".to_string()), "{table}");
            assert!(!lines.iter().any(|l| l.starts_with("drop")), "{table}");
        }
        // Postfix writes too (postmap -i, with libdb), and proxywrite sees it.
        let added = pf.postmap(&["-i", &table], "fromstock yes\n");
        assert!(added.status.success(), "{added:?}");
        let r = w.lookup(&table, VERIFY_FLAGS, b"fromstock").unwrap();
        assert_eq!(
            (r.status(), r.get("value")),
            (Some(0), Some(&b"yes"[..])),
            "{table}"
        );
        // verify's clean-up: walk the table, deleting as it goes.
        let mut seen = 0;
        let mut reply = w.sequence(&table, VERIFY_FLAGS, true).unwrap();
        while reply.status() == Some(0) {
            let key = reply.get("key").unwrap().to_vec();
            assert_eq!(
                w.delete(&table, VERIFY_FLAGS, &key).unwrap().status(),
                Some(0)
            );
            seen += 1;
            reply = w.sequence(&table, VERIFY_FLAGS, false).unwrap();
        }
        assert_eq!(
            seen,
            2001 + usize::from(existing),
            "{table}: walked everything"
        );
        libdb_verifies(&path);
        let listed = pf.postmap(&["-s", &table], "");
        assert!(listed.stdout.is_empty(), "{table}: emptied");
        if !existing {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{table}: created like stock proxywrite");
        }
    }
}

#[test]
fn damaged_table_answers_config_and_logs_file_and_page() {
    if common::skip_without(&[Need::Postfix]) {
        return;
    }
    let keys: Vec<String> = (0..3000).map(|i| format!("key{i}")).collect();
    let pf = Postfix::start("proxy:hash:$data/bad", "", |data| {
        std::fs::write(data.join("bad"), versioned_source(&keys, 'A')).unwrap();
    });
    let table = pf.table("hash:$data/bad");
    assert!(pf.postmap(&[&table], "").status.success());
    // Overwrite every page after the first two with garbage, in place.
    let path = pf.data.join("bad.db");
    let mut bytes = std::fs::read(&path).unwrap();
    for b in &mut bytes[8192..] {
        *b = 0xa5;
    }
    std::fs::write(&path, &bytes).unwrap();
    let mut client = Client::connect(&pf.server.proxymap, true).unwrap();
    let mut config = 0;
    for key in keys.iter().take(200) {
        let reply = client.lookup(&table, LOOKUP_FLAGS, key.as_bytes()).unwrap();
        match reply.status() {
            Some(5) => config += 1,
            Some(0) | Some(1) => {}
            other => panic!("{key}: status {other:?}"),
        }
    }
    assert!(config > 100, "{config} of 200 lookups answered CONFIG");
    let log = pf.server.wait_for_log("page ");
    assert!(log.contains(&path.display().to_string()), "{log}");
    // The server is still up and serving.
    assert!(Client::connect(&pf.server.proxymap, true).is_ok());
    // `proxymapd check` reads the whole file and names the damage.
    let check = pf.check();
    let text = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(1), "{text}");
    assert!(
        text.contains("error: proxymap: table hash:") && text.contains("page "),
        "{text}"
    );
}

#[test]
fn table_replaced_by_rename_is_reopened_without_dropping_the_client() {
    if common::skip_without(&[Need::Postfix]) {
        return;
    }
    let keys: Vec<String> = (0..500).map(|i| format!("key{i}")).collect();
    let pf = Postfix::start(
        "proxy:hash:$data/swap proxy:btree:$data/bswap",
        "",
        |data| {
            for name in ["swap", "bswap", "new/swap", "new/bswap"] {
                std::fs::create_dir_all(data.join(name).parent().unwrap()).unwrap();
                let version = if name.starts_with("new") { 'B' } else { 'A' };
                std::fs::write(data.join(name), versioned_source(&keys, version)).unwrap();
            }
        },
    );
    for (map_type, name) in [("hash", "swap"), ("btree", "bswap")] {
        for dir in ["", "new/"] {
            let table = pf.table(&format!("{map_type}:$data/{dir}{name}"));
            assert!(pf.postmap(&[&table], "").status.success());
        }
        let table = pf.table(&format!("{map_type}:$data/{name}"));
        let mut client = Client::connect(&pf.server.proxymap, true).unwrap();
        let value = |client: &mut Client| {
            let reply = client.lookup(&table, LOOKUP_FLAGS, b"key7").unwrap();
            String::from_utf8_lossy(reply.get("value").unwrap_or_default()).into_owned()
        };
        assert_eq!(value(&mut client), "A-key7");
        let db = |dir: &str| pf.data.join(format!("{dir}{name}.db"));
        std::fs::rename(db("new/"), db("")).unwrap();
        // The request that notices the replacement may still be answered from
        // the old, complete file; the next one reads the new file.
        let first = value(&mut client);
        assert!(first == "A-key7" || first == "B-key7", "{first}");
        assert_eq!(value(&mut client), "B-key7", "{map_type}");
    }
    assert!(pf.server.log_text().contains("changed, reopening"));
}

#[test]
fn table_copied_over_without_the_lock_never_stops_the_server() {
    if common::skip_without(&[Need::Postfix]) {
        return;
    }
    let big: Vec<String> = (0..20_000).map(|i| format!("key{i}")).collect();
    let small: Vec<String> = big[..500].to_vec();
    let pf = Postfix::start("proxy:hash:$data/live", "", |data| {
        std::fs::write(data.join("live"), versioned_source(&big, 'A')).unwrap();
        std::fs::write(data.join("small"), versioned_source(&small, 'B')).unwrap();
    });
    for name in ["live", "small"] {
        assert!(pf
            .postmap(&[&pf.table(&format!("hash:$data/{name}"))], "")
            .status
            .success());
    }
    let table = pf.table("hash:$data/live");
    let live = pf.data.join("live.db");
    std::fs::copy(&live, pf.data.join("big.db")).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..8)
        .map(|n| {
            let (done, socket, table, keys) = (
                done.clone(),
                pf.server.proxymap.clone(),
                table.clone(),
                small.clone(),
            );
            std::thread::spawn(move || {
                let mut client = Client::connect(&socket, true).unwrap();
                let mut rng = fastrand::Rng::with_seed(n);
                let mut statuses = [0u64; 6];
                while !done.load(Ordering::Relaxed) {
                    let key = &keys[rng.usize(..keys.len())];
                    let reply = client.lookup(&table, LOOKUP_FLAGS, key.as_bytes()).unwrap();
                    statuses[reply.status().unwrap() as usize] += 1;
                }
                statuses
            })
        })
        .collect();
    // `cp` over the live file, big and small in turn: truncate, then write.
    for round in 0..40 {
        let from = if round % 2 == 0 { "small.db" } else { "big.db" };
        std::fs::copy(pf.data.join(from), &live).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    done.store(true, Ordering::Relaxed);
    for r in readers {
        let statuses = r.join().expect("a reader lost its connection");
        assert_eq!(statuses[3] + statuses[4], 0, "no BAD or DENY: {statuses:?}");
    }
    // Still serving, and right once the file is whole again.
    std::fs::copy(pf.data.join("big.db"), &live).unwrap();
    let mut client = Client::connect(&pf.server.proxymap, true).unwrap();
    let mut answer = String::new();
    for _ in 0..50 {
        let reply = client.lookup(&table, LOOKUP_FLAGS, b"key7").unwrap();
        answer = String::from_utf8_lossy(reply.get("value").unwrap_or_default()).into_owned();
        if answer == "A-key7" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(answer, "A-key7");
    let log = pf.server.log_text();
    eprintln!(
        "copied-over: {} lookups met a shrinking file, {} a damaged one",
        log.matches("shrank while being read").count(),
        log.matches("lookup failed").count()
    );
}

#[test]
fn convert_gives_lmdb_and_cdb_tables_that_answer_like_postmap_builds() {
    if common::skip_without(&[Need::Postfix]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(etc.join("main.cf"), "compatibility_level = 3.6\n").unwrap();
    let postmap = |args: &[&str]| {
        let out = std::process::Command::new("postmap")
            .arg("-c")
            .arg(&etc)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "postmap {args:?}: {out:?}");
        out
    };
    // Upper case (folded by postmap), spaces in values, long values, many
    // keys: what real tables hold.
    let mut source = String::from("User@Example.COM first value\nspaces@example.com a  b   c\n");
    source.push_str(&format!("long@example.com {}\n", "x".repeat(5000)));
    for i in 0..3000 {
        source.push_str(&format!("key{i}@example.org dest{i}@example.net\n"));
    }
    let src = dir.path().join("src");
    std::fs::write(&src, &source).unwrap();
    for from_type in ["hash", "btree"] {
        let from = dir.path().join(format!("from_{from_type}"));
        std::fs::copy(&src, &from).unwrap();
        postmap(&[&format!("{from_type}:{}", from.display())]);
        for to_type in ["lmdb", "cdb"] {
            // What postmap builds from the same source...
            let built = dir.path().join(format!("built_{from_type}_{to_type}"));
            std::fs::copy(&src, &built).unwrap();
            postmap(&[&format!("{to_type}:{}", built.display())]);
            // ... and what convert makes of the Berkeley DB table.
            let converted = dir.path().join(format!("conv_{from_type}_{to_type}"));
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_proxymapd"))
                .args([
                    "convert",
                    &format!("{from_type}:{}", from.display()),
                    &format!("{to_type}:{}", converted.display()),
                ])
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            assert!(String::from_utf8_lossy(&out.stdout).contains("3003 entries"));
            // Every entry: `postmap -s` (cdb cannot be listed: every key of
            // the source, through `postmap -q -`).
            let keys: String = source
                .lines()
                .map(|l| l.split_whitespace().next().unwrap().to_lowercase() + "\n")
                .collect();
            let listed = |path: &Path| {
                let table = format!("{to_type}:{}", path.display());
                let out = if to_type == "cdb" {
                    let mut child = std::process::Command::new("postmap")
                        .arg("-c")
                        .arg(&etc)
                        .args(["-q", "-", &table])
                        .stdin(std::process::Stdio::piped())
                        .stdout(std::process::Stdio::piped())
                        .spawn()
                        .unwrap();
                    use std::io::Write;
                    child
                        .stdin
                        .take()
                        .unwrap()
                        .write_all(keys.as_bytes())
                        .unwrap();
                    child.wait_with_output().unwrap()
                } else {
                    postmap(&["-s", &table])
                };
                sorted_lines(&out.stdout)
            };
            let expected = listed(&built);
            assert_eq!(expected.len(), 3003, "{from_type} -> {to_type}");
            assert_eq!(listed(&converted), expected, "{from_type} -> {to_type}");
            // And single lookups answer alike.
            for key in [
                "user@example.com",
                "key2999@example.org",
                "long@example.com",
                "none",
            ] {
                let q = |path: &Path| {
                    std::process::Command::new("postmap")
                        .arg("-c")
                        .arg(&etc)
                        .args(["-q", key, &format!("{to_type}:{}", path.display())])
                        .output()
                        .unwrap()
                        .stdout
                };
                assert_eq!(q(&converted), q(&built), "{from_type} -> {to_type}: {key}");
            }
        }
    }
    // Refused names say what convert does.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_proxymapd"))
        .args(["convert", "texthash:/etc/x", "lmdb:/tmp/y"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("convert reads hash: and btree: tables"));
}

/// Start `proxymapd serve` on `etc` (root's rights: the tables live in a
/// private temporary directory) and wait for its write socket.
fn serve_until_ready(etc: &Path, socket: &Path) -> std::process::Child {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_proxymapd"))
        .args(["serve", "--user", "root", "--postfix-config"])
        .arg(etc)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while std::os::unix::net::UnixStream::connect(socket).is_err() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "no socket"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child
}

/// How many times the crash test kills proxymapd.
const KILLS: u64 = 24;

#[test]
fn kill_9_during_an_update_storm_loses_no_acknowledged_update() {
    if common::skip_without(&[Need::Postfix]) {
        return;
    }
    // The guarantee: an update answered OK was synced to the file before
    // the answer (SYNC_UPDATE), and a write cut short by the kill is
    // undone from its journal by the next open, so the file verifies and
    // holds every acknowledged update.
    let mut pf = Postfix::start(
        "",
        "proxy:btree:$data/cache proxy:hash:$data/hcache",
        |_| {},
    );
    let socket = pf.server.proxywrite.clone();
    let etc = pf.etc.clone();
    let mut acked: Vec<Vec<String>> = vec![Vec::new(), Vec::new()];
    let tables = [pf.table("btree:$data/cache"), pf.table("hash:$data/hcache")];
    let files = [pf.data.join("cache.db"), pf.data.join("hcache.db")];
    // The first kill is of the test's server; each kill is followed by a
    // new server on the same configuration (a killed server's sockets are
    // stale files, which the next one replaces).
    let mut own: Option<std::process::Child> = None;
    let mut interrupted = 0;
    for round in 0..KILLS {
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..4u64)
            .map(|w| {
                let (stop, socket, table) = (
                    stop.clone(),
                    socket.clone(),
                    tables[(w % 2) as usize].clone(),
                );
                std::thread::spawn(move || {
                    let mut ok = Vec::new();
                    let Ok(mut c) = Client::connect(&socket, true) else {
                        return ok;
                    };
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let key = format!("r{round}w{w}k{i}");
                        // Every 50th value is longer than a quarter page
                        // (an overflow chain); every 7th update deletes
                        // an earlier key instead, so pages are freed too.
                        let reply = if i % 7 == 6 {
                            // Once asked for, the delete may have happened
                            // even if its answer never comes.
                            let gone = format!("r{round}w{w}k{}", i - 3);
                            ok.retain(|k| *k != gone);
                            c.delete(&table, VERIFY_FLAGS, gone.as_bytes())
                        } else {
                            let value = if i.is_multiple_of(50) {
                                "v".repeat(2500)
                            } else {
                                format!("value{i}")
                            };
                            c.update(&table, VERIFY_FLAGS, key.as_bytes(), value.as_bytes())
                        };
                        match reply {
                            Ok(r) if r.status() == Some(0) => {
                                if i % 7 != 6 {
                                    ok.push(key);
                                }
                            }
                            _ => break,
                        }
                        i += 1;
                    }
                    ok
                })
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(
            150 + fastrand::u64(0..250),
        ));
        let server = own.as_mut().unwrap_or(&mut pf.server.child);
        server.kill().unwrap();
        let _ = server.wait();
        stop.store(true, Ordering::Relaxed);
        for (w, t) in writers.into_iter().enumerate() {
            acked[w % 2].extend(t.join().unwrap());
        }
        // A journal left behind means the kill cut a write short.
        interrupted += files
            .iter()
            .filter(|f| {
                proxymapd_libdb::journal::pending(&proxymapd_libdb::journal::journal_path(f))
            })
            .count();
        // The next server's open puts both files back; then they verify.
        own = Some(serve_until_ready(&etc, &socket));
        let mut c = Client::connect(&socket, true).unwrap();
        for (table, file) in tables.iter().zip(&files) {
            assert_eq!(c.open(table, VERIFY_OPEN).unwrap().status(), Some(0));
            assert!(
                !proxymapd_libdb::journal::pending(&proxymapd_libdb::journal::journal_path(file)),
                "{}: journal still pending after open",
                file.display()
            );
            libdb_verifies(file);
        }
    }
    if let Some(mut server) = own {
        let _ = server.kill();
        let _ = server.wait();
    }
    for (n, file) in files.iter().enumerate() {
        libdb_verifies(file);
        let listed = pf_list(&etc, &tables[n]);
        let missing: Vec<&String> = acked[n].iter().filter(|k| !listed.contains(*k)).collect();
        assert!(
            missing.is_empty(),
            "{}: {} of {} acknowledged updates missing, e.g. {:?}",
            tables[n],
            missing.len(),
            acked[n].len(),
            &missing[..missing.len().min(5)]
        );
        assert!(
            acked[n].len() > 100,
            "{}: only {} updates acknowledged",
            tables[n],
            acked[n].len()
        );
        eprintln!(
            "{}: {} acknowledged updates over {KILLS} kills, all present",
            tables[n],
            acked[n].len()
        );
    }
    eprintln!(
        "a write was cut short and undone {interrupted} times ({KILLS} kills, 2 tables each)"
    );
}

/// The keys `postmap -s` lists for `table`.
fn pf_list(etc: &Path, table: &str) -> std::collections::HashSet<String> {
    let out = std::process::Command::new("postmap")
        .arg("-c")
        .arg(etc)
        .args(["-s", table])
        .output()
        .unwrap();
    assert!(out.status.success(), "postmap -s {table}: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split('\t').next().map(str::to_string))
        .collect()
}

#[test]
fn postfix_and_proxymapd_take_over_each_others_berkeley_files() {
    if common::skip_without(&[Need::Postfix]) {
        return;
    }
    // Phases alternate between Postfix writing the file itself (postmap -i
    // and -d, through libdb) and proxymapd writing it through proxywrite,
    // whose open handle must notice each of Postfix's changes.
    let pf = Postfix::start(
        "",
        "proxy:btree:$data/cache proxy:hash:$data/hcache",
        |_| {},
    );
    let tables = [pf.table("btree:$data/cache"), pf.table("hash:$data/hcache")];
    let files = [pf.data.join("cache.db"), pf.data.join("hcache.db")];
    let mut expected: Vec<std::collections::BTreeSet<String>> = vec![Default::default(); 2];
    let mut clients: Vec<Client> = tables
        .iter()
        .map(|t| {
            let mut c = Client::connect(&pf.server.proxywrite, true).unwrap();
            assert_eq!(c.open(t, VERIFY_OPEN).unwrap().status(), Some(0));
            c
        })
        .collect();
    for phase in 0..6 {
        let by_postfix = phase % 2 == 1;
        for (n, table) in tables.iter().enumerate() {
            let added: Vec<(String, String)> = (0..300)
                .map(|i| {
                    let value = if i % 60 == 0 {
                        "v".repeat(2000)
                    } else {
                        format!("{phase}-{i}")
                    };
                    (format!("p{phase}k{i}"), value)
                })
                .collect();
            let deleted: Vec<String> = if phase > 0 {
                (0..50).map(|i| format!("p{}k{i}", phase - 1)).collect()
            } else {
                Vec::new()
            };
            if by_postfix {
                let input: String = added.iter().map(|(k, v)| format!("{k} {v}\n")).collect();
                assert!(pf.postmap(&["-i", table], &input).status.success());
                let keys: String = deleted.iter().map(|k| format!("{k}\n")).collect();
                if !keys.is_empty() {
                    assert!(pf.postmap(&["-d", "-", table], &keys).status.success());
                }
            } else {
                let c = &mut clients[n];
                for (k, v) in &added {
                    let r = c
                        .update(table, VERIFY_FLAGS, k.as_bytes(), v.as_bytes())
                        .unwrap();
                    assert_eq!(r.status(), Some(0), "phase {phase} {table} {k}");
                }
                for k in &deleted {
                    let r = c.delete(table, VERIFY_FLAGS, k.as_bytes()).unwrap();
                    assert_eq!(r.status(), Some(0), "phase {phase} {table} delete {k}");
                }
            }
            expected[n].extend(added.into_iter().map(|(k, _)| k));
            for k in &deleted {
                expected[n].remove(k);
            }
            libdb_verifies(&files[n]);
            let listed: std::collections::BTreeSet<String> =
                pf_list(&pf.etc, table).into_iter().collect();
            assert_eq!(
                listed,
                expected[n],
                "phase {phase} ({}): {table}",
                if by_postfix { "postmap" } else { "proxymapd" }
            );
            // proxymapd reads what Postfix wrote.
            let probe = format!("p{phase}k299");
            let r = clients[n]
                .lookup(table, VERIFY_FLAGS, probe.as_bytes())
                .unwrap();
            assert_eq!(r.status(), Some(0), "phase {phase} {table}: {probe}");
        }
    }
}

#[test]
fn random_operations_through_proxywrite_match_a_model_and_postmap() {
    if common::skip_without(&[Need::Postfix]) {
        return;
    }
    // Thousands of random updates, deletes, lookups and whole walks on a
    // btree: and a hash: table through proxywrite, against an in-memory
    // model; at the end Postfix's postmap -s and db5.3_verify agree.
    let pf = Postfix::start("", "proxy:btree:$data/rb proxy:hash:$data/rh", |_| {});
    let mut rng = fastrand::Rng::with_seed(14);
    for (spec, file) in [("btree:$data/rb", "rb.db"), ("hash:$data/rh", "rh.db")] {
        let table = pf.table(spec);
        let mut c = Client::connect(&pf.server.proxywrite, true).unwrap();
        assert_eq!(c.open(&table, VERIFY_OPEN).unwrap().status(), Some(0));
        let mut model = std::collections::BTreeMap::<String, String>::new();
        for op in 0..4000 {
            let key = format!("key{}", rng.u32(0..600));
            match rng.u32(0..100) {
                0..=49 => {
                    let len = if rng.u32(0..20) == 0 {
                        rng.usize(1000..6000)
                    } else {
                        rng.usize(1..40)
                    };
                    let value: String = (0..len).map(|_| rng.alphanumeric()).collect();
                    let r = c
                        .update(&table, VERIFY_FLAGS, key.as_bytes(), value.as_bytes())
                        .unwrap();
                    assert_eq!(r.status(), Some(0), "op {op}");
                    model.insert(key, value);
                }
                50..=74 => {
                    let r = c.delete(&table, VERIFY_FLAGS, key.as_bytes()).unwrap();
                    let expected = if model.remove(&key).is_some() { 0 } else { 1 };
                    assert_eq!(r.status(), Some(expected), "op {op}: delete {key}");
                }
                75..=98 => {
                    let r = c.lookup(&table, VERIFY_FLAGS, key.as_bytes()).unwrap();
                    match model.get(&key) {
                        Some(v) => assert_eq!(r.get("value"), Some(v.as_bytes()), "op {op}: {key}"),
                        None => assert_eq!(r.status(), Some(1), "op {op}: {key}"),
                    }
                }
                _ => {
                    // A whole walk lists exactly the model.
                    let mut walked = std::collections::BTreeMap::new();
                    let mut r = c.sequence(&table, VERIFY_FLAGS, true).unwrap();
                    while r.status() == Some(0) {
                        let k = String::from_utf8(r.get("key").unwrap().to_vec()).unwrap();
                        let v = String::from_utf8(r.get("value").unwrap().to_vec()).unwrap();
                        assert!(walked.insert(k, v).is_none(), "op {op}: a key twice");
                        r = c.sequence(&table, VERIFY_FLAGS, false).unwrap();
                    }
                    assert_eq!(walked, model, "op {op}: walk");
                }
            }
        }
        libdb_verifies(&pf.data.join(file));
        let listed: std::collections::BTreeSet<String> =
            pf_list(&pf.etc, &table).into_iter().collect();
        let keys: std::collections::BTreeSet<String> = model.keys().cloned().collect();
        assert_eq!(listed, keys, "{table}: postmap -s");
    }
}
