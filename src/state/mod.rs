//! Per-run state under /run/fwrun/<name>/: who runs (pid, start time), what
//! it acquired, and a lock held for as long as the launcher lives. A run
//! whose lock is free is dead, and a later run sweeps what it left.
//!
//! Mounts and loop devices need no sweeping: they live in the launcher's
//! private mount namespace and die with it. What outlives a SIGKILL is this
//! directory and the resources recorded in it.

pub mod live;
pub mod teardown;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context, Result};

use crate::error::fail;

pub const STATE_ROOT: &str = "/run/fwrun";
const LOCK: &str = "lock";
const INFO: &str = "info";
const RESOURCES: &str = "resources";
/// Where a run builds its state before it is published under its name.
const TMP_PREFIX: &str = ".new-";

/// A live run's state directory. Holding it holds the lock.
pub struct RunState {
    pub dir: PathBuf,
    _lock: File,
}

/// One thing a run acquired that can outlive it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// A loaded AppArmor profile, by name.
    Profile(String),
}

impl Resource {
    fn line(&self) -> String {
        match self {
            Resource::Profile(p) => format!("profile {p}"),
        }
    }

    fn parse(line: &str) -> Option<Resource> {
        match line.split_once(' ')? {
            ("profile", p) => Some(Resource::Profile(p.to_string())),
            _ => None,
        }
    }
}

/// What a sweep does with the leftovers of a dead run.
pub trait Sweeper {
    fn release(&mut self, r: &Resource) -> Result<()>;
}

fn try_lock(f: &File) -> bool {
    // SAFETY: flock on a descriptor we own.
    unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

fn state_root() -> Result<&'static Path> {
    let root = Path::new(STATE_ROOT);
    match fs::DirBuilder::new().mode(0o700).create(root) {
        Ok(()) => Ok(root),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(root),
        Err(e) => Err(fail(format!(
            "cannot create {STATE_ROOT}: {}: fwrun needs a writable /run (a tmpfs, as on any systemd host)",
            crate::error::io_reason(&e)
        ))),
    }
}

impl RunState {
    /// Create and lock the state of run `name`. Fails (with a message for a
    /// person) if a live run has that name; a dead one's leftovers are swept.
    pub fn create(name: &str, sweeper: &mut dyn Sweeper) -> Result<RunState> {
        let root = state_root()?;
        let tmp = root.join(format!("{TMP_PREFIX}{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&tmp)
            .map_err(|e| {
                fail(format!(
                    "cannot create {}: {}: fwrun needs a writable {STATE_ROOT}",
                    tmp.display(),
                    crate::error::io_reason(&e)
                ))
            })?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .mode(0o600)
            .open(tmp.join(LOCK))
            .with_context(|| format!("creating the lock in {}", tmp.display()))?;
        if !try_lock(&lock) {
            return Err(anyhow!("locking {}", tmp.display()));
        }
        let start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        fs::write(
            tmp.join(INFO),
            format!("pid={}\nstart={start}\nname={name}\n", std::process::id()),
        )
        .with_context(|| format!("writing {}", tmp.join(INFO).display()))?;
        let dir = root.join(name);
        // Publishing with rename is atomic: a sweeper sees either nothing or
        // a locked directory. A dead run with the same name is swept first.
        for _ in 0..2 {
            match fs::rename(&tmp, &dir) {
                Ok(()) => return Ok(RunState { dir, _lock: lock }),
                Err(e)
                    if matches!(e.raw_os_error(), Some(libc::EEXIST) | Some(libc::ENOTEMPTY)) =>
                {
                    if !sweep_one(&dir, sweeper)? {
                        let _ = fs::remove_dir_all(&tmp);
                        return Err(fail(format!(
                            "a run named '{name}' is already running: pick another --name, or stop that run"
                        )));
                    }
                }
                Err(e) => {
                    let _ = fs::remove_dir_all(&tmp);
                    return Err(e).with_context(|| format!("creating {}", dir.display()));
                }
            }
        }
        let _ = fs::remove_dir_all(&tmp);
        Err(anyhow!("could not claim {}", dir.display()))
    }
}

/// Note, in a run's state directory, a resource that must be released even
/// if fwrun is killed.
pub fn record(dir: &Path, r: &Resource) -> Result<()> {
    {
        let path = dir.join(RESOURCES);
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        writeln!(f, "{}", r.line()).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }
}

impl RunState {
    /// Remove the directory; the lock goes with the value.
    pub fn remove(self) -> Result<()> {
        fs::remove_dir_all(&self.dir).with_context(|| format!("removing {}", self.dir.display()))
    }
}

/// Sweep one state directory if its run is dead: release its resources and
/// remove it. Returns false (and touches nothing) if the run is alive.
fn sweep_one(dir: &Path, sweeper: &mut dyn Sweeper) -> Result<bool> {
    let lock = match File::open(dir.join(LOCK)) {
        Ok(f) => f,
        // Gone already (another sweeper), or never locked: nothing of a live
        // run can be here, since a run locks before it publishes.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let _ = fs::remove_dir_all(dir);
            return Ok(true);
        }
        Err(e) => return Err(e).with_context(|| format!("opening {}", dir.join(LOCK).display())),
    };
    if !try_lock(&lock) {
        return Ok(false);
    }
    let resources = fs::read_to_string(dir.join(RESOURCES)).unwrap_or_default();
    let mut failed = Vec::new();
    for r in resources.lines().filter_map(Resource::parse) {
        if let Err(e) = sweeper.release(&r) {
            failed.push(format!("{}: {e:#}", r.line()));
        }
    }
    if !failed.is_empty() {
        return Err(anyhow!("sweeping {}: {}", dir.display(), failed.join("; ")));
    }
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(e).with_context(|| format!("removing {}", dir.display())),
    }
}

