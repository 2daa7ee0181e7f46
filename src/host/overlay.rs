//! The upper layer and the overlay. By default the upper layer is a tmpfs
//! that is discarded at the end (which also works when the host's root is
//! itself an overlayfs); with --rw-dir it is DIR/upper, kept across runs.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::mount::MsFlags;

use crate::error::fail;
use crate::sys;

const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;

/// The directories the overlay is made of, all under the run's workspace.
pub struct Layout {
    pub workspace: PathBuf,
    pub lower: PathBuf,
    pub root: PathBuf,
}

impl Layout {
    pub fn new(workspace: PathBuf) -> Self {
        Layout {
            lower: workspace.join("lower"),
            root: workspace.join("root"),
            workspace,
        }
    }
}

pub fn mkdir(path: &Path) -> Result<()> {
    match fs::DirBuilder::new().mode(0o755).create(path) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            Err(e).with_context(|| format!("creating {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Check a --rw-dir before anything is mounted: it must be (or become) a
/// directory on a file system overlayfs accepts as an upper layer.
pub fn check_rw_dir(dir: &Path) -> Result<PathBuf> {
    let shown = dir.display();
    match fs::metadata(dir) {
        Ok(m) if !m.is_dir() => {
            return Err(fail(format!(
                "--rw-dir '{shown}' is not a directory: give a directory (it is created if missing)"
            )))
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| {
                    fail(format!(
                        "cannot create --rw-dir '{shown}': {}",
                        crate::error::io_reason(&e)
                    ))
                })?;
        }
        Err(e) => {
            return Err(fail(format!(
                "cannot use --rw-dir '{shown}': {}",
                crate::error::io_reason(&e)
            )))
        }
    }
    keep_to_root(dir)?;
    let st = nix::sys::statfs::statfs(dir).map_err(|e| {
        fail(format!(
            "cannot use --rw-dir '{shown}': {}",
            sys::errno_text(e)
        ))
    })?;
    if st.filesystem_type().0 as i64 == OVERLAYFS_SUPER_MAGIC {
        return Err(fail(format!(
            "--rw-dir '{shown}' is on an overlayfs, which cannot be an overlay's upper layer: pick a directory on ext4, xfs, btrfs or tmpfs"
        )));
    }
    // Made now, so that a directory the firmware's changes cannot go to is
    // refused before anything is mounted, in words about --rw-dir.
    for sub in ["upper", "work"] {
        match fs::DirBuilder::new().mode(0o755).create(dir.join(sub)) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                return Err(fail(format!(
                    "--rw-dir '{shown}' cannot hold the firmware's changes ({}): pick a writable directory",
                    crate::error::io_reason(&e)
                )))
            }
            _ => {}
        }
    }
    fs::canonicalize(dir).with_context(|| format!("resolving --rw-dir '{shown}'"))
}

/// DIR holds the firmware's files as the firmware made them, its setuid
/// programs among them, owned by root (the firmware's root is the host's
/// uid 0): only root may reach them. DIR must be root's, and is made 0700
/// when it is more open.
fn keep_to_root(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let shown = dir.display();
    let meta = fs::metadata(dir).map_err(|e| {
        fail(format!(
            "cannot use --rw-dir '{shown}': {}",
            crate::error::io_reason(&e)
        ))
    })?;
    if meta.uid() != 0 {
        return Err(fail(format!(
            "--rw-dir '{shown}' belongs to uid {}, who could reach the firmware's files in it (its setuid programs among them): give a directory root owns, or a new path (fwrun makes it, for root alone)",
            meta.uid()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|e| {
            fail(format!(
                "cannot make --rw-dir '{shown}' root's alone (chmod 0700): {}",
                crate::error::io_reason(&e)
            ))
        })?;
    }
    Ok(())
}

/// Mount the overlay at `layout.root` over `layout.lower`, with its upper
/// layer in the workspace tmpfs or in `rw_dir`. `label` is the overlay's
/// source, so that the run's mount is recognisable in mountinfo.
pub fn mount_overlay(layout: &Layout, rw_dir: Option<&Path>, label: &str) -> Result<()> {
    let base = match rw_dir {
        Some(dir) => {
            // A bind under the workspace keeps the user's path (commas,
            // colons, spaces) out of the overlay's option string.
            let rw = layout.workspace.join("rw");
            mkdir(&rw)?;
            sys::bind(dir, &rw, false)?;
            // A node the firmware made in its root, kept in DIR/upper, opens
            // nothing on a later run either.
            sys::set_mount_attrs(&rw, false, sys::MOUNT_ATTR_NODEV)?;
            rw
        }
        None => layout.workspace.clone(),
    };
    let (upper, work) = (base.join("upper"), base.join("work"));
    mkdir(&upper)?;
    mkdir(&work)?;
    mkdir(&layout.root)?;
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        layout.lower.display(),
        upper.display(),
        work.display()
    );
    // nodev: the firmware runs as root, and neither its image's device
    // nodes nor the ones it makes may open a host device.
    sys::mount(label, &layout.root, Some("overlay"), MsFlags::MS_NODEV, Some(&opts)).map_err(|e| {
        match rw_dir {
            Some(d) => fail(format!(
                "--rw-dir '{}' cannot hold the overlay's upper layer ({e:#}): pick a directory on ext4, xfs, btrfs or tmpfs",
                d.display()
            )),
            None => e,
        }
    })
}

/// The paths under `root` that a file at `dst` (a path inside the
/// firmware) would need made: the missing directories and the file, from
/// the top down. Empty when it is there already.
pub fn missing_under(root: &Path, dst: &Path) -> Vec<PathBuf> {
    let mut p = root.to_path_buf();
    let mut missing = Vec::new();
    for c in dst.components() {
        if let std::path::Component::Normal(c) = c {
            p.push(c);
            if !missing.is_empty() || std::fs::symlink_metadata(&p).is_err() {
                missing.push(p.clone());
            }
        }
    }
    missing
}

/// Remove what [`missing_under`] listed, deepest first; what is already
/// gone, or no longer empty, is left.
pub fn remove_planted(planted: &[PathBuf]) {
    for p in planted.iter().rev() {
        if std::fs::remove_file(p).is_err() {
            let _ = std::fs::remove_dir(p);
        }
    }
}
