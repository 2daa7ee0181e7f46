//! The ways fwrun makes a child, and the only place it does:
//!
//! - [`beside`]: a child that shares fwrun's memory and runs one closure
//!   on a stack of its own while fwrun waits (CLONE_VM and CLONE_VFORK): no
//!   page table is copied, and what the closure returns is simply there
//!   when fwrun goes on. The supervisor's mounts in the firmware's mount
//!   namespace, the teardown's unmounts and the mount probe of the
//!   preflight are such children; so is the builder of the firmware's root.
//! - [`read_ahead`]: a child that shares fwrun's memory and descriptors and
//!   reads files into the page cache while fwrun goes on (CLONE_VM and
//!   CLONE_FILES): it makes system calls only, on values fwrun keeps
//!   unchanged until it is reaped.
//! - [`fork_into`]: a copy of fwrun (clone3) in new namespaces, in a
//!   cgroup, with a pidfd: the firmware's init and `fwrun enter`'s command,
//!   which go on to the start-up sequence (startup.rs) and exec.
//! - [`fork_helper`]: a plain copy of fwrun with no exit signal, that dies
//!   with it: the relay of the published ports (network/relay.rs), which
//!   starts threads of its own and so never forks.
//!
//! None of these children has an exit signal but fork_into's: fwrun's
//! supervisor wakes on SIGCHLD for the firmware's init only, and the others
//! are reaped by pid (`reap`).

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

/// Wait for the child `pid`, of whatever exit signal (__WALL), through
/// interruptions.
pub fn reap(pid: libc::pid_t) {
    let mut status = 0;
    // SAFETY: waitpid into a status we own.
    while unsafe { libc::waitpid(pid, &mut status, libc::__WALL) } < 0
        && Errno::last() == Errno::EINTR
    {}
}

/// clone(2) of a child that runs `f(arg)` on `stack`, with `flags` (the
/// exit signal included). Returns the child's pid, or -1 with errno set.
///
/// # Safety
/// `stack` and whatever `arg` points to must stay alive and untouched by
/// the caller for as long as the child uses them, and `f` may only do in
/// the child what `flags` leaves safe.
unsafe fn clone_on(
    stack: &mut [u8],
    flags: libc::c_int,
    f: extern "C" fn(*mut libc::c_void) -> libc::c_int,
    arg: *mut libc::c_void,
) -> libc::pid_t {
    // The stack grows down from its 16-byte-aligned top.
    let top = (stack.as_mut_ptr() as usize + stack.len()) & !15;
    libc::clone(f, top as *mut libc::c_void, flags, arg)
}

/// A child made by [`beside`]: its pid (not yet reaped) and what its
/// closure returned.
pub struct Beside<T> {
    pub pid: libc::pid_t,
    pub out: T,
}

/// What [`beside`]'s child runs, and where it leaves the result.
struct Job<F, T> {
    work: Option<F>,
    out: Option<T>,
}

extern "C" fn run_job<F: FnOnce() -> T, T>(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the Job of `beside`, alive while fwrun waits for
    // this child (CLONE_VFORK), and touched by nobody else meanwhile.
    let job = unsafe { &mut *(arg as *mut Job<F, T>) };
    if let Some(work) = job.work.take() {
        job.out = Some(work());
    }
    0
}

/// Run `work` in a child that shares fwrun's memory, on a stack of
/// `stack` bytes, while fwrun waits (CLONE_VM | CLONE_VFORK, and `flags`:
/// CLONE_FILES to share the descriptor table, or namespace flags). The
/// child has its own root, working directory and namespaces: it may join
/// other mount namespaces without moving fwrun.
///
/// fwrun is suspended until the child is in its exit, so nothing runs
/// beside it in the shared memory: `work` may allocate, and what it
/// returns (allocated or not) is fwrun's. It must not return or drop
/// anything of fwrun's that fwrun still uses, and it must not panic (a
/// panic aborts the child, and fwrun gets `EIO`). The child is not reaped:
/// [`reap`] it (at once, or later to let the kernel's release of what it
/// held run beside fwrun). Fails with the errno of clone, or EIO when the
/// child ended without returning.
pub fn beside<T, F: FnOnce() -> T>(
    flags: libc::c_int,
    stack: usize,
    work: F,
) -> Result<Beside<T>, Errno> {
    let mut job = Job {
        work: Some(work),
        out: None,
    };
    let mut stack = vec![0u8; stack];
    // SAFETY: the child runs `run_job` on its own stack while fwrun is
    // suspended (CLONE_VFORK); by the time fwrun goes on, it is in its
    // exit and uses neither its stack nor fwrun's memory, and `stack` and
    // `job` outlive it here.
    let pid = unsafe {
        clone_on(
            &mut stack,
            libc::CLONE_VM | libc::CLONE_VFORK | flags,
            run_job::<F, T>,
            &mut job as *mut Job<F, T> as *mut libc::c_void,
        )
    };
    if pid < 0 {
        return Err(Errno::last());
    }
    drop(stack);
    match job.out.take() {
        Some(out) => Ok(Beside { pid, out }),
        None => {
            reap(pid);
            Err(Errno::EIO)
        }
    }
}

