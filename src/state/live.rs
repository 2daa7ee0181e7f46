//! A live run as the commands that act on it from outside see it (`fwrun
//! enter`, `list`, `stop`, `wait`): what the run publishes in its state
//! directory for them, and how they find it by name.
//!
//! A run is live while its `lock` is held by the fwrun whose pid its `info`
//! names (read from /proc/locks, so that a reused pid is never taken for
//! it), in a directory that root owns and no one else may write. The files
//! it adds, each written whole (a temporary name renamed into place):
//! - `booting`, `ready` or `stopping`: one empty file whose name is the
//!   phase, renamed as the phase changes. Replacing a file that holds data
//!   makes a disk-backed /run write it out at once; a rename writes none;
//! - `facts`, once: sections (a name, a length, the bytes), so that any
//!   byte may appear in them:
//!   - `firmware`, `net` (the mode, and the host side's interface and
//!     address when it has them): what `fwrun list` shows;
//!   - `env`: the init's environment, NUL-separated;
//!   - `confine`: the capabilities the init kept, whether the seccomp
//!     filter is on, the devices of the host file systems bound into the
//!     firmware;
//! - `init`, at each boot, in sections too: `pid`, its start time in clock
//!   ticks since boot (pid and start time together name one process), and
//!   `mounts`, the init's mountinfo as it started (fwrun's mounts, which
//!   the mount interception keeps).
//!
//! Few files, because each one costs an inode where /run is a disk file
//! system (measured: 0.2 ms a file on an ext4 without journal).
//!
//! The AppArmor profile and the run's cgroup are the ones `resources`
//! records.

use std::ffi::CString;
use std::fs;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use rustix::fs::{flock, FlockOperation};
use rustix::process::{Pid, PidfdFlags};

use crate::error::fail;
use crate::state::{check_name, Resource, INFO, LOCK, RESOURCES, STATE_ROOT, TMP_PREFIX};

const INIT: &str = "init";
const FACTS: &str = "facts";

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Starting, or its init runs and it is not ready yet.
    Booting,
    /// Its --ready-when conditions held (at once without any).
    Ready,
    /// Being stopped, or its init has ended: it is tearing down.
    Stopping,
}

impl Phase {
    pub fn word(self) -> &'static str {
        match self {
            Phase::Booting => "booting",
            Phase::Ready => "ready",
            Phase::Stopping => "stopping",
        }
    }

    /// The phase a run's state directory shows.
    fn read(dir: &Path) -> Phase {
        [Phase::Stopping, Phase::Ready]
            .into_iter()
            .find(|p| dir.join(p.word()).exists())
            .unwrap_or(Phase::Booting)
    }
}

/// Write `dir/file` whole: readers see the old content or the new, never
/// a part.
fn publish(dir: &Path, file: &str, content: &[u8]) -> Result<()> {
    let tmp = dir.join(format!(".{file}.tmp"));
    let path = dir.join(file);
    let write = || -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(content)?;
        fs::rename(&tmp, &path)
    };
    write().with_context(|| format!("writing {}", path.display()))
}

pub fn set_phase(dir: &Path, phase: Phase) -> Result<()> {
    let to = dir.join(phase.word());
    // One empty file, renamed from phase to phase: no data, and after the
    // first, no new inode either. A rename is atomic, so a reader sees the
    // old phase or the new one.
    for from in [Phase::Booting, Phase::Ready, Phase::Stopping] {
        if from == phase {
            continue;
        }
        match fs::rename(dir.join(from.word()), &to) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("writing {}", to.display())),
        }
    }
    fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&to)
        .map(drop)
        .with_context(|| format!("writing {}", to.display()))
}

/// What a run tells those who enter it, written once its state directory
/// exists.
pub struct RunFacts<'a> {
    pub firmware: &'a Path,
    /// The network mode's name (none, host, veth, bridge).
    pub net: &'a str,
    /// The host side of the firmware's link, and its address.
    pub interface: Option<&'a str>,
    pub address: Option<String>,
    /// The init's environment, KEY=VALUE.
    pub env: &'a [CString],
    /// The capabilities the init kept, by their short names.
    pub caps: &'a [String],
    pub seccomp: bool,
    pub host_devs: &'a [(u32, u32)],
}

pub fn publish_facts(dir: &Path, f: &RunFacts) -> Result<()> {
    set_phase(dir, Phase::Booting)?;
    let mut net = format!("mode {}\n", f.net);
    if let Some(i) = f.interface {
        net.push_str(&format!("interface {i}\n"));
    }
    if let Some(a) = &f.address {
        net.push_str(&format!("address {a}\n"));
    }
    let mut env = Vec::new();
    for kv in f.env {
        env.extend_from_slice(kv.as_bytes());
        env.push(0);
    }
    let mut confine = format!(
        "caps {}\nseccomp {}\n",
        f.caps.join(","),
        if f.seccomp { "on" } else { "off" }
    );
    for (major, minor) in f.host_devs {
        confine.push_str(&format!("hostdev {major}:{minor}\n"));
    }
    let sections: [(&str, &[u8]); 4] = [
        ("firmware", f.firmware.as_os_str().as_bytes()),
        ("net", net.as_bytes()),
        ("env", &env),
        ("confine", confine.as_bytes()),
    ];
    publish(dir, FACTS, &encode_sections(&sections))
}

