//! Shared by the root tests: the test firmware, the fwrun binary, and the
//! leak check that runs after every test.
#![allow(dead_code)]

pub mod bg;
pub mod gate;
pub mod plan;
pub mod report;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The test firmware (built once, by tests/firmware/build.sh).
pub fn firmware() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = repo().join("target/fwtest");
        let st = Command::new("bash")
            .arg(repo().join("tests/firmware/build.sh"))
            .arg(&out)
            .status()
            .expect("running tests/firmware/build.sh");
        assert!(st.success(), "building the test firmware failed");
        out
    })
}

pub fn image(name: &str) -> PathBuf {
    firmware().join(name)
}

pub fn fwrun() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fwrun"));
    c.stdin(std::process::Stdio::null());
    c
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Run fwrun to its end, within `bg::DEADLINE` (past it, the run is killed
/// and the test fails rather than hangs).
pub fn run(args: &[&str]) -> Run {
    let mut c = fwrun();
    c.args(args);
    let out = bg::finish(c);
    Run {
        code: out.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: out.stderr,
    }
}

/// The names in a host directory (/proc, /sys), pids aside, space-separated.
fn names_in(dir: &str) -> String {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    names.sort();
    names.join(" ")
}

/// The `--env` arguments tests/firmware/files/check.sh needs: what the
/// host's /proc and /sys hold, so that it knows which masked paths must be
/// there (masked) and which cannot be.
pub fn check_env() -> Vec<String> {
    let mut sys = names_in("/sys");
    // The masked paths below the top of /sys, where the host has them.
    for deep in ["devices/virtual/powercap"] {
        if Path::new("/sys").join(deep).exists() {
            sys = format!("{sys} {deep}");
        }
    }
    vec![
        "--env".into(),
        format!("HOST_PROC={}", names_in("/proc")),
        "--env".into(),
        format!("HOST_SYS={sys}"),
    ]
}

/// How many checks tests/firmware/files/check.sh makes (see plan.rs).
pub fn check_count() -> usize {
    let files = repo().join("tests/firmware/files");
    plan::planned(&files.join("check.sh"), &files)
}

/// An image's checksum; for a directory, its listing with each file's
/// checksum (so that any change to the tree shows).
pub fn sha256(path: &Path) -> String {
    let out = if path.is_dir() {
        Command::new("sh")
            .arg("-c")
            .arg("cd \"$1\" && find . -type f -exec sha256sum {} + | sort && find . | sort")
            .arg("sh")
            .arg(path)
            .output()
            .unwrap()
    } else {
        Command::new("sha256sum").arg(path).output().unwrap()
    };
    assert!(out.status.success(), "checksumming {}", path.display());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A unique scratch directory under target/, removed on drop.
pub struct Scratch(pub PathBuf);
impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let p = repo()
            .join("target/scratch")
            .join(format!("{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// What a run may leave behind, as seen from the host.
#[derive(Debug, PartialEq, Eq, Clone)]
pub struct Footprint {
    pub mounts: BTreeSet<String>,
    pub loops: BTreeSet<String>,
    pub states: BTreeSet<String>,
    pub pid_namespaces: BTreeSet<String>,
    pub fwrun_processes: BTreeSet<String>,
    pub profiles: BTreeSet<String>,
    pub cgroups: BTreeSet<String>,
    /// The host's network interfaces fwrun names (`fw-*`).
    pub interfaces: BTreeSet<String>,
}

fn mount_lines() -> BTreeSet<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        // Drop the mount id and parent id: keep what identifies the mount.
        .map(|l| l.split_whitespace().skip(2).collect::<Vec<_>>().join(" "))
        .collect()
}

fn attached_loops() -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    for e in fs::read_dir("/sys/block").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Ok(back) = fs::read_to_string(e.path().join("loop/backing_file")) {
            set.insert(format!("{name} {}", back.trim()));
        }
    }
    set
}

fn states() -> BTreeSet<String> {
    fs::read_dir("/run/fwrun")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn processes() -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut ns, mut fw) = (BTreeSet::new(), BTreeSet::new());
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        // A zombie holds nothing but its pid (and one whose parent was
        // killed waits on the host's init to reap it, which on some hosts
        // never comes): only live processes count.
        let stat = fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
        if zombie {
            continue;
        }
        if let Ok(link) = fs::read_link(e.path().join("ns/pid")) {
            ns.insert(link.to_string_lossy().into_owned());
        }
        if fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == "fwrun") {
            fw.insert(name);
        }
    }
    (ns, fw)
}

