//! What the firmware's init process is given: everything prepared by the
//! launcher before the clone, so that the child does as little as possible.

use std::ffi::CString;
use std::os::fd::RawFd;
use std::path::PathBuf;

use crate::firmware::rootfs::ResolvedBind;

/// Everything the child needs.
pub struct ChildSpec {
    pub root: PathBuf,
    pub hostname: String,
    pub new_net: bool,
    /// Wait before the exec until the launcher says go: once it has set
    /// the network up, and reaped the child reading the init ahead (so
    /// that the init, once it runs, is fwrun's only child).
    pub wait_for_go: bool,
    pub binds: Vec<ResolvedBind>,
    /// What exec needs besides the init (a #! interpreter, a dynamic
    /// loader, a binfmt_misc interpreter), (what, path): named when exec
    /// says ENOENT and the init itself is there.
    pub needs: Vec<(String, CString)>,
    /// Bound at /dev/console: the pty's slave, or the user's terminal.
    pub console: Option<PathBuf>,
    /// In pty mode, the slave: the init's stdin, stdout, stderr and
    /// controlling terminal.
    pub tty: Option<RawFd>,
    /// In inherit mode when fwrun reads the console (readiness): pipes to
    /// fwrun, the init's stdout and stderr.
    pub output: Option<(RawFd, RawFd)>,
    /// Run the init as pid 2 under fwrun's minimal pid 1.
    pub as_pid2: bool,
    /// The program to exec (the init, its PATH lookup done); argv[0] stays
    /// as the user gave it.
    pub program: CString,
    /// The AppArmor profile to enter just before exec.
    pub profile: Option<String>,
    /// The capabilities the init keeps.
    pub caps: Vec<caps::Capability>,
    /// Install the seccomp filter and send its notification descriptor to
    /// the supervisor.
    pub seccomp: bool,
    /// The run's cgroup (an open directory) to clone the init into; its
    /// subtree is then mounted, writable, at the firmware's /sys/fs/cgroup.
    pub cgroup: Option<RawFd>,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
}
