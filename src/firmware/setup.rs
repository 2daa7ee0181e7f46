//! The init's world. fwrun builds it, the init joins it:
//!
//! 1. the init, cloned into its new user, pid, UTS, IPC and network
//!    namespaces (all owned by its user namespace, so that its root may
//!    set its hostname, configure its network and power off), makes its
//!    cgroup namespace, rooted at the run's cgroup, and says it is ready
//!    ([`init_world`]);
//! 2. fwrun builds its root, in a child of its own beside it ([`build`]):
//!    with the host's privileges, in the init's pid, network, UTS, IPC and
//!    cgroup namespaces, in a mount namespace of the host's: constrained
//!    /proc, /sys, /dev and the binds (rootfs.rs), the hostname, `lo` up,
//!    pivot_root. Then that child enters the init's user namespace and
//!    makes a new mount namespace there: the kernel copies the finished
//!    tree into it locked (its read-only, nodev, nosuid and noexec flags
//!    cannot be cleared, and no mount of it can be removed to reveal what
//!    it covers, in any copy the firmware makes);
//! 3. fwrun hands the init that mount namespace when the rest of the run
//!    is ready (its network), and the init joins it: its root and working
//!    directory become the finished root's.
//!
//! With `--userns off` the same steps run without the user namespace: the
//! init is root in the host's, and its mounts are not locked.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;

use crate::firmware::rootfs;
use crate::firmware::spec::ChildSpec;
use crate::process::channel::Channel;
use crate::process::spawn;
use crate::sys::errno_text;

/// The namespaces the init is cloned into.
pub fn namespaces(spec: &ChildSpec) -> libc::c_int {
    let mut flags = libc::CLONE_NEWPID | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC;
    if spec.new_net {
        flags |= libc::CLONE_NEWNET;
    }
    if spec.userns {
        flags |= libc::CLONE_NEWUSER;
    }
    flags
}

/// The init's world step: into the run's v1 cgroups (`tasks`, on a v1 or
/// hybrid host; it was cloned into the run's v2 cgroup), then its
/// cgroup namespace, rooted there; then, once fwrun has built its root,
/// that root's mount namespace.
///
/// fwrun may be building the root meanwhile, in a child of its own in this
/// process's pid namespace that shares fwrun's memory: this process must
/// not end before that child has (its end would kill the child wherever it
/// is). So a failure here is said once fwrun sends the root, which it does
/// only after its builder is gone.
pub fn init_world(chan: &Channel, tasks: &[(PathBuf, OwnedFd)]) -> Result<()> {
    let entered = join_cgroups(tasks).and_then(|()| {
        nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP)
            .map_err(|e| anyhow!("entering the run's cgroup namespace: {}", errno_text(e)))
    });
    chan.ready()
        .map_err(|_| anyhow!("fwrun went away while it set up the run"))?;
    let root = chan
        .receive_world()
        .map_err(|_| anyhow!("fwrun went away while it set up the run"))?;
    entered?;
    nix::sched::setns(root, CloneFlags::CLONE_NEWNS)
        .map_err(|e| anyhow!("entering the firmware's root: {}", errno_text(e)))
}

/// This process, a single thread, into each of the run's v1 cgroups ("0"
/// is the writer).
fn join_cgroups(tasks: &[(PathBuf, OwnedFd)]) -> Result<()> {
    for (dir, tasks) in tasks {
        nix::unistd::write(tasks, b"0").map_err(|e| {
            anyhow!(
                "joining the run's cgroup {}: {}",
                dir.display(),
                errno_text(e)
            )
        })?;
    }
    Ok(())
}

/// How much stack the builder gets: it runs Rust code of some depth
/// (errors formatted, paths built), and the pages it does not touch cost
/// nothing.
const BUILDER_STACK: usize = 512 << 10;

/// The mount namespaces the builder made.
pub struct Built {
    /// The init's: the finished root, locked.
    pub root: OwnedFd,
    /// The one it was built in, in the host's user namespace: kept open
    /// until the init runs. The last reference to a mount namespace
    /// unmounts its tree and waits for the kernel's readers of mounts (an
    /// RCU grace period) in whoever drops it: fwrun, while the firmware
    /// starts, rather than the builder, while fwrun waits.
    pub scaffold: OwnedFd,
    /// fwrun's ends of the firmware's kernel log (rootfs.rs).
    pub kernel_log: rootfs::KernelLog,
}

