//! Reliability, as root: what fwrun leaves behind when it fails or is killed
//! at each step of a run, how it refuses bad input, and that a sweep never
//! touches a live run.
//!
//! ```text
//! cargo test --features fault-injection --test reliability -- --test-threads=1
//! ```
//!
//! The fault table needs the `fault-injection` feature (it compiles
//! FWRUN_FAULT into the binary under test). Without it the table is not
//! built and one test fails saying so: a table that silently vanished would
//! look like a pass.
//!
//! Every root test holds `common::guard()`, which serialises the tests and,
//! when the test ends, checks that no mount, loop device, /run/fwrun entry,
//! pid namespace or fwrun process was left.
//!
//! On a host without AppArmor, fwrun's default `--apparmor auto` prints one
//! advisory line ("warning: no AppArmor confinement: ...") once the run's
//! input is known to be good; a failure after that point (a fault step, a
//! live run of the same name) comes after it. The tests run fwrun as a user
//! would, with the default, and leave that advisory out when they count the
//! lines of a refusal.
//!
//! The AppArmor rows (the `apparmor` fault steps, a missing or failing
//! apparmor_parser under `--apparmor require`) need a kernel with AppArmor:
//! they are in the VM tier (tests/vm/apparmor.sh). A template with a syntax
//! error is in tests/apparmor.rs.

mod common;

use std::ffi::{CString, OsStr, OsString};
use std::fs;
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::bg::*;
use common::*;

const STATE_ROOT: &str = "/run/fwrun";

/// Arguments of any printable kind (str, String, Path, OsStr) as OsStrings.
macro_rules! args {
    ($($a:expr),* $(,)?) => {
        [$(OsString::from(AsRef::<OsStr>::as_ref(&$a))),*]
    };
}

fn state_dir(name: &str) -> PathBuf {
    Path::new(STATE_ROOT).join(name)
}

fn ext2() -> PathBuf {
    image("fw.ext2")
}

fn cmd(args: &[OsString]) -> Command {
    let mut c = fwrun();
    c.args(args);
    c
}

fn go(args: &[OsString]) -> Out {
    finish(cmd(args))
}

/// A refusal: exit `code`, nothing on stdout (the firmware never ran), and
/// one line on stderr (the AppArmor advisory aside), "fwrun: ...", naming
/// each of `names`.
#[track_caller]
fn assert_refused(out: &Out, code: i32, names: &[&str]) {
    assert_eq!(out.code(), Some(code), "exit code\n{}", out.show());
    assert_eq!(
        out.stdout,
        "",
        "the firmware must not have run\n{}",
        out.show()
    );
    let errors = out.errors();
    assert_eq!(errors.len(), 1, "one line on stderr\n{}", out.show());
    assert!(errors[0].starts_with("fwrun: "), "{}", out.show());
    for n in names {
        assert!(
            errors[0].contains(n),
            "stderr must name {n:?}\n{}",
            out.show()
        );
    }
}

/// A path as fwrun shows it in its one-line messages: lossy UTF-8, control
/// characters escaped (a newline as `\n`).
fn shown(p: &Path) -> String {
    p.to_string_lossy()
        .chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The host as fwrun sees it: a mount namespace of fwrun's own, prepared
// before fwrun starts, so that the tests can give it a read-only /run or a
// kernel without overlay without changing the real host.

struct MountOp {
    src: CString,
    target: CString,
    fstype: Option<CString>,
    flags: libc::c_ulong,
    data: Option<CString>,
}

fn cstr(p: impl AsRef<OsStr>) -> CString {
    CString::new(p.as_ref().as_bytes()).unwrap()
}

fn tmpfs_at(target: &Path, read_only: bool) -> MountOp {
    MountOp {
        src: cstr("fwtest"),
        target: cstr(target),
        fstype: Some(cstr("tmpfs")),
        flags: if read_only { libc::MS_RDONLY } else { 0 },
        data: Some(cstr("size=1m")),
    }
}

fn bind_at(src: &Path, target: &Path) -> MountOp {
    MountOp {
        src: cstr(src),
        target: cstr(target),
        fstype: None,
        flags: libc::MS_BIND,
        data: None,
    }
}

fn remount_read_only(target: &Path) -> MountOp {
    MountOp {
        src: cstr("none"),
        target: cstr(target),
        fstype: None,
        flags: libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
        data: None,
    }
}

fn overlay_at(lower: &Path, upper: &Path, work: &Path, target: &Path) -> MountOp {
    MountOp {
        src: cstr("fwtest-overlay"),
        target: cstr(target),
        fstype: Some(cstr("overlay")),
        flags: 0,
        data: Some(cstr(format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.display(),
            upper.display(),
            work.display()
        ))),
    }
}

