//! A private PostgreSQL server for the SQL tests: a new cluster in a
//! scratch directory (initdb as the postgres user), listening on a free
//! loopback port and a UNIX socket in that directory, with role `postfix`
//! (password `pfpass`) owning database `mail`; stopped on drop.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A running private cluster.
pub struct PgServer {
    _dir: tempfile::TempDir,
    data: PathBuf,
    bin: PathBuf,
    /// The directory of its UNIX socket.
    pub socket_dir: PathBuf,
    /// Its loopback TCP port.
    pub port: u16,
}

fn as_postgres(program: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(program)
        .args(args)
        .output()
        .expect("runuser");
    assert!(
        out.status.success(),
        "{} {args:?}: {}{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl PgServer {
    /// Start a cluster and create the `postfix` role and `mail` database.
    pub fn start() -> PgServer {
        use std::os::unix::fs::PermissionsExt;
        let bin = super::postgres_bin_dir().expect("PostgreSQL is installed");
        let dir = tempfile::Builder::new().prefix("pgtest").tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let chown = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(chown.success());
        let data = dir.path().join("data");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let d = data.to_string_lossy().into_owned();
        as_postgres(
            &bin.join("initdb"),
            &[
                &["-D", d.as_str()][..],
                &super::db_commands::INITDB_ARGS[..],
            ]
            .concat(),
        );
        let server = PgServer {
            socket_dir: dir.path().to_path_buf(),
            _dir: dir,
            data,
            bin,
            port,
        };
        server.start_again();
        server.psql("postgres", "CREATE ROLE postfix LOGIN PASSWORD 'pfpass'");
        server.psql("postgres", "CREATE DATABASE mail OWNER postfix");
        server
    }

    /// Start the (stopped) server on its directory, socket and port.
    pub fn start_again(&self) {
        let options = super::db_commands::postgres_options(&self.socket_dir, self.port);
        let log = format!("{}/log", self.socket_dir.display());
        let data = self.data.to_string_lossy().into_owned();
        as_postgres(
            &self.bin.join("pg_ctl"),
            &["-D", &data, "-l", &log, "-w", "-o", &options, "start"],
        );
    }

    /// Stop the server (fast shutdown: sessions are cut).
    pub fn stop(&self) {
        let data = self.data.to_string_lossy().into_owned();
        as_postgres(
            &self.bin.join("pg_ctl"),
            &["-D", &data, "-m", "fast", "-w", "stop"],
        );
    }

    /// psql as the superuser over the socket; `tuples` prints bare values.
    fn run_psql(&self, db: &str, sql: &str, tuples: bool) -> String {
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("psql"))
            .args([
                "-v",
                "ON_ERROR_STOP=1",
                if tuples { "-qtA" } else { "-q" },
                "-h",
            ])
            .arg(&self.socket_dir)
            .args(["-p", &self.port.to_string(), "-d", db, "-c", sql])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The first column of the first row `sql` gives in database `db`.
    pub fn value(&self, db: &str, sql: &str) -> String {
        self.run_psql(db, sql, true)
    }

    /// Run `sql` in database `db` as the superuser.
    pub fn psql(&self, db: &str, sql: &str) {
        self.run_psql(db, sql, false);
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}
