//! The state root, /run/fwrun, kept in memory.
//!
//! On most hosts /run is a tmpfs and the state root is a plain directory in
//! it. Where /run is on a disk file system (some containers, some CI
//! machines), every file a run creates and removes there goes through the
//! disk file system's inode and block allocation: about 0.7 ms a run on an
//! ext4 without journal, more after many runs. There fwrun mounts a small
//! tmpfs of its own (source `fwrun-state`) on /run/fwrun while runs exist,
//! and the last run out unmounts it, so nothing stays mounted.
//!
//! Every run holds a shared flock on the root directory it uses, from
//! before its sweep until after its state is gone. Mounting and unmounting
//! are serialised by exclusive flocks:
//! - the first run takes an exclusive lock on the disk directory, checks
//!   that nothing covers it yet, and mounts the tmpfs over it;
//! - the last run out takes the tmpfs root's lock exclusively, without
//!   waiting (it fails while any other run holds it), and unmounts the
//!   tmpfs if nothing is left in it. A run's leftovers after a SIGKILL keep
//!   it mounted until a sweep (the next run, or `fwrun --cleanup`) has
//!   removed them.
//!
//! A run that opened the root just before it was unmounted, or before a
//! tmpfs covered it, finds after taking its lock that the directory it
//! holds is no longer the one at the path, and starts again.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{anyhow, Result};
use nix::errno::Errno;
use nix::sys::statfs::fstatfs;
use nix::unistd::{chroot, fchdir};
use rustix::fs::{FlockOperation, XattrFlags};

use crate::state::{state_root, STATE_ROOT};
use crate::sys::{errno_text, mountinfo};

/// The source name of fwrun's own tmpfs, as findmnt shows it.
pub const SOURCE: &str = "fwrun-state";
const TMPFS_MAGIC: i64 = 0x0102_1994;
const RAMFS_MAGIC: i64 = 0x8584_58f6;
/// Enough for thousands of runs' state; it holds no firmware data.
const OPTIONS: &str = "mode=0700,size=16m,nr_inodes=65536";
/// Attempts before giving up on a root that keeps changing under fwrun.
const TRIES: usize = 100;

/// A shared hold on the state root: while any run holds it, fwrun's own
/// tmpfs stays mounted.
pub struct Hold {
    dir: File,
    /// Where the tmpfs is mounted: the mount namespace fwrun started in,
    /// with its root and working directory there.
    host: Option<Host>,
}

struct Host {
    ns: File,
    root: File,
    cwd: File,
}

impl Host {
    /// Taken before fwrun enters its private mount namespace.
    fn here() -> Option<Host> {
        Some(Host {
            ns: File::open("/proc/self/ns/mnt").ok()?,
            root: File::open("/").ok()?,
            cwd: File::open(".").ok()?,
        })
    }
}

/// flock(2) of `f`, its error as nix's.
fn flock(f: &File, op: FlockOperation) -> Result<(), Errno> {
    rustix::fs::flock(f, op).map_err(|e| Errno::from_raw(e.raw_os_error()))
}

/// Whether `dir` lives in memory (tmpfs, ramfs).
fn in_memory(dir: &File) -> Result<bool> {
    let fs = fstatfs(dir)
        .map_err(|e| anyhow!("reading the file system of {STATE_ROOT}: {}", errno_text(e)))?;
    #[allow(clippy::unnecessary_cast)]
    let magic = fs.filesystem_type().0 as i64;
    Ok(magic == TMPFS_MAGIC || magic == RAMFS_MAGIC)
}