/// Start `cmd` in a private mount namespace of its own where `ops` were
/// mounted first. Everything is gone when the process ends.
fn in_own_mount_namespace(cmd: &mut Command, ops: Vec<MountOp>) {
    let root = cstr("/");
    let hook = move || -> std::io::Result<()> {
        // SAFETY: plain system calls, in the forked child before exec, on
        // strings prepared before the fork.
        unsafe {
            if libc::unshare(libc::CLONE_NEWNS) != 0
                || libc::mount(
                    std::ptr::null(),
                    root.as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            for op in &ops {
                let r = libc::mount(
                    op.src.as_ptr(),
                    op.target.as_ptr(),
                    op.fstype.as_ref().map_or(std::ptr::null(), |f| f.as_ptr()),
                    op.flags,
                    op.data
                        .as_ref()
                        .map_or(std::ptr::null(), |d| d.as_ptr().cast()),
                );
                if r != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
        }
        Ok(())
    };
    // SAFETY: the hook only makes system calls.
    unsafe { cmd.pre_exec(hook) };
}

// ---------------------------------------------------------------------------
// 1. Fault injection at every step.

/// Where a fault step runs, which decides what `FWRUN_FAULT=STEP:kill` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// In fwrun, while it sets the run up: `:kill` kills fwrun.
    Setup,
    /// In the firmware's process before it execs the init. That process is
    /// pid 1 of the new pid namespace, and the kernel ignores a signal a
    /// namespace's init sends itself, so `:kill` cannot kill it: it goes on
    /// to fail as the plain fault does, and fwrun reports that (exit 125).
    Child,
    /// In fwrun, once the init runs (`clone`): the fault must take the init
    /// down with fwrun.
    Started,
    /// In fwrun, while it tears the run down (`teardown:NAME`): `:kill`
    /// kills fwrun in the middle of its teardown.
    Teardown,
}

/// One table, three tests per row: `fail::ROW` (FWRUN_FAULT=STEP),
/// `kill_then_cleanup::ROW` and `kill_then_next_run::ROW`
/// (FWRUN_FAULT=STEP:kill, then `fwrun --cleanup` or a normal run).
macro_rules! fault_steps {
    ($($row:ident: $step:literal in $place:ident;)*) => {
        /// Every fault step the host tests cover, in the order a run passes
        /// them. A new step goes here (and `every_fault_step_in_src_is_in_the_table`
        /// fails until it does).
        const STEPS: &[(&str, Place)] = &[$(($step, Place::$place)),*];

        #[cfg(feature = "fault-injection")]
        mod fail {
            $(#[test] fn $row() { super::faults::fail_at($step, super::Place::$place) })*
        }

        #[cfg(feature = "fault-injection")]
        mod kill_then_cleanup {
            $(#[test] fn $row() {
                super::faults::kill_at($step, super::Place::$place, super::faults::After::Cleanup)
            })*
        }

        #[cfg(feature = "fault-injection")]
        mod kill_then_next_run {
            $(#[test] fn $row() {
                super::faults::kill_at($step, super::Place::$place, super::faults::After::NextRun)
            })*
        }
    };
}

fault_steps! {
    state: "state" in Setup;
    namespace: "namespace" in Setup;
    workspace: "workspace" in Setup;
    lower_entry: "lower-entry" in Setup;
    loop_device: "loop" in Setup;
    lower: "lower" in Setup;
    overlay: "overlay" in Setup;
    cgroup: "cgroup" in Setup;
    network: "network" in Setup;
    clone: "clone" in Started;
    proc: "proc" in Child;
    sys: "sys" in Child;
    dev: "dev" in Child;
    pivot_root: "pivot_root" in Child;
    teardown_network: "teardown:network" in Teardown;
    teardown_cgroup: "teardown:cgroup" in Teardown;
    teardown_overlay: "teardown:overlay" in Teardown;
    teardown_lower: "teardown:lower" in Teardown;
    teardown_lower_entry: "teardown:lower-entry" in Teardown;
    teardown_workspace: "teardown:workspace" in Teardown;
    teardown_state: "teardown:state" in Teardown;
    teardown_state_root: "teardown:state-root" in Teardown;
}

/// Steps only a host with AppArmor reaches (see the note at the top): they
/// belong to the VM tier. (The run's cgroups, "cgroup", are made on every
/// host: on this v1/hybrid one in each hierarchy.)
const VM_ONLY_STEPS: &[&str] = &["apparmor", "teardown:apparmor"];

/// Steps only a foreign-architecture firmware whose binfmt_misc handler
/// lacks the F flag reaches (the interpreter's mount point is removed):
/// tests/foreign.rs checks that a --rw-dir keeps none of it.
const FOREIGN_ONLY_STEPS: &[&str] = &["teardown:interpreter"];

/// The string literals that follow `call` in `text`: `fault::step("x")`.
fn literals_after(text: &str, call: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(call) {
        rest = &rest[at + call.len()..];
        let arg = rest.trim_start();
        if let Some(s) = arg.strip_prefix('"') {
            if let Some(end) = s.find('"') {
                found.push(s[..end].to_string());
            }
        }
    }
    found
}

/// Every fault step in src/ (`fault::step("X")`, and `teardown:NAME` for
/// every `teardown.push("NAME", ...)`) is in the table or named as VM-only,
/// and every row of the table still exists in src/.
#[test]
fn every_fault_step_in_src_is_in_the_table() {
    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in fs::read_dir(dir).unwrap().flatten() {
            if e.path().is_dir() {
                rust_files(&e.path(), out);
            } else {
                out.push(e.path());
            }
        }
    }
    let mut files = Vec::new();
    rust_files(&repo().join("src"), &mut files);
    let mut in_src = std::collections::BTreeSet::new();
    for path in files {
        let text = fs::read_to_string(path).unwrap_or_default();
        in_src.extend(literals_after(&text, "fault::step("));
        in_src.extend(
            literals_after(&text, "teardown.push(")
                .into_iter()
                .map(|n| format!("teardown:{n}")),
        );
    }
    let table: std::collections::BTreeSet<String> = STEPS
        .iter()
        .map(|(s, _)| s.to_string())
        .chain(VM_ONLY_STEPS.iter().map(|s| s.to_string()))
        .chain(FOREIGN_ONLY_STEPS.iter().map(|s| s.to_string()))
        .collect();
    let untested: Vec<_> = in_src.difference(&table).collect();
    let gone: Vec<_> = table.difference(&in_src).collect();
    assert!(
        untested.is_empty(),
        "fault steps in src/ that the table misses (add a row to fault_steps!): {untested:?}"
    );
    assert!(
        gone.is_empty(),
        "rows of the table that src/ no longer has: {gone:?}"
    );
}

#[cfg(not(feature = "fault-injection"))]
#[test]
fn fault_injection_is_compiled_in() {
    panic!(
        "the fault table needs the binary's fault injection: run \
         cargo test --features fault-injection -- --test-threads=1"
    );
}

#[cfg(feature = "fault-injection")]
mod faults {
    use super::*;
    use std::time::{Duration, Instant};

    /// What follows a SIGKILL of fwrun.
    #[derive(Debug, Clone, Copy)]
    pub enum After {
        /// `fwrun --cleanup`.
        Cleanup,
        /// A normal run with the same name.
        NextRun,
    }

    fn run_name(mode: &str, step: &str) -> String {
        format!("{mode}-{}", step.replace([':', '_'], "-"))
    }

