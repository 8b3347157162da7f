//! Spawning app hosts from one long-lived thread.
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that spawned a child exits, not the
//! process. Spawning from a pool thread that may retire would kill apps at random, so
//! every spawn goes through the one thread started here, which lives as long as the
//! supervisor. After setting the signal the child checks that its parent is still the
//! shell; if the shell died in between, the child exits at once.
//!
//! Each child gets its launch spec on file descriptor 3 (a pipe the shell has already
//! filled and closed its end of), runs in its own process group (so a Ctrl-C in the
//! shell's terminal reaches the shell, which then stops apps gracefully), and is reaped
//! by a waiter thread that reports how it ended.

use std::{
    ffi::CString,
    fmt,
    io::{self, Write},
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
        unix::process::{CommandExt, ExitStatusExt},
    },
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
};

/// The file descriptor on which an app host finds its launch spec.
pub const LAUNCH_FD: RawFd = 3;

/// How a child ended.
#[derive(Debug, Clone, Copy)]
pub struct Exit(ExitStatus);

impl Exit {
    /// Whether it exited with status 0.
    pub fn success(&self) -> bool {
        self.0.success()
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0.code(), self.0.signal()) {
            (Some(code), _) => write!(f, "exit code {code}"),
            (None, Some(sig)) => write!(f, "killed by signal {sig}"),
            (None, None) => write!(f, "{}", self.0),
        }
    }
}

type OnExit = Box<dyn FnOnce(Exit) + Send>;

struct Request {
    bin: PathBuf,
    spec: Vec<u8>,
    output: Option<io::PipeWriter>,
    cgroup_procs: Vec<CString>,
    on_exit: OnExit,
    reply: mpsc::Sender<io::Result<ProcessHandle>>,
}

/// A started process: its pid, and a pidfd where the kernel has them, so that signals
/// can never reach another process that reused the pid after this one was reaped.
pub struct ProcessHandle {
    pid: u32,
    pidfd: Option<OwnedFd>,
}

impl ProcessHandle {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends `sig`; a process that has already exited is left alone.
    pub fn signal(&self, sig: libc::c_int) {
        match &self.pidfd {
            // SAFETY: pidfd_send_signal reads only its integer arguments; the info pointer
            // may be null. The fd is owned by self and open.
            Some(fd) => unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    fd.as_raw_fd(),
                    sig,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                );
            },
            // SAFETY: kill has no memory-safety preconditions.
            None => unsafe {
                libc::kill(self.pid as libc::pid_t, sig);
            },
        }
    }
}

/// The handle to the spawning thread.
pub struct Spawner {
    requests: mpsc::Sender<Request>,
}

