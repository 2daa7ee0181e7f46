//! What kind of firmware a path holds, read from its content (magic bytes),
//! never from its name. The path is looked up once: what is opened here is
//! what is classified, attached or bound, and named (its canonical path, as
//! the kernel resolved it) in the report and in `fwrun list`. The file is
//! only ever opened read-only.

use std::fs::File;
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::error::{fail, io_reason};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ext2,
    Ext3,
    Ext4,
    Squashfs,
    Directory,
}

impl Kind {
    /// The file system type to mount an image of this kind with.
    pub fn fstype(self) -> Option<&'static str> {
        match self {
            Kind::Ext2 => Some("ext2"),
            Kind::Ext3 => Some("ext3"),
            Kind::Ext4 => Some("ext4"),
            Kind::Squashfs => Some("squashfs"),
            Kind::Directory => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Kind::Directory => "directory",
            k => k.fstype().unwrap_or("?"),
        }
    }
}

/// A firmware, opened, whose kind is known.
#[derive(Debug)]
pub struct Firmware {
    /// The path, with symlinks resolved.
    pub path: PathBuf,
    /// The image, open for reading; or the directory.
    pub file: File,
    pub kind: Kind,
    /// An ext3/ext4 image whose journal needs recovery (it was not cleanly
    /// unmounted): it must be mounted without replaying the journal, since
    /// the image is never written.
    pub needs_recovery: bool,
}

const EXT_MAGIC_AT: usize = 1024 + 56;
const EXT_INCOMPAT_EXT4: u32 = 0x40 /* extents */ | 0x80 /* 64bit */ | 0x200 /* flex_bg */;
const EXT_COMPAT_JOURNAL: u32 = 0x4;
const EXT_INCOMPAT_RECOVER: u32 = 0x4;

/// Other signatures, so that a wrong image gets named rather than called
/// garbage: (offset, bytes, what it is).
const FOREIGN: &[(usize, &[u8], &str)] = &[
    (0, b"\x1f\x8b", "gzip-compressed data"),
    (0, b"\xfd7zXZ\x00", "xz-compressed data"),
    (0, b"\x28\xb5\x2f\xfd", "zstd-compressed data"),
    (0, b"070701", "a cpio archive (an initramfs?)"),
    (0, b"XFSB", "an XFS file system"),
    (0, b"UBI#", "a UBI image"),
    (0, b"\x45\x3d\xcd\x28", "a cramfs file system"),
    (0, b"\x85\x19", "a JFFS2 file system"),
    (0, b"\x19\x85", "a JFFS2 file system"),
    (0, b"\x27\x05\x19\x56", "a U-Boot image (uImage)"),
    (0, b"\xd0\x0d\xfe\xed", "a device tree or FIT image"),
    (0, b"\x7fELF", "an ELF executable"),
    (1024, b"\xe2\xe1\xf5\xe0", "an EROFS file system"),
    (0x36, b"FAT", "a FAT file system"),
    (0x52, b"FAT32", "a FAT file system"),
    (0x8001, b"CD001", "an ISO 9660 image"),
    (0x10040, b"_BHRfS_M", "a Btrfs file system"),
    (
        510,
        b"\x55\xaa",
        "a disk image with a partition table (give one partition)",
    ),
];

/// Find out what `path` holds. Every refusal names the path and says what
/// would be accepted.
pub fn detect(path: &Path) -> Result<Firmware> {
    let shown = path.display().to_string();
    // Looked up once, opened without being opened for I/O: a device node
    // is refused before anything of it runs.
    let found: File = crate::sys::open_path(path, nix::fcntl::OFlag::empty())
        .map_err(|e| {
            fail(format!(
                "cannot use firmware '{shown}': {}: give an ext2/3/4 or squashfs image, or a firmware root directory",
                io_reason(&std::io::Error::from(e))
            ))
        })?
        .into();
    let meta = found
        .metadata()
        .map_err(|e| fail(format!("cannot use firmware '{shown}': {}", io_reason(&e))))?;
    if !meta.is_dir() && (meta.file_type().is_block_device() || !meta.is_file()) {
        return Err(fail(format!(
            "firmware '{shown}' is not a regular file or directory: give an image file or a firmware root directory"
        )));
    }
    let proc_path = crate::sys::fd_path(&found);
    let real = std::fs::read_link(&proc_path).map_err(|e| {
        fail(format!(
            "cannot resolve firmware '{shown}': {}",
            io_reason(&e)
        ))
    })?;
    // The same file, now for reading.
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(&proc_path)
        .map_err(|e| fail(format!("cannot read firmware '{shown}': {}", io_reason(&e))))?;
    drop(found);
    if meta.is_dir() {
        return Ok(Firmware {
            path: real,
            file,
            kind: Kind::Directory,
            needs_recovery: false,
        });
    }
    if meta.len() == 0 {
        return Err(fail(format!(
            "firmware image '{shown}' is empty: give an ext2/3/4 or squashfs image"
        )));
    }
    let mut head = vec![0u8; 0x10048];
    let got = read_head(&file, &mut head).map_err(|e| {
        fail(format!(
            "cannot read firmware image '{shown}': {}",
            io_reason(&e)
        ))
    })?;
    head.truncate(got);
    let kind = classify(&head, meta.len())
        .map_err(|why| fail(format!("firmware image '{shown}' {why}")))?;
    Ok(Firmware {
        path: real,
        file,
        kind,
        needs_recovery: needs_recovery(&head),
    })
}

