//! The lower layer: the firmware, read-only. An image goes on a loop device
//! configured read-only with autoclear; a directory gets a read-only bind.
//! The image file is only ever opened for reading.
//!
//! Runs of the same image at the same time share its loop device: the first
//! attaches it and names it in the image's entry under the state directory
//! (state/shared_images.rs); the others find it there and mount it too, which gives
//! them the superblock the first one read, its cached inodes and its page
//! cache, rather than a loop device, a superblock and a copy of the pages
//! each. Every run still mounts the device itself, in its own private mount
//! namespace: nothing is mounted where the host can see it, and the device
//! frees itself (autoclear) when the last of those mounts goes, however its
//! run ended.

use std::path::Path;

use anyhow::{anyhow, Result};
use nix::mount::MsFlags;

use crate::host::image::{Firmware, Kind};
use crate::host::loopdev::{self, Backing, Loop};
use crate::state::shared_images::{self as entries, Entry, Identity};
use crate::state::STATE_ROOT;
use crate::{fault, sys};

/// The lower layer as mounted.
pub struct Lower {
    /// The loop device, for an image.
    pub device: Option<String>,
    /// Whether another run of the image had attached it already.
    pub shared: bool,
    /// This run's hold on the image's entry: left (after the lower layer
    /// is unmounted) in the teardown.
    pub entry: Option<Entry>,
}

/// Mount the firmware read-only at `target`.
pub fn mount_lower(fw: &Firmware, target: &Path) -> Result<Lower> {
    let Some(fstype) = fw.kind.fstype() else {
        // Every mount under the directory is read-only and nodev too: a
        // device node in the tree opens nothing.
        // Bound by its canonical path: the descriptor opened before the
        // run entered its private mount namespace stands on a mount of
        // the host's namespace, which a bind cannot take. The bind must be
        // of the directory that was opened and classified.
        sys::bind(&fw.path, target, true)?;
        if !same_file(&fw.file, target) {
            let _ = sys::umount_detach(target);
            return Err(anyhow!(
                "firmware directory {} was replaced while fwrun started: run it again",
                fw.path.display()
            ));
        }
        sys::set_mount_attrs(
            target,
            true,
            sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV,
        )?;
        return Ok(Lower {
            device: None,
            shared: false,
            entry: None,
        });
    };
    let image = &fw.file;
    let id = Identity::of(&image.metadata()?);
    let key = id.key();
    let mut entry = entries::join(Path::new(STATE_ROOT), &key)?;
    fault::step("lower-entry")?;
    let label = format!("fwrun-lower-{key}");
    let want = Backing {
        dev: id.dev,
        ino: id.ino,
        size: id.size,
        label: &label,
    };
    // A node of fwrun's own, if one is needed, goes next to the target.
    let nodes = target.with_file_name("dev");
    let reuse = |entry: &mut Entry| {
        entry
            .device()
            .and_then(|n| loopdev::reuse(n, &want, &nodes))
    };
    let found = match reuse(&mut entry) {
        Some(dev) => Some(dev),
        None => {
            // One run at a time attaches an image; another may have done it
            // while this one waited for the door.
            entry.hold_door()?;
            reuse(&mut entry)
        }
    };
    let shared = found.is_some();
    let dev = match found {
        Some(dev) => dev,
        None => loopdev::attach(image, &label, &nodes)?,
    };
    fault::step("loop")?;
    mount_device(fw, fstype, &dev, target)?;
    if !shared {
        entry.set_device(dev.number)?;
    }
    entry.open_door()?;
    // The mount holds the device now; our descriptor can go, and autoclear
    // frees the device when the last mount of it does.
    Ok(Lower {
        device: Some(dev.path.to_string_lossy().into_owned()),
        shared,
        entry: Some(entry),
    })
}

/// Whether `path` is the file `f` is open on.
fn same_file(f: &std::fs::File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (f.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// Mount the image's loop device at `target`, read-only and nodev (the
/// image's own device nodes open nothing). A device another run mounted
/// already gives its superblock.
fn mount_device(fw: &Firmware, fstype: &str, dev: &Loop, target: &Path) -> Result<()> {
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NODEV;
    // A journal that needs recovery cannot be replayed on a read-only
    // device: mount without it (the image stays as it is; what the journal
    // held is not seen).
    let data = fw.needs_recovery.then_some("noload");
    sys::mount(
        &dev.path.to_string_lossy(),
        target,
        Some(fstype),
        flags,
        data,
    )
    .map_err(|e| {
        let hint = match fw.kind {
            Kind::Squashfs => "the image may be damaged: rebuild it with mksquashfs",
            _ => "the image may be damaged: check it with e2fsck -n",
        };
        anyhow!(
            "mounting firmware image '{}' ({}): {e:#}: {hint}",
            fw.path.display(),
            fw.kind.label()
        )
    })
}
