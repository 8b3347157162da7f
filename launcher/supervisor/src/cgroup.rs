//! Hard per-app resource limits with Linux control groups.
//!
//! Each app with limits runs, with every process it starts (the host and its WebKit
//! processes), in a cgroup of its own: the kernel then holds the whole tree to its
//! memory limit (and CPU share), where the PSS watchdog can only notice afterwards.
//!
//! Two layouts are understood:
//! - **cgroup v2** with a delegated subtree (a `systemd --user` service or scope with
//!   `Delegate=yes`, e.g. `systemd-run --user --scope -p Delegate=yes weft`): the shell
//!   moves itself into a `weft-shell` leaf of its own cgroup (the "no internal
//!   processes" rule), enables the memory and cpu controllers for its children, and
//!   makes one child per app with `memory.max`, `memory.swap.max = 0`,
//!   `memory.oom.group = 1` and `cpu.max`.
//! - **cgroup v1** memory and cpu hierarchies where the shell may create groups (as on
//!   RHEL 8 desktops run with the right delegation, or as root): `memory.limit_in_bytes`
//!   (and `memory.memsw.limit_in_bytes`), `cpu.cfs_quota_us`.
//!
//! Either way the kernel's OOM killer acts inside the app's group only; the supervisor
//! sees the OOM kill count rise and stops the rest of the app, whose restart policy
//! then decides. Without either, [`CgroupRoot::detect`] finds nothing and the PSS
//! watchdog enforces memory limits alone.
//!
//! Processes join their group before they exec (see `spawner`): nothing they start can
//! escape it.

use std::{
    ffi::CString,
    io,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
};

/// The period `cpu.max` and `cpu.cfs_quota_us` are expressed against, in µs.
const CPU_PERIOD_US: u64 = 100_000;

/// Which cgroup layout is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// The unified hierarchy.
    V2,
    /// The legacy per-controller hierarchies.
    V1,
}

impl Flavour {
    /// The name `weft ps` shows for this mechanism.
    pub fn mechanism(self) -> &'static str {
        match self {
            Flavour::V2 => "cgroup-v2",
            Flavour::V1 => "cgroup-v1",
        }
    }
}

/// Where the shell makes its apps' groups.
#[derive(Debug, Clone)]
pub struct CgroupRoot {
    flavour: Flavour,
    /// The parent of the apps' memory groups (for v2, of all their groups).
    memory: PathBuf,
    /// The parent of the apps' cpu groups (v1 only; v2 uses `memory`).
    cpu: Option<PathBuf>,
    /// Whether CPU limits can be applied.
    cpu_enabled: bool,
}

/// What one app is limited to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CgroupLimits {
    /// Memory of the whole tree, in bytes.
    pub memory_bytes: Option<u64>,
    /// CPU, in percent of one core.
    pub cpu_percent: Option<u32>,
}

/// One app's group (or, for v1, one group per hierarchy).
#[derive(Debug)]
pub struct AppCgroup {
    flavour: Flavour,
    dirs: Vec<PathBuf>,
    memory_dir: PathBuf,
}

impl CgroupRoot {
    /// Finds a cgroup layout this process may make groups in, and prepares it; `None`
    /// when there is none (the PSS watchdog then enforces memory limits alone).
    pub fn detect() -> Option<CgroupRoot> {
        let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        let found =
            Self::prepare_v2(&cgroups, &mounts).or_else(|| Self::prepare_v1(&cgroups, &mounts));
        match &found {
            Some(root) => tracing::info!(
                mechanism = root.flavour.mechanism(),
                dir = %root.memory.display(),
                cpu = root.cpu_enabled,
                "app limits are enforced with control groups"
            ),
            None => tracing::info!(
                "no control group this shell may manage (cgroup v2 needs a delegated subtree, \
                 e.g. `systemd-run --user --scope -p Delegate=yes weft`); memory limits are \
                 enforced by the PSS watchdog"
            ),
        }
        found
    }

    fn prepare_v2(cgroups: &str, mounts: &str) -> Option<CgroupRoot> {
        let own = cgroups.lines().find_map(|l| l.strip_prefix("0::"))?;
        let mount = mount_point(mounts, "cgroup2", None)?;
        let dir = join_cgroup(&mount, own);
        Self::prepare_v2_in(&dir, std::process::id())
    }

