//! Thin wrappers over the system calls fwrun makes, safe to call, each
//! failure turned into an error that says what was being done ("mounting
//! proc at …: EPERM"): with `process/`, the only home of `unsafe`. The
//! kernel's text formats are read here too (`mountinfo.rs`), and signals
//! are named (`signals.rs`).

pub mod fd;
pub mod loopdev;
pub mod mountinfo;
pub mod poll;
pub mod pty;
pub mod seccomp;
pub mod signals;
pub mod sigpending;

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};

/// An errno as "EPERM: operation not permitted".
pub fn errno_text(e: Errno) -> String {
    format!("{e:?}: {}", e.desc().to_lowercase())
}

pub fn mount(
    src: &str,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<()> {
    nix::mount::mount(Some(src), target, fstype, flags, data).map_err(|e| {
        let what = fstype.unwrap_or(if flags.contains(MsFlags::MS_REMOUNT) {
            "remount"
        } else {
            "bind"
        });
        // The Errno stays in the chain: callers can tell ENOENT apart.
        anyhow::Error::new(e).context(format!("mounting {what} at {}", target.display()))
    })
}

pub fn bind(src: &Path, target: &Path, recursive: bool) -> Result<()> {
    let mut flags = MsFlags::MS_BIND;
    if recursive {
        flags |= MsFlags::MS_REC;
    }
    nix::mount::mount(Some(src), target, None::<&str>, flags, None::<&str>).map_err(|e| {
        anyhow::Error::new(e).context(format!("binding {} at {}", src.display(), target.display()))
    })
}

/// Make the bind mount at `target` read-only (keeping nosuid/nodev/noexec).
pub fn remount_ro(target: &Path, extra: MsFlags) -> Result<()> {
    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | extra;
    nix::mount::mount(None::<&str>, target, None::<&str>, flags, None::<&str>).map_err(|e| {
        anyhow::Error::new(e).context(format!("making {} read-only", target.display()))
    })
}

pub fn umount_detach(target: &Path) -> Result<()> {
    match nix::mount::umount2(target, MntFlags::MNT_DETACH) {
        Ok(()) => Ok(()),
        Err(e) => detach_failed(target, e),
    }
}

/// What a detach of `target` that said `e` means: nothing mounted there
/// any more (EINVAL, ENOENT) is not an error.
pub fn detach_failed(target: &Path, e: Errno) -> Result<()> {
    match e {
        Errno::EINVAL | Errno::ENOENT => Ok(()),
        e => Err(anyhow!(
            "unmounting {}: {}",
            target.display(),
            errno_text(e)
        )),
    }
}

/// openat2's resolve flags.
pub const RESOLVE_NO_MAGICLINKS: u64 = libc::RESOLVE_NO_MAGICLINKS;
pub const RESOLVE_NO_SYMLINKS: u64 = libc::RESOLVE_NO_SYMLINKS;
pub const RESOLVE_IN_ROOT: u64 = libc::RESOLVE_IN_ROOT;

/// openat2(2): open `path` from `dir` with `flags` (close-on-exec added)
/// and the `resolve` restrictions.
pub fn openat2(dir: BorrowedFd, path: &Path, flags: i32, resolve: u64) -> Result<OwnedFd, Errno> {
    use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
    let how = OpenHow::new()
        .flags(OFlag::from_bits_retain(flags | libc::O_CLOEXEC))
        .resolve(ResolveFlag::from_bits_retain(resolve));
    nix::fcntl::openat2(dir, path, how)
}

/// Open `path` as if `root` were "/" (absolute symlinks and ".." stay inside
/// `root`), as an O_PATH descriptor.
pub fn open_in_root(root: &OwnedFd, path: &Path) -> Result<OwnedFd, Errno> {
    openat2(root.as_fd(), path, libc::O_PATH, RESOLVE_IN_ROOT)
}

/// Open the directory `path` inside `root`, as an O_PATH descriptor,
/// following no symlink at all: a symlink anywhere on the way is ELOOP.
pub fn open_dir_in_root(root: &OwnedFd, path: &Path) -> Result<OwnedFd, Errno> {
    openat2(
        root.as_fd(),
        path,
        libc::O_PATH | libc::O_DIRECTORY,
        RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS,
    )
}

/// The path under which this process reaches what `fd` refers to (while the
/// host's /proc is still mounted at /proc).
pub fn fd_path(fd: &impl AsRawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// What statx says of an open descriptor that fwrun asks: its mount id,
/// whether it is its mount's root, and its file system's device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub mnt_id: u64,
    pub mount_root: bool,
    pub dev: (u32, u32),
}

/// statx of an open descriptor, with the mount id.
pub fn statx_fd(fd: BorrowedFd) -> Option<Stat> {
    use rustix::fs::{statx, AtFlags, StatxAttributes, StatxFlags};
    let st = statx(
        fd,
        "",
        AtFlags::EMPTY_PATH,
        StatxFlags::BASIC_STATS | StatxFlags::MNT_ID,
    )
    .ok()?;
    Some(Stat {
        mnt_id: st.stx_mnt_id,
        mount_root: st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT),
        dev: (st.stx_dev_major, st.stx_dev_minor),
    })
}

