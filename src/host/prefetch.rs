//! The init's program read ahead while the run sets itself up.
//!
//! An image that no other run holds gets a new superblock with nothing
//! cached. The init's exec would then fault its program in one read-around
//! at a time, each a round trip through the loop device, and for ext2 each
//! preceded by the indirect blocks that map it, read one by one. Asked from
//! fwrun itself, those reads would hold up the launcher as much as the exec.
//!
//! So a child process asks for them (readahead(2) of the whole program and
//! of its dynamic loader) while fwrun goes on with the run's profile, its
//! cgroups and the clone. By the time the init is exec'd its pages are in
//! the image's page cache, or on their way there. A directory or an image
//! another run holds is served from a warm cache: no child is made then.
//!
//! The child shares fwrun's memory (CLONE_VM: no page table is copied, and
//! fwrun's writes after the clone take no copy-on-write faults) and its
//! descriptor table (CLONE_FILES: it holds no copy of fwrun's descriptors,
//! so no lock of fwrun's is held by anyone else), and runs on a stack of
//! its own. It only makes system calls, on values fwrun
//! keeps unchanged until it is reaped: it touches no allocator, lock or
//! thread-local state of fwrun's. It dies with fwrun (PR_SET_PDEATHSIG)
//! and has no exit signal, so the supervisor's SIGCHLD is not woken for
//! it. fwrun reaps it while the init's child sets itself up, before that
//! child may exec: once the init runs, it is fwrun's only child.

use std::fs::File;
use std::os::fd::AsRawFd;

/// How much of a file is read ahead at most: an init larger than this
/// has its start read, which is what its exec touches first.
const AT_MOST: u64 = 32 << 20;

/// The child's stack: it calls prctl, getppid and readahead, nothing more.
const STACK: usize = 64 << 10;

/// What the child reads: fwrun's pid, then (descriptor, length) pairs.
struct Work {
    parent: libc::pid_t,
    files: Vec<(i32, usize)>,
}

/// The child reading ahead: reaped by [`Prefetch::finish`], or killed and
/// reaped when dropped. Owns what the child uses: the files, the list of
/// them and its stack, all freed only once it is gone.
pub struct Prefetch {
    pid: libc::pid_t,
    _files: Vec<File>,
    _work: Box<Work>,
    _stack: Vec<u8>,
}

/// Read `files` ahead in a child. None when there is nothing to read or
/// the child could not be made (the run goes on, only slower).
pub fn start(files: Vec<File>) -> Option<Prefetch> {
    let work = Box::new(Work {
        // SAFETY: getpid has no preconditions.
        parent: unsafe { libc::getpid() },
        files: files
            .iter()
            .filter_map(|f| {
                let meta = f.metadata().ok()?;
                let len = meta.len().min(AT_MOST);
                (meta.is_file() && len > 0).then_some((f.as_raw_fd(), len as usize))
            })
            .collect(),
    });
    if work.files.is_empty() {
        return None;
    }
    extern "C" fn read_ahead(arg: *mut libc::c_void) -> libc::c_int {
        // SAFETY: `arg` is the Work the Prefetch owns, unchanged and alive
        // until this child is reaped.
        let work = unsafe { &*(arg as *const Work) };
        // SAFETY: system calls on values fwrun keeps alive; none of them
        // fails for a regular file fwrun holds open, so errno, which is
        // fwrun's, is not written.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            if libc::getppid() == work.parent {
                for (fd, len) in &work.files {
                    libc::readahead(*fd, 0, *len);
                }
            }
        }
        0
    }
    let mut stack = vec![0u8; STACK];
    let arg = &*work as *const Work as *mut libc::c_void;
    // SAFETY: the child runs `read_ahead` on its own stack, reading only
    // `work`; everything it uses lives in the Prefetch, which reaps it
    // before freeing any of it.
    let flags = libc::CLONE_VM | libc::CLONE_FILES;
    let pid = unsafe { crate::sys::clone_on(&mut stack, flags, read_ahead, arg) };
    (pid > 0).then_some(Prefetch {
        pid,
        _files: files,
        _work: work,
        _stack: stack,
    })
}

impl Prefetch {
    /// Let the child finish its reading, and reap it.
    pub fn finish(mut self) {
        self.reap();
    }

    fn reap(&mut self) {
        if self.pid <= 0 {
            return;
        }
        crate::sys::reap(self.pid);
        self.pid = 0;
    }
}

/// Where the run went another way (a failed setup), the child is killed
/// rather than waited for.
impl Drop for Prefetch {
    fn drop(&mut self) {
        if self.pid > 0 {
            // SAFETY: our own child, not yet reaped (so its pid is not reused).
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            self.reap();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::io::Write;

    use crate::state::scratch::unlinked_file;

    /// The child reads the file and is reaped: once the value is dropped
    /// no child of this process is left (waitpid says ECHILD for it).
    #[test]
    fn the_child_is_reaped() {
        let mut f = unlinked_file("prefetch");
        f.write_all(&vec![7u8; 1 << 20]).unwrap();
        let p = start(vec![f]).expect("a child");
        let pid = p.pid;
        drop(p);
        // SAFETY: asking about a pid, with WNOHANG.
        let r = unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::__WALL | libc::WNOHANG) };
        assert_eq!(r, -1);
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::ECHILD)
        );
    }

    #[test]
    fn nothing_to_read_makes_no_child() {
        let f = unlinked_file("prefetch");
        assert!(start(vec![f]).is_none());
        assert!(start(Vec::new()).is_none());
        let dev_null = File::open("/dev/null").unwrap();
        assert!(start(vec![dev_null]).is_none(), "not a regular file");
    }
}
