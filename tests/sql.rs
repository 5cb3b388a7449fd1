//! SQL map types against Postfix's own clients: every case is a `.cf` file
//! and a set of keys, looked up by the real `postmap -q -` directly (Postfix
//! 3.7's sqlite, pgsql and mysql clients) and through proxymapd
//! (`proxy:sqlite:`, `proxy:pgsql:` against a private PostgreSQL,
//! `proxy:mysql:` against a private MariaDB); the output and exit status
//! must be identical. The corpus covers Postfix's template
//! expansions (`%s %u %d %1-%9 %S %U %D %%`), which keys are never queried,
//! result_format, expansion_limit, several rows and columns, NULL and empty
//! values, quotes, backslashes, `%` and injection attempts in keys, UTF-8
//! and Latin-1 bytes, the `domain` filter and the legacy query fields; per
//! backend, `hosts` forms (UNIX sockets, a dead host first) and what only
//! that backend has (mysql's stored procedures and `require_result_set`).

mod common;

use common::postfix::Postfix;
use common::Need;
use std::path::Path;
use std::process::Command;

/// The database every case queries.
const SCHEMA: &str = "
CREATE TABLE users (address TEXT, dest TEXT, extra TEXT, n REAL);
INSERT INTO users VALUES
  ('alice@example.com', 'alice@dest.org', 'x', 1.5),
  ('bob@example.com', 'bob@dest.org', NULL, 42),
  ('multi@example.com', 'one@a.org', 'c1', 1e20),
  ('multi@example.com', 'two@b.org', 'c2', NULL),
  ('multi@example.com', NULL, 'c3', 0.1),
  ('multi@example.com', '', 'c4', -7),
  ('multi@example.com', 'nodomain', 'c5', 3),
  ('o''neil@example.com', 'quote@dest.org', NULL, NULL),
  ('back\\slash@example.com', 'backslash@dest.org', NULL, NULL),
  ('pct%s@example.com', 'percent@dest.org', NULL, NULL),
  ('grüße@example.com', 'utf8@dest.org', NULL, NULL),
  ('utf8val@example.com', 'wert-ä-€', NULL, NULL),
  ('latin1val@example.com', 'wert-ä', NULL, NULL),
  ('Upper@Example.com', 'case@dest.org', NULL, NULL),
  ('example.com', 'domain-key', NULL, NULL),
  ('sub.example.com', 'sub-domain-key', NULL, NULL);
CREATE TABLE domains (name TEXT, label TEXT);
INSERT INTO domains VALUES ('example.com', 'two-labels'), ('mx.example.com', 'three-labels');
";

/// `(file name, .cf text)`; `$DB` is replaced by the connect settings.
const CASES: &[(&str, &str)] = &[
    (
        "plain.cf",
        "$DB\nquery = SELECT dest FROM users WHERE address='%s'\n",
    ),
    (
        "parts.cf",
        "$DB\nquery = SELECT 'u=%u d=%d s=%s S=%S U=%U D=%D 1=%1 2=%2 pct=%%'\n",
    ),
    (
        "labels.cf",
        "$DB\nquery = SELECT label FROM domains WHERE name='%2.%1'\n",
    ),
    (
        "format.cf",
        "$DB\nquery = SELECT dest FROM users WHERE address='%s'\n\
         result_format = [%s|%u|%d|%S|%U|%D|%1|%%]\n",
    ),
    (
        "pooled.cf",
        "$DB\nquery = SELECT dest FROM users WHERE address='%s'\n\
         result_format = %U+%u at %d for %D\n",
    ),
    (
        "limit1.cf",
        "$DB\nquery = SELECT dest FROM users WHERE address='%s'\nexpansion_limit = 1\n",
    ),
    (
        "limit3.cf",
        "$DB\nquery = SELECT dest FROM users WHERE address='%s'\nexpansion_limit = 3\n",
    ),
    (
        "columns.cf",
        "$DB\nquery = SELECT extra, dest, n FROM users WHERE address='%s'\n",
    ),
    (
        "numbers.cf",
        "$DB\nquery = SELECT n FROM users WHERE address='%s'\n",
    ),
    ("echo.cf", "$DB\nquery = SELECT '[%s]'\n"),
    (
        "multi-statement.cf",
        "$DB\nquery = SELECT 'first-%s'; SELECT 'second-%s'\n",
    ),
    (
        "domain.cf",
        "$DB\nquery = SELECT dest FROM users WHERE address='%s'\n\
         domain = example.com, !bad.example.com EXAMPLE.ORG\n",
    ),
    (
        "domain-file.cf",
        "$DB\nquery = SELECT dest FROM users WHERE address='%s'\n\
         domain = !bad.example.com, $data/domains\n",
    ),
    (
        "domain-table.cf",
        "$DB\nquery = SELECT dest FROM users WHERE address='%s'\n\
         domain = !texthash:$data/not-these, texthash:$data/these\n",
    ),
    (
        "legacy.cf",
        "$DB\ntable = users\nselect_field = dest\nwhere_field = address\n\
         additional_conditions = AND dest <> ''\n",
    ),
    (
        "continued.cf",
        "# a comment\n$DB\nquery = SELECT dest\n  FROM users\n# between\n  WHERE address='%s'\n",
    ),
];

