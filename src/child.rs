//! The firmware's init process: cloned into new namespaces, it prepares the
//! root (rootfs.rs), sets its hostname, brings up `lo`, resets what it
//! inherited (signals, descriptors) and execs the init. A setup error travels
//! back to the parent over a close-on-exec pipe; end of file on that pipe
//! means the exec succeeded.

use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use nix::errno::Errno;

use crate::error::{self, fail_with, INIT_NOT_EXECUTABLE, INIT_NOT_FOUND, LAUNCHER_FAILED};
use crate::pid2;
use crate::rootfs::{self, ResolvedBind};
use crate::sys::{self, errno_text, Forked};

/// Everything the child needs, prepared by the parent before the clone so
/// that the child does as little as possible.
pub struct ChildSpec {
    pub root: PathBuf,
    pub hostname: String,
    pub new_net: bool,
    pub binds: Vec<ResolvedBind>,
    /// Bound at /dev/console: the pty's slave, or the user's terminal.
    pub console: Option<PathBuf>,
    /// In pty mode, the slave: the init's stdin, stdout, stderr and
    /// controlling terminal.
    pub tty: Option<RawFd>,
    /// Run the init as pid 2 under fwrun's minimal pid 1.
    pub as_pid2: bool,
    /// The program to exec (the init, its PATH lookup done); argv[0] stays
    /// as the user gave it.
    pub program: CString,
    /// The AppArmor profile to attach at exec.
    pub profile: Option<String>,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
}

/// A started firmware. Dropped before it was reaped (a later setup step
/// failed), it is killed and reaped.
pub struct Started {
    pub pid: libc::pid_t,
    pub pidfd: OwnedFd,
    /// Set once the init has been waited for.
    pub reaped: bool,
    /// Held open for the child's life: if fwrun dies before the child has set
    /// its parent-death signal, the child sees the pipe close and exits.
    _lifeline: OwnedFd,
}

impl Drop for Started {
    fn drop(&mut self) {
        if !self.reaped {
            // SIGKILL of the namespace's init ends every process in it.
            let _ = sys::pidfd_signal(&self.pidfd, libc::SIGKILL);
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(self.pid), None);
        }
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| anyhow!("creating a pipe: {}", errno_text(e)))
}

/// Clone the child into `namespaces` and wait until it has exec'd the init
/// (or failed to).
pub fn start(spec: &ChildSpec, namespaces: libc::c_int) -> Result<Started> {
    let (err_r, err_w) = pipe()?;
    let (life_r, life_w) = pipe()?;
    // SAFETY: fwrun is single-threaded (signals are read with a signalfd, no
    // handler thread), so the child may allocate.
    match unsafe { sys::fork_into(namespaces) } {
        Err(e) => Err(anyhow!(
            "creating the firmware's namespaces (clone3): {}",
            errno_text(e)
        )),
        Ok(Forked::Child) => {
            drop(err_r);
            drop(life_w);
            child_main(spec, err_w, life_r)
        }
        Ok(Forked::Parent { pid, pidfd }) => {
            drop(err_w);
            drop(life_r);
            let mut msg = String::new();
            let mut pipe = File::from(err_r);
            let mut buf = [0u8; 4096];
            // Read until end of file (the exec happened) or the child's
            // message has arrived in full.
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                msg.push_str(&String::from_utf8_lossy(&buf[..n]));
                crate::fault::kill_requested(&msg);
            }
            if msg.is_empty() {
                return Ok(Started {
                    pid,
                    pidfd,
                    reaped: false,
                    _lifeline: life_w,
                });
            }
            // The child failed before or at exec and is exiting: reap it.
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
            let (code, text) = msg
                .split_once('\t')
                .and_then(|(c, t)| Some((c.parse().ok()?, t.to_string())))
                .unwrap_or((LAUNCHER_FAILED, msg));
            Err(fail_with(code, text))
        }
    }
}

fn child_main(spec: &ChildSpec, err_w: OwnedFd, life_r: OwnedFd) -> ! {
    crate::fault::in_child(err_w.as_raw_fd());
    let (code, msg) = match setup(spec, &life_r) {
        Err(e) => (error::exit_code(&e), error::one_line(&e)),
        Ok(()) if spec.as_pid2 => match pid2::start(spec, err_w) {
            Ok(never) => match never {},
            Err((err_w, code, msg)) => {
                let _ = File::from(err_w).write_all(format!("{code}\t{msg}").as_bytes());
                // SAFETY: leave without running the parent's destructors.
                unsafe { libc::_exit(code) }
            }
        },
        Ok(()) => exec_init(spec),
    };
    let _ = File::from(err_w).write_all(format!("{code}\t{msg}").as_bytes());
    // SAFETY: leave without running the parent's destructors in the child.
    unsafe { libc::_exit(code) }
}

