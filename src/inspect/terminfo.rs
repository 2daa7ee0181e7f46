//! The TERM the firmware is given: the caller's, when the firmware has a
//! terminfo entry for it; otherwise one it has (`linux`), or `vt100`, which
//! most programs without terminfo still drive correctly. Without this, a
//! firmware's tools complain about the host's terminal
//! ("terminal tmux-256color does not support --msg").

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use crate::sys;

/// Where terminfo entries live, as ncurses looks for them.
const DIRS: &[&str] = &["/usr/share/terminfo", "/lib/terminfo", "/etc/terminfo"];

/// The entry used when the firmware lacks the caller's, if it has it.
pub const FALLBACK: &str = "linux";
/// The entry used when it has neither.
pub const LAST_RESORT: &str = "vt100";

/// Whether the firmware at `root` has a terminfo entry for `term`, in the
/// letter layout (`x/xterm`) or the hex one (`78/xterm`).
pub fn has_entry(root: &OwnedFd, term: &str) -> bool {
    has_entry_in(root, &present_dirs(root), term)
}

/// The terminfo directories the firmware has: a firmware without any (most
/// busybox ones) is then asked once per directory, not once per entry.
fn present_dirs(root: &OwnedFd) -> Vec<&'static str> {
    DIRS.iter()
        .copied()
        .filter(|dir| {
            sys::open_in_root(root, std::path::Path::new(dir)).is_ok_and(|fd| {
                nix::sys::stat::fstat(&fd)
                    .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
            })
        })
        .collect()
}

fn has_entry_in(root: &OwnedFd, dirs: &[&str], term: &str) -> bool {
    let Some(first) = term.bytes().next() else {
        return false;
    };
    if term.contains('/') || term.starts_with('.') {
        return false;
    }
    let subdirs = [(first as char).to_string(), format!("{first:02x}")];
    dirs.iter().any(|dir| {
        subdirs.iter().any(|sub| {
            let path: PathBuf = [dir, sub.as_str(), term].iter().collect();
            sys::open_in_root(root, &path).is_ok_and(|fd| {
                nix::sys::stat::fstat(&fd)
                    .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFREG)
            })
        })
    })
}

/// The TERM chosen for the firmware, and why, for -v.
pub struct Choice {
    pub term: String,
    pub why: String,
}

/// The TERM to pass for the caller's `wanted`.
pub fn choose(root: &OwnedFd, wanted: &str) -> Choice {
    let dirs = present_dirs(root);
    let (term, why) = if has_entry_in(root, &dirs, wanted) {
        (wanted, "the firmware has its terminfo entry".to_string())
    } else if has_entry_in(root, &dirs, FALLBACK) {
        (
            FALLBACK,
            format!("the firmware has no terminfo entry for {wanted}"),
        )
    } else {
        (
            LAST_RESORT,
            format!("the firmware has no terminfo entry for {wanted}, nor for {FALLBACK}"),
        )
    };
    Choice {
        term: term.to_string(),
        why,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// A scratch firmware root with the given files.
    struct Root(PathBuf);
    impl Root {
        fn new(tag: &str, files: &[&str]) -> Root {
            let dir =
                std::env::temp_dir().join(format!("fwrun-terminfo-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            for f in files {
                let p = dir.join(f.trim_start_matches('/'));
                fs::create_dir_all(p.parent().unwrap()).unwrap();
                fs::write(&p, b"entry").unwrap();
            }
            fs::create_dir_all(&dir).unwrap();
            Root(dir)
        }
        fn fd(&self) -> OwnedFd {
            fs::File::open(&self.0).unwrap().into()
        }
    }
    impl Drop for Root {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn the_callers_term_is_kept_when_the_firmware_knows_it() {
        let r = Root::new(
            "keep",
            &[
                "/usr/share/terminfo/x/xterm-256color",
                "/lib/terminfo/l/linux",
            ],
        );
        assert_eq!(choose(&r.fd(), "xterm-256color").term, "xterm-256color");
        // The hex layout (ncurses on case-insensitive file systems), and /etc.
        let r = Root::new(
            "hex",
            &["/usr/share/terminfo/74/tmux", "/etc/terminfo/s/screen"],
        );
        assert_eq!(choose(&r.fd(), "tmux").term, "tmux");
        assert_eq!(choose(&r.fd(), "screen").term, "screen");
    }

    #[test]
    fn otherwise_linux_if_it_has_it_else_vt100() {
        let r = Root::new("linux", &["/lib/terminfo/l/linux", "/lib/terminfo/v/vt100"]);
        let c = choose(&r.fd(), "tmux-256color");
        assert_eq!(c.term, "linux");
        assert_eq!(
            c.why,
            "the firmware has no terminfo entry for tmux-256color"
        );
        let r = Root::new("none", &[]);
        assert_eq!(choose(&r.fd(), "tmux-256color").term, "vt100");
        assert_eq!(choose(&r.fd(), "").term, "vt100");
        // vt100 itself absent: still vt100, and not said to be known.
        let c = choose(&r.fd(), "vt100");
        assert_eq!(c.term, "vt100");
        assert!(c.why.contains("no terminfo entry for vt100"), "{}", c.why);
    }

    #[test]
    fn a_term_cannot_point_elsewhere() {
        let r = Root::new(
            "escape",
            &["/usr/share/terminfo/x/xterm", "/usr/share/terminfo/d/dir/x"],
        );
        assert!(has_entry(&r.fd(), "xterm"));
        for bad in ["../x/xterm", "dir/x", ".", "..", "dir"] {
            assert!(!has_entry(&r.fd(), bad), "{bad}");
        }
    }
}