/// Keys every case is asked (one per line for `postmap -q -`).
fn keys() -> Vec<Vec<u8>> {
    text_keys().into_iter().map(String::into_bytes).collect()
}

/// Keys every case is asked one at a time: a value that comes back in
/// Latin-1 bytes from Postfix 3.7's pgsql session (Postfix then reports a
/// lookup error and postmap stops, dropping what it had printed), and a key
/// in Latin-1 bytes.
const LATIN1_KEYS: [&[u8]; 2] = [b"latin1val@example.com", b"m\xfcller@example.com"];

/// The keys that are text.
fn text_keys() -> Vec<String> {
    [
        "alice@example.com",
        "ALICE@EXAMPLE.COM",
        "bob@example.com",
        "multi@example.com",
        "nobody@example.com",
        "o'neil@example.com",
        "back\\slash@example.com",
        "pct%s@example.com",
        "grüße@example.com",
        "Upper@Example.com",
        "example.com",
        "sub.example.com",
        "user@mx.example.com",
        "user@bad.example.com",
        "user@example.org",
        "plain",
        "@example.com",
        "user@",
        "u@a..c",
        "u@.c",
        "u@c.",
        "x' OR '1'='1",
        "x'; DROP TABLE users; --@example.com",
        "a\"b@example.com",
        "100%@example.com",
        "tab\there@example.com",
    ]
    .iter()
    .map(|k| k.to_string())
    .collect()
}

fn make_database(path: &Path) {
    let out = Command::new("sqlite3")
        .arg(path)
        .arg(SCHEMA)
        .output()
        .expect("sqlite3 (package sqlite3) must be installed");
    assert!(out.status.success(), "sqlite3: {out:?}");
}

