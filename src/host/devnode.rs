//! Loop device nodes fwrun makes itself. A container's /dev is a tmpfs
//! filled once, when the container started: no udev or devtmpfs adds the
//! loop devices the kernel makes later, so /dev/loopN may be missing. The
//! node is then made in a small tmpfs that fwrun mounts in its private
//! mount namespace (never in /dev), and goes with it once the image is
//! mounted; if fwrun is killed, the namespace takes it.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use nix::mount::MsFlags;
use nix::sys::stat::{makedev, mknod, Mode, SFlag};

use crate::sys;

/// The loop driver's block major.
const LOOP_MAJOR: u64 = 7;

/// A block device node in a tmpfs of fwrun's own; dropping it removes both.
pub struct PrivateNode {
    dir: PathBuf,
    pub path: PathBuf,
}

/// The device number of loop device `num`: from sysfs, where the kernel
/// says it (loop's minors are spaced out when it was loaded with max_part),
/// else 7:num.
fn loop_devno(num: u32) -> (u64, u64) {
    fs::read_to_string(format!("/sys/block/loop{num}/dev"))
        .ok()
        .and_then(|t| parse_devno(&t))
        .unwrap_or((LOOP_MAJOR, u64::from(num)))
}

fn parse_devno(text: &str) -> Option<(u64, u64)> {
    let (major, minor) = text.trim().split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Make the node of loop device `num` in a tmpfs mounted at `dir` (a
/// directory of the launcher's private mount namespace, made if missing).
pub fn loop_node(dir: &Path, num: u32) -> Result<PrivateNode> {
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            return Err(e).with_context(|| format!("creating {}", dir.display()))
        }
        _ => {}
    }
    // Not nodev: the node must open. Only fwrun's own node is ever in it.
    sys::mount(
        "fwrun-dev",
        dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("mode=0700,size=16k"),
    )
    .context("mounting a tmpfs for a loop device node")?;
    let node = PrivateNode {
        dir: dir.to_path_buf(),
        path: dir.join(format!("loop{num}")),
    };
    let (major, minor) = loop_devno(num);
    mknod(
        &node.path,
        SFlag::S_IFBLK,
        Mode::from_bits_truncate(0o600),
        makedev(major, minor),
    )
    .map_err(|e| {
        anyhow!(
            "/dev/loop{num} is missing and fwrun could not make its node ({major}:{minor}): {}: it needs CAP_MKNOD and a device cgroup that allows block {major}:* (in a container: run it privileged)",
            sys::errno_text(e)
        )
    })?;
    Ok(node)
}

impl Drop for PrivateNode {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
        let _ = sys::umount_detach(&self.dir);
        let _ = fs::remove_dir(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn device_numbers() {
        assert_eq!(super::parse_devno("7:12\n"), Some((7, 12)));
        assert_eq!(super::parse_devno("259:0"), Some((259, 0)));
        assert_eq!(super::parse_devno("7"), None);
        assert_eq!(super::parse_devno("x:1"), None);
    }
}