    /// Sets up `dir`, this process's own v2 cgroup, for app groups: moves `pid` into a
    /// leaf and enables the controllers for children.
    fn prepare_v2_in(dir: &Path, pid: u32) -> Option<CgroupRoot> {
        let controllers = std::fs::read_to_string(dir.join("cgroup.controllers")).ok()?;
        let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
        if !has("memory") {
            return None;
        }
        let leaf = dir.join("weft-shell");
        mkdir(&leaf).ok()?;
        std::fs::write(leaf.join("cgroup.procs"), pid.to_string()).ok()?;
        std::fs::write(dir.join("cgroup.subtree_control"), "+memory").ok()?;
        let cpu_enabled =
            has("cpu") && std::fs::write(dir.join("cgroup.subtree_control"), "+cpu").is_ok();
        Some(CgroupRoot {
            flavour: Flavour::V2,
            memory: dir.to_owned(),
            cpu: None,
            cpu_enabled,
        })
    }

    fn prepare_v1(cgroups: &str, mounts: &str) -> Option<CgroupRoot> {
        let own = |controller: &str| {
            cgroups.lines().find_map(|l| {
                let mut parts = l.splitn(3, ':');
                let (_, list, path) = (parts.next()?, parts.next()?, parts.next()?);
                list.split(',').any(|c| c == controller).then_some(path)
            })
        };
        let memory = join_cgroup(
            &mount_point(mounts, "cgroup", Some("memory"))?,
            own("memory")?,
        );
        remove_abandoned(&memory);
        let shell_dir = format!("weft-{}", std::process::id());
        let memory = memory.join(&shell_dir);
        mkdir(&memory).ok()?;
        if !memory.join("memory.limit_in_bytes").exists() {
            let _ = std::fs::remove_dir(&memory);
            return None;
        }
        let cpu = mount_point(mounts, "cgroup", Some("cpu"))
            .zip(own("cpu"))
            .map(|(mount, path)| {
                let parent = join_cgroup(&mount, path);
                remove_abandoned(&parent);
                parent.join(&shell_dir)
            })
            .filter(|dir| mkdir(dir).is_ok() && dir.join("cpu.cfs_quota_us").exists());
        Some(CgroupRoot {
            flavour: Flavour::V1,
            memory,
            cpu_enabled: cpu.is_some(),
            cpu,
        })
    }

    /// The layout in use.
    pub fn flavour(&self) -> Flavour {
        self.flavour
    }

    /// Whether CPU limits are applied.
    pub fn cpu_enabled(&self) -> bool {
        self.cpu_enabled
    }

    /// Makes the group `name` with `limits`.
    pub fn create(&self, name: &str, limits: CgroupLimits) -> io::Result<AppCgroup> {
        let memory_dir = self.memory.join(name);
        mkdir(&memory_dir)?;
        let mut group = AppCgroup {
            flavour: self.flavour,
            dirs: vec![memory_dir.clone()],
            memory_dir: memory_dir.clone(),
        };
        let applied = self.apply(&mut group, name, limits);
        if let Err(e) = applied {
            let _ = group.remove();
            return Err(e);
        }
        Ok(group)
    }

    fn apply(&self, group: &mut AppCgroup, name: &str, limits: CgroupLimits) -> io::Result<()> {
        let dir = group.memory_dir.clone();
        let quota = limits
            .cpu_percent
            .filter(|_| self.cpu_enabled)
            .map(|p| u64::from(p) * CPU_PERIOD_US / 100);
        match self.flavour {
            Flavour::V2 => {
                if let Some(bytes) = limits.memory_bytes {
                    write(&dir, "memory.max", &bytes.to_string())?;
                    write_if_present(&dir, "memory.swap.max", "0")?;
                    write(&dir, "memory.oom.group", "1")?;
                }
                if let Some(quota) = quota {
                    write(&dir, "cpu.max", &format!("{quota} {CPU_PERIOD_US}"))?;
                }
            }
            Flavour::V1 => {
                if let Some(bytes) = limits.memory_bytes {
                    write(&dir, "memory.limit_in_bytes", &bytes.to_string())?;
                    // Not in swap either, where the kernel allows saying so.
                    write_if_present(&dir, "memory.memsw.limit_in_bytes", &bytes.to_string())?;
                }
                if let (Some(quota), Some(cpu_root)) = (quota, &self.cpu) {
                    let cpu_dir = cpu_root.join(name);
                    mkdir(&cpu_dir)?;
                    group.dirs.push(cpu_dir.clone());
                    write(&cpu_dir, "cpu.cfs_period_us", &CPU_PERIOD_US.to_string())?;
                    write(&cpu_dir, "cpu.cfs_quota_us", &quota.to_string())?;
                }
            }
        }
        Ok(())
    }

