//! Thin wrappers over the system calls fwrun makes, each failure turned into
//! an error that says what was being done ("mounting proc at …: EPERM").

pub mod fd;
pub mod loopdev;
pub mod mountinfo;
pub mod poll;
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

/// Wait for the child `pid`, of whatever exit signal (__WALL), through
/// interruptions.
pub fn reap(pid: libc::pid_t) {
    let mut status = 0;
    // SAFETY: waitpid into a status we own.
    while unsafe { libc::waitpid(pid, &mut status, libc::__WALL) } < 0
        && Errno::last() == Errno::EINTR
    {}
}

/// clone(2) of a child that runs `f(arg)` on `stack`, a stack of its own,
/// with `flags` (the exit signal included). Returns the child's pid, or -1
/// with errno set.
///
/// # Safety
/// `stack` and whatever `arg` points to must stay alive and untouched by
/// the caller for as long as the child uses them, and `f` may only do in
/// the child what `flags` leaves safe (with CLONE_VM, no allocation and no
/// lock of the parent's).
pub unsafe fn clone_on(
    stack: &mut [u8],
    flags: libc::c_int,
    f: extern "C" fn(*mut libc::c_void) -> libc::c_int,
    arg: *mut libc::c_void,
) -> libc::pid_t {
    // The stack grows down from its 16-byte-aligned top.
    let top = (stack.as_mut_ptr() as usize + stack.len()) & !15;
    libc::clone(f, top as *mut libc::c_void, flags, arg)
}

/// The arguments of clone3(2).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// What a fork-like clone returned.
pub enum Forked {
    Child,
    Parent { pid: libc::pid_t, pidfd: OwnedFd },
}

/// clone3's flag: start the child in the cgroup given by `cgroup` (5.7+).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// fork() into new namespaces, with a pidfd for the child, and into the
/// cgroup whose directory `cgroup` is open on, when given (atomically: the
/// child never runs outside it).
///
/// # Safety
/// The caller must be single-threaded: the child runs on a copy of the
/// parent's memory and may allocate.
pub unsafe fn fork_into(
    namespaces: libc::c_int,
    cgroup: Option<libc::c_int>,
) -> Result<Forked, Errno> {
    let mut pidfd: libc::c_int = -1;
    let mut flags = namespaces as u64 | libc::CLONE_PIDFD as u64;
    if cgroup.is_some() {
        flags |= CLONE_INTO_CGROUP;
    }
    let args = CloneArgs {
        flags,
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.map_or(0, |fd| fd as u64),
        ..Default::default()
    };
    let ret = libc::syscall(
        libc::SYS_clone3,
        &args as *const CloneArgs,
        std::mem::size_of::<CloneArgs>(),
    );
    match ret {
        -1 => Err(Errno::last()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent {
            pid: pid as libc::pid_t,
            pidfd: OwnedFd::from_raw_fd(pidfd),
        }),
    }
}

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}
/// openat2's resolve flags.
pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub const RESOLVE_NO_SYMLINKS: u64 = 0x04;
pub const RESOLVE_IN_ROOT: u64 = 0x10;

/// openat2(2): open `path` from `dir` with `flags` (close-on-exec added)
/// and the `resolve` restrictions.
pub fn openat2(dir: BorrowedFd, path: &Path, flags: i32, resolve: u64) -> Result<OwnedFd, Errno> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve,
    };
    // SAFETY: plain syscall with valid pointers that outlive it.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            c.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        Err(Errno::last())
    } else {
        // SAFETY: a new descriptor we own.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }
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

/// statx of an open descriptor, with the mount id.
pub fn statx_fd(fd: BorrowedFd) -> Option<libc::statx> {
    // SAFETY: statx into a zeroed struct, with an empty path and AT_EMPTY_PATH.
    unsafe {
        let mut st: libc::statx = std::mem::zeroed();
        let r = libc::statx(
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_BASIC_STATS | libc::STATX_MNT_ID,
            &mut st,
        );
        (r == 0).then_some(st)
    }
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
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    // SAFETY: plain syscall with a valid path; the result is a new fd.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            path.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | AT_RECURSIVE,
        )
    };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the kernel just gave us this descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Attach the detached mount tree `tree` at `target` (an O_PATH
/// descriptor of a path in this process's mount namespace).
pub fn attach_tree(tree: BorrowedFd, target: BorrowedFd) -> Result<(), Errno> {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
    const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
    // SAFETY: plain syscall on two descriptors we hold, empty paths.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// Send a descriptor over a unix socket (SCM_RIGHTS).
pub fn send_fd(sock: BorrowedFd, fd: BorrowedFd) -> Result<(), Errno> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let fds = [fd.as_raw_fd()];
    let iov = [std::io::IoSlice::new(b"fd")];
    sendmsg::<()>(
        sock.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map(|_| ())
}

/// Receive a descriptor sent with [`send_fd`]; None at end of file (the
/// sender closed its end without sending).
pub fn recv_fd(sock: BorrowedFd) -> Result<Option<OwnedFd>, Errno> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut buf = [0u8; 2];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
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
    for c in msg.cmsgs().map_err(|_| Errno::EBADMSG)? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                // SAFETY: the kernel just gave us this descriptor.
                return Ok(Some(unsafe { OwnedFd::from_raw_fd(*fd) }));
            }
        }
    }
    Ok(None)
}

/// A NULL-terminated array of pointers to `strings`, as execve takes its
/// argv and envp (valid while `strings` lives).
pub fn c_array(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
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
