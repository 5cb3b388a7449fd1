//! Pattern tables for the side-by-side benchmark, shaped like an operator's
//! smtpd restrictions: a 500-rule regexp table (client host names, sender
//! addresses with rewriting, header-check style rules, if/endif blocks) and
//! a 10,000-line cidr client access list. Each comes with a key list in
//! which about a third of the keys match a rule somewhere in the table and
//! the rest miss, so most lookups walk every rule, as clean traffic does.

use anyhow::Result;
use std::net::Ipv4Addr;
use std::path::Path;

/// File name of the regexp table in the tables directory.
pub const REGEXP_FILE: &str = "checks.regexp";
/// File name of the cidr table in the tables directory.
pub const CIDR_FILE: &str = "clients.cidr";

/// Write the 500-rule regexp table; returns its keys.
pub fn write_regexp(dir: &Path) -> Result<Vec<Vec<u8>>> {
    let mut table = String::from("# 500 rules, smtpd check style\n");
    let mut keys = Vec::new();
    let mut rules = 0;
    let mut i = 0;
    while rules < 500 {
        match i % 5 {
            0 => {
                table.push_str(&format!(
                    "/^(.+)\\.dyn\\.isp{i}\\.net$/ REJECT dynamic pool $1\n"
                ));
                keys.push(format!("host-10-1-2-{}.dyn.isp{i}.net", i % 250));
                keys.push(format!("mail.isp{i}.net"));
            }
            1 => {
                table.push_str(&format!(
                    "/^([^@]+)@dept{i}\\.example\\.com$/ $1@new{i}.example.net\n"
                ));
                keys.push(format!("joe.user{i}@dept{i}.example.com"));
                keys.push(format!("joe.user{i}@dept{i}.example.org"));
            }
            2 => {
                table.push_str(&format!(
                    "/^mail[0-9]*\\.partner{i}\\.(com|org)$/ OK trusted {i}\n"
                ));
                keys.push(format!("mail7.partner{i}.org"));
                keys.push(format!("smtp.partner{i}.com"));
            }
            3 => {
                table.push_str(&format!(
                    "/^Subject:.*\\b(offer{i}|prize{i})\\b/ REJECT spam subject $1\n"
                ));
                keys.push(format!("Subject: your offer{i} is here"));
                keys.push(format!("Subject: meeting notes {i}"));
            }
            _ => {
                table.push_str(&format!(
                    "if /^user{i}[+-]/\n/^user{i}[+-]([a-z]+)@/ FILTER lists:$1\n/./ DUNNO\nendif\n"
                ));
                rules += 3;
                keys.push(format!("user{i}+news@example.org"));
                keys.push(format!("user{i}@example.org"));
            }
        }
        rules += 1;
        i += 1;
    }
    // Traffic that matches nothing: most of what a server sees.
    for n in 0..2000 {
        keys.push(format!("client{n}.customer{}.example.net", n % 300));
        keys.push(format!("sender{n}@example{}.com", n % 97));
    }
    std::fs::write(dir.join(REGEXP_FILE), table)?;
    Ok(keys.into_iter().map(String::into_bytes).collect())
}

/// Write the 10,000-line cidr table; returns its keys.
pub fn write_cidr(dir: &Path) -> Result<Vec<Vec<u8>>> {
    let mut rng = fastrand::Rng::with_seed(0xc1d9);
    let mut table = String::from("# 10,000 networks, RBL style\n");
    let mut keys = Vec::new();
    for i in 0..10_000 {
        let len = [16u32, 20, 24, 28, 32][i % 5];
        // 11.0.0.0 - 126.255.255.255: away from private and special ranges.
        let base = rng.u32(0x0b00_0000..0x7f00_0000) & (u32::MAX << (32 - len));
        table.push_str(&format!(
            "{}/{len} REJECT listed {i}\n",
            Ipv4Addr::from(base)
        ));
        if i % 3 == 0 {
            let host = rng.u32(..) & !(u32::MAX << (32 - len));
            keys.push(Ipv4Addr::from(base | host).to_string());
        }
    }
    for _ in 0..6000 {
        keys.push(Ipv4Addr::from(rng.u32(0x8000_0000..0xdf00_0000)).to_string());
    }
    std::fs::write(dir.join(CIDR_FILE), table)?;
    Ok(keys.into_iter().map(String::into_bytes).collect())
}
