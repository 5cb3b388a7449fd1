//! Shared test scaffolding: a proxymapd server process in a temporary
//! directory, started from the built binary and stopped on drop.

#![allow(dead_code)]

pub mod corpus;
pub mod db_commands;
pub mod master;
pub mod mysql;
pub mod pgsql;
pub mod postfix;
mod skip;

// Not every test file skips; those that do call `common::skip_without`.
#[allow(unused_imports)]
pub use skip::*;

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `proxymapd serve`.
pub struct Server {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub proxymap: PathBuf,
    pub proxywrite: PathBuf,
    log: PathBuf,
}

impl Server {
    /// Start with a TOML configuration; `$dir` in `toml` expands to the
    /// temporary directory. Sockets live in `$dir/queue/private`.
    pub fn start_toml(toml: &str, setup: impl FnOnce(&Path)) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        setup(dir.path());
        let text = format!(
            "queue_directory = \"{0}/queue\"\n{1}",
            dir.path().display(),
            toml.replace("$dir", &dir.path().to_string_lossy())
        );
        let config = dir.path().join("proxymapd.toml");
        std::fs::write(&config, text).unwrap();
        Self::spawn(dir, &["serve", "--config", &config.to_string_lossy()], &[])
    }

    /// Start with arguments after `proxymapd`, in `dir`, with extra env.
    pub fn spawn(dir: tempfile::TempDir, args: &[&str], env: &[(&str, &str)]) -> Server {
        Self::spawn_with(dir, args, env, |_| {})
    }

    /// Like [`Server::spawn`], letting `configure` adjust the command first
    /// (for example to set resource limits in the child).
    pub fn spawn_with(
        dir: tempfile::TempDir,
        args: &[&str],
        env: &[(&str, &str)],
        configure: impl FnOnce(&mut Command),
    ) -> Server {
        let log = dir.path().join("proxymapd.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_proxymapd"));
        cmd.args(args).stdout(Stdio::null()).stderr(log_file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        configure(&mut cmd);
        let child = cmd.spawn().expect("start proxymapd");
        let queue = find_queue(&dir, args);
        let server = Server {
            child,
            proxymap: queue.join("private/proxymap"),
            proxywrite: queue.join("private/proxywrite"),
            dir,
            log,
        };
        server.wait_for_socket();
        server
    }

    fn wait_for_socket(&self) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if UnixStream::connect(&self.proxymap).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("proxymapd did not start; log:\n{}", self.log_text());
    }

    /// Everything the server logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait until the log contains `needle` (or panic after a while).
    pub fn wait_for_log(&self, needle: &str) -> String {
        let start = Instant::now();
        loop {
            let text = self.log_text();
            if text.contains(needle) {
                return text;
            }
            if start.elapsed() > Duration::from_secs(10) {
                panic!("log never contained {needle:?}:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Send a signal to the server.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child process.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Path inside the temporary directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- proxymapd log ---\n{}", self.log_text());
        }
    }
}

fn find_queue(dir: &tempfile::TempDir, args: &[&str]) -> PathBuf {
    if let Some(i) = args.iter().position(|a| *a == "--postfix-config") {
        let out = Command::new("postconf")
            .args(["-c", args[i + 1], "-h", "queue_directory"])
            .output()
            .expect("postconf must be installed (tests/run.sh installs it)");
        return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    }
    dir.path().join("queue")
}

/// Read exactly one reply frame from a raw stream (ends with an empty name).
pub fn read_frame(stream: &mut UnixStream) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    let mut expect_name = true;
    let mut len = 0usize;
    loop {
        let n = stream.read(&mut byte).expect("read reply");
        assert_eq!(
            n,
            1,
            "connection closed; got {:?} so far",
            String::from_utf8_lossy(&out)
        );
        out.push(byte[0]);
        if byte[0] != 0 {
            len += 1;
            continue;
        }
        if expect_name && len == 0 {
            return out;
        }
        expect_name = !expect_name;
        len = 0;
    }
}

/// Build a request frame from name/value pairs.
pub fn frame(pairs: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, v) in pairs {
        out.extend_from_slice(n.as_bytes());
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out.push(0);
    out
}

/// One lookup on an open connection: the reply's status digit and value.
pub fn lookup_reply(s: &mut UnixStream, table: &str, flags: u32, key: &str) -> (u8, String) {
    use std::io::Write;
    s.write_all(&frame(&[
        ("request", b"lookup"),
        ("table", table.as_bytes()),
        ("flags", flags.to_string().as_bytes()),
        ("key", key.as_bytes()),
    ]))
    .unwrap();
    let reply = read_frame(s);
    let text = String::from_utf8_lossy(&reply).into_owned();
    (
        reply[7] - b'0',
        text.split('\0').nth(3).unwrap_or("").to_string(),
    )
}

/// A plugin built by tests/run.sh beside the proxymapd binary, in `dir`.
pub fn built_plugin(dir: &str, name: &str) -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_proxymapd"));
    let path = exe.parent().unwrap().join(dir).join(name);
    assert!(
        path.exists(),
        "{} is missing: tests/run.sh builds the plugins before the tests",
        path.display()
    );
    path
}

/// Copy a built plugin and its manifest into `plugin_dir` as `as_name`.
pub fn install_plugin(plugin_dir: &Path, dir: &str, name: &str, as_name: &str) {
    std::fs::create_dir_all(plugin_dir).unwrap();
    std::fs::copy(
        built_plugin(dir, &format!("{name}.wasm")),
        plugin_dir.join(format!("{as_name}.wasm")),
    )
    .unwrap();
    let manifest = built_plugin(dir, &format!("{name}.toml"));
    std::fs::copy(manifest, plugin_dir.join(format!("{as_name}.toml"))).unwrap();
}
