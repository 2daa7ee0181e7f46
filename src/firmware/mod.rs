//! The firmware's init process, seen from the launcher: what it is given
//! (spec.rs), the world it builds in its namespaces (setup.rs, rootfs.rs),
//! the defaults chosen for it from what the firmware holds (defaults.rs),
//! the init found in the firmware before the clone (exec.rs); and here, its
//! clone: the child goes through the start-up sequence of process/ and
//! fwrun waits until it has exec'd the init or said why it could not.

pub mod defaults;
pub mod exec;
pub mod rootfs;
pub mod setup;
pub mod spec;

use std::os::fd::OwnedFd;

use anyhow::{anyhow, Result};

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

/// A child cloned into its namespaces that waits, before its exec, for the
/// launcher to give it its network (`release`). Dropped, it is killed and
/// reaped.
pub struct Cloned {
    pub pid: libc::pid_t,
    pidfd: Option<OwnedFd>,
    chan: Channel,
    wait_for_go: bool,
}

impl Drop for Cloned {
    fn drop(&mut self) {
        if let Some(pidfd) = self.pidfd.take() {
            let _ = sys::pidfd_signal(&pidfd, libc::SIGKILL);
            spawn::reap(self.pid);
        }
    }
}

/// Clone the child into `namespaces`; it builds its root and goes through
/// the start-up sequence. With `spec.startup.wait_for_go` it stops before
/// its confinement and exec until `release`.
pub fn clone_child(spec: &ChildSpec, namespaces: libc::c_int) -> Result<Cloned> {
    let (ours, theirs) =
        channel::pair().map_err(|e| anyhow!("creating a socket pair: {}", errno_text(e)))?;
    let ours_here = &ours;
    let forked = spawn::fork_into(namespaces, spec.cgroup, move || {
        ours_here.close_copy();
        startup::start(theirs, &spec.startup, || setup::build(spec))
    })
    .map_err(|e| {
        anyhow!(
            "creating the firmware's namespaces (clone3): {}",
            errno_text(e)
        )
    })?;
    Ok(Cloned {
        pid: forked.pid,
        pidfd: Some(forked.pidfd),
        chan: ours,
        wait_for_go: spec.startup.wait_for_go,
    })
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
    /// Let the child go on to its exec, and wait until it has exec'd the
    /// init (or failed to).
    pub fn release(mut self) -> Result<Started> {
        if self.wait_for_go {
            // A failed send means the child is gone: it said why.
            let _ = self.chan.go();
        }
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
