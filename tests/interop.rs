//! Interop tests against unmodified Postfix clients. A private Postfix
//! configuration directory points `queue_directory` at a temporary directory
//! that proxymapd serves, so real `postmap -q/-d ... proxy:TYPE:NAME` talks
//! to us without a running master. Every table is queried both through the
//! proxy and directly by Postfix, and the outputs must be identical.

mod common;

use common::Need;

use common::postfix::{sorted_lines, Postfix};
use std::path::Path;

/// Source entries: lowercase keys (as postmap stores them), UTF-8 keys,
/// values with spaces, continuation lines and long values.
fn entries(seed: u64, count: usize) -> Vec<(String, String)> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut out = Vec::new();
    for i in 0..count {
        let key = match i % 5 {
            0 => format!("user{i}@example{}.com", rng.u32(..100)),
            1 => format!("jürgen{i}@exämple.de"),
            2 => format!("@domain{i}.example"),
            3 => format!("ζeta{i}.ελλάδα.gr"),
            _ => format!("key-{i}"),
        };
        let value = match i % 7 {
            0 => "x".repeat(500 + rng.usize(..1500)),
            1 => format!("smtp:[relay{i}.example.net]:25"),
            2 => format!("first{i}, second{i} third"),
            3 => format!("wert-{i}-ümlaut"),
            _ => format!("value{i}"),
        };
        out.push((key, value));
    }
    out
}

fn source_text(entries: &[(String, String)]) -> String {
    let mut text = String::from("# generated test table\n\n");
    for (i, (k, v)) in entries.iter().enumerate() {
        if i % 11 == 0 && v.contains(' ') {
            // Continuation line: the value goes on, indented, on the next line.
            let (a, b) = v.split_once(' ').unwrap();
            text.push_str(&format!("{k}\t{a}\n    {b}\n"));
        } else {
            text.push_str(&format!("{k}  {v}\n"));
        }
        if i % 13 == 0 {
            text.push_str("   # an indented comment\n");
        }
    }
    text
}

/// Queries: every key as stored, upper-cased (ASCII and Unicode), and misses.
fn queries(entries: &[(String, String)]) -> Vec<String> {
    let mut q = Vec::new();
    for (i, (k, _)) in entries.iter().enumerate() {
        q.push(k.clone());
        if i % 2 == 0 {
            q.push(k.to_uppercase());
        }
        if i % 3 == 0 {
            q.push(format!("missing-{i}-{k}"));
        }
    }
    q.push("NoSuchKey@Example.COM".into());
    q
}

const SEED: u64 = 0x5eed;

fn build(data: &Path) {
    let e = entries(SEED, 400);
    std::fs::write(data.join("virt"), source_text(&e)).unwrap();
    std::fs::write(data.join("a2b"), "alpha beta\ngamma delta\nünï ωmega\n").unwrap();
    std::fs::write(data.join("b2c"), "beta final-b\nωmega final-ω\n").unwrap();
}

