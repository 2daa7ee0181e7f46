//! Per-run state under /run/fwrun/<name>/: who runs (pid, start time), what
//! it acquired, and a lock held for as long as the launcher lives. A run
//! whose lock is free is dead, and a later run sweeps what it left.
//!
//! Mounts and loop devices need no sweeping: they live in the launcher's
//! private mount namespace and die with it (a loop device that runs of one
//! image share frees itself with the last of their mounts). What outlives a
//! SIGKILL is this directory and the resources recorded in it, and the
//! entry that names a shared loop device (`.lower-KEY`, see shared_images.rs),
//! which a sweep removes once no run holds it.
//!
//! The sweep never touches a live run. A run locks its directory before it
//! publishes it under its name, and holds the lock until the directory is
//! gone. A sweeper that takes a lock checks that the locked file is still
//! the one at the path (the directory may have been swept and a new run
//! published under the same name in between); then, before it undoes
//! anything, it renames the directory aside (`.dead-PID-SEQ-NAME`, PID its
//! own), so that the name is free at once for a new run. A run that ends
//! renames its own directory aside the same way before removing it.
//!
//! Beside this file: `identity.rs` (the names a run goes by on the host),
//! `root.rs` (/run/fwrun itself), `live.rs` (what a live run publishes for
//! the commands that act on it), `shared_images.rs` (the entries of images
//! runs share), `teardown.rs` (the undo stack).

pub mod identity;
pub mod live;
pub mod root;
pub mod shared_images;
pub mod teardown;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context, Result};
use rustix::fs::{flock, FlockOperation};
use rustix::rand::{getrandom, GetRandomFlags};

use crate::error::fail;

pub const STATE_ROOT: &str = "/run/fwrun";
const LOCK: &str = "lock";
const INFO: &str = "info";
const RESOURCES: &str = "resources";
/// Where a run builds its state before it is published under its name.
const TMP_PREFIX: &str = ".new-";
/// Where a dead run's state goes while its resources are released, and a
/// finished run's while it is removed.
const DEAD_PREFIX: &str = ".dead-";
/// How long a new run waits for a sweeper that holds the lock of a dead
/// run with the same name to move it aside.
const CLAIM_WAIT: Duration = Duration::from_secs(2);

/// A live run's state directory. Holding it holds the lock.
pub struct RunState {
    pub dir: PathBuf,
    root: PathBuf,
    _lock: File,
}

/// One thing a run acquired that can outlive it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// A loaded AppArmor profile, by name.
    Profile(String),
    /// The host side of a veth pair, by name.
    Link(String),
    /// The run's cgroup, by its path under /sys/fs/cgroup.
    Cgroup(PathBuf),
}

impl Resource {
    fn line(&self) -> String {
        match self {
            Resource::Profile(p) => format!("profile {p}"),
            Resource::Link(l) => format!("link {l}"),
            Resource::Cgroup(p) => format!("cgroup {}", p.display()),
        }
    }

    fn parse(line: &str) -> Option<Resource> {
        match line.split_once(' ')? {
            ("profile", p) => Some(Resource::Profile(p.to_string())),
            ("link", l) => Some(Resource::Link(l.to_string())),
            // Only a run's own cgroup: a corrupt line must not name another.
            ("cgroup", p)
                if p.starts_with("/sys/fs/cgroup/")
                    && !p.split('/').any(|c| c == "..")
                    && p.rsplit('/')
                        .next()
                        .is_some_and(|n| n.starts_with(identity::PREFIX)) =>
            {
                Some(Resource::Cgroup(PathBuf::from(p)))
            }
            _ => None,
        }
    }
}

/// What a sweep does with the leftovers of a dead run.
pub trait Sweeper {
    fn release(&mut self, r: &Resource) -> Result<()>;
}

fn try_lock(f: &File) -> bool {
    flock(f, FlockOperation::NonBlockingLockExclusive).is_ok()
}

