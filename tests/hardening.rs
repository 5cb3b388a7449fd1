//! Operational hardening: many concurrent clients are served even when
//! proxymapd starts with the usual soft open-files limit of 1024, and a
//! flood of bad frames writes a log proportional to the trouble, not to the
//! bytes received.

mod common;

use common::{frame, lookup_reply, read_frame, Server};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::{Duration, Instant};

const GREETING: &[u8] = b"protocol\0proxymap_protocol\0\0";

/// A server with the proxymap greeting and one inline table, started with
/// `configure` applied to its command.
fn start(extra: &str, configure: impl FnOnce(&mut std::process::Command)) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("proxymapd.toml");
    std::fs::write(
        &config,
        format!(
            "queue_directory = \"{}/queue\"\ngreeting = \"proxymap\"\n\
             proxy_read_maps = \"proxy:inline:{{a=b}}\"\n{extra}",
            dir.path().display()
        ),
    )
    .unwrap();
    let config = config.to_string_lossy().into_owned();
    Server::spawn_with(dir, &["serve", "--config", &config], &[], configure)
}

/// Make sure this test process may hold `n` descriptors.
fn ensure_own_fd_limit(n: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on our own process with a valid struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        if lim.rlim_cur < n as libc::rlim_t {
            lim.rlim_cur = (n as libc::rlim_t).min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// The "Max open files" soft and hard values of process `pid`.
fn open_files_limits(pid: u32) -> (String, String) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .to_string();
    let fields: Vec<&str> = line.split_whitespace().collect();
    (fields[3].to_string(), fields[4].to_string())
}

#[test]
fn two_thousand_concurrent_clients_are_served_from_a_soft_limit_of_1024() {
    const CLIENTS: usize = 2000;
    ensure_own_fd_limit(CLIENTS as u64 + 256);
    let srv = start("", |cmd| {
        // SAFETY: only setrlimit, async-signal-safe, between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                let lim = libc::rlimit {
                    rlim_cur: 1024,
                    rlim_max: 8192,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    assert_eq!(
        open_files_limits(srv.child.id()),
        ("8192".to_string(), "8192".to_string()),
        "the soft limit is raised to the hard limit"
    );
    let mut clients: Vec<UnixStream> = (0..CLIENTS)
        .map(|_| UnixStream::connect(&srv.proxymap).expect("connect"))
        .collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut greeting = vec![0u8; GREETING.len()];
        c.read_exact(&mut greeting)
            .unwrap_or_else(|e| panic!("client {i} got no greeting: {e}"));
        assert_eq!(greeting, GREETING, "client {i}");
    }
    for c in clients.iter_mut() {
        c.write_all(&frame(&[
            ("request", b"lookup"),
            ("table", b"inline:{a=b}"),
            ("flags", b"0"),
            ("key", b"a"),
        ]))
        .unwrap();
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let reply = read_frame(c);
        assert!(
            reply.starts_with(b"status\x000\x00value\x00b\x00"),
            "client {i}: {:?}",
            String::from_utf8_lossy(&reply)
        );
    }
    assert!(srv
        .log_text()
        .contains("open-files limit raised from 1024 to 8192"));
}

#[test]
fn connections_beyond_max_connections_are_closed_at_once() {
    let srv = start("max_connections = 3\n", |_| {});
    let mut held: Vec<UnixStream> = (0..3)
        .map(|_| {
            let mut s = UnixStream::connect(&srv.proxymap).unwrap();
            assert_eq!(read_frame(&mut s), GREETING);
            s
        })
        .collect();
    let mut extra = UnixStream::connect(&srv.proxymap).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(
        extra.read(&mut buf).unwrap(),
        0,
        "closed without a greeting"
    );
    srv.wait_for_log("the max_connections limit; closing a new one");
    // A slot freed is a slot for the next client.
    held.pop();
    let start = Instant::now();
    loop {
        let mut s = UnixStream::connect(&srv.proxymap).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        if s.read(&mut buf).unwrap_or(0) > 0 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "slot never freed");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Warnings of one kind in `log`: lines containing `line` plus the counts of
/// `KIND: N similar warnings suppressed` summaries.
fn accounted(log: &str, line: &str, kind: &str) -> u64 {
    let summary = format!("warning: {kind}: ");
    log.lines()
        .map(|l| {
            if l.contains(line) {
                return 1;
            }
            l.split_once(&summary)
                .and_then(|(_, rest)| rest.strip_suffix(" similar warnings suppressed"))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        })
        .sum()
}

fn log_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

#[test]
fn a_flood_of_bad_frames_writes_a_small_log_and_service_goes_on() {
    let srv = start("", |_| {});
    let mut s = UnixStream::connect(&srv.proxymap).unwrap();
    assert_eq!(read_frame(&mut s), GREETING);
    // Drain the replies while sending, so neither side blocks.
    let mut reader = s.try_clone().unwrap();
    let drain = std::thread::spawn(move || {
        let mut sink = Vec::new();
        reader.read_to_end(&mut sink).map(|_| sink.len())
    });
    // One MiB of NULs: each is an empty frame.
    s.write_all(&vec![0u8; 1 << 20]).unwrap();
    // Frames with more attributes than allowed (max_attrs is 64).
    let mut too_many = Vec::new();
    for i in 0..65 {
        too_many.extend_from_slice(format!("a{i}\0v\0").as_bytes());
    }
    too_many.push(0);
    for _ in 0..2000 {
        s.write_all(&too_many).unwrap();
    }
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let replied = drain.join().unwrap().expect("read the replies");
    assert!(replied > 0);
    // Every warning is either logged or counted in a summary, which comes
    // at the latest when its ten-second window ends.
    let start = Instant::now();
    let (parse, malformed) = loop {
        let log = srv.log_text();
        let parse = accounted(
            &log,
            "frame does not start with a request attribute",
            "unparsable request",
        );
        let malformed = accounted(
            &log,
            "malformed request: more than 64 attributes",
            "malformed request",
        );
        if (parse, malformed) == (1 << 20, 2000) || start.elapsed() > Duration::from_secs(25) {
            break (parse, malformed);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let log = srv.log_text();
    let size = log_size(&srv.path("proxymapd.log"));
    assert!(
        size < 100_000,
        "log of {size} bytes:\n{}",
        &log[..log.len().min(2000)]
    );
    assert_eq!((parse, malformed), (1 << 20, 2000), "{log}");
    // Still serving.
    let mut s = UnixStream::connect(&srv.proxymap).unwrap();
    assert_eq!(read_frame(&mut s), GREETING);
    assert_eq!(
        lookup_reply(&mut s, "inline:{a=b}", 0, "a"),
        (0, "b".into())
    );
}

#[test]
fn a_cache_directory_others_can_write_stops_startup_with_a_clear_message() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "queue_directory = \"{0}/q\"\nplugin_cache_dir = \"{0}/cache\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    for cmd in ["check", "serve"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_proxymapd"))
            .args([cmd, "--config", &config.to_string_lossy()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {err}");
        assert!(
            err.contains(&format!("{} is owned by uid", cache.display()))
                && err.contains("mode 0777")
                && err.contains("chmod go-w"),
            "{cmd}: {err}"
        );
    }
    assert!(
        !dir.path().join("q/private/proxymap").exists(),
        "serve never bound"
    );
}
