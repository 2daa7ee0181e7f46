//! The state root in memory, as root. Where /run is on a disk file system
//! (as on the CI machines), runs keep /run/fwrun in a tmpfs of fwrun's own,
//! mounted while any run lives and unmounted by the last one out; a
//! SIGKILLed run's leftovers keep it until `--cleanup` (or the next run)
//! sweeps them. Where /run is a tmpfs already, nothing is mounted.
//!
//! ```text
//! cargo test --test state_root -- --test-threads=1
//! ```
//!
//! Every test holds `common::guard()`: afterwards no mount (the tmpfs
//! included), loop device, /run/fwrun entry or fwrun process is left.

mod common;

use std::fs;
use std::time::{Duration, Instant};

use common::bg::Running;
use common::gate::Gate;
use common::*;

const STATE_ROOT: &str = "/run/fwrun";

/// Whether the host's /run/fwrun (its parent's file system, when nothing
/// of fwrun's is mounted) lives on a disk: then runs mount their own tmpfs.
fn run_on_disk() -> bool {
    let fs = nix::sys::statfs::statfs("/run").unwrap();
    // tmpfs and ramfs.
    !matches!(fs.filesystem_type().0 as i64, 0x0102_1994 | 0x8584_58f6)
}

/// The source of the mount on top of /run/fwrun in the tests' namespace,
/// if anything is mounted there.
fn mounted_at_root() -> Option<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .rev()
        .filter(|l| l.split(' ').nth(4) == Some(STATE_ROOT))
        .find_map(|l| {
            let rest = l.split_once(" - ")?.1;
            let mut f = rest.split(' ');
            Some(format!("{} {}", f.next()?, f.next()?))
        })
}

/// What a live run must see at /run/fwrun from the host. Where /run is a
/// tmpfs already, the tmpfs of fwrun's own is not tested here: that is said
/// on stderr rather than passed over in silence (CI's hosts have /run on a
/// disk).
fn expected_while_running() -> Option<String> {
    if run_on_disk() {
        return Some("tmpfs fwrun-state".to_string());
    }
    eprintln!(
        "skipped: /run is a tmpfs on this host, so runs mount no state tmpfs of \
         their own; only checking that nothing is mounted on {STATE_ROOT}"
    );
    None
}

/// Runs of the ext2 test image named `name`, gated until the file `go`.
fn start(gate: &Gate, name: &str, go: &str) -> Running {
    gate.start(&image("fw.ext2"), name, &["-q"], go, "")
}

fn finish_ok(run: Running) {
    let out = run.finish_by(Instant::now() + Duration::from_secs(30));
    assert_eq!(out.code(), Some(0), "{}", out.show());
}

/// Two overlapping runs: the state root is in memory while either lives;
/// the first out leaves it to the second, which unmounts it.
#[test]
fn the_last_run_out_unmounts_the_state_tmpfs() {
    let _g = guard();
    assert_eq!(
        mounted_at_root(),
        None,
        "something is mounted on /run/fwrun"
    );
    let scratch = Scratch::new("state-root");
    let gate = Gate::new(&scratch);
    let a = start(&gate, "state-a", "go-a");
    gate.wait_up(&["state-a"]);
    assert_eq!(mounted_at_root(), expected_while_running());
    let b = start(&gate, "state-b", "go-b");
    gate.wait_up(&["state-b"]);
    let names: Vec<String> = fs::read_dir(STATE_ROOT)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n == "state-a") && names.iter().any(|n| n == "state-b"),
        "{names:?}"
    );
    gate.go("go-a");
    finish_ok(a);
    assert_eq!(
        mounted_at_root(),
        expected_while_running(),
        "the first run out must leave the tmpfs to the run still using it"
    );
    assert!(fs::metadata(format!("{STATE_ROOT}/state-b")).is_ok());
    gate.go("go-b");
    finish_ok(b);
    assert_eq!(mounted_at_root(), None, "the last run out unmounts it");
}

/// A SIGKILLed run leaves its state, and with it the tmpfs; `--cleanup`
/// sweeps the state and unmounts the tmpfs, and says so.
#[test]
fn sigkill_keeps_the_state_tmpfs_until_cleanup() {
    let _g = guard();
    let scratch = Scratch::new("state-kill");
    let gate = Gate::new(&scratch);
    let run = start(&gate, "state-killed", "never");
    gate.wait_up(&["state-killed"]);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(run.pid()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let out = run.finish_by(Instant::now() + Duration::from_secs(20));
    assert_eq!(out.signal(), Some(libc::SIGKILL), "{}", out.show());
    assert_eq!(mounted_at_root(), expected_while_running());
    assert!(fs::metadata(format!("{STATE_ROOT}/state-killed")).is_ok());
    let c = common::run(&["-v", "--cleanup"]);
    assert_eq!(c.code, 0, "{}", c.stderr);
    assert!(
        c.stderr
            .contains("removed the leftovers of dead run state-killed"),
        "{}",
        c.stderr
    );
    assert_eq!(
        c.stderr.contains("unmounted fwrun's own tmpfs"),
        run_on_disk(),
        "{}",
        c.stderr
    );
    assert_eq!(mounted_at_root(), None);
}

/// Runs that start while others end, many times over: none fails to find
/// or keep its state (a run that took hold of a tmpfs just unmounted starts
/// again), and nothing stays mounted after the last.
#[test]
fn runs_starting_as_others_end_all_keep_their_state() {
    let _g = guard();
    for round in 0..6 {
        let runs: Vec<(usize, Running)> = (0..8)
            .map(|i| {
                let mut c = fwrun();
                c.arg("--firmware")
                    .arg(image("fw.ext2"))
                    .args(["-q", "--", "/bin/true"]);
                (i, common::bg::spawn(c))
            })
            .collect();
        // Each within the common deadline (past it, killed and failed);
        // the runs not yet waited for are killed when `runs` is dropped.
        let deadline = Instant::now() + common::bg::DEADLINE;
        for (i, run) in runs {
            let out = run.finish_by(deadline);
            assert!(
                out.status.success(),
                "round {round}, run {i}: {}",
                out.show()
            );
        }
    }
    assert_eq!(mounted_at_root(), None, "the last run out unmounts it");
}
