//! Wire-level tests: exact reply bytes for every request shape and dialect,
//! malformed and oversized input, numbers as Postfix reads them, the
//! request deadline, denial, reload, reopen, broken tables, isolation of
//! slow tables, many connections and graceful shutdown. Each
//! test checks that the server keeps serving afterwards.

mod common;

use common::{frame, read_frame, Server};
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

const GREETING: &[u8] = b"protocol\0proxymap_protocol\0\0";
const FLAGS: &[u8] = b"16448"; // LOCK | FOLD_FIX

fn tables(dir: &Path) {
    std::fs::write(dir.join("virt"), "Foo@Example.COM bar\nsecond val2\n").unwrap();
}

fn server() -> Server {
    Server::start_toml(
        "proxy_read_maps = \"proxy:texthash:$dir/virt proxy:lmdb:$dir/db proxy:texthash:$dir/broken\"\n\
         proxy_write_maps = \"proxy:lmdb:$dir/db\"\n\
         greeting = \"proxymap\"\nmax_string = 1024\n",
        tables,
    )
}

fn connect(path: &Path, greeting: bool) -> UnixStream {
    let mut s = UnixStream::connect(path).unwrap();
    if greeting {
        assert_eq!(read_frame(&mut s), GREETING);
    }
    s
}

fn ask(s: &mut UnixStream, req: &[u8]) -> Vec<u8> {
    s.write_all(req).unwrap();
    read_frame(s)
}

fn lookup(table: &str, key: &str) -> Vec<u8> {
    frame(&[
        ("request", b"lookup"),
        ("table", table.as_bytes()),
        ("flags", FLAGS),
        ("key", key.as_bytes()),
    ])
}

#[test]
fn every_request_shape_has_exact_reply_bytes() {
    let srv = server();
    let virt = format!("texthash:{}", srv.path("virt").display());
    let mut s = connect(&srv.proxymap, true);
    // open: the table's flags, with this request's request bits.
    let open = frame(&[
        ("request", b"open"),
        ("table", virt.as_bytes()),
        ("flags", FLAGS),
    ]);
    assert_eq!(ask(&mut s, &open), b"status\x000\x00flags\x0016464\x00\x00");
    assert_eq!(
        ask(&mut s, &lookup(&virt, "foo@example.com")),
        b"status\x000\x00value\x00bar\x00\x00"
    );
    assert_eq!(
        ask(&mut s, &lookup(&format!("proxy:{virt}"), "FOO@example.com")),
        b"status\x000\x00value\x00bar\x00\x00"
    );
    assert_eq!(
        ask(&mut s, &lookup(&virt, "nope")),
        b"status\x001\x00value\x00\x00\x00"
    );
    let seq0 = frame(&[
        ("request", b"sequence"),
        ("table", virt.as_bytes()),
        ("flags", FLAGS),
        ("function", b"0"),
    ]);
    assert_eq!(
        ask(&mut s, &seq0),
        b"status\x000\x00key\x00foo@example.com\x00value\x00bar\x00\x00"
    );
    let seq1 = frame(&[
        ("request", b"sequence"),
        ("table", virt.as_bytes()),
        ("flags", FLAGS),
        ("function", b"1"),
    ]);
    assert_eq!(
        ask(&mut s, &seq1),
        b"status\x000\x00key\x00second\x00value\x00val2\x00\x00"
    );
    assert_eq!(
        ask(&mut s, &seq1),
        b"status\x001\x00key\x00\x00value\x00\x00\x00"
    );
    let seq9 = frame(&[
        ("request", b"sequence"),
        ("table", virt.as_bytes()),
        ("flags", FLAGS),
        ("function", b"9"),
    ]);
    assert_eq!(
        ask(&mut s, &seq9),
        b"status\x003\x00key\x00\x00value\x00\x00\x00"
    );
    // Updates are refused on the read-only service.
    let upd = frame(&[
        ("request", b"update"),
        ("table", virt.as_bytes()),
        ("flags", FLAGS),
        ("key", b"k"),
        ("value", b"v"),
    ]);
    assert_eq!(ask(&mut s, &upd), b"status\x004\x00\x00");
    let del = frame(&[
        ("request", b"delete"),
        ("table", virt.as_bytes()),
        ("flags", FLAGS),
        ("key", b"k"),
    ]);
    assert_eq!(ask(&mut s, &del), b"status\x004\x00\x00");
    // Postfix 3.11+ dialect: instance_flags in, flags in every reply.
    let c_lookup = frame(&[
        ("request", b"lookup"),
        ("table", virt.as_bytes()),
        ("instance_flags", FLAGS),
        ("flags", FLAGS),
        ("key", b"second"),
    ]);
    assert_eq!(
        ask(&mut s, &c_lookup),
        b"status\x000\x00flags\x0016464\x00value\x00val2\x00\x00"
    );
    let c_open = frame(&[
        ("request", b"open"),
        ("table", virt.as_bytes()),
        ("instance_flags", FLAGS),
    ]);
    assert_eq!(
        ask(&mut s, &c_open),
        b"status\x000\x00flags\x0016464\x00\x00"
    );
}

