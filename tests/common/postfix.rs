//! A private Postfix configuration directory whose `queue_directory` a
//! proxymapd serves, so real `postmap -q/-d ... proxy:TYPE:NAME` talks to
//! proxymapd without a running master, and helpers comparing its answers
//! with Postfix's own direct reads.

use super::Server;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A private Postfix configuration served by proxymapd.
pub struct Postfix {
    /// The proxymapd serving this configuration.
    pub server: Server,
    /// The configuration directory (`postmap -c`).
    pub etc: PathBuf,
    /// Where the tables live (`$data` in table names).
    pub data: PathBuf,
}

impl Postfix {
    /// Serve `read_maps`/`write_maps` (`$data` expands to the table
    /// directory, filled by `setup`).
    pub fn start(read_maps: &str, write_maps: &str, setup: impl FnOnce(&Path)) -> Postfix {
        Postfix::start_with(read_maps, write_maps, &[], setup)
    }

    /// Like [`Postfix::start`], with extra `proxymapd serve` arguments.
    pub fn start_with(
        read_maps: &str,
        write_maps: &str,
        serve_args: &[&str],
        setup: impl FnOnce(&Path),
    ) -> Postfix {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let etc = root.join("etc");
        let data = root.join("tables");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::create_dir_all(&data).unwrap();
        setup(&data);
        let expand = |s: &str| s.replace("$data", &data.to_string_lossy());
        std::fs::write(
            etc.join("main.cf"),
            format!(
                "queue_directory = {}/queue\ncompatibility_level = 3.6\nproxy_read_maps = {}\nproxy_write_maps = {}\n",
                root.display(),
                expand(read_maps),
                expand(write_maps)
            ),
        )
        .unwrap();
        let etc_arg = etc.to_string_lossy().into_owned();
        // Tables live in private temporary directories: keep root's rights.
        let mut args = vec!["serve", "--postfix-config", &etc_arg, "--user", "root"];
        args.extend_from_slice(serve_args);
        let server = Server::spawn(dir, &args, &[("PROXYMAPD_INTEROP", "environ-value-ü")]);
        Postfix { server, etc, data }
    }

    /// Run the real postmap with this configuration.
    pub fn postmap(&self, args: &[&str], stdin: impl AsRef<[u8]>) -> Output {
        let mut child = Command::new("postmap")
            .arg("-c")
            .arg(&self.etc)
            .args(args)
            .env("PROXYMAPD_INTEROP", "environ-value-ü")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("postmap must be installed (tests/run.sh installs Postfix)");
        // Feed stdin from another thread: postmap answers while it reads, and
        // both pipes would fill up with large inputs.
        let mut pipe = child.stdin.take().unwrap();
        let input = stdin.as_ref().to_vec();
        let feeder = std::thread::spawn(move || pipe.write_all(&input));
        let out = child.wait_with_output().unwrap();
        feeder.join().unwrap().unwrap();
        out
    }

    /// Expand `$data` in a table name.
    pub fn table(&self, spec: &str) -> String {
        spec.replace("$data", &self.data.to_string_lossy())
    }

    /// Query every key through proxy: and directly; both must agree.
    pub fn assert_same(&self, spec: &str, keys: &[String]) -> String {
        let keys: Vec<Vec<u8>> = keys.iter().map(|k| k.clone().into_bytes()).collect();
        self.assert_same_bytes(spec, &keys)
    }

    /// [`Postfix::assert_same`] for keys of any bytes; the outputs must be
    /// equal byte for byte.
    pub fn assert_same_bytes(&self, spec: &str, keys: &[Vec<u8>]) -> String {
        let table = self.table(spec);
        let mut input = keys.join(&b'\n');
        input.push(b'\n');
        let proxied = self.postmap(&["-q", "-", &format!("proxy:{table}")], &input);
        let direct = self.postmap(&["-q", "-", &table], &input);
        let (p, d) = (
            String::from_utf8_lossy(&proxied.stdout),
            String::from_utf8_lossy(&direct.stdout),
        );
        assert_eq!(
            proxied.status.code(),
            direct.status.code(),
            "{table}: exit codes differ\nproxy stderr: {}\ndirect stderr: {}\nserver log:\n{}",
            String::from_utf8_lossy(&proxied.stderr),
            String::from_utf8_lossy(&direct.stderr),
            self.server.log_text()
        );
        if p != d || proxied.stdout != direct.stdout {
            let (pl, dl): (Vec<&str>, Vec<&str>) = (p.lines().collect(), d.lines().collect());
            let first = pl
                .iter()
                .zip(&dl)
                .position(|(a, b)| a != b)
                .unwrap_or(pl.len().min(dl.len()));
            panic!(
                "{table}: proxied and direct answers differ at line {first} ({} and {} lines)\nproxied: {:?}\ndirect:  {:?}\nserver log tail:\n{}",
                pl.len(),
                dl.len(),
                &pl[first..pl.len().min(first + 3)],
                &dl[first..dl.len().min(first + 3)],
                self.server.log_text().lines().rev().take(10).collect::<Vec<_>>().join("\n")
            );
        }
        p.into_owned()
    }

    /// One `postmap -q KEY TABLE`: exit code and output.
    pub fn query_one(&self, table: &str, key: &str) -> (Option<i32>, String) {
        let out = self.postmap(&["-q", key, table], "");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// `proxymapd check` against this configuration.
    pub fn check(&self) -> Output {
        Command::new(env!("CARGO_BIN_EXE_proxymapd"))
            .arg("check")
            .arg("--postfix-config")
            .arg(&self.etc)
            .output()
            .unwrap()
    }

    /// `proxymapd query` against this configuration.
    pub fn proxymapd(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_proxymapd"))
            .arg("query")
            .arg("--postfix-config")
            .arg(&self.etc)
            .args(args)
            .output()
            .unwrap()
    }
}

/// The lines of `bytes`, sorted (sequence order differs between tables).
pub fn sorted_lines(bytes: &[u8]) -> Vec<String> {
    let mut lines: Vec<String> = String::from_utf8_lossy(bytes)
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}
