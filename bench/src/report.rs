//! Benchmark results: rows, averaging over repetitions, the Markdown report
//! with ratios against Postfix and the echo ceiling, and an SVG plot of
//! req/s and p99 latency against concurrency.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One measured run (or the mean of several).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// `postfix`, `proxymapd` or `echo`.
    pub server: String,
    /// Table type label (`-` for echo).
    pub table: String,
    /// Concurrent connections.
    pub concurrency: usize,
    /// Requests per second.
    pub rps: f64,
    /// Median latency.
    pub p50_us: f64,
    /// 99th percentile latency.
    pub p99_us: f64,
    /// 99.9th percentile latency.
    pub p999_us: f64,
    /// Server CPU time per request.
    pub cpu_us_per_request: f64,
    /// Load generator CPU time per request (its cost on the shared cores).
    pub client_cpu_us_per_request: f64,
    /// Server peak resident memory (all its processes).
    pub peak_rss_mib: f64,
    /// Error replies and failures.
    pub errors: u64,
    /// Requests answered.
    pub requests: u64,
    /// Database connections the server held right after the run (SQL
    /// tables only).
    pub connections: Option<usize>,
}

/// Mean of the repetitions of each (server, table, C), in a stable order.
pub fn average(rows: &[Row]) -> Vec<Row> {
    let mut groups: BTreeMap<(usize, String, String), Vec<&Row>> = BTreeMap::new();
    for r in rows {
        groups
            .entry((r.concurrency, r.table.clone(), r.server.clone()))
            .or_default()
            .push(r);
    }
    groups
        .into_values()
        .map(|g| {
            let n = g.len() as f64;
            let mean = |f: fn(&Row) -> f64| g.iter().map(|r| f(r)).sum::<f64>() / n;
            Row {
                server: g[0].server.clone(),
                table: g[0].table.clone(),
                concurrency: g[0].concurrency,
                rps: mean(|r| r.rps),
                p50_us: mean(|r| r.p50_us),
                p99_us: mean(|r| r.p99_us),
                p999_us: mean(|r| r.p999_us),
                cpu_us_per_request: mean(|r| r.cpu_us_per_request),
                connections: g.iter().filter_map(|r| r.connections).max(),
                client_cpu_us_per_request: mean(|r| r.client_cpu_us_per_request),
                peak_rss_mib: g.iter().map(|r| r.peak_rss_mib).fold(0.0, f64::max),
                errors: g.iter().map(|r| r.errors).sum(),
                requests: g.iter().map(|r| r.requests).sum(),
            }
        })
        .collect()
}

fn find<'a>(rows: &'a [Row], server: &str, table: &str, c: usize) -> Option<&'a Row> {
    rows.iter()
        .find(|r| r.server == server && r.table == table && r.concurrency == c)
}

/// The Markdown report. `header` is prose placed under the title (date,
/// machine, method).
pub fn markdown(rows: &[Row], header: &str) -> String {
    let mut md = String::from("# proxymapd vs Postfix proxymap\n\n");
    md.push_str(header);
    md.push_str("\n\n![req/s and p99 latency against concurrency](benchmarks.svg)\n\n## Results (mean of repetitions)\n\n");
    md.push_str("| server | table | C | req/s | p50 µs | p99 µs | p99.9 µs | CPU µs/req | client CPU µs/req | peak RSS MiB | errors |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} | {} |",
            r.server,
            r.table,
            r.concurrency,
            r.rps,
            r.p50_us,
            r.p99_us,
            r.p999_us,
            r.cpu_us_per_request,
            r.client_cpu_us_per_request,
            r.peak_rss_mib,
            r.errors
        );
    }
    if rows.iter().any(|r| r.connections.is_some()) {
        md.push_str("\n## Database connections held right after each run\n\n| table | C | Postfix | proxymapd |\n|---|---:|---:|---:|\n");
        for r in rows.iter().filter(|r| r.server == "postfix") {
            let ours = find(rows, "proxymapd", &r.table, r.concurrency).and_then(|o| o.connections);
            if let (Some(p), Some(o)) = (r.connections, ours) {
                let _ = writeln!(md, "| {} | {} | {p} | {o} |", r.table, r.concurrency);
            }
        }
    }
    md.push_str("\n## Ratios\n\n| table | C | req/s proxymapd ÷ Postfix | p99 proxymapd ÷ Postfix | req/s proxymapd ÷ echo | CPU/req proxymapd ÷ Postfix |\n|---|---:|---:|---:|---:|---:|\n");
    let mut cs: Vec<usize> = rows.iter().map(|r| r.concurrency).collect();
    cs.sort_unstable();
    cs.dedup();
    let mut tables: Vec<&str> = rows
        .iter()
        .filter(|r| r.server != "echo")
        .map(|r| r.table.as_str())
        .collect();
    tables.sort_unstable();
    tables.dedup();
    for t in &tables {
        for &c in &cs {
            let (Some(ours), Some(pf), Some(echo)) = (
                find(rows, "proxymapd", t, c),
                find(rows, "postfix", t, c),
                find(rows, "echo", "-", c),
            ) else {
                continue;
            };
            let _ = writeln!(
                md,
                "| {t} | {c} | {:.2} | {:.2} | {:.2} | {:.2} |",
                ours.rps / pf.rps,
                ours.p99_us / pf.p99_us,
                ours.rps / echo.rps,
                ours.cpu_us_per_request / pf.cpu_us_per_request
            );
        }
    }
    if rows.iter().any(|r| r.server == "proxymapd-plugin") {
        md.push_str("\n## Sandboxed plugin against the native path\n\n| table | C | req/s plugin ÷ native | req/s plugin ÷ Postfix | p99 plugin ÷ native | CPU/req plugin ÷ native |\n|---|---:|---:|---:|---:|---:|\n");
    }
    for t in &tables {
        for &c in &cs {
            let (Some(plugin), Some(native), Some(pf)) = (
                find(rows, "proxymapd-plugin", t, c),
                find(rows, "proxymapd", t, c),
                find(rows, "postfix", t, c),
            ) else {
                continue;
            };
            let _ = writeln!(
                md,
                "| {t} | {c} | {:.2} | {:.2} | {:.2} | {:.2} |",
                plugin.rps / native.rps,
                plugin.rps / pf.rps,
                plugin.p99_us / native.p99_us,
                plugin.cpu_us_per_request / native.cpu_us_per_request
            );
        }
    }
    md
}

