//! Reading the process tree from `/proc`.

use std::fs;

/// One process as `/proc/PID/stat` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    /// Process id.
    pub pid: u32,
    /// Parent process id.
    pub ppid: u32,
    /// Short command name.
    pub comm: String,
    /// State letter (`R`, `S`, `Z`, …).
    pub state: char,
}

/// Reads one process, or `None` if it does not exist.
pub fn read(pid: u32) -> Option<Proc> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_owned();
    let mut rest = stat[close + 1..].split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some(Proc {
        pid,
        ppid,
        comm,
        state,
    })
}

/// Every process on the machine.
pub fn all() -> Vec<Proc> {
    fs::read_dir("/proc")
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .filter_map(read)
                .collect()
        })
        .unwrap_or_default()
}

/// All descendants of `root` (not `root` itself), parents before children.
pub fn descendants(root: u32) -> Vec<u32> {
    let procs = all();
    let mut out = vec![];
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for child in procs.iter().filter(|c| c.ppid == p) {
            out.push(child.pid);
            frontier.push(child.pid);
        }
    }
    out
}

/// Whether `pid` exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    read(pid).is_some_and(|p| p.state != 'Z' && p.state != 'X')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_its_own_child() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let me = std::process::id();
        assert!(descendants(me).contains(&child.id()));
        let p = read(child.id()).unwrap();
        assert_eq!(p.ppid, me);
        assert_eq!(p.comm, "sleep");
        assert!(is_alive(child.id()));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!is_alive(child.id()));
    }
}