/// Sweep every dead run. Returns the names swept. Never touches a live run
/// (its lock is held) nor anything in /run/fwrun not shaped like a run.
pub fn sweep(sweeper: &mut dyn Sweeper) -> Result<Vec<String>> {
    let root = Path::new(STATE_ROOT);
    let entries = match fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {STATE_ROOT}")),
    };
    let mut swept = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if let Some(rest) = name.strip_prefix(TMP_PREFIX) {
            // A run still being created: its creator's pid is in the name.
            let pid: Option<u32> = rest.split('-').next().and_then(|p| p.parse().ok());
            let alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
            if !alive && sweep_one(&path, sweeper)? {
                swept.push(name);
            }
            continue;
        }
        if check_name(&name).is_err() || !path.join(INFO).exists() && !path.join(LOCK).exists() {
            continue;
        }
        if sweep_one(&path, sweeper)? {
            swept.push(name);
        }
    }
    Ok(swept)
}

/// The longest run name: it must fit in a hostname and in interface names
/// derived from it.
pub const NAME_MAX: usize = 32;

/// Check a run name: letters, digits, '.', '_', '-', at most [`NAME_MAX`]
/// characters, starting with a letter or digit.
pub fn check_name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("the name is empty".into());
    }
    if s.len() > NAME_MAX {
        return Err(format!("'{s}' is longer than {NAME_MAX} characters"));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "'{}' holds '{}': use only letters, digits, '.', '_' and '-'",
            s.escape_default(),
            c.escape_default()
        ));
    }
    if s.starts_with(['.', '-']) {
        return Err(format!("'{s}' must start with a letter or digit"));
    }
    Ok(())
}

/// A short name nobody else is using: six hex digits from the kernel's
/// random pool.
pub fn generate_name() -> String {
    let mut b = [0u8; 3];
    // SAFETY: getrandom into our buffer.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != b.len() as isize {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
            ^ std::process::id();
        b = [(t >> 16) as u8, (t >> 8) as u8, t as u8];
    }
    format!("fw{:02x}{:02x}{:02x}", b[0], b[1], b[2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_lines_round_trip() {
        let r = Resource::Profile("fwrun-abc".into());
        assert_eq!(Resource::parse(&r.line()), Some(r));
        assert_eq!(Resource::parse("what ever"), None);
    }

    #[test]
    fn generated_names_are_valid_and_differ() {
        let a = generate_name();
        assert!(check_name(&a).is_ok(), "{a}");
        let all: std::collections::HashSet<_> = (0..50).map(|_| generate_name()).collect();
        assert!(all.len() > 45);
    }
}
