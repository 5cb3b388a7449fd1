//! End to end with real Postfix daemons: one private Postfix 3.7 instance
//! (master, smtpd on a loopback port, cleanup, trivial-rewrite, qmgr,
//! virtual delivery, verify) driven over SMTP, run three ways: with the
//! stock proxymap and proxywrite services, with those master.cf lines
//! commented out and `proxymapd serve --postfix-config` serving the
//! sockets, and with proxymapd as the command of those master.cf lines.
//! Every table the instance uses goes through `proxy:`: each shipped map
//! type in smtpd's restrictions, virtual alias, mailbox and canonical maps,
//! header checks in cleanup, verify's cache written through proxywrite
//! (lmdb), tables that cannot be opened (surrogates), a table rebuilt while
//! running, a table added by `postfix reload`, 20 parallel clients × 20
//! messages, and `postfix stop` with a client connected. Every outcome
//! must be equal across the three runs; the surrogate log lines too. Under
//! master, proxymapd is also killed with SIGKILL: master restarts it, no
//! mail is lost, and the cases give the same answers after.

mod common;

use common::master;
use common::{skip_without, Need};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Who serves the proxymap and proxywrite sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Stock,
    Standalone,
    Master,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Stock => "stock",
            Mode::Standalone => "standalone",
            Mode::Master => "master",
        }
    }
}

/// The tables, as `(file, contents)`; `$T` is the table directory.
const TABLES: &[(&str, &str)] = &[
    (
        "clients.cidr",
        "127.0.0.3/32 REJECT cidr says no\n127.0.0.4 OK\n",
    ),
    (
        "helo.pcre",
        "/^bad\\.helo$/ REJECT pcre helo\n/^Shout\\./i REJECT pcre shout\n",
    ),
    (
        "senders",
        "spammer@bad.test REJECT btree sender\nbad.test REJECT btree domain\n",
    ),
    (
        "classes",
        "surr-missing.test class_missing\nsurr-unreadable.test class_unreadable\n\
         surr-type.test class_unsupported\nbadregex.test class_badregex\n\
         verify.test reject_unverified_recipient\nnewtab.test class_new\n",
    ),
    (
        "recipients",
        "blocked@v.test REJECT hash recipient\nchanged@v.test REJECT version one\n\
         blockeddomain.test REJECT hash domain\nwarned@v.test WARN hash warns\n\
         held@v.test HOLD hash hold\nuser+ext@v.test REJECT extension entry\n",
    ),
    (
        "recipients_lmdb",
        "lmdbblock@v.test REJECT lmdb recipient\nlmdbuser@ REJECT lmdb user part\n",
    ),
    ("recipients_cdb", "cdbblock@v.test REJECT cdb recipient\n"),
    (
        "recipients_text",
        "texthashblock@v.test 554 texthash recipient\n",
    ),
    (
        "recipients.regexp",
        "/^re-(.*)@v\\.test$/ REJECT regexp $1\n/^defer-me@/ DEFER_IF_PERMIT regexp defers\n",
    ),
    (
        "bad.regexp",
        "/(/ REJECT broken rule\n/^x@badregex\\.test$/ REJECT good rule\n",
    ),
    (
        "aliases_lmdb",
        "info@v.test alice@v.test\nlist@v.test alice@v.test,bob@v.test\n",
    ),
    ("aliases_cdb", "sales@v.test bob@v.test\n"),
    ("aliases.regexp", "/^team-(.*)@v\\.test$/ $1@v.test\n"),
    ("canonical", "canon@v.test carol@v.test\n"),
    (
        "mailboxes",
        "alice@v.test alice/\nbob@v.test bob/\ncarol@v.test carol/\nchanged@v.test changed/\n\
         real@verify.test real/\nreal2@verify.test real2/\n",
    ),
    (
        "header.regexp",
        "/^Subject: header-regexp/ REJECT regexp header\n",
    ),
    (
        "header.pcre",
        "/^Subject: header-pcre/ REJECT pcre header\n",
    ),
    ("newtab", "newtab.test REJECT new table after reload\n"),
    ("unreadable", "anything REJECT unreadable\n"),
];

/// Indexed tables: `(source, type)`; built with Postfix's postmap.
const INDEXED: &[(&str, &str)] = &[
    ("senders", "btree"),
    ("recipients", "hash"),
    ("recipients_lmdb", "lmdb"),
    ("recipients_cdb", "cdb"),
    ("aliases_lmdb", "lmdb"),
    ("aliases_cdb", "cdb"),
    ("mailboxes", "hash"),
    ("unreadable", "cdb"),
];

/// A private Postfix instance in one of the three modes.
struct Instance {
    mode: Mode,
    _root: tempfile::TempDir,
    root: PathBuf,
    etc: PathBuf,
    tables: PathBuf,
    port: u16,
    /// postscreen's port (its cache is `proxy:btree:`).
    screen_port: u16,
    standalone: Option<Child>,
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run a command");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn postfix_ids() -> (u32, u32) {
    let owner = proxymapd::privileges::lookup("postfix").expect("the postfix user");
    (owner.uid, owner.gid)
}