    /// A run with FWRUN_FAULT=`fault`. Setup and child steps run a
    /// firmware that would wait for ever (so that an init that outlived a
    /// failed fwrun would be caught), bounded by --timeout in case the fault
    /// never fires; teardown steps need the init to end by itself.
    fn faulty_run(fault: &str, place: Place, img: &Path, name: &str) -> Out {
        let init = match place {
            Place::Teardown => args!["/test/exit.sh", "0"].to_vec(),
            Place::Setup | Place::Started | Place::Child => args!["/test/signals.sh"].to_vec(),
        };
        // The network steps run only when the firmware gets a veth.
        let net = if fault.contains("network") {
            "veth"
        } else {
            "none"
        };
        let mut c = cmd(&args![
            "--firmware",
            img,
            "--name",
            name,
            "--timeout",
            "10s",
            "--net",
            net,
            "--"
        ]);
        c.args(init).env("FWRUN_FAULT", fault);
        finish(c)
    }

    /// The steps at which a run does not hold the entry of its image's
    /// shared lower layer (/run/fwrun/.lower-KEY): before it joins it, and
    /// after it left it. At every other step it does.
    const WITHOUT_THE_ENTRY: &[&str] = &[
        "state",
        "namespace",
        "workspace",
        "teardown:lower-entry",
        "teardown:workspace",
        "teardown:state",
        "teardown:state-root",
    ];

    /// Wait until what is new on the machine since `before` is exactly the
    /// state directory of run `name` and, when `entry`, one entry of a
    /// shared lower layer: what a SIGKILL of fwrun may leave. Its mounts
    /// died with its mount namespace, its loop device cleared itself, its
    /// init died with it.
    fn assert_only_state_left(before: &Footprint, name: Option<&str>, entry: bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let now = footprint();
            let new = |b: &std::collections::BTreeSet<String>,
                       n: &std::collections::BTreeSet<String>| {
                n.difference(b).cloned().collect::<Vec<_>>()
            };
            // fwrun's own tmpfs on /run/fwrun (where /run is on a disk)
            // stays while anything is left in it, and may stay empty when
            // fwrun died after removing its state: a sweep unmounts it.
            let mounts: Vec<String> = new(&before.mounts, &now.mounts)
                .into_iter()
                .filter(|m| !(m.contains(" /run/fwrun ") && m.contains(" tmpfs fwrun-state ")))
                .collect();
            let left = [
                ("mount", mounts),
                ("loop device", new(&before.loops, &now.loops)),
                (
                    "pid namespace",
                    new(&before.pid_namespaces, &now.pid_namespaces),
                ),
                (
                    "fwrun process",
                    new(&before.fwrun_processes, &now.fwrun_processes),
                ),
                ("state", new(&before.states, &now.states)),
            ];
            let (entries, runs): (Vec<String>, Vec<String>) = left[4]
                .1
                .iter()
                .cloned()
                .partition(|s| s.starts_with(".lower-"));
            let ok = left
                .iter()
                .all(|(what, v)| *what == "state" || v.is_empty())
                && runs == name.map(str::to_string).into_iter().collect::<Vec<_>>()
                && entries.len() == usize::from(entry);
            if ok {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "after the SIGKILL, expected only state {name:?} (and a lower entry: {entry}) to be left; new: {left:?}"
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// FWRUN_FAULT=STEP: exit 125, one line naming the step, nothing left
    /// (the guard), the image unchanged.
    pub fn fail_at(step: &str, place: Place) {
        let _g = guard();
        let img = ext2();
        let sum = sha256(&img);
        let name = run_name("fail", step);
        let out = faulty_run(step, place, &img, &name);
        match place {
            Place::Setup | Place::Child => {
                assert_refused(&out, 125, &[&format!("injected fault after step '{step}'")]);
            }
            Place::Started => {
                // The init was started (it may have had time to say so
                // before fwrun failed); it must not outlive fwrun (the guard
                // looks for its pid namespace).
                assert!(
                    ["", "ready\n"].contains(&out.stdout.as_str()),
                    "{}",
                    out.show()
                );
                assert_refused(
                    &Out {
                        stdout: String::new(),
                        ..out
                    },
                    125,
                    &[&format!("injected fault after step '{step}'")],
                );
            }
            Place::Teardown => {
                // A failing undo step is reported (exit 125, one line naming
                // it) and the other undo steps still run: the guard finds
                // nothing left.
                let undo = step.trim_start_matches("teardown:");
                assert_refused(&out, 125, &["injected fault", undo]);
            }
        }
        assert!(!state_dir(&name).exists(), "state {name} left");
        assert_eq!(sha256(&img), sum, "the image changed");
    }

    /// FWRUN_FAULT=STEP:kill, then `--cleanup` or a next run.
    pub fn kill_at(step: &str, place: Place, after: After) {
        let g = guard();
        let img = ext2();
        let sum = sha256(&img);
        let name = run_name("kill", step);
        let out = faulty_run(&format!("{step}:kill"), place, &img, &name);
        assert_eq!(
            out.signal(),
            Some(libc::SIGKILL),
            "FWRUN_FAULT={step}:kill must kill fwrun\n{}",
            out.show()
        );
        // After the last undo step (the state directory's removal) nothing is
        // left at all; anywhere before it, the state directory is.
        let left_state = !matches!(step, "teardown:state" | "teardown:state-root");
        let entry = !WITHOUT_THE_ENTRY.contains(&step);
        assert_only_state_left(g.before(), left_state.then_some(name.as_str()), entry);
        match after {
            After::Cleanup => {
                let c = go(&args!["--cleanup"]);
                assert_eq!(c.code(), Some(0), "{}", c.show());
                let said = format!("removed the leftovers of dead run {name}");
                assert_eq!(
                    c.stderr.contains(&said),
                    left_state,
                    "--cleanup after {step}:kill\n{}",
                    c.show()
                );
                assert_eq!(
                    c.stderr
                        .contains("removed the entry of a shared lower layer no run uses"),
                    entry,
                    "--cleanup after {step}:kill\n{}",
                    c.show()
                );
            }
            After::NextRun => {
                // The same name: the dead run's directory is swept, the name
                // is free again.
                let r = go(&args![
                    "--firmware",
                    img,
                    "--name",
                    name,
                    "--",
                    "/bin/sh",
                    "-c",
                    "echo next run"
                ]);
                assert_eq!(
                    (r.code(), r.stdout.as_str()),
                    (Some(0), "next run\n"),
                    "{}",
                    r.show()
                );
            }
        }
        assert!(!state_dir(&name).exists(), "state {name} left");
        assert_eq!(sha256(&img), sum, "the image changed");
    }
}

// ---------------------------------------------------------------------------
// 2. Bad input, one test per row. 125 unless noted; one line on stderr
// naming the input; nothing left (the guard).

/// `--firmware PATH -- /bin/true` must be refused with one line naming
/// PATH and saying `says`.
fn refuse_firmware(path: &Path, says: &str) {
    let out = go(&args!["--firmware", path, "--", "/bin/true"]);
    assert_refused(&out, 125, &[&shown(path), says]);
}

/// A copy of the first `len` bytes of `from`, at `to`.
fn copy_head(from: &Path, to: &Path, len: u64) {
    let mut src = fs::File::open(from).unwrap();
    let mut dst = fs::File::create(to).unwrap();
    std::io::copy(&mut (&mut src).take(len), &mut dst).unwrap();
}

/// `path` as another name of `img` (a hard link, so that any write through
/// it would show in `img`'s checksum; a copy where links cannot be made).
fn alias(img: &Path, path: &Path) {
    if fs::hard_link(img, path).is_err() {
        fs::copy(img, path).unwrap();
    }
}

#[test]
fn bad_firmware_missing() {
    let _g = guard();
    let s = Scratch::new("rel-missing");
    refuse_firmware(&s.path("missing.ext2"), "no such file");
}

#[test]
fn bad_firmware_empty_file() {
    let _g = guard();
    let s = Scratch::new("rel-empty");
    let p = s.path("empty.img");
    fs::write(&p, b"").unwrap();
    refuse_firmware(&p, "is empty");
}

#[test]
fn bad_firmware_random_bytes() {
    let _g = guard();
    let s = Scratch::new("rel-random");
    let p = s.path("random.img");
    let mut bytes = vec![0u8; 1 << 20];
    fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut bytes)
        .unwrap();
    // Not by chance an ext or squashfs signature, nor a foreign one.
    bytes[..4].copy_from_slice(b"junk");
    bytes[510..512].copy_from_slice(b"no");
    bytes[1024 + 56..1024 + 58].copy_from_slice(b"no");
    fs::write(&p, &bytes).unwrap();
    refuse_firmware(&p, "not an image fwrun knows");
}

#[test]
fn bad_firmware_truncated_ext2() {
    let _g = guard();
    let img = ext2();
    let sum = sha256(&img);
    let s = Scratch::new("rel-trunc");
    let p = s.path("half.ext2");
    copy_head(&img, &p, fs::metadata(&img).unwrap().len() / 2);
    refuse_firmware(&p, "truncated ext2/3/4 image");
    assert_eq!(sha256(&img), sum);
}

#[test]
fn bad_firmware_truncated_squashfs() {
    let _g = guard();
    let img = image("fw.sqfs");
    let s = Scratch::new("rel-trunc-sqfs");
    let p = s.path("half.sqfs");
    copy_head(&img, &p, fs::metadata(&img).unwrap().len() / 2);
    refuse_firmware(&p, "truncated squashfs image");
}

/// An ext2 image whose signature and size are right but that the kernel
/// will not mount (an unknown incompatible feature bit): the refusal comes
/// from the mount, after the loop device was attached, which must free
/// itself (the guard looks).
#[test]
fn bad_firmware_ext2_the_kernel_refuses() {
    let _g = guard();
    let img = ext2();
    let s = Scratch::new("rel-damaged");
    let p = s.path("damaged.ext2");
    fs::copy(&img, &p).unwrap();
    let mut bytes = fs::read(&p).unwrap();
    let at = 1024 + 96; // s_feature_incompat
    let v = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) | 0x4000_0000;
    bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
    fs::write(&p, &bytes).unwrap();
    let sum = sha256(&p);
    refuse_firmware(&p, "e2fsck");
    assert_eq!(sha256(&p), sum, "the damaged image was written to");
}

