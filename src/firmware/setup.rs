//! The init's world, built in the child inside its new namespaces before
//! the start-up sequence goes on (process/startup.rs): its root with
//! constrained /proc, /sys and /dev and the binds (rootfs.rs), its
//! hostname, `lo` up, then pivot_root into it.

use std::os::fd::AsRawFd;

use anyhow::{anyhow, Context, Result};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::firmware::rootfs;
use crate::firmware::spec::ChildSpec;
use crate::sys::errno_text;

pub fn build(spec: &ChildSpec) -> Result<()> {
    let root = nix::fcntl::open(
        &spec.root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| anyhow!("opening the firmware root: {}", errno_text(e)))?;
    rootfs::mount_proc(&root)?;
    crate::fault::step("proc")?;
    rootfs::mount_sys(&root)?;
    crate::fault::step("sys")?;
    if spec.cgroup.is_some() {
        rootfs::mount_cgroup(&root)?;
    }
    rootfs::mount_dev(&root, spec.console.as_deref())?;
    crate::fault::step("dev")?;
    rootfs::mount_binds(&spec.root, &spec.binds)?;
    nix::unistd::sethostname(&spec.hostname)
        .map_err(|e| anyhow!("setting the hostname: {}", errno_text(e)))?;
    if spec.new_net {
        loopback_up().context("bringing up lo in the firmware's network")?;
    }
    rootfs::pivot_into(&spec.root)?;
    crate::fault::step("pivot_root")?;
    Ok(())
}

/// `ip link set lo up`, with one ioctl.
fn loopback_up() -> Result<()> {
    let s = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| anyhow!("socket: {}", errno_text(e)))?;
    crate::sys::link_up(s.as_raw_fd(), "lo").map_err(|e: Errno| anyhow!("{}", errno_text(e)))
}
