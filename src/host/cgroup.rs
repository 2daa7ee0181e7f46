//! The run's own cgroup on a cgroup v2 host: `fwrun-NAME`, made before the
//! clone with the limits written, the init cloned straight into it
//! (CLONE_INTO_CGROUP), killed whole with `cgroup.kill` on a stop, read for
//! the report's accounting, and removed once empty (by the teardown, or by
//! the sweep after a SIGKILL of fwrun).
//!
//! Where it goes: by default next to fwrun's own cgroup (a sibling), not
//! under it. A cgroup that holds processes (fwrun's) cannot pass the memory,
//! pids, cpu or io controllers to a child, so a child of fwrun's own cgroup
//! could carry no limit; its parent holds no process of its own (or is the
//! root) and can. In a container it goes below fwrun's own cgroup instead,
//! inside the subtree delegated to the container (limits there need
//! `--cgroup-parent` a cgroup of the container's that holds no process).
//! `--cgroup-parent` names another place.
//!
//! On a v1 or hybrid host a limit asked for is refused before anything is
//! touched, and the run gets no cgroup to limit or count it. But every run,
//! whatever its init, gets a `fwrun-NAME` under fwrun's own cgroup in every
//! mounted hierarchy (`legacy_dirs`); the init moves itself into them before
//! it makes its cgroup namespace, which is thus rooted there (never
//! at a hierarchy's root, where its release_agent is), and they are removed
//! with all below them at the end: the cgroups a firmware's systemd makes
//! (init.scope, system.slice, …) go with the run rather than stay on the
//! host, and two runs side by side do not share them.

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};

use crate::error::fail;
use crate::sys::mountinfo;

pub const ROOT: &str = "/sys/fs/cgroup";
/// The pids limit when none is given: far above what a firmware runs, low
/// enough that a fork bomb stops.
pub const DEFAULT_PIDS: u64 = 4096;

/// The limits asked for on the command line (None: not given).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    pub memory: Option<u64>,
    /// memory.swap.max; 0 when --memory is given without it.
    pub memory_swap: Option<u64>,
    pub pids: Option<u64>,
    /// CPUs' worth of time per period (cpu.max).
    pub cpus: Option<f64>,
    pub io_weight: Option<u16>,
    /// Where to make the run's cgroup, relative to /sys/fs/cgroup.
    pub parent: Option<PathBuf>,
}

impl Limits {
    /// The first flag given that needs a cgroup of the run's own.
    pub fn first_given(&self) -> Option<&'static str> {
        [
            (self.memory.is_some(), "--memory"),
            (self.memory_swap.is_some(), "--memory-swap"),
            (self.pids.is_some(), "--pids"),
            (self.cpus.is_some(), "--cpus"),
            (self.io_weight.is_some(), "--io-weight"),
            (self.parent.is_some(), "--cgroup-parent"),
        ]
        .into_iter()
        .find(|(given, _)| *given)
        .map(|(_, flag)| flag)
    }

    /// The controllers these limits need, with the flag that needs each.
    fn controllers(&self) -> Vec<(&'static str, &'static str)> {
        let mut c = Vec::new();
        // The default pids limit is applied where the controller is there,
        // and skipped quietly where it is not.
        if self.pids.is_some() {
            c.push(("pids", "--pids"));
        }
        if self.memory.is_some() || self.memory_swap.is_some() {
            c.push(("memory", "--memory"));
        }
        if self.cpus.is_some() {
            c.push(("cpu", "--cpus"));
        }
        if self.io_weight.is_some() {
            c.push(("io", "--io-weight"));
        }
        c
    }
}

/// What kind of cgroup hierarchy the host has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// The unified hierarchy at /sys/fs/cgroup.
    Unified,
    /// v1 (or hybrid), with the reason said to a person.
    Legacy(String),
}

pub fn hierarchy() -> Hierarchy {
    let fs_type = nix::sys::statfs::statfs(ROOT).map(|s| s.filesystem_type());
    match fs_type {
        Ok(t) if t == nix::sys::statfs::CGROUP2_SUPER_MAGIC => Hierarchy::Unified,
        Ok(_) if Path::new(ROOT).join("unified/cgroup.controllers").exists() => Hierarchy::Legacy(
            "the hybrid layout (v1 controllers at /sys/fs/cgroup, a controller-less v2 at /sys/fs/cgroup/unified)".into(),
        ),
        Ok(_) => Hierarchy::Legacy("cgroup v1 at /sys/fs/cgroup".into()),
        Err(e) => Hierarchy::Legacy(format!(
            "no cgroup file system at /sys/fs/cgroup ({})",
            crate::sys::errno_text(e)
        )),
    }
}