    /// Removes the shell's own v1 groups (empty by then); v2 leaves the delegated
    /// cgroup as it was given, with the shell in its leaf.
    pub fn remove(&self) {
        if self.flavour == Flavour::V1 {
            for dir in [Some(&self.memory), self.cpu.as_ref()]
                .into_iter()
                .flatten()
            {
                let _ = std::fs::remove_dir(dir);
            }
        }
    }
}

impl AppCgroup {
    /// The `cgroup.procs` files a new process writes itself into before it execs.
    pub fn procs_files(&self) -> Vec<CString> {
        self.dirs
            .iter()
            .filter_map(|d| CString::new(d.join("cgroup.procs").as_os_str().as_bytes()).ok())
            .collect()
    }

    /// How many processes the kernel's OOM killer has killed in this group.
    pub fn oom_kills(&self) -> u64 {
        let (file, key) = match self.flavour {
            Flavour::V2 => ("memory.events", "oom_kill"),
            Flavour::V1 => ("memory.oom_control", "oom_kill"),
        };
        std::fs::read_to_string(self.memory_dir.join(file))
            .ok()
            .and_then(|text| {
                text.lines().find_map(|l| {
                    let (k, v) = l.split_once(' ')?;
                    (k == key).then(|| v.trim().parse().ok())?
                })
            })
            .unwrap_or(0)
    }

