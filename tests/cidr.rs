//! cidr: tables through the cidr plugin against Postfix's own reading of the
//! same file: a corpus of more than 200 rules covering every construct of
//! cidr_table(5) (bare addresses, networks, `[]`, `!`, nested if/endif, IPv6,
//! bad rules Postfix skips) plus an RBL-style list, and 1,000+ keys; real
//! `postmap -q - proxy:cidr:FILE` must print exactly what
//! `postmap -q - cidr:FILE` prints.

mod common;

use common::Need;

use common::postfix::Postfix;

/// A corpus of rules: the constructs one by one, then generated networks.
fn corpus() -> String {
    let mut t = String::from(
        "# client access list\n\
         1.2.3.4 bare4\n\
         10.0.0.0/8 net8\n\
         2001:db8::1 bare6\n\
         [2001:db8:1::]/48 br6a\n\
         [2001:db8:2::/48] br6b\n\
         [192.168.1.1] br4\n\
         [192.168.2.0]/24 br4a\n\
         [192.168.3.0/24] br4b\n\
         1.2.4.0/24 host bits ok\n\
         1.2.5.9/24 host bits set\n\
         010.1.1.1 leading zero\n\
         1.2.6.0/024 mask with zero\n\
         1.2.7.0/33 too long\n\
         1.2.8.0/ no mask\n\
         /24 no net\n\
         [1.2.9.0 missing bracket\n\
         [1.2.10.0]x garbage\n\
         1.2.11.0/24\n\
         if 172.16.0.0/12\n\
         if !172.16.1.0/24\n\
         172.16.2.0/24 in 16/12 not .1 but .2\n\
         0.0.0.0/0 in 16/12 not .1\n\
         endif\n\
         172.16.0.0/12 in .1\n\
         endif\n\
         endif\n\
         endif garbage\n\
         ::ffff:5.6.7.8 mapped\n\
         2001:DB8::ABCD upper hex\n\
         198.51.100.7   value with   spaces   \n\
         198.51.100.8 first line\n\
         \x20 continued line\n\
         198.51.100.9 $1 $$ ${x} verbatim\n",
    );
    let mut rng = fastrand::Rng::with_seed(0xc1d7);
    for i in 0..150 {
        let len = [8, 12, 16, 20, 24, 28, 32][i % 7];
        let addr = rng.u32(..) & if len == 0 { 0 } else { u32::MAX << (32 - len) };
        t.push_str(&format!(
            "{}/{len} rbl-{i} listed\n",
            std::net::Ipv4Addr::from(addr)
        ));
    }
    for i in 0..60 {
        let len = [32, 48, 56, 64, 128][i % 5];
        let addr = (0x2001_0db8u128 << 96 | rng.u128(..) >> 32) & (u128::MAX << (128 - len));
        t.push_str(&format!(
            "{}/{len} v6-{i}\n",
            std::net::Ipv6Addr::from(addr)
        ));
    }
    t.push_str(
        "IF ! 2001:db8:ffff::/48\n::/0 ipv6 outside doc net\nEndIf\n\
         !100.64.0.0/10 not cgnat ipv4 only\n0.0.0.0/0 default4 never reached\n",
    );
    t
}

/// Keys: inside and outside every kind of rule, IPv6, malformed and
/// leading-zero addresses.
fn keys(corpus: &str) -> Vec<String> {
    let mut keys: Vec<String> = [
        "1.2.3.4",
        "10.9.9.9",
        "2001:db8::1",
        "2001:db8:1::5",
        "2001:db8:2::5",
        "192.168.1.1",
        "192.168.2.7",
        "192.168.3.7",
        "1.2.4.4",
        "1.2.5.9",
        "010.1.1.1",
        "1.2.6.1",
        "1.2.7.1",
        "1.2.11.1",
        "100.64.1.1",
        "2001:db8::2",
        "172.16.2.1",
        "172.16.3.3",
        "172.16.1.1",
        "192.0.2.1",
        "::ffff:5.6.7.8",
        "::FFFF:5.6.7.8",
        "::ffff:1.2.3.4",
        "2001:DB8::AbCd",
        "198.51.100.7",
        "198.51.100.8",
        "198.51.100.9",
        "foo",
        "1.2.3",
        "1.2.3.4.5",
        "[1.2.3.4]",
        " 1.2.3.4",
        "1.2.3.256",
        "1.2.3.4/32",
        "2001:db8::1%eth0",
        "0x1.2.3.4",
        "0.0.0.0",
        "255.255.255.255",
        "::",
        "ffff::1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut rng = fastrand::Rng::with_seed(7);
    // Addresses near every generated network, and random ones.
    for line in corpus
        .lines()
        .filter(|l| l.contains(" rbl-") || l.contains(" v6-"))
    {
        let net = line.trim_start_matches('!').split('/').next().unwrap();
        match net.parse::<std::net::IpAddr>().unwrap() {
            std::net::IpAddr::V4(a) => {
                let base = u32::from(a);
                keys.push(std::net::Ipv4Addr::from(base | rng.u32(..256)).to_string());
                keys.push(std::net::Ipv4Addr::from(base ^ 0x0100_0000).to_string());
            }
            std::net::IpAddr::V6(a) => {
                keys.push(
                    std::net::Ipv6Addr::from(u128::from(a) | rng.u128(..1 << 16)).to_string(),
                );
            }
        }
    }
    while keys.len() < 1100 {
        keys.push(std::net::Ipv4Addr::from(rng.u32(..)).to_string());
    }
    keys
}

#[test]
fn cidr_plugin_answers_like_postfix() {
    if common::skip_without(&[Need::Postfix, Need::Plugins]) {
        return;
    }
    let corpus = corpus();
    assert!(corpus.lines().count() > 200);
    let pf = Postfix::start("proxy:cidr:$data/access", "", |data| {
        std::fs::write(data.join("access"), &corpus).unwrap();
    });
    let keys = keys(&corpus);
    assert!(keys.len() >= 1000);
    let answers = pf.assert_same("cidr:$data/access", &keys);
    for expected in [
        "bare4",
        "net8",
        "br6b",
        "br4b",
        "mask with zero",
        "not cgnat ipv4 only",
        "in 16/12 not .1 but .2",
        "in .1",
        "ipv6 outside doc net",
        "v6-",
        "mapped",
        "upper hex",
        "value with   spaces",
        "first line  continued line",
        "$1 $$ ${x} verbatim",
        "listed",
    ] {
        assert!(
            answers.contains(expected),
            "no answer {expected:?} in:\n{answers}"
        );
    }
    // Bad rules were skipped with their line named.
    let log = pf
        .server
        .wait_for_log("perhaps you should use \"1.2.5.0/24\" instead");
    assert!(
        log.contains("line 12: bad address pattern: \"010.1.1.1\""),
        "{log}"
    );
}

#[test]
fn inline_cidr_tables_answer_like_postfix() {
    if common::skip_without(&[Need::Postfix, Need::Plugins]) {
        return;
    }
    let inline = "cidr:{ {10.0.0.0/8 ten net}, { 0.0.0.0/0 other }, {2001:db8::/32 doc} }";
    let pf = Postfix::start(&format!("proxy:{inline}"), "", |_| {});
    let keys: Vec<String> = ["10.1.2.3", "192.0.2.1", "2001:db8::5", "::1", "nonsense"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let answers = pf.assert_same(inline, &keys);
    assert_eq!(
        answers,
        "10.1.2.3\tten net\n192.0.2.1\tother\n2001:db8::5\tdoc\n"
    );
}