/// Headline sentence: the ratios at one concurrency level.
pub fn headline(rows: &[Row], c: usize) -> String {
    let mut parts = Vec::new();
    for t in super::harness::TABLES.map(|t| t.label) {
        if let (Some(ours), Some(pf), Some(echo)) = (
            find(rows, "proxymapd", t, c),
            find(rows, "postfix", t, c),
            find(rows, "echo", "-", c),
        ) {
            parts.push(format!(
                "{t}: {:.2}× Postfix req/s, p99 {:.2}× Postfix, {:.2}× the echo ceiling",
                ours.rps / pf.rps,
                ours.p99_us / pf.p99_us,
                ours.rps / echo.rps
            ));
        }
    }
    for t in super::harness::PLUGIN_TABLES {
        if let (Some(plugin), Some(native)) = (
            find(rows, "proxymapd-plugin", t, c),
            find(rows, "proxymapd", t, c),
        ) {
            parts.push(format!(
                "{t} through the sandboxed plugin: {:.2}× native req/s",
                plugin.rps / native.rps
            ));
        }
    }
    format!("At C = {c}: {}.", parts.join("; "))
}

/// Headline sentence for the proxywrite `btree:` table at each measured
/// concurrency level (empty without such rows).
pub fn write_headline(rows: &[Row]) -> String {
    let mut parts = Vec::new();
    for t in super::harness::WRITE_TABLES.map(|t| t.label) {
        for c in super::harness::WRITE_CONCURRENCY {
            if let (Some(ours), Some(pf)) =
                (find(rows, "proxymapd", t, c), find(rows, "postfix", t, c))
            {
                parts.push(format!(
                    "{t} at C = {c}: {:.0} req/s, {:.2}× Postfix, p99 {:.2}× Postfix's",
                    ours.rps,
                    ours.rps / pf.rps,
                    ours.p99_us / pf.p99_us
                ));
            }
        }
    }
    if parts.is_empty() {
        return String::new();
    }
    format!("Proxywrite, btree: — {}.", parts.join("; "))
}

/// Headline for the SQL tables: req/s and p99 against Postfix at each C,
/// and the connections each server held (empty without such rows).
pub fn sql_headline(rows: &[Row]) -> String {
    let mut parts = Vec::new();
    for t in super::harness::SQL_TABLES.map(|t| t.label) {
        let mut per_c = Vec::new();
        let mut cs: Vec<usize> = rows
            .iter()
            .filter(|r| r.table == t)
            .map(|r| r.concurrency)
            .collect();
        cs.sort_unstable();
        cs.dedup();
        for c in cs {
            if let (Some(ours), Some(pf)) =
                (find(rows, "proxymapd", t, c), find(rows, "postfix", t, c))
            {
                let held = match (ours.connections, pf.connections) {
                    (Some(o), Some(p)) => format!(", {o} vs {p} connections"),
                    _ => String::new(),
                };
                per_c.push(format!(
                    "C = {c}: {:.2}× req/s, p99 {:.0} vs {:.0} µs{held}",
                    ours.rps / pf.rps,
                    ours.p99_us,
                    pf.p99_us
                ));
            }
        }
        if !per_c.is_empty() {
            parts.push(format!("{t} — {}", per_c.join(", ")));
        }
    }
    if parts.is_empty() {
        return String::new();
    }
    format!("proxymapd ÷ Postfix: {}.", parts.join("; "))
}

