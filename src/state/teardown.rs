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

use std::path::Path;
use std::sync::Mutex;

use anyhow::Result;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::MntFlags;
use nix::sys::stat::Mode;

use crate::process::spawn;

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

/// Detach the mount at `path` (as `umount -l` does) in a child that holds
/// the only reference to it when it exits, so that the mount's release
/// runs in that child while fwrun goes on. The child shares fwrun's memory
/// and fwrun waits while it runs (process/spawn.rs's `beside`). It starts
/// with fwrun's descriptor table and leaves it for an empty one of its own
/// (close_range with CLOSE_RANGE_UNSHARE), so that it never holds a copy
/// of fwrun's descriptors (locks fwrun holds must not outlive fwrun's own
/// release of them); then it opens the mount's root, detaches the mount,
/// and exits. fwrun goes on as the child starts its exit; the child's last
/// reference goes after that. Without a child, fwrun unmounts it itself.
pub fn detach_beside(path: &Path) -> Result<()> {
    let detach = || -> std::result::Result<(), Errno> {
        // A table of its own, empty: no copy of fwrun's descriptors is
        // ever made.
        crate::sys::unshare_empty_fd_table()?;
        // Held until this child exits: the mount's last reference. Never
        // closed here: the child's exit closes it.
        let root = nix::fcntl::open(
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        );
        std::mem::forget(root);
        nix::mount::umount2(path, MntFlags::MNT_DETACH)
    };
    const STACK: usize = 16 << 10;
    let child = match spawn::beside(libc::CLONE_FILES, STACK, detach) {
        Ok(c) => c,
        Err(_) => return crate::sys::umount_detach(path),
    };
    BESIDE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(child.pid);
    match child.out {
        Ok(()) => Ok(()),
        Err(e) => crate::sys::detach_failed(path, e),
    }
}

/// Wait for the children [`detach_beside`] made: once this returns, the
/// mounts they detached are released.
pub fn settle() {
    let pids = std::mem::take(&mut *BESIDE.lock().unwrap_or_else(|e| e.into_inner()));
    for pid in pids {
        spawn::reap(pid);
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
        assert!(nix::unistd::geteuid().is_root(), "this test needs root");
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
