//! --as-pid2: a minimal pid 1 of fwrun's, for a test program rather than a
//! real init. It starts the program as pid 2 (in its own process group, the
//! terminal's foreground group when there is one), reaps every orphan,
//! forwards every signal it gets to the program, and exits with the
//! program's status (128+N if it died of signal N).

use std::convert::Infallible;
use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;

use nix::sys::signal::{SigSet, SigmaskHow};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Pid};

use crate::firmware::exec::exec_init;
use crate::firmware::spec::ChildSpec;

/// Start the program as pid 2 and become its pid 1. Returns only if the fork
/// failed, with the error pipe, the exit code and the message.
pub fn start(spec: &ChildSpec, err_w: OwnedFd) -> Result<Infallible, (OwnedFd, i32, String)> {
    // Everything is blocked from before the fork, so no SIGCHLD is missed.
    let all = SigSet::all();
    let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&all), None);
    // SAFETY: this process is single-threaded.
    match unsafe { nix::unistd::fork() } {
        Err(e) => Err((
            err_w,
            crate::error::LAUNCHER_FAILED,
            format!(
                "starting the program as pid 2: {}",
                crate::sys::errno_text(e)
            ),
        )),
        Ok(ForkResult::Child) => {
            let _ = nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0));
            let (code, msg) = exec_init(spec, None);
            let _ = File::from(err_w).write_all(format!("{code}\t{msg}").as_bytes());
            // SAFETY: leave without running destructors.
            unsafe { libc::_exit(code) }
        }
        Ok(ForkResult::Parent { child }) => {
            // The program's copy of the pipe tells fwrun about its exec.
            drop(err_w);
            // This pid 1 never execs, so close-on-exec protects nothing
            // here: close all that fwrun held (its lock, signalfd, pty
            // master, pipes), keeping only the console on 0, 1 and 2.
            // SAFETY: no descriptor above 2 is used in this process again;
            // the ones Rust values own here are never dropped (it _exits).
            unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
            let _ = nix::unistd::setpgid(child, child);
            if spec.tty.is_some() {
                // SAFETY: fd 0 is the controlling terminal; SIGTTOU is blocked.
                unsafe { libc::tcsetpgrp(0, child.as_raw()) };
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
                    // SAFETY: plain syscall.
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