/// What the reading child of [`read_ahead`] reads: fwrun's pid, then
/// (descriptor, length) pairs.
struct Reads {
    parent: libc::pid_t,
    files: Vec<(RawFd, usize)>,
}

/// The child of [`read_ahead`], reading: reaped by [`Reader::finish`], or
/// killed and reaped when dropped. Owns what the child uses (its list and
/// its stack), freed only once it is gone.
pub struct Reader {
    pid: libc::pid_t,
    _reads: Box<Reads>,
    _stack: Vec<u8>,
}

/// Its stack: it calls prctl, getppid and readahead, nothing more.
const READER_STACK: usize = 64 << 10;

extern "C" fn read_files(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the Reads a Reader owns, unchanged and alive until
    // this child is reaped.
    let reads = unsafe { &*(arg as *const Reads) };
    // SAFETY: system calls on values fwrun keeps alive; none of them fails
    // for a regular file fwrun holds open, so errno, which is fwrun's, is
    // not written. It dies with fwrun, and reads nothing if fwrun is gone.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        if libc::getppid() == reads.parent {
            for (fd, len) in &reads.files {
                libc::readahead(*fd, 0, *len);
            }
        }
    }
    0
}

/// Read the first `len` bytes of each (descriptor, len) into the page
/// cache, in a child that shares fwrun's memory and descriptor table and
/// goes on while fwrun does (it holds no copy of fwrun's descriptors, so
/// no lock of fwrun's is held by anyone else). The descriptors must stay
/// open until the Reader is gone. None when there is nothing to read or
/// the child could not be made.
pub fn read_ahead(files: Vec<(RawFd, usize)>) -> Option<Reader> {
    if files.is_empty() {
        return None;
    }
    let reads = Box::new(Reads {
        parent: std::process::id() as libc::pid_t,
        files,
    });
    let mut stack = vec![0u8; READER_STACK];
    let arg = &*reads as *const Reads as *mut libc::c_void;
    // SAFETY: the child runs `read_files` on its own stack, reading only
    // `reads`; the Reader owns both and reaps the child before freeing
    // them.
    let pid = unsafe {
        clone_on(
            &mut stack,
            libc::CLONE_VM | libc::CLONE_FILES,
            read_files,
            arg,
        )
    };
    (pid > 0).then_some(Reader {
        pid,
        _reads: reads,
        _stack: stack,
    })
}

impl Reader {
    /// Let the child finish its reading, and reap it.
    pub fn finish(mut self) {
        self.reap();
    }

    fn reap(&mut self) {
        if self.pid > 0 {
            reap(self.pid);
            self.pid = 0;
        }
    }

    #[cfg(test)]
    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }
}

/// Where the run went another way (a failed setup), the child is killed
/// rather than waited for.
impl Drop for Reader {
    fn drop(&mut self) {
        if self.pid > 0 {
            // Our own child, not yet reaped: its pid is not reused.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            self.reap();
        }
    }
}

/// A child of [`fork_into`], seen from fwrun.
pub struct Forked {
    pub pid: libc::pid_t,
    pub pidfd: OwnedFd,
}

/// Fork fwrun into new namespaces (`namespaces`, CLONE_NEW* flags) and,
/// when `cgroup` is an open cgroup directory, into that cgroup (clone3's
/// CLONE_INTO_CGROUP: the child never runs outside it), with a pidfd and
/// SIGCHLD as its exit signal. The child runs `child`, which should not
/// return (it execs or exits); fwrun gets the child's pid and pidfd.
///
/// The child runs on a copy of fwrun's memory and may allocate: fwrun is
/// single-threaded (it reads its signals from a signalfd and starts no
/// thread), so no lock of another thread is copied held.
pub fn fork_into(
    namespaces: libc::c_int,
    cgroup: Option<RawFd>,
    child: impl FnOnce(),
) -> Result<Forked, Errno> {
    /// clone3's flag: start the child in the cgroup given by `cgroup`
    /// (5.7+); the musl flavour of libc does not name it.
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    let mut flags = namespaces as u64;
    let mut into = 0;
    if let Some(fd) = cgroup {
        flags |= CLONE_INTO_CGROUP;
        into = fd as u64;
    }
    clone3_fork(flags, libc::SIGCHLD as u64, into, child)
}

