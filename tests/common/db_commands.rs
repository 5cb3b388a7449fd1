//! The commands that set up and start private database servers, shared by
//! the SQL tests (`tests/common/{pgsql,mysql}.rs`) and the SQL benchmark
//! (`bench/src/sql_tables.rs`, which includes this file): a PostgreSQL
//! cluster with local trust and password (SCRAM) logins over TCP, and a
//! MariaDB server that reads no option file, on loopback and a UNIX socket.

use std::path::Path;
use std::process::{Command, Stdio};

/// initdb's arguments after `-D DIR`: superuser `postgres`, trusted UNIX
/// logins, SCRAM passwords over TCP, UTF-8.
pub const INITDB_ARGS: [&str; 8] = [
    "-U",
    "postgres",
    "--auth-local=trust",
    "--auth-host=scram-sha-256",
    "--no-sync",
    "-E",
    "UTF8",
    "--locale=C.UTF-8",
];

/// `pg_ctl -o` options: socket in `socket_dir`, TCP on loopback `port`.
pub fn postgres_options(socket_dir: &Path, port: u16) -> String {
    format!(
        "-k {} -p {port} -h 127.0.0.1 -c fsync=off -c max_connections=300",
        socket_dir.display()
    )
}

/// mariadb-install-db for a data directory `data` owned by mysql.
pub fn mariadb_install_db(data: &Path) -> Command {
    let mut cmd = Command::new("mariadb-install-db");
    cmd.args(["--no-defaults", "--user=mysql", "--skip-test-db"])
        .arg(format!("--datadir={}", data.display()))
        .arg("--auth-root-authentication-method=normal");
    cmd
}

/// mariadbd on `dir/data`, with its socket, pid file and log in `dir`
/// (the socket `dir/mysqld.sock`) and TCP on loopback `port`.
pub fn mariadbd(dir: &Path, port: u16) -> Command {
    let mut cmd = Command::new("/usr/sbin/mariadbd");
    cmd.args(["--no-defaults", "--user=mysql", "--skip-log-bin"])
        .arg(format!("--datadir={}", dir.join("data").display()))
        .arg(format!("--socket={}", dir.join("mysqld.sock").display()))
        .arg(format!("--port={port}"))
        .arg("--bind-address=127.0.0.1")
        .arg(format!("--pid-file={}", dir.join("mysqld.pid").display()))
        .arg(format!("--log-error={}", dir.join("error.log").display()))
        .args([
            "--innodb-buffer-pool-size=64M",
            "--max-connections=500",
            "--skip-name-resolve",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}
