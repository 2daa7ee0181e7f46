//! What the firmware's init process is given: everything prepared by the
//! launcher before the clone, so that the child does as little as possible.

use std::os::fd::RawFd;
use std::path::PathBuf;

use crate::firmware::rootfs::ResolvedBind;
use crate::process::startup::Startup;

/// Everything the child needs.
pub struct ChildSpec {
    /// The root it builds and pivots into (setup.rs).
    pub root: PathBuf,
    pub hostname: String,
    pub new_net: bool,
    pub binds: Vec<ResolvedBind>,
    /// Bound at /dev/console: the pty's slave, or the user's terminal.
    pub console: Option<PathBuf>,
    /// The run's cgroup (an open directory) to clone the init into; its
    /// subtree is then mounted, writable, at the firmware's /sys/fs/cgroup.
    pub cgroup: Option<RawFd>,
    /// How it starts, once its root is built: its terminal, whether it
    /// waits for fwrun's go (once fwrun has set the network up and reaped
    /// the child reading the init ahead, so that the init, once it runs,
    /// is fwrun's only child), its confinement and its program.
    pub startup: Startup,
}