/// A FAT file system, made with busybox's mkdosfs (busybox-static is
/// already a test dependency; this kernel has no vfat driver, so fwrun must
/// refuse it by its signature, before any mount).
#[test]
fn bad_firmware_fat_image() {
    let _g = guard();
    let s = Scratch::new("rel-fat");
    let p = s.path("fat.img");
    fs::File::create(&p).unwrap().set_len(2 << 20).unwrap();
    let st = Command::new("busybox")
        .arg("mkdosfs")
        .arg(&p)
        .stdout(Stdio::null())
        .status()
        .expect("busybox mkdosfs (apt-get install busybox-static)");
    assert!(st.success(), "mkdosfs failed");
    refuse_firmware(&p, "FAT file system");
}

/// A cpio archive (an initramfs, a common mistake), made with cpio(1).
#[test]
fn bad_firmware_cpio_archive() {
    let _g = guard();
    let s = Scratch::new("rel-cpio");
    let p = s.path("initramfs.cpio");
    let out = fs::File::create(&p).unwrap();
    let mut child = Command::new("cpio")
        .args(["-o", "-H", "newc", "--quiet"])
        .current_dir(image("root"))
        .stdin(Stdio::piped())
        .stdout(out)
        .spawn()
        .expect("cpio (apt-get install cpio)");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"etc/fw-version\n")
        .unwrap();
    assert!(child.wait().unwrap().success(), "cpio failed");
    refuse_firmware(&p, "cpio archive");
}

#[test]
fn bad_firmware_a_character_device() {
    let _g = guard();
    refuse_firmware(Path::new("/dev/null"), "not a regular file or directory");
}

/// A FIFO is refused without being opened (an open would block).
#[test]
fn bad_firmware_a_fifo() {
    let _g = guard();
    let s = Scratch::new("rel-fifo");
    let p = s.path("fifo.img");
    let cp = cstr(&p);
    // SAFETY: plain syscall on a valid path.
    assert_eq!(unsafe { libc::mkfifo(cp.as_ptr(), 0o600) }, 0);
    refuse_firmware(&p, "not a regular file or directory");
}