/// Sections, each as `NAME LENGTH\n` and LENGTH bytes.
fn encode_sections(sections: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, bytes) in sections {
        out.extend_from_slice(format!("{name} {}\n", bytes.len()).as_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

/// The sections of `encode_sections`' output, up to the first one that is
/// not whole.
fn decode_sections(mut data: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(nl) = data.iter().position(|b| *b == b'\n') {
        let head = String::from_utf8_lossy(&data[..nl]).into_owned();
        let Some((name, len)) = head.split_once(' ') else {
            break;
        };
        let Ok(len) = len.parse::<usize>() else {
            break;
        };
        let body = &data[nl + 1..];
        if body.len() < len {
            break;
        }
        out.push((name.to_string(), body[..len].to_vec()));
        data = &body[len..];
    }
    out
}

/// The section `name` of a file of sections, empty when it has none.
fn section(sections: &[(String, Vec<u8>)], name: &str) -> Vec<u8> {
    sections
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, b)| b.clone())
        .unwrap_or_default()
}

/// A process's start time, in clock ticks since boot (field 22 of
/// /proc/PID/stat), and its parent's pid.
pub fn start_and_parent(pid: i32) -> Option<(u64, i32)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after
    // the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts with field 3 (state); ppid is field 4, starttime 22.
    let ppid = fields.get(1)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((start, ppid))
}

/// The init has started (or started again): its pid, and the mounts it
/// started with.
pub fn publish_init(dir: &Path, pid: i32, mountinfo: &str) -> Result<()> {
    let (ticks, _) =
        start_and_parent(pid).ok_or_else(|| anyhow!("reading /proc/{pid}/stat: it is gone"))?;
    let (pid, ticks) = (pid.to_string(), ticks.to_string());
    let sections: [(&str, &[u8]); 3] = [
        ("pid", pid.as_bytes()),
        ("ticks", ticks.as_bytes()),
        ("mounts", mountinfo.as_bytes()),
    ];
    publish(dir, INIT, &encode_sections(&sections))
}

/// `key=value` lines.
fn value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
}

/// The holders of flock locks on the file (device, inode), from
/// /proc/locks's text.
fn lock_holders(locks: &str, dev: (u32, u32), ino: u64) -> Vec<i32> {
    locks
        .lines()
        .filter(|l| !l.contains("->"))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // "1: FLOCK ADVISORY WRITE PID MAJ:MIN:INODE START END"
            if f.get(1) != Some(&"FLOCK") {
                return None;
            }
            let pid = f.get(4)?.parse().ok()?;
            let mut id = f.get(5)?.split(':');
            let major = u32::from_str_radix(id.next()?, 16).ok()?;
            let minor = u32::from_str_radix(id.next()?, 16).ok()?;
            let inode: u64 = id.next()?.parse().ok()?;
            ((major, minor) == dev && inode == ino).then_some(pid)
        })
        .collect()
}

