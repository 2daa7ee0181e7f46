//! The exec at the end of a child's start-up, and what its failure means:
//! 127 when the program (or a file the kernel needs to run it) is not
//! there, 126 when it cannot be executed, 125 for anything else.

use std::ffi::CString;

use nix::errno::Errno;

use crate::error::{INIT_NOT_EXECUTABLE, INIT_NOT_FOUND, LAUNCHER_FAILED};
use crate::process::channel::Failure;
use crate::sys::errno_text;

/// What a child execs.
#[derive(Debug, Clone)]
pub enum Program {
    /// The firmware's init, its path already looked up inside the root.
    Init {
        path: CString,
        /// What exec needs besides the init (a #! interpreter, a dynamic
        /// loader, a binfmt_misc interpreter), (what, path): named when
        /// exec says ENOENT and the init itself is there.
        needs: Vec<(String, CString)>,
        /// A 32-bit program this 64-bit machine runs itself: it gets the
        /// 32-bit personality (PER_LINUX32), so that uname says the machine
        /// it was built for (i686, armv8l), as on its device.
        linux32: bool,
    },
    /// A command of `fwrun enter` (argv[0]): a path as it is, a bare name
    /// looked up in each entry of `search` (the firmware's PATH) in turn.
    Command { search: String },
}

/// Default dispositions and an empty mask, as a freshly booted init
/// expects. exec resets caught signals by itself; what survives it is the
/// mask (fwrun blocks the signals it reads from a signalfd) and ignored
/// signals (Rust ignores SIGPIPE; a shell's background job ignores SIGINT
/// and SIGQUIT). Every disposition is set to the default: one system call
/// a signal costs less than reading which ones are ignored from /proc.
pub fn reset_signals() {
    // SAFETY: resetting dispositions and the mask of this single thread;
    // SIG_DFL installs no handler.
    unsafe {
        for sig in 1..=libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
    }
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    );
}

/// Exec `program` with `argv` and `envp`; returns only on failure, with
/// why.
pub fn exec(program: &Program, argv: &[CString], envp: &[CString]) -> Failure {
    match program {
        Program::Init {
            path,
            needs,
            linux32,
        } => match linux32_then(*linux32, || nix::unistd::execve(path, argv, envp)) {
            Err(Errno::ENOENT) => missing_piece(path, needs)
                .unwrap_or_else(|| failure(Subject::Init, path, Errno::ENOENT)),
            Err(e) => failure(Subject::Init, path, e),
            Ok(never) => match never {},
        },
        Program::Command { search } => exec_searching(search, argv, envp),
    }
}

/// PER_LINUX32 of <linux/personality.h>, which libc does not name.
const PER_LINUX32: libc::c_ulong = 0x0008;

/// `exec`, under the 32-bit personality when `linux32`. Its failure leaves
/// nothing to undo: the process ends.
fn linux32_then<T>(linux32: bool, exec: impl FnOnce() -> nix::Result<T>) -> nix::Result<T> {
    if linux32 {
        // SAFETY: personality(2) with a constant; it changes only what
        // uname reports and the address space layout of the next exec.
        if unsafe { libc::personality(PER_LINUX32) } < 0 {
            return Err(Errno::last());
        }
    }
    exec()
}

/// A command: a path as it is, a bare name from each PATH entry in turn.
fn exec_searching(search: &str, argv: &[CString], envp: &[CString]) -> Failure {
    let name = argv[0].to_bytes();
    let try_exec = |prog: &CString| match nix::unistd::execve(prog, argv, envp) {
        Err(e) => e,
        Ok(never) => match never {},
    };
    if name.contains(&b'/') {
        return failure(Subject::Command, &argv[0], try_exec(&argv[0]));
    }
    let mut denied = None;
    for dir in search.split(':').filter(|d| !d.is_empty()) {
        let mut full = dir.as_bytes().to_vec();
        full.push(b'/');
        full.extend_from_slice(name);
        let Ok(full) = CString::new(full) else {
            continue;
        };
        match try_exec(&full) {
            Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP => {}
            e @ (Errno::EACCES | Errno::EPERM) => denied = Some(e),
            e => return failure(Subject::Command, &argv[0], e),
        }
    }
    match denied {
        Some(e) => failure(Subject::Command, &argv[0], e),
        None => Failure {
            code: INIT_NOT_FOUND,
            message: format!(
                "command '{}' was not found in the firmware's PATH ({search}): give its full path",
                argv[0].to_string_lossy()
            ),
        },
    }
}

/// exec said ENOENT although the init was found: name the file it needs
/// that is missing (its #! interpreter, its loader, the binfmt_misc
/// interpreter), so that the init is not blamed for it.
fn missing_piece(init: &CString, needs: &[(String, CString)]) -> Option<Failure> {
    let there =
        |p: &CString| nix::unistd::access(p.as_c_str(), nix::unistd::AccessFlags::F_OK).is_ok();
    if !there(init) {
        return None;
    }
    let init = init.to_string_lossy();
    let message = match needs.iter().find(|(_, p)| !there(p)) {
        Some((what, p)) => format!(
            "init '{init}' is there, but its {what} '{}' is not in the firmware: add it to the firmware, or give another init after --",
            p.to_string_lossy()
        ),
        None => format!(
            "init '{init}' is there, but a file the kernel needs to run it was not found (its #! interpreter, its dynamic loader, or a binfmt_misc interpreter): check them inside the firmware"
        ),
    };
    Some(Failure {
        code: INIT_NOT_FOUND,
        message,
    })
}

/// Whose exec failed, for the message.
#[derive(Clone, Copy)]
enum Subject {
    Init,
    Command,
}

/// The exit code and message for a program that could not be exec'd.
fn failure(subject: Subject, program: &CString, e: Errno) -> Failure {
    let p = program.to_string_lossy();
    let (code, message) = match (subject, e) {
        (Subject::Init, Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP) => (
            INIT_NOT_FOUND,
            format!("init '{p}' was not found in the firmware: give the init's path inside the firmware after --"),
        ),
        (Subject::Command, Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP) => (
            INIT_NOT_FOUND,
            format!("command '{p}' (or the interpreter its #! line names) was not found in the firmware"),
        ),
        (Subject::Init, Errno::EACCES | Errno::ENOEXEC | Errno::EISDIR | Errno::EPERM) => (
            INIT_NOT_EXECUTABLE,
            format!("init '{p}' cannot be executed ({}): check its mode and that it is a program for this machine", errno_text(e)),
        ),
        (Subject::Command, Errno::EACCES | Errno::ENOEXEC | Errno::EISDIR | Errno::EPERM) => (
            INIT_NOT_EXECUTABLE,
            format!("command '{p}' cannot be executed ({})", errno_text(e)),
        ),
        (Subject::Init, e) => (LAUNCHER_FAILED, format!("executing init '{p}': {}", errno_text(e))),
        (Subject::Command, e) => (
            LAUNCHER_FAILED,
            format!("executing command '{p}': {}", errno_text(e)),
        ),
    };
    Failure { code, message }
}