/// A symlink (to a symlink) to an image is allowed: the run succeeds.
#[test]
fn firmware_through_symlinks_runs() {
    let _g = guard();
    let img = ext2();
    let sum = sha256(&img);
    let s = Scratch::new("rel-symlink");
    let first = s.path("fw-link.ext2");
    symlink(&img, &first).unwrap();
    let second = s.path("relative-link.ext2");
    symlink("fw-link.ext2", &second).unwrap();
    for p in [&first, &second] {
        let out = go(&args!["--firmware", p, "--", "/bin/cat", "/etc/fw-version"]);
        assert_eq!(
            (out.code(), out.stdout.as_str()),
            (Some(0), "image\n"),
            "{}",
            out.show()
        );
    }
    assert_eq!(sha256(&img), sum);
}

/// File names a shell, a mount option string or a one-line message could
/// trip over.
fn awkward_names() -> Vec<OsString> {
    vec![
        "with space.ext2".into(),
        "it's \"quoted\".ext2".into(),
        "glob[1]*?{a,b}.ext2".into(),
        "new\nline.ext2".into(),
        "tab\tdollar $HOME `id` ;&|<>.ext2".into(),
        "comma,colon:equals=backslash\\.ext2".into(),
        OsString::from_vec(b"not-utf8-\xff\xfe.ext2".to_vec()),
    ]
}

#[test]
fn firmware_at_awkward_paths_runs() {
    let _g = guard();
    let img = ext2();
    let sum = sha256(&img);
    let s = Scratch::new("rel-awkward");
    for n in awkward_names() {
        let p = s.0.join(&n);
        alias(&img, &p);
        let out = go(&args!["--firmware", p, "--", "/bin/cat", "/etc/fw-version"]);
        assert_eq!(
            (out.code(), out.stdout.as_str()),
            (Some(0), "image\n"),
            "{n:?}\n{}",
            out.show()
        );
    }
    assert_eq!(sha256(&img), sum);
}

#[test]
fn missing_firmware_at_awkward_paths_is_one_line() {
    let _g = guard();
    let s = Scratch::new("rel-awkward-missing");
    for n in awkward_names() {
        refuse_firmware(&s.0.join(&n), "no such file");
    }
}

/// A directory firmware at an awkward path (bound, not mounted from an
/// image) runs too.
#[test]
fn directory_firmware_at_an_awkward_path_runs() {
    let _g = guard();
    let s = Scratch::new("rel-awkward-dir");
    let dir = s.path("dir with space, 'quote' [*]\nand newline");
    copy_tree(&image("root"), &dir);
    let out = go(&args![
        "--firmware",
        dir,
        "--",
        "/bin/cat",
        "/etc/fw-version"
    ]);
    assert_eq!(
        (out.code(), out.stdout.as_str()),
        (Some(0), "image\n"),
        "{}",
        out.show()
    );
}

/// A --rw-dir at an awkward path (commas, colons and equals signs would
/// break the overlay's option string if it went there) keeps the changes.
#[test]
fn rw_dir_at_an_awkward_path_keeps_changes() {
    let _g = guard();
    let img = ext2();
    let sum = sha256(&img);
    let s = Scratch::new("rel-awkward-rw");
    let rw = s.path("rw,lowerdir=/:x y\nz");
    let out = go(&args![
        "--firmware",
        img,
        "--rw-dir",
        rw,
        "--",
        "/bin/sh",
        "-c",
        "echo kept > /kept"
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.show());
    assert_eq!(fs::read_to_string(rw.join("upper/kept")).unwrap(), "kept\n");
    assert_eq!(sha256(&img), sum);
}

fn copy_tree(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success(), "cp -a {} {}", from.display(), to.display());
}

/// `--firmware IMG -- INIT` must end with `code`, naming INIT.
fn refuse_init(img: &Path, init: &str, code: i32, says: &str) {
    let sum = sha256(img);
    let out = go(&args!["--firmware", img, "--", init]);
    assert_refused(&out, code, &[&format!("'{init}'"), says]);
    assert_eq!(sha256(img), sum, "the firmware changed");
}

#[test]
fn init_missing_is_127() {
    let _g = guard();
    refuse_init(&ext2(), "/test/no-such-init", 127, "not found");
}

#[test]
fn init_a_directory_is_126() {
    let _g = guard();
    refuse_init(&ext2(), "/test", 126, "is a directory");
}

#[test]
fn init_a_dangling_symlink_is_127() {
    let _g = guard();
    refuse_init(&ext2(), "/test/dangling", 127, "not found");
}

/// /test/abs-link -> /test/check.sh: an absolute symlink is resolved inside
/// the firmware, and the init it names runs (and finds its world sound).
#[test]
fn init_an_absolute_symlink_runs_its_target_in_the_firmware() {
    let _g = guard();
    let img = ext2();
    let sum = sha256(&img);
    let mut c = cmd(&args!["--firmware", img]);
    c.args(check_env()).args(["--", "/test/abs-link"]);
    let out = finish(c);
    assert_eq!(out.code(), Some(0), "{}", out.show());
    assert!(
        out.stdout.contains("ok - init is pid 1\n"),
        "{}",
        out.show()
    );
    assert!(out.stdout.contains("failures=0\n"), "{}", out.show());
    assert_eq!(sha256(&img), sum);
}

/// A firmware (directory) whose inits are symlinks to a program that
/// exists on the host but not in the firmware: absolute, and relative with
/// more `..` than the firmware has levels. Neither may be resolved on the
/// host.
struct HostLinks {
    _s: Scratch,
    root: PathBuf,
    host_program: PathBuf,
}

fn firmware_with_host_links(tag: &str) -> HostLinks {
    let s = Scratch::new(tag);
    let host = s.path("host-only");
    fs::create_dir(&host).unwrap();
    let program = host.join("init.sh");
    fs::write(&program, "#!/bin/sh\necho RAN THE HOST'S PROGRAM\n").unwrap();
    fs::set_permissions(&program, fs::Permissions::from_mode(0o755)).unwrap();
    let root = s.path("root");
    copy_tree(&image("root"), &root);
    symlink(&program, root.join("test/host-abs")).unwrap();
    let up = "../".repeat(program.components().count() + 4);
    let rel = format!("{up}{}", program.to_str().unwrap().trim_start_matches('/'));
    symlink(rel, root.join("test/host-dotdot")).unwrap();
    HostLinks {
        _s: s,
        root,
        host_program: program,
    }
}

