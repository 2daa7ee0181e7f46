//! The firmware's root, as its init will find it: constrained /proc, /sys and
//! /dev mounted in the new root, the user's binds, then pivot_root into it
//! with the old root detached. Runs in the child, inside the new namespaces.
//!
//! /proc, /sys and /dev are looked up inside the root without following any
//! symlink (an earlier run with --rw-dir may have left one), and mounted on
//! the directory found. Every mount here is nodev, but for the host's device
//! nodes bound into /dev and a --bind of a device node.

use std::fs;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::symlink;
use std::path::{Component, Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::{fstat, makedev, mkdirat, FileStat, Mode};

use crate::error::fail;
use crate::sys::{self, errno_text, fd_path};

/// /proc files that get /dev/null bound over them (they leak the host's
/// kernel memory, keys, scheduler or interrupt state). /proc/kmsg, which
/// would hand the host's kernel log to whoever reads it first, gets the
/// firmware's own instead ([`mount_kernel_files`]).
pub const PROC_MASKED_FILES: &[&str] = &[
    "kcore",
    "kallsyms",
    "keys",
    "latency_stats",
    "timer_list",
    "timer_stats",
    "sched_debug",
    "interrupts",
];
/// /proc directories hidden under an empty read-only tmpfs.
pub const PROC_MASKED_DIRS: &[&str] = &["acpi", "asound", "scsi"];
/// /proc paths made read-only.
pub const PROC_READ_ONLY: &[&str] = &["bus", "fs", "irq", "sys", "sysrq-trigger"];
/// /sys directories hidden under an empty read-only tmpfs.
pub const SYS_MASKED_DIRS: &[&str] = &["firmware", "devices/virtual/powercap"];

/// The host's device nodes bound into the firmware's /dev: (name, major,
/// minor), each checked on the host before it is bound.
pub const DEV_NODES: &[(&str, u64, u64)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];
const DEV_LINKS: &[(&str, &str)] = &[
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
];

const NOSUID_NODEV_NOEXEC: MsFlags = MsFlags::MS_NOSUID
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);

/// One --bind, as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub src: PathBuf,
    pub dst: PathBuf,
    pub read_only: bool,
}

/// A --bind whose source was checked on the host.
#[derive(Debug, Clone)]
pub struct ResolvedBind {
    pub src: PathBuf,
    pub dst: PathBuf,
    pub read_only: bool,
}

/// Check a --bind's source before anything is mounted.
pub fn resolve_bind(b: &Bind) -> Result<ResolvedBind> {
    let src = fs::canonicalize(&b.src).map_err(|e| {
        crate::error::fail(format!(
            "--bind source '{}' cannot be used: {}: give an existing host path",
            b.src.display(),
            crate::error::io_reason(&e)
        ))
    })?;
    Ok(ResolvedBind {
        src,
        dst: b.dst.clone(),
        read_only: b.read_only,
    })
}

/// The directory `/NAME` at the top of the firmware root, made if missing,
/// found without following any symlink. A symlink there is refused: it
/// would carry fwrun's mount somewhere the firmware does not expect it.
fn mount_point(root: &OwnedFd, name: &str) -> Result<OwnedFd> {
    match mkdirat(root, name, Mode::from_bits_truncate(0o755)) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => {
            return Err(anyhow!(
                "creating /{name} in the firmware root: {}",
                errno_text(e)
            ))
        }
    }
    sys::open_dir_in_root(root, Path::new(name)).map_err(|e| match e {
        Errno::ELOOP => {
            let to = nix::fcntl::readlinkat(root, name)
                .map(|t| format!(" to {}", t.to_string_lossy()))
                .unwrap_or_default();
            fail(format!(
                "the firmware's /{name} is a symlink{to}, where fwrun mounts its own /{name}: remove the link (a --rw-dir keeps it in DIR/upper/{name})"
            ))
        }
        Errno::ENOTDIR => fail(format!(
            "the firmware's /{name} is not a directory, where fwrun mounts its own /{name}: remove it (a --rw-dir keeps it in DIR/upper/{name})"
        )),
        e => anyhow!("looking up /{name} in the firmware root: {}", errno_text(e)),
    })
}

/// Mount something (`mount` is given the target) on the directory `/NAME`
/// of the root; the root of the new mount, to fill it.
fn mount_on_top(
    root: &OwnedFd,
    name: &str,
    mount: impl FnOnce(&Path) -> Result<()>,
) -> Result<OwnedFd> {
    let under = mount_point(root, name)?;
    mount(&fd_path(&under))?;
    // Looked up again, the path now crosses into the new mount.
    sys::open_dir_in_root(root, Path::new(name))
        .map_err(|e| anyhow!("opening the new /{name}: {}", errno_text(e)))
}