/// Build the root of the init behind `init` (a pidfd), in a child beside
/// fwrun that joins its namespaces; the mount namespaces that hold it.
pub fn build(spec: &ChildSpec, init: BorrowedFd) -> Result<Built> {
    let own = std::fs::File::open("/proc/self/ns/pid").context("opening fwrun's pid namespace")?;
    // The builder must be in the init's pid namespace for the proc it
    // mounts to be the init's: fwrun's children go there for a moment.
    nix::sched::setns(init, CloneFlags::CLONE_NEWPID)
        .map_err(|e| anyhow!("joining the firmware's pid namespace: {}", errno_text(e)))?;
    let built = spawn::beside(libc::CLONE_FILES, BUILDER_STACK, || build_root(spec, init));
    nix::sched::setns(own, CloneFlags::CLONE_NEWPID)
        .map_err(|e| anyhow!("returning to fwrun's pid namespace: {}", errno_text(e)))?;
    crate::fault::kill_if_asked_beside();
    let built = built.map_err(|e| anyhow!("building the firmware's root: {}", errno_text(e)))?;
    spawn::reap(built.pid);
    built.out
}

/// In the builder: the init's namespaces but its user namespace, a mount
/// namespace of the host's, the root built and pivoted into; then the
/// init's user namespace, and a new mount namespace there (a locked copy).
/// The builder shares fwrun's descriptor table: the namespaces' descriptors
/// it returns are fwrun's.
fn build_root(spec: &ChildSpec, init: BorrowedFd) -> Result<Built> {
    crate::fault::in_beside();
    // The builder is pid 2 of the init's namespace for as long as it runs:
    // the init's first child is pid 2 all the same (best effort: without
    // the checkpoint-restore interface it is pid 3).
    let _ = std::fs::write("/proc/sys/kernel/ns_last_pid", "1");
    let mut joined = CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC;
    // The cgroup2 it mounts shows the subtree of its cgroup namespace's
    // root: the init's, made by then (fwrun waited for it to be ready).
    if spec.cgroup.is_some() {
        joined |= CloneFlags::CLONE_NEWCGROUP;
    }
    nix::sched::setns(init, joined)
        .map_err(|e| anyhow!("joining the firmware's namespaces: {}", errno_text(e)))?;
    nix::sched::unshare(CloneFlags::CLONE_NEWNS)
        .map_err(|e| anyhow!("making the firmware's mount namespace: {}", errno_text(e)))?;
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
    rootfs::mount_dev(&root, spec.console.as_ref().map(|c| c.as_fd()))?;
    let kernel_log = rootfs::mount_kernel_files(&root, &spec.cmdline, &spec.state_dir)?;
    crate::fault::step("dev")?;
    rootfs::mount_binds(&spec.root, &spec.binds)?;
    nix::unistd::sethostname(&spec.hostname)
        .map_err(|e| anyhow!("setting the hostname: {}", errno_text(e)))?;
    if spec.new_net {
        loopback_up().context("bringing up lo in the firmware's network")?;
    }
    drop(root);
    rootfs::pivot_into(&spec.root)?;
    crate::fault::step("pivot_root")?;
    let scaffold = own_mount_ns()?;
    if spec.userns {
        nix::sched::setns(init, CloneFlags::CLONE_NEWUSER)
            .map_err(|e| anyhow!("entering the firmware's user namespace: {}", errno_text(e)))?;
    }
    nix::sched::unshare(CloneFlags::CLONE_NEWNS)
        .map_err(|e| anyhow!("locking the firmware's mounts: {}", errno_text(e)))?;
    Ok(Built {
        root: own_mount_ns()?,
        scaffold,
        kernel_log,
    })
}

/// The builder's mount namespace, opened.
fn own_mount_ns() -> Result<OwnedFd> {
    nix::fcntl::open(
        "/proc/thread-self/ns/mnt",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| anyhow!("opening the firmware's mount namespace: {}", errno_text(e)))
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
