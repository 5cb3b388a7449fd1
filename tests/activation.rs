//! Socket activation: proxymapd serves listening sockets a service manager
//! passes it (`LISTEN_PID`, `LISTEN_FDS`, `LISTEN_FDNAMES`, descriptors from
//! 3), and because the manager keeps them, a restart refuses nobody: clients
//! that connect while no proxymapd runs wait in the listen queue and are
//! answered by the next one (a connection the stopping server had already
//! accepted is closed, and the client asks again, as Postfix's clients do).
//! The test plays the service manager.

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

#[test]
fn a_restart_under_socket_activation_refuses_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("queue/private");
    std::fs::create_dir_all(&private).unwrap();
    let socket = private.join("proxymap");
    let listener = UnixListener::bind(&socket).unwrap();
    let config = dir.path().join("proxymapd.toml");
    std::fs::write(
        &config,
        format!(
            "queue_directory = \"{}/queue\"\nproxy_read_maps = \"proxy:static:here\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let log = dir.path().join("first.log");
    let first = start_activated(&config, &listener, &log);
    // Clients keep asking, each on a new connection, through the restart.
    let stop_asking = Arc::new(AtomicBool::new(false));
    let (answered, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let asker = {
        let (stop_asking, answered, failed, socket) = (
            stop_asking.clone(),
            answered.clone(),
            failed.clone(),
            socket.clone(),
        );
        std::thread::spawn(move || {
            while !stop_asking.load(Ordering::Relaxed) {
                // As Postfix's dict_proxy client does, a connection the
                // stopping server closed before answering is made again and
                // the request sent again; a refused socket fails both times.
                let ask = || {
                    Client::connect(&socket, true)
                        .and_then(|mut c| c.lookup("static:here", 0, b"k"))
                };
                let reply = ask().or_else(|_| ask());
                match reply {
                    Ok(r) if r.get("value") == Some(&b"here"[..]) => {
                        answered.fetch_add(1, Ordering::Relaxed)
                    }
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        })
    };
    let started = Instant::now();
    while answered.load(Ordering::Relaxed) < 20 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "first never answered"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
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
    let before = answered.load(Ordering::Relaxed);
    let second = start_activated(&config, &listener, &dir.path().join("second.log"));
    let started = Instant::now();
    while answered.load(Ordering::Relaxed) < before + 20 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "second never answered"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    stop_asking.store(true, Ordering::Relaxed);
    asker.join().unwrap();
    stop(second);
    assert_eq!(failed.load(Ordering::Relaxed), 0, "no request was lost");
}