/// Serve every case of the corpus as `TYPE:` tables whose connect
/// settings are `connect`, and compare each with Postfix's direct answers.
fn run_corpus(
    map_type: &str,
    connect: &str,
    extra: &[(&str, String)],
    setup: impl FnOnce(&Path),
) -> (Postfix, usize) {
    let cases: Vec<(&str, String)> = CASES
        .iter()
        .map(|(f, t)| (*f, t.to_string()))
        .chain(extra.iter().cloned())
        .collect();
    let maps: Vec<String> = cases
        .iter()
        .map(|(file, _)| format!("proxy:{map_type}:$data/{file}"))
        .collect();
    let pf = Postfix::start(&maps.join(" "), "", |data| {
        setup(data);
        // A domain list file: entries, a comment, a negation.
        std::fs::write(
            data.join("domains"),
            "# domains we query\nexample.com\n!mx.example.com, EXAMPLE.ORG\n",
        )
        .unwrap();
        // Domain list tables: looked up with the key's domain.
        std::fs::write(data.join("these"), "example.com yes\nexample.org yes\n").unwrap();
        std::fs::write(data.join("not-these"), "example.org no\n").unwrap();
        for (file, text) in &cases {
            let path = data.join(file);
            let connect = connect.replace("$data", &data.to_string_lossy());
            let text = text.replace("$DB", &connect);
            std::fs::write(&path, text.replace("$data", &data.to_string_lossy())).unwrap();
            // Postfix waits for a .cf file changed in the last second.
            let old = std::time::SystemTime::now() - std::time::Duration::from_secs(120);
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
    });
    let keys = keys();
    let mut answered = 0;
    let mut per_table = Vec::new();
    for (file, _) in &cases {
        let out = pf.assert_same_bytes(&format!("{map_type}:$data/{file}"), &keys);
        let mut lines = out.lines().count();
        for key in LATIN1_KEYS {
            let out = pf.assert_same_bytes(&format!("{map_type}:$data/{file}"), &[key.to_vec()]);
            lines += out.lines().count();
        }
        answered += lines;
        per_table.push(format!("{file} {lines}"));
    }
    // A value beyond Latin-1: pgsql's query fails in Postfix 3.7's LATIN1
    // session, and postmap -q - dies there without printing what it had,
    // so this key is compared on its own, last (a failed query rests the
    // table's host for 60 s, in Postfix's proxymap as in proxymapd).
    for file in ["plain.cf", "columns.cf"] {
        let table = pf.table(&format!("{map_type}:$data/{file}"));
        let direct = pf.query_one(&table, "utf8val@example.com");
        let proxied = pf.query_one(&format!("proxy:{table}"), "utf8val@example.com");
        assert_eq!(proxied, direct, "{table}: utf8val@example.com");
    }
    eprintln!(
        "{map_type} corpus: {} tables x {} keys, {answered} answers, all equal to Postfix's ({})",
        cases.len(),
        keys.len() + LATIN1_KEYS.len() + 1,
        per_table.join(", ")
    );
    (pf, answered)
}

#[test]
fn sqlite_tables_answer_through_proxymapd_as_postfix_reads_them() {
    if common::skip_without(&[Need::Postfix]) {
        return;
    }
    let (pf, answered) = run_corpus("sqlite", "dbpath = $data/mail.sqlite", &[], |data| {
        make_database(&data.join("mail.sqlite"))
    });
    // Spot checks on top of the comparison: postmap folds the key, and an
    // injection attempt is quoted into a string.
    assert_eq!(
        pf.query_one(
            &pf.table("proxy:sqlite:$data/plain.cf"),
            "ALICE@EXAMPLE.COM"
        ),
        (Some(0), "alice@dest.org\n".to_string())
    );
    assert_eq!(
        pf.query_one(&pf.table("proxy:sqlite:$data/echo.cf"), "x' OR '1'='1"),
        (Some(0), "[x' or '1'='1]\n".to_string())
    );
    assert!(answered > 60, "only {answered} answers in the corpus");
}

/// A private PostgreSQL with the corpus's tables in database `mail`,
/// readable by role postfix, and the `.cf` lines that reach it.
fn mail_database() -> (common::pgsql::PgServer, String) {
    let pg = common::pgsql::PgServer::start();
    pg.psql("mail", SCHEMA);
    pg.psql(
        "mail",
        "GRANT SELECT ON ALL TABLES IN SCHEMA public TO postfix",
    );
    let connect = format!(
        "hosts = inet:127.0.0.1:{}\nuser = postfix\npassword = pfpass\ndbname = mail",
        pg.port
    );
    (pg, connect)
}

#[test]
fn pgsql_tables_answer_through_proxymapd_as_postfix_reads_them() {
    if common::skip_without(&[Need::Postfix, Need::Postgres]) {
        return;
    }
    let (pg, connect) = mail_database();
    let query = "query = SELECT dest FROM users WHERE address='%s'";
    let auth = "user = postfix\npassword = pfpass\ndbname = mail";
    // unix:/dir finds port 5432's socket name: point one at the cluster's.
    let socket = pg.socket_dir.join(format!(".s.PGSQL.{}", pg.port));
    let extra = [
        (
            "unix.cf",
            format!("hosts = unix:$data/pgsock\n{auth}\n{query}\n"),
        ),
        (
            "failover.cf",
            format!(
                "hosts = inet:127.0.0.1:1, inet:127.0.0.1:{}\n{auth}\n{query}\n",
                pg.port
            ),
        ),
        (
            "function.cf",
            format!("{connect}\nselect_function = upper\n"),
        ),
    ];
    let (pf, answered) = run_corpus("pgsql", &connect, &extra, |data| {
        std::fs::create_dir(data.join("pgsock")).unwrap();
        std::os::unix::fs::symlink(&socket, data.join("pgsock/.s.PGSQL.5432")).unwrap();
    });
    // Several columns count on pgsql; the last statement's rows do.
    assert_eq!(
        pf.query_one(&pf.table("proxy:pgsql:$data/multi-statement.cf"), "k"),
        (Some(0), "second-k\n".to_string())
    );
    assert!(answered > 60, "only {answered} answers in the corpus");
}

/// 64 clients look up 40 keys each over four `map_type` tables on the
/// database `connect` reaches; every answer must be right and the server
/// must hold at most the pool size (4) of connections, counted by
/// `connections` while the pool is still warm. Returns that count.
fn sixty_four_clients_over_four_tables(
    map_type: &str,
    connect: &str,
    concat: &str,
    connections: impl Fn() -> usize,
) -> usize {
    let files = ["t1.cf", "t2.cf", "t3.cf", "t4.cf"];
    let maps: Vec<String> = files
        .iter()
        .map(|f| format!("proxy:{map_type}:$data/{f}"))
        .collect();
    let pf = Postfix::start(&maps.join(" "), "", |data| {
        for (n, f) in files.iter().enumerate() {
            let dest = concat.replace("$n", &n.to_string());
            std::fs::write(
                data.join(f),
                format!("{connect}\nquery = SELECT {dest} FROM users WHERE address='%s'\n"),
            )
            .unwrap();
        }
    });
    let tables: Vec<String> = files
        .iter()
        .map(|f| pf.table(&format!("{map_type}:$data/{f}")))
        .collect();
    let socket = pf.server.proxymap.clone();
    let clients: Vec<_> = (0..64)
        .map(|c| {
            let (socket, tables) = (socket.clone(), tables.clone());
            std::thread::spawn(move || {
                let mut client = proxymapd::client::Client::connect(&socket, true).unwrap();
                let mut good = 0;
                for i in 0..40 {
                    let n = (c + i) % tables.len();
                    let reply = client
                        .lookup(&tables[n], 0x4040, b"alice@example.com")
                        .unwrap();
                    if reply.status() == Some(0)
                        && reply.get("value") == Some(format!("alice@dest.org-{n}").as_bytes())
                    {
                        good += 1;
                    }
                }
                good
            })
        })
        .collect();
    let good: usize = clients.into_iter().map(|t| t.join().unwrap()).sum();
    let held = connections();
    eprintln!(
        "{map_type}: 64 clients x 40 lookups over 4 tables: {good} right answers, {held} database connections"
    );
    assert_eq!(good, 64 * 40, "every lookup answered right");
    assert!(
        (1..=4).contains(&held),
        "{held} connections for one connect spec (pool size 4)"
    );
    held
}

#[test]
fn sixty_four_clients_over_four_pgsql_tables_share_one_small_pool() {
    if common::skip_without(&[Need::Postfix, Need::Postgres]) {
        return;
    }
    let (pg, connect) = mail_database();
    sixty_four_clients_over_four_tables("pgsql", &connect, "dest || '-$n'", || {
        pg.value(
            "postgres",
            "SELECT count(*) FROM pg_stat_activity WHERE usename = 'postfix'",
        )
        .parse()
        .unwrap()
    });
}

#[test]
fn sixty_four_clients_over_four_mysql_tables_share_one_small_pool() {
    if common::skip_without(&[Need::Postfix, Need::Mysql]) {
        return;
    }
    let (my, connect) = mysql_database();
    sixty_four_clients_over_four_tables("mysql", &connect, "CONCAT(dest, '-$n')", || {
        my.connections_of("postfix")
    });
}

/// A server with `TYPE:$data/db.cf` (`cf` its text) beside a sqlite table
/// on the same rows, `lite.cf`: the server and both table names.
fn beside_a_sqlite_table(map_type: &str, cf: &str) -> (Postfix, String, String) {
    let pf = Postfix::start(
        &format!("proxy:{map_type}:$data/db.cf proxy:sqlite:$data/lite.cf"),
        "",
        |data| {
            std::fs::write(data.join("db.cf"), cf).unwrap();
            make_database(&data.join("mail.sqlite"));
            std::fs::write(
                data.join("lite.cf"),
                format!(
                    "dbpath = {}\nquery = SELECT dest FROM users WHERE address='%s'\n",
                    data.join("mail.sqlite").display()
                ),
            )
            .unwrap();
        },
    );
    let db = pf.table(&format!("{map_type}:$data/db.cf"));
    let lite = pf.table("sqlite:$data/lite.cf");
    (pf, db, lite)
}

/// Status and value of `alice@example.com` in `table`.
fn ask_alice(
    client: &mut proxymapd::client::Client,
    table: &str,
) -> (Option<u32>, Option<Vec<u8>>) {
    let reply = client.lookup(table, 0x4040, b"alice@example.com").unwrap();
    (reply.status(), reply.get("value").map(<[u8]>::to_vec))
}

#[test]
fn a_database_that_goes_down_costs_its_table_retry_and_comes_back_after_sixty_seconds() {
    if common::skip_without(&[Need::Postfix, Need::Postgres]) {
        return;
    }
    const RETRY: u32 = 2;
    let (pg, connect) = mail_database();
    let (pf, pg_table, lite_table) = beside_a_sqlite_table(
        "pgsql",
        &format!("{connect}\nquery = SELECT dest FROM users WHERE address='%s'\n"),
    );
    let mut client = proxymapd::client::Client::connect(&pf.server.proxymap, true).unwrap();
    let mut ask = |table: &str| ask_alice(&mut client, table);
    let ok = (Some(0), Some(b"alice@dest.org".to_vec()));
    assert_eq!(ask(&pg_table), ok);
    pg.stop();
    let down = std::time::Instant::now();
    // The table answers RETRY, well within the query timeout; the other
    // table answers as before.
    assert_eq!(ask(&pg_table).0, Some(RETRY));
    assert!(down.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(ask(&lite_table), ok);
    // Back up at once, the host still rests (Postfix: 60 s), ...
    pg.start_again();
    assert_eq!(ask(&pg_table).0, Some(RETRY));
    // ... and is used again once the 60 s are over.
    while down.elapsed() < std::time::Duration::from_secs(61) {
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert_eq!(ask(&pg_table), ok);
    eprintln!(
        "pgsql down: RETRY at once, sqlite table unaffected, answers again {} s after the failure",
        down.elapsed().as_secs()
    );
}

/// A private MariaDB with the corpus's tables in database `mail`, two
/// stored procedures (one and two result sets), readable by user postfix,
/// and the `.cf` lines that reach it over TCP.
fn mysql_database() -> (common::mysql::MyServer, String) {
    let my = common::mysql::MyServer::start();
    // MySQL reads a backslash in a string literal as an escape.
    my.sql_in("mail", &SCHEMA.replace('\\', "\\\\"));
    my.sql_in(
        "mail",
        "DELIMITER //\n\
         CREATE PROCEDURE one_set(k TEXT) SELECT dest FROM users WHERE address = k //\n\
         CREATE PROCEDURE two_sets(k TEXT) BEGIN \
         SELECT dest FROM users WHERE address = k; SELECT 'second'; END //\n",
    );
    let connect = format!(
        "hosts = inet:127.0.0.1:{}\nuser = postfix\npassword = pfpass\ndbname = mail",
        my.port
    );
    (my, connect)
}

#[test]
fn mysql_tables_answer_through_proxymapd_as_postfix_reads_them() {
    if common::skip_without(&[Need::Postfix, Need::Mysql]) {
        return;
    }
    let (my, connect) = mysql_database();
    let query = "query = SELECT dest FROM users WHERE address='%s'";
    let auth = "user = postfix\npassword = pfpass\ndbname = mail";
    let extra = [
        (
            "unix.cf",
            format!("hosts = unix:{}\n{auth}\n{query}\n", my.socket.display()),
        ),
        (
            "failover.cf",
            format!(
                "hosts = inet:127.0.0.1:1 unix:{}\n{auth}\n{query}\n",
                my.socket.display()
            ),
        ),
        (
            "localhost.cf",
            format!("hosts = localhost\noption_file = $data/my.cnf\n{auth}\n{query}\n"),
        ),
        (
            "call.cf",
            format!("{connect}\nquery = CALL one_set('%s')\n"),
        ),
        (
            "call-two.cf",
            format!("{connect}\nquery = CALL two_sets('%s')\n"),
        ),
        ("select-then-do.cf", format!("{connect}\n{query}; DO 1\n")),
        ("no-result.cf", format!("{connect}\nquery = DO '%s'\n")),
        (
            "no-result-allowed.cf",
            format!("{connect}\nquery = DO '%s'\nrequire_result_set = no\n"),
        ),
    ];
    let socket = my.socket.clone();
    let (pf, answered) = run_corpus("mysql", &connect, &extra, |data| {
        std::fs::write(
            data.join("my.cnf"),
            format!("[client]\nsocket = {}\n", socket.display()),
        )
        .unwrap();
    });
    // The host forms and procedures answer (not just agree with Postfix).
    for file in ["unix.cf", "failover.cf", "localhost.cf", "call.cf"] {
        let table = pf.table(&format!("proxy:mysql:$data/{file}"));
        let out = pf.postmap(&["-q", "alice@example.com", &table], "");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "alice@dest.org\n",
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // mysql's escaping keeps an injection attempt inside the string.
    assert_eq!(
        pf.query_one(&pf.table("proxy:mysql:$data/echo.cf"), "x' OR '1'='1"),
        (Some(0), "[x' or '1'='1]\n".to_string())
    );
    assert!(answered > 60, "only {answered} answers in the corpus");
}

/// While clients keep six lookups of a table whose query takes 1 s in
/// flight, lookups of another table on the same database (the same pool)
/// are answered at once: all 20 of them before the first slow one ends.
fn a_slow_table_never_delays_another(map_type: &str, connect: &str, slow_query: &str) {
    let pf = Postfix::start(
        &format!("proxy:{map_type}:$data/slow.cf proxy:{map_type}:$data/fast.cf"),
        "",
        |data| {
            std::fs::write(
                data.join("slow.cf"),
                format!("{connect}\nquery = {slow_query}\n"),
            )
            .unwrap();
            std::fs::write(
                data.join("fast.cf"),
                format!("{connect}\nquery = SELECT dest FROM users WHERE address='%s'\n"),
            )
            .unwrap();
        },
    );
    let (slow, fast) = (
        pf.table(&format!("{map_type}:$data/slow.cf")),
        pf.table(&format!("{map_type}:$data/fast.cf")),
    );
    let socket = pf.server.proxymap.clone();
    let ok = (Some(0), Some(b"alice@dest.org".to_vec()));
    let mut client = proxymapd::client::Client::connect(&socket, true).unwrap();
    // Both tables open (the slow one's first query takes its second).
    assert_eq!(ask_alice(&mut client, &fast), ok);
    assert_eq!(ask_alice(&mut client, &slow), ok);
    let slow_done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let slow_clients: Vec<_> = (0..6)
        .map(|_| {
            let (socket, slow, done) = (socket.clone(), slow.clone(), slow_done.clone());
            std::thread::spawn(move || {
                let mut client = proxymapd::client::Client::connect(&socket, true).unwrap();
                let mut answers = Vec::new();
                for _ in 0..2 {
                    let answer = ask_alice(&mut client, &slow);
                    done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    answers.push(answer);
                }
                answers
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let mut slowest = std::time::Duration::ZERO;
    for _ in 0..20 {
        let started = std::time::Instant::now();
        assert_eq!(ask_alice(&mut client, &fast), ok);
        slowest = slowest.max(started.elapsed());
    }
    let finished_meanwhile = slow_done.load(std::sync::atomic::Ordering::SeqCst);
    let slow_answers: Vec<_> = slow_clients
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    eprintln!(
        "{map_type}: 20 lookups of a fast table while 6 clients wait on 1 s queries: \
         slowest {slowest:?}, slow lookups finished meanwhile: {finished_meanwhile}; \
         slow answers {:?}",
        slow_answers.iter().map(|a| a.0).collect::<Vec<_>>()
    );
    assert_eq!(
        finished_meanwhile, 0,
        "the fast table's lookups waited for the slow table's queries"
    );
    assert!(slow_answers.iter().all(|a| *a == ok), "{slow_answers:?}");
}

#[test]
fn a_slow_pgsql_query_never_delays_another_table() {
    if common::skip_without(&[Need::Postfix, Need::Postgres]) {
        return;
    }
    let (_pg, connect) = mail_database();
    a_slow_table_never_delays_another(
        "pgsql",
        &connect,
        "SELECT dest FROM users, pg_sleep(1) WHERE address='%s'",
    );
}

#[test]
fn a_slow_mysql_query_never_delays_another_table() {
    if common::skip_without(&[Need::Postfix, Need::Mysql]) {
        return;
    }
    let (_my, connect) = mysql_database();
    a_slow_table_never_delays_another(
        "mysql",
        &connect,
        "SELECT CONCAT(dest, IF(SLEEP(1) = 0, '', '?')) FROM users WHERE address='%s'",
    );
}

/// mysql with the .cf's own intervals: idle connections close after
/// `idle_interval`; a server that stops costs RETRY at once while a sqlite
/// table keeps answering; restarted, it is used again once
/// `retry_interval` is over, not before.
#[test]
fn mysql_idle_close_fault_and_retry_interval_follow_the_cf() {
    if common::skip_without(&[Need::Postfix, Need::Mysql]) {
        return;
    }
    const RETRY: u32 = 2;
    let (mut my, connect) = mysql_database();
    let (pf, my_table, lite_table) = beside_a_sqlite_table(
        "mysql",
        &format!(
            "{connect}\nidle_interval = 2\nretry_interval = 4\n\
             query = SELECT dest FROM users WHERE address='%s'\n"
        ),
    );
    let mut client = proxymapd::client::Client::connect(&pf.server.proxymap, true).unwrap();
    let mut ask = |table: &str| ask_alice(&mut client, table);
    let ok = (Some(0), Some(b"alice@dest.org".to_vec()));
    let held = || my.connections_of("postfix");
    assert_eq!(ask(&my_table), ok);
    let before = held();
    assert_eq!(before, 1, "one connection after one lookup");
    std::thread::sleep(std::time::Duration::from_secs(4));
    let after_idle = held();
    assert_eq!(after_idle, 0, "closed after idle_interval = 2");
    assert_eq!(ask(&my_table), ok, "reconnects on demand");
    my.stop();
    let down = std::time::Instant::now();
    assert_eq!(ask(&my_table).0, Some(RETRY));
    let answered_in = down.elapsed();
    assert!(answered_in < std::time::Duration::from_secs(10));
    assert_eq!(ask(&lite_table), ok);
    my.start_again();
    assert_eq!(ask(&my_table).0, Some(RETRY), "still resting");
    while down.elapsed() < std::time::Duration::from_millis(4500) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(ask(&my_table), ok, "used again after retry_interval = 4");
    eprintln!(
        "mysql: {before} connection, 0 after idle_interval; down: RETRY in {answered_in:?}, \
         sqlite unaffected; answers again {:?} after the failure",
        down.elapsed()
    );
}

/// What kills Postfix's proxymap (a bad query template, a line that is not
/// `name = value`, a bad number, missing legacy fields, a sqlite statement
/// that does not prepare) costs only that table here: it answers RETRY
/// with a log line naming the file, the other tables answer, and a fixed
/// `.cf` file is read again before the next request. (A TOML
/// configuration: with a `.cf` line that is not `name = value` in
/// proxy_read_maps, Postfix's own postconf refuses to read main.cf.)
#[test]
fn postfix_fatal_table_errors_cost_one_table_and_changed_cf_files_are_reread() {
    if common::skip_without(&[Need::Proxymapd]) {
        return;
    }
    const RETRY: u32 = 2;
    let broken = [
        (
            "template.cf",
            "query = SELECT '%x'\n",
            "Invalid query template",
        ),
        ("line.cf", "query = SELECT '%s'\nnot a setting\n", "line 3"),
        (
            "number.cf",
            "query = SELECT '%s'\nexpansion_limit = ten\n",
            "expansion_limit",
        ),
        ("legacy.cf", "table = users\n", "select_field"),
        (
            "column.cf",
            "query = SELECT nosuch FROM users WHERE address='%s'\n",
            "nosuch",
        ),
    ];
    let mut maps: Vec<String> = broken
        .iter()
        .map(|(f, _, _)| format!("proxy:sqlite:$dir/{f}"))
        .collect();
    maps.push("proxy:sqlite:$dir/good.cf".into());
    let toml = format!("proxy_read_maps = \"{}\"\n", maps.join(" "));
    let server = common::Server::start_toml(&toml, |data| {
        make_database(&data.join("mail.sqlite"));
        let db = format!("dbpath = {}\n", data.join("mail.sqlite").display());
        for (file, text, _) in &broken {
            std::fs::write(data.join(file), format!("{db}{text}")).unwrap();
        }
        std::fs::write(
            data.join("good.cf"),
            format!("{db}query = SELECT 'v1-%s'\n"),
        )
        .unwrap();
    });
    let data = server.dir.path().to_string_lossy().into_owned();
    let mut client = proxymapd::client::Client::connect(&server.proxymap, true).unwrap();
    let mut ask = |file: &str| {
        let table = format!("sqlite:{data}/{file}");
        let reply = client.lookup(&table, 0x4040, b"k").unwrap();
        (
            reply.status(),
            String::from_utf8_lossy(reply.get("value").unwrap_or_default()).into_owned(),
        )
    };
    for (file, _, says) in &broken {
        assert_eq!(ask(file).0, Some(RETRY), "{file}");
        let log = server.log_text();
        assert!(
            log.lines().any(|l| l.contains(file) && l.contains(says)),
            "{file}: no log line naming the file and \"{says}\":\n{log}"
        );
        assert_eq!(ask("good.cf"), (Some(0), "v1-k".to_string()));
    }
    // A changed .cf is read again before the next request: the good table
    // answers from its new query, a repaired one answers.
    let db = format!("dbpath = {data}/mail.sqlite\n");
    std::fs::write(
        format!("{data}/good.cf"),
        format!("{db}query = SELECT 'v2-%s'\n"),
    )
    .unwrap();
    std::fs::write(
        format!("{data}/template.cf"),
        format!("{db}query = SELECT 'fixed-%s'\n"),
    )
    .unwrap();
    assert_eq!(ask("good.cf"), (Some(0), "v2-k".to_string()));
    assert_eq!(ask("template.cf"), (Some(0), "fixed-k".to_string()));
    // The server is still up for everyone.
    let mut other = proxymapd::client::Client::connect(&server.proxymap, true).unwrap();
    let reply = other
        .lookup(&format!("sqlite:{data}/good.cf"), 0x4040, b"k")
        .unwrap();
    assert_eq!(reply.get("value"), Some(&b"v2-k"[..]));
}
