//! Teardown: a stack of undo steps, pushed as resources are acquired and run
//! in reverse on every exit path. Each step is idempotent; a failing step is
//! reported and the rest still run.
//!
//! A step may hand the last reference to what it undoes to a child that
//! lets go of it as it exits ([`let_go_beside`]): the kernel's work of
//! releasing it (an image's superblock shut down, its loop device
//! detached) then runs in that child, beside the rest of the teardown.
//! fwrun waits for those children before it exits ([`settle`]), so nothing
//! of a run outlives fwrun.

use std::os::fd::{AsRawFd, OwnedFd};
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

/// Children letting go of something beside the teardown, waited for by
/// [`settle`].
static BESIDE: Mutex<Vec<libc::pid_t>> = Mutex::new(Vec::new());

/// Let go of `last` (the last reference to, say, a detached mount) in a
/// child, so that its release runs beside what fwrun does next. The child
/// shares fwrun's memory and fwrun waits while it runs (CLONE_VM and
/// CLONE_VFORK): it closes every other descriptor of its copy of fwrun's
/// table (locks fwrun still holds must not outlive fwrun's own release of
/// them) and exits. fwrun goes on as the child exits; the child then closes
/// `last`, and the kernel releases what it held from the child's exit.
/// Without a child, `last` is closed here.
pub fn let_go_beside(last: OwnedFd) {
    extern "C" fn keep_only(arg: *mut libc::c_void) -> libc::c_int {
        let fd = arg as usize as libc::c_uint;
        // SAFETY: close_range on this child's own copy of the table.
        unsafe {
            if fd > 0 {
                libc::syscall(libc::SYS_close_range, 0u32, fd - 1, 0u32);
            }
            libc::syscall(libc::SYS_close_range, fd + 1, u32::MAX, 0u32);
        }
        0
    }
    const STACK: usize = 16 << 10;
    let mut stack = vec![0u8; STACK];
    // The stack grows down from its 16-byte-aligned top.
    let top = (stack.as_mut_ptr() as usize + STACK) & !15;
    // SAFETY: the child runs `keep_only` (system calls only) on its own
    // stack while fwrun waits (CLONE_VFORK); by the time fwrun goes on, the
    // child is in its exit and uses neither its stack nor fwrun's memory.
    let pid = unsafe {
        libc::clone(
            keep_only,
            top as *mut libc::c_void,
            libc::CLONE_VM | libc::CLONE_VFORK,
            last.as_raw_fd() as usize as *mut libc::c_void,
        )
    };
    drop(stack);
    if pid > 0 {
        BESIDE.lock().unwrap_or_else(|e| e.into_inner()).push(pid);
    }
    drop(last);
}

/// Wait for the children [`let_go_beside`] made: once this returns, what
/// they let go of is released.
pub fn settle() {
    let pids = std::mem::take(&mut *BESIDE.lock().unwrap_or_else(|e| e.into_inner()));
    for pid in pids {
        let mut status = 0;
        // SAFETY: waiting for our own child (it has no exit signal: __WALL).
        while unsafe { libc::waitpid(pid, &mut status, libc::__WALL) } < 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
        {}
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

    /// The child lets go of the descriptor: once settled, the pipe's write
    /// end is closed everywhere, so its read end sees the end of file.
    #[test]
    fn a_descriptor_let_go_beside_is_closed_once_settled() {
        use std::io::Read;
        let (r, w) = nix::unistd::pipe().unwrap();
        let_go_beside(w);
        settle();
        let mut rest = Vec::new();
        let n = std::fs::File::from(r).read_to_end(&mut rest).unwrap();
        assert_eq!(n, 0);
        assert!(BESIDE.lock().unwrap().is_empty());
    }
}
