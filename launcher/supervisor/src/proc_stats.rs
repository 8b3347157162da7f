//! What an app's process tree uses, read from `/proc`: its host plus the WebKit
//! processes below it.
//!
//! CPU is the sum of user and system time of every process in the tree (in clock
//! ticks; a rate needs two samples). Memory is the sum of PSS (proportional set size:
//! shared pages divided among their users), the figure that adds up across processes,
//! from `smaps_rollup`. Processes that vanish while being read are skipped.

use std::{collections::HashMap, fs};

/// The processes on the machine, by parent.
pub(crate) struct ProcessTable {
    children: HashMap<u32, Vec<u32>>,
    cpu_ticks: HashMap<u32, u64>,
}

impl ProcessTable {
    /// Reads every process's parent and CPU time.
    pub(crate) fn read() -> ProcessTable {
        let mut table = ProcessTable {
            children: HashMap::new(),
            cpu_ticks: HashMap::new(),
        };
        let Ok(entries) = fs::read_dir("/proc") else {
            return table;
        };
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            if let Some((ppid, ticks)) = fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| parse_stat(&s))
            {
                table.children.entry(ppid).or_default().push(pid);
                table.cpu_ticks.insert(pid, ticks);
            }
        }
        table
    }

    /// `root` and every process below it that is still there.
    pub(crate) fn tree(&self, root: u32) -> Vec<u32> {
        let mut out = Vec::new();
        let mut stack = vec![root];
        while let Some(pid) = stack.pop() {
            if self.cpu_ticks.contains_key(&pid) {
                out.push(pid);
            }
            if let Some(children) = self.children.get(&pid) {
                stack.extend(children);
            }
        }
        out
    }

    /// CPU time of `pids`, in clock ticks.
    pub(crate) fn cpu_ticks(&self, pids: &[u32]) -> u64 {
        pids.iter().filter_map(|p| self.cpu_ticks.get(p)).sum()
    }
}

/// PSS of `pids` in KiB.
pub(crate) fn pss_kb(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| fs::read_to_string(format!("/proc/{p}/smaps_rollup")).ok())
        .filter_map(|s| parse_pss_kb(&s))
        .sum()
}

/// Clock ticks per second, as `/proc/PID/stat` counts them.
pub(crate) fn ticks_per_second() -> u64 {
    // SAFETY: sysconf reads a constant of the running system.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|t| *t > 0).unwrap_or(100)
}

/// Parent pid and user + system time from `/proc/PID/stat`. The command name (field 2)
/// is in parentheses and may itself contain spaces and parentheses, so fields are
/// counted from the last `)`.
fn parse_stat(stat: &str) -> Option<(u32, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(3) ppid(4) … utime(14) stime(15); index 0 here is field 3.
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

/// The `Pss:` line of `smaps_rollup`, in KiB.
fn parse_pss_kb(rollup: &str) -> Option<u64> {
    rollup
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_stat_line_whatever_the_command_name() {
        let line = "4242 (Web (Content) x) S 17 4242 4242 0 -1 4194560 1 0 0 0 \
                    123 45 0 0 20 0 3 0 100 1000 200";
        assert_eq!(parse_stat(line), Some((17, 168)));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S"), None);
    }

    #[test]
    fn reads_pss_from_smaps_rollup() {
        let text = "55f2-7ffd ---p 00000000 00:00 0  [rollup]\n\
                    Rss:                1716 kB\n\
                    Pss:                 364 kB\n\
                    Pss_Dirty:           116 kB\n";
        assert_eq!(parse_pss_kb(text), Some(364));
        assert_eq!(parse_pss_kb("Rss: 1 kB"), None);
    }

    #[test]
    fn finds_this_process_and_a_child_with_their_cpu_and_memory() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let me = std::process::id();
        let table = ProcessTable::read();
        let tree = table.tree(me);
        assert!(tree.contains(&me) && tree.contains(&child.id()), "{tree:?}");
        assert!(table.cpu_ticks(&tree) >= table.cpu_ticks(&[me]));
        assert!(pss_kb(&[me]) > 0);
        // Reading /proc costs CPU time: it shows up within a few readings.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while ProcessTable::read().cpu_ticks(&[me]) == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "no CPU time ever counted"
            );
        }
        assert!(table.tree(u32::MAX).is_empty());
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
