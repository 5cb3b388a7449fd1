//! CPU time and memory of server processes, read from /proc: by pid, or by
//! command name (Postfix runs several `proxymap` processes under master).

use std::collections::BTreeMap;

/// Which processes to account for.
#[derive(Debug, Clone)]
pub enum Target {
    /// These pids.
    Pids(Vec<u32>),
    /// Every process whose command name (comm) is this.
    Comm(String),
}

/// CPU ticks and peak RSS of the target processes at one moment.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// utime+stime in clock ticks, per pid.
    pub ticks: BTreeMap<u32, u64>,
    /// Peak resident set (VmHWM) in KiB, summed over the processes.
    pub peak_rss_kib: u64,
    /// Current resident set (VmRSS) in KiB, summed.
    pub rss_kib: u64,
}

fn pids(target: &Target) -> Vec<u32> {
    match target {
        Target::Pids(p) => p.clone(),
        Target::Comm(name) => std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name)
            })
            .collect(),
    }
}

fn ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Sample the target now.
pub fn sample(target: &Target) -> Sample {
    let mut out = Sample::default();
    for pid in pids(target) {
        if let Some(t) = ticks(pid) {
            out.ticks.insert(pid, t);
            out.peak_rss_kib += status_kib(pid, "VmHWM:");
            out.rss_kib += status_kib(pid, "VmRSS:");
        }
    }
    out
}

/// CPU seconds spent between two samples (processes that appeared count in
/// full; processes that vanished are lost).
pub fn cpu_seconds(before: &Sample, after: &Sample) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let ticks: u64 = after
        .ticks
        .iter()
        .map(|(pid, t)| t.saturating_sub(*before.ticks.get(pid).unwrap_or(&0)))
        .sum();
    ticks as f64 / hz
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_this_process() {
        let me = Target::Pids(vec![std::process::id()]);
        let a = sample(&me);
        let mut x = 0u64;
        let start = std::time::Instant::now();
        while start.elapsed().as_millis() < 50 {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        let b = sample(&me);
        assert!(b.peak_rss_kib > 0 && b.rss_kib > 0);
        assert!(cpu_seconds(&a, &b) >= 0.0);
        assert!(x > 0);
    }
}