/// master.cf: the services the cases use, none chrooted.
fn master_cf(mode: Mode, port: u16, screen_port: u16, proxymapd: &str) -> String {
    let (read, write) = match mode {
        Mode::Stock => (
            "proxymap   unix  -  -  n  -  -  proxymap".to_string(),
            "proxywrite unix  -  -  n  -  1  proxymap".to_string(),
        ),
        Mode::Standalone => (
            "#proxymap   unix  -  -  n  -  -  proxymap".to_string(),
            "#proxywrite unix  -  -  n  -  1  proxymap".to_string(),
        ),
        Mode::Master => (
            format!("proxymap   unix  -  -  n  -  1  {proxymapd}"),
            format!("proxywrite unix  -  -  n  -  1  {proxymapd}"),
        ),
    };
    format!(
        "127.0.0.1:{port} inet n - n - - smtpd
127.0.0.1:{screen_port} inet n - n - 1 postscreen
smtpd     pass  -  -  n  -   -  smtpd
pickup    unix  n  -  n  60  1  pickup
cleanup   unix  n  -  n  -   0  cleanup
qmgr      unix  n  -  n  300 1  qmgr
rewrite   unix  -  -  n  -   -  trivial-rewrite
bounce    unix  -  -  n  -   0  bounce
defer     unix  -  -  n  -   0  bounce
trace     unix  -  -  n  -   0  bounce
verify    unix  -  -  n  -   1  verify
flush     unix  n  -  n  1000? 0 flush
showq     unix  n  -  n  -   -  showq
error     unix  -  -  n  -   -  error
retry     unix  -  -  n  -   -  error
discard   unix  -  -  n  -   -  discard
virtual   unix  -  n  n  -   -  virtual
anvil     unix  -  -  n  -   1  anvil
scache    unix  -  -  n  -   1  scache
postlog   unix-dgram n - n - 1  postlogd
{read}
{write}
"
    )
}

