//! What Linux's `/proc` tells about a process and the machine: CPU time, memory,
//! load.

use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// Clock ticks per second of the times in `/proc/<pid>/stat` (`getconf CLK_TCK`;
/// 100 on every common Linux build, used when `getconf` is missing).
pub fn clock_ticks() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|t| *t > 0)
            .unwrap_or(100)
    })
}

fn ticks_to_duration(ticks: u64) -> Duration {
    let hz = clock_ticks();
    Duration::from_secs(ticks / hz) + Duration::from_nanos((ticks % hz) * 1_000_000_000 / hz)
}

/// The fields of `/proc/<pid>/stat` after the command name, which may itself hold
/// spaces and parentheses; index 0 is field 3 (`state`) of proc(5).
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().collect())
}

/// CPU time of process `pid` so far, user plus system, over all its threads
/// (`utime + stime` of `/proc/<pid>/stat`).
pub fn cpu_time(pid: u32) -> Result<Duration, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    cpu_ticks(&stat, 11)
        .map(ticks_to_duration)
        .ok_or_else(|| format!("/proc/{pid}/stat: unexpected format"))
}

/// CPU time of the children of this process that have been waited for, user plus
/// system (`cutime + cstime` of `/proc/self/stat`). Its growth across the wait for
/// one child is that child's CPU time.
pub fn reaped_children_cpu_time() -> Result<Duration, String> {
    let stat =
        std::fs::read_to_string("/proc/self/stat").map_err(|e| format!("/proc/self/stat: {e}"))?;
    cpu_ticks(&stat, 13)
        .map(ticks_to_duration)
        .ok_or_else(|| "/proc/self/stat: unexpected format".into())
}

/// The sum of the two tick counts at `first` and `first + 1` of the stat fields.
fn cpu_ticks(stat: &str, first: usize) -> Option<u64> {
    let fields = stat_fields(stat)?;
    let user: u64 = fields.get(first)?.parse().ok()?;
    let system: u64 = fields.get(first + 1)?.parse().ok()?;
    Some(user + system)
}

/// Resident memory of a process, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Memory {
    /// Resident now (`VmRSS`).
    pub rss_kib: u64,
    /// The most ever resident (`VmHWM`).
    pub peak_kib: u64,
}

impl std::ops::Add for Memory {
    type Output = Memory;

    fn add(self, other: Memory) -> Memory {
        Memory { rss_kib: self.rss_kib + other.rss_kib, peak_kib: self.peak_kib + other.peak_kib }
    }
}

/// The resident memory of process `pid`, from `/proc/<pid>/status`.
pub fn memory(pid: u32) -> Result<Memory, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    parse_memory(&status).ok_or_else(|| format!("/proc/{pid}/status: no VmRSS or VmHWM"))
}

fn parse_memory(status: &str) -> Option<Memory> {
    let field = |name: &str| {
        status.lines().find_map(|l| {
            l.strip_prefix(name)?.strip_prefix(':')?.trim().strip_suffix("kB")?.trim().parse().ok()
        })
    };
    Some(Memory { rss_kib: field("VmRSS")?, peak_kib: field("VmHWM")? })
}

/// The 1-minute load average (`/proc/loadavg`).
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

/// Busy and total CPU time of the whole machine so far, over every core, in clock
/// ticks (the `cpu` line of `/proc/stat`; idle and iowait count as not busy).
pub fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    parse_machine_ticks(stat.lines().next()?)
}

fn parse_machine_ticks(line: &str) -> Option<(u64, u64)> {
    let mut words = line.split_whitespace();
    if words.next()? != "cpu" {
        return None;
    }
    // user nice system idle iowait irq softirq steal (guest time is within user).
    let values: Vec<u64> = words.take(8).map(|w| w.parse().ok()).collect::<Option<_>>()?;
    let total: u64 = values.iter().sum();
    let idle = values.get(3)? + values.get(4)?;
    Some((total - idle, total))
}

/// The share of the machine's CPU time that was busy between two
/// [`machine_ticks`] readings, from 0 to 1.
pub fn busy_share(before: (u64, u64), after: (u64, u64)) -> Option<f64> {
    let busy = after.0.checked_sub(before.0)?;
    let total = after.1.checked_sub(before.1)?;
    (total > 0).then(|| busy as f64 / total as f64)
}

/// The number of CPUs this process may run on.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_a_strange_name_parses() {
        let stat =
            "1234 (a (b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 7 3 20 0 2 0 100 0 0";
        assert_eq!(cpu_ticks(stat, 11), Some(300));
        assert_eq!(cpu_ticks(stat, 13), Some(10));
    }

    #[test]
    fn status_memory_parses() {
        let status = "Name:\tx\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(parse_memory(status), Some(Memory { rss_kib: 10240, peak_kib: 20480 }));
    }

    #[test]
    fn machine_line_parses() {
        assert_eq!(parse_machine_ticks("cpu  10 0 5 80 5 0 0 0 0 0"), Some((15, 100)));
        assert_eq!(busy_share((15, 100), (65, 200)), Some(0.5));
    }

    #[test]
    fn own_process_is_readable() -> Result<(), String> {
        let me = std::process::id();
        let memory = memory(me)?;
        assert!(memory.rss_kib > 0 && memory.peak_kib >= memory.rss_kib);
        cpu_time(me)?;
        reaped_children_cpu_time()?;
        Ok(())
    }
}