impl Spawner {
    /// Starts the spawning thread.
    pub fn start() -> Self {
        let (requests, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("weft-spawner".into())
            .spawn(move || {
                for req in rx {
                    let result = spawn(&req.bin, &req.spec, req.output, req.cgroup_procs).map(
                        |(child, handle)| {
                            wait_in_background(child, req.on_exit);
                            handle
                        },
                    );
                    let _ = req.reply.send(result);
                }
            })
            .expect("cannot start the spawner thread");
        Self { requests }
    }

    /// Starts `bin` with `spec` on [`LAUNCH_FD`], its stdout and stderr on `output` if
    /// given (else the shell's), in the cgroups whose `cgroup.procs` files are listed
    /// (joined before it execs, so everything it starts is inside too); `on_exit` runs
    /// once it has exited.
    pub fn spawn(
        &self,
        bin: PathBuf,
        spec: Vec<u8>,
        output: Option<io::PipeWriter>,
        cgroup_procs: Vec<CString>,
        on_exit: OnExit,
    ) -> io::Result<ProcessHandle> {
        let (reply, answer) = mpsc::channel();
        self.requests
            .send(Request {
                bin,
                spec,
                output,
                cgroup_procs,
                on_exit,
                reply,
            })
            .map_err(|_| io::Error::other("the spawner thread has stopped"))?;
        answer
            .recv()
            .map_err(|_| io::Error::other("the spawner thread has stopped"))?
    }
}

fn spawn(
    bin: &PathBuf,
    spec: &[u8],
    output: Option<io::PipeWriter>,
    cgroup_procs: Vec<CString>,
) -> io::Result<(Child, ProcessHandle)> {
    let (reader, mut writer) = io::pipe()?;
    // The pipe holds 64 KiB without a reader; specs are far smaller, and the limit is
    // checked rather than risking a deadlock.
    if spec.len() > 60 * 1024 {
        return Err(io::Error::other(
            "the launch spec is too large for the pipe",
        ));
    }
    writer.write_all(spec)?;
    drop(writer);
    let reader = OwnedFd::from(reader);
    let reader_fd = reader.as_raw_fd();
    // SAFETY: getpid has no preconditions.
    let shell_pid = unsafe { libc::getpid() };

    let mut cmd = Command::new(bin);
    cmd.arg("--launch-fd")
        .arg(LAUNCH_FD.to_string())
        .stdin(Stdio::null())
        .process_group(0);
    if let Some(output) = output {
        cmd.stdout(output.try_clone()?).stderr(output);
    }
    if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none() {
        // Without a session bus, GTK would autolaunch a D-Bus daemon from the first app:
        // in that app's process tree and control group, so that stopping the app would
        // take the bus from every other app. Apps go without one instead.
        cmd.env("DBUS_SESSION_BUS_ADDRESS", "disabled:");
    }
    if std::env::var_os("WAYLAND_DISPLAY").is_some() {
        // Window positions need X11: run through XWayland so bounds are honoured.
        cmd.env("GDK_BACKEND", "x11");
    }
    // SAFETY: the closure runs in the forked child before exec and calls only
    // async-signal-safe functions (open, write, close, dup2, fcntl, prctl, getppid,
    // _exit) on values moved into it (the paths were made before the fork); it
    // allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            for procs in &cgroup_procs {
                // Writing 0 moves the writing process itself.
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                let written = libc::write(fd, b"0".as_ptr().cast(), 1);
                libc::close(fd);
                if written != 1 {
                    return Err(io::Error::last_os_error());
                }
            }
            if reader_fd == LAUNCH_FD {
                let flags = libc::fcntl(LAUNCH_FD, libc::F_GETFD);
                if flags < 0 || libc::fcntl(LAUNCH_FD, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0
                {
                    return Err(io::Error::last_os_error());
                }
            } else if libc::dup2(reader_fd, LAUNCH_FD) < 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) < 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() != shell_pid {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    drop(reader);
    let pid = child.id();
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1. The child
    // cannot have been reaped yet: only its waiter thread, not started yet, waits on it.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    let pidfd = (raw >= 0).then(|| {
        // SAFETY: a non-negative return is a new fd that nothing else owns.
        unsafe { OwnedFd::from_raw_fd(raw as RawFd) }
    });
    Ok((child, ProcessHandle { pid, pidfd }))
}