/// The pid namespaces that hold a live process.
pub fn live_pid_namespaces() -> BTreeSet<String> {
    processes().0
}

fn profiles() -> BTreeSet<String> {
    fs::read_to_string("/sys/kernel/security/apparmor/profiles")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("fwrun"))
        .map(str::to_string)
        .collect()
}

/// Every `fwrun-*` cgroup under /sys/fs/cgroup (v2, or any v1 hierarchy),
/// a few levels deep.
fn cgroups() -> BTreeSet<String> {
    fn walk(dir: &Path, depth: u32, out: &mut BTreeSet<String>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if e.file_name().to_string_lossy().starts_with("fwrun-") {
                out.insert(e.path().display().to_string());
            } else if depth > 0 {
                walk(&e.path(), depth - 1, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(Path::new("/sys/fs/cgroup"), 3, &mut out);
    out
}

/// The interfaces of the host (the tests' network namespace) whose name
/// fwrun gives to the host end of a veth (`fw-*`), and those the tests make
/// themselves (`fwt*`: tests/network.rs's bridges and taps).
pub fn fw_interfaces() -> BTreeSet<String> {
    fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("fw-") || is_test_interface(n))
        .collect()
}

/// An interface only a test makes (never fwrun, never the host).
pub fn is_test_interface(name: &str) -> bool {
    name.starts_with("fwt")
}

/// Delete the interfaces `names` (`ip link del`), quietly.
fn delete_interfaces<'a>(names: impl IntoIterator<Item = &'a String>) {
    for n in names {
        let _ = Command::new("ip").args(["link", "del", n]).output();
    }
}

pub fn footprint() -> Footprint {
    let (pid_namespaces, fwrun_processes) = processes();
    Footprint {
        mounts: mount_lines(),
        loops: attached_loops(),
        states: states(),
        pid_namespaces,
        fwrun_processes,
        profiles: profiles(),
        cgroups: cgroups(),
        interfaces: fw_interfaces(),
    }
}

/// Whether `now` holds nothing that `before` did not.
fn leaks(before: &Footprint, now: &Footprint) -> Vec<String> {
    let mut out = Vec::new();
    let mut diff = |what: &str, b: &BTreeSet<String>, n: &BTreeSet<String>| {
        for x in n.difference(b) {
            out.push(format!("{what}: {x}"));
        }
    };
    diff("mount", &before.mounts, &now.mounts);
    diff("loop device", &before.loops, &now.loops);
    diff("state", &before.states, &now.states);
    diff("pid namespace", &before.pid_namespaces, &now.pid_namespaces);
    diff(
        "fwrun process",
        &before.fwrun_processes,
        &now.fwrun_processes,
    );
    diff("AppArmor profile", &before.profiles, &now.profiles);
    diff("cgroup", &before.cgroups, &now.cgroups);
    diff("interface", &before.interfaces, &now.interfaces);
    out
}

/// What the machine holds that `before` did not, once it has had up to a
/// few seconds to let go of it (empty when nothing is left).
fn left_behind(before: &Footprint) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = leaks(before, &footprint());
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Wait (up to a deadline) until the machine holds nothing new since
/// `before`; panic with what is left otherwise.
pub fn assert_no_leaks(before: &Footprint) {
    let left = left_behind(before);
    assert!(left.is_empty(), "left behind:\n  {}", left.join("\n  "));
}

/// Take away what a failed test left since `before`: its fwrun processes
/// (killed, which takes their firmware with them), their leftovers (swept
/// by `fwrun --cleanup`) and the interfaces it made. Never panics (it runs
/// while a test is already failing); returns what is still there.
fn sweep_after_failure(before: &Footprint) -> Vec<String> {
    let now = footprint();
    for pid in now.fwrun_processes.difference(&before.fwrun_processes) {
        if let Ok(pid) = pid.parse::<i32>() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !footprint()
        .fwrun_processes
        .is_subset(&before.fwrun_processes)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    if let Ok(mut c) = fwrun().args(["--cleanup", "-q"]).spawn() {
        let deadline = Instant::now() + Duration::from_secs(30);
        while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
    delete_interfaces(now.interfaces.difference(&before.interfaces));
    left_behind(before)
}

/// Held by every root test: serialises them (the leak check looks at the
/// whole machine) and checks, when the test ends, that nothing was left.
pub struct Guard {
    before: Footprint,
    _lock: MutexGuard<'static, ()>,
    _machine: fs::File,
}

/// A lock on the whole machine, held with the in-process one: two test
/// binaries (two checkouts' suites, a benchmark run beside a test) never
/// run root tests at the same time, so neither counts the other's mounts.
fn machine_lock() -> fs::File {
    let path = "/run/lock/fwrun-tests.lock";
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("opening {path}: {e}"));
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)
        .unwrap_or_else(|e| panic!("locking {path}: {e}"));
    f
}

/// The interfaces only tests make that are there before a test starts:
/// left by a test binary that was killed (no guard of its own ran), since
/// with the machine lock held no other suite is running. Deleted, and
/// named on stderr.
fn sweep_test_interfaces() {
    let stale: Vec<String> = fw_interfaces()
        .into_iter()
        .filter(|n| is_test_interface(n))
        .collect();
    if !stale.is_empty() {
        eprintln!(
            "deleting test interfaces an earlier, killed test run left: {}",
            stale.join(" ")
        );
        delete_interfaces(&stale);
    }
}

pub fn guard() -> Guard {
    static LOCK: Mutex<()> = Mutex::new(());
    let lock = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    assert!(
        nix_is_root(),
        "this test needs root (it mounts and creates namespaces): run the tests as root, as CI does"
    );
    let machine = machine_lock();
    sweep_test_interfaces();
    firmware();
    let before = footprint();
    Guard {
        before,
        _lock: lock,
        _machine: machine,
    }
}

impl Guard {
    pub fn before(&self) -> &Footprint {
        &self.before
    }
}

impl Drop for Guard {
    /// A passing test must have left nothing. A failing one is checked as
    /// well: what it left is named on stderr (a second panic would abort
    /// the whole binary) and swept, so that the tests after it neither
    /// count it in their own baseline nor trip over it.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            assert_no_leaks(&self.before);
            return;
        }
        let left = left_behind(&self.before);
        if left.is_empty() {
            return;
        }
        eprintln!(
            "the failed test also left behind (now swept):\n  {}",
            left.join("\n  ")
        );
        let still = sweep_after_failure(&self.before);
        if !still.is_empty() {
            eprintln!(
                "sweeping after the failed test did not remove:\n  {}",
                still.join("\n  ")
            );
        }
    }
}

