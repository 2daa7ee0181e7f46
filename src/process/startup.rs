//! The one start-up sequence of every child that runs a program of the
//! firmware's: its init, and the commands of `fwrun enter` and of
//! `--ready-when exec:`. In order:
//!
//! 1. die with fwrun (the parent-death signal), and leave if fwrun has
//!    already gone (its end of the channel is closed);
//! 2. enter its world, which the caller gives: the init joins the mount
//!    namespace of the root fwrun built for it (firmware/setup.rs), whose
//!    mounts arrive locked when it runs in a user namespace of its own; a
//!    command joins the user namespace, the mount and other namespaces,
//!    root and working directory of a running init (join.rs);
//! 3. its session and terminal (for a program forked last, in step 7);
//! 4. nothing of fwrun's open past the exec (close_range);
//! 5. signal dispositions and mask reset;
//! 6. confined: AppArmor profile, capabilities, seccomp filter
//!    (confine.rs);
//! 7. exec (exec.rs); or, with --as-pid2, fwrun's minimal pid 1 that starts
//!    the program (pid2.rs); or, for a command, exec in a child forked now,
//!    the only process of fwrun's that the firmware's pid namespace ever
//!    holds, confined before it exists.
//!
//! A failure at any step goes back to fwrun over the channel, typed, and
//! the child exits with its code.

use std::ffi::CString;
use std::os::fd::{BorrowedFd, RawFd};

use anyhow::{anyhow, Result};

use crate::error;
use crate::process::channel::{Channel, Failure};
use crate::process::confine::Confinement;
use crate::process::exec::{exec, reset_signals, Program};
use crate::process::pid2;
use crate::sys::errno_text;

/// A child's stdin, stdout, stderr and session. The descriptors are
/// fwrun's, open until the child has exec'd.
#[derive(Debug, Clone, Copy, Default)]
pub struct Terminal {
    /// Lead a session of its own (the init always does: a terminal's
    /// Ctrl-C then goes to fwrun, which stops the firmware).
    pub new_session: bool,
    /// A pty's slave: stdin, stdout, stderr and the controlling terminal.
    pub tty: Option<RawFd>,
    /// Otherwise, any of the three given here; the others stay fwrun's.
    pub stdin: Option<RawFd>,
    pub stdout: Option<RawFd>,
    pub stderr: Option<RawFd>,
}

/// Everything the sequence needs besides the world.
#[derive(Debug, Clone)]
pub struct Startup {
    pub terminal: Terminal,
    pub confinement: Confinement,
    pub program: Program,
    /// Run the program as pid 2 under fwrun's minimal pid 1.
    pub as_pid2: bool,
    /// Exec the program in a child forked last (into the pid namespace the
    /// world step chose for children); this process tells fwrun about it
    /// and exits.
    pub fork_last: bool,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
}

/// Run the sequence in a child fwrun just made; `world` is step 2. Never
/// returns: the child execs or exits.
pub fn start(chan: Channel, s: &Startup, world: impl FnOnce(&Channel) -> Result<()>) -> ! {
    crate::fault::in_child(chan.as_raw_fd());
    // Opened while this process's /proc is still the host's.
    let mut prepared = Some(s.confinement.prepare());
    let ready = (|| {
        die_with_parent(&chan)?;
        world(&chan)?;
        // A program forked last takes the terminal itself: the session
        // must be its own, not that of this process, which leaves.
        if !s.fork_last {
            take_terminal(&s.terminal)?;
        }
        // Nothing of fwrun's (lock, image, pipes) reaches the program.
        // SAFETY: plain syscall; it only marks descriptors close-on-exec.
        unsafe {
            libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            )
        };
        Ok(())
    })();
    let failed = match ready {
        Err(e) => Failure {
            code: error::exit_code(&e),
            message: error::one_line(&e),
        },
        Ok(()) => run(&chan, s, prepared.take().expect("prepared once")),
    };
    chan.fail(&failed);
    // SAFETY: leave without running the parent's destructors in the child.
    unsafe { libc::_exit(failed.code) }
}