const COLORS: [(&str, &str, &str); 14] = [
    ("postfix", "texthash", "#d62728"),
    ("postfix", "lmdb", "#ff7f0e"),
    ("postfix", "hash", "#e377c2"),
    ("postfix", "cdb", "#8c564b"),
    ("proxymapd", "texthash", "#1f77b4"),
    ("proxymapd", "lmdb", "#17becf"),
    ("proxymapd", "hash", "#9467bd"),
    ("proxymapd-plugin", "hash", "#bcbd22"),
    ("proxymapd", "cdb", "#2ca02c"),
    ("postfix", "regexp-500", "#c49c94"),
    ("proxymapd", "regexp-500", "#98df8a"),
    ("postfix", "cidr-10k", "#f7b6d2"),
    ("proxymapd", "cidr-10k", "#aec7e8"),
    ("echo", "-", "#7f7f7f"),
];

fn panel(svg: &mut String, rows: &[Row], x0: f64, title: &str, value: fn(&Row) -> f64) {
    let (w, h, left, top) = (420.0, 300.0, 60.0, 40.0);
    let mut cs: Vec<usize> = rows.iter().map(|r| r.concurrency).collect();
    cs.sort_unstable();
    cs.dedup();
    let max = rows.iter().map(value).fold(0.0, f64::max).max(1.0) * 1.1;
    let xpos = |c: usize| {
        let i = cs.iter().position(|&v| v == c).unwrap_or(0) as f64;
        x0 + left + i * (w - left - 20.0) / (cs.len().max(2) - 1) as f64
    };
    let ypos = |v: f64| top + (h - top - 40.0) * (1.0 - v / max);
    let _ = write!(
        svg,
        r#"<text x="{}" y="24" font-size="14" font-weight="bold">{title}</text>"#,
        x0 + left
    );
    let _ = write!(
        svg,
        r#"<line x1="{0}" y1="{1}" x2="{0}" y2="{2}" stroke="black"/><line x1="{0}" y1="{2}" x2="{3}" y2="{2}" stroke="black"/>"#,
        x0 + left,
        top,
        h - 40.0,
        x0 + w - 10.0
    );
    for i in 0..=4 {
        let v = max * i as f64 / 4.0;
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" font-size="10" text-anchor="end">{:.0}</text>"#,
            x0 + left - 4.0,
            ypos(v) + 3.0,
            v
        );
    }
    for &c in &cs {
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" font-size="10" text-anchor="middle">C={c}</text>"#,
            xpos(c),
            h - 25.0
        );
    }
    for (server, table, color) in COLORS {
        let mut pts: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| r.server == server && r.table == table)
            .map(|r| (xpos(r.concurrency), ypos(value(r))))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        if pts.is_empty() {
            continue;
        }
        let path: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
        for (x, y) in pts {
            let _ = write!(
                svg,
                r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{color}"/>"#
            );
        }
    }
}

/// The SVG plot: req/s (left) and p99 latency (right) against C.
pub fn svg(rows: &[Row]) -> String {
    let mut svg = String::from(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="860" height="356" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>"#,
    );
    panel(&mut svg, rows, 0.0, "requests/s", |r| r.rps);
    panel(&mut svg, rows, 430.0, "p99 latency (µs)", |r| r.p99_us);
    for (i, (server, table, color)) in COLORS.iter().enumerate() {
        let label = if *server == "echo" {
            "echo ceiling".to_string()
        } else {
            format!("{server} {table}")
        };
        let x = 10.0 + (i % 5) as f64 * 170.0;
        let y = 318.0 + (i / 5) as f64 * 16.0;
        let _ = write!(
            svg,
            r#"<rect x="{x}" y="{y}" width="12" height="12" fill="{color}"/><text x="{}" y="{}" font-size="11">{label}</text>"#,
            x + 16.0,
            y + 10.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(server: &str, table: &str, c: usize, rps: f64) -> Row {
        Row {
            server: server.into(),
            table: table.into(),
            concurrency: c,
            rps,
            p50_us: 10.0,
            p99_us: 100.0,
            p999_us: 200.0,
            cpu_us_per_request: 5.0,
            client_cpu_us_per_request: 6.0,
            peak_rss_mib: 3.0,
            errors: 0,
            requests: 10,
            connections: None,
        }
    }

    #[test]
    fn averages_and_ratios() {
        let rows = vec![
            row("postfix", "lmdb", 32, 100.0),
            row("postfix", "lmdb", 32, 300.0),
            row("proxymapd", "lmdb", 32, 400.0),
            row("echo", "-", 32, 800.0),
        ];
        let avg = average(&rows);
        assert_eq!(avg.len(), 3);
        assert_eq!(find(&avg, "postfix", "lmdb", 32).unwrap().rps, 200.0);
        let md = markdown(&avg, "header");
        assert!(
            md.contains("| lmdb | 32 | 2.00 | 1.00 | 0.50 | 1.00 |"),
            "{md}"
        );
        assert!(headline(&avg, 32).contains("2.00× Postfix req/s"));
        assert!(svg(&avg).contains("<polyline"));
    }
}