/// Read the start of `file` into `buf`, as much as there is.
fn read_head(file: &File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Whether an ext3/ext4 superblock says its journal needs recovery.
pub fn needs_recovery(head: &[u8]) -> bool {
    let le32 = |at: usize| {
        head.get(at..at + 4)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    head.get(EXT_MAGIC_AT..EXT_MAGIC_AT + 2) == Some(&[0x53, 0xef])
        && le32(1024 + 92) & EXT_COMPAT_JOURNAL != 0
        && le32(1024 + 96) & EXT_INCOMPAT_RECOVER != 0
}

/// The kind of an image from its first bytes and its size, or why it is not
/// one fwrun can use.
pub fn classify(head: &[u8], size: u64) -> Result<Kind, String> {
    let le32 = |at: usize| -> Option<u32> {
        head.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let le64 = |at: usize| -> Option<u64> {
        head.get(at..at + 8).map(|b| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            u64::from_le_bytes(a)
        })
    };
    if head.starts_with(b"hsqs") {
        let used = le64(40).unwrap_or(u64::MAX);
        if used > size {
            return Err(format!(
                "is a truncated squashfs image ({size} bytes of {used}): copy it again"
            ));
        }
        return Ok(Kind::Squashfs);
    }
    if head.get(EXT_MAGIC_AT..EXT_MAGIC_AT + 2) == Some(&[0x53, 0xef]) {
        let blocks_lo = le32(1024 + 4).unwrap_or(0) as u64;
        let log_block = le32(1024 + 24).unwrap_or(0);
        let compat = le32(1024 + 92).unwrap_or(0);
        let incompat = le32(1024 + 96).unwrap_or(0);
        if log_block > 6 {
            return Err("has a damaged ext2/3/4 superblock: rebuild the image".into());
        }
        let block = 1024u64 << log_block;
        let blocks_hi = if incompat & 0x80 != 0 {
            le32(1024 + 0x150).unwrap_or(0) as u64
        } else {
            0
        };
        let need = ((blocks_hi << 32) | blocks_lo).saturating_mul(block);
        if need > size {
            return Err(format!(
                "is a truncated ext2/3/4 image ({size} bytes of {need}): copy it again"
            ));
        }
        return Ok(if incompat & EXT_INCOMPAT_EXT4 != 0 {
            Kind::Ext4
        } else if compat & EXT_COMPAT_JOURNAL != 0 {
            Kind::Ext3
        } else {
            Kind::Ext2
        });
    }
    for (at, magic, what) in FOREIGN {
        if head.get(*at..at + magic.len()) == Some(magic) {
            return Err(format!(
                "holds {what}, which fwrun does not run: give an ext2/3/4 or squashfs image"
            ));
        }
    }
    if size < 2048 {
        return Err(format!(
            "is too small to be an image ({size} bytes; an ext2/3/4 superblock ends at byte 2048, and it is no squashfs image): give an ext2/3/4 or squashfs image, or a directory"
        ));
    }
    Err("is not an image fwrun knows (no ext2/3/4 or squashfs signature): give an ext2/3/4 or squashfs image, or a directory".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(compat: u32, incompat: u32, blocks: u32, log_block: u32) -> Vec<u8> {
        let mut h = vec![0u8; 2048];
        h[1024 + 4..1024 + 8].copy_from_slice(&blocks.to_le_bytes());
        h[1024 + 24..1024 + 28].copy_from_slice(&log_block.to_le_bytes());
        h[EXT_MAGIC_AT..EXT_MAGIC_AT + 2].copy_from_slice(&[0x53, 0xef]);
        h[1024 + 92..1024 + 96].copy_from_slice(&compat.to_le_bytes());
        h[1024 + 96..1024 + 100].copy_from_slice(&incompat.to_le_bytes());
        h
    }

    #[test]
    fn ext_variants() {
        assert_eq!(classify(&ext(0, 0, 100, 0), 102400), Ok(Kind::Ext2));
        assert_eq!(classify(&ext(4, 0, 100, 0), 102400), Ok(Kind::Ext3));
        assert_eq!(classify(&ext(4, 0x2c2, 100, 2), 409600), Ok(Kind::Ext4));
    }

    #[test]
    fn journal_needing_recovery() {
        assert!(needs_recovery(&ext(4, 0x2c6, 100, 2)));
        assert!(!needs_recovery(&ext(4, 0x2c2, 100, 2)));
        // No journal: the flag means nothing.
        assert!(!needs_recovery(&ext(0, 0x4, 100, 0)));
    }

    #[test]
    fn too_small() {
        let e = classify(&ext(0, 0, 100, 0)[..1000], 1000).unwrap_err();
        assert!(e.contains("too small"), "{e}");
    }

    #[test]
    fn truncated_ext() {
        let e = classify(&ext(0, 0, 100, 0), 4096).unwrap_err();
        assert!(e.contains("truncated"), "{e}");
    }

    #[test]
    fn squashfs() {
        let mut h = vec![0u8; 96];
        h[..4].copy_from_slice(b"hsqs");
        h[40..48].copy_from_slice(&4096u64.to_le_bytes());
        assert_eq!(classify(&h, 4096), Ok(Kind::Squashfs));
        assert!(classify(&h, 100).unwrap_err().contains("truncated"));
    }

    #[test]
    fn foreign_and_garbage() {
        assert!(classify(b"\x1f\x8b\x08\x00", 4)
            .unwrap_err()
            .contains("gzip"));
        let mut iso = vec![0u8; 0x8010];
        iso[0x8001..0x8006].copy_from_slice(b"CD001");
        assert!(classify(&iso, 0x8010).unwrap_err().contains("ISO 9660"));
        let junk: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
        assert!(classify(&junk, 4096)
            .unwrap_err()
            .contains("not an image fwrun knows"));
    }
}
