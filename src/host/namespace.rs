//! The launcher's own private mount namespace, entered before anything is
//! mounted. Every mount fwrun makes lives there and dies with the namespace
//! when its last process exits, even if fwrun is SIGKILLed; loop devices,
//! set to autoclear, are freed with their mounts.

use std::path::Path;

use anyhow::{anyhow, Result};
use nix::mount::MsFlags;
use nix::sched::{unshare, CloneFlags};

use crate::sys::errno_text;

pub fn enter_private_mount_namespace() -> Result<()> {
    unshare(CloneFlags::CLONE_NEWNS)
        .map_err(|e| anyhow!("entering a private mount namespace: {}", errno_text(e)))?;
    // Nothing mounted from here on propagates back to the host.
    nix::mount::mount(
        None::<&str>,
        Path::new("/"),
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| anyhow!("making the mount tree private: {}", errno_text(e)))
}

/// The namespaces the firmware's init gets.
pub fn firmware_namespaces(new_net: bool) -> libc::c_int {
    let mut flags = libc::CLONE_NEWPID
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWCGROUP;
    if new_net {
        flags |= libc::CLONE_NEWNET;
    }
    flags
}