#[test]
fn write_service_updates_deletes_and_sequences_lmdb() {
    let srv = server();
    let db = format!("lmdb:{}", srv.path("db").display());
    let mut w = connect(&srv.proxywrite, true);
    let upd = |k: &str, v: &str| {
        frame(&[
            ("request", b"update"),
            ("table", db.as_bytes()),
            ("flags", FLAGS),
            ("key", k.as_bytes()),
            ("value", v.as_bytes()),
        ])
    };
    assert_eq!(ask(&mut w, &upd("Key1", "one")), b"status\x000\x00\x00");
    assert_eq!(ask(&mut w, &upd("key2", "two")), b"status\x000\x00\x00");
    assert_eq!(ask(&mut w, &upd("key2", "TWO")), b"status\x000\x00\x00");
    assert_eq!(
        ask(&mut w, &lookup(&db, "KEY1")),
        b"status\x000\x00value\x00one\x00\x00"
    );
    let del = frame(&[
        ("request", b"delete"),
        ("table", db.as_bytes()),
        ("flags", FLAGS),
        ("key", b"key1"),
    ]);
    assert_eq!(ask(&mut w, &del), b"status\x000\x00\x00");
    assert_eq!(ask(&mut w, &del), b"status\x001\x00\x00");
    let seq0 = frame(&[
        ("request", b"sequence"),
        ("table", db.as_bytes()),
        ("flags", FLAGS),
        ("function", b"0"),
    ]);
    assert_eq!(
        ask(&mut w, &seq0),
        b"status\x000\x00key\x00key2\x00value\x00TWO\x00\x00"
    );
    // The read service sees the written file.
    let mut r = connect(&srv.proxymap, true);
    assert_eq!(
        ask(&mut r, &lookup(&db, "key2")),
        b"status\x000\x00value\x00TWO\x00\x00"
    );
    // Created as Postfix's proxywrite creates it: readable by its owner
    // only (mode 0600, whatever the umask).
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(srv.path("db.lmdb"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    // Tables approved for reading only are denied on the write service.
    let virt = format!("texthash:{}", srv.path("virt").display());
    assert_eq!(
        ask(&mut w, &lookup(&virt, "second")),
        b"status\x004\x00value\x00\x00\x00"
    );
}

#[test]
fn denials_and_malformed_requests_get_exact_replies_and_the_server_keeps_serving() {
    let srv = server();
    let virt = format!("texthash:{}", srv.path("virt").display());
    let mut s = connect(&srv.proxymap, true);
    assert_eq!(
        ask(&mut s, &lookup("texthash:/etc/passwd", "root")),
        b"status\x004\x00value\x00\x00\x00"
    );
    let log = srv.wait_for_log("to approve this table");
    assert!(
        log.contains("warning: request for unapproved table: \"texthash:/etc/passwd\""),
        "{log}"
    );
    assert!(
        log.contains("list proxy:texthash:/etc/passwd in main.cf:proxy_read_maps"),
        "{log}"
    );
    assert_eq!(
        ask(&mut s, &lookup("nocolon", "k")),
        b"status\x003\x00value\x00\x00\x00"
    );
    assert_eq!(
        ask(&mut s, &frame(&[("request", b"close"), ("table", b"x:y")])),
        b"status\x003\x00\x00"
    );
    // Missing, extra, repeated and non-numeric attributes.
    let missing = frame(&[
        ("request", b"lookup"),
        ("table", virt.as_bytes()),
        ("flags", FLAGS),
    ]);
    assert_eq!(ask(&mut s, &missing), b"status\x003\x00value\x00\x00\x00");
    let extra = frame(&[
        ("request", b"lookup"),
        ("table", virt.as_bytes()),
        ("flags", FLAGS),
        ("key", b"k"),
        ("x", b"y"),
    ]);
    assert_eq!(ask(&mut s, &extra), b"status\x003\x00value\x00\x00\x00");
    let repeated = frame(&[
        ("request", b"open"),
        ("table", virt.as_bytes()),
        ("table", virt.as_bytes()),
    ]);
    assert_eq!(ask(&mut s, &repeated), b"status\x003\x00flags\x000\x00\x00");
    let badnum = frame(&[
        ("request", b"update"),
        ("table", virt.as_bytes()),
        ("flags", b"x"),
        ("key", b"k"),
        ("value", b"v"),
    ]);
    assert_eq!(ask(&mut s, &badnum), b"status\x003\x00\x00");
    // A frame that does not start with `request`, and garbage.
    assert_eq!(
        ask(&mut s, &frame(&[("table", b"x:y")])),
        b"status\x003\x00\x00"
    );
    assert_eq!(
        ask(&mut s, b"\xff\xfe garbage\0\0\0"),
        b"status\x003\x00\x00"
    );
    // A key over max_string (1024 here) is not in any table: NOKEY, as
    // Postfix answers a huge key; the connection stays usable.
    let huge = "k".repeat(100_000);
    assert_eq!(
        ask(&mut s, &lookup(&virt, &huge)),
        b"status\x001\x00value\x00\x00\x00"
    );
    let many: Vec<(&str, &[u8])> = std::iter::repeat_n(("x", &b"y"[..]), 500).collect();
    assert_eq!(ask(&mut s, &frame(&many)), b"status\x003\x00\x00");
    assert_eq!(
        ask(&mut s, &lookup(&virt, "second")),
        b"status\x000\x00value\x00val2\x00\x00"
    );
    // And other clients were never affected.
    let mut other = connect(&srv.proxymap, true);
    assert_eq!(
        ask(&mut other, &lookup(&virt, "second")),
        b"status\x000\x00value\x00val2\x00\x00"
    );
}

#[test]
fn no_greeting_dialect_for_old_postfix() {
    let srv = Server::start_toml(
        "proxy_read_maps = \"proxy:static:hello\"\ngreeting = \"none\"\n",
        |_| {},
    );
    let mut s = connect(&srv.proxymap, false);
    assert_eq!(
        ask(&mut s, &lookup("static:hello", "any")),
        b"status\x000\x00value\x00hello\x00\x00"
    );
}

#[test]
fn changed_table_file_is_reopened_without_dropping_the_client() {
    let srv = server();
    let virt = format!("texthash:{}", srv.path("virt").display());
    let mut s = connect(&srv.proxymap, true);
    assert_eq!(
        ask(&mut s, &lookup(&virt, "second")),
        b"status\x000\x00value\x00val2\x00\x00"
    );
    // Replace by rename, as editors and postmap do.
    std::fs::write(srv.path("virt.new"), "second changed\n").unwrap();
    std::fs::rename(srv.path("virt.new"), srv.path("virt")).unwrap();
    assert_eq!(
        ask(&mut s, &lookup(&virt, "second")),
        b"status\x000\x00value\x00changed\x00\x00"
    );
    // Rewrite in place with a different size.
    std::fs::write(srv.path("virt"), "second rewritten-in-place\n").unwrap();
    assert_eq!(
        ask(&mut s, &lookup(&virt, "second")),
        b"status\x000\x00value\x00rewritten-in-place\x00\x00"
    );
}

#[test]
fn broken_table_gets_a_surrogate_names_file_and_line_and_opens_once_fixed() {
    let srv = server();
    let broken = format!("texthash:{}", srv.path("broken").display());
    std::fs::write(srv.path("broken"), "a 1\n# comment\nb 2\na 3\n").unwrap();
    let mut s = connect(&srv.proxymap, true);
    // As Postfix's proxymap: the open succeeds with a surrogate (a pattern
    // table), so clients do not retry the open forever, and every request
    // answers RETRY, so they defer.
    let open = frame(&[
        ("request", b"open"),
        ("table", broken.as_bytes()),
        ("flags", FLAGS),
    ]);
    assert_eq!(ask(&mut s, &open), b"status\x000\x00flags\x0016480\x00\x00");
    for _ in 0..2 {
        assert_eq!(
            ask(&mut s, &lookup(&broken, "b")),
            b"status\x002\x00value\x00\x00\x00"
        );
    }
    let first = frame(&[
        ("request", b"sequence"),
        ("table", broken.as_bytes()),
        ("flags", FLAGS),
        ("function", b"0"),
    ]);
    assert_eq!(
        ask(&mut s, &first),
        b"status\x002\x00key\x00\x00value\x00\x00\x00"
    );
    let log = srv.wait_for_log("is unavailable");
    let expected = format!(
        "{}, line 4: duplicate entry: \"a\"",
        srv.path("broken").display()
    );
    assert!(log.contains(&expected), "{log}");
    assert!(
        log.contains(&format!("{broken} is unavailable. {expected}")),
        "{log}"
    );
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("duplicate entry") && !l.contains("is unavailable"))
            .count(),
        1,
        "the open error is logged once: {log}"
    );
    std::fs::write(srv.path("broken"), "a 1\nb 2\n").unwrap();
    assert_eq!(
        ask(&mut s, &lookup(&broken, "b")),
        b"status\x000\x00value\x002\x00\x00"
    );
    // A missing file gets a surrogate too, named as Postfix names it.
    let missing = format!("texthash:{}", srv.path("nothing").display());
    let srv2 = Server::start_toml(&format!("proxy_read_maps = \"proxy:{missing}\"\n"), |_| {});
    let mut s2 = connect(&srv2.proxymap, true);
    assert_eq!(
        ask(&mut s2, &lookup(&missing, "x")),
        b"status\x002\x00value\x00\x00\x00"
    );
    let log = srv2.wait_for_log("is unavailable");
    assert!(
        log.contains(&format!(
            "{missing} is unavailable. open {}: No such file or directory",
            srv.path("nothing").display()
        )),
        "{log}"
    );
}