/// The host's /dev/NAME, opened without being opened for I/O, once it is
/// known to be the character device MAJOR:MINOR.
fn host_device(name: &str, major: u64, minor: u64) -> Result<OwnedFd> {
    let path = format!("/dev/{name}");
    let fd = nix::fcntl::open(
        path.as_str(),
        OFlag::O_PATH | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| anyhow!("opening the host's {path}: {}", errno_text(e)))?;
    let st = fstat(&fd).map_err(|e| anyhow!("checking the host's {path}: {}", errno_text(e)))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR || st.st_rdev != makedev(major, minor) {
        return Err(anyhow!(
            "the host's {path} is not the {name} device (char {major}:{minor}): fwrun binds nothing else there"
        ));
    }
    Ok(fd)
}

/// A read-only bind of `path` onto itself.
fn make_read_only(path: &Path) -> Result<()> {
    sys::bind(path, path, true)?;
    sys::remount_ro(path, NOSUID_NODEV_NOEXEC)
}

/// Bind the host's device `dev` (an O_PATH descriptor) at `target`,
/// read-only: the node opens for writing, but a chmod, chown or touch
/// cannot reach the host's node.
fn bind_device(dev: &OwnedFd, target: &Path) -> Result<()> {
    sys::bind(&fd_path(dev), target, false)?;
    sys::set_mount_attrs(target, false, sys::MOUNT_ATTR_RDONLY)
}

fn mask_dir(path: &Path) -> Result<()> {
    sys::mount(
        "tmpfs",
        path,
        Some("tmpfs"),
        MsFlags::MS_RDONLY | NOSUID_NODEV_NOEXEC,
        Some("size=0,mode=0555"),
    )
}

/// Ok if the mount failed only because its target does not exist.
fn skip_missing(r: Result<()>) -> Result<()> {
    match r {
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<nix::errno::Errno>() == Some(&nix::errno::Errno::ENOENT)
            }) =>
        {
            Ok(())
        }
        r => r,
    }
}

/// /proc of the new pid namespace, with the host's secrets masked and the
/// kernel's knobs read-only.
pub fn mount_proc(root: &OwnedFd) -> Result<()> {
    let proc_fd = mount_on_top(root, "proc", |at| {
        sys::mount("proc", at, Some("proc"), NOSUID_NODEV_NOEXEC, None)
            .context("mounting /proc in the firmware root")
    })?;
    let proc_ = fd_path(&proc_fd);
    let null = host_device("null", 1, 3).context("masking /proc")?;
    // A path this kernel does not have is skipped: the mount says ENOENT,
    // with no lookup beforehand.
    for f in PROC_MASKED_FILES {
        skip_missing(bind_device(&null, &proc_.join(f)))
            .with_context(|| format!("masking /proc/{f}"))?;
    }
    for d in PROC_MASKED_DIRS {
        skip_missing(mask_dir(&proc_.join(d))).with_context(|| format!("masking /proc/{d}"))?;
    }
    for r in PROC_READ_ONLY {
        skip_missing(make_read_only(&proc_.join(r)))
            .with_context(|| format!("making /proc/{r} read-only"))?;
    }
    Ok(())
}

/// A read-only /sys (of the new network namespace when there is one), with
/// firmware tables and power capping hidden.
pub fn mount_sys(root: &OwnedFd) -> Result<()> {
    // Read-only per mount, not per superblock: the network namespace's sysfs
    // superblock is shared with any sysfs the firmware mounts itself, which
    // would otherwise fail with EBUSY as a rw mount of a ro superblock.
    let sys_fd = mount_on_top(root, "sys", |at| {
        sys::mount("sysfs", at, Some("sysfs"), NOSUID_NODEV_NOEXEC, None)
            .context("mounting /sys in the firmware root")
    })?;
    let sys_ = fd_path(&sys_fd);
    sys::remount_ro(&sys_, NOSUID_NODEV_NOEXEC).context("making /sys read-only")?;
    for d in SYS_MASKED_DIRS {
        skip_missing(mask_dir(&sys_.join(d))).with_context(|| format!("masking /sys/{d}"))?;
    }
    Ok(())
}

/// The run's own cgroup subtree, writable, at /sys/fs/cgroup: delegated
/// to the firmware (a systemd init makes its units there). The child is in
/// that cgroup already; a cgroup namespace made now is rooted there (the
/// one clone3 made is rooted at fwrun's cgroup: namespaces are copied
/// before the child moves), and the cgroup2 mount shows only the subtree.
pub fn mount_cgroup(root: &OwnedFd) -> Result<()> {
    let at = sys::open_dir_in_root(root, Path::new("sys/fs/cgroup")).map_err(|e| {
        anyhow!(
            "looking up /sys/fs/cgroup in the firmware root: {}",
            errno_text(e)
        )
    })?;
    sys::mount(
        "cgroup2",
        &fd_path(&at),
        Some("cgroup2"),
        NOSUID_NODEV_NOEXEC,
        None,
    )
    .context("mounting the run's cgroup at /sys/fs/cgroup")
}

