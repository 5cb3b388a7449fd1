//! pcre: tables through the pcre plugin against Postfix's own reading of
//! the same file (PCRE2): the corpus in tests/data (every construct of
//! pcre_table(5) and the PCRE features operators use, bad rules Postfix
//! skips, header/body checks, client access and sender rewriting rules)
//! and 1,100 keys; real `postmap -q - proxy:pcre:FILE` must print exactly
//! what `postmap -q - pcre:FILE` prints. Also the inline form, and a
//! pattern that backtracks without end: the plugin's time limit answers
//! that one lookup RETRY and the table keeps serving.

mod common;

use common::Need;

use common::corpus::corpus;
use common::postfix::Postfix;
use common::{lookup_reply, read_frame};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

#[test]
fn pcre_plugin_answers_like_postfix() {
    if common::skip_without(&[Need::Postfix, Need::Plugins]) {
        return;
    }
    let (table, keys) = corpus("pcre");
    assert!(table.lines().count() > 200);
    assert!(keys.len() >= 1000);
    let pf = Postfix::start("proxy:pcre:$data/checks", "", |data| {
        std::fs::write(data.join("checks"), &table).unwrap();
    });
    let answers = pf.assert_same("pcre:$data/checks", &keys);
    for expected in [
        "c00ab\t[a]",
        "p01ab\t[a]",
        "p02aaa\t[a][aa]",
        "p03abc-12\t[abc][12]",
        "p04aA\tdoubled [a]",
        "p06abc123\tlookahead",
        "p07x.com\tlookbehind",
        "p08ham\tnegative-lookahead",
        "p09aaa\tungreedy <a>",
        "p10bbb\tungreedy-lazy <bbb>",
        "p19aab\tatomic",
        "p24abcdefghijk\tj-k",
        "p38aaxbx\tlazy-group [aa]",
        "Subject: buy viagra now\tREJECT spam subject: viagra",
        "Joe@DEPT0.EXAMPLE.COM\tJoe@new0.example.net",
        "b1abc\tb1-notx:abc",
        "zz-open1\topen-if 1",
    ] {
        assert!(
            answers.lines().any(|l| l == expected),
            "no answer {expected:?} in:\n{answers}"
        );
    }
    assert!(
        !answers.contains("p08spam\t"),
        "a miss is a miss:\n{answers}"
    );
    let log = pf
        .server
        .wait_for_log("range out of order in character class");
    for needle in [
        "pcre map ",
        "line 64: error in regex at offset 5: missing closing parenthesis",
        "no closing regexp delimiter \"/\": ignoring this rule",
        "ignoring obsolete regexp option \"X\"",
        "unknown regexp option \"!\": skipping this rule",
        "out of range replacement index \"0\"",
    ] {
        assert!(log.contains(needle), "log lacks {needle:?}:\n{log}");
    }
}

#[test]
fn inline_pcre_tables_answer_like_postfix() {
    if common::skip_without(&[Need::Postfix, Need::Plugins]) {
        return;
    }
    let inline = "pcre:{ {/^(?<user>[^@]+)@example\\.com$/ user $1}, {/^b(?=x)/ b-before-x}, {if !/^c/}, {/d$/ not-c-d}, {endif} }";
    let pf = Postfix::start(&format!("proxy:{}", inline.replace('$', "$$")), "", |_| {});
    let keys: Vec<String> = ["joe@example.com", "bx", "by", "cd", "dd"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let answers = pf.assert_same(inline, &keys);
    assert_eq!(
        answers,
        "joe@example.com\tuser joe\nbx\tb-before-x\ndd\tnot-c-d\n"
    );
}

#[test]
fn runaway_backtracking_costs_one_request() {
    if common::skip_without(&[Need::Postfix, Need::Plugins]) {
        return;
    }
    let pf = Postfix::start("proxy:pcre:$data/slow", "", |data| {
        std::fs::write(data.join("slow"), "/^(a|aa)+\\1b$/ slow\n/^a/ fast\n").unwrap();
    });
    let table = format!("pcre:{}", pf.table("$data/slow"));
    let mut s = UnixStream::connect(&pf.server.proxymap).unwrap();
    read_frame(&mut s);
    // A short key finishes quickly and falls through to the second rule.
    assert_eq!(
        lookup_reply(&mut s, &table, 0x4040, "aaaa"),
        (0, "fast".into())
    );
    // Exponential backtracking on a long key: RETRY within the time limit.
    let started = Instant::now();
    let (status, _) = lookup_reply(&mut s, &table, 0x4040, &"a".repeat(64));
    assert_eq!(status, 2, "RETRY");
    assert!(started.elapsed() < Duration::from_secs(10));
    pf.server.wait_for_log("time limit");
    // The table still serves, on the same connection.
    assert_eq!(
        lookup_reply(&mut s, &table, 0x4040, "ab"),
        (0, "fast".into())
    );
}