#[test]
fn init_a_symlink_to_a_host_path_is_127_in_a_directory_firmware() {
    let _g = guard();
    let fw = firmware_with_host_links("rel-hostlink-dir");
    assert!(fw.host_program.exists());
    refuse_init(&fw.root, "/test/host-abs", 127, "not found");
    refuse_init(&fw.root, "/test/host-dotdot", 127, "not found");
}

#[test]
fn init_a_symlink_to_a_host_path_is_127_in_an_image() {
    let _g = guard();
    let fw = firmware_with_host_links("rel-hostlink-img");
    let img = fw.root.with_file_name("fw.ext2");
    fs::File::create(&img).unwrap().set_len(16 << 20).unwrap();
    let st = Command::new("mkfs.ext2")
        .args(["-q", "-F", "-d"])
        .arg(&fw.root)
        .arg(&img)
        .status()
        .expect("mkfs.ext2 (apt-get install e2fsprogs)");
    assert!(st.success(), "mkfs.ext2 failed");
    refuse_init(&img, "/test/host-abs", 127, "not found");
    refuse_init(&img, "/test/host-dotdot", 127, "not found");
}

#[test]
fn bind_source_missing() {
    let _g = guard();
    let s = Scratch::new("rel-bind");
    let src = s.path("no-such-dir");
    let out = go(&args![
        "--firmware",
        ext2(),
        "--bind",
        format!("{}:/mnt/x", src.display()),
        "--",
        "/bin/true"
    ]);
    assert_refused(&out, 125, &[&shown(&src), "--bind"]);
}

#[test]
fn rw_dir_is_a_file() {
    let _g = guard();
    let s = Scratch::new("rel-rwfile");
    let f = s.path("a-file");
    fs::write(&f, "x").unwrap();
    let out = go(&args![
        "--firmware",
        ext2(),
        "--rw-dir",
        f,
        "--",
        "/bin/true"
    ]);
    assert_refused(&out, 125, &[&shown(&f), "not a directory"]);
    assert_eq!(fs::read_to_string(&f).unwrap(), "x");
}

#[test]
fn rw_dir_that_cannot_be_created() {
    let _g = guard();
    let s = Scratch::new("rel-rwcreate");
    let f = s.path("a-file");
    fs::write(&f, "x").unwrap();
    let dir = f.join("below-a-file");
    let out = go(&args![
        "--firmware",
        ext2(),
        "--rw-dir",
        dir,
        "--",
        "/bin/true"
    ]);
    assert_refused(&out, 125, &[&shown(&dir), "--rw-dir"]);
}

/// An overlayfs cannot be an overlay's upper layer. The overlay is mounted
/// in a mount namespace made for this fwrun alone (see
/// `in_own_mount_namespace`), so the host never sees it.
#[test]
fn rw_dir_on_an_overlayfs() {
    let _g = guard();
    let s = Scratch::new("rel-rw-ovl");
    for d in ["lower", "upper/rw", "work", "merged"] {
        fs::create_dir_all(s.path(d)).unwrap();
    }
    let rw = s.path("merged/rw");
    let mut c = cmd(&args![
        "--firmware",
        ext2(),
        "--rw-dir",
        rw,
        "--",
        "/bin/true"
    ]);
    in_own_mount_namespace(
        &mut c,
        vec![overlay_at(
            &s.path("lower"),
            &s.path("upper"),
            &s.path("work"),
            &s.path("merged"),
        )],
    );
    let out = finish(c);
    assert_refused(&out, 125, &[&shown(&rw), "overlayfs"]);
}

/// A --rw-dir on a read-only file system (here a read-only bind mount, in
/// fwrun's own mount namespace) cannot hold the upper layer: the refusal
/// must name the --rw-dir the user gave, not an internal path.
#[test]
fn rw_dir_on_a_read_only_file_system() {
    let _g = guard();
    let s = Scratch::new("rel-rw-ro");
    fs::create_dir_all(s.path("ro/rw")).unwrap();
    let rw = s.path("ro/rw");
    let mut c = cmd(&args![
        "--firmware",
        ext2(),
        "--rw-dir",
        rw,
        "--",
        "/bin/true"
    ]);
    in_own_mount_namespace(
        &mut c,
        vec![
            bind_at(&s.path("ro"), &s.path("ro")),
            remount_read_only(&s.path("ro")),
        ],
    );
    let out = finish(c);
    assert_refused(&out, 125, &[&format!("--rw-dir '{}'", shown(&rw))]);
    assert_eq!(fs::read_dir(&rw).unwrap().count(), 0);
}

#[test]
fn name_with_a_slash() {
    let _g = guard();
    let out = go(&args![
        "--firmware",
        ext2(),
        "--name",
        "a/b",
        "--",
        "/bin/true"
    ]);
    assert_refused(&out, 125, &["'a/b'", "--name"]);
}

