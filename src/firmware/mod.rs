//! The firmware's init process, seen from the launcher: clone it into its
//! namespaces (the child's side is setup.rs, then exec.rs) and wait until it
//! has exec'd the init or reported why it could not. A setup error travels
//! back over a close-on-exec pipe; end of file on that pipe means the exec
//! succeeded.

pub mod defaults;
pub mod exec;
pub mod pid2;
pub mod rootfs;
pub mod setup;
pub mod spec;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use anyhow::{anyhow, Result};

use crate::error::{fail_with, LAUNCHER_FAILED};
use crate::firmware::spec::ChildSpec;
use crate::sys::{self, errno_text, Forked};

/// A started firmware. Dropped before it was reaped (a later setup step
/// failed), it is killed and reaped.
pub struct Started {
    pub pid: libc::pid_t,
    pub pidfd: OwnedFd,
    /// Set once the init has been waited for.
    pub reaped: bool,
    /// The seccomp filter's notification descriptor, when it has one.
    pub listener: Option<OwnedFd>,
    /// Held open for the child's life: if fwrun dies before the child has set
    /// its parent-death signal, the child sees the pipe close and exits.
    _lifeline: OwnedFd,
}

impl Drop for Started {
    fn drop(&mut self) {
        if !self.reaped {
            // SIGKILL of the namespace's init ends every process in it.
            let _ = sys::pidfd_signal(&self.pidfd, libc::SIGKILL);
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(self.pid), None);
        }
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| anyhow!("creating a pipe: {}", errno_text(e)))
}

/// A child cloned into its namespaces that waits, before its exec, for the
/// launcher to give it its network (`release`). Dropped, it is killed and
/// reaped.
pub struct Cloned {
    pub pid: libc::pid_t,
    pidfd: Option<OwnedFd>,
    err_r: Option<OwnedFd>,
    notify_r: Option<OwnedFd>,
    life_w: Option<OwnedFd>,
    go_w: Option<OwnedFd>,
}

impl Drop for Cloned {
    fn drop(&mut self) {
        if let Some(pidfd) = self.pidfd.take() {
            let _ = sys::pidfd_signal(&pidfd, libc::SIGKILL);
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(self.pid), None);
        }
    }
}

/// Clone the child into `namespaces`. With `spec.wait_for_go` it
/// stops before its exec until `release`; otherwise it goes straight on.
pub fn clone_child(spec: &ChildSpec, namespaces: libc::c_int) -> Result<Cloned> {
    let (err_r, err_w) = pipe()?;
    let (life_r, life_w) = pipe()?;
    let (go_r, go_w) = match spec.wait_for_go {
        true => pipe().map(|(r, w)| (Some(r), Some(w)))?,
        false => (None, None),
    };
    let (notify_r, notify_w) = nix::sys::socket::socketpair(
        nix::sys::socket::AddressFamily::Unix,
        nix::sys::socket::SockType::SeqPacket,
        None,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| anyhow!("creating a socket pair: {}", errno_text(e)))?;
    // SAFETY: fwrun is single-threaded (signals are read with a signalfd, no
    // handler thread), so the child may allocate.
    match unsafe { sys::fork_into(namespaces, spec.cgroup) } {
        Err(e) => Err(anyhow!(
            "creating the firmware's namespaces (clone3): {}",
            errno_text(e)
        )),
        Ok(Forked::Child) => {
            drop((err_r, life_w, notify_r, go_w));
            let fds = setup::ChildFds {
                err_w,
                life_r,
                notify: notify_w,
                go: go_r,
            };
            setup::child_main(spec, fds)
        }
        Ok(Forked::Parent { pid, pidfd }) => {
            drop((err_w, life_r, notify_w, go_r));
            Ok(Cloned {
                pid,
                pidfd: Some(pidfd),
                err_r: Some(err_r),
                notify_r: Some(notify_r),
                life_w: Some(life_w),
                go_w,
            })
        }
    }
}

impl Cloned {
    /// Let the child go on to its exec, and wait until it has exec'd the
    /// init (or failed to).
    pub fn release(mut self) -> Result<Started> {
        let (Some(pidfd), Some(err_r), Some(notify_r), Some(life_w)) = (
            self.pidfd.take(),
            self.err_r.take(),
            self.notify_r.take(),
            self.life_w.take(),
        ) else {
            unreachable!("a Cloned is released once")
        };
        if let Some(go) = self.go_w.take() {
            // A failed write means the child is gone: its pipe says why.
            let _ = File::from(go).write_all(b"g");
        }
        let pid = self.pid;
        let (msg, listener) = hear_from_child(err_r, notify_r)?;
        if msg.is_empty() {
            return Ok(Started {
                pid,
                pidfd,
                reaped: false,
                listener,
                _lifeline: life_w,
            });
        }
        // The child failed before or at exec and is exiting: reap it.
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        Err(child_error(msg))
    }

    /// The launcher's side failed while the child waited: kill the child,
    /// and return the child's own error if it had failed first, else `err`.
    pub fn abandon(mut self, err: anyhow::Error) -> anyhow::Error {
        if let Some(pidfd) = self.pidfd.take() {
            let _ = sys::pidfd_signal(&pidfd, libc::SIGKILL);
        }
        let mut msg = String::new();
        if let Some(r) = self.err_r.take() {
            // The child's end closes when it dies.
            let _ = File::from(r).read_to_string(&mut msg);
        }
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(self.pid), None);
        if msg.is_empty() || msg.starts_with(crate::fault::KILL_REQUEST) {
            err
        } else {
            child_error(msg)
        }
    }
}

/// The child's "CODE\tMESSAGE" as an error that ends with CODE.
fn child_error(msg: String) -> anyhow::Error {
    let (code, text) = msg
        .split_once('\t')
        .and_then(|(c, t)| Some((c.parse().ok()?, t.to_string())))
        .unwrap_or((LAUNCHER_FAILED, msg));
    fail_with(code, text)
}

/// Read the child's setup pipe until end of file (the exec happened) or its
/// message has arrived in full, and take the seccomp filter's descriptor
/// when the child sends it (just before its exec).
pub fn hear_from_child(err_r: OwnedFd, notify_r: OwnedFd) -> Result<(String, Option<OwnedFd>)> {
    let mut msg = String::new();
    let mut pipe = File::from(err_r);
    let mut notify = Some(notify_r);
    let mut listener = None;
    let mut buf = [0u8; 4096];
    loop {
        let mut pfds = [
            pipe.as_raw_fd(),
            notify.as_ref().map_or(-1, |n| n.as_raw_fd()),
        ]
        .map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        });
        // SAFETY: poll on descriptors we hold (-1 is skipped).
        if unsafe { libc::poll(pfds.as_mut_ptr(), 2, -1) } < 0 {
            continue;
        }
        if pfds[1].revents != 0 {
            if let Some(n) = notify.take() {
                listener = sys::recv_fd(n.as_fd())
                    .map_err(|e| anyhow!("receiving the seccomp descriptor: {}", errno_text(e)))?;
            }
            continue;
        }
        match pipe.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                msg.push_str(&String::from_utf8_lossy(&buf[..n]));
                crate::fault::kill_requested(&msg);
            }
        }
    }
    if let (Some(n), true) = (notify.take(), msg.is_empty()) {
        // Sent before the exec, so it is there if it was sent at all.
        listener = sys::recv_fd(n.as_fd()).ok().flatten();
    }
    Ok((msg, listener))
}