fn wait_in_background(mut child: Child, on_exit: OnExit) {
    std::thread::Builder::new()
        .name(format!("weft-wait-{}", child.id()))
        .spawn(move || match child.wait() {
            Ok(status) => on_exit(Exit(status)),
            Err(e) => tracing::error!("waiting for app process {} failed: {e}", child.id()),
        })
        .expect("cannot start a waiter thread");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// The spec arrives on fd 3 and nowhere in the environment.
    /// Tests that write a script and then run it take turns: a fork in another test
    /// while a script is open for writing would make its exec fail with ETXTBSY.
    fn serial() -> std::sync::MutexGuard<'static, ()> {
        static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
        LOCK.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn executable(text: &str) -> tempfile::TempPath {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        std::fs::set_permissions(
            file.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        file.into_temp_path()
    }

    #[test]
    fn spec_arrives_on_fd_3() {
        let _serial = serial();
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("child.sh");
        let out = dir.path().join("out");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\n[ \"$1\" = --launch-fd ] || exit 9\ncat <&3 > {}\nenv >> {}\necho to-stdout\necho to-stderr >&2\n",
                out.display(),
                out.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let spawner = Spawner::start();
        let (tx, rx) = mpsc::channel();
        let (mut output, writer) = io::pipe().unwrap();
        spawner
            .spawn(
                script,
                b"SECRET-SPEC\n".to_vec(),
                Some(writer),
                vec![],
                Box::new(move |exit| tx.send(exit.success()).unwrap()),
            )
            .unwrap();
        assert!(rx.recv_timeout(Duration::from_secs(10)).unwrap());
        // Both streams reach the pipe, which ends when the child has closed it.
        let mut printed = String::new();
        io::Read::read_to_string(&mut output, &mut printed).unwrap();
        assert_eq!(printed, "to-stdout\nto-stderr\n");
        let text = std::fs::read_to_string(out).unwrap();
        assert!(text.starts_with("SECRET-SPEC\n"), "{text}");
        assert_eq!(text.matches("SECRET-SPEC").count(), 1);
    }

    #[test]
    fn a_failing_child_reports_its_exit_code() {
        let _serial = serial();
        let script = executable("#!/bin/sh\nexit 7\n");
        let spawner = Spawner::start();
        let (tx, rx) = mpsc::channel();
        spawner
            .spawn(
                script.to_path_buf(),
                vec![],
                None,
                vec![],
                Box::new(move |exit| tx.send((exit.success(), exit.to_string())).unwrap()),
            )
            .unwrap();
        let (ok, text) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(!ok);
        assert_eq!(text, "exit code 7");
    }

    #[test]
    fn a_child_joins_its_cgroups_before_it_runs_and_cannot_start_outside_them() {
        let _serial = serial();
        let dir = tempfile::tempdir().unwrap();
        // Stand-ins for cgroup.procs files: the child writes "0" (itself) to each.
        let procs: Vec<_> = ["memory", "cpu"]
            .iter()
            .map(|c| {
                let p = dir.path().join(format!("{c}.procs"));
                std::fs::write(&p, "").unwrap();
                p
            })
            .collect();
        let c = |p: &std::path::Path| CString::new(p.to_str().unwrap()).unwrap();
        let script = executable("#!/bin/sh\nexit 0\n");
        let spawner = Spawner::start();
        let (tx, rx) = mpsc::channel();
        spawner
            .spawn(
                script.to_path_buf(),
                vec![],
                None,
                procs.iter().map(|p| c(p)).collect(),
                Box::new(move |exit| tx.send(exit.success()).unwrap()),
            )
            .unwrap();
        assert!(rx.recv_timeout(Duration::from_secs(10)).unwrap());
        for p in &procs {
            assert_eq!(std::fs::read_to_string(p).unwrap(), "0", "{}", p.display());
        }
        // A group it cannot join: it is not started at all.
        let missing = c(&dir.path().join("gone/cgroup.procs"));
        let err = spawner
            .spawn(
                script.to_path_buf(),
                vec![],
                None,
                vec![missing],
                Box::new(|_| {}),
            )
            .err()
            .expect("a child that cannot join its group must not start");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn a_missing_binary_is_an_error() {
        let spawner = Spawner::start();
        let err = spawner
            .spawn(
                "/nonexistent/weft-app".into(),
                vec![],
                None,
                vec![],
                Box::new(|_| {}),
            )
            .err()
            .expect("spawning a missing binary must fail");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn a_killed_child_is_reported_as_signalled() {
        let _serial = serial();
        let script = executable("#!/bin/sh\nexec sleep 30\n");
        let spawner = Spawner::start();
        let (tx, rx) = mpsc::channel();
        let process = spawner
            .spawn(
                script.to_path_buf(),
                vec![],
                None,
                vec![],
                Box::new(move |exit| tx.send((exit.success(), exit.to_string())).unwrap()),
            )
            .unwrap();
        let start = Instant::now();
        process.signal(libc::SIGKILL);
        let (ok, text) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(!ok);
        assert_eq!(text, "killed by signal 9");
        assert!(start.elapsed() < Duration::from_secs(10));
    }
}