/// The arguments of mount_setattr(2) (libc has no wrapper).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
const AT_RECURSIVE: libc::c_uint = 0x8000;

/// Add the MOUNT_ATTR_* flags `set` to the mount whose root is `target`
/// (and, if `recursive`, to every mount below it), clearing none: a
/// source's nosuid, nodev or noexec stay.
pub fn set_mount_attrs(target: &Path, recursive: bool, set: u64) -> Result<()> {
    let c = CString::new(target.as_os_str().as_bytes())
        .map_err(|_| anyhow!("{} holds a NUL byte", target.display()))?;
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: plain syscall with valid pointers that outlive it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            c.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r == 0 {
        return Ok(());
    }
    let e = Errno::last();
    let what = format!(
        "setting {} on the mount at {}",
        attr_names(set),
        target.display()
    );
    Err(match e {
        Errno::ENOSYS => {
            anyhow!("{what}: this kernel has no mount_setattr(2): fwrun needs Linux 5.12 or later")
        }
        e => anyhow::Error::new(e).context(what),
    })
}

fn attr_names(set: u64) -> String {
    let names = [
        (MOUNT_ATTR_RDONLY, "ro"),
        (MOUNT_ATTR_NOSUID, "nosuid"),
        (MOUNT_ATTR_NODEV, "nodev"),
        (MOUNT_ATTR_NOEXEC, "noexec"),
    ];
    let v: Vec<&str> = names
        .iter()
        .filter(|(bit, _)| set & bit != 0)
        .map(|(_, n)| *n)
        .collect();
    v.join(",")
}

/// Set or clear the read-only flag of the mount at `fd` alone (what a
/// remount with MS_BIND does), keeping its other flags.
pub fn set_read_only(fd: BorrowedFd, read_only: bool) -> Result<(), Errno> {
    let attr = MountAttr {
        attr_set: if read_only { MOUNT_ATTR_RDONLY } else { 0 },
        attr_clr: if read_only { 0 } else { MOUNT_ATTR_RDONLY },
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: plain syscall with a valid struct and an empty path.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// A detached copy of the mount tree at `path` (relative to this
/// process's root and working directory), submounts included
/// (open_tree(2) with OPEN_TREE_CLONE and AT_RECURSIVE).
pub fn clone_tree(path: &CStr) -> Result<OwnedFd, Errno> {
    use rustix::mount::{open_tree, OpenTreeFlags};
    open_tree(
        rustix::fs::CWD,
        path,
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_RECURSIVE,
    )
    .map_err(|e| Errno::from_raw(e.raw_os_error()))
}

/// A detached copy of the mount of the file `fd` is open on, the file its
/// root (open_tree(2) with OPEN_TREE_CLONE on the descriptor itself): a
/// terminal whose node cannot be found by its path can be bound this way.
/// The mount must be in this process's mount namespace.
pub fn clone_fd_tree(fd: BorrowedFd) -> Result<OwnedFd, Errno> {
    use rustix::mount::{open_tree, OpenTreeFlags};
    open_tree(
        fd,
        "",
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_EMPTY_PATH,
    )
    .map_err(|e| Errno::from_raw(e.raw_os_error()))
}

/// Attach the detached mount tree `tree` at `target` (an O_PATH
/// descriptor of a path in this process's mount namespace).
pub fn attach_tree(tree: BorrowedFd, target: BorrowedFd) -> Result<(), Errno> {
    use rustix::mount::{move_mount, MoveMountFlags};
    move_mount(
        tree,
        "",
        target,
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
    .map_err(|e| Errno::from_raw(e.raw_os_error()))
}

/// Send one message of `bytes` over a unix socket, with the descriptor
/// `fd` (SCM_RIGHTS) when given.
pub fn send_with_fd(sock: BorrowedFd, bytes: &[u8], fd: Option<BorrowedFd>) -> Result<(), Errno> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let iov = [std::io::IoSlice::new(bytes)];
    let fds = fd.map(|f| [f.as_raw_fd()]);
    let cmsgs: Vec<ControlMessage> = fds.iter().map(|f| ControlMessage::ScmRights(f)).collect();
    loop {
        match sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsgs, MsgFlags::empty(), None) {
            Err(Errno::EINTR) => continue,
            r => return r.map(drop),
        }
    }
}

/// Receive one message into `buf`: its length (0 at the end of file) and
/// the descriptor that came with it, if one did (close-on-exec).
pub fn recv_with_fd(sock: BorrowedFd, buf: &mut [u8]) -> Result<(usize, Option<OwnedFd>), Errno> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let msg = loop {
        match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(Errno::EINTR) => continue,
            r => break r?,
        }
    };
    let mut fd = None;
    for c in msg.cmsgs().map_err(|_| Errno::EBADMSG)? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: the kernel just installed these descriptors in this
            // process; each is owned once, here.
            let owned: Vec<OwnedFd> = fds
                .iter()
                .map(|raw| unsafe { OwnedFd::from_raw_fd(*raw) })
                .collect();
            // Any more than the one asked for are closed.
            fd = fd.or(owned.into_iter().next());
        }
    }
    Ok((msg.bytes, fd))
}