/// Whether `dir` is in a cgroup v2 (unified) hierarchy.
pub fn is_unified(dir: &Path) -> bool {
    nix::sys::statfs::statfs(dir)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
}

/// Refuse limits on a host without the unified hierarchy.
pub fn check_host(limits: &Limits, h: &Hierarchy) -> Result<()> {
    match (h, limits.first_given()) {
        (Hierarchy::Legacy(why), Some(flag)) => Err(fail(format!(
            "{flag} needs the cgroup v2 unified hierarchy; this host has {why}: boot it with systemd.unified_cgroup_hierarchy=1, or leave {flag} out"
        ))),
        _ => Ok(()),
    }
}

/// fwrun's own cgroup (v2), relative to the root: "" for the root.
fn own_cgroup() -> Result<String> {
    let text = fs::read_to_string("/proc/self/cgroup").context("reading /proc/self/cgroup")?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| p.trim_matches('/').to_string())
        .ok_or_else(|| anyhow!("/proc/self/cgroup has no cgroup v2 line"))
}

/// The parent directory of the run's cgroup, relative to the root.
fn parent_of_run(limits: &Limits) -> Result<String> {
    if let Some(p) = &limits.parent {
        return Ok(p.to_string_lossy().trim_matches('/').to_string());
    }
    Ok(default_parent(
        &own_cgroup()?,
        crate::host::preflight::in_container(),
    ))
}

/// Next to fwrun's own cgroup `own`, on a host. In a container, below it:
/// the container's cgroup is all that is delegated to it. With a cgroup
/// namespace of its own that is the namespace's root, where a sibling and
/// a child are the same place; without one, a sibling would land outside
/// the container, in a cgroup that is not its to manage.
fn default_parent(own: &str, contained: bool) -> String {
    if contained {
        return own.to_string();
    }
    match own.rsplit_once('/') {
        Some((up, _)) => up.to_string(),
        None => String::new(),
    }
}

/// The path of the run's cgroup, named `label` (`fwrun-NAME`), for the
/// state directory.
pub fn path_for(label: &str, limits: &Limits) -> Result<PathBuf> {
    let parent = parent_of_run(limits)?;
    Ok(Path::new(ROOT).join(parent).join(label))
}

/// The run's cgroup, made.
pub struct Cgroup {
    pub path: PathBuf,
    dir: OwnedFd,
}

impl Cgroup {
    /// The descriptor clone3 places the init with.
    pub fn fd(&self) -> RawFd {
        self.dir.as_raw_fd()
    }
}

/// Make the run's cgroup at `path` and write its limits. The parent's
/// subtree must pass the controllers the limits need (they are enabled
/// there when missing); an error names the one that is not delegated.
pub fn create(path: &Path, limits: &Limits) -> Result<Cgroup> {
    let parent = path.parent().unwrap_or(Path::new(ROOT));
    if !parent.join("cgroup.controllers").exists() {
        return Err(fail(format!(
            "--cgroup-parent: {} is not a cgroup v2 directory",
            parent.display()
        )));
    }
    enable_controllers(parent, limits)?;
    match fs::create_dir(path) {
        Ok(()) => {}
        // A dead run's leftover, empty (the sweep failed to remove it).
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(fail(format!(
                "cannot create the run's cgroup {}: {}",
                path.display(),
                crate::error::io_reason(&e)
            )))
        }
    }
    write_limits(path, limits)?;
    let dir = nix::fcntl::open(
        path,
        nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| anyhow!("opening {}: {}", path.display(), crate::sys::errno_text(e)))?;
    Ok(Cgroup {
        path: path.to_path_buf(),
        dir,
    })
}

