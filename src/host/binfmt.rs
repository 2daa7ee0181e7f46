//! Foreign-architecture firmware: whether this machine runs a program by
//! itself, and if not, which binfmt_misc handler the kernel hands it to.
//!
//! A handler registered with the F flag had its interpreter opened when it
//! was registered, so it works inside any root. Without F the kernel opens
//! the interpreter by its path at each exec, inside the firmware's root:
//! fwrun then binds the host's interpreter there, read-only.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use nix::mount::MsFlags;

use crate::sys;

/// Where the kernel's binfmt_misc file system is mounted.
pub const DIR: &str = "/proc/sys/fs/binfmt_misc";

/// One registered handler, as its file under [`DIR`] describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handler {
    pub name: String,
    pub interpreter: PathBuf,
    /// Its flags as the kernel lists them (e.g. "POF").
    pub flags: String,
    offset: usize,
    magic: Vec<u8>,
    mask: Vec<u8>,
}

impl Handler {
    /// Whether the interpreter was opened at registration (F flag).
    pub fn fixed(&self) -> bool {
        self.flags.contains('F')
    }

    /// Whether the kernel hands a file starting with `head` to it.
    pub fn matches(&self, head: &[u8]) -> bool {
        let Some(bytes) = head.get(self.offset..self.offset + self.magic.len()) else {
            return false;
        };
        bytes.iter().enumerate().all(|(i, b)| {
            let m = self.mask.get(i).copied().unwrap_or(0xff);
            (b ^ self.magic[i]) & m == 0
        })
    }
}

/// Parse a handler's file: None when it is disabled or matches by
/// extension rather than by magic.
pub fn parse(name: &str, text: &str) -> Option<Handler> {
    let mut lines = text.lines();
    if lines.next()? != "enabled" {
        return None;
    }
    let mut h = Handler {
        name: name.to_string(),
        interpreter: PathBuf::new(),
        flags: String::new(),
        offset: 0,
        magic: Vec::new(),
        mask: Vec::new(),
    };
    for line in lines {
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        let value = value.trim();
        match key {
            "interpreter" => h.interpreter = PathBuf::from(value),
            "flags:" => h.flags = value.to_string(),
            "offset" => h.offset = value.parse().ok()?,
            "magic" => h.magic = hex(value)?,
            "mask" => h.mask = hex(value)?,
            _ => {}
        }
    }
    (!h.magic.is_empty() && !h.interpreter.as_os_str().is_empty()).then_some(h)
}

fn hex(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The ELF machines this machine runs by itself: its own, and the 32-bit
/// one its kernel runs beside it.
pub fn native(code: u16) -> bool {
    let own: &[u16] = match std::env::consts::ARCH {
        "x86_64" => &[62, 3],
        "x86" => &[3],
        "aarch64" => &[183, 40],
        "arm" => &[40],
        "riscv64" => &[243],
        "powerpc64" => &[21],
        "s390x" => &[22],
        "loongarch64" => &[258],
        "mips" | "mips64" => &[8],
        _ => return true,
    };
    own.contains(&code)
}

/// The handlers the kernel knows, and a line for -v when fwrun had to
/// mount binfmt_misc (in its own mount namespace) to read them.
pub fn handlers() -> Result<(Vec<Handler>, Option<String>)> {
    let dir = Path::new(DIR);
    let mut said = None;
    if !dir.join("status").exists() {
        sys::mount(
            "binfmt_misc",
            dir,
            Some("binfmt_misc"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None,
        )
        .map_err(|e| anyhow!("mounting binfmt_misc at {DIR} to look for a handler: {e:#}"))?;
        said = Some(format!(
            "mounted binfmt_misc at {DIR} (in fwrun's own mount namespace) to look for a handler"
        ));
    }
    let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
    if status.trim() != "enabled" {
        return Ok((Vec::new(), said));
    }
    let mut found: Vec<Handler> = std::fs::read_dir(dir)
        .map_err(|e| anyhow!("reading {DIR}: {e}"))?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if name == "status" || name == "register" {
                return None;
            }
            parse(&name, &std::fs::read_to_string(e.path()).ok()?)
        })
        .collect();
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((found, said))
}

/// Whether `path` (a host path) is a program that needs no dynamic loader:
/// a handler's interpreter without the F flag must be, to run inside the
/// firmware's root.
pub fn is_static(path: &Path) -> bool {
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    use std::io::Read;
    let mut head = Vec::new();
    let _ = f.by_ref().take(256).read_to_end(&mut head);
    matches!(crate::inspect::elf(&head, &mut f), Some((_, None)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const QEMU_AARCH64: &str = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POF\noffset 0\nmagic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n";

    #[test]
    fn a_handler_is_read_and_matched_as_the_kernel_does() {
        let h = parse("qemu-aarch64", QEMU_AARCH64).unwrap();
        assert_eq!(
            h.interpreter,
            Path::new("/usr/libexec/qemu-binfmt/aarch64-binfmt-P")
        );
        assert!(h.fixed());
        let mut head = b"\x7fELF\x02\x01\x01\x03\0\0\0\0\0\0\0\0\x02\0\xb7\0".to_vec();
        assert!(h.matches(&head), "the mask lets the OS ABI byte differ");
        head[18] = 62;
        assert!(!h.matches(&head), "an x86_64 program");
        assert!(!h.matches(b"\x7fELF"), "too short");
        let disabled = QEMU_AARCH64.replacen("enabled", "disabled", 1);
        assert_eq!(parse("x", &disabled), None);
        let ext = "enabled\ninterpreter /usr/bin/wine\nflags: \nextension .exe\n";
        assert_eq!(parse("wine", ext), None);
        let no_f = QEMU_AARCH64.replace("flags: POF", "flags: ");
        assert!(!parse("x", &no_f).unwrap().fixed());
    }

    #[test]
    fn this_machine_is_native() {
        let own = match std::env::consts::ARCH {
            "x86_64" => 62,
            "aarch64" => 183,
            _ => return,
        };
        assert!(native(own));
        assert!(!native(22));
    }
}