/// Fork a plain copy of fwrun, in its namespaces, with a pidfd and no exit
/// signal (the supervisor's SIGCHLD stays the init's; the caller reaps it
/// by pid): a helper that serves the run beside the supervisor, as the
/// relay of the published ports. It runs `child`, which should not return.
pub fn fork_helper(child: impl FnOnce()) -> Result<Forked, Errno> {
    clone3_fork(0, 0, 0, child)
}

/// Fork a sibling of this process (clone3 with CLONE_PARENT: its parent is
/// this process's parent, who waits for it), with a pidfd, into the pid
/// namespace this process chose for its children. The child runs `child`,
/// which should not return; this process gets its pid and pidfd.
pub fn fork_sibling(child: impl FnOnce()) -> Result<Forked, Errno> {
    // With CLONE_PARENT the exit signal is the caller's own, and must be
    // left 0 here. The caller is a child of fwrun's, single-threaded as
    // fwrun is.
    clone3_fork(libc::CLONE_PARENT as u64, 0, 0, child)
}

/// clone3 as a fork (no stack given: the child continues on a copy of this
/// one), with `flags` and a pidfd; the child runs `child` and exits.
fn clone3_fork(
    flags: u64,
    exit_signal: u64,
    cgroup: u64,
    child: impl FnOnce(),
) -> Result<Forked, Errno> {
    let mut pidfd: libc::c_int = -1;
    // SAFETY: a zeroed clone_args is clone3's "nothing asked" for every
    // field; the ones that matter are set below.
    let mut args: libc::clone_args = unsafe { std::mem::zeroed() };
    args.flags = flags | libc::CLONE_PIDFD as u64;
    args.pidfd = &mut pidfd as *mut libc::c_int as u64;
    args.exit_signal = exit_signal;
    args.cgroup = cgroup;
    // SAFETY: clone3 as a fork; see `fork_into` for why the child may run
    // Rust code.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const libc::clone_args,
            std::mem::size_of::<libc::clone_args>(),
        )
    };
    match ret {
        -1 => Err(Errno::last()),
        0 => {
            child();
            // SAFETY: leave without running fwrun's destructors in the
            // child, should `child` return after all.
            unsafe { libc::_exit(crate::error::LAUNCHER_FAILED) }
        }
        pid => Ok(Forked {
            pid: pid as libc::pid_t,
            // SAFETY: clone3 just gave us this descriptor.
            pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
        }),
    }
}

/// The ids a firmware's user namespace maps, each to itself: 0 to 65535,
/// every user and group a device's root file system has (its files need
/// no shifting), as systemd-nspawn's identity mapping does. Not the whole
/// range: a systemd init reads a map of every id as "no user namespace",
/// and would mount what it cannot mount in one (hugetlbfs, fusectl).
pub const IDENTITY_MAP: &str = "0 0 65536";

/// Write the identity map ([`IDENTITY_MAP`]) of the user namespace process
/// `pid` is in, for its users and its groups. fwrun writes it, as the
/// parent namespace's root; the child cannot.
pub fn write_identity_map(pid: libc::pid_t) -> std::io::Result<()> {
    for map in ["uid_map", "gid_map"] {
        std::fs::write(format!("/proc/{pid}/{map}"), IDENTITY_MAP)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::io::Write;

    /// The reading child reads the file and is reaped: once the value is
    /// dropped no child of this process is left (waitpid says ECHILD).
    #[test]
    fn the_reader_is_reaped() {
        use std::os::fd::AsRawFd;
        let path = std::env::temp_dir().join(format!("fwrun-reader-{}", std::process::id()));
        let mut f = std::fs::File::options()
            .create_new(true)
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        f.write_all(&vec![7u8; 1 << 20]).unwrap();
        let r = read_ahead(vec![(f.as_raw_fd(), 1 << 20)]).expect("a child");
        let pid = r.pid();
        drop(r);
        let got = nix::sys::wait::waitpid(
            nix::unistd::Pid::from_raw(pid),
            Some(nix::sys::wait::WaitPidFlag::__WALL | nix::sys::wait::WaitPidFlag::WNOHANG),
        );
        assert_eq!(got, Err(Errno::ECHILD));
        assert!(read_ahead(Vec::new()).is_none());
    }

    /// What the closure returns, allocated in the child, is fwrun's once
    /// it goes on; the child's own namespaces do not move fwrun.
    #[test]
    fn a_child_beside_hands_back_what_it_made() {
        let before = std::fs::read_link("/proc/self/ns/uts").unwrap();
        let b = beside(libc::CLONE_NEWUTS, 64 << 10, || {
            let joined = nix::sched::unshare(nix::sched::CloneFlags::empty()).is_ok();
            format!("made in {}, {joined}", std::process::id())
        })
        .unwrap();
        reap(b.pid);
        assert!(b.out.starts_with("made in"), "{}", b.out);
        assert_eq!(std::fs::read_link("/proc/self/ns/uts").unwrap(), before);
    }
}