/// A nodev tmpfs /dev holding only the host's harmless nodes, bound in: no
/// block device, no memory, port, watchdog or clock node. `console`, if
/// given, is bound at /dev/console.
pub fn mount_dev(root: &OwnedFd, console: Option<BorrowedFd>) -> Result<()> {
    let dev_fd = mount_on_top(root, "dev", |at| {
        sys::mount(
            "dev",
            at,
            Some("tmpfs"),
            NOSUID_NODEV_NOEXEC | MsFlags::MS_STRICTATIME,
            Some("mode=755,size=4m,nr_inodes=4096"),
        )
        .context("mounting /dev in the firmware root")
    })?;
    let dev = fd_path(&dev_fd);
    for (name, major, minor) in DEV_NODES {
        let host = host_device(name, *major, *minor)?;
        let node = dev.join(name);
        fs::File::create(&node).with_context(|| format!("creating /dev/{name}"))?;
        bind_device(&host, &node).with_context(|| format!("binding the host's /dev/{name}"))?;
    }
    for (name, target) in DEV_LINKS {
        symlink(target, dev.join(name)).with_context(|| format!("creating /dev/{name}"))?;
    }
    mount_dev_dirs(&dev)?;
    if let Some(tty) = console {
        attach_console(&dev, tty);
    }
    Ok(())
}

/// The terminal (a detached mount of it, made from its descriptor) at
/// /dev/console. A console that cannot be attached does not stop the run:
/// the firmware goes without one, and fwrun says so.
fn attach_console(dev: &Path, tty: BorrowedFd) {
    let c = dev.join("console");
    let attached = fs::File::create(&c)
        .map_err(|e| anyhow!("creating /dev/console: {e}"))
        .and_then(|f| {
            sys::attach_tree(tty, f.as_fd())
                .map_err(|e| anyhow!("attaching the terminal: {}", errno_text(e)))
        });
    if let Err(e) = attached {
        let _ = fs::remove_file(&c);
        eprintln!("fwrun: warning: the firmware has no /dev/console ({e:#})");
    }
}

/// /dev/pts (a devpts of its own) and /dev/shm.
fn mount_dev_dirs(dev: &Path) -> Result<()> {
    let pts = dev.join("pts");
    fs::create_dir(&pts).context("creating /dev/pts")?;
    sys::mount(
        "devpts",
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )
    .context("mounting /dev/pts in the firmware root")?;
    let shm = dev.join("shm");
    fs::create_dir(&shm).context("creating /dev/shm")?;
    sys::mount(
        "shm",
        &shm,
        Some("tmpfs"),
        NOSUID_NODEV_NOEXEC,
        Some("mode=1777,size=64m"),
    )
    .context("mounting /dev/shm in the firmware root")
}

/// fwrun's ends of the firmware's kernel log: what it writes to /dev/kmsg
/// is read from `written`; what is written to `readers` is what a reader
/// of its /proc/kmsg gets. Both FIFOs, opened for reading and writing
/// without blocking.
pub struct KernelLog {
    pub written: OwnedFd,
    pub readers: OwnedFd,
}

/// The firmware's own kernel log and boot line, never the host's: a FIFO
/// at /dev/kmsg that fwrun reads, another over /proc/kmsg that fwrun fills
/// with the same records, and a read-only file holding `cmdline` over
/// /proc/cmdline. The last two are made in the run's state directory
/// `state` (nothing of them shows in the firmware's /dev) and bound; they
/// stay there for the run, so that a service manager may mount over them
/// in a unit's namespace (the kernel mounts nothing on a deleted file).
pub fn mount_kernel_files(root: &OwnedFd, cmdline: &str, state: &Path) -> Result<KernelLog> {
    let open = |name: &str| {
        sys::open_dir_in_root(root, Path::new(name))
            .map_err(|e| anyhow!("opening the firmware's /{name}: {}", errno_text(e)))
    };
    let (dev_fd, proc_fd) = (open("dev")?, open("proc")?);
    let proc_ = fd_path(&proc_fd);
    let state_fd = nix::fcntl::open(
        state,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| anyhow!("opening {}: {}", state.display(), errno_text(e)))?;
    let written = fifo(&dev_fd, "kmsg", 0o644).context("making /dev/kmsg")?;
    const STREAM: &str = "proc-kmsg";
    let readers = fifo(&state_fd, STREAM, 0o400).context("making /proc/kmsg")?;
    sys::bind(&state.join(STREAM), &proc_.join("kmsg"), false).context("binding /proc/kmsg")?;
    let file = state.join("cmdline");
    fs::write(&file, format!("{cmdline}\n")).context("writing the firmware's command line")?;
    sys::bind(&file, &proc_.join("cmdline"), false).context("binding /proc/cmdline")?;
    sys::set_mount_attrs(&proc_.join("cmdline"), false, sys::MOUNT_ATTR_RDONLY)
        .context("making /proc/cmdline read-only")?;
    Ok(KernelLog { written, readers })
}

