//! A child's last steps before its exec, so that nothing of fwrun's own
//! setup ran confined: enter the AppArmor profile, keep only the
//! capabilities asked for, install the seccomp filter and hand its
//! notification descriptor to fwrun. What to apply is decided by the
//! launcher (confine/: the profile, the capability set, the filter
//! program) and given to the child whole: the child only applies it.

use std::fs;
use std::io::Write;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};

use anyhow::{anyhow, Result};
use caps::{CapSet, Capability, CapsHashSet};

use crate::process::channel::{Channel, Handed};
use crate::sys::errno_text;

/// What a child is confined with.
#[derive(Debug, Clone, Default)]
pub struct Confinement {
    /// The AppArmor profile to enter.
    pub profile: Option<String>,
    /// The capabilities it keeps, in every set.
    pub keep: Vec<Capability>,
    /// The seccomp filter to install, whose notification descriptor goes
    /// to fwrun.
    pub filter: Option<Vec<libc::sock_filter>>,
}

/// The AppArmor attr file of this thread, opened while its /proc is still
/// the host's: a child that joins a running firmware's mount namespace
/// from outside its pid namespace has no /proc/self there.
pub struct Prepared(Option<Result<fs::File>>);

impl Confinement {
    /// What must be opened before the child enters its world.
    pub fn prepare(&self) -> Prepared {
        Prepared(self.profile.as_ref().map(|p| open_attr(p)))
    }

    /// Apply it to this process; the filter's descriptor goes to fwrun
    /// over `chan`.
    pub fn apply(&self, prepared: Prepared, chan: &Channel) -> Result<()> {
        if let (Some(profile), Some(attr)) = (&self.profile, prepared.0) {
            enter_profile(profile, attr?)?;
        }
        keep_only(&self.keep)?;
        if let Some(filter) = &self.filter {
            if !self.keep.contains(&Capability::CAP_SYS_ADMIN) {
                // Without CAP_SYS_ADMIN, a filter needs no_new_privs.
                nix::sys::prctl::set_no_new_privs()
                    .map_err(|e| anyhow!("setting no_new_privs: {}", errno_text(e)))?;
            }
            let listener = install(filter)?;
            chan.hand(Handed::Listener, listener.as_fd()).map_err(|e| {
                anyhow!("handing the seccomp descriptor to fwrun: {}", errno_text(e))
            })?;
        }
        Ok(())
    }
}

/// The thread's attr interface, or the older one.
fn open_attr(profile: &str) -> Result<fs::File> {
    let mut last = None;
    for attr in [
        "/proc/thread-self/attr/apparmor/current",
        "/proc/self/attr/current",
    ] {
        match fs::OpenOptions::new().write(true).open(attr) {
            Ok(f) => return Ok(f),
            Err(e) => last = Some(e),
        }
    }
    Err(anyhow!(
        "confining the init with AppArmor profile {profile}: no attr interface in /proc ({})",
        last.map(|e| e.to_string()).unwrap_or_default()
    ))
}

/// Change to the AppArmor profile `profile` (the per-run profile fwrun
/// loaded), through the thread's attr file, so that the program starts
/// confined and nothing of fwrun's own setup ran confined.
///
/// This is change_profile ("changeprofile NAME") rather than the
/// attach-at-exec request ("exec NAME"): AppArmor treats a profile change at
/// exec as a secure exec, and a secure exec clears the parent-death signal,
/// so a SIGKILLed fwrun would leave the firmware running (seen on Debian's
/// 6.1 kernel). Changing just before execve keeps it; the exec is then an
/// inherit-exec within the profile, which `file,` allows.
fn enter_profile(profile: &str, mut attr: fs::File) -> Result<()> {
    let cmd = format!("changeprofile {profile}");
    attr.write_all(cmd.as_bytes())
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT) => {
                anyhow!("confining the init with AppArmor profile {profile}: it is not loaded")
            }
            _ => anyhow!("confining the init with AppArmor profile {profile}: {e}"),
        })
}

/// Keep only `keep`, in every set: dropped from the bounding set (so that
/// the exec of a program as root cannot bring them back) and from the
/// effective, permitted, inheritable and ambient sets. Needs CAP_SETPCAP,
/// which the child still has.
fn keep_only(keep: &[Capability]) -> Result<()> {
    let keep_set: CapsHashSet = keep.iter().copied().collect();
    for c in caps::all() {
        if !keep_set.contains(&c) {
            caps::drop(None, CapSet::Bounding, c)
                .map_err(|e| anyhow!("dropping {c} from the bounding set: {e}"))?;
        }
    }
    caps::clear(None, CapSet::Ambient)
        .map_err(|e| anyhow!("clearing ambient capabilities: {e}"))?;
    for set in [CapSet::Inheritable, CapSet::Effective, CapSet::Permitted] {
        let now = caps::read(None, set).map_err(|e| anyhow!("reading capabilities: {e}"))?;
        let next: CapsHashSet = now.intersection(&keep_set).copied().collect();
        caps::set(None, set, &next).map_err(|e| anyhow!("setting capabilities: {e}"))?;
    }
    Ok(())
}

/// Install the filter `prog` on this thread (and what it execs); its
/// notification descriptor. Needs CAP_SYS_ADMIN or no_new_privs.
fn install(prog: &[libc::sock_filter]) -> Result<OwnedFd> {
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: a valid program that outlives the call; the kernel copies it.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &fprog as *const libc::sock_fprog,
        )
    };
    if fd < 0 {
        return Err(anyhow!(
            "installing the seccomp filter: {}",
            errno_text(nix::errno::Errno::last())
        ));
    }
    // SAFETY: a new descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}
