//! Socket activation: proxymapd serves listening sockets a service manager
//! passes it (`LISTEN_PID`, `LISTEN_FDS`, `LISTEN_FDNAMES`, descriptors from
//! 3), and because the manager keeps them, a restart refuses nobody: clients
//! that connect while no proxymapd runs wait in the listen queue and are
//! answered by the next one (a connection the stopping server had already
//! accepted is closed, and the client asks again, as Postfix's clients do).
//! One test plays the service manager; another runs proxymapd twice under
//! Debian's `systemd-socket-activate`, systemd's socket passing without
//! systemd as PID 1.

mod common;

use common::{skip_without, Need};
use proxymapd::client::Client;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Start proxymapd on `config` with `listener` passed as descriptor 3,
/// named `proxymap`, as systemd would.
fn start_activated(config: &Path, listener: &UnixListener, log: &Path) -> Child {
    let fd = listener.as_raw_fd();
    let mut cmd = Command::new("sh");
    // `exec` keeps the shell's pid, which LISTEN_PID must name.
    cmd.args([
        "-c",
        "LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=proxymap exec \"$0\" \"$@\"",
        env!("CARGO_BIN_EXE_proxymapd"),
        "serve",
        "--config",
    ])
    .arg(config)
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(log).unwrap());
    // SAFETY: only async-signal-safe calls (dup2, fcntl) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if fd == 3 {
                if libc::fcntl(3, libc::F_SETFD, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().unwrap()
}

fn stop(mut child: Child) {
    // SAFETY: kill takes no pointers.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
}

/// A scratch directory, the proxymap socket path in it, and a
/// configuration approving `static:here`.
fn scratch() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("queue/private");
    std::fs::create_dir_all(&private).unwrap();
    let socket = private.join("proxymap");
    let config = dir.path().join("proxymapd.toml");
    std::fs::write(
        &config,
        format!(
            "queue_directory = \"{}/queue\"\nproxy_read_maps = \"proxy:static:here\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    (dir, socket, config)
}

#[test]
fn a_restart_under_socket_activation_refuses_nobody() {
    let (dir, socket, config) = scratch();
    let listener = UnixListener::bind(&socket).unwrap();
    let log = dir.path().join("first.log");
    let first = start_activated(&config, &listener, &log);
    // Clients keep asking, each on a new connection, through the restart.
    let asker = Asker::start(&socket);
    asker.wait_for(0, 20, "first");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("proxymap: using the listening socket passed as descriptor 3"),
        "{text}"
    );
    stop(first);
    // The socket file stays: it belongs to the service manager.
    assert!(socket.exists());
    // Nobody serves for a moment; connections queue.
    std::thread::sleep(Duration::from_millis(300));
    let before = asker.answered();
    let second = start_activated(&config, &listener, &dir.path().join("second.log"));
    asker.wait_for(before, 20, "second");
    let failed = asker.finish();
    stop(second);
    assert_eq!(failed, 0, "no request was lost");
}

/// Clients that keep asking, each on a new connection, counting answers and
/// failures.
struct Asker {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

impl Asker {
    fn start(socket: &Path) -> Asker {
        let stop = Arc::new(AtomicBool::new(false));
        let (answered, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let thread = {
            let (stop, answered, failed) = (stop.clone(), answered.clone(), failed.clone());
            let socket = socket.to_path_buf();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    // Asked again once after a closed connection, as
                    // Postfix's dict_proxy client does.
                    let ask = || {
                        Client::connect(&socket, true)
                            .and_then(|mut c| c.lookup("static:here", 0, b"k"))
                    };
                    match ask().or_else(|_| ask()) {
                        Ok(r) if r.get("value") == Some(&b"here"[..]) => {
                            answered.fetch_add(1, Ordering::Relaxed)
                        }
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        };
        Asker {
            stop,
            answered,
            failed,
            thread,
        }
    }

    fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }

    /// Wait for `more` answers beyond `from`.
    fn wait_for(&self, from: u64, more: u64, what: &str) {
        let started = Instant::now();
        while self.answered() < from + more {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{what} never answered"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stop asking; the number of failed requests.
    fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap();
        self.failed.load(Ordering::Relaxed)
    }
}

/// The pid of the `proxymapd serve --config CONFIG` running now, if any.
fn serving_pid(config: &Path) -> Option<i32> {
    let wanted = format!("serve --config {}", config.display());
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid = entry.file_name().to_string_lossy().parse::<i32>().ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (cmdline.contains("proxymapd") && cmdline.contains(&wanted)).then_some(pid)
        })
}

#[test]
fn a_restart_under_systemd_socket_activate_loses_no_request() {
    if skip_without(&[Need::SocketActivate]) {
        return;
    }
    let (dir, socket, config) = scratch();
    // systemd-socket-activate holds the socket and runs a shell that runs
    // proxymapd twice in a row; each is exec'd by a shell of its own, whose
    // pid LISTEN_PID then names, as systemd would set it.
    let once = "sh -c 'export LISTEN_PID=$$; exec \"$0\" serve --config \"$1\"' \"$0\" \"$1\"";
    let mut manager = Command::new("systemd-socket-activate")
        .arg("-l")
        .arg(&socket)
        .arg("--fdname=proxymap")
        .args(["sh", "-c", &format!("{once}; {once}")])
        .arg(env!("CARGO_BIN_EXE_proxymapd"))
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("manager.log")).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !socket.exists() {
        assert!(started.elapsed() < Duration::from_secs(10), "no socket");
        std::thread::sleep(Duration::from_millis(10));
    }
    let asker = Asker::start(&socket);
    asker.wait_for(0, 20, "the first proxymapd");
    let first = serving_pid(&config).expect("the first proxymapd");
    // SAFETY: kill takes no pointers.
    unsafe { libc::kill(first, libc::SIGTERM) };
    let before = asker.answered();
    asker.wait_for(before, 20, "the second proxymapd");
    let second = serving_pid(&config).expect("the second proxymapd");
    assert_ne!(first, second, "a new process answers");
    let failed = asker.finish();
    // SAFETY: as above.
    unsafe { libc::kill(second, libc::SIGTERM) };
    let status = manager.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(failed, 0, "no request was lost across the restart");
}
