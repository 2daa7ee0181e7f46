//! A command started inside a running firmware (`fwrun enter`, and the
//! `--ready-when exec:` probes). The child fwrun forks, into the run's
//! cgroup, goes through the start-up sequence: its world step joins the
//! init's user namespace and, with it, its mount and other namespaces (one
//! setns, so that it never holds the host's credentials in the firmware's
//! mounts), then its root and working directory, and chooses the init's
//! pid namespace for its children; it is confined as the init is; only
//! then is the command forked into the pid namespace, where the firmware
//! can see it, and exec'd.

use std::os::fd::{AsFd, OwnedFd, RawFd};

use anyhow::{anyhow, Result};

use crate::error::fail_with;
use crate::process::channel;
use crate::process::spawn;
use crate::process::startup::{self, Startup};
use crate::sys::errno_text;

/// A running init's namespaces that a command joins at once (its pid
/// namespace is chosen for the command's child afterwards).
pub const JOINED: libc::c_int = libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP;

/// The descriptors a joining command needs, opened by fwrun from the
/// init's /proc while it lived.
pub struct Running {
    /// A pidfd of the init.
    pub init: OwnedFd,
    pub root: OwnedFd,
    pub cwd: OwnedFd,
    /// Whether the init runs in a user namespace of its own.
    pub userns: bool,
}

/// Join the namespaces of the init behind `init` (a pidfd), its user
/// namespace first when it has one of its own (the kernel enters it
/// before the others, in the same call), then its root and working
/// directory (a working directory that cannot be entered is `/`), and
/// choose its pid namespace for this process's children.
fn join(running: &Running) -> Result<()> {
    let mut flags = JOINED;
    if running.userns {
        flags |= libc::CLONE_NEWUSER;
    }
    let init = running.init.as_fd();
    nix::sched::setns(init, nix::sched::CloneFlags::from_bits_retain(flags))
        .map_err(|e| anyhow!("joining the firmware's namespaces: {}", errno_text(e)))?;
    nix::unistd::fchdir(running.root.as_fd())
        .map_err(|e| anyhow!("entering the firmware's root: {}", errno_text(e)))?;
    nix::unistd::chroot(".")
        .map_err(|e| anyhow!("entering the firmware's root: {}", errno_text(e)))?;
    if nix::unistd::fchdir(running.cwd.as_fd()).is_err() {
        let _ = nix::unistd::chdir("/");
    }
    nix::sched::setns(init, nix::sched::CloneFlags::CLONE_NEWPID)
        .map_err(|e| anyhow!("joining the firmware's pid namespace: {}", errno_text(e)))
}

/// A command, started.
pub struct Command {
    pub pid: libc::pid_t,
    pub pidfd: OwnedFd,
    /// Its seccomp filter's notification descriptor, when it has one.
    pub listener: Option<OwnedFd>,
}

/// Start a command in `running`'s world, into the first of `cgroups` that
/// takes a process (a cgroup that passes controllers on takes none:
/// EBUSY), or fwrun's own when none is given, and wait until it has exec'd
/// (or failed to: its failure is the error).
pub fn spawn(running: &Running, cgroups: &[RawFd], s: &Startup) -> Result<Command> {
    let (ours, theirs) =
        channel::pair().map_err(|e| anyhow!("creating a socket pair: {}", errno_text(e)))?;
    let ours_here = &ours;
    let mut s = s.clone();
    s.fork_last = true;
    let s = &s;
    let mut tries = cgroups.iter().map(|c| Some(*c)).collect::<Vec<_>>();
    if tries.is_empty() {
        tries.push(None);
    }
    let mut forked = Err(nix::errno::Errno::EBUSY);
    for cgroup in tries {
        forked = spawn::fork_into(0, cgroup, || {
            ours_here.close_copy();
            // The child's own end, as a value of its own (this process's
            // copy closes with the exec).
            match theirs.try_clone() {
                Ok(chan) => startup::start(chan, s, |_| join(running)),
                Err(_) => std::process::abort(),
            }
        });
        if !matches!(forked, Err(nix::errno::Errno::EBUSY)) {
            break;
        }
    }
    drop(theirs);
    let joiner = forked.map_err(|e| anyhow!("starting the command (clone3): {}", errno_text(e)))?;
    let heard = ours
        .hear()
        .map_err(|e| anyhow!("hearing from the command: {}", errno_text(e)));
    // The joining child has told what it had to, and exited.
    spawn::reap(joiner.pid);
    let heard = heard?;
    match (heard.failure, heard.started) {
        (None, Some((pid, pidfd))) => Ok(Command {
            pid,
            pidfd,
            listener: heard.listener,
        }),
        (failure, started) => {
            if let Some((pid, _)) = started {
                spawn::reap(pid);
            }
            let f = failure.unwrap_or(crate::process::channel::Failure {
                code: crate::error::LAUNCHER_FAILED,
                message: "the command's start was cut short".into(),
            });
            Err(fail_with(f.code, f.message))
        }
    }
}