#[test]
fn name_too_long() {
    let _g = guard();
    let long = "n".repeat(33);
    let out = go(&args![
        "--firmware",
        ext2(),
        "--name",
        long,
        "--",
        "/bin/true"
    ]);
    assert_refused(&out, 125, &[&long, "32"]);
    // 32 is fine.
    let fine = "n".repeat(32);
    let out = go(&args![
        "--firmware",
        ext2(),
        "--name",
        fine,
        "--",
        "/bin/true"
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.show());
}

#[test]
fn name_already_running() {
    let _g = guard();
    let img = ext2();
    let sum = sha256(&img);
    let name = "rel-busy";
    let mut first = Bg::start(&args![
        "--firmware",
        img,
        "--name",
        name,
        "--",
        "/test/signals.sh"
    ]);
    first.expect("ready");
    let out = go(&args!["--firmware", img, "--name", name, "--", "/bin/true"]);
    assert_refused(&out, 125, &[&format!("'{name}' is already running")]);
    // The refused run left the live one alone.
    assert!(state_dir(name).join("lock").exists());
    first.signal(libc::SIGUSR1);
    first.expect("got USR1");
    first.signal(libc::SIGTERM);
    let out = first.finish();
    assert_eq!(out.code(), Some(143), "{}", out.show());
    assert_eq!(sha256(&img), sum);
}

/// fwrun run as nobody (setuid and setgid before exec).
fn as_nobody(c: &mut Command) {
    let hook = || -> std::io::Result<()> {
        // SAFETY: plain system calls in the forked child before exec.
        unsafe {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(65534) != 0
                || libc::setuid(65534) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    };
    // SAFETY: the hook only makes system calls.
    unsafe { c.pre_exec(hook) };
}

#[test]
fn not_root() {
    let _g = guard();
    let mut c = cmd(&args!["--firmware", ext2(), "--", "/bin/true"]);
    as_nobody(&mut c);
    let out = finish(c);
    assert_refused(&out, 125, &["root", "sudo"]);
}

#[test]
fn not_root_cleanup() {
    let _g = guard();
    let mut c = cmd(&args!["--cleanup"]);
    as_nobody(&mut c);
    let out = finish(c);
    assert_refused(&out, 125, &["root"]);
}

/// A kernel without overlay, as fwrun's preflight sees it: in fwrun's own
/// mount namespace, /proc/filesystems without its overlay line, and
/// /lib/modules (where the preflight looks for an overlay module it could
/// load) hidden under an empty tmpfs when the host has one. Without the
/// latter, a host with the module on disk passes the preflight and relies
/// on the kernel loading it at the first mount.
#[test]
fn overlay_not_available() {
    let _g = guard();
    let s = Scratch::new("rel-no-ovl");
    let list = fs::read_to_string("/proc/filesystems").unwrap();
    let without: String = list
        .lines()
        .filter(|l| l.split_whitespace().last() != Some("overlay"))
        .map(|l| format!("{l}\n"))
        .collect();
    let copy = s.path("filesystems");
    fs::write(&copy, without).unwrap();
    let mut ops = vec![bind_at(&copy, Path::new("/proc/filesystems"))];
    if Path::new("/lib/modules").is_dir() {
        ops.push(tmpfs_at(Path::new("/lib/modules"), true));
    }
    let mut c = cmd(&args!["--firmware", ext2(), "--", "/bin/true"]);
    in_own_mount_namespace(&mut c, ops);
    let out = finish(c);
    assert_refused(&out, 125, &["overlay", "modprobe overlay"]);
}

/// /run read-only (a read-only tmpfs over it, in fwrun's own mount
/// namespace): fwrun cannot create /run/fwrun.
#[test]
fn run_not_writable() {
    let _g = guard();
    let mut c = cmd(&args!["--firmware", ext2(), "--", "/bin/true"]);
    in_own_mount_namespace(&mut c, vec![tmpfs_at(Path::new("/run"), true)]);
    let out = finish(c);
    assert_refused(&out, 125, &["/run/fwrun", "writable /run"]);
}

/// /run/fwrun exists but is read-only: the refusal must say so in the same
/// terms as for a read-only /run (what, and what to do), not as an internal
/// error about a temporary directory.
#[test]
fn run_fwrun_not_writable() {
    let _g = guard();
    fs::create_dir_all(STATE_ROOT).unwrap();
    let mut c = cmd(&args!["--firmware", ext2(), "--", "/bin/true"]);
    in_own_mount_namespace(&mut c, vec![tmpfs_at(Path::new(STATE_ROOT), true)]);
    let out = finish(c);
    assert_refused(&out, 125, &["/run/fwrun", "writable /run"]);
}

#[test]
fn unknown_stop_signal() {
    let _g = guard();
    let out = go(&args![
        "--firmware",
        ext2(),
        "--stop-signal",
        "NOPE",
        "--",
        "/bin/true"
    ]);
    assert_refused(&out, 125, &["'NOPE'", "--stop-signal"]);
}

// ---------------------------------------------------------------------------
// 5. The sweep never touches a live run.

/// `fwrun --cleanup` beside a live run leaves its state directory and the
/// run works on: it still gets signals, and stops on SIGTERM with 143.
#[test]
fn cleanup_never_touches_a_live_run() {
    let _g = guard();
    let img = ext2();
    let sum = sha256(&img);
    let name = "rel-live";
    let mut live = Bg::start(&args![
        "--firmware",
        img,
        "--name",
        name,
        "--",
        "/test/signals.sh"
    ]);
    live.expect("ready");
    let info = fs::read_to_string(state_dir(name).join("info")).unwrap();
    let c = go(&args!["--cleanup"]);
    assert_eq!(c.code(), Some(0), "{}", c.show());
    assert!(!c.stderr.contains(name), "{}", c.show());
    assert_eq!(
        fs::read_to_string(state_dir(name).join("info")).unwrap(),
        info,
        "the live run's state changed"
    );
    // A normal run sweeps too, and must leave it alone as well.
    let r = go(&args!["--firmware", img, "--", "/bin/true"]);
    assert_eq!(r.code(), Some(0), "{}", r.show());
    assert!(state_dir(name).join("lock").exists());
    live.signal(libc::SIGUSR1);
    live.expect("got USR1");
    live.signal(libc::SIGTERM);
    let out = live.finish();
    assert_eq!(out.code(), Some(143), "{}", out.show());
    assert!(!state_dir(name).exists());
    assert_eq!(sha256(&img), sum);
}

/// Entries in /run/fwrun this test made by hand; removed on drop.
struct Planted(Vec<PathBuf>);
impl Drop for Planted {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = fs::remove_dir_all(p).or_else(|_| fs::remove_file(p));
        }
    }
}

