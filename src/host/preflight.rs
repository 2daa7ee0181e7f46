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
}