/// Whether the open file `f` is still the file at `path` (it may have been
/// removed, or replaced by another with the same name).
fn same_file(f: &File, path: &Path) -> bool {
    match (f.metadata(), fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The pid at the head of a private entry's name (`.new-PID-NAME`,
/// `.dead-PID-SEQ-NAME`): the process that made it.
fn maker_pid(rest: &str) -> Option<u32> {
    rest.split('-').next().and_then(|p| p.parse().ok())
}

/// A fresh name for a directory set aside by this process.
fn dead_name(name: &str) -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    format!("{DEAD_PREFIX}{}-{seq}-{name}", std::process::id())
}

pub(crate) fn state_root() -> Result<&'static Path> {
    let root = Path::new(STATE_ROOT);
    match fs::DirBuilder::new().mode(0o700).create(root) {
        Ok(()) => Ok(root),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(root),
        Err(e) => Err(fail(format!(
            "cannot create {STATE_ROOT}: {}: fwrun needs a writable /run: mount a tmpfs there (docker/podman run --tmpfs /run; in Kubernetes an emptyDir with medium: Memory at /run)",
            crate::error::io_reason(&e)
        ))),
    }
}

/// Make `root/.new-PID-NAME` with its lock taken and its info written.
fn prepare_new(root: &Path, name: &str) -> Result<(PathBuf, File)> {
    let tmp = root.join(format!("{TMP_PREFIX}{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&tmp)
        .map_err(|e| {
            fail(format!(
                "cannot create {}: {}: fwrun needs a writable {}",
                tmp.display(),
                crate::error::io_reason(&e),
                root.display()
            ))
        })?;
    match lock_and_describe(&tmp, name) {
        Ok(lock) => Ok((tmp, lock)),
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            Err(e)
        }
    }
}

/// The lock (taken) and the info of the run being created in `dir`.
fn lock_and_describe(dir: &Path, name: &str) -> Result<File> {
    let lock = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .mode(0o600)
        .open(dir.join(LOCK))
        .with_context(|| format!("creating the lock in {}", dir.display()))?;
    if !try_lock(&lock) {
        return Err(anyhow!("locking {}", dir.display()));
    }
    let start = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    fs::write(
        dir.join(INFO),
        format!("pid={}\nstart={start}\nname={name}\n", std::process::id()),
    )
    .with_context(|| format!("writing {}", dir.join(INFO).display()))?;
    Ok(lock)
}

impl RunState {
    /// Create and lock the state of run `name`. Fails (with a message for a
    /// person) if a live run has that name; a dead one's leftovers are swept.
    pub fn create(name: &str, sweeper: &mut dyn Sweeper) -> Result<RunState> {
        Self::create_in(state_root()?, name, sweeper)
    }

    fn create_in(root: &Path, name: &str, sweeper: &mut dyn Sweeper) -> Result<RunState> {
        let (tmp, lock) = prepare_new(root, name)?;
        let claimed = publish(root, &tmp, name, sweeper);
        if claimed.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        Ok(RunState {
            dir: claimed?,
            root: root.to_path_buf(),
            _lock: lock,
        })
    }

    /// Set the directory aside, then remove it; the lock goes with the
    /// value, once the directory is gone.
    pub fn remove(self) -> Result<()> {
        let name = self.dir.file_name().unwrap_or_default().to_string_lossy();
        let aside = self.root.join(dead_name(&name));
        fs::rename(&self.dir, &aside)
            .with_context(|| format!("setting {} aside", self.dir.display()))?;
        remove_state_dir(&aside)
    }
}

/// Rename the locked `tmp` to `root/name`, sweeping a dead run of that name
/// first. Returns the published path.
fn publish(root: &Path, tmp: &Path, name: &str, sweeper: &mut dyn Sweeper) -> Result<PathBuf> {
    let dir = root.join(name);
    // Publishing with rename is atomic: a sweeper sees either nothing or
    // a locked directory.
    let deadline = Instant::now() + CLAIM_WAIT;
    loop {
        match fs::rename(tmp, &dir) {
            Ok(()) => return Ok(dir),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EEXIST) | Some(libc::ENOTEMPTY)) => {}
            Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
        }
        let claim = sweep_one(root, &dir, sweeper)?;
        let late = Instant::now() > deadline;
        match claim {
            Claim::NoLock => {
                return Err(fail(format!(
                    "{} is not the state of a run (it has no lock): remove it if no fwrun uses the name '{name}'",
                    dir.display()
                )))
            }
            Claim::Live if late || owner_alive(&dir) => {
                return Err(fail(format!(
                    "a run named '{name}' is already running: pick another --name, or stop that run"
                )))
            }
            // Its launcher is dead: the lock's holder is a sweeper, about to
            // set the directory aside.
            Claim::Live => std::thread::sleep(Duration::from_millis(5)),
            _ if late => return Err(anyhow!("could not claim {}", dir.display())),
            // Swept, or changed meanwhile: try again.
            _ => {}
        }
    }
}