/// Steps 5 to 7; returns only on failure.
fn run(chan: &Channel, s: &Startup, prepared: crate::process::confine::Prepared) -> Failure {
    let launcher = |e: anyhow::Error| Failure {
        code: error::LAUNCHER_FAILED,
        message: error::one_line(&e),
    };
    if s.as_pid2 {
        // fwrun's pid 1 is confined like the program it starts.
        if let Err(e) = s.confinement.apply(prepared, chan) {
            return launcher(e);
        }
        return pid2::start(chan, &s.program, &s.argv, &s.envp, s.terminal.tty.is_some());
    }
    reset_signals();
    if let Err(e) = s.confinement.apply(prepared, chan) {
        return launcher(e);
    }
    if s.fork_last {
        return fork_then_exec(chan, s);
    }
    exec(&s.program, &s.argv, &s.envp)
}

/// The program in a child of its own (a sibling of this process, fwrun's
/// child too); this process tells fwrun about it and leaves. Returns only
/// if the fork failed.
fn fork_then_exec(chan: &Channel, s: &Startup) -> Failure {
    let forked = crate::process::spawn::fork_sibling(|| {
        let failed = match take_terminal(&s.terminal) {
            Ok(()) => exec(&s.program, &s.argv, &s.envp),
            Err(e) => Failure {
                code: error::LAUNCHER_FAILED,
                message: error::one_line(&e),
            },
        };
        chan.fail(&failed);
        // SAFETY: leave without running destructors in the child.
        unsafe { libc::_exit(failed.code) }
    });
    match forked {
        Ok(f) => {
            let _ = chan.started(f.pid, std::os::fd::AsFd::as_fd(&f.pidfd));
            // SAFETY: leave without running destructors: this process's
            // part is done.
            unsafe { libc::_exit(0) }
        }
        Err(e) => Failure {
            code: error::LAUNCHER_FAILED,
            message: format!("starting the command: {}", errno_text(e)),
        },
    }
}

/// Die with fwrun. If fwrun died before the parent-death signal was set,
/// its end of the channel is closed.
fn die_with_parent(chan: &Channel) -> Result<()> {
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
        .map_err(|e| anyhow!("setting the parent-death signal: {}", errno_text(e)))?;
    if !chan.peer_alive() {
        return Err(anyhow!("fwrun went away during setup"));
    }
    Ok(())
}

/// A descriptor fwrun holds open until the exec.
fn borrowed(fd: RawFd) -> BorrowedFd<'static> {
    // SAFETY: the descriptors of a Terminal are fwrun's, inherited by this
    // child and open until it execs or exits.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

fn take_terminal(t: &Terminal) -> Result<()> {
    if t.new_session {
        nix::unistd::setsid().map_err(|e| anyhow!("creating a new session: {}", errno_text(e)))?;
    }
    let dup = |fd: RawFd, to: fn(BorrowedFd) -> nix::Result<()>| {
        to(borrowed(fd)).map_err(|e| anyhow!("giving the program its terminal: {}", errno_text(e)))
    };
    if let Some(tty) = t.tty {
        dup(tty, |f| nix::unistd::dup2_stdin(f))?;
        dup(tty, |f| nix::unistd::dup2_stdout(f))?;
        dup(tty, |f| nix::unistd::dup2_stderr(f))?;
        // SAFETY: TIOCSCTTY on fd 0, which is the pty's slave now.
        if unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } < 0 {
            return Err(anyhow!(
                "making the pty the controlling terminal: {}",
                errno_text(nix::errno::Errno::last())
            ));
        }
        return Ok(());
    }
    if let Some(fd) = t.stdin {
        dup(fd, |f| nix::unistd::dup2_stdin(f))?;
    }
    if let Some(fd) = t.stdout {
        dup(fd, |f| nix::unistd::dup2_stdout(f))?;
    }
    if let Some(fd) = t.stderr {
        dup(fd, |f| nix::unistd::dup2_stderr(f))?;
    }
    Ok(())
}
