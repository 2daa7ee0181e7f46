//! The firmware's init process, seen from the launcher: what it is given
//! (spec.rs), the world fwrun builds for it and it joins (setup.rs,
//! rootfs.rs),
//! the defaults chosen for it from what the firmware holds (defaults.rs),
//! the init found in the firmware before the clone (exec.rs); and here, its
//! clone: the child goes through the start-up sequence of process/ and
//! fwrun waits until it has exec'd the init or said why it could not.

pub mod defaults;
pub mod exec;
pub mod rootfs;
pub mod setup;
pub mod spec;

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use anyhow::{anyhow, Context, Result};

use crate::error::fail_with;
use crate::firmware::spec::ChildSpec;
use crate::process::channel::{self, Channel, Heard};
use crate::process::{spawn, startup};
use crate::sys::{self, errno_text};

/// A started firmware. Dropped before it was reaped (a later setup step
/// failed), it is killed and reaped.
pub struct Started {
    pub pid: libc::pid_t,
    pub pidfd: OwnedFd,
    /// Set once the init has been waited for.
    pub reaped: bool,
    /// The seccomp filter's notification descriptor, when it has one.
    pub listener: Option<OwnedFd>,
    /// fwrun's ends of its kernel log.
    pub kernel_log: Option<rootfs::KernelLog>,
}

impl Drop for Started {
    fn drop(&mut self) {
        if !self.reaped {
            // SIGKILL of the namespace's init ends every process in it.
            let _ = sys::pidfd_signal(&self.pidfd, libc::SIGKILL);
            spawn::reap(self.pid);
        }
    }
}

/// A child cloned into its namespaces, its root built, that waits before
/// its exec for the launcher to give it that root (`release`), once its
/// network is made. Dropped, it is killed and reaped.
pub struct Cloned {
    pub pid: libc::pid_t,
    pidfd: Option<OwnedFd>,
    chan: Channel,
    /// The mount namespace of its finished root, and the one it was built
    /// in (dropped with this, once the init runs).
    root: Option<setup::Built>,
}

impl Drop for Cloned {
    fn drop(&mut self) {
        if let Some(pidfd) = self.pidfd.take() {
            let _ = sys::pidfd_signal(&pidfd, libc::SIGKILL);
            spawn::reap(self.pid);
        }
    }
}

/// Clone the init into its namespaces (setup.rs), write its identity map
/// when it has a user namespace of its own, and build its root once it is
/// ready. It goes on through the start-up sequence when `release`d.
pub fn clone_child(spec: &ChildSpec) -> Result<Cloned> {
    let (ours, theirs) =
        channel::pair().map_err(|e| anyhow!("creating a socket pair: {}", errno_text(e)))?;
    let ours_here = &ours;
    let into = spec
        .cgroup
        .or(spec.legacy.unified.as_ref().map(|d| d.as_raw_fd()));
    let forked = spawn::fork_into(setup::namespaces(spec), into, move || {
        ours_here.close_copy();
        startup::start(theirs, &spec.startup, |chan| {
            setup::init_world(chan, &spec.legacy.tasks)
        })
    })
    .map_err(|e| match (spec.userns, e) {
        (true, nix::errno::Errno::EPERM | nix::errno::Errno::ENOSPC | nix::errno::Errno::EUSERS) => {
            crate::error::fail(format!(
                "cannot create the firmware's user namespace (clone3: {}): this host does not allow user namespaces (user.max_user_namespaces, or a container's policy): allow them, or use --userns off (less isolation)",
                errno_text(e)
            ))
        }
        _ => anyhow!(
            "creating the firmware's namespaces (clone3): {}",
            errno_text(e)
        ),
    })?;
    let mut cloned = Cloned {
        pid: forked.pid,
        pidfd: Some(forked.pidfd),
        chan: ours,
        root: None,
    };
    match cloned.prepare(spec) {
        Ok(root) => {
            cloned.root = Some(root);
            Ok(cloned)
        }
        Err(e) => Err(cloned.abandon(e)),
    }
}

/// What the child said, as fwrun's result: its failure is fwrun's error,
/// ending with the child's code.
fn heard(h: Heard) -> Result<Option<OwnedFd>> {
    match h.failure {
        Some(f) => Err(fail_with(f.code, f.message)),
        None => Ok(h.listener),
    }
}

impl Cloned {
    /// Its map, then its root. A root that mounts the run's cgroup2 is
    /// built once the init has made its cgroup namespace (it is ready);
    /// any other while the init joins its v1 cgroups.
    fn prepare(&mut self, spec: &ChildSpec) -> Result<setup::Built> {
        if spec.userns {
            spawn::write_identity_map(self.pid)
                .context("writing the firmware's user namespace's identity map")?;
        }
        let pidfd = self.pidfd.as_ref().expect("a Cloned is prepared once");
        let built = match spec.cgroup {
            Some(_) => None,
            None => Some(setup::build(spec, pidfd.as_fd())),
        };
        let ready = self
            .chan
            .wait_ready()
            .map_err(|e| anyhow!("hearing from the firmware's init: {}", errno_text(e)))?;
        if let Some(h) = ready {
            heard(h)?;
            return Err(anyhow!("the firmware's init ended during its setup"));
        }
        built.unwrap_or_else(|| setup::build(spec, pidfd.as_fd()))
    }

    /// Give the child its root, and wait until it has exec'd the init (or
    /// failed to).
    pub fn release(mut self) -> Result<Started> {
        let built = self.root.as_mut().expect("a Cloned is released once");
        // A failed send means the child is gone: it said why.
        let _ = self.chan.send_world(built.root.as_fd());
        let pidfd = self.pidfd.take().expect("a Cloned is released once");
        let h = self
            .chan
            .hear()
            .map_err(|e| anyhow!("hearing from the firmware's init: {}", errno_text(e)));
        match h.and_then(heard) {
            Ok(listener) => Ok(Started {
                pid: self.pid,
                pidfd,
                reaped: false,
                listener,
                kernel_log: self.root.take().map(|b| b.kernel_log),
            }),
            Err(e) => {
                // The child failed before or at exec and is exiting.
                let _ = sys::pidfd_signal(&pidfd, libc::SIGKILL);
                spawn::reap(self.pid);
                Err(e)
            }
        }
    }

    /// The launcher's side failed while the child waited: kill the child,
    /// and return the child's own error if it had failed first, else `err`.
    pub fn abandon(mut self, err: anyhow::Error) -> anyhow::Error {
        let Some(pidfd) = self.pidfd.take() else {
            return err;
        };
        let _ = sys::pidfd_signal(&pidfd, libc::SIGKILL);
        // The child's end closes when it dies.
        let failure = self.chan.hear().ok().and_then(|h| h.failure);
        spawn::reap(self.pid);
        match failure {
            Some(f) => fail_with(f.code, f.message),
            None => err,
        }
    }
}