#[test]
fn a_blocked_table_does_not_stall_other_tables() {
    let srv = server();
    let db = format!("lmdb:{}", srv.path("db").display());
    let virt = format!("texthash:{}", srv.path("virt").display());
    let mut w = connect(&srv.proxywrite, true);
    let upd = frame(&[
        ("request", b"update"),
        ("table", db.as_bytes()),
        ("flags", FLAGS),
        ("key", b"k"),
        ("value", b"v"),
    ]);
    assert_eq!(ask(&mut w, &upd), b"status\x000\x00\x00");
    // Hold Postfix's exclusive lock on the LMDB file, as a rebuilding postmap does.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(srv.path("db.lmdb"))
        .unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
    // SAFETY: zeroed flock is a whole-file lock request.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as _;
    // SAFETY: fd is open for writing; fl is valid.
    assert_eq!(unsafe { libc::fcntl(fd, libc::F_SETLK, &fl) }, 0);
    let db_path = srv.proxymap.clone();
    let db_name = db.clone();
    let blocked = std::thread::spawn(move || {
        let mut s = connect(&db_path, true);
        let start = Instant::now();
        let reply = ask(&mut s, &lookup(&db_name, "k"));
        (reply, start.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    let mut s = connect(&srv.proxymap, true);
    for _ in 0..50 {
        assert_eq!(
            ask(&mut s, &lookup(&virt, "second")),
            b"status\x000\x00value\x00val2\x00\x00"
        );
    }
    assert!(
        !blocked.is_finished(),
        "the lmdb lookup should still wait for the lock"
    );
    fl.l_type = libc::F_UNLCK as _;
    // SAFETY: as above.
    assert_eq!(unsafe { libc::fcntl(fd, libc::F_SETLK, &fl) }, 0);
    let (reply, waited) = blocked.join().unwrap();
    assert_eq!(reply, b"status\x000\x00value\x00v\x00\x00");
    assert!(waited >= Duration::from_millis(300));
}

#[test]
fn thousands_of_concurrent_connections() {
    let srv = Server::start_toml("proxy_read_maps = \"proxy:inline:{a=b}\"\n", |_| {});
    let mut conns: Vec<UnixStream> = (0..2000).map(|_| connect(&srv.proxymap, true)).collect();
    for s in conns.iter_mut() {
        s.write_all(&lookup("inline:{a=b}", "a")).unwrap();
    }
    for s in conns.iter_mut() {
        assert_eq!(read_frame(s), b"status\x000\x00value\x00b\x00\x00");
    }
}

#[test]
fn sighup_reloads_allowlists_without_dropping_connections() {
    let srv = Server::start_toml("proxy_read_maps = \"proxy:static:one\"\n", |_| {});
    let mut s = connect(&srv.proxymap, true);
    assert_eq!(
        ask(&mut s, &lookup("static:two", "k")),
        b"status\x004\x00value\x00\x00\x00"
    );
    let config = srv.path("proxymapd.toml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("static:one", "static:one proxy:static:two");
    std::fs::write(&config, text).unwrap();
    srv.signal(libc::SIGHUP);
    srv.wait_for_log("configuration reloaded");
    assert_eq!(
        ask(&mut s, &lookup("static:two", "k")),
        b"status\x000\x00value\x00two\x00\x00"
    );
}

/// Without a signal, as Postfix daemons follow `postfix reload`: a table
/// listed since the configuration was read is approved on its first
/// request (the configuration is reread before refusing), a table removed
/// is refused once the periodic check has seen the change, and a broken
/// configuration keeps the old one with a logged reason. One connection
/// throughout.
#[test]
fn configuration_changes_are_followed_without_a_signal() {
    let srv = Server::start_toml("proxy_read_maps = \"proxy:static:one\"\n", |_| {});
    let mut s = connect(&srv.proxymap, true);
    let config = srv.path("proxymapd.toml");
    let original = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        original.replace("static:one", "static:one proxy:static:two"),
    )
    .unwrap();
    // At once: no DENY on a stale list.
    assert_eq!(
        ask(&mut s, &lookup("static:two", "k")),
        b"status\x000\x00value\x00two\x00\x00"
    );
    srv.wait_for_log("configuration reloaded (configuration file changed)");
    // Removed again: the periodic check (every second) notices.
    std::fs::write(&config, &original).unwrap();
    let started = std::time::Instant::now();
    while ask(&mut s, &lookup("static:two", "k")) != b"status\x004\x00value\x00\x00\x00" {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "never refused again"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Broken: the old configuration stays.
    std::fs::write(&config, format!("{original}\nproxy_read_map = \"typo\"\n")).unwrap();
    srv.wait_for_log("reload failed, keeping the old configuration");
    assert_eq!(
        ask(&mut s, &lookup("static:one", "k")),
        b"status\x000\x00value\x00one\x00\x00"
    );
}

/// Requests that kill Postfix's proxymap (a sequence of a table that
/// cannot be sequenced: "fatal: ... sequence operation is not supported";
/// all flag bits set: a panic on conflicting lock flags) cost proxymapd one
/// answer and a warning naming the table; the connection and server go on.
#[test]
fn requests_that_kill_stock_proxymap_get_one_answer_and_a_warning() {
    let srv = Server::start_toml("proxy_read_maps = \"proxy:static:one\"\n", |_| {});
    let mut s = connect(&srv.proxymap, true);
    let sequence = frame(&[
        ("request", b"sequence"),
        ("table", b"static:one"),
        ("flags", FLAGS),
        ("function", b"0"),
    ]);
    assert_eq!(
        ask(&mut s, &sequence),
        b"status\x005\x00key\x00\x00value\x00\x00\x00"
    );
    let log = srv.wait_for_log("sequence operation is not supported");
    assert!(log.contains("static:one"), "{log}");
    let all_bits = frame(&[
        ("request", b"lookup"),
        ("table", b"static:one"),
        ("flags", b"4294967295"),
        ("key", b"k"),
    ]);
    let reply = ask(&mut s, &all_bits);
    assert!(reply.starts_with(b"status\x00"), "{reply:?}");
    assert_eq!(
        ask(&mut s, &lookup("static:one", "k")),
        b"status\x000\x00value\x00one\x00\x00"
    );
    assert_eq!(
        ask(
            &mut connect(&srv.proxymap, true),
            &lookup("static:one", "k")
        ),
        b"status\x000\x00value\x00one\x00\x00"
    );
}

#[test]
fn sigterm_finishes_and_exits_cleanly() {
    let mut srv = Server::start_toml("proxy_read_maps = \"proxy:static:one\"\n", |_| {});
    let mut s = connect(&srv.proxymap, true);
    assert_eq!(
        ask(&mut s, &lookup("static:one", "k")),
        b"status\x000\x00value\x00one\x00\x00"
    );
    srv.signal(libc::SIGTERM);
    let status = srv.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!srv.proxymap.exists(), "socket removed on shutdown");
}

#[test]
fn bad_configuration_stops_startup_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        "queue_directory = \"/tmp/x\"\nproxy_read_mapz = \"\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_proxymapd"))
        .args(["serve", "--config", &config.to_string_lossy()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("proxy_read_mapz"),
        "{err}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_proxymapd"))
        .args(["serve", "--postfix-config", &dir.path().to_string_lossy()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("main.cf does not exist"));
}

#[test]
fn instance_flags_dialect_on_the_write_service() {
    let srv = server();
    let db = format!("lmdb:{}", srv.path("db").display());
    let mut w = connect(&srv.proxywrite, true);
    let base = |req: &'static [u8]| -> Vec<(&'static str, Vec<u8>)> {
        vec![
            ("request", req.to_vec()),
            ("table", db.as_bytes().to_vec()),
            ("instance_flags", FLAGS.to_vec()),
            ("flags", FLAGS.to_vec()),
        ]
    };
    let send = |w: &mut UnixStream,
                mut pairs: Vec<(&'static str, Vec<u8>)>,
                extra: &[(&'static str, &[u8])]| {
        pairs.extend(extra.iter().map(|(n, v)| (*n, v.to_vec())));
        let refs: Vec<(&str, &[u8])> = pairs.iter().map(|(n, v)| (*n, v.as_slice())).collect();
        ask(w, &frame(&refs))
    };
    // lmdb: FOLD_FIX|LOCK + FIXED|MULTI_WRITER, TRY1NULL learned by the first write.
    let flags = |n: u32| {
        format!(
            "status\x00{n}\x00flags\x00{}\x00",
            16448 | 0x10 | 0x40000 | 0x8
        )
    };
    let upd = send(&mut w, base(b"update"), &[("key", b"k"), ("value", b"v")]);
    assert_eq!(upd, format!("{}\x00", flags(0)).as_bytes());
    let seq = send(&mut w, base(b"sequence"), &[("function", b"0")]);
    assert_eq!(
        seq,
        format!("{}key\x00k\x00value\x00v\x00\x00", flags(0)).as_bytes()
    );
    let del = send(&mut w, base(b"delete"), &[("key", b"k")]);
    assert_eq!(del, format!("{}\x00", flags(0)).as_bytes());
    let del = send(&mut w, base(b"delete"), &[("key", b"k")]);
    assert_eq!(del, format!("{}\x00", flags(1)).as_bytes());
    // Malformed 3.11+ requests get BAD in the 3.11+ shape.
    let bad = send(&mut w, base(b"lookup"), &[]);
    assert_eq!(bad, b"status\x003\x00flags\x000\x00value\x00\x00\x00");
}

const NOKEY: &[u8] = b"status\x001\x00value\x00\x00\x00";

#[test]
fn megabyte_keys_are_looked_up_and_bigger_ones_are_not_found() {
    let long_key = "l".repeat(1_000_000);
    let long_key2 = long_key.clone();
    let srv = Server::start_toml(
        "proxy_read_maps = \"proxy:texthash:$dir/virt proxy:texthash:$dir/long\"\n",
        move |dir| {
            tables(dir);
            std::fs::write(dir.join("long"), format!("{long_key2} found\n")).unwrap();
        },
    );
    let virt = format!("texthash:{}", srv.path("virt").display());
    let long = format!("texthash:{}", srv.path("long").display());
    let mut s = connect(&srv.proxymap, true);
    // Default bounds: a 1,000,000-byte key is read and looked up like any other.
    let key = "k".repeat(1_000_000);
    assert_eq!(ask(&mut s, &lookup(&virt, &key)), NOKEY);
    assert_eq!(
        ask(&mut s, &lookup(&long, &long_key)),
        b"status\x000\x00value\x00found\x00\x00"
    );
    assert_eq!(
        ask(&mut s, &lookup(&virt, "second")),
        b"status\x000\x00value\x00val2\x00\x00"
    );
    assert!(!srv.log_text().contains("size bound"), "{}", srv.log_text());
    // Over the 1 MiB bound: dropped while streaming in, answered NOKEY.
    let key = "k".repeat(2 * 1024 * 1024 + 1);
    assert_eq!(ask(&mut s, &lookup(&virt, &key)), NOKEY);
    let log = srv.wait_for_log("size bound");
    assert!(log.contains("key of 2097153 bytes"), "{log}");
    assert_eq!(log.matches("size bound").count(), 1, "{log}");
    assert_eq!(
        ask(&mut s, &lookup(&virt, "second")),
        b"status\x000\x00value\x00val2\x00\x00"
    );
    // The same on the 3.11+ dialect: NOKEY in its shape, with the table's flags.
    let c_lookup = frame(&[
        ("request", b"lookup"),
        ("table", virt.as_bytes()),
        ("instance_flags", FLAGS),
        ("flags", FLAGS),
        ("key", key.as_bytes()),
    ]);
    assert_eq!(
        ask(&mut s, &c_lookup),
        b"status\x001\x00flags\x0016464\x00value\x00\x00\x00"
    );
}

#[test]
fn oversized_updates_and_deletes_never_touch_the_table() {
    let srv = server(); // max_string = 1024
    let db = format!("lmdb:{}", srv.path("db").display());
    let mut w = connect(&srv.proxywrite, true);
    let upd = |k: &[u8], v: &[u8]| {
        frame(&[
            ("request", b"update"),
            ("table", db.as_bytes()),
            ("flags", FLAGS),
            ("key", k),
            ("value", v),
        ])
    };
    let big = vec![b'v'; 5000];
    assert_eq!(ask(&mut w, &upd(b"k", &big)), b"status\x002\x00\x00");
    assert_eq!(ask(&mut w, &upd(&big, b"v")), b"status\x002\x00\x00");
    assert_eq!(ask(&mut w, &lookup(&db, "k")), NOKEY, "nothing was stored");
    assert_eq!(ask(&mut w, &upd(b"k", b"small")), b"status\x000\x00\x00");
    assert_eq!(ask(&mut w, &upd(b"k", &big)), b"status\x002\x00\x00");
    let del = frame(&[
        ("request", b"delete"),
        ("table", db.as_bytes()),
        ("flags", FLAGS),
        ("key", &big),
    ]);
    assert_eq!(ask(&mut w, &del), b"status\x001\x00\x00");
    assert_eq!(
        ask(&mut w, &lookup(&db, "k")),
        b"status\x000\x00value\x00small\x00\x00",
        "the stored value was neither replaced nor truncated"
    );
    // An oversized attribute that is not a key or a value is BAD.
    let huge_table = "t".repeat(5000);
    assert_eq!(
        ask(&mut w, &lookup(&huge_table, "k")),
        b"status\x003\x00value\x00\x00\x00"
    );
    let log = srv.log_text();
    assert_eq!(log.matches("answered Retry").count(), 3, "{log}");
    assert_eq!(log.matches("answered NoKey").count(), 1, "{log}");
}

#[test]
fn numbers_are_read_as_postfix_reads_them() {
    let srv = server();
    let virt = format!("texthash:{}", srv.path("virt").display());
    let mut s = connect(&srv.proxymap, true);
    let with_flags = |flags: &[u8]| {
        frame(&[
            ("request", b"lookup"),
            ("table", virt.as_bytes()),
            ("flags", flags),
            ("key", b"second"),
        ])
    };
    for flags in [&b" 16448"[..], b"+16448", b"99999999999"] {
        assert_eq!(
            ask(&mut s, &with_flags(flags)),
            b"status\x000\x00value\x00val2\x00\x00",
            "flags {:?}",
            String::from_utf8_lossy(flags)
        );
    }
    for flags in [&b"16448 "[..], b"0x10", b"", b"abc"] {
        assert_eq!(
            ask(&mut s, &with_flags(flags)),
            b"status\x003\x00value\x00\x00\x00",
            "flags {:?}",
            String::from_utf8_lossy(flags)
        );
    }
}

#[test]
fn a_request_must_arrive_within_a_second_of_its_first_byte() {
    let srv = server();
    let virt = format!("texthash:{}", srv.path("virt").display());
    let req = lookup(&virt, "second");
    // A trickling client: one byte every 300 ms is cut off after ~1 s.
    let mut slow = connect(&srv.proxymap, true);
    let mut writer = slow.try_clone().unwrap();
    let bytes = req.clone();
    let start = Instant::now();
    let trickle = std::thread::spawn(move || {
        for b in bytes {
            if writer.write_all(&[b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut byte = [0u8; 1];
    let n = std::io::Read::read(&mut slow, &mut byte).unwrap_or(0);
    let waited = start.elapsed();
    assert_eq!(n, 0, "no reply, just a closed connection");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "closed after {waited:?}"
    );
    trickle.join().unwrap();
    let log = srv.wait_for_log("of its first byte");
    assert!(
        log.contains("proxymap client did not send a whole request within 1s"),
        "{log}"
    );
    // A request sent in two parts 200 ms apart is answered, and an idle
    // pause longer than the deadline between requests is fine.
    let mut s = connect(&srv.proxymap, true);
    let (head, tail) = req.split_at(req.len() / 2);
    s.write_all(head).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(ask(&mut s, tail), b"status\x000\x00value\x00val2\x00\x00");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(ask(&mut s, &req), b"status\x000\x00value\x00val2\x00\x00");
}
