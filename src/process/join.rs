//! A command started inside a running firmware (`fwrun enter`, and the
//! `--ready-when exec:` probes): forked into the init's pid namespace and
//! the run's cgroup, it joins the init's other namespaces, its root and
//! working directory as the world step of the start-up sequence, and is
//! confined as the init is.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};

use anyhow::{anyhow, Context, Result};

use crate::error::fail_with;
use crate::process::channel;
use crate::process::spawn;
use crate::process::startup::{self, Startup};
use crate::sys::errno_text;

/// A running init's namespaces that a command joins (besides its pid
/// namespace, which the command's parent joins for its children).
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
}

/// Join the namespaces of the init behind `init` (a pidfd), then its root
/// and working directory (a working directory that cannot be entered is
/// `/`).
fn join(init: BorrowedFd, root: BorrowedFd, cwd: BorrowedFd) -> Result<()> {
    nix::sched::setns(init, nix::sched::CloneFlags::from_bits_retain(JOINED))
        .map_err(|e| anyhow!("joining the firmware's namespaces: {}", errno_text(e)))?;
    nix::unistd::fchdir(root)
        .map_err(|e| anyhow!("entering the firmware's root: {}", errno_text(e)))?;
    nix::unistd::chroot(".")
        .map_err(|e| anyhow!("entering the firmware's root: {}", errno_text(e)))?;
    if nix::unistd::fchdir(cwd).is_err() {
        let _ = nix::unistd::chdir("/");
    }
    Ok(())
}

/// A command, started.
pub struct Command {
    pub pid: libc::pid_t,
    pub pidfd: OwnedFd,
    /// Its seccomp filter's notification descriptor, when it has one.
    pub listener: Option<OwnedFd>,
}

/// Start a command in `running`'s world, into `cgroup` when given, and
/// wait until it has exec'd (or failed to: its failure is the error).
pub fn spawn(running: &Running, cgroup: Option<RawFd>, s: &Startup) -> Result<Command> {
    let (ours, theirs) =
        channel::pair().map_err(|e| anyhow!("creating a socket pair: {}", errno_text(e)))?;
    let own = std::fs::File::open("/proc/self/ns/pid").context("opening fwrun's pid namespace")?;
    // Only this process's children go to the firmware's pid namespace.
    nix::sched::setns(running.init.as_fd(), nix::sched::CloneFlags::CLONE_NEWPID)
        .map_err(|e| anyhow!("joining the firmware's pid namespace: {}", errno_text(e)))?;
    let ours_here = &ours;
    let forked = spawn::fork_into(0, cgroup, move || {
        ours_here.close_copy();
        startup::start(theirs, s, || {
            join(
                running.init.as_fd(),
                running.root.as_fd(),
                running.cwd.as_fd(),
            )
        })
    });
    // Back to fwrun's own pid namespace for any later child.
    let _ = nix::sched::setns(own, nix::sched::CloneFlags::CLONE_NEWPID);
    let forked = forked.map_err(|e| anyhow!("starting the command (clone3): {}", errno_text(e)))?;
    let heard = ours
        .hear()
        .map_err(|e| anyhow!("hearing from the command: {}", errno_text(e)))?;
    match heard.failure {
        None => Ok(Command {
            pid: forked.pid,
            pidfd: forked.pidfd,
            listener: heard.listener,
        }),
        Some(f) => {
            spawn::reap(forked.pid);
            Err(fail_with(f.code, f.message))
        }
    }
}
