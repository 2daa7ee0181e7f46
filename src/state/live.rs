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
//! - `facts`, once the run has acquired what it needs: [`Facts`], as JSON,
//!   written and read back by that one type: what `fwrun list` shows (the
//!   firmware, the network) and what `fwrun enter` needs to start a command
//!   as the init was started (its environment, its confinement, its
//!   cgroup);
//! - `init`, at each boot: [`Init`], as JSON: its pid, its start time in
//!   clock ticks since boot (pid and start time together name one
//!   process), and the init's mountinfo as it started (fwrun's mounts,
//!   which the mount interception keeps).
//!
//! Few files, because each one costs an inode where /run is a disk file
//! system (measured: 0.2 ms a file on an ext4 without journal).

use std::fs;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use rustix::fs::{flock, FlockOperation};
use serde::{Deserialize, Serialize};

use crate::error::fail;
use crate::state::{check_name, INFO, LOCK, STATE_ROOT, TMP_PREFIX};

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

/// What a run tells the commands that act on it, published once.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts {
    /// The firmware's canonical path, as a person reads it.
    pub firmware: String,
    /// The network mode (none, host, veth, bridge), and the host side's
    /// interface and address when it has them.
    pub net: String,
    pub interface: Option<String>,
    pub address: Option<String>,
    /// The init's environment, KEY=VALUE, in order.
    pub env: Vec<String>,
    /// The capabilities the init kept: bit N for capability N.
    pub caps: u64,
    pub seccomp: bool,
    /// Whether the init runs in a user namespace of its own.
    pub userns: bool,
    /// The AppArmor profile the init runs under.
    pub profile: Option<String>,
    /// The run's cgroup in the unified hierarchy, when it has one.
    pub cgroup: Option<PathBuf>,
    /// The devices of the host file systems bound into the firmware.
    pub host_devs: Vec<(u32, u32)>,
    /// The host's ports carried to the firmware's (--publish).
    #[serde(default)]
    pub published: Vec<Port>,
}

/// A published port: the host's address and port, the firmware's port.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Port {
    pub host_address: String,
    pub host_port: u16,
    pub port: u16,
    /// tcp or udp.
    pub protocol: String,
}

/// The init of the current boot.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Init {
    pub pid: i32,
    /// Its start time, in clock ticks since boot.
    pub ticks: u64,
    /// Its mountinfo as it started.
    pub mounts: String,
}

pub fn publish_facts(dir: &Path, f: &Facts) -> Result<()> {
    let json = serde_json::to_vec(f).context("encoding the run's facts")?;
    publish(dir, FACTS, &json)
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
    let init = Init {
        pid,
        ticks,
        mounts: mountinfo.to_string(),
    };
    let json = serde_json::to_vec(&init).context("encoding the init's facts")?;
    publish(dir, INIT, &json)
}

/// `dir/file`, read back as `T`.
fn read_back<T: for<'de> Deserialize<'de>>(dir: &Path, file: &str) -> Option<T> {
    serde_json::from_slice(&fs::read(dir.join(file)).ok()?).ok()
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
    crate::sys::pidfd_open(pid).ok()
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
        let Init { pid, ticks, .. } = read_back(&self.dir, INIT).ok_or_else(not_yet)?;
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
        read_back(&self.dir, FACTS).ok_or_else(|| {
            anyhow!(
                "run '{}' has not published its facts yet: wait until it has (fwrun wait {})",
                self.name,
                self.name
            )
        })
    }

    /// The mounts the init of the current boot started with (empty when it
    /// has not started).
    pub fn mounts(&self) -> String {
        read_back::<Init>(&self.dir, INIT)
            .map(|i| i.mounts)
            .unwrap_or_default()
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
    fn facts_and_init_are_read_back_as_written() {
        let dir = std::env::temp_dir().join(format!("fwrun-facts-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        assert_eq!(read_back::<Facts>(&dir, FACTS), None);
        let f = Facts {
            firmware: "/x/fw 1.img".into(),
            net: "veth".into(),
            interface: Some("fw-t1".into()),
            env: vec!["A=1".into(), "B=two words\n".into()],
            caps: 1 << 21 | 1,
            seccomp: true,
            host_devs: vec![(0, 5)],
            ..Facts::default()
        };
        publish_facts(&dir, &f).unwrap();
        assert_eq!(read_back::<Facts>(&dir, FACTS), Some(f));
        publish_init(&dir, std::process::id() as i32, "1 2 0:3 / / rw - x y rw\n").unwrap();
        let init: Init = read_back(&dir, INIT).unwrap();
        assert_eq!(init.pid, std::process::id() as i32);
        assert!(init.ticks > 0 && init.mounts.starts_with("1 2 0:3"));
        // A torn file reads as none.
        fs::write(dir.join(FACTS), b"{\"firmware\": \"/x").unwrap();
        assert_eq!(read_back::<Facts>(&dir, FACTS), None);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn phases() {
        let dir = std::env::temp_dir().join(format!("fwrun-phase-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        assert_eq!(Phase::read(&dir), Phase::Booting);
        for p in [Phase::Ready, Phase::Stopping, Phase::Booting, Phase::Ready] {
            set_phase(&dir, p).unwrap();
            assert_eq!(Phase::read(&dir), p);
        }
        fs::remove_dir_all(&dir).unwrap();
    }
}