/// Pass the controllers the limits need (and, best effort, the others a
/// systemd firmware manages) from `parent` to its children.
fn enable_controllers(parent: &Path, limits: &Limits) -> Result<()> {
    let read = |f: &str| fs::read_to_string(parent.join(f)).unwrap_or_default();
    let available = read("cgroup.controllers");
    let needed = limits.controllers();
    for (c, flag) in &needed {
        if !available.split_whitespace().any(|a| a == *c) {
            return Err(fail(format!(
                "{flag} needs the {c} controller, which {} does not have: enable it in its parent's cgroup.subtree_control (on a systemd host, Delegate=yes on the unit that runs fwrun, or --cgroup-parent a delegated cgroup)",
                parent.display()
            )));
        }
    }
    let enabled = read("cgroup.subtree_control");
    for c in ["memory", "pids", "cpu", "io"] {
        let on = enabled.split_whitespace().any(|e| e == c);
        if on || !available.split_whitespace().any(|a| a == c) {
            continue;
        }
        let res = fs::write(parent.join("cgroup.subtree_control"), format!("+{c}"));
        if let (Err(e), Some((_, flag))) = (res, needed.iter().find(|(n, _)| *n == c)) {
            return Err(fail(format!(
                "{flag} needs the {c} controller, which {} cannot pass on ({}): the cgroup must hold no process of its own; use --cgroup-parent a cgroup that does not",
                parent.display(),
                crate::error::io_reason(&e)
            )));
        }
    }
    Ok(())
}

fn write_file(dir: &Path, file: &str, value: &str, flag: &str) -> Result<()> {
    fs::write(dir.join(file), value).map_err(|e| {
        fail(format!(
            "{flag}: writing '{value}' to {}: {}",
            dir.join(file).display(),
            crate::error::io_reason(&e)
        ))
    })
}

fn write_limits(path: &Path, limits: &Limits) -> Result<()> {
    match limits.pids {
        Some(n) => write_file(path, "pids.max", &n.to_string(), "--pids")?,
        None if path.join("pids.max").exists() => {
            write_file(path, "pids.max", &DEFAULT_PIDS.to_string(), "--pids")?
        }
        None => {}
    }
    if let Some(m) = limits.memory {
        write_file(path, "memory.max", &m.to_string(), "--memory")?;
        let swap = limits.memory_swap.unwrap_or(0);
        // Without swap accounting the file is missing: with no swap
        // allowed that is what the kernel does anyway.
        if limits.memory_swap.is_some() || path.join("memory.swap.max").exists() {
            write_file(path, "memory.swap.max", &swap.to_string(), "--memory-swap")?;
        }
    } else if let Some(s) = limits.memory_swap {
        write_file(path, "memory.swap.max", &s.to_string(), "--memory-swap")?;
    }
    if let Some(c) = limits.cpus {
        write_file(path, "cpu.max", &cpu_max(c), "--cpus")?;
    }
    if let Some(w) = limits.io_weight {
        write_file(path, "io.weight", &format!("default {w}"), "--io-weight")?;
    }
    Ok(())
}

/// cpu.max for `cpus` CPUs' worth of time: quota and period in µs.
pub fn cpu_max(cpus: f64) -> String {
    const PERIOD: u64 = 100_000;
    format!("{} {PERIOD}", (cpus * PERIOD as f64).round() as u64)
}

/// The pids limit in force (pids.max), if there is one.
pub fn pids_max(path: &Path) -> Option<u64> {
    fs::read_to_string(path.join("pids.max"))
        .ok()
        .and_then(|t| t.trim().parse().ok())
}

/// Kill every process in the cgroup (cgroup.kill, Linux 5.14+). Quiet: the
/// pid namespace's SIGKILL does the same on older kernels.
pub fn kill(path: &Path) {
    let _ = fs::write(path.join("cgroup.kill"), "1");
}

fn populated(path: &Path) -> bool {
    fs::read_to_string(path.join("cgroup.events"))
        .map(|t| t.lines().any(|l| l == "populated 1"))
        .unwrap_or(false)
}

/// Kill what is left, wait (a few seconds at most) until the cgroup is
/// empty, and remove it with every cgroup the firmware made below it.
pub fn remove(path: &Path) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    kill(path);
    let deadline = Instant::now() + Duration::from_secs(5);
    while populated(path) {
        if Instant::now() > deadline {
            return Err(anyhow!(
                "{} still holds processes after cgroup.kill",
                path.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // A v1 cgroup has no cgroup.events: it is busy until the firmware's
    // last processes, killed with its pid namespace, have gone.
    loop {
        match remove_tree(path) {
            Err(e) if busy(&e) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5))
            }
            r => return r,
        }
    }
}

fn busy(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.raw_os_error() == Some(libc::EBUSY))
}

fn remove_tree(path: &Path) -> Result<()> {
    if let Ok(entries) = fs::read_dir(path) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path())?;
            }
        }
    }
    match fs::remove_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing the cgroup {}", path.display())),
    }
}