/// A FIFO `name` made in `dir` (anew: a restarted boot finds the last
/// one's), opened for reading and writing without blocking.
fn fifo(dir: &OwnedFd, name: &str, mode: u32) -> Result<OwnedFd> {
    let _ = nix::unistd::unlinkat(dir, name, nix::unistd::UnlinkatFlags::NoRemoveDir);
    nix::sys::stat::mknodat(
        dir,
        name,
        nix::sys::stat::SFlag::S_IFIFO,
        Mode::from_bits_truncate(mode),
        0,
    )
    .map_err(|e| anyhow!("mknod {name}: {}", errno_text(e)))?;
    nix::fcntl::openat(
        dir,
        name,
        OFlag::O_RDWR | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| anyhow!("opening {name}: {}", errno_text(e)))
}

/// Mount the user's binds, creating their destinations inside the root. A
/// destination that goes through a symlink is refused, so that the firmware's
/// own links cannot send a bind somewhere on the host. A bind is nodev (all
/// of it, submounts too) unless its source is itself a device node; a `:ro`
/// bind is read-only all the way down. Nothing the source's mounts had
/// (nosuid, nodev, noexec) is taken away.
pub fn mount_binds(root: &Path, binds: &[ResolvedBind]) -> Result<()> {
    for b in binds {
        let what = format!("--bind {}:{}", b.src.display(), b.dst.display());
        let (src, st) = open_source(&b.src).context(what.clone())?;
        let kind = st.st_mode & libc::S_IFMT;
        let target = prepare_target(root, &b.dst, kind == libc::S_IFDIR).context(what.clone())?;
        sys::bind(&fd_path(&src), &target, true).context(what.clone())?;
        let mut set = 0;
        if kind != libc::S_IFCHR && kind != libc::S_IFBLK {
            set |= sys::MOUNT_ATTR_NODEV;
        }
        if b.read_only {
            set |= sys::MOUNT_ATTR_RDONLY;
        }
        if set != 0 {
            sys::set_mount_attrs(&target, true, set).context(what)?;
        }
    }
    Ok(())
}

/// A bind's source, opened without being opened for I/O, and what it is:
/// the thing looked at is the thing bound.
fn open_source(src: &Path) -> Result<(OwnedFd, FileStat)> {
    let fd = nix::fcntl::open(src, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| anyhow!("opening {}: {}", src.display(), errno_text(e)))?;
    let st = fstat(&fd).map_err(|e| anyhow!("checking {}: {}", src.display(), errno_text(e)))?;
    Ok((fd, st))
}

fn prepare_target(root: &Path, dst: &Path, is_dir: bool) -> Result<PathBuf> {
    let parts: Vec<_> = dst
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    let mut p = root.to_path_buf();
    for (i, c) in parts.iter().enumerate() {
        p.push(c);
        let last = i + 1 == parts.len();
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(anyhow!(
                    "{} is a symlink in the firmware: bind to its target instead",
                    dst.display()
                ))
            }
            Ok(_) => {}
            Err(_) if last && !is_dir => {
                fs::File::create(&p).with_context(|| format!("creating {}", dst.display()))?;
            }
            Err(_) => fs::create_dir(&p).with_context(|| format!("creating {}", dst.display()))?,
        }
    }
    Ok(p)
}

/// Make `root` the root of this mount namespace and detach the old one.
pub fn pivot_into(root: &Path) -> Result<()> {
    nix::unistd::chdir(root)
        .map_err(|e| anyhow!("entering {}: {}", root.display(), errno_text(e)))?;
    nix::unistd::pivot_root(".", ".")
        .map_err(|e| anyhow!("pivot_root into the firmware root: {}", errno_text(e)))?;
    nix::mount::umount2(".", MntFlags::MNT_DETACH)
        .map_err(|e| anyhow!("detaching the host's root: {}", errno_text(e)))?;
    nix::unistd::chdir("/").map_err(|e| anyhow!("entering /: {}", errno_text(e)))?;
    Ok(())
}