/// /proc/locks, in reads as large as the kernel gives (each read() is one
/// consistent look at a page of it; read in small pieces, a lock released
/// between two reads can hide another).
fn read_locks() -> String {
    let mut out = Vec::new();
    if let Ok(mut f) = fs::File::open("/proc/locks") {
        let mut buf = vec![0u8; 1 << 16];
        while let Ok(n @ 1..) = f.read(&mut buf) {
            out.extend_from_slice(&buf[..n]);
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// How many looks at /proc/locks may find a held lock's holder: other
/// processes' locks come and go meanwhile.
const LOOKS: usize = 5;

/// Whether anyone holds the lock of `f` (a shared lock cannot be taken
/// beside it). The authority on liveness; /proc/locks then says who.
fn locked(f: &fs::File) -> bool {
    if flock(f, FlockOperation::NonBlockingLockShared).is_ok() {
        let _ = flock(f, FlockOperation::Unlock);
        false
    } else {
        true
    }
}

fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    rustix::process::pidfd_open(Pid::from_raw(pid)?, PidfdFlags::empty()).ok()
}

/// A run found alive, its fwrun's pid verified.
pub struct Live {
    pub name: String,
    pub dir: PathBuf,
    /// fwrun's pid, and a pidfd that stays that process's.
    pub pid: i32,
    pub pidfd: OwnedFd,
    /// When fwrun started, in seconds since the epoch.
    pub start: u64,
}

/// The directory must be root's, as the caller is, and writable by no one
/// else: a run of another user, or state planted by one, is never entered.
fn check_owned(path: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(path).with_context(|| format!("reading {}", path.display()))?;
    let me = nix::unistd::geteuid().as_raw();
    if !meta.is_dir() || meta.uid() != 0 || meta.uid() != me || meta.mode() & 0o022 != 0 {
        return Err(fail(format!(
            "{} is not a run's state directory (it must be a directory of root's that only root may write): not touching it",
            path.display()
        )));
    }
    Ok(())
}

/// The run named `name`, if it is alive. Fails on a bad name or a state
/// directory that is not root's.
pub fn find(name: &str) -> Result<Option<Live>> {
    check_name(name).map_err(|e| fail(format!("bad run name: {e}")))?;
    let root = Path::new(STATE_ROOT);
    if !root.exists() {
        return Ok(None);
    }
    check_owned(root)?;
    let dir = root.join(name);
    match fs::symlink_metadata(&dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        _ => check_owned(&dir)?,
    }
    verify(name, dir)
}

fn verify(name: &str, dir: PathBuf) -> Result<Option<Live>> {
    let lock = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir.join(LOCK))
    {
        Ok(f) => f,
        Err(_) => return Ok(None),
    };
    let meta = lock.metadata()?;
    let id = (
        (libc::major(meta.dev()), libc::minor(meta.dev())),
        meta.ino(),
    );
    let info = fs::read_to_string(dir.join(INFO)).unwrap_or_default();
    let (Some(pid), Some(start)) = (
        value(&info, "pid").and_then(|p| p.parse::<i32>().ok()),
        value(&info, "start").and_then(|s| s.parse::<u64>().ok()),
    ) else {
        return Ok(None);
    };
    let holds = || {
        locked(&lock) && (0..LOOKS).any(|_| lock_holders(&read_locks(), id.0, id.1).contains(&pid))
    };
    if !holds() {
        return Ok(None);
    }
    let Some(pidfd) = pidfd_open(pid) else {
        return Ok(None);
    };
    // The pidfd was opened while that pid held the lock: it is fwrun's.
    if !holds() {
        return Ok(None);
    }
    Ok(Some(Live {
        name: name.to_string(),
        dir,
        pid,
        pidfd,
        start,
    }))
}

/// Every live run, by name.
pub fn all() -> Result<Vec<Live>> {
    let mut names: Vec<String> = match fs::read_dir(STATE_ROOT) {
        Ok(d) => d
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with(TMP_PREFIX) && check_name(n).is_ok())
            .collect(),
        Err(_) => return Ok(Vec::new()),
    };
    names.sort();
    let mut out = Vec::new();
    for n in names {
        if let Ok(Some(live)) = find(&n) {
            out.push(live);
        }
    }
    Ok(out)
}

/// What the run published, read back.
#[derive(Debug, Default)]
pub struct Facts {
    pub firmware: String,
    /// The network mode, and the host side's interface and address.
    pub net: String,
    pub interface: Option<String>,
    pub address: Option<String>,
    /// KEY=VALUE strings, in order.
    pub env: Vec<CString>,
    /// The capabilities the init kept, by their short names.
    pub caps: Vec<String>,
    pub seccomp: bool,
    pub host_devs: Vec<(u32, u32)>,
    pub mounts: String,
    pub profile: Option<String>,
    /// The run's cgroup directory, when it has one.
    pub cgroup: Option<PathBuf>,
}

fn parse_confine(text: &str, f: &mut Facts) {
    for line in text.lines() {
        match line.split_once(' ') {
            Some(("caps", list)) => {
                f.caps = list
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(str::to_string)
                    .collect()
            }
            Some(("seccomp", v)) => f.seccomp = v == "on",
            Some(("hostdev", d)) => {
                if let Some((a, b)) = d.split_once(':') {
                    if let (Ok(a), Ok(b)) = (a.parse(), b.parse()) {
                        f.host_devs.push((a, b));
                    }
                }
            }
            _ => {}
        }
    }
}

impl Live {
    pub fn phase(&self) -> Phase {
        Phase::read(&self.dir)
    }

    /// Whether the run is still the live one this value found.
    pub fn still_live(&self) -> bool {
        matches!(verify(&self.name, self.dir.clone()), Ok(Some(l)) if l.pid == self.pid && l.start == self.start)
    }

