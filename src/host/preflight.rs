//! Preflight: what must hold before fwrun touches the system. Each refusal
//! names what is missing and what to do.

use std::path::Path;

use anyhow::Result;

use crate::error::fail;

pub fn check_root() -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(fail(
            "fwrun must run as root (it mounts file systems and creates namespaces): run it with sudo",
        ))
    }
}

pub fn check_overlay() -> Result<()> {
    let fs = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if has_overlay(&fs) {
        return Ok(());
    }
    // The module may just not be loaded yet: the kernel loads it on first
    // mount, so only refuse when it is also absent from the module tree.
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let module = Path::new("/lib/modules")
        .join(&release)
        .join("kernel/fs/overlayfs");
    if module.exists() {
        return Ok(());
    }
    Err(fail(
        "this kernel has no overlay file system (not in /proc/filesystems): load it with 'modprobe overlay' or use a kernel with CONFIG_OVERLAY_FS",
    ))
}

/// The capability fwrun cannot do without: mounts and namespaces.
const CAP_SYS_ADMIN: u32 = 21;

/// What a container must grant, said once for every refusal below.
const PRIVILEGED: &str =
    "in a container, run it privileged (docker/podman run --privileged, privileged: true in Kubernetes)";

/// Refuse, in one line, a root that may not mount: a container started
/// without --privileged. Checked before anything is created; the mount
/// probe runs in a child in a mount namespace of its own, which dies with
/// it.
pub fn check_privileges() -> Result<()> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if let Some(false) = has_cap(&status, CAP_SYS_ADMIN) {
        return Err(fail(format!(
            "fwrun lacks CAP_SYS_ADMIN (it mounts file systems and creates namespaces): {PRIVILEGED}"
        )));
    }
    if !policy_may_refuse_mount(&status) {
        return Ok(());
    }
    match probe_mount() {
        Ok(()) => Ok(()),
        Err(e) => Err(fail(format!(
            "mount(2) is refused here ({}) although fwrun has CAP_SYS_ADMIN: a seccomp or AppArmor policy forbids it; {PRIVILEGED}",
            crate::sys::errno_text(e)
        ))),
    }
}

/// Refuse an image (`image`: the firmware is one) when the loop control
/// device cannot be opened.
pub fn check_loop_control(image: bool) -> Result<()> {
    if !image {
        return Ok(());
    }
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(LOOP_CONTROL)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && in_container() => Err(fail(format!(
            "{LOOP_CONTROL} is missing, so no loop device can carry the image: {PRIVILEGED}, or give the firmware as a directory"
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(fail(format!(
            "{LOOP_CONTROL} is missing, so no loop device can carry the image: load the loop module (modprobe loop), or give the firmware as a directory"
        ))),
        Err(e) => Err(fail(format!(
            "{LOOP_CONTROL} cannot be opened ({}), so no loop device can carry the image: {PRIVILEGED}, or give the firmware as a directory",
            crate::error::io_reason(&e)
        ))),
    }
}

const LOOP_CONTROL: &str = "/dev/loop-control";

/// Whether this process seems to run in a container (the marker files
/// docker and podman leave, or the `container` variable systemd reads).
pub fn in_container() -> bool {
    Path::new("/.dockerenv").exists()
        || Path::new("/run/.containerenv").exists()
        || std::env::var_os("container").is_some()
        || std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
}

/// Whether something besides capabilities may refuse mount(2): a seccomp
/// filter on this process (a container's default policy), or an LSM label
/// of its own (AppArmor, SELinux). Without either, root with CAP_SYS_ADMIN
/// mounts, and the probe (a child and a copy of the mount table) is
/// skipped.
fn policy_may_refuse_mount(status: &str) -> bool {
    let labelled = [
        "/proc/self/attr/apparmor/current",
        "/proc/self/attr/current",
    ]
    .iter()
    .filter_map(|p| std::fs::read_to_string(p).ok())
    .any(|label| !matches!(label.trim_end_matches('\0').trim(), "" | "unconfined"));
    seccomp_filtered(status) || labelled
}

/// Whether a /proc/PID/status text shows a seccomp mode (or none at all).
fn seccomp_filtered(status: &str) -> bool {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp:"))
        .is_none_or(|mode| mode.trim() != "0")
}

/// Whether capability `cap` is in the effective set of a /proc/PID/status
/// text (None if the text has no CapEff line).
fn has_cap(status: &str, cap: u32) -> Option<bool> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    let bits = u64::from_str_radix(hex.trim(), 16).ok()?;
    Some(bits & (1 << cap) != 0)
}

/// Try a mount where it harms nothing: a child enters a mount namespace of
/// its own, makes it private and mounts a tmpfs on its root; the namespace
/// and the mount go when the child exits.
fn probe_mount() -> std::result::Result<(), nix::errno::Errno> {
    use nix::mount::{mount, MsFlags};
    let probe = || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )?;
        mount(
            Some("fwrun-probe"),
            "/",
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None::<&str>,
        )
    };
    let child = crate::process::spawn::beside(0, 64 << 10, probe)?;
    crate::process::spawn::reap(child.pid);
    child.out
}

fn has_overlay(proc_filesystems: &str) -> bool {
    proc_filesystems
        .lines()
        .any(|l| l.split_whitespace().last() == Some("overlay"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn overlay_line() {
        assert!(super::has_overlay("nodev\tsysfs\nnodev\toverlay\n\text4\n"));
        assert!(!super::has_overlay("nodev\tsysfs\n\text4\n"));
    }

    #[test]
    fn a_seccomp_filter_calls_for_the_mount_probe() {
        assert!(super::seccomp_filtered(
            "Name:\tsh\nSeccomp:\t2\nSeccomp_filters:\t1\n"
        ));
        assert!(!super::seccomp_filtered(
            "Name:\tsh\nSeccomp:\t0\nSeccomp_filters:\t0\n"
        ));
        assert!(super::seccomp_filtered("Name:\tsh\n"));
    }

    #[test]
    fn effective_capabilities() {
        let podman_default = "Name:\tsh\nCapEff:\t00000000800405fb\n";
        assert_eq!(
            super::has_cap(podman_default, super::CAP_SYS_ADMIN),
            Some(false)
        );
        assert_eq!(super::has_cap(podman_default, 0), Some(true));
        let full = "CapEff:\t000001ffffffffff\n";
        assert_eq!(super::has_cap(full, super::CAP_SYS_ADMIN), Some(true));
        assert_eq!(super::has_cap("Name:\tsh\n", super::CAP_SYS_ADMIN), None);
    }
}
