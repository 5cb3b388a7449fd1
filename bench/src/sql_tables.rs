//! SQL tables for `vs-postfix --sql`: a private PostgreSQL cluster and a
//! private MariaDB server (scratch directories, loopback and UNIX sockets
//! only, stopped by PID on drop) and a SQLite file, all holding the same
//! `users(address, dest)` rows, and one `.cf` file per (server, table) so
//! that each server reaches the databases as its own user (`stock` for
//! Postfix, `ours` for proxymapd) and the connections each holds can be
//! counted apart.

#[path = "../../tests/common/db_commands.rs"]
mod db_commands;

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The database users, by the server that connects as them.
pub const USERS: [(&str, &str); 2] = [("postfix", "stock"), ("proxymapd", "ours")];

/// `(file, map type, query)` of every SQL table measured; the `-1ms`
/// queries wait 1 ms in the database.
pub const CF_FILES: [(&str, &str, &str); 5] = [
    (
        "pgsql.cf",
        "pgsql",
        "SELECT dest FROM users WHERE address='%s'",
    ),
    (
        "pgsql-1ms.cf",
        "pgsql",
        "SELECT dest FROM users, pg_sleep(0.001) WHERE address='%s'",
    ),
    (
        "mysql.cf",
        "mysql",
        "SELECT dest FROM users WHERE address='%s'",
    ),
    (
        "mysql-1ms.cf",
        "mysql",
        "SELECT CONCAT(dest, IF(SLEEP(0.001) = 0, '', '?')) FROM users WHERE address='%s'",
    ),
    (
        "sqlite.cf",
        "sqlite",
        "SELECT dest FROM users WHERE address='%s'",
    ),
];

