//! regexp: tables through the regexp plugin against Postfix's own reading
//! of the same file (glibc POSIX regular expressions): the corpus in
//! tests/data (every construct of regexp_table(5), bad rules Postfix skips,
//! header/body checks, client access and sender rewriting rules) and 1,100
//! keys; real `postmap -q - proxy:regexp:FILE` must print exactly what
//! `postmap -q - regexp:FILE` prints. Also the inline form, the warnings
//! that name a bad rule's line, and key folding on request (FOLD_MUL).

mod common;

use common::Need;

use common::corpus::corpus;
use common::postfix::Postfix;
use common::{lookup_reply, read_frame};
use std::os::unix::net::UnixStream;

#[test]
fn regexp_plugin_answers_like_postfix() {
    if common::skip_without(&[Need::Postfix, Need::Plugins]) {
        return;
    }
    let (table, keys) = corpus("regexp");
    assert!(table.lines().count() > 200);
    assert!(keys.len() >= 1000);
    let pf = Postfix::start("proxy:regexp:$data/checks", "", |data| {
        std::fs::write(data.join("checks"), &table).unwrap();
    });
    let answers = pf.assert_same("regexp:$data/checks", &keys);
    for expected in [
        "c00ab\t[ab]",
        "c02foobar\t[foobar]",
        "c03abcd\ta-bcd-",
        "c04a@b@c\t[a@b][c]",
        "c14abcdefghijk\tj-k-a",
        "c15a\t$1 $a pre$post aa",
        "c17a\tc17-negated",
        "c28z\tcontinued  line z",
        "r02aa\tbre-interval",
        "r05a\tbre-gnu-alt",
        "r08a\tsecondary",
        "r16aaa\t[aaa][]",
        "r21aa\tbackref",
        "Subject: buy viagra now\tREJECT spam subject: viagra",
        "Joe@DEPT0.EXAMPLE.COM\tJoe@new0.example.net",
        "b1abc\tb1-notx:abc",
        "zz-open1\topen-if 1",
        "b4\tb4-inner",
    ] {
        assert!(
            answers.lines().any(|l| l == expected) || answers.contains(&format!("{expected}\n")),
            "no answer {expected:?} in:\n{answers}"
        );
    }
    assert!(!answers.contains("c10FOO"), "a miss is a miss:\n{answers}");
    // Bad rules were skipped with Postfix's message and their line.
    let log = pf.server.wait_for_log("Invalid range end");
    for needle in [
        "regexp map ",
        "checks, line 64: Unmatched ( or \\(",
        "no closing regexp delimiter \"/\": skipping this rule",
        "unknown regexp option \"Q\": skipping this rule",
        "ignoring unrecognized request",
        "out-of-range replacement index \"0\"",
        "$number found in negative match replacement text: skipping this rule",
        "IF has no matching ENDIF",
    ] {
        assert!(log.contains(needle), "log lacks {needle:?}:\n{log}");
    }
}

#[test]
fn inline_regexp_tables_answer_like_postfix() {
    if common::skip_without(&[Need::Postfix, Need::Plugins]) {
        return;
    }
    let inline =
        "regexp:{ {/^(.*)@example\\.com$/ user $1}, {/^b/ y y}, {if /^c/}, {/d$/ c-d}, {endif} }";
    let pf = Postfix::start(&format!("proxy:{}", inline.replace('$', "$$")), "", |_| {});
    let keys: Vec<String> = ["joe@example.com", "b", "cd", "d", "none"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let answers = pf.assert_same(inline, &keys);
    assert_eq!(answers, "joe@example.com\tuser joe\nb\ty y\ncd\tc-d\n");
}

#[test]
fn keys_are_lowercased_only_when_the_client_asks() {
    if common::skip_without(&[Need::Postfix, Need::Plugins]) {
        return;
    }
    let pf = Postfix::start("proxy:regexp:$data/cs", "", |data| {
        std::fs::write(data.join("cs"), "/^abc$/i lower-only\n").unwrap();
    });
    let table = format!("regexp:{}", pf.table("$data/cs"));
    let mut s = UnixStream::connect(&pf.server.proxymap).unwrap();
    read_frame(&mut s);
    const LOCK_FOLD_FIX: u32 = 0x4040;
    const FOLD_MUL: u32 = 0x8000;
    assert_eq!(lookup_reply(&mut s, &table, LOCK_FOLD_FIX, "ABC").0, 1);
    assert_eq!(
        lookup_reply(&mut s, &table, LOCK_FOLD_FIX | FOLD_MUL, "ABC"),
        (0, "lower-only".into())
    );
    assert_eq!(
        lookup_reply(&mut s, &table, LOCK_FOLD_FIX, "abc"),
        (0, "lower-only".into())
    );
}
