//! The init, looked up inside the firmware's root before the clone and
//! exec'd as the child's last step, with signals reset and the AppArmor
//! profile entered just before. An exec failure becomes exit code 126/127.

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use nix::errno::Errno;

use crate::error::{self, fail_with, INIT_NOT_EXECUTABLE, INIT_NOT_FOUND, LAUNCHER_FAILED};
use crate::firmware::spec::ChildSpec;
use crate::sys::{self, errno_text};

/// The init's PATH, and where a bare init name is looked up.
pub const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Exec the init; returns only on failure, with the exit code and message.
/// With `confine_with` (the socket to the supervisor), the process is
/// confined first; without, it already is (fwrun's pid 1 of --as-pid2).
pub fn exec_init(spec: &ChildSpec, confine_with: Option<&OwnedFd>) -> (i32, String) {
    let argv = crate::sys::c_array(&spec.argv);
    let envp = crate::sys::c_array(&spec.envp);
    reset_signals();
    if let Some(sock) = confine_with {
        if let Err(e) = confine(spec, sock) {
            return (LAUNCHER_FAILED, error::one_line(&e));
        }
    }
    // SAFETY: NULL-terminated arrays of valid C strings.
    unsafe { libc::execve(spec.program.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    let e = Errno::last();
    match e {
        Errno::ENOENT => missing_piece(spec).unwrap_or_else(|| exec_failure(&spec.program, e)),
        e => exec_failure(&spec.program, e),
    }
}

/// exec said ENOENT although the init was found: name the file it needs
/// that is missing (its #! interpreter, its loader, the binfmt_misc
/// interpreter), so that the init is not blamed for it.
fn missing_piece(spec: &ChildSpec) -> Option<(i32, String)> {
    let there = |p: &CString| {
        // SAFETY: access(2) on a NUL-terminated path.
        unsafe { libc::access(p.as_ptr(), libc::F_OK) == 0 }
    };
    if !there(&spec.program) {
        return None;
    }
    let init = spec.program.to_string_lossy();
    let msg = match spec.needs.iter().find(|(_, p)| !there(p)) {
        Some((what, p)) => format!(
            "init '{init}' is there, but its {what} '{}' is not in the firmware: add it to the firmware, or give another init after --",
            p.to_string_lossy()
        ),
        None => format!(
            "init '{init}' is there, but a file the kernel needs to run it was not found (its #! interpreter, its dynamic loader, or a binfmt_misc interpreter): check them inside the firmware"
        ),
    };
    Some((INIT_NOT_FOUND, msg))
}

/// The last steps before exec, so that nothing of fwrun's own setup ran
/// confined: enter the AppArmor profile, drop capabilities, install the
/// seccomp filter and send its notification descriptor to the supervisor
/// over `sock`.
pub fn confine(spec: &ChildSpec, sock: &OwnedFd) -> Result<()> {
    confine_as(spec.profile.as_deref(), &spec.caps, spec.seccomp, sock)
}

/// [`confine`] with its parts named: the profile to enter, the
/// capabilities to keep, whether to install the seccomp filter. `fwrun
/// enter` confines its command with the run's.
pub fn confine_as(
    profile: Option<&str>,
    keep: &[caps::Capability],
    seccomp: bool,
    sock: &OwnedFd,
) -> Result<()> {
    if let Some(profile) = profile {
        crate::confine::apparmor::confine_before_exec(profile)?;
    }
    crate::confine::caps::apply(keep)?;
    if seccomp {
        if !keep.contains(&caps::Capability::CAP_SYS_ADMIN) {
            // Without CAP_SYS_ADMIN, a filter needs no_new_privs.
            nix::sys::prctl::set_no_new_privs()
                .map_err(|e| anyhow!("setting no_new_privs: {}", errno_text(e)))?;
        }
        let listener = crate::confine::seccomp::install(profile.is_none())?;
        sys::send_fd(sock.as_fd(), listener.as_fd())
            .map_err(|e| anyhow!("handing the seccomp descriptor to fwrun: {}", errno_text(e)))?;
    }
    Ok(())
}

/// The exit code and message for an init that could not be exec'd.
fn exec_failure(init: &CString, e: Errno) -> (i32, String) {
    let init = init.to_string_lossy();
    match e {
        Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP => (
            INIT_NOT_FOUND,
            format!("init '{init}' was not found in the firmware: give the init's path inside the firmware after --"),
        ),
        Errno::EACCES | Errno::ENOEXEC | Errno::EISDIR | Errno::EPERM => (
            INIT_NOT_EXECUTABLE,
            format!("init '{init}' cannot be executed ({}): check its mode and that it is a program for this machine", errno_text(e)),
        ),
        e => (
            LAUNCHER_FAILED,
            format!("executing init '{init}': {}", errno_text(e)),
        ),
    }
}

/// Default dispositions and an empty mask, as a freshly booted init expects.
/// exec resets caught signals by itself; what survives it is the mask
/// (fwrun blocks the signals it reads from a signalfd) and ignored signals
/// (Rust ignores SIGPIPE; a shell's background job ignores SIGINT and
/// SIGQUIT). Every disposition is set to the default: one system call a
/// signal costs less than reading which ones are ignored from /proc.
pub fn reset_signals() {
    // SAFETY: resetting dispositions and the mask of this single thread.
    unsafe {
        for sig in 1..=libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Check, before the clone, that the init exists inside `root` (symlinks
/// resolved inside it, never on the host) and can be executed.
/// `named` says whether the user gave the init or it is the default.
///
/// A bare name (`sh`) is looked up in the firmware's PATH, as a shell would;
/// the path found is returned.
pub fn check_init(root_fd: &OwnedFd, init: &Path, named: bool) -> Result<PathBuf> {
    let shown = init.display();
    let init = if init.is_absolute() {
        init.to_path_buf()
    } else if init.components().count() == 1 {
        PATH
            .split(':')
            .map(|dir| Path::new(dir).join(init))
            .find(|p| sys::open_in_root(root_fd, p).is_ok())
            .ok_or_else(|| {
                fail_with(
                    INIT_NOT_FOUND,
                    format!(
                        "init '{shown}' was not found in the firmware's PATH ({}): give its full path after --",
                        PATH
                    ),
                )
            })?
    } else {
        return Err(crate::error::fail(format!(
            "init '{shown}' must be an absolute path inside the firmware, or a bare name to look up in its PATH"
        )));
    };
    let init = init.as_path();
    let fd = match sys::open_in_root(root_fd, init) {
        Ok(fd) => fd,
        Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP) if !named => {
            return Err(crate::error::fail(format!(
                "the firmware has no {shown}, so it does not look like a firmware root: give its init after -- (e.g. -- /bin/sh)"
            )))
        }
        Err(e @ (Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP)) => {
            return Err(fail_with(
                INIT_NOT_FOUND,
                format!(
                    "init '{shown}' was not found in the firmware ({}): give the init's path inside the firmware after --",
                    errno_text(e)
                ),
            ))
        }
        Err(e) => return Err(anyhow!("looking up init '{shown}' in the firmware: {}", errno_text(e))),
    };
    let st = nix::sys::stat::fstat(&fd)
        .map_err(|e| anyhow!("looking up init '{shown}': {}", errno_text(e)))?;
    let fmt = st.st_mode & libc::S_IFMT;
    if fmt == libc::S_IFDIR {
        return Err(fail_with(
            INIT_NOT_EXECUTABLE,
            format!("init '{shown}' is a directory: give the path of a program"),
        ));
    }
    if fmt != libc::S_IFREG || st.st_mode & 0o111 == 0 {
        return Err(fail_with(
            INIT_NOT_EXECUTABLE,
            format!("init '{shown}' is not executable: give it an execute bit (chmod +x) or name another init"),
        ));
    }
    Ok(init.to_path_buf())
}
