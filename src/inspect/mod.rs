//! What fwrun reads in the firmware's files before it starts it, from
//! outside and without running anything of it. Paths are resolved inside
//! the firmware's root, never on the host: symlinks, absolute or not, stay
//! inside it.
//! - this file: which machine the init's program is built for, and every
//!   file the kernel opens to run it (a `#!` interpreter, an ELF program's
//!   dynamic loader);
//! - `inits.rs`: which init it is (busybox init, sysvinit, systemd), and
//!   the stop signal each expects;
//! - `terminfo.rs`: which TERM the firmware has an entry for.

pub mod inits;
pub mod terminfo;

use std::fs::File;
use std::io::{Read, Seek};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Result;
use nix::errno::Errno;

use crate::error::{fail_with, INIT_NOT_FOUND};
use crate::inspect::inits::Init;
use crate::sys;

/// How many `#!` lines the kernel follows before it gives up (ELOOP).
const MAX_SCRIPT_DEPTH: usize = 4;
/// How much of a file is read for its `#!` line or ELF header.
const HEAD: usize = 256;

/// A file the kernel opens besides the init itself to run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    /// What it is, for a person: "#! interpreter", "dynamic loader".
    pub role: &'static str,
    /// Its path inside the firmware, as the file that names it gives it.
    pub path: PathBuf,
}

/// An ELF program's machine, as the header gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Machine {
    /// e_machine.
    pub code: u16,
    pub is_64: bool,
    pub little_endian: bool,
}

impl Machine {
    /// The machine's name as Debian's and qemu's packages spell it
    /// (qemu-aarch64, qemu-arm), or its number.
    pub fn name(self) -> String {
        let (le, w64) = (self.little_endian, self.is_64);
        let name = match self.code {
            3 => "i386",
            62 if w64 => "x86_64",
            62 => "x32",
            183 => "aarch64",
            40 if le => "arm",
            40 => "armeb",
            243 if w64 => "riscv64",
            243 => "riscv32",
            8 if w64 && le => "mips64el",
            8 if w64 => "mips64",
            8 if le => "mipsel",
            8 => "mips",
            20 => "ppc",
            21 if le => "ppc64le",
            21 => "ppc64",
            22 => "s390x",
            258 => "loongarch64",
            2 => "sparc",
            43 => "sparc64",
            42 => "sh4",
            4 => "m68k",
            _ => return format!("ELF machine {}", self.code),
        };
        name.to_string()
    }
}

/// What fwrun found out about the init.
#[derive(Debug, Clone, Default)]
pub struct Inspected {
    /// The init's path inside the firmware, symlinks resolved.
    pub resolved: Option<PathBuf>,
    /// The init, if it is one fwrun recognises.
    pub init: Option<Init>,
    /// The files exec opens after the init itself, in order.
    pub needs: Vec<Need>,
    /// The ELF program the kernel ends up running (the init, or the last
    /// `#!` interpreter), by its path inside the firmware.
    pub elf_path: Option<PathBuf>,
    /// Its machine; None when it is not an ELF program fwrun could read.
    pub machine: Option<Machine>,
    /// Its first bytes, which binfmt_misc handlers match.
    pub head: Vec<u8>,
}

/// A file opened inside the root: its resolved path and its content.
fn open_read(root: &OwnedFd, path: &Path) -> Result<(PathBuf, File), Errno> {
    let fd = sys::open_in_root(root, path)?;
    let magic = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let resolved = std::fs::read_link(&magic).map_err(|_| Errno::EIO)?;
    // Non-blocking, should it not be a regular file after all.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&magic)
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    Ok((resolved, file))
}

/// Where `resolved` (a /proc/self/fd link's target, a host path) is inside
/// the root at `root_path`.
fn inside(root_path: &Path, resolved: &Path) -> PathBuf {
    match resolved.strip_prefix(root_path) {
        Ok(rest) => Path::new("/").join(rest),
        Err(_) => resolved.to_path_buf(),
    }
}

