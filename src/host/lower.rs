//! The lower layer: the firmware, read-only. An image goes on a loop device
//! configured read-only with autoclear; a directory gets a read-only bind.
//! The image file is only ever opened for reading.

use std::fs::File;
use std::path::Path;

use anyhow::{anyhow, Result};
use nix::mount::MsFlags;

use crate::host::image::{Firmware, Kind};
use crate::host::loopdev;
use crate::sys;

/// Mount the firmware read-only at `target`. Returns the loop device used,
/// if any (for the report; it frees itself).
pub fn mount_lower(fw: &Firmware, target: &Path, label: &str) -> Result<Option<String>> {
    let Some(fstype) = fw.kind.fstype() else {
        // Every mount under the directory is read-only and nodev too: a
        // device node in the tree opens nothing.
        sys::bind(&fw.path, target, true)?;
        sys::set_mount_attrs(
            target,
            true,
            sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV,
        )?;
        return Ok(None);
    };
    let image = File::open(&fw.path).map_err(|e| {
        anyhow!(
            "opening {}: {}",
            fw.path.display(),
            crate::error::io_reason(&e)
        )
    })?;
    // A node of fwrun's own, if one is needed, goes next to the target.
    let dev = loopdev::attach(&image, label, &target.with_file_name("dev"))?;
    drop(image);
    crate::fault::step("loop")?;
    let dev_path = dev.path.to_string_lossy().into_owned();
    // nodev: the image's own device nodes open nothing.
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NODEV;
    // A journal that needs recovery cannot be replayed on a read-only
    // device: mount without it (the image stays as it is; what the journal
    // held is not seen).
    let data = fw.needs_recovery.then_some("noload");
    sys::mount(&dev_path, target, Some(fstype), flags, data).map_err(|e| {
        let hint = match fw.kind {
            Kind::Squashfs => "the image may be damaged: rebuild it with mksquashfs",
            _ => "the image may be damaged: check it with e2fsck -n",
        };
        anyhow!(
            "mounting firmware image '{}' ({}): {e:#}: {hint}",
            fw.path.display(),
            fw.kind.label()
        )
    })?;
    // The mount holds the device now; our descriptor can go, and autoclear
    // frees the device when the mount does.
    drop(dev);
    Ok(Some(dev_path))
}
