//! Thin wrappers over the system calls fwrun makes, each failure turned into
//! an error that says what was being done ("mounting proc at …: EPERM").

pub mod signals;

use std::ffi::CString;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

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
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(anyhow!(
            "unmounting {}: {}",
            target.display(),
            errno_text(e)
        )),
    }
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

/// fork() into new namespaces, with a pidfd for the child.
///
/// # Safety
/// The caller must be single-threaded: the child runs on a copy of the
/// parent's memory and may allocate.
pub unsafe fn fork_into(namespaces: libc::c_int) -> Result<Forked, Errno> {
    let mut pidfd: libc::c_int = -1;
    let args = CloneArgs {
        flags: namespaces as u64 | libc::CLONE_PIDFD as u64,
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        exit_signal: libc::SIGCHLD as u64,
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
const RESOLVE_IN_ROOT: u64 = 0x10;

/// Open `path` as if `root` were "/" (absolute symlinks and ".." stay inside
/// `root`), as an O_PATH descriptor.
pub fn open_in_root(root: &OwnedFd, path: &Path) -> Result<OwnedFd, Errno> {
    use std::os::fd::AsRawFd;
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    let how = OpenHow {
        flags: (libc::O_PATH | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_IN_ROOT,
    };
    // SAFETY: plain syscall with valid pointers that outlive it.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
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

/// Send a signal through a pidfd (no pid reuse race).
pub fn pidfd_signal(pidfd: &OwnedFd, sig: i32) -> Result<(), Errno> {
    use std::os::fd::AsRawFd;
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