fn nix_is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .is_some_and(|l| l.split_whitespace().nth(2) == Some("0"))
}

pub fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

/// A host setting a probe tries to write (kernel/ctrl-alt-del,
/// kernel/printk), with the value it had and the value the probe writes:
/// a different one where a different one is harmless, so that a write that
/// went through shows; [`Setting::unchanged`] then puts the host's back.
pub struct Setting {
    pub path: &'static str,
    pub host: String,
    pub probe: String,
}

impl Setting {
    /// kernel/ctrl-alt-del: 0 (Ctrl-Alt-Del signals init instead of
    /// rebooting at once) where the host has anything else; where it has 0
    /// already the probe writes 0, and only the refusal's reason shows.
    pub fn ctrl_alt_del() -> Setting {
        let path = "/proc/sys/kernel/ctrl-alt-del";
        let host = fs::read_to_string(path).unwrap().trim().to_string();
        Setting {
            path,
            host,
            probe: "0".into(),
        }
    }

    /// kernel/printk's console log level (what `dmesg -n` sets): one
    /// below the host's (2 where it is 1), which only quiets the console.
    pub fn console_level() -> Setting {
        let path = "/proc/sys/kernel/printk";
        let host = fs::read_to_string(path).unwrap().trim().to_string();
        let level: u32 = host.split_whitespace().next().unwrap().parse().unwrap();
        let probe = if level > 1 { level - 1 } else { 2 };
        Setting {
            path,
            host,
            probe: probe.to_string(),
        }
    }

    /// Whether the host still has its value; if not, it is put back first.
    #[must_use]
    pub fn unchanged(&self) -> bool {
        let now = fs::read_to_string(self.path).unwrap().trim().to_string();
        if now == self.host {
            return true;
        }
        let words: Vec<&str> = self.host.split_whitespace().collect();
        let _ = fs::write(self.path, words.join(" "));
        false
    }
}

/// Assert one line on stderr, naming `what`.
pub fn assert_one_line_naming(r: &Run, what: &str) {
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "expected one line on stderr, got: {:?}",
        r.stderr
    );
    assert!(
        lines[0].starts_with("fwrun: ") && lines[0].contains(what),
        "stderr does not name {what:?}: {:?}",
        r.stderr
    );
}

/// Poll until `cond` holds, or fail saying `what` after `secs` seconds.
#[track_caller]
pub fn eventually(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}