/// Exec the init; returns only on failure, with the exit code and message.
pub(crate) fn exec_init(spec: &ChildSpec) -> (i32, String) {
    let argv: Vec<*const libc::c_char> = spec
        .argv
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let envp: Vec<*const libc::c_char> = spec
        .envp
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    reset_signals();
    // The last step before exec, so that nothing of fwrun's own setup ran
    // confined.
    if let Some(profile) = &spec.profile {
        if let Err(e) = crate::apparmor::confine_before_exec(profile) {
            return (LAUNCHER_FAILED, error::one_line(&e));
        }
    }
    // SAFETY: NULL-terminated arrays of valid C strings.
    unsafe { libc::execve(spec.program.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    exec_failure(&spec.program, Errno::last())
}

/// The exit code and message for an init that could not be exec'd.
fn exec_failure(init: &CString, e: Errno) -> (i32, String) {
    let init = init.to_string_lossy();
    match e {
        Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP => (
            INIT_NOT_FOUND,
            format!("init '{init}' (or the interpreter its #! line names) was not found in the firmware: give the init's path inside the firmware after --"),
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

fn setup(spec: &ChildSpec, life_r: &OwnedFd) -> Result<()> {
    // Die with fwrun. If fwrun died before this line, the lifeline is closed.
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
        .map_err(|e| anyhow!("setting the parent-death signal: {}", errno_text(e)))?;
    let mut pfd = libc::pollfd {
        fd: life_r.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll on one valid descriptor, no wait.
    if unsafe { libc::poll(&mut pfd, 1, 0) } != 0 {
        return Err(anyhow!("fwrun went away during setup"));
    }
    // The init leads a session of its own: a terminal's Ctrl-C goes to fwrun,
    // which stops the firmware with its stop signal.
    nix::unistd::setsid().map_err(|e| anyhow!("creating a new session: {}", errno_text(e)))?;
    if let Some(tty) = spec.tty {
        // SAFETY: dup2 and ioctl on descriptors this process holds.
        unsafe {
            for fd in 0..3 {
                if libc::dup2(tty, fd) < 0 {
                    return Err(anyhow!(
                        "giving the init its terminal: {}",
                        errno_text(Errno::last())
                    ));
                }
            }
            if libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(anyhow!(
                    "making the pty the init's controlling terminal: {}",
                    errno_text(Errno::last())
                ));
            }
        }
    }
    rootfs::mount_proc(&spec.root)?;
    crate::fault::step("proc")?;
    rootfs::mount_sys(&spec.root)?;
    crate::fault::step("sys")?;
    rootfs::mount_dev(&spec.root, spec.console.as_deref())?;
    crate::fault::step("dev")?;
    rootfs::mount_binds(&spec.root, &spec.binds)?;
    nix::unistd::sethostname(&spec.hostname)
        .map_err(|e| anyhow!("setting the hostname: {}", errno_text(e)))?;
    if spec.new_net {
        loopback_up().context("bringing up lo in the firmware's network")?;
    }
    rootfs::pivot_into(&spec.root)?;
    crate::fault::step("pivot_root")?;
    // Nothing of fwrun's (lock, image, pipes) reaches the init.
    // SAFETY: plain syscall.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    Ok(())
}

/// Default dispositions and an empty mask, as a freshly booted init expects.
/// exec resets caught signals by itself; what survives it is the mask
/// (fwrun blocks the signals it reads from a signalfd) and ignored signals
/// (Rust ignores SIGPIPE; a shell's background job ignores SIGINT and
/// SIGQUIT). Only those are reset: the kernel lists them in SigIgn.
pub(crate) fn reset_signals() {
    let ignored = std::fs::read_to_string("/proc/thread-self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("SigIgn:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        });
    // SAFETY: resetting dispositions and the mask of this single thread.
    unsafe {
        for sig in 1..=libc::SIGRTMAX() {
            let bit = 1u64 << (sig - 1);
            let reset = ignored.is_none_or(|mask| mask & bit != 0);
            if reset && sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

#[repr(C)]
struct IfReqFlags {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// `ip link set lo up`, with one ioctl.
fn loopback_up() -> Result<()> {
    // SAFETY: a socket we own, ioctls on a struct of the size the kernel reads.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return Err(anyhow!("socket: {}", errno_text(Errno::last())));
        }
        let mut req = IfReqFlags {
            name: [0; libc::IFNAMSIZ],
            flags: 0,
            _pad: [0; 22],
        };
        req.name[..2].copy_from_slice(b"lo");
        let mut r = libc::ioctl(s, libc::SIOCGIFFLAGS, &mut req);
        if r == 0 {
            req.flags |= libc::IFF_UP as libc::c_short;
            r = libc::ioctl(s, libc::SIOCSIFFLAGS, &req);
        }
        let e = Errno::last();
        libc::close(s);
        if r != 0 {
            return Err(anyhow!("{}", errno_text(e)));
        }
    }
    Ok(())
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
        crate::run::PATH
            .split(':')
            .map(|dir| Path::new(dir).join(init))
            .find(|p| sys::open_in_root(root_fd, p).is_ok())
            .ok_or_else(|| {
                fail_with(
                    INIT_NOT_FOUND,
                    format!(
                        "init '{shown}' was not found in the firmware's PATH ({}): give its full path after --",
                        crate::run::PATH
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
