//! The child's side, inside the new namespaces: die with fwrun, take the
//! console, prepare the root (rootfs.rs), set the hostname, bring up `lo`,
//! pivot_root, close what fwrun held; then exec (exec.rs), directly or under
//! fwrun's minimal pid 1 (pid2.rs).

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};

use anyhow::{anyhow, Context, Result};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::error;
use crate::firmware::exec::{confine, exec_init};
use crate::firmware::spec::ChildSpec;
use crate::firmware::{pid2, rootfs};
use crate::sys::errno_text;

/// The child's ends of what links it to the launcher.
pub struct ChildFds {
    /// Setup errors go back on it; closed by the exec.
    pub err_w: OwnedFd,
    /// Closed when fwrun dies.
    pub life_r: OwnedFd,
    /// The seccomp filter's descriptor goes back on it.
    pub notify: OwnedFd,
    /// With a network to wait for: one byte when it is ready.
    pub go: Option<OwnedFd>,
}

pub fn child_main(spec: &ChildSpec, fds: ChildFds) -> ! {
    let ChildFds {
        err_w,
        life_r,
        notify,
        go,
    } = fds;
    crate::fault::in_child(err_w.as_raw_fd());
    let ready = setup(spec, &life_r).and_then(|()| {
        if let Some(go) = go {
            wait_for_go(go)?;
        }
        // fwrun's pid 1 of --as-pid2 is confined like the init it starts.
        if spec.as_pid2 {
            confine(spec, &notify)?;
        }
        Ok(())
    });
    // Needed only until the parent-death signal was set.
    drop(life_r);
    let (code, msg) = match ready {
        Err(e) => (error::exit_code(&e), error::one_line(&e)),
        Ok(()) if spec.as_pid2 => match pid2::start(spec, err_w) {
            Ok(never) => match never {},
            Err((err_w, code, msg)) => {
                let _ = File::from(err_w).write_all(format!("{code}\t{msg}").as_bytes());
                // SAFETY: leave without running the parent's destructors.
                unsafe { libc::_exit(code) }
            }
        },
        Ok(()) => exec_init(spec, Some(&notify)),
    };
    let _ = File::from(err_w).write_all(format!("{code}\t{msg}").as_bytes());
    // SAFETY: leave without running the parent's destructors in the child.
    unsafe { libc::_exit(code) }
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
    take_console(spec)?;
    let root = nix::fcntl::open(
        &spec.root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| anyhow!("opening the firmware root: {}", errno_text(e)))?;
    rootfs::mount_proc(&root)?;
    crate::fault::step("proc")?;
    rootfs::mount_sys(&root)?;
    crate::fault::step("sys")?;
    if spec.cgroup.is_some() {
        rootfs::mount_cgroup(&root)?;
    }
    rootfs::mount_dev(&root, spec.console.as_deref())?;
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

/// The init's stdin, stdout and stderr: the pty (its controlling terminal
/// too), or fwrun's with the output through fwrun's pipes, or fwrun's own.
fn take_console(spec: &ChildSpec) -> Result<()> {
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
    if let Some((out, err)) = spec.output {
        // SAFETY: dup2 of descriptors this process holds.
        if unsafe { libc::dup2(out, 1) < 0 || libc::dup2(err, 2) < 0 } {
            return Err(anyhow!(
                "giving the init its output pipes: {}",
                errno_text(Errno::last())
            ));
        }
    }
    Ok(())
}

/// Wait until the launcher says go (it has given the firmware its network,
/// the veth and the moved interfaces, and reaped its other child): one
/// byte on `go`; end of file if fwrun died.
fn wait_for_go(go: OwnedFd) -> Result<()> {
    let mut b = [0u8; 1];
    loop {
        // SAFETY: read into our buffer from a descriptor we own.
        match unsafe { libc::read(go.as_raw_fd(), b.as_mut_ptr().cast(), 1) } {
            1 => return Ok(()),
            0 => return Err(anyhow!("fwrun went away while it set up the run")),
            _ if Errno::last() == Errno::EINTR => continue,
            _ => {
                return Err(anyhow!(
                    "waiting for fwrun's go: {}",
                    errno_text(Errno::last())
                ))
            }
        }
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
        let mut r = libc::ioctl(s, libc::SIOCGIFFLAGS as _, &mut req);
        if r == 0 {
            req.flags |= libc::IFF_UP as libc::c_short;
            r = libc::ioctl(s, libc::SIOCSIFFLAGS as _, &req);
        }
        let e = Errno::last();
        libc::close(s);
        if r != 0 {
            return Err(anyhow!("{}", errno_text(e)));
        }
    }
    Ok(())
}
