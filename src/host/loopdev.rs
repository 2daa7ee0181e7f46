//! Loop devices, configured read-only and with autoclear in one step
//! (LOOP_CONFIGURE), falling back to LOOP_SET_FD + LOOP_SET_STATUS64 on
//! kernels older than 5.8. With autoclear the device frees itself when the
//! last user (the mount) goes away, whatever happens to fwrun.
//!
//! A device another run attached is reused ([`reuse`]) only once it is open
//! (an open device cannot clear itself) and its status shows that it is
//! still the one attached: read-only with autoclear, the same backing file,
//! whole, under the same label.

use std::fs::{File, OpenOptions};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use nix::errno::Errno;

use crate::host::devnode::{self, PrivateNode};
use crate::sys::errno_text;
use crate::sys::loopdev::{
    self, LoopConfig, LoopInfo64, LO_FLAGS_AUTOCLEAR, LO_FLAGS_READ_ONLY, LO_NAME_SIZE,
};

/// An attached loop device. Dropping it closes our descriptor; once the
/// mount on it is gone too, autoclear detaches it.
pub struct Loop {
    pub path: PathBuf,
    /// N of /dev/loopN.
    pub number: u32,
    _dev: File,
    /// The node fwrun made when /dev had none (dropped after `_dev`).
    _node: Option<PrivateNode>,
}

/// What a reused device must be attached to: the image's device and inode
/// (as stat gives them), its size, and the label it was attached under.
pub struct Backing<'a> {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub label: &'a str,
}

/// Open loop device `number` (named by another run) if it is still
/// attached to `want` as fwrun attaches images; None if it is not (it freed
/// itself, or now holds something else). A node of fwrun's own, when /dev
/// has none, is made in a tmpfs at `nodes`.
pub fn reuse(number: u32, want: &Backing, nodes: &Path) -> Option<Loop> {
    let (path, dev, node) = open_device(number, nodes).ok()?;
    let info = loopdev::status(&dev).ok()?;
    let size = loopdev::size(&dev).ok()?;
    let flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR;
    let ours = info.lo_device == want.dev
        && info.lo_inode == want.ino
        && info.lo_flags & flags == flags
        && info.lo_offset == 0
        && info.lo_sizelimit == 0
        // The device's size is the file's, in whole 512-byte sectors.
        && size == want.size & !511
        && label_of(&info) == want.label.as_bytes();
    ours.then(|| Loop {
        path,
        number,
        _dev: dev,
        _node: node,
    })
}

/// The label a device was attached under, up to its NUL.
fn label_of(info: &LoopInfo64) -> &[u8] {
    let name = &info.lo_file_name;
    &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())]
}

/// How often to retry when another process takes the free device first.
const ATTEMPTS: usize = 64;

/// Attach `image` (opened read-only) to a free loop device, read-only, with
/// autoclear. `label` is recorded as the device's file name. When /dev has
/// no node for the device, one is made in a tmpfs mounted at `nodes`.
pub fn attach(image: &File, label: &str, nodes: &Path) -> Result<Loop> {
    let ctl = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open("/dev/loop-control")
        .map_err(|e| {
            anyhow!("opening /dev/loop-control: {e}: load the loop module (modprobe loop)")
        })?;
    let mut info = LoopInfo64 {
        lo_flags: LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR,
        ..LoopInfo64::ZERO
    };
    let n = label.len().min(LO_NAME_SIZE - 1);
    info.lo_file_name[..n].copy_from_slice(&label.as_bytes()[..n]);
    let config = LoopConfig::new(image.as_fd(), info);
    let mut last = Errno::EBUSY;
    for _ in 0..ATTEMPTS {
        let num = loopdev::get_free(&ctl)
            .map_err(|e| anyhow!("finding a free loop device: {}", errno_text(e)))?;
        let (path, dev, node) = open_device(num, nodes)?;
        match loopdev::configure(&dev, &config) {
            Ok(()) => {
                return Ok(Loop {
                    path,
                    number: num,
                    _dev: dev,
                    _node: node,
                })
            }
            Err(Errno::EBUSY) => last = Errno::EBUSY,
            Err(Errno::EINVAL | Errno::ENOTTY) => {
                return attach_old(dev, path, num, image, config.info()).map(|mut l| {
                    l._node = node;
                    l
                })
            }
            Err(e) => {
                return Err(anyhow!(
                    "configuring {} read-only: {}",
                    path.display(),
                    errno_text(e)
                ))
            }
        }
    }
    Err(anyhow!(
        "no loop device could be had after {ATTEMPTS} tries (last: {})",
        errno_text(last)
    ))
}

/// Open loop device `num` through /dev, or through a node of fwrun's own
/// when /dev has none (a container's /dev gets no node for a loop device
/// made after it started).
fn open_device(num: u32, nodes: &Path) -> Result<(PathBuf, File, Option<PrivateNode>)> {
    let open = |p: &Path| {
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(p)
    };
    let path = PathBuf::from(format!("/dev/loop{num}"));
    match open(&path) {
        Ok(f) => Ok((path, f, None)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            let node = devnode::loop_node(nodes, num)?;
            let f =
                open(&node.path).map_err(|e| anyhow!("opening {}: {e}", node.path.display()))?;
            Ok((node.path.clone(), f, Some(node)))
        }
        Err(e) => Err(anyhow!("opening {}: {e}", path.display())),
    }
}

/// Kernels before 5.8: two steps. The device is briefly attached without
/// autoclear; a failure in between detaches it again.
fn attach_old(
    dev: File,
    path: PathBuf,
    number: u32,
    image: &File,
    info: &LoopInfo64,
) -> Result<Loop> {
    loopdev::set_fd(&dev, image)
        .map_err(|e| anyhow!("attaching {}: {}", path.display(), errno_text(e)))?;
    if let Err(e) = loopdev::set_status(&dev, info) {
        let _ = loopdev::clear_fd(&dev);
        return Err(anyhow!(
            "setting {} read-only and autoclear: {}",
            path.display(),
            errno_text(e)
        ));
    }
    Ok(Loop {
        path,
        number,
        _dev: dev,
        _node: None,
    })
}