/// Whether the launcher named in a state directory's info still lives.
fn owner_alive(dir: &Path) -> bool {
    fs::read_to_string(dir.join(INFO))
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("pid="))
                .and_then(|p| p.parse().ok())
        })
        .is_some_and(pid_alive)
}

/// Note, in a run's state directory, a resource that must be released even
/// if fwrun is killed.
pub fn record(dir: &Path, r: &Resource) -> Result<()> {
    record_all(dir, std::slice::from_ref(r))
}

/// [`record`] for several, in one write.
pub fn record_all(dir: &Path, rs: &[Resource]) -> Result<()> {
    let path = dir.join(RESOURCES);
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let text: String = rs.iter().map(|r| r.line() + "\n").collect();
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// What a sweeper found at a run's name.
#[derive(Debug, PartialEq, Eq)]
enum Claim {
    /// The run was dead: its resources are released and its directory gone.
    Swept,
    /// Its lock is held: the run lives (or another sweeper has it).
    Live,
    /// The directory changed under the sweeper (swept by another, perhaps
    /// replaced by a new run): nothing was touched.
    Changed,
    /// A directory without a lock, which no run of fwrun's leaves under a
    /// run's name: left alone.
    NoLock,
}

/// Sweep the state directory at `dir` (a run's name) if its run is dead.
fn sweep_one(root: &Path, dir: &Path, sweeper: &mut dyn Sweeper) -> Result<Claim> {
    let lock = match File::open(dir.join(LOCK)) {
        Ok(f) => f,
        // No lock: not a run's directory, or not a directory at all.
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                || e.raw_os_error() == Some(libc::ENOTDIR) =>
        {
            return Ok(if dir.is_dir() {
                Claim::NoLock
            } else {
                Claim::Changed
            });
        }
        Err(e) => return Err(e).with_context(|| format!("opening {}", dir.join(LOCK).display())),
    };
    sweep_locked(root, dir, lock, sweeper)
}

/// The rest of [`sweep_one`], given the lock file it opened (which may no
/// longer be the one at `dir` by now).
fn sweep_locked(root: &Path, dir: &Path, lock: File, sweeper: &mut dyn Sweeper) -> Result<Claim> {
    if !try_lock(&lock) {
        return Ok(Claim::Live);
    }
    // The lock was free, but perhaps only because its directory was swept
    // and the name published again since it was opened: then the file at
    // the path is another, and the run behind it is not ours to judge.
    if !same_file(&lock, &dir.join(LOCK)) {
        return Ok(Claim::Changed);
    }
    // Dead, and ours: while the lock is held nobody else moves it.
    let name = dir.file_name().unwrap_or_default().to_string_lossy();
    let aside = root.join(dead_name(&name));
    fs::rename(dir, &aside).with_context(|| format!("setting {} aside", dir.display()))?;
    undo(&aside, sweeper)?;
    drop(lock);
    Ok(Claim::Swept)
}

/// Release what a dead run's directory (set aside) lists, then remove it.
/// If a release fails the directory stays, for a later sweep to retry.
fn undo(dir: &Path, sweeper: &mut dyn Sweeper) -> Result<()> {
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
    remove_state_dir(dir)
}

/// Remove a state directory, its lock last, so that the lock can tell a
/// sweeper that the directory is being removed.
fn remove_state_dir(dir: &Path) -> Result<()> {
    let gone = |r: std::io::Result<()>| match r {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", dir.display()))
        }
        _ => Ok(()),
    };
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => return gone(Err(e)),
    };
    for entry in entries.flatten() {
        if entry.file_name() == LOCK {
            continue;
        }
        let path = entry.path();
        gone(match entry.file_type() {
            Ok(t) if t.is_dir() => fs::remove_dir_all(&path),
            _ => fs::remove_file(&path),
        })?;
    }
    gone(fs::remove_file(dir.join(LOCK)))?;
    gone(fs::remove_dir(dir))
}

/// Sweep a directory a process made for itself (`.new-` or `.dead-`) if
/// that process is gone; `pid` is its maker.
fn sweep_private(dir: &Path, pid: Option<u32>, sweeper: &mut dyn Sweeper) -> Result<bool> {
    let alive = pid.is_some_and(pid_alive);
    let lock = match File::open(dir.join(LOCK)) {
        Ok(f) => Some(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("opening {}", dir.join(LOCK).display())),
    };
    let is_new = dir
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with(TMP_PREFIX));
    match &lock {
        // A run being created: its lock may not be taken yet.
        _ if is_new && alive => return Ok(false),
        // Being swept or removed right now.
        Some(l) if !try_lock(l) => return Ok(false),
        // Its lock is gone: removed by its maker, or left half-removed.
        None if alive => return Ok(false),
        _ => {}
    }
    undo(dir, sweeper)?;
    Ok(true)
}

