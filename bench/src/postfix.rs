//! A private Postfix instance for side-by-side runs: its own configuration
//! directory, queue and data directories, and a master(8) running only the
//! proxymap and proxywrite services with Postfix's default process limits.
//! Stopped (and its master killed if need be) on drop.

use anyhow::{bail, Context, Result};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A running private Postfix.
pub struct PrivatePostfix {
    /// The configuration directory.
    pub config: PathBuf,
    /// Its queue directory (sockets under `private/`).
    pub queue: PathBuf,
    data: PathBuf,
}

/// The postfix account's user and group ids.
pub(crate) fn postfix_uid_gid() -> Result<(u32, u32)> {
    let text = std::fs::read_to_string("/etc/passwd")?;
    for line in text.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.first() == Some(&"postfix") && f.len() > 3 {
            return Ok((f[2].parse()?, f[3].parse()?));
        }
    }
    bail!("no postfix user: install Postfix (tests/install-deps.sh)")
}

impl PrivatePostfix {
    /// Create and start an instance under `dir` approving `read_maps`
    /// (Postfix list syntax, with `proxy:` prefixes).
    pub fn start(dir: &Path, read_maps: &str, write_maps: &str) -> Result<PrivatePostfix> {
        let config = dir.join("etc");
        let queue = dir.join("queue");
        let data = dir.join("data");
        for d in [&config, &queue, &data] {
            std::fs::create_dir_all(d).with_context(|| format!("create {}", d.display()))?;
        }
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
        let (uid, gid) = postfix_uid_gid()?;
        std::os::unix::fs::chown(&data, Some(uid), Some(gid))
            .context("chown data directory to postfix")?;
        std::fs::write(
            config.join("main.cf"),
            format!(
                "queue_directory = {q}\ndata_directory = {d}\ncompatibility_level = 3.6\n\
                 inet_interfaces = loopback-only\nmaillog_file_prefixes = /var, /dev/stdout, {root}\n\
                 maillog_file = {root}/maillog\nproxy_read_maps = {read_maps}\nproxy_write_maps = {write_maps}\n",
                q = queue.display(),
                d = data.display(),
                root = dir.display()
            ),
        )?;
        std::fs::write(
            config.join("master.cf"),
            "proxymap   unix -       -       n       -       -       proxymap\n\
             proxywrite unix -       -       n       -       1       proxymap\n\
             postlog    unix-dgram n -     n       -       1       postlogd\n",
        )?;
        let instance = PrivatePostfix {
            config,
            queue,
            data,
        };
        let out = Command::new("postfix")
            .arg("-c")
            .arg(&instance.config)
            .arg("start")
            .output()
            .context("run postfix start")?;
        if !out.status.success() {
            bail!(
                "postfix -c {} start failed: {}{}",
                instance.config.display(),
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(dir.join("maillog")).unwrap_or_default()
            );
        }
        let socket = instance.socket();
        let started = Instant::now();
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            if started.elapsed() > Duration::from_secs(20) {
                bail!(
                    "Postfix proxymap socket {} never appeared",
                    socket.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(instance)
    }

    /// The proxymap service socket.
    pub fn socket(&self) -> PathBuf {
        self.queue.join("private/proxymap")
    }

    fn master_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.data.join("master.lock"))
            .or_else(|_| std::fs::read_to_string(self.queue.join("pid/master.pid")))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for PrivatePostfix {
    fn drop(&mut self) {
        let pid = self.master_pid();
        let _ = Command::new("postfix")
            .arg("-c")
            .arg(&self.config)
            .arg("stop")
            .output();
        if let Some(pid) = pid {
            let started = Instant::now();
            // SAFETY: signal 0 only checks that the process exists.
            while unsafe { libc::kill(pid, 0) } == 0 && started.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(50));
            }
            // SAFETY: kill(2) on the private master we started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}