fn head_of(file: &mut File) -> Vec<u8> {
    let mut head = Vec::with_capacity(HEAD);
    let _ = file.by_ref().take(HEAD as u64).read_to_end(&mut head);
    head
}

/// Look at the init `program` (already found inside the root at
/// `root_path`, opened as `root`), exec'd with `argv0` and `argv1`. A
/// `#!` interpreter or a dynamic loader that the firmware does not have
/// is refused here (exit 127), naming the file that is missing.
pub fn inspect(
    root: &OwnedFd,
    root_path: &Path,
    program: &Path,
    applet: Option<&str>,
) -> Result<Inspected> {
    let mut out = Inspected::default();
    let Ok((resolved, mut first)) = open_read(root, program) else {
        return Ok(out);
    };
    out.init = inits::recognise(&resolved, &mut first, applet);
    out.resolved = Some(inside(root_path, &resolved));
    // The program itself is read again from its start, not opened again.
    let mut first = first.rewind().is_ok().then_some(first);
    let mut current = program.to_path_buf();
    for _ in 0..=MAX_SCRIPT_DEPTH {
        let mut file = match first.take() {
            Some(f) => f,
            None => match open_read(root, &current) {
                Ok((_, f)) => f,
                Err(_) if current == program => return Ok(out),
                Err(e) => return Err(missing(program, out.needs.last(), e)),
            },
        };
        let head = head_of(&mut file);
        if let Some(interp) = shebang(&head) {
            out.needs.push(Need {
                role: "#! interpreter",
                path: interp.clone(),
            });
            current = interp;
            continue;
        }
        if let Some((machine, loader)) = elf(&head, &mut file) {
            out.machine = Some(machine);
            out.elf_path = Some(current.clone());
            out.head = head;
            if let Some(loader) = loader {
                let need = Need {
                    role: "dynamic loader",
                    path: loader,
                };
                if let Err(e) = sys::open_in_root(root, &need.path) {
                    return Err(missing(program, Some(&need), e));
                }
                out.needs.push(need);
            }
        }
        return Ok(out);
    }
    Ok(out)
}

/// The error for a file the init needs that the firmware lacks.
fn missing(program: &Path, need: Option<&Need>, e: Errno) -> anyhow::Error {
    let Some(need) = need else {
        return anyhow::anyhow!(
            "reading init '{}': {}",
            program.display(),
            sys::errno_text(e)
        );
    };
    fail_with(
        INIT_NOT_FOUND,
        format!(
            "init '{}' is there, but its {} '{}' is not in the firmware ({}): add it to the firmware, or give another init after --",
            program.display(),
            need.role,
            need.path.display(),
            sys::errno_text(e)
        ),
    )
}

/// The interpreter a `#!` line names, if `head` starts with one.
pub fn shebang(head: &[u8]) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let rest = head.strip_prefix(b"#!")?;
    let line = rest.split(|&b| b == b'\n').next()?;
    let word = line
        .split(|&b| b == b' ' || b == b'\t')
        .find(|w| !w.is_empty())?;
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(word)))
}