/// Send a signal through a pidfd (no pid reuse race).
pub fn pidfd_signal(pidfd: &OwnedFd, sig: i32) -> Result<(), Errno> {
    // SAFETY: plain syscall.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// `ip link set NAME up` on the socket `sock` (any socket of the network
/// namespace), with the interface flags' two ioctls.
pub fn link_up(sock: RawFd, name: &str) -> Result<(), Errno> {
    #[repr(C)]
    struct IfReqFlags {
        name: [u8; libc::IFNAMSIZ],
        flags: libc::c_short,
        _pad: [u8; 22],
    }
    let mut req = IfReqFlags {
        name: [0; libc::IFNAMSIZ],
        flags: 0,
        _pad: [0; 22],
    };
    let n = name.len().min(libc::IFNAMSIZ - 1);
    req.name[..n].copy_from_slice(&name.as_bytes()[..n]);
    // SAFETY: ioctls on a socket the caller holds, with a struct of the
    // size the kernel reads and writes (struct ifreq).
    unsafe {
        if libc::ioctl(sock, libc::SIOCGIFFLAGS as _, &mut req) != 0 {
            return Err(Errno::last());
        }
        req.flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock, libc::SIOCSIFFLAGS as _, &req) != 0 {
            return Err(Errno::last());
        }
    }
    Ok(())
}

/// Leave the descriptor table this process shares (a child made with
/// CLONE_FILES) for a new one with nothing open in it.
pub fn unshare_empty_fd_table() -> Result<(), Errno> {
    // SAFETY: close_range(2) with CLOSE_RANGE_UNSHARE closes only the
    // descriptors of this process's own, new copy of the table.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            0u32,
            u32::MAX,
            libc::CLOSE_RANGE_UNSHARE,
        )
    };
    match r {
        0 => Ok(()),
        _ => Err(Errno::last()),
    }
}

/// A pidfd of process `pid` (pidfd_open(2)).
pub fn pidfd_open(pid: libc::pid_t) -> Result<OwnedFd, Errno> {
    let pid = rustix::process::Pid::from_raw(pid).ok_or(Errno::ESRCH)?;
    rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())
        .map_err(|e| Errno::from_raw(e.raw_os_error()))
}

/// Open `path` without opening the file itself for I/O (O_PATH, and
/// close-on-exec), with `extra` flags (O_DIRECTORY, O_NOFOLLOW). Through
/// nix rather than std's OpenOptions: with musl, std drops O_PATH (musl
/// counts it in O_ACCMODE), and the file would be opened for reading, a
/// FIFO blocking, a device node opened.
pub fn open_path(path: &Path, extra: nix::fcntl::OFlag) -> Result<OwnedFd, Errno> {
    use nix::fcntl::OFlag;
    nix::fcntl::open(
        path,
        OFlag::O_PATH | OFlag::O_CLOEXEC | extra,
        nix::sys::stat::Mode::empty(),
    )
}
