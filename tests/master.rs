//! proxymapd as the command of master.cf's `proxymap` and `proxywrite`
//! lines, under a private Postfix master(8): the daemon command line,
//! privileges and descriptors, one process per role whatever the load, a
//! write through proxywrite, `postfix reload` (old processes gone at once,
//! new table served, no throttling), kill -9 (restarted at once, no
//! throttling), `max_idle`, and a bad start (a `fatal:` line and master's
//! throttling, as for any Postfix daemon). Also, outside master: a bad
//! daemon command line ends with Postfix's `fatal:` record, sent to
//! postlogd's socket.

mod common;

use common::master::{self, alive};
use common::{skip_without, Need};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A private Postfix instance whose proxymap services run proxymapd.
struct Instance {
    _dir: tempfile::TempDir,
    root: PathBuf,
    etc: PathBuf,
}

impl Instance {
    fn start(proxymap_args: &str) -> Instance {
        let dir = tempfile::Builder::new()
            .prefix("pfmaster")
            .tempdir()
            .unwrap();
        let root = dir.path().to_path_buf();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let etc = root.join("etc");
        for sub in ["etc", "spool", "data", "tables"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        let owner = proxymapd::privileges::lookup("postfix").unwrap();
        proxymapd::privileges::give(&root.join("data"), &owner).unwrap();
        let r = root.display();
        std::fs::write(
            etc.join("main.cf"),
            format!(
                "compatibility_level = 3.6
queue_directory = {r}/spool
data_directory = {r}/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = loopback-only
master_service_disable = inet
maillog_file = {r}/maillog
maillog_file_prefixes = {r}
proxy_read_maps = proxy:texthash:{r}/tables/virt proxy:lmdb:{r}/tables/virt
proxy_write_maps = proxy:lmdb:{r}/data/cache
"
            ),
        )
        .unwrap();
        let cmd = master::command_for_master();
        std::fs::write(
            etc.join("master.cf"),
            format!(
                "postlog    unix-dgram n  -  n  -  1  postlogd
proxymap   unix  -  -  n  -  1  {cmd} {proxymap_args}
proxywrite unix  -  -  n  -  1  {cmd}
"
            ),
        )
        .unwrap();
        std::fs::write(
            root.join("tables/virt"),
            "alice@example.com alice@dest.org\n",
        )
        .unwrap();
        let instance = Instance {
            _dir: dir,
            root,
            etc,
        };
        let lmdb = format!("lmdb:{}/tables/virt", instance.root.display());
        assert!(instance.postmap(&[&lmdb]).status.success());
        instance.postfix(&["start"]);
        instance
    }

    fn postfix(&self, args: &[&str]) {
        let out = master::postfix_command("postfix", &self.etc, args);
        assert!(out.status.success(), "postfix {args:?}: {out:?}");
    }

    fn postmap(&self, args: &[&str]) -> Output {
        master::postfix_command("postmap", &self.etc, args)
    }

    /// `postmap -q KEY proxy:SPEC`, given up after `within` (a throttled
    /// service never answers).
    fn lookup(&self, key: &str, spec: &str, within: Duration) -> Option<String> {
        let mut child = Command::new("postmap")
            .arg("-c")
            .arg(&self.etc)
            .args(["-q", key, &format!("proxy:{spec}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let start = Instant::now();
        loop {
            if child.try_wait().unwrap().is_some() {
                let out = child.wait_with_output().unwrap();
                return Some(String::from_utf8_lossy(&out.stdout).trim().to_string());
            }
            if start.elapsed() > within {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn table(&self, name: &str) -> String {
        format!("{}/tables/{name}", self.root.display())
    }

    fn maillog(&self) -> String {
        std::fs::read_to_string(self.root.join("maillog")).unwrap_or_default()
    }

    /// proxymapd processes of this instance, with their command lines.
    fn processes(&self) -> Vec<(i32, String)> {
        master::proxymapd_children(&self.root.join("spool"))
    }

    fn role_pids(&self, role: &str) -> Vec<i32> {
        self.processes()
            .into_iter()
            .filter(|(_, c)| c.contains(&format!("-n {role} ")))
            .map(|(p, _)| p)
            .collect()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        master::stop_quietly(&self.etc);
    }
}

fn needs_root_and_postfix() -> bool {
    if skip_without(&[Need::Postfix]) {
        return false;
    }
    if !proxymapd::privileges::running_as_root() {
        assert!(
            std::env::var_os(common::STRICT_VAR).is_none(),
            "the master(8) tests need root"
        );
        eprintln!("master(8) tests need root; skipped");
        return false;
    }
    true
}

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn proxymapd_serves_as_the_proxymap_and_proxywrite_lines_of_master_cf() {
    if !needs_root_and_postfix() {
        return;
    }
    let pf = Instance::start("");
    let texthash = format!("texthash:{}", pf.table("virt"));
    let lmdb = format!("lmdb:{}", pf.table("virt"));
    let within = Duration::from_secs(30);
    assert_eq!(
        pf.lookup("alice@example.com", &texthash, within).as_deref(),
        Some("alice@dest.org")
    );
    assert_eq!(
        pf.lookup("alice@example.com", &lmdb, within).as_deref(),
        Some("alice@dest.org")
    );

    // The daemon command line, the user, the descriptors.
    let procs = pf.processes();
    assert_eq!(procs.len(), 1, "{procs:?}");
    let (pid, cmdline) = &procs[0];
    assert!(cmdline.contains(" -l -n proxymap -t unix -u"), "{cmdline}");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = proxymapd::privileges::lookup("postfix").unwrap().uid;
    assert!(
        status.contains(&format!("Uid:\t{uid}\t{uid}\t{uid}\t{uid}")),
        "{status}"
    );
    for fd in [5, 6] {
        let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).unwrap();
        let flags = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .map(|f| u32::from_str_radix(f.trim(), 8).unwrap())
            .unwrap();
        assert!(flags & 0o2000000 != 0, "fd {fd} not close-on-exec: {info}");
    }

    // 20 concurrent clients: still one process (proxymapd never reports
    // itself busy, so master forks no second copy).
    let lookups: Vec<_> = (0..20)
        .map(|_| {
            let etc = pf.etc.clone();
            let spec = format!("proxy:{lmdb}");
            std::thread::spawn(move || {
                Command::new("postmap")
                    .arg("-c")
                    .arg(etc)
                    .args(["-q", "alice@example.com", &spec])
                    .output()
                    .unwrap()
            })
        })
        .collect();
    for l in lookups {
        assert_eq!(
            String::from_utf8_lossy(&l.join().unwrap().stdout).trim(),
            "alice@dest.org"
        );
    }
    assert_eq!(pf.role_pids("proxymap"), vec![*pid]);

    // An unapproved table: the client's fatal, proxymapd's warning in the
    // maillog under Postfix's tag.
    let denied = pf.postmap(&["-q", "x", &format!("proxy:texthash:{}", pf.table("other"))]);
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains("not configured"));
    let log = pf.maillog();
    assert!(
        log.contains(&format!(
            "postfix/proxymapd[{pid}]: warning: request for unapproved table"
        )),
        "{log}"
    );

    // A write through proxywrite: the file belongs to mail_owner, 0600,
    // and Postfix reads it directly.
    let cache = format!("lmdb:{}/data/cache", pf.root.display());
    let wrote = Command::new(env!("CARGO_BIN_EXE_proxymapd"))
        .args(["query", "--postfix-config"])
        .arg(&pf.etc)
        .args(["--write", &format!("proxy:{cache}"), "k", "v"])
        .output()
        .unwrap();
    assert!(wrote.status.success(), "{wrote:?}");
    assert_eq!(
        String::from_utf8_lossy(&pf.postmap(&["-q", "k", &cache]).stdout).trim(),
        "v"
    );
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(pf.root.join("data/cache.lmdb")).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (uid, 0o600));
    let writer = pf.role_pids("proxywrite");
    assert_eq!(writer.len(), 1);
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", writer[0])).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        fields[3],
        writer[0].to_string(),
        "proxywrite leads its own session"
    );

    // postfix reload: the old processes leave at once (EOF on descriptor
    // 5), a table added to main.cf is served by the next process.
    let old: Vec<i32> = pf.processes().into_iter().map(|(p, _)| p).collect();
    std::fs::write(pf.table("virt2"), "bob@example.com bob@dest.org\n").unwrap();
    let main_cf = pf.etc.join("main.cf");
    let text = std::fs::read_to_string(&main_cf).unwrap().replace(
        "proxy_read_maps = ",
        &format!("proxy_read_maps = proxy:texthash:{} ", pf.table("virt2")),
    );
    std::fs::write(&main_cf, text).unwrap();
    pf.postfix(&["reload"]);
    let start = Instant::now();
    while old.iter().any(|p| alive(*p)) && start.elapsed() < SECOND {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !old.iter().any(|p| alive(*p)),
        "old proxymapd still running 1 s after reload"
    );
    assert_eq!(
        pf.lookup(
            "bob@example.com",
            &format!("texthash:{}", pf.table("virt2")),
            within
        )
        .as_deref(),
        Some("bob@dest.org")
    );

    // kill -9: master starts a new one at once, without throttling.
    for pid in pf.role_pids("proxymap") {
        // SAFETY: kill takes no pointers.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        pf.lookup("alice@example.com", &texthash, within).as_deref(),
        Some("alice@dest.org")
    );
    let log = pf.maillog();
    assert!(log.contains("killed by signal 9"), "{log}");
    assert!(!log.contains("throttling"), "{log}");
    assert!(
        !log.lines()
            .any(|l| l.contains("proxymapd[") && l.contains(": fatal: ")),
        "{log}"
    );
}

#[test]
fn max_idle_ends_the_process_and_a_bad_start_is_throttled_like_postfix() {
    if !needs_root_and_postfix() {
        return;
    }
    let pf = Instance::start("-o max_idle=2");
    let texthash = format!("texthash:{}", pf.table("virt"));
    let within = Duration::from_secs(30);
    assert_eq!(
        pf.lookup("alice@example.com", &texthash, within).as_deref(),
        Some("alice@dest.org")
    );
    let pids = pf.role_pids("proxymap");
    assert_eq!(pids.len(), 1);
    let start = Instant::now();
    while alive(pids[0]) && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !alive(pids[0]),
        "still running 10 s after its last client with max_idle=2"
    );
    assert!(start.elapsed() >= Duration::from_secs(1));
    assert_eq!(
        pf.lookup("alice@example.com", &texthash, within).as_deref(),
        Some("alice@dest.org")
    );

    // An argument proxymapd does not know: fatal, exit 1 before the ready
    // report, so master throttles the service as for any Postfix daemon.
    let master_cf = pf.etc.join("master.cf");
    let text = std::fs::read_to_string(&master_cf)
        .unwrap()
        .replace("-o max_idle=2", "no_such_setting=1");
    std::fs::write(&master_cf, text).unwrap();
    pf.postfix(&["reload"]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        pf.lookup("alice@example.com", &texthash, Duration::from_secs(3)),
        None
    );
    let log = pf.maillog();
    assert!(
        log.contains("postfix/proxymapd[")
            && log.contains("]: fatal: unknown argument \"no_such_setting=1\""),
        "{log}"
    );
    assert!(log.contains("bad command startup -- throttling"), "{log}");
}

#[test]
fn a_bad_daemon_command_line_logs_postfix_fatal_to_postlogd() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("postlog");
    let receiver = std::os::unix::net::UnixDatagram::bind(&socket).unwrap();
    receiver
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_proxymapd"))
            .args(args)
            .env("POSTLOG_SERVICE", &socket)
            .env("POSTLOG_HOSTNAME", "mx1.example.com")
            .env("MAIL_LOGTAG", "postfix-test")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
    };
    let record = |args: &[&str]| {
        let status = run(args);
        let mut buf = [0u8; 1024];
        let n = receiver.recv(&mut buf).unwrap();
        (
            status.code(),
            String::from_utf8_lossy(&buf[..n]).into_owned(),
        )
    };
    let (code, text) = record(&["-l", "-n", "smtp", "-t", "unix"]);
    assert_eq!(code, Some(1));
    assert!(
        text.contains(" mx1 postfix-test/proxymapd[")
            && text.contains("]: fatal: service name must be one of proxymap or proxywrite"),
        "{text}"
    );
    let (_, text) = record(&["-n", "proxymap"]);
    assert!(
        text.ends_with("fatal: no transport type specified"),
        "{text}"
    );
    let (_, text) = record(&["-n", "proxymap", "-t", "inet"]);
    assert!(
        text.ends_with("fatal: unsupported transport type: inet"),
        "{text}"
    );
    let (_, text) = record(&["-c", "-n", "proxymap", "-t", "unix"]);
    assert!(text.contains("fatal: chroot is not supported"), "{text}");
    let (_, text) = record(&["-n", "proxymap", "-t", "unix"]);
    assert!(
        text.contains("fatal: descriptors 5 and 6 are not open"),
        "{text}"
    );
}