impl Instance {
    fn start(mode: Mode, cache: &Path) -> Instance {
        let dir = tempfile::Builder::new().prefix("pfe2e").tempdir().unwrap();
        let root = dir.path().to_path_buf();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let (etc, tables, data, mail) = (
            root.join("etc"),
            root.join("tables"),
            root.join("data"),
            root.join("mail"),
        );
        for d in [&etc, &tables, &data, &mail, &root.join("spool")] {
            std::fs::create_dir_all(d).unwrap();
        }
        let (uid, gid) = postfix_ids();
        for d in [&data, &mail] {
            std::os::unix::fs::chown(d, Some(uid), Some(gid)).unwrap();
        }
        let t = tables.display().to_string();
        let port = free_port();
        let screen_port = loop {
            let p = free_port();
            if p != port {
                break p;
            }
        };
        let p = |spec: &str| spec.replace("$T", &t);
        let read_maps = p("proxy:cidr:$T/clients.cidr proxy:pcre:$T/helo.pcre \
             proxy:btree:$T/senders proxy:texthash:$T/classes proxy:hash:$T/recipients \
             proxy:lmdb:$T/recipients_lmdb proxy:cdb:$T/recipients_cdb \
             proxy:texthash:$T/recipients_text proxy:regexp:$T/recipients.regexp \
             proxy:regexp:$T/bad.regexp proxy:lmdb:$T/aliases_lmdb proxy:cdb:$T/aliases_cdb \
             proxy:regexp:$T/aliases.regexp proxy:texthash:$T/canonical \
             proxy:hash:$T/mailboxes proxy:regexp:$T/header.regexp proxy:pcre:$T/header.pcre \
             proxy:hash:$T/missing proxy:cdb:$T/unreadable proxy:nosuchtype:$T/whatever");
        let main_cf = format!(
            "compatibility_level = 3.6
queue_directory = {root}/spool
data_directory = {root}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.e2e.test
mydomain = e2e.test
myorigin = $myhostname
mydestination =
relay_domains =
local_recipient_maps =
alias_maps =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
default_transport = error:outbound mail is disabled in this test
smtpd_helo_required = yes
smtpd_restriction_classes = class_missing class_unreadable class_unsupported class_badregex
class_missing = check_recipient_access proxy:hash:{t}/missing
class_unreadable = check_recipient_access proxy:cdb:{t}/unreadable
class_unsupported = check_recipient_access proxy:nosuchtype:{t}/whatever
class_badregex = check_recipient_access proxy:regexp:{t}/bad.regexp
smtpd_recipient_restrictions =
    check_client_access proxy:cidr:{t}/clients.cidr
    check_helo_access proxy:pcre:{t}/helo.pcre
    check_sender_access proxy:btree:{t}/senders
    check_recipient_access proxy:texthash:{t}/classes
    check_recipient_access proxy:hash:{t}/recipients
    check_recipient_access proxy:lmdb:{t}/recipients_lmdb
    check_recipient_access proxy:cdb:{t}/recipients_cdb
    check_recipient_access proxy:texthash:{t}/recipients_text
    check_recipient_access proxy:regexp:{t}/recipients.regexp
    reject_unauth_destination
virtual_mailbox_domains = v.test verify.test
virtual_mailbox_base = {root}/mail
virtual_mailbox_maps = proxy:hash:{t}/mailboxes
virtual_alias_maps = proxy:lmdb:{t}/aliases_lmdb proxy:cdb:{t}/aliases_cdb proxy:regexp:{t}/aliases.regexp
recipient_canonical_maps = proxy:texthash:{t}/canonical
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
header_checks = proxy:regexp:{t}/header.regexp proxy:pcre:{t}/header.pcre
address_verify_map = proxy:lmdb:{root}/data/verify_cache
address_verify_poll_count = 1
proxy_read_maps = {read_maps}
import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ XAUTHORITY DISPLAY LANG=C POSTLOG_SERVICE POSTLOG_HOSTNAME PROXYMAPD_CACHE_DIR={cache}
proxy_write_maps = proxy:lmdb:{root}/data/verify_cache proxy:btree:{root}/data/verify_btree proxy:btree:$data_directory/postscreen_cache
postscreen_cache_map = proxy:btree:$data_directory/postscreen_cache
postscreen_access_list =
postscreen_greet_action = enforce
postscreen_greet_wait = 1s
",
            root = root.display(),
            cache = cache.display(),
        );
        std::fs::write(etc.join("main.cf"), main_cf).unwrap();
        let exe = PathBuf::from(env!("CARGO_BIN_EXE_proxymapd"));
        std::fs::write(
            etc.join("master.cf"),
            master_cf(mode, port, screen_port, &master::command_for_master()),
        )
        .unwrap();
        for (name, text) in TABLES {
            std::fs::write(tables.join(name), text.replace("$T", &t)).unwrap();
        }
        for (name, kind) in INDEXED {
            run(Command::new("postmap")
                .arg("-c")
                .arg(&etc)
                .arg(format!("{kind}:{}", tables.join(name).display())));
        }
        // Readable by root only: Postfix's proxymap (and proxymapd, which
        // runs as mail_owner too) cannot open it.
        std::fs::set_permissions(
            tables.join("unreadable.cdb"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let mut instance = Instance {
            mode,
            _root: dir,
            root,
            etc,
            tables,
            port,
            screen_port,
            standalone: None,
        };
        warm_plugin_cache(&exe, &instance.etc, cache);
        instance.postfix(&["start"]);
        if mode == Mode::Standalone {
            let log = std::fs::File::create(instance.root.join("proxymapd.log")).unwrap();
            let child = Command::new(&exe)
                .args(["serve", "--postfix-config"])
                .arg(&instance.etc)
                .env("PROXYMAPD_CACHE_DIR", cache)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap();
            instance.standalone = Some(child);
        }
        instance.wait_until_ready();
        instance
    }

    fn postfix(&self, args: &[&str]) -> Output {
        let out = master::postfix_command("postfix", &self.etc, args);
        assert!(
            out.status.success(),
            "{}: postfix {args:?} failed: {}{}\nmaillog:\n{}",
            self.mode.name(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.proxymap_log()
        );
        out
    }

    fn postmap(&self, args: &[&str]) -> Output {
        master::postfix_command("postmap", &self.etc, args)
    }

    fn wait_until_ready(&self) {
        let socket = self.root.join("spool/private/proxymap");
        let start = Instant::now();
        loop {
            let smtp = TcpStream::connect(("127.0.0.1", self.port)).is_ok();
            let proxy = std::os::unix::net::UnixStream::connect(&socket).is_ok();
            if smtp && proxy {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{}: Postfix did not come up:\n{}",
                self.mode.name(),
                self.proxymap_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the proxymap service logged: the maillog (stock and master),
    /// or standalone proxymapd's standard error.
    fn proxymap_log(&self) -> String {
        let maillog = std::fs::read_to_string(self.root.join("maillog")).unwrap_or_default();
        let standalone =
            std::fs::read_to_string(self.root.join("proxymapd.log")).unwrap_or_default();
        format!("{maillog}{standalone}")
    }

    /// The proxymap service's warnings and errors, without time stamps,
    /// process names and ids, with the instance's root as `$ROOT`.
    fn proxymap_complaints(&self) -> Vec<String> {
        let root = self.root.display().to_string();
        let mut lines: Vec<String> = self
            .proxymap_log()
            .lines()
            .filter_map(|line| {
                let (who, text) = line.split_once("]: ")?;
                let ours = who.ends_with("/proxymap[")
                    || who.contains("proxymap[")
                    || who.contains("proxymapd[");
                let ours = ours && !who.contains("postfix/smtpd");
                (ours && (text.starts_with("warning: ") || text.starts_with("error: ")))
                    .then(|| text.replace(&root, "$ROOT"))
            })
            .filter(|text| {
                !text.contains("compiled-plugin cache") && !text.contains("running as root")
            })
            .collect();
        lines.sort();
        lines.dedup();
        lines
    }

    /// postscreen's verdicts and warnings, in order, without time stamps,
    /// process ids, client ports and timings.
    fn postscreen_log(&self) -> Vec<String> {
        let maillog = std::fs::read_to_string(self.root.join("maillog"))
            .unwrap_or_default()
            .replace(&self.root.display().to_string(), "$ROOT");
        maillog
            .lines()
            .filter(|line| line.contains("/postscreen["))
            .filter_map(|line| line.split_once("]: ").map(|(_, text)| text))
            .filter(|text| !text.starts_with("CONNECT") && !text.starts_with("DISCONNECT"))
            .map(|text| {
                let mut out = String::new();
                let mut rest = text;
                // "[127.0.0.5]:40312" -> "[127.0.0.5]"; "after 0.01" -> "after T".
                while let Some(at) = rest.find("]:") {
                    out.push_str(&rest[..at + 1]);
                    rest = rest[at + 2..].trim_start_matches(|c: char| c.is_ascii_digit());
                }
                out.push_str(rest);
                match out.find(" after ") {
                    Some(at) => {
                        let tail = &out[at + 7..];
                        let end = tail.find(' ').unwrap_or(tail.len());
                        format!("{} after T{}", &out[..at], &tail[end..])
                    }
                    None => out,
                }
            })
            .collect()
    }

    /// Wait until the queue is empty (all mail delivered or bounced).
    fn drain(&self) {
        let start = Instant::now();
        loop {
            let out = Command::new("postqueue")
                .arg("-c")
                .arg(&self.etc)
                .arg("-j")
                .output()
                .unwrap();
            if out.status.success() && out.stdout.is_empty() {
                return;
            }
            if start.elapsed() > Duration::from_secs(30) {
                let _ = Command::new("postqueue")
                    .arg("-c")
                    .arg(&self.etc)
                    .arg("-f")
                    .status();
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "{}: the queue did not drain: {}",
                self.mode.name(),
                String::from_utf8_lossy(&out.stdout)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Messages delivered per mailbox.
    fn mailboxes(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        let Ok(dirs) = std::fs::read_dir(self.root.join("mail")) else {
            return counts;
        };
        for dir in dirs.flatten() {
            let n = std::fs::read_dir(dir.path().join("new"))
                .map(|d| d.count())
                .unwrap_or(0);
            counts.insert(dir.file_name().to_string_lossy().into_owned(), n);
        }
        counts
    }
}

impl Drop for Instance {
    /// Stop the instance (and standalone proxymapd) even when a case failed.
    fn drop(&mut self) {
        master::stop_quietly(&self.etc);
        if let Some(mut child) = self.standalone.take() {
            // SAFETY: kill takes no pointers.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
    }
}

/// Compile the shipped plugins into `cache` once, as root, and give the
/// cache to mail_owner: a plugin table answers RETRY while it compiles for
/// the first time (in a debug build, for half a minute), which stock
/// Postfix never does, so the runs start with the cache an installed
/// proxymapd would have after its first start.
fn warm_plugin_cache(exe: &Path, etc: &Path, cache: &Path) {
    if std::fs::read_dir(cache)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false)
    {
        return;
    }
    let _ = Command::new(exe)
        .args(["check", "--postfix-config"])
        .arg(etc)
        .env("PROXYMAPD_CACHE_DIR", cache)
        .output()
        .unwrap();
    let (uid, gid) = postfix_ids();
    for entry in std::fs::read_dir(cache).unwrap().flatten() {
        std::os::unix::fs::chown(entry.path(), Some(uid), Some(gid)).unwrap();
    }
    std::os::unix::fs::chown(cache, Some(uid), Some(gid)).unwrap();
}

/// One SMTP conversation.
struct Smtp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Smtp {
    /// The next reply, its lines joined by `|`; `closed` at end of file.
    fn reply(&mut self) -> String {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) | Err(_) => {
                    lines.push("closed".to_string());
                    break;
                }
                Ok(_) => {}
            }
            let line = line.trim_end().to_string();
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                break;
            }
        }
        normalize(&lines.join("|"))
    }

    fn command(&mut self, line: &str) -> String {
        let _ = self.writer.write_all(format!("{line}\r\n").as_bytes());
        self.reply()
    }
}

/// Queue ids and time-dependent words out of a reply.
fn normalize(reply: &str) -> String {
    match reply.find("queued as ") {
        Some(at) => format!("{}queued as ID", &reply[..at]),
        None => reply.to_string(),
    }
}

/// A TCP connection to `port` from `source` (any 127.x address).
fn tcp_from(source: &str, port: u16) -> std::io::Result<TcpStream> {
    use std::os::fd::FromRawFd;
    let src: std::net::Ipv4Addr = source.parse().unwrap();
    // SAFETY: plain socket calls with a sockaddr_in built here.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let stream = TcpStream::from_raw_fd(fd);
        let addr = |ip: std::net::Ipv4Addr, port: u16| libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(ip).to_be(),
            },
            sin_zero: [0; 8],
        };
        let local = addr(src, 0);
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        if libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let remote = addr(std::net::Ipv4Addr::LOCALHOST, port);
        if libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(stream)
    }
}

impl Smtp {
    /// Connect from `source` (any 127.x address), reading nothing yet.
    fn open(port: u16, source: &str) -> Smtp {
        let stream = tcp_from(source, port).expect("connect to smtpd");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Smtp {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    /// Connect from `source` (any 127.x address) and read the greeting.
    fn connect_as(port: u16, source: &str) -> (Smtp, String) {
        let mut smtp = Smtp::open(port, source);
        let greeting = smtp.reply();
        (smtp, greeting)
    }
}

/// One SMTP case: who connects, what it says, what it sends.
#[derive(Clone)]
struct Case {
    name: &'static str,
    source: &'static str,
    helo: &'static str,
    from: &'static str,
    rcpts: Vec<&'static str>,
    subject: &'static str,
}

fn case(name: &'static str, rcpt: &'static str) -> Case {
    Case {
        name,
        source: "127.0.0.1",
        helo: "client.e2e.test",
        from: "sender@e2e.test",
        rcpts: vec![rcpt],
        subject: "hello",
    }
}

/// Run `case`: the replies to HELO, MAIL, each RCPT and (when a recipient
/// was accepted) the end of DATA.
fn send(port: u16, case: &Case) -> Vec<String> {
    let (mut smtp, greeting) = Smtp::connect_as(port, case.source);
    let mut replies = Vec::new();
    if !greeting.starts_with("220") {
        return vec![format!("greeting {greeting}")];
    }
    replies.push(smtp.command(&format!("HELO {}", case.helo)));
    replies.push(smtp.command(&format!("MAIL FROM:<{}>", case.from)));
    let mut accepted = false;
    for rcpt in &case.rcpts {
        let reply = smtp.command(&format!("RCPT TO:<{rcpt}>"));
        accepted |= reply.starts_with("250");
        replies.push(reply);
    }
    if accepted {
        let data = smtp.command("DATA");
        if data.starts_with("354") {
            let message = format!(
                "From: <{}>\r\nTo: <{}>\r\nSubject: {}\r\n\r\nbody of {}\r\n.",
                case.from, case.rcpts[0], case.subject, case.name
            );
            replies.push(smtp.command(&message));
        } else {
            replies.push(data);
        }
    }
    smtp.command("QUIT");
    replies
}

/// The cases every mode runs, in order.
fn cases() -> Vec<Case> {
    let mut all = vec![
        case("virtual mailbox (hash)", "alice@v.test"),
        case("second mailbox (hash)", "bob@v.test"),
        case("unknown virtual user (hash)", "nobody@v.test"),
        case("relay denied", "someone@elsewhere.test"),
        case("access reject (hash)", "blocked@v.test"),
        case("access reject, upper case (hash)", "BLOCKED@V.TEST"),
        case("access by domain (hash)", "anyone@blockeddomain.test"),
        case("access WARN (hash)", "warned@v.test"),
        case("access HOLD (hash)", "held@v.test"),
        case("access by address extension (hash)", "user+ext@v.test"),
        case("access reject (lmdb)", "lmdbblock@v.test"),
        case("access by user part (lmdb)", "lmdbuser@v.test"),
        case("access reject (cdb)", "cdbblock@v.test"),
        case("access numeric (texthash)", "texthashblock@v.test"),
        case("access reject with $1 (regexp)", "re-abc@v.test"),
        case("access DEFER_IF_PERMIT (regexp)", "defer-me@v.test"),
        case("virtual alias (lmdb)", "info@v.test"),
        case("virtual alias to two (lmdb)", "list@v.test"),
        case("virtual alias (cdb)", "sales@v.test"),
        case("virtual alias (regexp)", "team-carol@v.test"),
        case("recipient canonical (texthash)", "canon@v.test"),
        case("surrogate: missing hash file", "a@surr-missing.test"),
        case("surrogate: unreadable cdb file", "a@surr-unreadable.test"),
        case("surrogate: unsupported map type", "a@surr-type.test"),
        case("bad regexp rule skipped, good rule used", "x@badregex.test"),
        case("bad regexp rule skipped, no match", "y@badregex.test"),
        case(
            "verify: unknown address (lmdb cache via proxywrite)",
            "ghost@verify.test",
        ),
        case("verify: deliverable address", "real@verify.test"),
        case("access reject before rebuild (hash)", "changed@v.test"),
    ];
    let mut c = case("client reject (cidr)", "alice@v.test");
    c.source = "127.0.0.3";
    all.push(c);
    let mut c = case("client OK (cidr)", "someone@elsewhere.test");
    c.source = "127.0.0.4";
    all.push(c);
    let mut c = case("helo reject (pcre)", "alice@v.test");
    c.helo = "bad.helo";
    all.push(c);
    // pcre tables match without case by default; /i makes a rule match case.
    let mut c = case(
        "helo, rule made case-sensitive by /i (pcre)",
        "alice@v.test",
    );
    c.helo = "SHOUT.example";
    all.push(c);
    let mut c = case("sender reject (btree)", "alice@v.test");
    c.from = "spammer@bad.test";
    all.push(c);
    let mut c = case("sender domain reject (btree)", "alice@v.test");
    c.from = "other@bad.test";
    all.push(c);
    let mut c = case("header check (regexp)", "alice@v.test");
    c.subject = "header-regexp here";
    all.push(c);
    let mut c = case("header check (pcre)", "alice@v.test");
    c.subject = "header-pcre here";
    all.push(c);
    let mut c = case("several recipients, one surrogate", "bob@v.test");
    c.rcpts = vec!["bob@v.test", "b@surr-missing.test", "carol@v.test"];
    all.push(c);
    all
}

/// A Berkeley DB file written through proxywrite: whether mail_owner owns
/// it, its mode, and whether db5.3_verify passes.
fn berkeley_file_state(path: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let verified = Command::new("db5.3_verify").arg(path).output().unwrap();
    format!(
        "uid {} mode {:o} verify {}",
        if meta.uid() == postfix_ids().0 {
            "mail_owner"
        } else {
            "other"
        },
        meta.mode() & 0o777,
        verified.status.success()
    )
}

/// A client that sends EHLO before postscreen's greeting, then tries to
/// send mail: the replies it gets.
fn talk_first(port: u16, source: &str) -> Vec<String> {
    let mut smtp = Smtp::open(port, source);
    let _ = smtp.writer.write_all(b"EHLO early.e2e.test\r\n");
    // postscreen's "220-" line and its answer to the early EHLO come as
    // one multi-line reply.
    let mut replies = vec![smtp.reply()];
    replies.push(smtp.command("MAIL FROM:<early@e2e.test>"));
    replies.push(smtp.command("RCPT TO:<alice@v.test>"));
    replies.push(smtp.command("QUIT"));
    replies
}

/// Run the verify cases until each settles (450 while the probe runs).
fn settle_verify(port: u16, case: &Case) -> Vec<String> {
    let start = Instant::now();
    loop {
        let replies = send(port, case);
        let pending = replies
            .iter()
            .any(|r| r.starts_with("450") && r.contains("verification in progress"));
        if !pending || start.elapsed() > Duration::from_secs(60) {
            return replies;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Everything one mode produced.
struct Run {
    outcomes: Vec<(String, Vec<String>)>,
    complaints: Vec<String>,
}

fn exercise(mode: Mode, cache: &Path) -> Run {
    let mut pf = Instance::start(mode, cache);
    let port = pf.port;
    let (mut smtp, greeting) = Smtp::connect_as(port, "127.0.0.1");
    let helo = smtp.command("HELO ready.e2e.test");
    assert!(
        greeting.starts_with("220") && helo.starts_with("250"),
        "{}: smtpd does not answer ({greeting} / {helo}):\n{}",
        mode.name(),
        pf.proxymap_log()
    );
    drop(smtp);
    let mut outcomes = Vec::new();
    let mut record = |name: &str, replies: Vec<String>| outcomes.push((name.to_string(), replies));
    for c in cases() {
        let replies = if c.name.starts_with("verify") {
            // The first answer is always "in progress"; the cache is
            // written through proxywrite, then the answer settles.
            let first = send(port, &c);
            let mut settled = settle_verify(port, &c);
            settled.insert(0, format!("first: {}", first.join(" / ")));
            settled
        } else {
            send(port, &c)
        };
        record(c.name, replies);
    }
    // The verify cache is written through proxywrite as mail_owner, 0600.
    let cache = pf.root.join("data/verify_cache.lmdb");
    let meta = std::fs::metadata(&cache).expect("the verify cache exists");
    use std::os::unix::fs::MetadataExt;
    record(
        "verify cache owner and mode",
        vec![format!(
            "uid {} mode {:o}",
            if meta.uid() == postfix_ids().0 {
                "mail_owner"
            } else {
                "other"
            },
            meta.mode() & 0o777
        )],
    );

    // postscreen with its cache on proxy:btree: (written through
    // proxywrite): a new client waits out the pregreet test and is cached,
    // the same client again is passed from the cache, a client that talks
    // first is refused; then what postscreen logged and what the cache
    // file holds.
    for name in [
        "postscreen: new client passes the pregreet test",
        "postscreen: the same client again, from the cache",
    ] {
        let mut c = case(name, "alice@v.test");
        c.source = "127.0.0.5";
        record(name, send(pf.screen_port, &c));
    }
    record(
        "postscreen: a client that talks before the greeting",
        talk_first(pf.screen_port, "127.0.0.6"),
    );
    // postlogd writes the last verdict a moment after the reply.
    let start = Instant::now();
    let mut screen_log = pf.postscreen_log();
    while !screen_log.iter().any(|l| l.starts_with("NOQUEUE"))
        && start.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(50));
        screen_log = pf.postscreen_log();
    }
    record("postscreen: what it logged", screen_log);
    let screen_cache = pf.root.join("data/postscreen_cache.db");
    let listed = pf.postmap(&[
        "-s",
        &format!("btree:{}", pf.root.join("data/postscreen_cache").display()),
    ]);
    let mut keys: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    keys.sort();
    record(
        "postscreen: cache keys, owner, mode, db5.3_verify",
        vec![keys.join(" "), berkeley_file_state(&screen_cache)],
    );

    // A table rebuilt while running: the next session sees the new rule.
    std::thread::sleep(Duration::from_millis(1100));
    let source = pf.tables.join("recipients");
    let text = std::fs::read_to_string(&source).unwrap();
    std::fs::write(&source, text.replace("version one", "version two")).unwrap();
    run(Command::new("postmap")
        .arg("-c")
        .arg(&pf.etc)
        .arg(format!("hash:{}", source.display())));
    let spec = format!("proxy:hash:{}", source.display());
    // A fresh client connection first (stock proxymap restarts on a
    // changed table before it accepts one).
    let looked = pf.postmap(&["-q", "changed@v.test", &spec]);
    record(
        "postmap -q after rebuild (hash)",
        vec![String::from_utf8_lossy(&looked.stdout).trim().to_string()],
    );
    std::thread::sleep(Duration::from_millis(300));
    record(
        "access reject after rebuild (hash)",
        send(port, &case("", "changed@v.test")),
    );

    // A table added to main.cf, then `postfix reload`.
    let main_cf = pf.etc.join("main.cf");
    let text = std::fs::read_to_string(&main_cf).unwrap();
    let newtab = format!("proxy:texthash:{}", pf.tables.join("newtab").display());
    let text = text
        .replace(
            "\nproxy_read_maps = ",
            &format!("\nproxy_read_maps = {newtab} "),
        )
        .replace(
            "\nsmtpd_restriction_classes = ",
            &format!("\nclass_new = check_recipient_access {newtab}\nsmtpd_restriction_classes = class_new "),
        )
        // verify's cache moves to btree: (ADDRESS_VERIFICATION_README's
        // advice), written through proxywrite too.
        .replace(
            "\naddress_verify_map = proxy:lmdb:",
            "\naddress_verify_map = proxy:btree:$data_directory/verify_btree\n#was proxy:lmdb:",
        );
    std::fs::write(&main_cf, text).unwrap();
    pf.postfix(&["reload"]);
    std::thread::sleep(Duration::from_millis(1500));
    pf.wait_until_ready();
    record(
        "new table after postfix reload (texthash)",
        send(port, &case("", "x@newtab.test")),
    );
    record(
        "after reload (hash)",
        send(port, &case("", "blocked@v.test")),
    );
    for (name, rcpt) in [
        (
            "verify with a btree: cache: unknown address",
            "ghost2@verify.test",
        ),
        (
            "verify with a btree: cache: deliverable address",
            "real2@verify.test",
        ),
    ] {
        let c = case(name, rcpt);
        let first = send(port, &c);
        let mut settled = settle_verify(port, &c);
        settled.insert(0, format!("first: {}", first.join(" / ")));
        record(name, settled);
    }
    record(
        "verify btree: cache owner, mode, db5.3_verify",
        vec![berkeley_file_state(&pf.root.join("data/verify_btree.db"))],
    );

    // 20 parallel clients × 20 messages.
    let sent = parallel_mail(port, 20, 20);
    record("20 × 20 parallel messages accepted", vec![sent.to_string()]);
    pf.drain();
    let boxes = pf.mailboxes();
    record(
        "messages delivered per mailbox",
        boxes.iter().map(|(k, v)| format!("{k}: {v}")).collect(),
    );

    if mode == Mode::Master {
        // SIGKILL the proxymap process while mail flows: master starts a new
        // one and nothing is lost or bounced.
        let killer = {
            let root = pf.root.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                kill_proxymapd(&root, "proxymap");
            })
        };
        let before = pf.mailboxes().get("alice").copied().unwrap_or(0);
        let sent = parallel_mail(port, 5, 5);
        killer.join().unwrap();
        pf.drain();
        let delivered = pf.mailboxes().get("alice").copied().unwrap_or(0) - before;
        assert_eq!(
            (sent, delivered),
            (25, 25),
            "kill -9 under master: messages accepted and delivered"
        );
        // The same cases answer as before (the rebuilt table's first case
        // now sees the rebuilt rule; it has its own case after the rebuild).
        for c in cases()
            .into_iter()
            .filter(|c| !c.name.starts_with("verify") && !c.name.contains("rebuild"))
        {
            record(&format!("after kill -9: {}", c.name), send(port, &c));
        }
        let log = pf.proxymap_log();
        assert!(
            !log.contains("bad command startup"),
            "master throttled proxymapd after kill -9:\n{log}"
        );
        assert!(!log.contains("status=bounced"), "mail bounced:\n{log}");
    }

    // `postfix stop` with a client connected.
    let (mut smtp, _) = Smtp::connect_as(port, "127.0.0.1");
    let helo = smtp.command("HELO stop.e2e.test");
    let complaints = pf.proxymap_complaints();
    let standalone = pf.mode == Mode::Standalone;
    let children = proxymapd_pids(&pf.root);
    if mode == Mode::Master {
        // proxymap at least (proxywrite runs again only once verify needs
        // it after the reload); never more than one per role.
        assert!(
            (1..=2).contains(&children.len()),
            "proxymapd processes under master: {children:?}"
        );
    }
    pf.postfix(&["stop"]);
    let after = smtp.command("MAIL FROM:<late@e2e.test>");
    record("postfix stop with a client connected", vec![helo, after]);
    // Under master both proxymapd processes leave (proxywrite, outside the
    // process group, on end-of-file from master) well within the 5 s
    // `postfix stop` allows.
    let alive = |pid: &i32| master::alive(*pid);
    let start = Instant::now();
    while children.iter().any(alive) && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !children.iter().any(alive),
        "proxymapd processes left 5 s after postfix stop"
    );
    if standalone {
        if let Some(mut child) = pf.standalone.take() {
            // SAFETY: kill takes no pointers.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            assert!(child.wait().unwrap().success());
        }
    }
    drop(pf);
    Run {
        outcomes,
        complaints,
    }
}

/// Send `messages` messages to alice@v.test over each of `clients`
/// parallel sessions; returns how many were accepted.
fn parallel_mail(port: u16, clients: usize, messages: usize) -> usize {
    let threads: Vec<_> = (0..clients)
        .map(|client| {
            std::thread::spawn(move || {
                let (mut smtp, _) = Smtp::connect_as(port, "127.0.0.1");
                smtp.command("HELO load.e2e.test");
                let mut accepted = 0;
                for m in 0..messages {
                    smtp.command("MAIL FROM:<load@e2e.test>");
                    smtp.command("RCPT TO:<alice@v.test>");
                    if smtp.command("DATA").starts_with("354") {
                        let body = format!("Subject: load {client}.{m}\r\n\r\nload\r\n.");
                        if smtp.command(&body).starts_with("250") {
                            accepted += 1;
                        }
                    }
                }
                smtp.command("QUIT");
                accepted
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).sum()
}

/// The pids of proxymapd processes master started for the instance
/// under `root`.
fn proxymapd_pids(root: &Path) -> Vec<i32> {
    master::proxymapd_children(&root.join("spool"))
        .into_iter()
        .map(|(pid, _)| pid)
        .collect()
}

fn kill_proxymapd(root: &Path, role: &str) {
    for (pid, cmdline) in master::proxymapd_children(&root.join("spool")) {
        if cmdline.contains(&format!("-n {role} ")) {
            // SAFETY: kill takes no pointers.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

#[test]
fn smtp_outcomes_are_equal_with_stock_proxymap_standalone_and_master_mode() {
    if skip_without(&[Need::Postfix]) {
        return;
    }
    if !proxymapd::privileges::running_as_root() {
        eprintln!("smtp end-to-end: needs root to start a private Postfix instance; skipped");
        assert!(
            std::env::var_os(common::STRICT_VAR).is_none(),
            "the end-to-end SMTP test needs root"
        );
        return;
    }
    let cache = tempfile::Builder::new()
        .prefix("pfe2e-cache")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(cache.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let runs: Vec<(Mode, Run)> = [Mode::Stock, Mode::Standalone, Mode::Master]
        .into_iter()
        .map(|mode| (mode, exercise(mode, cache.path())))
        .collect();
    let stock = &runs[0].1;
    let mut table = String::from("| case | stock | standalone | master |\n|---|---|---|---|\n");
    let mut differences = Vec::new();
    let by_name =
        |run: &Run| -> BTreeMap<String, Vec<String>> { run.outcomes.iter().cloned().collect() };
    let maps: Vec<BTreeMap<String, Vec<String>>> = runs.iter().map(|(_, r)| by_name(r)).collect();
    for (name, expected) in &stock.outcomes {
        let mut row = format!("| {name} | {} |", expected.join(" / "));
        for (i, (mode, _)) in runs.iter().enumerate().skip(1) {
            let got = maps[i].get(name);
            if name.contains("after rebuild") {
                // The deliberate difference (README): proxymapd answers from
                // the rebuilt table at once; stock proxymap answers from it
                // once the process holding the client's connection notices
                // the change (before its next accept), so either version.
                let fresh = got.is_some_and(|g| g.iter().any(|l| l.contains("version two")));
                let stock_ok = expected
                    .iter()
                    .any(|l| l.contains("version one") || l.contains("version two"));
                row.push_str(if fresh {
                    " version two (fresh) |"
                } else {
                    " **stale** |"
                });
                if !fresh || !stock_ok {
                    differences.push(format!(
                        "{}: {name}: {got:?} must be the rebuilt table's answer (stock {expected:?})",
                        mode.name()
                    ));
                }
                continue;
            }
            let same = got == Some(expected);
            row.push_str(if same { " same |" } else { " **differs** |" });
            if !same {
                differences.push(format!(
                    "{}: {name}: {got:?} (stock {expected:?})",
                    mode.name()
                ));
            }
        }
        table.push_str(&row);
        table.push('\n');
    }
    // After kill -9 under master, every case answers as before the kill.
    let master = &maps[2];
    for (name, replies) in master.iter() {
        if let Some(before) = name.strip_prefix("after kill -9: ") {
            let expected = maps[0].get(before);
            if expected != Some(replies) {
                differences.push(format!(
                    "master after kill -9: {before}: {replies:?} (stock {expected:?})"
                ));
            }
        }
    }
    println!("{table}");
    for (mode, run) in &runs {
        println!(
            "{} complaints:\n  {}",
            mode.name(),
            run.complaints.join("\n  ")
        );
    }
    assert!(
        stock.outcomes.len() >= 40,
        "only {} cases",
        stock.outcomes.len()
    );
    assert!(
        differences.is_empty(),
        "outcomes differ:\n{}",
        differences.join("\n")
    );
    // Surrogate log lines: what stock proxymap logged, proxymapd logs too.
    for (mode, run) in runs.iter().skip(1) {
        let missing: Vec<&String> = stock
            .complaints
            .iter()
            .filter(|line| !run.complaints.contains(line))
            .collect();
        assert!(
            missing.is_empty(),
            "{}: stock proxymap logged lines proxymapd did not:\n{:#?}\nproxymapd logged:\n{:#?}",
            mode.name(),
            missing,
            run.complaints
        );
    }
}