/// Sweep every dead run, and the entries of shared lower layers no run
/// holds. Returns the names swept (an entry's starts with
/// [`shared_images::PREFIX`]). Never touches a live run (its lock is held) nor
/// anything in /run/fwrun not shaped like a run or an entry.
pub fn sweep(sweeper: &mut dyn Sweeper) -> Result<Vec<String>> {
    sweep_in(Path::new(STATE_ROOT), sweeper)
}

fn sweep_in(root: &Path, sweeper: &mut dyn Sweeper) -> Result<Vec<String>> {
    let entries = match fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", root.display())),
    };
    // One reading of the directory serves the runs and the lower layers'
    // entries: while other runs start and end beside this one, each
    // reading waits for their changes to the directory.
    let names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let mut swept = Vec::new();
    for name in &names {
        let path = root.join(name);
        let private = [TMP_PREFIX, DEAD_PREFIX]
            .iter()
            .find_map(|p| name.strip_prefix(p));
        let done = if let Some(rest) = private {
            path.is_dir() && sweep_private(&path, maker_pid(rest), sweeper)?
        } else if check_name(name).is_err() {
            false
        } else {
            // A directory without a lock is not a run's (sweep_one leaves
            // it), whether or not it has an info file.
            sweep_one(root, &path, sweeper)? == Claim::Swept
        };
        if done {
            swept.push(name.clone());
        }
    }
    swept.extend(shared_images::sweep_named(root, &names));
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

/// `n` bytes from the kernel's random pool (from the clock and the pid if
/// it fails).
fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    if getrandom(&mut b, GetRandomFlags::empty()) != Ok(N) {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
            ^ std::process::id().rotate_left(16);
        for (i, x) in b.iter_mut().enumerate() {
            *x = (t >> (8 * (i % 4))) as u8;
        }
    }
    b
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A short name nobody else is using: six hex digits from the kernel's
/// random pool.
pub fn generate_name() -> String {
    format!("fw{}", hex(&random_bytes::<3>()))
}

/// What tells this invocation from any other with the same run name: eight
/// hex digits from the kernel's random pool. The AppArmor profile is named
/// after it, so a sweep of a dead run can never unload a live run's
/// profile, whatever their names.
pub fn instance_id() -> String {
    hex(&random_bytes::<4>())
}

/// A state root of a unit test's own, removed on drop: for the tests of
/// the run states and of the lower layers' entries; and unlinked files
/// for other unit tests.
#[cfg(test)]
pub(crate) mod scratch {
    use std::fs;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A new, empty file open for reading and writing, already unlinked.
    pub fn unlinked_file(tag: &str) -> fs::File {
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "fwrun-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        fs::remove_file(&path).unwrap();
        f
    }

    pub struct Root(pub PathBuf);