/// On a v1 or hybrid host: `(run's cgroup, fwrun's own)` in each hierarchy
/// mounted here, the run's being `label` (`fwrun-NAME`) below fwrun's own.
pub fn legacy_dirs(label: &str) -> Vec<(PathBuf, PathBuf)> {
    let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    legacy_dirs_from(&own, &mounts, label)
}

fn legacy_dirs_from(own: &str, mountinfo: &str, label: &str) -> Vec<(PathBuf, PathBuf)> {
    let mounts: Vec<mountinfo::Entry> = mountinfo::entries(mountinfo)
        .filter(|m| m.root == "/" && (m.fstype == "cgroup" || m.fstype == "cgroup2"))
        .collect();
    let mut out = Vec::new();
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let want: Vec<&str> = ctrls.split(',').filter(|c| !c.is_empty()).collect();
        let found = mounts.iter().find(|m| match want.is_empty() {
            true => m.fstype == "cgroup2",
            false => m.fstype == "cgroup" && want.iter().all(|c| m.has_super_option(c)),
        });
        if let Some(m) = found {
            let base = Path::new(&*m.mount_point).join(path.trim_start_matches('/'));
            out.push((base.join(label), base));
        }
    }
    out
}

/// Make the run's cgroup in one v1 (or hybrid's v2) hierarchy; a cpuset
/// gets its parent's CPUs and memory nodes, without which nothing can join.
pub fn create_legacy(run: &Path, own: &Path) -> Result<()> {
    fs::create_dir(run).with_context(|| format!("making the cgroup {}", run.display()))?;
    let Ok(cpus) = fs::read_to_string(own.join("cpuset.cpus")) else {
        return Ok(());
    };
    write_file(run, "cpuset.cpus", cpus.trim(), "(a v1 cpuset)")?;
    if let Ok(mems) = fs::read_to_string(own.join("cpuset.mems")) {
        write_file(run, "cpuset.mems", mems.trim(), "(a v1 cpuset)")?;
    }
    Ok(())
}

/// Remove a v1 cgroup of the run's once its processes are gone: at once
/// when nothing is below it (the common case), else as [`remove`] does.
pub fn remove_legacy(path: &Path) -> Result<()> {
    match fs::remove_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) => remove(path),
    }
}

/// How the init gets into the run's cgroups on a v1 or hybrid host,
/// opened by fwrun before the clone.
#[derive(Default)]
pub struct Joins {
    /// The run's cgroup in the hybrid layout's controller-less v2
    /// hierarchy: the init is cloned into it (CLONE_INTO_CGROUP).
    pub unified: Option<OwnedFd>,
    /// The `tasks` file of the run's cgroup in each v1 hierarchy, opened
    /// for writing (the kernel checks the opener's credentials, fwrun's):
    /// the init, a single thread, writes itself in ("0") before it makes
    /// its cgroup namespace. A thread moving itself this way takes no
    /// global lock; a write to `cgroup.procs` would wait for an RCU grace
    /// period of the kernel (several milliseconds when it is idle).
    pub tasks: Vec<(PathBuf, OwnedFd)>,
}

/// `unified`: the run's cgroup in the v2 hierarchy, one of `dirs`.
pub fn joins(dirs: &[(PathBuf, PathBuf)], unified: Option<&Path>) -> Result<Joins> {
    let mut joins = Joins::default();
    for (run, _) in dirs {
        if Some(run.as_path()) == unified {
            let dir = fs::File::open(run)
                .with_context(|| format!("opening the cgroup {}", run.display()))?;
            joins.unified = Some(OwnedFd::from(dir));
            continue;
        }
        let tasks = fs::OpenOptions::new()
            .write(true)
            .open(run.join("tasks"))
            .with_context(|| format!("opening {}/tasks", run.display()))?;
        joins.tasks.push((run.clone(), OwnedFd::from(tasks)));
    }
    Ok(joins)
}

/// What the cgroup counted, for the report and -v.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub memory_peak: Option<u64>,
    pub cpu_user_usec: Option<u64>,
    pub cpu_system_usec: Option<u64>,
    pub oom_kills: Option<u64>,
    pub pids_peak: Option<u64>,
    /// How often a fork was refused at pids.max.
    pub pids_refused: Option<u64>,
}

/// `key value` lines' value for `key`.
fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

