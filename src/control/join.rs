//! The command's side of `fwrun enter`, in the child forked into the
//! firmware's pid namespace (and the init's cgroup, when the run has one of
//! its own): join the init's other namespaces, its root and
//! working directory, take the terminal, close what fwrun held, confine
//! itself as the init is (firmware/exec.rs: AppArmor profile, capabilities,
//! seccomp filter whose descriptor goes to the parent), and exec the
//! command, a bare name looked up in the firmware's PATH. A failure goes
//! back over the error pipe as the init's does (firmware/mod.rs).

use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};

use anyhow::{anyhow, Result};
use nix::errno::Errno;

use crate::error::{self, INIT_NOT_EXECUTABLE, INIT_NOT_FOUND, LAUNCHER_FAILED};
use crate::firmware::exec::{confine_as, reset_signals};
use crate::sys::errno_text;

/// The init's namespaces that the command joins besides its pid namespace
/// (which the parent joins for its children before the fork).
pub const NAMESPACES: libc::c_int = libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP;

/// What the command is given, opened and checked by the parent.
pub struct JoinSpec {
    /// A pidfd of the run's init.
    pub init: OwnedFd,
    /// The init's root and working directory (opened through /proc).
    pub root: OwnedFd,
    pub cwd: OwnedFd,
    /// The init's cgroup, when the run has a cgroup of its own: the
    /// command is cloned into it.
    pub cgroup: Option<OwnedFd>,
    /// The pty's slave, in the firmware's own devpts.
    pub tty: Option<OwnedFd>,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    /// Where a bare command name is looked up.
    pub path: String,
    pub profile: Option<String>,
    pub caps: Vec<caps::Capability>,
    pub seccomp: bool,
}

pub fn child_main(spec: &JoinSpec, err_w: OwnedFd, sock: OwnedFd) -> ! {
    let (code, msg) = match join(spec, &sock) {
        Err(e) => (error::exit_code(&e), error::one_line(&e)),
        Ok(()) => exec(spec),
    };
    let _ = File::from(err_w).write_all(format!("{code}\t{msg}").as_bytes());
    // SAFETY: leave without running the parent's destructors in the child.
    unsafe { libc::_exit(code) }
}

fn check(r: libc::c_int, what: &str) -> Result<()> {
    match r {
        0 => Ok(()),
        _ => Err(anyhow!("{what}: {}", errno_text(Errno::last()))),
    }
}

fn join(spec: &JoinSpec, sock: &OwnedFd) -> Result<()> {
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
        .map_err(|e| anyhow!("setting the parent-death signal: {}", errno_text(e)))?;
    let mut p = libc::pollfd {
        fd: sock.as_raw_fd(),
        events: 0,
        revents: 0,
    };
    // SAFETY: poll on one valid descriptor, no wait. A hang-up: the parent
    // died before the parent-death signal was set.
    if unsafe { libc::poll(&mut p, 1, 0) } != 0 {
        return Err(anyhow!("fwrun went away"));
    }
    // SAFETY: plain syscalls on descriptors this process holds.
    unsafe {
        check(
            libc::setns(spec.init.as_raw_fd(), NAMESPACES),
            "joining the firmware's namespaces",
        )?;
        check(
            libc::fchdir(spec.root.as_raw_fd()),
            "entering the firmware's root",
        )?;
        check(libc::chroot(c".".as_ptr()), "entering the firmware's root")?;
        if libc::fchdir(spec.cwd.as_raw_fd()) != 0 {
            libc::chdir(c"/".as_ptr());
        }
    }
    take_terminal(spec)?;
    // Nothing of fwrun's reaches the command.
    // SAFETY: plain syscall.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    reset_signals();
    confine_as(spec.profile.as_deref(), &spec.caps, spec.seccomp, sock)
}

/// With a pty: a session of its own, the pty as its controlling terminal
/// and stdin, stdout, stderr. Without: fwrun's own, in fwrun's process
/// group (a terminal's signals reach it as they reach fwrun).
fn take_terminal(spec: &JoinSpec) -> Result<()> {
    let Some(tty) = &spec.tty else {
        return Ok(());
    };
    nix::unistd::setsid().map_err(|e| anyhow!("creating a new session: {}", errno_text(e)))?;
    // SAFETY: dup2 and ioctl on descriptors this process holds.
    unsafe {
        for fd in 0..3 {
            if libc::dup2(tty.as_raw_fd(), fd) < 0 {
                return Err(anyhow!(
                    "giving the command its terminal: {}",
                    errno_text(Errno::last())
                ));
            }
        }
        check(
            libc::ioctl(0, libc::TIOCSCTTY, 0),
            "making the pty the command's controlling terminal",
        )
    }
}

/// Exec the command (returns only on failure, with the exit code and the
/// message): a path as it is, a bare name from each PATH entry in turn.
fn exec(spec: &JoinSpec) -> (i32, String) {
    let argv = crate::sys::c_array(&spec.argv);
    let envp = crate::sys::c_array(&spec.envp);
    let name = spec.argv[0].to_bytes();
    let shown = String::from_utf8_lossy(name).into_owned();
    let try_exec = |prog: &CString| {
        // SAFETY: NULL-terminated arrays of valid C strings.
        unsafe { libc::execve(prog.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        Errno::last()
    };
    if name.contains(&b'/') {
        return failure(&shown, try_exec(&spec.argv[0]));
    }
    let mut denied = None;
    for dir in spec.path.split(':').filter(|d| !d.is_empty()) {
        let mut full = dir.as_bytes().to_vec();
        full.push(b'/');
        full.extend_from_slice(name);
        let Ok(full) = CString::new(full) else {
            continue;
        };
        match try_exec(&full) {
            Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP => {}
            e @ (Errno::EACCES | Errno::EPERM) => denied = Some(e),
            e => return failure(&shown, e),
        }
    }
    match denied {
        Some(e) => failure(&shown, e),
        None => (
            INIT_NOT_FOUND,
            format!(
                "command '{shown}' was not found in the firmware's PATH ({}): give its full path",
                spec.path
            ),
        ),
    }
}

/// The exit code (126, 127 as for the init) and message for a failed exec.
fn failure(cmd: &str, e: Errno) -> (i32, String) {
    match e {
        Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP => (
            INIT_NOT_FOUND,
            format!("command '{cmd}' (or the interpreter its #! line names) was not found in the firmware"),
        ),
        Errno::EACCES | Errno::ENOEXEC | Errno::EISDIR | Errno::EPERM => (
            INIT_NOT_EXECUTABLE,
            format!("command '{cmd}' cannot be executed ({})", errno_text(e)),
        ),
        e => (
            LAUNCHER_FAILED,
            format!("executing command '{cmd}': {}", errno_text(e)),
        ),
    }
}