    impl Root {
        pub fn new(tag: &str) -> Root {
            static N: AtomicU32 = AtomicU32::new(0);
            let p = std::env::temp_dir().join(format!(
                "fwrun-state-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            Root(p)
        }

        pub fn entries(&self) -> Vec<String> {
            let mut v: Vec<String> = fs::read_dir(&self.0)
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        }
    }

    impl Drop for Root {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_lines_round_trip() {
        for r in [
            Resource::Profile("fwrun-abc".into()),
            Resource::Link("fw-abc".into()),
        ] {
            assert_eq!(Resource::parse(&r.line()), Some(r));
        }
        assert_eq!(Resource::parse("what ever"), None);
        let c = Resource::Cgroup("/sys/fs/cgroup/ci/fwrun-abc".into());
        assert_eq!(Resource::parse(&c.line()), Some(c));
        assert_eq!(Resource::parse("cgroup /sys/fs/cgroup/user.slice"), None);
        assert_eq!(Resource::parse("cgroup /sys/fs/cgroup/../fwrun-x"), None);
    }

    /// A sweeper that only notes what it was asked to release (and can be
    /// told to fail).
    #[derive(Default)]
    struct Recorder {
        released: Vec<Resource>,
        fail: bool,
    }

    impl Sweeper for Recorder {
        fn release(&mut self, r: &Resource) -> Result<()> {
            if self.fail {
                anyhow::bail!("cannot release {}", r.line());
            }
            self.released.push(r.clone());
            Ok(())
        }
    }

    use crate::state::scratch::Root;

    fn profile(p: &str) -> Resource {
        Resource::Profile(p.into())
    }

    /// A run of this name that died (its lock released, its directory
    /// left) holding `profile`.
    fn dead_run(root: &Root, name: &str, p: &str) -> PathBuf {
        let st = RunState::create_in(&root.0, name, &mut Recorder::default()).unwrap();
        record(&st.dir, &profile(p)).unwrap();
        let dir = st.dir.clone();
        drop(st);
        dir
    }

    /// A pid no process has: pid_max itself is one past the largest pid.
    /// (Not a reaped child: forking here, while other tests run, would
    /// lend their lock files to the child until it execs.)
    fn dead_pid() -> u32 {
        let max = fs::read_to_string("/proc/sys/kernel/pid_max").unwrap();
        let pid = max.trim().parse().unwrap();
        assert!(!pid_alive(pid));
        pid
    }

    #[test]
    fn a_sweep_releases_the_dead_and_leaves_the_live() {
        let root = Root::new("live-dead");
        let live = RunState::create_in(&root.0, "live", &mut Recorder::default()).unwrap();
        record(&live.dir, &profile("fwrun-live-00000001")).unwrap();
        dead_run(&root, "dead", "fwrun-dead-00000002");
        let mut s = Recorder::default();
        assert_eq!(sweep_in(&root.0, &mut s).unwrap(), ["dead"]);
        assert_eq!(s.released, [profile("fwrun-dead-00000002")]);
        assert_eq!(root.entries(), ["live"]);
        assert_eq!(
            fs::read_to_string(live.dir.join(RESOURCES)).unwrap(),
            "profile fwrun-live-00000001\n"
        );
        // Again: nothing more to do, and the live run is still untouched.
        let mut s = Recorder::default();
        assert!(sweep_in(&root.0, &mut s).unwrap().is_empty());
        assert!(s.released.is_empty());
        live.remove().unwrap();
        assert!(root.entries().is_empty(), "{:?}", root.entries());
    }

    /// What is not a run's, though named like one, is left as it is and
    /// makes no error: a file, a directory without a lock (with or without
    /// an info file).
    #[test]
    fn a_sweep_leaves_what_is_not_a_run() {
        let root = Root::new("strays");
        fs::write(root.0.join("afile"), "x").unwrap();
        fs::create_dir(root.0.join("bare")).unwrap();
        fs::create_dir(root.0.join("infoonly")).unwrap();
        fs::write(root.0.join("infoonly").join(INFO), "").unwrap();
        dead_run(&root, "dead", "fwrun-dead-00000003");
        let mut s = Recorder::default();
        assert_eq!(sweep_in(&root.0, &mut s).unwrap(), ["dead"]);
        assert_eq!(root.entries(), ["afile", "bare", "infoonly"]);
    }

    #[test]
    fn a_new_run_sweeps_a_dead_one_of_its_name_and_refuses_a_live_one() {
        let root = Root::new("same-name");
        dead_run(&root, "x", "fwrun-x-0000000a");
        let mut s = Recorder::default();
        let live = RunState::create_in(&root.0, "x", &mut s).unwrap();
        assert_eq!(s.released, [profile("fwrun-x-0000000a")]);
        record(&live.dir, &profile("fwrun-x-0000000b")).unwrap();
        let mut s = Recorder::default();
        let e = RunState::create_in(&root.0, "x", &mut s).err().unwrap();
        assert!(e.to_string().contains("'x' is already running"), "{e}");
        assert_eq!(crate::error::exit_code(&e), 125);
        assert!(sweep_in(&root.0, &mut s).unwrap().is_empty());
        assert!(s.released.is_empty(), "{:?}", s.released);
        assert_eq!(root.entries(), ["x"], "the refused run left nothing");
        assert!(live.dir.join(LOCK).exists());
        live.remove().unwrap();
        assert!(root.entries().is_empty());
    }

    /// A sweeper opened a dead run's lock; before it took the lock, that run
    /// was swept and a new run published the same name. The stale lock is
    /// free, but it is not the new run's: nothing may be touched.
    #[test]
    fn a_stale_lock_is_not_the_new_runs() {
        let root = Root::new("stale");
        let old = dead_run(&root, "x", "fwrun-x-00000001");
        let stale = File::open(old.join(LOCK)).unwrap();
        let mut other = Recorder::default();
        assert_eq!(sweep_in(&root.0, &mut other).unwrap(), ["x"]);
        let live = RunState::create_in(&root.0, "x", &mut Recorder::default()).unwrap();
        record(&live.dir, &profile("fwrun-x-00000002")).unwrap();
        let mut s = Recorder::default();
        let claim = sweep_locked(&root.0, &root.0.join("x"), stale, &mut s).unwrap();
        assert_eq!(claim, Claim::Changed);
        assert!(s.released.is_empty(), "{:?}", s.released);
        assert_eq!(root.entries(), ["x"]);
        assert_eq!(
            fs::read_to_string(live.dir.join(RESOURCES)).unwrap(),
            "profile fwrun-x-00000002\n"
        );
        live.remove().unwrap();
    }

    /// A dead run is set aside before its resources are released, so the
    /// name is free even while a release fails; the set-aside directory
    /// stays for a later sweep.
    #[test]
    fn a_failed_release_frees_the_name_and_is_retried() {
        let root = Root::new("retry");
        dead_run(&root, "x", "fwrun-x-00000001");
        let mut broken = Recorder {
            fail: true,
            ..Recorder::default()
        };
        assert!(sweep_in(&root.0, &mut broken).is_err());
        let left = root.entries();
        assert_eq!(left.len(), 1, "{left:?}");
        assert!(
            left[0].starts_with(DEAD_PREFIX) && left[0].ends_with("-x"),
            "{left:?}"
        );
        let live = RunState::create_in(&root.0, "x", &mut Recorder::default()).unwrap();
        let mut s = Recorder::default();
        assert_eq!(sweep_in(&root.0, &mut s).unwrap(), [left[0].clone()]);
        assert_eq!(s.released, [profile("fwrun-x-00000001")]);
        assert_eq!(root.entries(), ["x"]);
        live.remove().unwrap();
    }

    /// Directories set aside: one whose sweeper died before releasing (swept
    /// now), one whose sweeper holds its lock (left), one being removed by
    /// a live process (no lock any more: left).
    #[test]
    fn set_aside_directories_are_swept_only_when_their_maker_is_gone() {
        let root = Root::new("aside");
        let orphan = root.0.join(format!("{DEAD_PREFIX}{}-0-a", dead_pid()));
        fs::rename(dead_run(&root, "a", "fwrun-a-00000001"), &orphan).unwrap();
        let busy = RunState::create_in(&root.0, "b", &mut Recorder::default()).unwrap();
        record(&busy.dir, &profile("fwrun-b-00000002")).unwrap();
        let busy_aside = root.0.join(dead_name("b"));
        fs::rename(&busy.dir, &busy_aside).unwrap();
        let removing = root.0.join(dead_name("c"));
        fs::create_dir(&removing).unwrap();
        record(&removing, &profile("fwrun-c-00000003")).unwrap();
        let mut s = Recorder::default();
        let swept = sweep_in(&root.0, &mut s).unwrap();
        assert_eq!(swept, [orphan.file_name().unwrap().to_string_lossy()]);
        assert_eq!(s.released, [profile("fwrun-a-00000001")]);
        assert!(busy_aside.join(LOCK).exists() && removing.exists());
        drop(busy);
    }

    #[test]
    fn a_finished_run_leaves_nothing() {
        let root = Root::new("finish");
        let st = RunState::create_in(&root.0, "x", &mut Recorder::default()).unwrap();
        fs::create_dir_all(st.dir.join("mnt/lower")).unwrap();
        record(&st.dir, &profile("fwrun-x-00000001")).unwrap();
        st.remove().unwrap();
        assert!(root.entries().is_empty(), "{:?}", root.entries());
    }

    #[test]
    fn generated_names_are_valid_and_differ() {
        let a = generate_name();
        assert!(check_name(&a).is_ok(), "{a}");
        assert_eq!(a.len(), 8, "{a}");
        let all: std::collections::HashSet<_> = (0..50).map(|_| generate_name()).collect();
        assert!(all.len() > 45);
    }

    #[test]
    fn instance_ids_are_eight_hex_digits_and_differ() {
        let all: std::collections::HashSet<_> = (0..200).map(|_| instance_id()).collect();
        assert_eq!(all.len(), 200);
        for id in &all {
            assert!(
                id.len() == 8 && id.bytes().all(|b| b.is_ascii_hexdigit()),
                "{id}"
            );
        }
    }
}