/// An ELF header's machine, and the dynamic loader its program headers
/// name (PT_INTERP), if any.
pub fn elf(head: &[u8], file: &mut File) -> Option<(Machine, Option<PathBuf>)> {
    use std::os::unix::fs::FileExt;
    if head.len() < 52 || &head[..4] != b"\x7fELF" {
        return None;
    }
    let is_64 = match head[4] {
        1 => false,
        2 => true,
        _ => return None,
    };
    let little_endian = match head[5] {
        1 => true,
        2 => false,
        _ => return None,
    };
    let u16_at = |b: &[u8], o: usize| {
        let v = [b[o], b[o + 1]];
        if little_endian {
            u16::from_le_bytes(v)
        } else {
            u16::from_be_bytes(v)
        }
    };
    let uint_at = |b: &[u8], o: usize, wide: bool| -> u64 {
        let n = if wide { 8 } else { 4 };
        let mut v = [0u8; 8];
        v[..n].copy_from_slice(&b[o..o + n]);
        if little_endian {
            u64::from_le_bytes(v)
        } else {
            v[..n].reverse();
            u64::from_le_bytes(v)
        }
    };
    let machine = Machine {
        code: u16_at(head, 18),
        is_64,
        little_endian,
    };
    if is_64 && head.len() < 64 {
        return Some((machine, None));
    }
    let (phoff, phentsize, phnum) = if is_64 {
        (uint_at(head, 32, true), u16_at(head, 54), u16_at(head, 56))
    } else {
        (uint_at(head, 28, false), u16_at(head, 42), u16_at(head, 44))
    };
    let mut table = vec![0u8; phentsize as usize * phnum.min(256) as usize];
    if phentsize < 32 || file.read_exact_at(&mut table, phoff).is_err() {
        return Some((machine, None));
    }
    for ph in table.chunks(phentsize as usize) {
        // PT_INTERP
        if uint_at(ph, 0, false) as u32 != 3 {
            continue;
        }
        let (off, size) = if is_64 {
            (uint_at(ph, 8, true), uint_at(ph, 32, true))
        } else {
            (uint_at(ph, 4, false), uint_at(ph, 16, false))
        };
        let mut name = vec![0u8; size.min(4096) as usize];
        if file.read_exact_at(&mut name, off).is_err() {
            return Some((machine, None));
        }
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        use std::os::unix::ffi::OsStrExt;
        let path = PathBuf::from(std::ffi::OsStr::from_bytes(&name[..end]));
        return Some((machine, (!path.as_os_str().is_empty()).then_some(path)));
    }
    Some((machine, None))
}