/// With a live run, a SIGKILLed run, a half-created run of a dead process
/// and things in /run/fwrun that are not runs: `--cleanup` removes exactly
/// the dead run's and the half-created run's leftovers.
#[test]
fn cleanup_removes_only_what_dead_runs_left() {
    let _g = guard();
    let img = ext2();
    let sum = sha256(&img);
    fs::create_dir_all(STATE_ROOT).unwrap();
    let mut live = Bg::start(&args![
        "--firmware",
        img,
        "--name",
        "rel-alive",
        "--",
        "/test/signals.sh"
    ]);
    live.expect("ready");
    let mut dead = Bg::start(&args![
        "--firmware",
        img,
        "--name",
        "rel-dead",
        "--",
        "/test/signals.sh"
    ]);
    dead.expect("ready");
    dead.signal(libc::SIGKILL);
    assert_eq!(dead.finish().signal(), Some(libc::SIGKILL));
    assert!(state_dir("rel-dead").exists());

    // Planted last, as every run sweeps when it starts.
    // A pid that is surely dead: a child that ended and was reaped.
    let mut t = Command::new("true").spawn().unwrap();
    let dead_pid = t.id();
    t.wait().unwrap();
    let half = state_dir(&format!(".new-{dead_pid}-rel-half"));
    let foreign_dir = state_dir("Not A Run");
    let foreign_file = state_dir("notes.txt");
    let planted = Planted(vec![
        half.clone(),
        foreign_dir.clone(),
        foreign_file.clone(),
    ]);
    fs::create_dir(&half).unwrap();
    fs::write(half.join("lock"), "").unwrap();
    fs::create_dir(&foreign_dir).unwrap();
    fs::write(&foreign_file, "not a run\n").unwrap();

    let c = go(&args!["--cleanup"]);
    assert_eq!(c.code(), Some(0), "{}", c.show());
    for gone in ["rel-dead", &format!(".new-{dead_pid}-rel-half")] {
        assert!(
            c.stderr
                .contains(&format!("removed the leftovers of dead run {gone}\n")),
            "{}",
            c.show()
        );
        assert!(!state_dir(gone).exists(), "{gone} is still there");
    }
    assert!(!c.stderr.contains("rel-alive"), "{}", c.show());
    assert!(state_dir("rel-alive").join("lock").exists());
    assert!(
        foreign_dir.is_dir() && foreign_file.is_file(),
        "not runs: left alone"
    );
    drop(planted);

    live.signal(libc::SIGUSR1);
    live.expect("got USR1");
    live.signal(libc::SIGTERM);
    let out = live.finish();
    assert_eq!(out.code(), Some(143), "{}", out.show());
    assert_eq!(sha256(&img), sum);
}

/// What the firmware of [`same_name_runs_race_a_sweeper`] runs: for a
/// moment (25 looks, 10 ms apart) it checks, through a read-only bind of
/// /run/fwrun at /fwrun-state, that its run's state directory stays there
/// and stays its own (the same launcher pid in its info). Prints "held",
/// or what went wrong and exits 3.
const HOLD_STATE: &str = r#"
s=/fwrun-state/$FWRUN_NAME
read -r me < $s/info || { echo "no state at the start"; exit 3; }
i=0
while [ $i -lt 25 ]; do
  [ -e $s/lock ] || { echo "the lock went at look $i"; exit 3; }
  read -r now < $s/info || { echo "the info went at look $i"; exit 3; }
  [ "$now" = "$me" ] || { echo "the state changed hands at look $i: $now"; exit 3; }
  usleep 10000
  i=$((i + 1))
done
echo held
"#;

/// Rounds of two runs with the same name started together, while another
/// thread runs `fwrun --cleanup` over and over. Every round exactly one run
/// starts and keeps its state directory for as long as it lives (its
/// firmware checks); the other is refused with 125 and one line; no sweep
/// ever removes anything (there is never a dead run to sweep); nothing is
/// left.
#[test]
fn same_name_runs_race_a_sweeper() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let _g = guard();
    let img = ext2();
    let name = "rel-race";
    fs::create_dir_all(STATE_ROOT).unwrap();
    /// The sweeping thread, stopped (and waited for) when the test ends
    /// however it ends: a failing round must not leave it sweeping beside
    /// the tests that come after.
    struct Sweeper {
        stop: Arc<AtomicBool>,
        thread: Option<std::thread::JoinHandle<(usize, Vec<String>)>>,
    }
    impl Sweeper {
        fn finish(mut self) -> (usize, Vec<String>) {
            self.stop.store(true, Ordering::Relaxed);
            let t = self.thread.take().unwrap();
            t.join().expect("the sweeping thread panicked")
        }
    }
    impl Drop for Sweeper {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let sweeper = Sweeper {
        stop: stop.clone(),
        thread: Some(std::thread::spawn(move || {
            let mut sweeps = 0;
            let mut wrong = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let c = go(&args!["--cleanup"]);
                if c.code() != Some(0) || c.stderr != "fwrun: nothing to clean up\n" {
                    wrong.push(c.show());
                }
                sweeps += 1;
            }
            (sweeps, wrong)
        })),
    };
    let run = || {
        Bg::start(&args![
            "--firmware",
            img,
            "--name",
            name,
            "--bind",
            format!("{STATE_ROOT}:/fwrun-state:ro"),
            "--",
            "/bin/sh",
            "-c",
            HOLD_STATE
        ])
    };
    let rounds = 40;
    let mut failures = Vec::new();
    for round in 0..rounds {
        let (a, b) = (run(), run());
        let outs = [a.finish(), b.finish()];
        let won: Vec<&Out> = outs.iter().filter(|o| o.code() == Some(0)).collect();
        let lost: Vec<&Out> = outs.iter().filter(|o| o.code() == Some(125)).collect();
        let refused = |o: &Out| {
            o.stdout.is_empty()
                && o.errors().len() == 1
                && o.errors()[0].contains(&format!("'{name}' is already running"))
        };
        let fine = won.len() == 1
            && won[0].stdout == "held\n"
            && won[0].errors().is_empty()
            && lost.len() == 1
            && refused(lost[0]);
        if !fine {
            failures.push(format!(
                "round {round}:\n{}\n{}",
                outs[0].show(),
                outs[1].show()
            ));
        }
        assert!(!state_dir(name).exists(), "round {round}: state left");
    }
    let (sweeps, wrong) = sweeper.finish();
    assert!(
        failures.is_empty(),
        "{} of {rounds} rounds went wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        wrong.is_empty(),
        "a sweep beside live runs removed something or failed:\n{}",
        wrong.join("\n")
    );
    assert!(
        sweeps >= rounds,
        "only {sweeps} sweeps ran beside {rounds} rounds"
    );
}