/// Build `lmdb:$data/NAME` from its source file with real postmap.
fn lmdb(pf: &Postfix, name: &str) {
    let out = pf.postmap(&[&format!("lmdb:{}", pf.data.join(name).display())], "");
    assert!(
        out.status.success(),
        "postmap lmdb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const INLINE: &str =
    "inline:{ alpha=one, beta=two, { gamma = three four }, jürgen@exämple.de=ü, key-4=five }";

fn read_maps() -> String {
    [
        "proxy:texthash:$data/virt",
        "proxy:lmdb:$data/virt",
        &format!("proxy:{INLINE}"),
        "proxy:static:{ fixed answer }",
        "proxy:fail:broken",
        "proxy:environ:env",
        &format!("proxy:unionmap:{{ texthash:$data/virt, {INLINE} }}"),
        "proxy:pipemap:{ texthash:$data/a2b, texthash:$data/b2c }",
        "proxy:randmap:{ first, second, third }",
        "proxy:lmdb:$data/written",
    ]
    .join(", ")
}

fn start() -> Postfix {
    let pf = Postfix::start(&read_maps(), "proxy:lmdb:$data/written", |data| {
        build(data);
        std::fs::copy(data.join("virt"), data.join("written")).unwrap();
    });
    lmdb(&pf, "virt");
    pf
}

#[test]
fn texthash_and_lmdb_answer_like_postfix() {
    if common::skip_without(&[Need::Postfix, Need::LmdbTools]) {
        return;
    }
    let pf = start();
    let e = entries(SEED, 400);
    let q = queries(&e);
    assert!(q.len() > 600);
    let out = pf.assert_same("texthash:$data/virt", &q);
    assert!(
        out.lines().count() >= 600,
        "most queries hit: {}",
        out.lines().count()
    );
    let out_lmdb = pf.assert_same("lmdb:$data/virt", &q);
    assert_eq!(out, out_lmdb, "texthash and lmdb of the same source agree");
    // Long values and UTF-8 keys made it through.
    assert!(out.lines().any(|l| l.len() > 1000));
    assert!(out.contains("jürgen"));
}

#[test]
fn inline_static_environ_and_composites_answer_like_postfix() {
    if common::skip_without(&[Need::Postfix, Need::LmdbTools]) {
        return;
    }
    let pf = start();
    let keys: Vec<String> = [
        "alpha",
        "ALPHA",
        "Beta",
        "gamma",
        "jürgen@exämple.de",
        "JÜRGEN@EXÄMPLE.DE",
        "key-4",
        "nope",
        "ünï",
        "gamma delta",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = pf.assert_same(INLINE, &keys);
    assert!(out.contains("gamma\tthree four"), "{out}");
    let out = pf.assert_same("static:{ fixed answer }", &keys);
    assert_eq!(out.lines().count(), keys.len());
    let mut union_keys = queries(&entries(SEED, 400));
    union_keys.extend(keys.iter().cloned());
    let out = pf.assert_same(
        &format!("unionmap:{{ texthash:$data/virt, {INLINE} }}"),
        &union_keys,
    );
    assert!(
        out.contains("key-4\tvalue4,five"),
        "union joins answers with commas"
    );
    let out = pf.assert_same(
        "pipemap:{ texthash:$data/a2b, texthash:$data/b2c }",
        &["alpha".into(), "gamma".into(), "ÜNÏ".into(), "zzz".into()],
    );
    assert!(
        out.contains("alpha\tfinal-b") && out.contains("final-ω"),
        "{out}"
    );
    let env_keys: Vec<String> = ["PROXYMAPD_INTEROP", "proxymapd_interop", "NOT_SET_ANYWHERE"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    pf.assert_same("environ:env", &env_keys);
}

#[test]
fn randmap_and_fail_behave_like_postfix() {
    if common::skip_without(&[Need::Postfix, Need::LmdbTools]) {
        return;
    }
    let pf = start();
    for _ in 0..20 {
        let (code, out) = pf.query_one("proxy:randmap:{ first, second, third }", "anything");
        assert_eq!(code, Some(0));
        assert!(
            ["first\n", "second\n", "third\n"].contains(&out.as_str()),
            "{out}"
        );
    }
    let (pcode, pout) = pf.query_one("proxy:fail:broken", "k");
    let (dcode, dout) = pf.query_one("fail:broken", "k");
    assert_eq!((pcode, pout), (dcode, dout));
    assert_ne!(pcode, Some(0));
}

/// Tables that cannot be opened are served as Postfix's proxymap serves
/// them: a surrogate whose open succeeds and whose lookups answer RETRY, so
/// real postmap fails at once with "query error" (as for `fail:`) instead of
/// retrying the open forever, and the log says which table is unavailable
/// and why.
#[test]
fn tables_that_cannot_be_opened_answer_like_postfix_surrogates() {
    if common::skip_without(&[Need::Postfix]) {
        return;
    }
    let broken = [
        "hash:$data/missing",
        "lmdb:$data/missing",
        "cdb:$data/missing",
        "nosuchtype:$data/x",
        "texthash:$data/dup",
    ];
    let read_maps: Vec<String> = broken.iter().map(|t| format!("proxy:{t}")).collect();
    let pf = Postfix::start(&read_maps.join(" "), "", |data| {
        std::fs::write(data.join("dup"), "a 1\na 2\n").unwrap();
    });
    let (fail_code, _) = pf.query_one("proxy:fail:broken", "k");
    for spec in broken {
        let table = pf.table(spec);
        let started = std::time::Instant::now();
        let out = std::process::Command::new("timeout")
            .args(["30", "postmap", "-c"])
            .arg(&pf.etc)
            .args(["-q", "k", &format!("proxy:{table}")])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), fail_code, "{table}: {stderr}");
        assert!(
            stderr.contains(&format!("table proxy:{table}: query error")),
            "{table}: {stderr}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{table}"
        );
        let log = pf.server.wait_for_log(&format!("{table} is unavailable. "));
        assert!(log.contains(&table), "{log}");
    }
    let log = pf.server.log_text();
    let missing_db = pf.table("$data/missing.db");
    assert!(
        log.contains(&format!(
            "is unavailable. open database {missing_db}: No such file or directory"
        )),
        "{log}"
    );
}

/// An operator adds a table to proxy_read_maps with `postconf -e` (and
/// would run `postfix reload`): real postmap's first query of it through
/// the proxy is answered, with no signal to proxymapd.
#[test]
fn a_table_added_to_main_cf_is_served_without_a_signal() {
    if common::skip_without(&[Need::Postfix]) {
        return;
    }
    let pf = Postfix::start("proxy:static:first", "", |_| {});
    assert_eq!(
        pf.query_one("proxy:static:first", "k"),
        (Some(0), "first\n".into())
    );
    let out = std::process::Command::new("postconf")
        .arg("-c")
        .arg(&pf.etc)
        .args([
            "-e",
            "proxy_read_maps = proxy:static:first proxy:static:added",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        pf.query_one("proxy:static:added", "k"),
        (Some(0), "added\n".into())
    );
    pf.server
        .wait_for_log("configuration reloaded (configuration file changed)");
}

#[test]
fn unapproved_table_is_refused_to_real_postmap() {
    if common::skip_without(&[Need::Postfix, Need::LmdbTools]) {
        return;
    }
    let pf = start();
    let (code, _) = pf.query_one(
        &format!("proxy:texthash:{}/a2b", pf.data.display()),
        "alpha",
    );
    assert_ne!(code, Some(0));
    let log = pf.server.wait_for_log("request for unapproved table");
    assert!(
        log.contains(&format!("texthash:{}/a2b", pf.data.display())),
        "{log}"
    );
}

#[test]
fn sequence_lists_the_same_pairs_as_postmap_s() {
    if common::skip_without(&[Need::Postfix, Need::LmdbTools]) {
        return;
    }
    let pf = start();
    // Postfix 3.7's postmap refuses `-s proxy:...`, so proxymapd's own client
    // sequences through the socket and real postmap -s reads the file.
    for table in ["lmdb:$data/virt", "texthash:$data/virt"] {
        let table = pf.table(table);
        let ours = pf.proxymapd(&["--sequence", &format!("proxy:{table}")]);
        assert!(
            ours.status.success(),
            "{}",
            String::from_utf8_lossy(&ours.stderr)
        );
        let theirs = pf.postmap(&["-s", &table], "");
        assert!(theirs.status.success());
        let (a, b) = (sorted_lines(&ours.stdout), sorted_lines(&theirs.stdout));
        assert_eq!(a.len(), 400);
        assert_eq!(a, b, "{table}");
    }
}

#[test]
fn lmdb_writes_through_proxywrite_are_seen_by_postfix() {
    if common::skip_without(&[Need::Postfix, Need::LmdbTools]) {
        return;
    }
    let pf = start();
    lmdb(&pf, "written");
    let table = pf.table("lmdb:$data/written");
    // Update through our client (Postfix 3.7's postmap -i refuses proxy:).
    let out = pf.proxymapd(&[
        "--write",
        &format!("proxy:{table}"),
        "New@Example.COM",
        "fresh value",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        pf.query_one(&table, "new@example.com"),
        (Some(0), "fresh value\n".into())
    );
    let out = pf.proxymapd(&["--write", &format!("proxy:{table}"), "key-4", "replaced"]);
    assert!(out.status.success());
    assert_eq!(
        pf.query_one(&table, "key-4"),
        (Some(0), "replaced\n".into())
    );
    // Delete with real postmap -d through proxywrite.
    let out = pf.postmap(&["-d", "key-4", &format!("proxy:{table}")], "");
    assert!(
        out.status.success(),
        "postmap -d: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(pf.query_one(&table, "key-4").0, Some(1));
    let out = pf.postmap(&["-d", "no-such-key", &format!("proxy:{table}")], "");
    assert_eq!(
        out.status.code(),
        Some(1),
        "deleting a missing key reports not found"
    );
    // Incremental postmap -i (by Postfix, directly) is visible through the proxy.
    let out = pf.postmap(&["-i", &table], "added-by-postmap  direct\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        pf.query_one(&format!("proxy:{table}"), "added-by-postmap"),
        (Some(0), "direct\n".into())
    );
    // The whole file, as Postfix reads it, matches what proxymapd sequences.
    let ours = pf.proxymapd(&["--sequence", &format!("proxy:{table}")]);
    let theirs = pf.postmap(&["-s", &table], "");
    assert_eq!(sorted_lines(&ours.stdout), sorted_lines(&theirs.stdout));
}

#[test]
fn lmdb_created_by_proxywrite_is_readable_by_postfix() {
    if common::skip_without(&[Need::Postfix, Need::LmdbTools]) {
        return;
    }
    // A write table that does not exist yet is created on first update.
    let pf = Postfix::start("proxy:lmdb:$data/fresh", "proxy:lmdb:$data/fresh", |_| {});
    let table = pf.table("lmdb:$data/fresh");
    let out = pf.proxymapd(&["--write", &format!("proxy:{table}"), "Created", "yes"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(pf.query_one(&table, "created"), (Some(0), "yes\n".into()));
    assert_eq!(
        pf.query_one(&format!("proxy:{table}"), "CREATED"),
        (Some(0), "yes\n".into())
    );
}

#[test]
fn table_rebuilt_by_postmap_is_picked_up_without_restart() {
    if common::skip_without(&[Need::Postfix, Need::LmdbTools]) {
        return;
    }
    let pf = start();
    let table = format!("proxy:texthash:{}/virt", pf.data.display());
    assert_eq!(pf.query_one(&table, "key-4"), (Some(0), "value4\n".into()));
    std::fs::write(pf.data.join("virt"), "key-4 rebuilt\n").unwrap();
    assert_eq!(pf.query_one(&table, "key-4"), (Some(0), "rebuilt\n".into()));
    let lmdb_table = format!("proxy:lmdb:{}/virt", pf.data.display());
    assert_eq!(
        pf.query_one(&lmdb_table, "key-19"),
        (Some(0), "value19\n".into())
    );
    lmdb(&pf, "virt");
    assert_eq!(
        pf.query_one(&lmdb_table, "key-4"),
        (Some(0), "rebuilt\n".into())
    );
    assert_eq!(pf.query_one(&lmdb_table, "key-19").0, Some(1));
}
