//! What the firmware's init process is given: everything prepared by the
//! launcher before the clone, so that the child does as little as possible.

use std::os::fd::{OwnedFd, RawFd};
use std::path::PathBuf;

use crate::firmware::rootfs::ResolvedBind;
use crate::host::cgroup::Joins;
use crate::process::startup::Startup;

/// Everything the child needs.
pub struct ChildSpec {
    /// The root it builds and pivots into (setup.rs).
    pub root: PathBuf,
    pub hostname: String,
    pub new_net: bool,
    /// A user namespace of its own (identity-mapped): `--userns on`.
    pub userns: bool,
    pub binds: Vec<ResolvedBind>,
    /// Its /proc/cmdline, without the newline.
    pub cmdline: String,
    /// The run's state directory, where the files bound over /proc/kmsg
    /// and /proc/cmdline stay for the run.
    pub state_dir: PathBuf,
    /// Attached at /dev/console: a detached mount of the pty's slave, or of
    /// the user's terminal, made from its descriptor.
    pub console: Option<OwnedFd>,
    /// The run's cgroup (an open directory) to clone the init into; its
    /// subtree is then mounted, writable, at the firmware's /sys/fs/cgroup.
    pub cgroup: Option<RawFd>,
    /// On a v1 or hybrid host, the run's cgroup in each hierarchy: the
    /// init is cloned into the v2 one and joins the v1 ones itself before
    /// it makes its cgroup namespace (setup.rs), while fwrun builds its
    /// root.
    pub legacy: Joins,
    /// How it starts, once its root is built: its terminal, its
    /// confinement and its program.
    pub startup: Startup,
}
