//! Sockets made in the firmware's network namespace by fwrun itself (a
//! socket keeps the namespace it was made in): `--ready-when tcp:` tries
//! the firmware's port from where its own programs would, whatever
//! `--net` gives it.

use std::os::fd::{AsFd, OwnedFd};

use anyhow::{anyhow, Result};
use nix::sched::CloneFlags;
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType};

use crate::sys::errno_text;

/// The network namespace of process `pid`.
pub fn netns_of(pid: libc::pid_t) -> Result<OwnedFd> {
    let path = format!("/proc/{pid}/ns/net");
    std::fs::File::open(&path)
        .map(OwnedFd::from)
        .map_err(|e| anyhow!("{path}: {}", crate::error::io_reason(&e)))
}

/// A socket of `family` and `kind` made in `netns`, non-blocking and
/// close-on-exec. fwrun's thread enters the namespace for the socket(2)
/// only, and comes back (or ends the process, rather than go on there).
pub fn socket_in(netns: &impl AsFd, family: AddressFamily, kind: SockType) -> Result<OwnedFd> {
    let host = std::fs::File::open("/proc/thread-self/ns/net")
        .map_err(|e| anyhow!("fwrun's network namespace: {}", crate::error::io_reason(&e)))?;
    nix::sched::setns(netns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| {
        anyhow!(
            "entering the firmware's network namespace: {}",
            errno_text(e)
        )
    })?;
    let sock = socket::socket(
        family,
        kind,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    );
    if let Err(e) = nix::sched::setns(host.as_fd(), CloneFlags::CLONE_NEWNET) {
        eprintln!(
            "fwrun: returning to the host's network namespace: {}",
            errno_text(e)
        );
        std::process::abort();
    }
    sock.map_err(|e| anyhow!("a socket in the firmware's network: {}", errno_text(e)))
}