/// The busybox applet an argv runs: the name of argv[0], or argv[1]'s
/// when argv[0] is busybox itself (`busybox init`).
pub fn applet<'a>(argv0: &'a str, argv1: Option<&'a str>) -> Option<&'a str> {
    let name = |s: &'a str| s.rsplit('/').next().filter(|n| !n.is_empty());
    let first = name(argv0)?;
    if first.starts_with("busybox") {
        argv1.and_then(name)
    } else {
        Some(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn shebang_lines() {
        assert_eq!(shebang(b"#!/bin/sh\necho"), Some("/bin/sh".into()));
        assert_eq!(shebang(b"#! /bin/bash -e\n"), Some("/bin/bash".into()));
        assert_eq!(
            shebang(b"#!/usr/bin/env python3"),
            Some("/usr/bin/env".into())
        );
        assert_eq!(shebang(b"#!\n"), None);
        assert_eq!(shebang(b"\x7fELF"), None);
    }

    /// A minimal ELF file: header, one program header table with a
    /// PT_INTERP naming `loader` (64-bit little-endian).
    fn elf64(machine: u16, loader: Option<&str>) -> Vec<u8> {
        let mut f = vec![0u8; 64];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = 1;
        f[6] = 1;
        f[16..18].copy_from_slice(&2u16.to_le_bytes());
        f[18..20].copy_from_slice(&machine.to_le_bytes());
        f[32..40].copy_from_slice(&64u64.to_le_bytes());
        f[54..56].copy_from_slice(&56u16.to_le_bytes());
        f[56..58].copy_from_slice(&1u16.to_le_bytes());
        let mut ph = vec![0u8; 56];
        let name = loader.map(|l| format!("{l}\0")).unwrap_or_default();
        let kind: u32 = if loader.is_some() { 3 } else { 1 };
        ph[..4].copy_from_slice(&kind.to_le_bytes());
        ph[8..16].copy_from_slice(&120u64.to_le_bytes());
        ph[32..40].copy_from_slice(&(name.len() as u64).to_le_bytes());
        f.extend(ph);
        f.extend(name.as_bytes());
        f
    }

    fn read(bytes: &[u8]) -> Option<(Machine, Option<PathBuf>)> {
        let mut tmp = tempfile();
        tmp.write_all(bytes).unwrap();
        let head = bytes[..HEAD.min(bytes.len())].to_vec();
        elf(&head, &mut tmp)
    }

    fn tempfile() -> File {
        crate::state::scratch::unlinked_file("elf")
    }

    #[test]
    fn elf_machine_and_loader() {
        let (m, l) = read(&elf64(183, Some("/lib/ld-linux-aarch64.so.1"))).unwrap();
        assert_eq!(m.name(), "aarch64");
        assert_eq!(l, Some("/lib/ld-linux-aarch64.so.1".into()));
        let (m, l) = read(&elf64(62, None)).unwrap();
        assert_eq!((m.name().as_str(), l), ("x86_64", None));
        assert!(read(b"#!/bin/sh\n").is_none());
        // Our own test binary: this machine's, with a loader.
        let me = std::fs::read("/proc/self/exe").unwrap();
        let (m, _) = read(&me[..]).unwrap();
        assert_eq!(m.name(), std::env::consts::ARCH);
    }

    /// A firmware root in a temporary directory: symlinks (absolute ones
    /// too) and #! lines are followed inside it, and what is missing is
    /// named.
    #[test]
    fn the_chain_is_followed_inside_the_root() {
        use std::os::unix::fs::symlink;
        let dir = std::env::temp_dir().join(format!("fwrun-inspect-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for d in ["bin", "sbin", "lib", "test"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        std::fs::write(dir.join("bin/busybox"), elf64(183, None)).unwrap();
        symlink("/bin/busybox", dir.join("sbin/init")).unwrap();
        symlink("busybox", dir.join("bin/sh")).unwrap();
        std::fs::write(dir.join("test/run.sh"), "#!/bin/sh -e\necho\n").unwrap();
        std::fs::write(dir.join("test/bad.sh"), "#!/bin/bash\necho\n").unwrap();
        std::fs::write(
            dir.join("test/dyn"),
            elf64(183, Some("/lib/ld-linux-aarch64.so.1")),
        )
        .unwrap();
        let root: OwnedFd = std::fs::File::open(&dir).unwrap().into();
        let look = |p: &str, applet| inspect(&root, &dir, Path::new(p), applet);

        let seen = look("/sbin/init", Some("init")).unwrap();
        assert_eq!(seen.init, Some(Init::Busybox));
        assert_eq!(seen.resolved.as_deref(), Some(Path::new("/bin/busybox")));
        assert_eq!(seen.machine.map(Machine::name).as_deref(), Some("aarch64"));
        assert!(seen.needs.is_empty());

        let seen = look("/test/run.sh", Some("run.sh")).unwrap();
        assert_eq!(seen.init, None);
        assert_eq!(seen.elf_path.as_deref(), Some(Path::new("/bin/sh")));
        assert_eq!(seen.needs.len(), 1);
        assert_eq!(seen.needs[0].role, "#! interpreter");
        assert_eq!(&seen.head[18..20], &[183, 0]);

        let e = look("/test/bad.sh", None).unwrap_err();
        assert_eq!(crate::error::exit_code(&e), INIT_NOT_FOUND);
        let msg = crate::error::one_line(&e);
        assert!(
            msg.contains("its #! interpreter '/bin/bash' is not in the firmware"),
            "{msg}"
        );

        let e = look("/test/dyn", None).unwrap_err();
        let msg = crate::error::one_line(&e);
        assert!(
            msg.contains("its dynamic loader '/lib/ld-linux-aarch64.so.1' is not in the firmware"),
            "{msg}"
        );
        std::fs::write(dir.join("lib/ld-linux-aarch64.so.1"), elf64(183, None)).unwrap();
        let seen = look("/test/dyn", None).unwrap();
        assert_eq!(seen.needs[0].role, "dynamic loader");
        // A missing init is left to the init's own check.
        assert!(look("/nowhere", None).unwrap().resolved.is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn applets() {
        assert_eq!(applet("/sbin/init", None), Some("init"));
        assert_eq!(applet("/bin/busybox", Some("init")), Some("init"));
        assert_eq!(applet("busybox", None), None);
        assert_eq!(applet("/bin/sh", Some("-c")), Some("sh"));
    }
}