/// The running databases.
pub struct SqlTables {
    dir: PathBuf,
    pg_bin: PathBuf,
    pg_port: u16,
    mariadb: Option<Child>,
    my_port: u16,
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn run(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd.output().with_context(|| format!("run {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn run_with_input(cmd: &mut Command, input: &str, what: &str) -> Result<()> {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("run {what}"))?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// The rows as SQL any of the three databases takes.
fn rows_sql(rows: &[(Vec<u8>, Vec<u8>)]) -> String {
    let mut sql =
        String::from("CREATE TABLE users (address VARCHAR(255) PRIMARY KEY, dest VARCHAR(255));\n");
    for chunk in rows.chunks(1000) {
        sql.push_str("INSERT INTO users VALUES ");
        let values: Vec<String> = chunk
            .iter()
            .map(|(k, v)| {
                format!(
                    "('{}', '{}')",
                    String::from_utf8_lossy(k),
                    String::from_utf8_lossy(v)
                )
            })
            .collect();
        sql.push_str(&values.join(","));
        sql.push_str(";\n");
    }
    sql
}

impl SqlTables {
    /// Start both servers under `dir`, load `rows` into each and into
    /// `dir/mail.sqlite`, and write `dir/{postfix,proxymapd}/*.cf`.
    pub fn start(dir: &Path, rows: &[(Vec<u8>, Vec<u8>)]) -> Result<SqlTables> {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
        let pg_bin = std::fs::read_dir("/usr/lib/postgresql")
            .context("PostgreSQL is not installed (tests/install-deps.sh)")?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("initdb").is_file())
            .max()
            .context("no PostgreSQL server programs")?;
        let mut tables = SqlTables {
            dir: dir.to_path_buf(),
            pg_bin,
            pg_port: free_port()?,
            mariadb: None,
            my_port: free_port()?,
        };
        let sql = rows_sql(rows);
        tables.start_postgres(&sql)?;
        tables.start_mariadb(&sql)?;
        run_with_input(
            Command::new("sqlite3").arg(dir.join("mail.sqlite")),
            &format!("BEGIN;\n{sql}COMMIT;\n"),
            "sqlite3",
        )?;
        for (server, user) in USERS {
            let cf_dir = dir.join(server);
            std::fs::create_dir_all(&cf_dir)?;
            for (file, map_type, query) in CF_FILES {
                let connect = match map_type {
                    "pgsql" => format!(
                        "hosts = inet:127.0.0.1:{}\nuser = {user}\npassword = pw\ndbname = mail\n",
                        tables.pg_port
                    ),
                    "mysql" => format!(
                        "hosts = inet:127.0.0.1:{}\nuser = {user}\npassword = pw\ndbname = mail\n",
                        tables.my_port
                    ),
                    _ => format!("dbpath = {}\n", dir.join("mail.sqlite").display()),
                };
                let path = cf_dir.join(file);
                std::fs::write(&path, format!("{connect}query = {query}\n"))?;
                // Postfix waits for a .cf file changed in the last second.
                std::fs::File::options()
                    .write(true)
                    .open(&path)?
                    .set_modified(std::time::SystemTime::now() - Duration::from_secs(120))?;
            }
        }
        Ok(tables)
    }

    fn as_postgres(&self, program: &str) -> Command {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"])
            .arg(self.pg_bin.join(program));
        cmd
    }

    fn psql(&self) -> Command {
        let mut cmd = self.as_postgres("psql");
        cmd.args(["-v", "ON_ERROR_STOP=1", "-qtA", "-h"])
            .arg(self.dir.join("pg"))
            .args(["-p", &self.pg_port.to_string(), "-d", "mail"]);
        cmd
    }

    fn start_postgres(&self, sql: &str) -> Result<()> {
        let pg = self.dir.join("pg");
        std::fs::create_dir_all(&pg)?;
        run(
            Command::new("chown").arg("postgres:postgres").arg(&pg),
            "chown",
        )?;
        let data = pg.join("data");
        run(
            self.as_postgres("initdb")
                .arg("-D")
                .arg(&data)
                .args(db_commands::INITDB_ARGS),
            "initdb",
        )?;
        let options = db_commands::postgres_options(&pg, self.pg_port);
        run(
            self.as_postgres("pg_ctl")
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(pg.join("log"))
                .args(["-w", "-o", &options, "start"]),
            "pg_ctl start",
        )?;
        let mut admin = self.as_postgres("psql");
        admin
            .args(["-v", "ON_ERROR_STOP=1", "-q", "-h"])
            .arg(&pg)
            .args(["-p", &self.pg_port.to_string(), "-d", "postgres", "-c"])
            .arg("CREATE DATABASE mail");
        run(&mut admin, "psql")?;
        let mut setup = String::from(sql);
        for (_, user) in USERS {
            setup.push_str(&format!(
                "CREATE ROLE {user} LOGIN PASSWORD 'pw';\nGRANT SELECT ON users TO {user};\n"
            ));
        }
        run_with_input(&mut self.psql(), &setup, "psql (load rows)")
    }

    fn mariadb_client(&self) -> Command {
        let mut cmd = Command::new("mariadb");
        cmd.arg("--no-defaults")
            .arg(format!(
                "--socket={}",
                self.dir.join("my/mysqld.sock").display()
            ))
            .args(["-uroot", "--default-character-set=utf8mb4", "-N", "-B"]);
        cmd
    }

    fn start_mariadb(&mut self, sql: &str) -> Result<()> {
        let my = self.dir.join("my");
        std::fs::create_dir_all(&my)?;
        run(Command::new("chown").arg("mysql:mysql").arg(&my), "chown")?;
        run(
            &mut db_commands::mariadb_install_db(&my.join("data")),
            "mariadb-install-db (package mariadb-server)",
        )?;
        let child = db_commands::mariadbd(&my, self.my_port)
            .spawn()
            .context("start mariadbd")?;
        self.mariadb = Some(child);
        let started = Instant::now();
        while self
            .mariadb_client()
            .args(["-e", "SELECT 1"])
            .output()?
            .status
            .code()
            != Some(0)
        {
            if started.elapsed() > Duration::from_secs(30) {
                bail!(
                    "mariadbd did not start: see {}",
                    my.join("error.log").display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut setup = format!("CREATE DATABASE mail CHARACTER SET utf8mb4;\nUSE mail;\n{sql}");
        for (_, user) in USERS {
            setup.push_str(&format!(
                "CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY 'pw';\n\
                 GRANT SELECT ON mail.* TO '{user}'@'127.0.0.1';\n"
            ));
        }
        run_with_input(&mut self.mariadb_client(), &setup, "mariadb (load rows)")
    }

    /// The `.cf` file of `file` for `server` (`postfix` or `proxymapd`).
    pub fn cf(&self, server: &str, file: &str) -> PathBuf {
        let dir = if server == "postfix" {
            "postfix"
        } else {
            "proxymapd"
        };
        self.dir.join(dir).join(file)
    }

    /// How many connections `server`'s user holds on the database of
    /// `map_type` now (`None` for sqlite).
    pub fn connections(&self, server: &str, map_type: &str) -> Result<Option<usize>> {
        let user = USERS
            .iter()
            .find(|(s, _)| *s == server)
            .map_or("ours", |(_, u)| u);
        let count = match map_type {
            "pgsql" => run(
                self.psql().arg("-c").arg(format!(
                    "SELECT count(*) FROM pg_stat_activity WHERE usename = '{user}'"
                )),
                "psql",
            )?,
            "mysql" => run(
                self.mariadb_client().arg("-e").arg(format!(
                    "SELECT COUNT(*) FROM information_schema.processlist WHERE user = '{user}'"
                )),
                "mariadb",
            )?,
            _ => return Ok(None),
        };
        Ok(Some(count.parse().context("connection count")?))
    }
}

impl Drop for SqlTables {
    fn drop(&mut self) {
        let _ = self
            .as_postgres("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("pg/data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output();
        if let Some(mut child) = self.mariadb.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
