//! The one start-up sequence of every child that runs a program of the
//! firmware's: its init, and the commands of `fwrun enter` and of
//! `--ready-when exec:`. In order:
//!
//! 1. die with fwrun (the parent-death signal), and leave if fwrun has
//!    already gone (its end of the channel is closed);
//! 2. enter its world, which the caller gives: the init builds its root
//!    and pivots into it (firmware/setup.rs); a command joins the
//!    namespaces, root and working directory of a running init (join.rs);
//! 3. its session and terminal;
//! 4. nothing of fwrun's open past the exec (close_range);
//! 5. wait for fwrun's go, when asked (the init's network);
//! 6. signal dispositions and mask reset;
//! 7. confined: AppArmor profile, capabilities, seccomp filter
//!    (confine.rs);
//! 8. exec (exec.rs), or, with --as-pid2, fwrun's minimal pid 1 that
//!    starts the program (pid2.rs).
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
    /// Wait for fwrun's go before the confinement and the exec.
    pub wait_for_go: bool,
    pub confinement: Confinement,
    pub program: Program,
    /// Run the program as pid 2 under fwrun's minimal pid 1.
    pub as_pid2: bool,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
}

/// Run the sequence in a child fwrun just made; `world` is step 2. Never
/// returns: the child execs or exits.
pub fn start(chan: Channel, s: &Startup, world: impl FnOnce() -> Result<()>) -> ! {
    crate::fault::in_child(chan.as_raw_fd());
    let ready = (|| {
        die_with_parent(&chan)?;
        world()?;
        take_terminal(&s.terminal)?;
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
        if s.wait_for_go {
            chan.wait_for_go()
                .map_err(|_| anyhow!("fwrun went away while it set up the run"))?;
        }
        Ok(())
    })();
    let failed = match ready {
        Err(e) => Failure {
            code: error::exit_code(&e),
            message: error::one_line(&e),
        },
        Ok(()) => run(&chan, s),
    };
    chan.fail(&failed);
    // SAFETY: leave without running the parent's destructors in the child.
    unsafe { libc::_exit(failed.code) }
}

/// Steps 6 to 8; returns only on failure.
fn run(chan: &Channel, s: &Startup) -> Failure {
    let launcher = |e: anyhow::Error| Failure {
        code: error::LAUNCHER_FAILED,
        message: error::one_line(&e),
    };
    if s.as_pid2 {
        // fwrun's pid 1 is confined like the program it starts.
        if let Err(e) = s.confinement.apply(chan) {
            return launcher(e);
        }
        return pid2::start(chan, &s.program, &s.argv, &s.envp, s.terminal.tty.is_some());
    }
    reset_signals();
    if let Err(e) = s.confinement.apply(chan) {
        return launcher(e);
    }
    exec(&s.program, &s.argv, &s.envp)
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
