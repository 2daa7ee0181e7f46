//! The `--ready-when exec:CMD` probe: `/bin/sh -c CMD` started inside the
//! running firmware by the supervisor itself, through the same start-up
//! sequence as the init and `fwrun enter` (process/join.rs): the init's
//! namespaces, root and working directory, its environment and its
//! confinement, in the run's cgroup. Its seccomp calls are answered as the
//! init's are; what it prints goes nowhere.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::time::Instant;

use anyhow::{Context, Result};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::confine::notify::Notifier;
use crate::firmware::exec::PATH;
use crate::process::confine::Confinement;
use crate::process::exec::Program;
use crate::process::join::{self, Running};
use crate::process::spawn;
use crate::process::startup::{Startup, Terminal};
use crate::sys::pidfd_signal;

/// How a run's probes are started: as its init was.
pub struct Prober {
    /// The init's environment.
    pub envp: Vec<CString>,
    pub confinement: Confinement,
    /// The run's cgroup (an open directory), when it has one.
    pub cgroup: Option<RawFd>,
    /// The devices of the host file systems bound into the firmware.
    pub host_devs: Vec<(u32, u32)>,
    /// Whether the init runs in a user namespace of its own.
    pub userns: bool,
}

/// A probe that runs.
pub struct Probe {
    pid: libc::pid_t,
    pidfd: OwnedFd,
    notifier: Option<Notifier>,
    pub since: Instant,
}

impl Prober {
    /// Start `cmd` inside the firmware whose init is `init` (host pid).
    pub fn start(&self, init: libc::pid_t, cmd: &str) -> Result<Probe> {
        let dir = |what: &str| -> Result<OwnedFd> {
            let path = format!("/proc/{init}/{what}");
            crate::sys::open_path(std::path::Path::new(&path), nix::fcntl::OFlag::O_DIRECTORY)
                .map_err(std::io::Error::from)
                .with_context(|| format!("opening the init's {what}"))
        };
        let running = Running {
            init: crate::sys::pidfd_open(init).context("opening the init")?,
            root: dir("root")?,
            cwd: dir("cwd")?,
            userns: self.userns,
        };
        let null = File::options()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open("/dev/null")?;
        let search = self
            .envp
            .iter()
            .find_map(|kv| kv.to_bytes().strip_prefix(b"PATH="))
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_else(|| PATH.to_string());
        let startup = Startup {
            terminal: Terminal {
                new_session: true,
                tty: None,
                stdin: Some(null.as_raw_fd()),
                stdout: Some(null.as_raw_fd()),
                stderr: Some(null.as_raw_fd()),
            },
            fork_last: true,
            confinement: self.confinement.clone(),
            program: Program::Command { search },
            as_pid2: false,
            argv: ["/bin/sh", "-c", cmd]
                .iter()
                .map(|a| CString::new(*a).unwrap_or_default())
                .collect(),
            envp: self.envp.clone(),
        };
        let started = join::spawn(&running, self.cgroup.as_slice(), &startup)?;
        let notifier = started
            .listener
            .map(|l| Notifier::new(l, init, self.host_devs.clone()));
        Ok(Probe {
            pid: started.pid,
            pidfd: started.pidfd,
            notifier,
            since: Instant::now(),
        })
    }
}

impl Probe {
    /// Its exit status, once it has ended (and then it is reaped).
    pub fn ended(&mut self) -> Option<i32> {
        match waitpid(Pid::from_raw(self.pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => Some(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => Some(128 + sig as i32),
            Ok(_) => None,
            Err(_) => Some(crate::error::LAUNCHER_FAILED),
        }
        .inspect(|_| self.pid = 0)
    }

    /// Its seccomp filter's descriptor, for the supervisor's poll.
    pub fn fd(&self) -> Option<RawFd> {
        self.notifier.as_ref().map(|n| n.fd())
    }

    /// Answer one call of its filter's.
    pub fn serve(&mut self) {
        if let Some(n) = self.notifier.as_mut() {
            n.serve();
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        if self.pid > 0 {
            let _ = pidfd_signal(&self.pidfd, libc::SIGKILL);
            spawn::reap(self.pid);
        }
    }
}
