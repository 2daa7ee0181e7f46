//! What the firmware changed in its root, read from the overlay's upper
//! layer against the image: a whiteout (a 0:0 character device) is a
//! deletion, an opaque directory replaced the image's, anything else is
//! added (not in the image) or modified (in it).

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use rustix::fs::lgetxattr;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Added,
    Modified,
    Deleted,
    /// A directory the firmware removed and made anew: none of the image's
    /// entries in it remain.
    ReplacedDirectory,
}

impl Kind {
    pub fn letter(self) -> char {
        match self {
            Kind::Added => 'A',
            Kind::Modified => 'M',
            Kind::Deleted => 'D',
            Kind::ReplacedDirectory => 'R',
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Change {
    pub path: String,
    pub change: Kind,
}

fn opaque(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    let mut v = [0u8; 4];
    for name in [c"trusted.overlay.opaque", c"user.overlay.opaque"] {
        if lgetxattr(c.as_c_str(), name, &mut v) == Ok(1) && v[0] == b'y' {
            return true;
        }
    }
    false
}

fn whiteout(meta: &fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// The changes in `upper` relative to `lower`, sorted by path.
/// The --changes listing: a count, then one line per change.
pub fn listing(found: &[Change]) -> String {
    let mut out = format!(
        "fwrun: {} change{} in the firmware's root{}\n",
        found.len(),
        if found.len() == 1 { "" } else { "s" },
        if found.is_empty() { "" } else { ":" }
    );
    for c in found {
        out.push_str(&format!("fwrun:   {} {}\n", c.change.letter(), c.path));
    }
    out
}

pub fn scan(upper: &Path, lower: &Path) -> Vec<Change> {
    let mut out = Vec::new();
    walk(upper, lower, PathBuf::from("/"), false, &mut out);
    out.sort();
    out
}

fn walk(upper: &Path, lower: &Path, rel: PathBuf, all_new: bool, out: &mut Vec<Change>) {
    let Ok(entries) = fs::read_dir(upper) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let (up, low, path) = (e.path(), lower.join(&name), rel.join(&name));
        let Ok(meta) = fs::symlink_metadata(&up) else {
            continue;
        };
        let shown = path.to_string_lossy().into_owned();
        if whiteout(&meta) {
            out.push(Change {
                path: shown,
                change: Kind::Deleted,
            });
            continue;
        }
        let in_image = !all_new && fs::symlink_metadata(&low).is_ok();
        if meta.is_dir() {
            let replaced = in_image && opaque(&up);
            if replaced {
                out.push(Change {
                    path: shown,
                    change: Kind::ReplacedDirectory,
                });
            } else if !in_image {
                out.push(Change {
                    path: shown,
                    change: Kind::Added,
                });
            }
            walk(&up, &low, path, all_new || replaced || !in_image, out);
        } else {
            out.push(Change {
                path: shown,
                change: if in_image {
                    Kind::Modified
                } else {
                    Kind::Added
                },
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_modified_and_new_directories() {
        let base = std::env::temp_dir().join(format!("fwrun-changes-{}", std::process::id()));
        let (upper, lower) = (base.join("upper"), base.join("lower"));
        for d in [&upper, &lower] {
            fs::create_dir_all(d.join("etc")).unwrap();
        }
        fs::write(lower.join("etc/kept"), "a").unwrap();
        fs::write(upper.join("etc/kept"), "b").unwrap();
        fs::write(upper.join("etc/new"), "c").unwrap();
        fs::create_dir_all(upper.join("data/sub")).unwrap();
        fs::write(upper.join("data/sub/f"), "d").unwrap();
        let got = scan(&upper, &lower);
        let _ = fs::remove_dir_all(&base);
        let want = [
            ("/data", Kind::Added),
            ("/data/sub", Kind::Added),
            ("/data/sub/f", Kind::Added),
            ("/etc/kept", Kind::Modified),
            ("/etc/new", Kind::Added),
        ];
        let got: Vec<(&str, Kind)> = got.iter().map(|c| (c.path.as_str(), c.change)).collect();
        assert_eq!(got, want);
    }
}
