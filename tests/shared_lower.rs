//! Runs of one image at the same time share its loop device, as root: one
//! device for sixteen runs, a SIGKILLed run that leaves the others running
//! and the last one out cleaning up, a SIGKILL of them all that the next
//! run or `--cleanup` clears, and an image changed on disk that gets a
//! device (and an entry) of its own.
//!
//! ```text
//! cargo test --test shared_lower -- --test-threads=1
//! ```
//!
//! Each test runs its own copy of the ext2 test image (so that the loop
//! devices it counts are its own, found by their backing file) with an init
//! that says it is up, in a directory bound into the firmware, and waits
//! there for the test's go. Every test holds `common::guard()`: afterwards
//! no mount, loop device, /run/fwrun entry, pid namespace or fwrun process
//! is left.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::bg::{self, Out, Running};
use common::gate::Gate;
use common::*;

const STATE_ROOT: &str = "/run/fwrun";
const ENTRY_PREFIX: &str = ".lower-";

/// A private copy of the ext2 test image, and the directory its runs are
/// gated through.
struct Setup {
    scratch: Scratch,
    img: PathBuf,
    gate: Gate,
}

impl Setup {
    fn new(tag: &str) -> Setup {
        let scratch = Scratch::new(tag);
        let img = scratch.path("fw.ext2");
        fs::copy(image("fw.ext2"), &img).unwrap();
        let img = fs::canonicalize(img).unwrap();
        let gate = Gate::new(&scratch);
        Setup { scratch, img, gate }
    }

    /// A run named `name` whose init marks itself up in the gate, waits
    /// for the go, then prints `then`.
    fn start(&self, name: &str, then: &str) -> Running {
        self.gate.start(&self.img, name, &["-v"], "go", then)
    }

    /// Wait until each of `names` is up.
    fn wait_up(&self, names: &[String]) {
        self.gate.wait_up(names)
    }

    fn go(&self) {
        self.gate.go("go")
    }

    /// The loop devices attached to this image.
    fn loops(&self) -> Vec<String> {
        loops_of(&self.img)
    }
}

/// The loop devices whose backing file is `img`.
fn loops_of(img: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir("/sys/block")
        .unwrap()
        .flatten()
        .filter(|e| {
            fs::read_to_string(e.path().join("loop/backing_file"))
                .is_ok_and(|b| Path::new(b.trim()) == img)
        })
        .map(|e| format!("/dev/{}", e.file_name().to_string_lossy()))
        .collect();
    v.sort();
    v
}