pub fn usage(path: &Path) -> Usage {
    let read = |f: &str| fs::read_to_string(path.join(f)).ok();
    let single = |f: &str| read(f).and_then(|t| t.trim().parse().ok());
    let cpu = read("cpu.stat").unwrap_or_default();
    Usage {
        memory_peak: single("memory.peak"),
        cpu_user_usec: keyed(&cpu, "user_usec"),
        cpu_system_usec: keyed(&cpu, "system_usec"),
        oom_kills: read("memory.events").and_then(|t| keyed(&t, "oom_kill")),
        pids_peak: single("pids.peak"),
        pids_refused: read("pids.events").and_then(|t| keyed(&t, "max")),
    }
}

/// "64M" for a byte count, as a person gave it (exact multiples only).
pub fn show_size(bytes: u64) -> String {
    for (unit, size) in [("G", 1u64 << 30), ("M", 1 << 20), ("K", 1 << 10)] {
        if bytes >= size && bytes % size == 0 {
            return format!("{}{unit}", bytes / size);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_keeps_the_run_in_its_own_subtree() {
        let scope = "machine.slice/libpod-0123.scope";
        assert_eq!(default_parent(scope, false), "machine.slice");
        assert_eq!(default_parent(scope, true), scope);
        // With a cgroup namespace of its own, fwrun sees its cgroup as the
        // root: the run goes right below it either way.
        assert_eq!(default_parent("", true), "");
        assert_eq!(default_parent("", false), "");
        assert_eq!(
            default_parent("system.slice/ci.service", false),
            "system.slice"
        );
    }

    #[test]
    fn cpu_max_is_quota_and_period() {
        assert_eq!(cpu_max(0.5), "50000 100000");
        assert_eq!(cpu_max(2.0), "200000 100000");
    }

    #[test]
    fn keyed_lines() {
        let t = "usage_usec 10\nuser_usec 7\nsystem_usec 3\n";
        assert_eq!(keyed(t, "user_usec"), Some(7));
        assert_eq!(keyed(t, "nothing"), None);
        assert_eq!(keyed("low 0\noom_kill 2\n", "oom_kill"), Some(2));
    }

    #[test]
    fn sizes_shown() {
        assert_eq!(show_size(64 << 20), "64M");
        assert_eq!(show_size(1 << 30), "1G");
        assert_eq!(show_size(1000), "1000");
    }

    #[test]
    fn legacy_dirs_follow_fwruns_own_cgroup_in_each_hierarchy() {
        let own = "9:name=systemd:/\n4:memory:/api/c2\n2:cpuacct:/\n1:cpu:/\n0::/\n";
        let info = "\
30 25 0:26 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
31 25 0:27 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
33 25 0:29 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
38 25 0:34 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
39 25 0:35 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
40 25 0:35 /sub /mnt/elsewhere rw,relatime - cgroup2 cgroup2 rw
";
        let got = legacy_dirs_from(own, info, "fwrun-t1");
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(
            got,
            vec![
                (
                    p("/sys/fs/cgroup/systemd/fwrun-t1"),
                    p("/sys/fs/cgroup/systemd")
                ),
                (
                    p("/sys/fs/cgroup/memory/api/c2/fwrun-t1"),
                    p("/sys/fs/cgroup/memory/api/c2")
                ),
                (
                    p("/sys/fs/cgroup/cpuacct/fwrun-t1"),
                    p("/sys/fs/cgroup/cpuacct")
                ),
                (p("/sys/fs/cgroup/cpu/fwrun-t1"), p("/sys/fs/cgroup/cpu")),
                (
                    p("/sys/fs/cgroup/unified/fwrun-t1"),
                    p("/sys/fs/cgroup/unified")
                ),
            ]
        );
    }

    #[test]
    fn legacy_host_refuses_limits_in_one_line() {
        let h = Hierarchy::Legacy("cgroup v1 at /sys/fs/cgroup".into());
        assert!(check_host(&Limits::default(), &h).is_ok());
        let l = Limits {
            memory: Some(64 << 20),
            ..Default::default()
        };
        let e = check_host(&l, &h).unwrap_err();
        assert_eq!(crate::error::exit_code(&e), 125);
        assert!(e.to_string().starts_with(
            "--memory needs the cgroup v2 unified hierarchy; this host has cgroup v1"
        ));
        assert!(check_host(&l, &Hierarchy::Unified).is_ok());
    }
}
