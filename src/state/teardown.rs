//! Teardown: a stack of undo steps, pushed as resources are acquired and run
//! in reverse on every exit path. Each step is idempotent; a failing step is
//! reported and the rest still run.
//!
//! A step may unmount in a child ([`detach_beside`]): the child takes the
//! only reference to the mount, detaches it and exits, and the kernel's
//! work of releasing it (a superblock shut down, an image's loop device
//! detached) runs in that child's exit, beside the rest of the teardown.
//! fwrun waits for those children before it exits ([`settle`]), so nothing
//! of a run outlives fwrun.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Mutex;

use anyhow::Result;

type Undo = Box<dyn FnOnce() -> Result<()>>;

#[derive(Default)]
pub struct Teardown {
    steps: Vec<(&'static str, Undo)>,
}

impl Teardown {
    pub fn new() -> Self {
        Self::default()
    }

    /// Remember how to undo the step just done.
    pub fn push(&mut self, name: &'static str, undo: impl FnOnce() -> Result<()> + 'static) {
        self.steps.push((name, Box::new(undo)));
    }

    /// Run every undo step, last first. Returns the failures, as
    /// "step: reason" lines.
    pub fn run(&mut self) -> Vec<String> {
        let mut failures = Vec::new();
        while let Some((name, undo)) = self.steps.pop() {
            if let Err(e) = undo() {
                failures.push(format!("undoing {name}: {e:#}"));
            }
            if let Err(e) = crate::fault::step(&format!("teardown:{name}")) {
                failures.push(format!("undoing {name}: {e:#}"));
            }
        }
        failures
    }
}

impl Drop for Teardown {
    fn drop(&mut self) {
        for f in self.run() {
            eprintln!("fwrun: warning: {f}");
        }
    }
}

/// Children releasing a mount beside the teardown, waited for by
/// [`settle`].
static BESIDE: Mutex<Vec<libc::pid_t>> = Mutex::new(Vec::new());

/// What the child of [`detach_beside`] reads and answers.
struct Detach {
    path: CString,
    /// The errno of the unmount, 0 if it succeeded.
    errno: i32,
}

/// Detach the mount at `path` (as `umount -l` does) in a child that holds
/// the only reference to it when it exits, so that the mount's release
/// runs in that child while fwrun goes on. The child shares fwrun's memory
/// and fwrun waits while it runs (CLONE_VM and CLONE_VFORK). It starts
/// with fwrun's descriptor table and leaves it for an empty one of its own
/// (close_range with CLOSE_RANGE_UNSHARE), so that it never holds a copy
/// of fwrun's descriptors (locks fwrun holds must not outlive fwrun's own
/// release of them); then it opens the mount's root, detaches the mount,
/// and exits. fwrun goes on as the child starts its exit; the child's last
/// reference goes after that. Without a child, fwrun unmounts it itself.
pub fn detach_beside(path: &Path) -> Result<()> {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return crate::sys::umount_detach(path);
    };
    let mut work = Detach { path: c, errno: 0 };
    extern "C" fn detach(arg: *mut libc::c_void) -> libc::c_int {
        // SAFETY: `arg` is the Detach below; fwrun waits until this child
        // is in its exit (CLONE_VFORK), so the errno it may write (fwrun's)
        // is not read meanwhile. System calls only.
        unsafe {
            let work = &mut *(arg as *mut Detach);
            // A table of its own, empty: no copy of fwrun's descriptors
            // is ever made.
            libc::syscall(
                libc::SYS_close_range,
                0u32,
                u32::MAX,
                libc::CLOSE_RANGE_UNSHARE,
            );
            // Held until this child exits: the mount's last reference.
            libc::open(
                work.path.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            );
            if libc::umount2(work.path.as_ptr(), libc::MNT_DETACH) != 0 {
                work.errno = *libc::__errno_location();
            }
        }
        0
    }
    const STACK: usize = 16 << 10;
    let mut stack = vec![0u8; STACK];
    // SAFETY: the child runs `detach` on its own stack while fwrun waits;
    // by the time fwrun goes on, it is in its exit and uses neither its
    // stack nor fwrun's memory.
    let pid = unsafe {
        crate::sys::clone_on(
            &mut stack,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_FILES,
            detach,
            &mut work as *mut Detach as *mut libc::c_void,
        )
    };
    drop(stack);
    if pid <= 0 {
        return crate::sys::umount_detach(path);
    }
    BESIDE.lock().unwrap_or_else(|e| e.into_inner()).push(pid);
    match work.errno {
        0 => Ok(()),
        e => crate::sys::detach_failed(path, nix::errno::Errno::from_raw(e)),
    }
}

/// Wait for the children [`detach_beside`] made: once this returns, the
/// mounts they detached are released.
pub fn settle() {
    let pids = std::mem::take(&mut *BESIDE.lock().unwrap_or_else(|e| e.into_inner()));
    for pid in pids {
        crate::sys::reap(pid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    #[test]
    fn reverse_order_and_failures_do_not_stop_the_rest() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let mut t = Teardown::new();
        for (name, fails) in [("a", false), ("b", true), ("c", false)] {
            let log = log.clone();
            t.push(name, move || {
                log.borrow_mut().push(name);
                if fails {
                    anyhow::bail!("{name} broke")
                }
                Ok(())
            });
        }
        let failures = t.run();
        assert_eq!(*log.borrow(), ["c", "b", "a"]);
        assert_eq!(failures, ["undoing b: b broke"]);
        assert!(t.run().is_empty(), "a second run does nothing");
    }

    /// Root only: a tmpfs detached beside is gone from the mount table at
    /// once, and the child that released it is reaped by settle.
    #[test]
    fn a_mount_detached_beside_is_released_once_settled() {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(unsafe { libc::geteuid() }, 0, "this test needs root");
        let dir = std::env::temp_dir().join(format!("fwrun-beside-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // In a mount namespace of this test's own, so that nothing reaches
        // the host's table whatever happens.
        let ns = std::thread::spawn({
            let dir = dir.clone();
            move || {
                let mounted = || {
                    std::fs::read_to_string("/proc/thread-self/mountinfo")
                        .unwrap()
                        .lines()
                        .any(|l| l.split(' ').nth(4) == Some(dir.to_str().unwrap()))
                };
                nix::sched::unshare(
                    nix::sched::CloneFlags::CLONE_NEWNS | nix::sched::CloneFlags::CLONE_FS,
                )
                .unwrap();
                nix::mount::mount(
                    None::<&str>,
                    "/",
                    None::<&str>,
                    nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
                    None::<&str>,
                )
                .unwrap();
                nix::mount::mount(
                    Some("fwrun-beside"),
                    &dir,
                    Some("tmpfs"),
                    nix::mount::MsFlags::empty(),
                    None::<&str>,
                )
                .unwrap();
                assert!(mounted());
                detach_beside(&dir).unwrap();
                assert!(!mounted());
                assert!(!BESIDE.lock().unwrap().is_empty());
                settle();
                assert!(BESIDE.lock().unwrap().is_empty());
                // A second detach finds nothing there: not an error.
                detach_beside(&dir).unwrap();
                settle();
            }
        });
        ns.join().unwrap();
        std::fs::remove_dir(&dir).unwrap();
    }
}
