//! A private MariaDB server for the SQL tests: a new data directory in a
//! scratch directory (mariadb-install-db), mariadbd listening on a free
//! loopback port and a UNIX socket in that directory, user `postfix`
//! (password `pfpass`, from localhost and 127.0.0.1) allowed to read
//! database `mail`; stopped by PID on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running private server.
pub struct MyServer {
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Its UNIX socket.
    pub socket: PathBuf,
    /// Its loopback TCP port.
    pub port: u16,
}

impl MyServer {
    /// Create the data directory, start the server, create the `mail`
    /// database and the `postfix` user.
    pub fn start() -> MyServer {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new().prefix("mytest").tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let chown = Command::new("chown")
            .arg("mysql:mysql")
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(chown.success());
        let data = dir.path().join("data");
        let out = super::db_commands::mariadb_install_db(&data)
            .output()
            .expect("mariadb-install-db");
        assert!(
            out.status.success(),
            "mariadb-install-db: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = MyServer {
            socket: dir.path().join("mysqld.sock"),
            dir,
            child: None,
            port,
        };
        server.start_again();
        server.sql(
            "CREATE DATABASE mail CHARACTER SET utf8mb4; \
             CREATE USER 'postfix'@'localhost' IDENTIFIED BY 'pfpass'; \
             CREATE USER 'postfix'@'127.0.0.1' IDENTIFIED BY 'pfpass'; \
             GRANT SELECT, EXECUTE ON mail.* TO 'postfix'@'localhost'; \
             GRANT SELECT, EXECUTE ON mail.* TO 'postfix'@'127.0.0.1'",
        );
        server
    }

    /// Start the (stopped) server on its directory, socket and port.
    pub fn start_again(&mut self) {
        let d = self.dir.path();
        let child = super::db_commands::mariadbd(d, self.port)
            .spawn()
            .expect("mariadbd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ping = Command::new("mariadb-admin")
                .arg("--no-defaults")
                .arg(format!("--socket={}", self.socket.display()))
                .args(["-uroot", "ping"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            if ping.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "mariadbd did not start: {}",
                std::fs::read_to_string(d.join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stop the server by its PID and wait for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    fn client(&self, db: &str, sql: &str, batch: bool) -> String {
        let mut cmd = Command::new("mariadb");
        cmd.arg("--no-defaults")
            .arg(format!("--socket={}", self.socket.display()))
            .args(["-uroot", "--default-character-set=utf8mb4"]);
        if batch {
            cmd.args(["-N", "-B"]);
        }
        if !db.is_empty() {
            cmd.arg(db);
        }
        let out = cmd.args(["-e", sql]).output().expect("mariadb");
        assert!(
            out.status.success(),
            "mariadb: {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Run `sql` as root (no database selected).
    pub fn sql(&self, sql: &str) {
        self.client("", sql, false);
    }

    /// Run `sql` as root in database `db`.
    pub fn sql_in(&self, db: &str, sql: &str) {
        self.client(db, sql, false);
    }

    /// How many connections `user` holds now.
    pub fn connections_of(&self, user: &str) -> usize {
        self.value(
            "",
            &format!("SELECT COUNT(*) FROM information_schema.processlist WHERE user = '{user}'"),
        )
        .parse()
        .expect("a count")
    }

    /// The output of `sql` (tab-separated, no headers) in database `db`.
    pub fn value(&self, db: &str, sql: &str) -> String {
        self.client(db, sql, true)
    }
}

impl Drop for MyServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