    /// Every process in the group.
    pub fn pids(&self) -> Vec<u32> {
        std::fs::read_to_string(self.memory_dir.join("cgroup.procs"))
            .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// Kills every process in the group.
    pub fn kill_all(&self) {
        if self.flavour == Flavour::V2 && write(&self.memory_dir, "cgroup.kill", "1").is_ok() {
            return;
        }
        for pid in self.pids() {
            // SAFETY: kill only sends a signal, to a process in this app's own group.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
        }
    }

    /// Removes the group; fails (EBUSY) while a process is still in it.
    pub fn remove(&self) -> io::Result<()> {
        for dir in self.dirs.iter().rev() {
            match std::fs::remove_dir(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Removes the v1 groups (`weft-<pid>`) of shells that are gone (killed outright, so
/// they could not clean up), with their apps' groups, emptied first.
fn remove_abandoned(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("weft-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let shell_dir = entry.path();
        if let Ok(apps) = std::fs::read_dir(&shell_dir) {
            for app in apps.flatten().filter(|a| a.path().is_dir()) {
                let group = AppCgroup {
                    flavour: Flavour::V1,
                    dirs: vec![app.path()],
                    memory_dir: app.path(),
                };
                group.kill_all();
                let _ = group.remove();
            }
        }
        if std::fs::remove_dir(&shell_dir).is_ok() {
            tracing::info!(
                "removed the control group {} of a shell that is gone",
                shell_dir.display()
            );
        }
    }
}

fn mkdir(dir: &Path) -> io::Result<()> {
    match std::fs::create_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}

fn write(dir: &Path, file: &str, value: &str) -> io::Result<()> {
    std::fs::write(dir.join(file), value).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("writing {value:?} to {}: {e}", dir.join(file).display()),
        )
    })
}

fn write_if_present(dir: &Path, file: &str, value: &str) -> io::Result<()> {
    if dir.join(file).exists() {
        write(dir, file, value)
    } else {
        Ok(())
    }
}

/// `mount` joined with a cgroup path from /proc/self/cgroup (which starts with `/`).
fn join_cgroup(mount: &Path, path: &str) -> PathBuf {
    mount.join(path.trim_start_matches('/'))
}

/// Where a cgroup filesystem of type `fstype` is mounted (for v1, the one carrying
/// `controller` among its super options), from /proc/self/mountinfo.
fn mount_point(mountinfo: &str, fstype: &str, controller: Option<&str>) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mut right = right.split_whitespace();
        let (ty, _source, options) = (right.next()?, right.next()?, right.next().unwrap_or(""));
        if ty != fstype {
            return None;
        }
        if let Some(c) = controller
            && !options.split(',').any(|o| o == c)
        {
            return None;
        }
        // The root within the filesystem must be `/` for the paths in /proc/self/cgroup
        // to apply under the mount point.
        let mut fields = left.split_whitespace();
        let root = fields.nth(3)?;
        let point = fields.next()?;
        (root == "/").then(|| PathBuf::from(point))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn mount_points_are_found_by_type_and_controller() {
        assert_eq!(
            mount_point(MOUNTINFO, "cgroup2", None),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(
            mount_point(MOUNTINFO, "cgroup", Some("memory")),
            Some(PathBuf::from("/sys/fs/cgroup/memory"))
        );
        assert_eq!(mount_point(MOUNTINFO, "cgroup", Some("pids")), None);
        let bind = "50 31 0:38 /sub /mnt - cgroup2 cgroup2 rw\n";
        assert_eq!(
            mount_point(bind, "cgroup2", None),
            None,
            "not the filesystem's root"
        );
    }

    /// A directory laid out as a delegated cgroup v2 subtree, written as the kernel
    /// would show it, to check the protocol of files the shell writes.
    fn fake_v2() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let own = dir.path().join("user.slice/weft.scope");
        std::fs::create_dir_all(&own).unwrap();
        std::fs::write(own.join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        (dir, own)
    }

    #[test]
    fn a_delegated_v2_subtree_gets_a_leaf_for_the_shell_and_controllers_for_apps() {
        let (_tmp, own) = fake_v2();
        let root = CgroupRoot::prepare_v2_in(&own, 4242).expect("usable");
        assert_eq!(root.flavour(), Flavour::V2);
        assert!(root.cpu_enabled());
        assert_eq!(
            std::fs::read_to_string(own.join("weft-shell/cgroup.procs")).unwrap(),
            "4242"
        );
        // The last write wins in a plain file; the kernel would have both enabled.
        assert_eq!(
            std::fs::read_to_string(own.join("cgroup.subtree_control")).unwrap(),
            "+cpu"
        );

        // Apps' groups: the kernel would create these files with the directory.
        let app = own.join("chart-1.0");
        std::fs::create_dir(&app).unwrap();
        for f in [
            "memory.max",
            "memory.swap.max",
            "memory.oom.group",
            "cpu.max",
            "cgroup.procs",
        ] {
            std::fs::write(app.join(f), "").unwrap();
        }
        let group = root
            .create(
                "chart-1.0",
                CgroupLimits {
                    memory_bytes: Some(256 << 20),
                    cpu_percent: Some(50),
                },
            )
            .unwrap();
        let read = |f: &str| std::fs::read_to_string(app.join(f)).unwrap();
        assert_eq!(read("memory.max"), (256u64 << 20).to_string());
        assert_eq!(read("memory.swap.max"), "0");
        assert_eq!(read("memory.oom.group"), "1");
        assert_eq!(read("cpu.max"), "50000 100000");
        assert_eq!(
            group.procs_files(),
            vec![CString::new(app.join("cgroup.procs").as_os_str().as_bytes()).unwrap()]
        );
        std::fs::write(
            app.join("memory.events"),
            "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\n",
        )
        .unwrap();
        assert_eq!(group.oom_kills(), 1);
        std::fs::write(app.join("cgroup.procs"), "17\n18\n").unwrap();
        assert_eq!(group.pids(), vec![17, 18]);
    }

    #[test]
    fn a_v2_cgroup_without_the_memory_controller_is_not_used() {
        let (_tmp, own) = fake_v2();
        std::fs::write(own.join("cgroup.controllers"), "cpu pids\n").unwrap();
        assert!(CgroupRoot::prepare_v2_in(&own, 1).is_none());
    }

    #[test]
    fn v1_limits_are_written_where_the_kernel_expects_them() {
        let dir = tempfile::tempdir().unwrap();
        let memory = dir.path().join("memory/weft-1");
        let cpu = dir.path().join("cpu/weft-1");
        for d in [&memory, &cpu] {
            std::fs::create_dir_all(d.join("viewer-2.0")).unwrap();
        }
        let root = CgroupRoot {
            flavour: Flavour::V1,
            memory: memory.clone(),
            cpu: Some(cpu.clone()),
            cpu_enabled: true,
        };
        let group = root
            .create(
                "viewer-2.0",
                CgroupLimits {
                    memory_bytes: Some(1 << 30),
                    cpu_percent: Some(150),
                },
            )
            .unwrap();
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap();
        assert_eq!(
            read(memory.join("viewer-2.0/memory.limit_in_bytes")),
            (1u64 << 30).to_string()
        );
        assert_eq!(read(cpu.join("viewer-2.0/cpu.cfs_quota_us")), "150000");
        assert_eq!(read(cpu.join("viewer-2.0/cpu.cfs_period_us")), "100000");
        assert_eq!(
            group.procs_files().len(),
            2,
            "a process joins both hierarchies"
        );
        std::fs::write(
            memory.join("viewer-2.0/memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
        )
        .unwrap();
        assert_eq!(group.oom_kills(), 3);
    }
}
