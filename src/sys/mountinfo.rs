//! /proc/PID/mountinfo, one [`Entry`] a line (proc(5)):
//!
//! ```text
//! 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//! ```
//!
//! mount id, parent id, device, root within the file system, mount point,
//! mount options, optional fields (none or more, such as `shared:N`) up to
//! a lone `-`, then the file system type, the source and the super block's
//! options. The kernel writes a space, tab, newline or backslash in a path
//! or source as an octal escape (`\040`); the entry has them undone.

use std::borrow::Cow;

/// One line of mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    pub id: u64,
    pub parent: u64,
    /// The file system's device (major, minor).
    pub dev: (u32, u32),
    /// The directory of the file system that is the mount's root.
    pub root: Cow<'a, str>,
    pub mount_point: Cow<'a, str>,
    /// The mount's own options, comma-separated (`rw,nosuid,relatime`).
    pub options: &'a str,
    pub fstype: &'a str,
    pub source: Cow<'a, str>,
    /// The file system's options, comma-separated (`rw,mode=755`).
    pub super_options: &'a str,
}

impl<'a> Entry<'a> {
    /// One line, without its newline; None if it is not a mountinfo line.
    pub fn parse(line: &'a str) -> Option<Entry<'a>> {
        let mut f = line.split(' ');
        let id = f.next()?.parse().ok()?;
        let parent = f.next()?.parse().ok()?;
        let (major, minor) = f.next()?.split_once(':')?;
        let dev = (major.parse().ok()?, minor.parse().ok()?);
        let root = unescape(f.next()?);
        let mount_point = unescape(f.next()?);
        let options = f.next()?;
        // The optional fields end at a lone "-".
        f.by_ref().find(|&field| field == "-")?;
        Some(Entry {
            id,
            parent,
            dev,
            root,
            mount_point,
            options,
            fstype: f.next()?,
            source: unescape(f.next()?),
            super_options: f.next()?,
        })
    }

    /// Whether the mount is read-only (its own flag, not the file
    /// system's).
    pub fn read_only(&self) -> bool {
        self.options.split(',').any(|o| o == "ro")
    }

    /// Whether the file system's options hold `option` (`memory`,
    /// `name=systemd`).
    pub fn has_super_option(&self, option: &str) -> bool {
        self.super_options.split(',').any(|o| o == option)
    }
}

/// Every line of `text` that is a mountinfo line, in order.
pub fn entries(text: &str) -> impl DoubleEndedIterator<Item = Entry<'_>> {
    text.lines().filter_map(Entry::parse)
}

/// `s` with its octal escapes (`\ooo`) undone; a backslash that does not
/// start one stays as it is.
pub fn unescape(s: &str) -> Cow<'_, str> {
    if !s.contains('\\') {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if let Some(byte) = octal_escape(&b[i..]) {
            out.push(byte);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    match String::from_utf8(out) {
        Ok(s) => Cow::Owned(s),
        Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
    }
}

/// The byte that `\ooo` at the start of `b` stands for.
fn octal_escape(b: &[u8]) -> Option<u8> {
    let [b'\\', digits @ ..] = b.get(..4)? else {
        return None;
    };
    digits.iter().try_fold(0u8, |n, &d| match d {
        b'0'..=b'7' => n.checked_mul(8)?.checked_add(d - b'0'),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_with_optional_fields() {
        let e = Entry::parse(
            "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 shared:7 - ext3 /dev/root rw,errors=continue",
        )
        .unwrap();
        assert_eq!(e.id, 36);
        assert_eq!(e.parent, 35);
        assert_eq!(e.dev, (98, 0));
        assert_eq!(e.root, "/mnt1");
        assert_eq!(e.mount_point, "/mnt2");
        assert_eq!(e.options, "rw,noatime");
        assert_eq!(e.fstype, "ext3");
        assert_eq!(e.source, "/dev/root");
        assert_eq!(e.super_options, "rw,errors=continue");
        assert!(!e.read_only());
        assert!(e.has_super_option("errors=continue"));
        assert!(!e.has_super_option("errors"));
    }

    #[test]
    fn a_line_without_optional_fields() {
        let e =
            Entry::parse("104 100 0:61 / /sys ro,nosuid,nodev,noexec - sysfs sysfs rw").unwrap();
        assert_eq!((e.id, e.parent, e.dev), (104, 100, (0, 61)));
        assert_eq!(e.mount_point, "/sys");
        assert!(e.read_only());
        assert_eq!(
            (e.fstype, &*e.source, e.super_options),
            ("sysfs", "sysfs", "rw")
        );
    }

    #[test]
    fn escapes_are_undone_in_paths_and_source() {
        let e = Entry::parse(
            r"108 100 8:1 /srv/my\040dir /my\040dir\011tab\012nl\134bs rw - fuse.x a\040b rw",
        )
        .unwrap();
        assert_eq!(e.root, "/srv/my dir");
        assert_eq!(e.mount_point, "/my dir\ttab\nnl\\bs");
        assert_eq!(e.source, "a b");
        assert!(matches!(
            Entry::parse("1 0 0:1 / /plain rw - tmpfs t rw")
                .unwrap()
                .mount_point,
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn a_backslash_without_three_octal_digits_stays() {
        assert_eq!(unescape(r"a\b"), r"a\b");
        assert_eq!(unescape(r"a\04"), r"a\04");
        assert_eq!(unescape(r"a\048"), r"a\048");
        assert_eq!(unescape(r"a\400"), r"a\400");
        assert_eq!(unescape(r"end\"), r"end\");
        assert_eq!(unescape(r"\101\102"), "AB");
    }

    #[test]
    fn the_separator_is_a_lone_dash_field() {
        // A mount point named "-" is not the separator's place.
        let e = Entry::parse("5 1 0:9 / /- rw - tmpfs none rw,size=1k").unwrap();
        assert_eq!(e.mount_point, "/-");
        assert_eq!(e.fstype, "tmpfs");
        // An empty source.
        let e = Entry::parse("6 1 0:9 / /e rw - tmpfs  rw").unwrap();
        assert_eq!(e.source, "");
        assert_eq!(e.super_options, "rw");
    }

    #[test]
    fn broken_lines_are_none() {
        for bad in [
            "",
            "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 ext3 /dev/root rw",
            "x 35 98:0 / / rw - ext3 /dev/root rw",
            "36 35 98 / / rw - ext3 /dev/root rw",
            "36 35 98:0 / / rw - ext3 /dev/root",
        ] {
            assert_eq!(Entry::parse(bad), None, "{bad}");
        }
        let text = "1 0 0:1 / / rw - overlay o rw\nnot a line\n2 1 0:2 / /proc rw - proc proc rw\n";
        let ids: Vec<u64> = entries(text).map(|e| e.id).collect();
        assert_eq!(ids, [1, 2]);
    }
}