    /// The init's pid and a pidfd for it, once it runs: still fwrun's child,
    /// started when the run recorded.
    pub fn init(&self) -> Result<(i32, OwnedFd)> {
        let not_yet = || {
            fail(format!(
                "run '{}' has not started its init yet: wait until it has (fwrun wait {})",
                self.name, self.name
            ))
        };
        let init = decode_sections(&fs::read(self.dir.join(INIT)).map_err(|_| not_yet())?);
        let text = |name| String::from_utf8_lossy(&section(&init, name)).into_owned();
        let pid: i32 = text("pid").parse().map_err(|_| not_yet())?;
        let ticks: u64 = text("ticks").parse().map_err(|_| not_yet())?;
        let gone = || {
            fail(format!(
                "run '{}' is {}: its init has ended",
                self.name,
                match self.phase() {
                    Phase::Stopping => "stopping",
                    _ => "between two boots",
                }
            ))
        };
        let pidfd = pidfd_open(pid).ok_or_else(gone)?;
        match start_and_parent(pid) {
            Some((t, parent)) if t == ticks && parent == self.pid => Ok((pid, pidfd)),
            _ => Err(gone()),
        }
    }

    /// Everything the run published.
    pub fn facts(&self) -> Result<Facts> {
        let all = decode_sections(&fs::read(self.dir.join(FACTS)).context("reading facts")?);
        let text = |name| String::from_utf8_lossy(&section(&all, name)).into_owned();
        let mut facts = Facts {
            firmware: text("firmware"),
            ..Facts::default()
        };
        for line in text("net").lines() {
            match line.split_once(' ') {
                Some(("mode", m)) => facts.net = m.to_string(),
                Some(("interface", i)) => facts.interface = Some(i.to_string()),
                Some(("address", a)) => facts.address = Some(a.to_string()),
                _ => {}
            }
        }
        facts.env = section(&all, "env")
            .split(|b| *b == 0)
            .filter(|kv| !kv.is_empty())
            .filter_map(|kv| CString::new(kv).ok())
            .collect();
        parse_confine(&text("confine"), &mut facts);
        let init = decode_sections(&fs::read(self.dir.join(INIT)).unwrap_or_default());
        facts.mounts = String::from_utf8_lossy(&section(&init, "mounts")).into_owned();
        let resources = fs::read_to_string(self.dir.join(RESOURCES)).unwrap_or_default();
        for r in resources.lines().filter_map(Resource::parse) {
            match r {
                Resource::Profile(p) => facts.profile = Some(p),
                Resource::Cgroup(c) => facts.cgroup = Some(c),
                Resource::Link(_) => {}
            }
        }
        Ok(facts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_holders_are_read_from_proc_locks() {
        let text = "1: FLOCK  ADVISORY  WRITE 1234 00:1a:5678 0 EOF\n\
                    1: -> FLOCK  ADVISORY  WRITE 99 00:1a:5678 0 EOF\n\
                    2: POSIX  ADVISORY  WRITE 777 00:1a:5678 0 EOF\n\
                    3: FLOCK  ADVISORY  WRITE 42 fd:01:5678 0 EOF\n";
        assert_eq!(lock_holders(text, (0, 0x1a), 5678), [1234]);
        assert_eq!(lock_holders(text, (0xfd, 1), 5678), [42]);
        assert!(lock_holders(text, (0, 0x1a), 1).is_empty());
    }

    #[test]
    fn stat_fields_after_a_name_with_parentheses() {
        let (start, parent) = start_and_parent(std::process::id() as i32).unwrap();
        assert!(start > 0);
        assert_eq!(parent, std::os::unix::process::parent_id() as i32);
    }

    #[test]
    fn sections_carry_any_byte_and_stop_at_a_torn_one() {
        let env = b"A=1\0B=two words\n\0";
        let data = encode_sections(&[("firmware", b"/x/fw 1.img"), ("env", env), ("empty", b"")]);
        let got = decode_sections(&data);
        assert_eq!(section(&got, "firmware"), b"/x/fw 1.img");
        assert_eq!(section(&got, "env"), env);
        assert_eq!(got.len(), 3);
        assert!(section(&got, "missing").is_empty());
        // A file cut short keeps only the sections that are whole.
        let cut = decode_sections(&data[..data.len() - 9]);
        assert_eq!(cut.len(), 1);
    }

    #[test]
    fn phases_and_confine_lines() {
        let dir = std::env::temp_dir().join(format!("fwrun-phase-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        assert_eq!(Phase::read(&dir), Phase::Booting);
        for p in [Phase::Ready, Phase::Stopping, Phase::Booting, Phase::Ready] {
            set_phase(&dir, p).unwrap();
            assert_eq!(Phase::read(&dir), p);
        }
        fs::remove_dir_all(&dir).unwrap();
        let mut f = Facts::default();
        parse_confine("caps chown,sys_admin\nseccomp on\nhostdev 0:5\n", &mut f);
        assert_eq!(f.caps, ["chown", "sys_admin"]);
        assert!(f.seccomp);
        assert_eq!(f.host_devs, [(0, 5)]);
    }
}