/// Whether the directory open as `dir` is still the one at `path`.
fn at_path(dir: &File, path: &Path) -> bool {
    match (dir.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

fn open_root() -> Result<File> {
    File::open(STATE_ROOT)
        .map_err(|e| anyhow!("opening {STATE_ROOT}: {}", crate::error::io_reason(&e)))
}

/// Hold the state root for a run, first mounting fwrun's own tmpfs on it
/// if it is on a disk file system.
pub fn hold() -> Result<Hold> {
    state_root()?;
    let host = Host::here();
    for _ in 0..TRIES {
        let dir = open_root()?;
        // In memory already, or a mount the user put there (a directory
        // shared with other containers, say): used as it is.
        if in_memory(&dir)? || mount_root(&dir) {
            if flock(&dir, FlockOperation::LockShared).is_ok()
                && at_path(&dir, Path::new(STATE_ROOT))
            {
                return Ok(Hold { dir, host });
            }
            // Unmounted (or covered) meanwhile: look again.
            continue;
        }
        // On disk: one launcher at a time mounts the tmpfs over it.
        if let Err(e) = flock(&dir, FlockOperation::LockExclusive) {
            return Err(anyhow!("locking {STATE_ROOT}: {}", errno_text(e)));
        }
        if at_path(&dir, Path::new(STATE_ROOT)) {
            mount_tmpfs()?;
            mark()?;
        }
    }
    Err(anyhow!(
        "{STATE_ROOT} kept changing while fwrun took hold of it"
    ))
}

/// Hold the state root only if it is in memory already (for `fwrun
/// --cleanup` and `fwrun list`, which never mount it).
pub fn hold_existing() -> Option<Hold> {
    for _ in 0..TRIES {
        let dir = File::open(STATE_ROOT).ok()?;
        if !in_memory(&dir).ok()? {
            return None;
        }
        if flock(&dir, FlockOperation::LockShared).is_ok() && at_path(&dir, Path::new(STATE_ROOT)) {
            return Some(Hold {
                dir,
                host: Host::here(),
            });
        }
    }
    None
}

fn mount_tmpfs() -> Result<()> {
    nix::mount::mount(
        Some(SOURCE),
        STATE_ROOT,
        Some("tmpfs"),
        nix::mount::MsFlags::MS_NOSUID
            | nix::mount::MsFlags::MS_NODEV
            | nix::mount::MsFlags::MS_NOEXEC,
        Some(OPTIONS),
    )
    .map_err(|e| {
        crate::error::fail(format!(
            "cannot mount a tmpfs for fwrun's state on {STATE_ROOT} (its /run is on a disk file system): {}: mount a tmpfs on /run",
            errno_text(e)
        ))
    })
}

/// The extended attribute that marks the root of fwrun's own tmpfs (in
/// the trusted namespace, which only root can set).
const MARK: &std::ffi::CStr = c"trusted.fwrun-state";

/// Mark the tmpfs just mounted as fwrun's own. A kernel whose tmpfs has
/// no extended attributes leaves it unmarked: its source name tells then.
fn mark() -> Result<()> {
    match rustix::fs::setxattr(STATE_ROOT, MARK, b"1", XattrFlags::empty()) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::OPNOTSUPP => Ok(()),
        Err(e) => {
            let _ = crate::sys::umount_detach(Path::new(STATE_ROOT));
            Err(anyhow!(
                "marking fwrun's tmpfs on {STATE_ROOT}: {}",
                errno_text(Errno::from_raw(e.raw_os_error()))
            ))
        }
    }
}

/// Whether `dir` is the root of fwrun's own tmpfs: only fwrun marks one
/// (or, where tmpfs has no extended attributes, mounts one named so).
fn ours(dir: &File) -> bool {
    let mut v = [0u8; 1];
    match rustix::fs::fgetxattr(dir, MARK, &mut v) {
        Ok(n) => n == 1 && v[0] == b'1',
        Err(e) if e == rustix::io::Errno::OPNOTSUPP => named_ours_at(STATE_ROOT),
        Err(_) => false,
    }
}

/// Whether the mount on top at `path` is a tmpfs with fwrun's source name.
fn named_ours_at(path: &str) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let on_top = mountinfo::entries(&info)
        .rev()
        .find(|m| m.mount_point == path);
    on_top.is_some_and(|m| m.fstype == "tmpfs" && m.source == SOURCE)
}

/// Whether `dir` is the root of a mount.
fn mount_root(dir: &File) -> bool {
    use std::os::fd::AsFd;
    crate::sys::statx_fd(dir.as_fd()).is_some_and(|st| st.mount_root)
}

/// Return to the mount namespace fwrun started in (where the tmpfs is
/// mounted), with the root and working directory it had there: setns
/// would move both to the namespace's root (a relative --report path, a
/// launcher run in a chroot).
fn back_to(host: &Host) -> Result<()> {
    let failed =
        |what: &str, e: Errno| anyhow!("{what} to unmount {STATE_ROOT}: {}", errno_text(e));
    nix::sched::setns(&host.ns, nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| failed("returning to the host's mount namespace", e))?;
    fchdir(&host.root)
        .and_then(|()| chroot("."))
        .map_err(|e| failed("taking back the root directory", e))?;
    fchdir(&host.cwd).map_err(|e| failed("taking back the working directory", e))
}

impl Hold {
    /// Give the hold back. The last holder of fwrun's own tmpfs, with
    /// nothing left in it, unmounts it. Returns whether it did.
    pub fn release(self) -> Result<bool> {
        // A plain directory in the host's /run, or a mount not fwrun's:
        // nothing to unmount.
        if !mount_root(&self.dir) || !ours(&self.dir) {
            return Ok(false);
        }
        // Others hold it still (the conversion may drop this run's shared
        // lock first, which is as good as releasing it).
        if flock(&self.dir, FlockOperation::NonBlockingLockExclusive).is_err() {
            return Ok(false);
        }
        let empty = std::fs::read_dir(STATE_ROOT)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !empty {
            return Ok(false);
        }
        if let Some(host) = &self.host {
            back_to(host)?;
        }
        if !at_path(&self.dir, Path::new(STATE_ROOT)) {
            return Ok(false);
        }
        crate::sys::umount_detach(Path::new(STATE_ROOT))?;
        Ok(true)
    }
}
