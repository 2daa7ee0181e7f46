//! --as-pid2: a minimal pid 1 of fwrun's, for a test program rather than a
//! real init. It starts the program as pid 2 (in its own process group, the
//! terminal's foreground group when there is one), reaps every orphan,
//! forwards every signal it gets to the program, and exits with the
//! program's status (128+N if it died of signal N).

use std::ffi::CString;

use nix::sys::signal::{SigSet, SigmaskHow};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Pid};

use crate::process::channel::{Channel, Failure};
use crate::process::exec::{exec, reset_signals, Program};

/// Start the program as pid 2 and become its pid 1 (this process is
/// already confined). Returns only if the fork failed.
pub fn start(
    chan: &Channel,
    program: &Program,
    argv: &[CString],
    envp: &[CString],
    tty: bool,
) -> Failure {
    // Everything is blocked from before the fork, so no SIGCHLD is missed.
    let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::all()), None);
    // SAFETY: this process is single-threaded.
    match unsafe { nix::unistd::fork() } {
        Err(e) => Failure {
            code: crate::error::LAUNCHER_FAILED,
            message: format!(
                "starting the program as pid 2: {}",
                crate::sys::errno_text(e)
            ),
        },
        Ok(ForkResult::Child) => {
            let _ = nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0));
            reset_signals();
            let failed = exec(program, argv, envp);
            chan.fail(&failed);
            // SAFETY: leave without running destructors.
            unsafe { libc::_exit(failed.code) }
        }
        Ok(ForkResult::Parent { child }) => {
            // This pid 1 never execs, so close-on-exec protects nothing
            // here: close all that fwrun held (its lock, signalfd, pty
            // master, pipes, and the channel, whose copy in the program
            // tells fwrun about its exec), keeping only the console on 0,
            // 1 and 2.
            // SAFETY: no descriptor above 2 is used in this process again;
            // the ones Rust values own here are never dropped (it _exits).
            unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
            let _ = nix::unistd::setpgid(child, child);
            if tty {
                // fd 0 is the controlling terminal; SIGTTOU is blocked.
                // SAFETY: fd 0 stays open for the life of this process.
                let stdin = unsafe { std::os::fd::BorrowedFd::borrow_raw(0) };
                let _ = nix::unistd::tcsetpgrp(stdin, child);
            }
            reap_and_forward(child)
        }
    }
}

fn reap_and_forward(program: Pid) -> ! {
    let code = match SignalFd::with_flags(&SigSet::all(), SfdFlags::SFD_CLOEXEC) {
        Err(_) => loop_without_signalfd(program),
        Ok(sfd) => loop {
            if let Some(code) = reap(program) {
                break code;
            }
            match sfd.read_signal() {
                Ok(Some(info)) if info.ssi_signo as i32 != libc::SIGCHLD => {
                    // SAFETY: plain syscall; the program is our child, not
                    // yet reaped, so its pid is its own.
                    unsafe { libc::kill(program.as_raw(), info.ssi_signo as i32) };
                }
                _ => {}
            }
        },
    };
    // SAFETY: leave without running destructors.
    unsafe { libc::_exit(code) }
}

fn loop_without_signalfd(program: Pid) -> i32 {
    loop {
        match waitpid(None, None) {
            Ok(WaitStatus::Exited(p, c)) if p == program => return c,
            Ok(WaitStatus::Signaled(p, s, _)) if p == program => return 128 + s as i32,
            Err(_) => return crate::error::LAUNCHER_FAILED,
            _ => {}
        }
    }
}

/// Reap every child that has ended; the program's status once it has.
fn reap(program: Pid) -> Option<i32> {
    let mut status = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, c)) if p == program => status = Some(c),
            Ok(WaitStatus::Signaled(p, s, _)) if p == program => status = Some(128 + s as i32),
            Ok(WaitStatus::StillAlive) | Err(_) => return status,
            Ok(_) => {}
        }
    }
}