/// The entries of shared lower layers in /run/fwrun, with what they name.
fn entries() -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = fs::read_dir(STATE_ROOT)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(ENTRY_PREFIX))
                .map(|n| {
                    let text =
                        fs::read_to_string(Path::new(STATE_ROOT).join(&n)).unwrap_or_default();
                    (n, text.trim().to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Poll until `cond` holds, or fail saying `what`.
#[track_caller]
fn eventually(what: &str, cond: impl FnMut() -> bool) {
    common::eventually(what, 10, cond)
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// A gated run that ended as it should: exit 0, `said` on stdout.
#[track_caller]
fn assert_done(out: &Out, said: &str) {
    assert_eq!(
        (out.code(), out.stdout.as_str()),
        (Some(0), said),
        "{}",
        out.show()
    );
}

fn finish(run: Running) -> Out {
    run.finish_by(Instant::now() + bg::DEADLINE)
}

fn sigkill(run: &Running) {
    // SAFETY: plain syscall on our own child, not yet reaped.
    assert_eq!(unsafe { libc::kill(run.pid(), libc::SIGKILL) }, 0);
}

/// How a run's -v says it got its lower layer.
fn how_mounted(out: &Out) -> &'static str {
    if out.stderr.contains("(attached for this run)") {
        "attached"
    } else if out
        .stderr
        .contains("(already attached by another run of this image)")
    {
        "shared"
    } else {
        panic!("no lower layer line\n{}", out.show())
    }
}

/// Sixteen runs of one image at once: one loop device and one entry while
/// they run; one run attached it, fifteen found it; nothing left after.
#[test]
fn sixteen_runs_of_one_image_share_one_loop_device() {
    let _g = guard();
    let s = Setup::new("share16");
    let all = names("share16-", 16);
    let runs: Vec<Running> = all.iter().map(|n| s.start(n, "echo done")).collect();
    s.wait_up(&all);
    let loops = s.loops();
    assert_eq!(
        loops.len(),
        1,
        "loop devices of {}: {loops:?}",
        s.img.display()
    );
    assert_eq!(
        entries()
            .into_iter()
            .map(|(_, dev)| dev)
            .collect::<Vec<_>>(),
        loops,
        "one entry, naming the device"
    );
    s.go();
    let outs: Vec<Out> = runs.into_iter().map(finish).collect();
    let mut attached = 0;
    for out in &outs {
        assert_done(out, "done\n");
        attached += usize::from(how_mounted(out) == "attached");
    }
    assert_eq!(attached, 1, "runs that attached a device of their own");
    eventually("the loop device freed itself", || s.loops().is_empty());
    assert!(entries().is_empty(), "{:?}", entries());
    drop(s.scratch);
}

/// The run that attached the device is SIGKILLed while three others use
/// it: they go on and end normally, and the last one out removes the entry
/// while the device frees itself. The killed run's state directory is all
/// that is left, for `--cleanup`.
#[test]
fn sigkill_of_the_first_run_leaves_the_three_sharing_its_lower_running() {
    let g = guard();
    let s = Setup::new("kill-first");
    let first = s.start("kill-first-0", "echo never");
    s.wait_up(&["kill-first-0".to_string()]);
    let others = names("kill-first-", 4)[1..].to_vec();
    let runs: Vec<Running> = others.iter().map(|n| s.start(n, "echo done")).collect();
    s.wait_up(&others);
    let device = s.loops();
    assert_eq!(device.len(), 1, "{device:?}");
    sigkill(&first);
    let killed = finish(first);
    assert_eq!(killed.signal(), Some(libc::SIGKILL), "{}", killed.show());
    assert_eq!(how_mounted(&killed), "attached");
    // Its firmware dies with it; the others still hold the device and the
    // entry.
    assert_eq!(s.loops(), device, "the others' device stays");
    assert_eq!(entries().len(), 1, "{:?}", entries());
    s.go();
    for out in runs.into_iter().map(finish) {
        assert_done(&out, "done\n");
        assert_eq!(how_mounted(&out), "shared");
    }
    eventually("the loop device freed itself", || s.loops().is_empty());
    assert!(entries().is_empty(), "{:?}", entries());
    let left: Vec<String> = footprint()
        .states
        .difference(&g.before().states)
        .cloned()
        .collect();
    assert_eq!(left, ["kill-first-0"]);
    let c = common::run(&["--cleanup"]);
    assert_eq!(c.code, 0, "{}", c.stderr);
    assert!(c.stderr.contains("dead run kill-first-0"), "{}", c.stderr);
}

/// Four runs sharing a device, all SIGKILLed: the device frees itself with
/// their mounts; what is left (their state directories and the entry) goes
/// with `after`.
fn kill_all_then(tag: &str, after: impl FnOnce(&Setup)) {
    let g = guard();
    let s = Setup::new(tag);
    let all = names(&format!("{tag}-"), 4);
    let runs: Vec<Running> = all.iter().map(|n| s.start(n, "echo never")).collect();
    s.wait_up(&all);
    assert_eq!(s.loops().len(), 1, "{:?}", s.loops());
    for r in &runs {
        sigkill(r);
    }
    for out in runs.into_iter().map(finish) {
        assert_eq!(out.signal(), Some(libc::SIGKILL), "{}", out.show());
    }
    eventually("the loop device freed itself", || s.loops().is_empty());
    let entry = entries();
    assert_eq!(entry.len(), 1, "the entry stays, held by nobody: {entry:?}");
    let mut left: Vec<String> = footprint()
        .states
        .difference(&g.before().states)
        .cloned()
        .collect();
    left.sort();
    let mut want = all.clone();
    want.push(entry[0].0.clone());
    want.sort();
    assert_eq!(left, want);
    after(&s);
    assert!(entries().is_empty(), "{:?}", entries());
}

#[test]
fn sigkill_of_all_then_the_next_run_leaves_nothing() {
    kill_all_then("kill-all-next", |s| {
        let r = common::run(&[
            "--firmware",
            &s.img.to_string_lossy(),
            "--",
            "/bin/sh",
            "-c",
            "echo next run",
        ]);
        assert_eq!(
            (r.code, r.stdout.as_str()),
            (0, "next run\n"),
            "{}",
            r.stderr
        );
    });
}

#[test]
fn sigkill_of_all_then_cleanup_leaves_nothing() {
    kill_all_then("kill-all-clean", |_| {
        let c = common::run(&["--cleanup"]);
        assert_eq!(c.code, 0, "{}", c.stderr);
        assert!(
            c.stderr
                .contains("removed the entry of a shared lower layer no run uses"),
            "{}",
            c.stderr
        );
        assert_eq!(
            c.stderr
                .matches("removed the leftovers of dead run")
                .count(),
            4
        );
    });
}

/// An image changed on disk while a run uses it: a new run gets a device
/// and an entry of its own, and sees the change; the first run keeps its
/// own device.
#[test]
fn an_image_changed_on_disk_gets_a_fresh_entry() {
    let _g = guard();
    let s = Setup::new("changed");
    let old = s.start("changed-0", "echo done");
    s.wait_up(&["changed-0".to_string()]);
    let before = s.loops();
    assert_eq!(before.len(), 1);
    let marker = s.scratch.path("marker");
    fs::write(&marker, "changed on disk\n").unwrap();
    let st = Command::new("debugfs")
        .arg("-w")
        .arg("-R")
        .arg(format!("write {} /changed", marker.display()))
        .arg(&s.img)
        .output()
        .expect("running debugfs (e2fsprogs)");
    assert!(st.status.success(), "{st:?}");
    let new = common::run(&[
        "--firmware",
        &s.img.to_string_lossy(),
        "-v",
        "--",
        "/bin/cat",
        "/changed",
    ]);
    assert_eq!(
        (new.code, new.stdout.as_str()),
        (0, "changed on disk\n"),
        "{}",
        new.stderr
    );
    assert!(
        new.stderr.contains("(attached for this run)"),
        "{}",
        new.stderr
    );
    assert!(
        !new.stderr.contains(&format!("on {} ", before[0])),
        "the new run used the old device\n{}",
        new.stderr
    );
    // The first run still holds its device and its entry.
    assert_eq!(s.loops(), before);
    assert_eq!(entries().len(), 1, "{:?}", entries());
    s.go();
    assert_done(&finish(old), "done\n");
    eventually("the loop device freed itself", || s.loops().is_empty());
    assert!(entries().is_empty(), "{:?}", entries());
}
