//! Load, as root: many runs of one image in a row and side by side leave the
//! machine as they found it, and fwrun's memory stays flat within one long
//! run.
//!
//! ```text
//! cargo test --test load -- --test-threads=1
//! ```
//!
//! Every test holds `common::guard()` (one test at a time; afterwards no
//! mount, loop device, /run/fwrun entry, pid namespace or fwrun process
//! left). Each also checks that the counts of mounts and attached loop
//! devices are back where they were, and that the image is unchanged.

mod common;

use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// How long one run of `/bin/true` may take before the test fails.
const RUN_DEADLINE: Duration = Duration::from_secs(30);
/// The advisory line of a host without AppArmor (not an error).
const NO_APPARMOR: &str = "fwrun: warning: no AppArmor confinement";

/// Mounts (in the test's mount namespace, the host's) and attached loop
/// devices.
fn counts() -> (usize, usize) {
    let mounts = fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count();
    let loops = fs::read_dir("/sys/block")
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("loop/backing_file").exists())
        .count();
    (mounts, loops)
}

/// Wait (loop devices free themselves asynchronously) until the counts are
/// back to `before`.
fn assert_counts_back(before: (usize, usize)) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = counts();
        if now == before {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "(mounts, loop devices) were {before:?}, are {now:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A finished run: how it ended, its peak memory, what it said.
struct Done {
    status: i32,
    max_rss_kb: i64,
    stderr: String,
}

impl Done {
    fn exited(&self) -> Option<i32> {
        libc::WIFEXITED(self.status).then(|| libc::WEXITSTATUS(self.status))
    }

    /// stderr's lines, the AppArmor advisory aside.
    fn errors(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| !l.starts_with(NO_APPARMOR))
            .collect()
    }

    #[track_caller]
    fn assert_ok(&self, what: &str) {
        assert!(
            self.exited() == Some(0) && self.errors().is_empty(),
            "{what}: wait status {:#x}, stderr: {}",
            self.status,
            self.stderr
        );
    }
}

/// `fwrun --firmware IMG -- /bin/true`, stdout discarded, stderr kept.
fn spawn(img: &Path) -> Child {
    fwrun()
        .arg("--firmware")
        .arg(img)
        .args(["--", "/bin/true"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting fwrun")
}

/// Reap `child` if it has ended, with its resource usage (wait4): its peak
/// resident set is fwrun's own (its init, a short /bin/true, is smaller).
fn try_reap(child: &mut Child) -> Option<Done> {
    let mut status = 0;
    // SAFETY: zeroed rusage is a valid out-parameter.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child, not reaped by anything else.
    let r = unsafe { libc::wait4(child.id() as i32, &mut status, libc::WNOHANG, &mut ru) };
    assert!(r >= 0, "wait4: {}", std::io::Error::last_os_error());
    if r == 0 {
        return None;
    }
    let mut stderr = String::new();
    // The run has ended; the little it wrote is in the pipe.
    let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
    Some(Done {
        status,
        max_rss_kb: ru.ru_maxrss,
        stderr,
    })
}

/// Wait for `child` (polling, with a deadline).
fn reap(mut child: Child) -> Done {
    let deadline = Instant::now() + RUN_DEADLINE;
    loop {
        if let Some(d) = try_reap(&mut child) {
            return d;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("a run did not end within {RUN_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// 200 runs in a row on one image: all exit 0, the machine is back where it
/// was, and no run's peak memory is much above the first ones' (a cost per
/// run that grew; a leak within one run is `memory_stays_flat_within_one_long_run`'s).
#[test]
fn two_hundred_runs_in_a_row() {
    let _g = guard();
    let img = image("fw.ext2");
    let sum = sha256(&img);
    let before = counts();
    let t = Instant::now();
    let rss: Vec<i64> = (0..200)
        .map(|i| {
            let d = reap(spawn(&img));
            d.assert_ok(&format!("run {i}"));
            d.max_rss_kb
        })
        .collect();
    let took = t.elapsed();
    let first = *rss[..50].iter().max().unwrap();
    let last = *rss[150..].iter().max().unwrap();
    println!(
        "200 runs in {took:.1?} ({:.1?} each); peak RSS first 50: {first} KiB, last 50: {last} KiB",
        took / 200
    );
    assert!(
        last * 10 <= first * 11,
        "fwrun's peak memory grew: {first} KiB in the first 50 runs, {last} KiB in the last 50"
    );
    assert_counts_back(before);
    assert_eq!(sha256(&img), sum, "the image changed");
}

/// 16 runs at a time, 5 rounds: all succeed, the machine is back where it
/// was after each round.
#[test]
fn sixteen_at_a_time_five_rounds() {
    let _g = guard();
    let img = image("fw.ext2");
    let sum = sha256(&img);
    let before = counts();
    for round in 0..5 {
        let children: Vec<Child> = (0..16).map(|_| spawn(&img)).collect();
        for (i, c) in children.into_iter().enumerate() {
            reap(c).assert_ok(&format!("round {round}, run {i}"));
        }
        assert_counts_back(before);
    }
    assert_eq!(sha256(&img), sum, "the image changed");
}

/// 96 runs with 16 always in flight, a new one starting as soon as one
/// ends: runs start (and sweep /run/fwrun) while others tear down, on all
/// three image kinds at once.
#[test]
fn sixteen_in_flight_rolling() {
    let _g = guard();
    let imgs = [image("fw.ext2"), image("fw.ext4"), image("fw.sqfs")];
    let sums: Vec<String> = imgs.iter().map(|i| sha256(i)).collect();
    let before = counts();
    let total = 96;
    let mut started = 0;
    let mut done = 0;
    let mut flying: Vec<(usize, Child)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while done < total {
        while flying.len() < 16 && started < total {
            flying.push((started, spawn(&imgs[started % imgs.len()])));
            started += 1;
        }
        let mut any = false;
        let mut i = 0;
        while i < flying.len() {
            if let Some(d) = try_reap(&mut flying[i].1) {
                d.assert_ok(&format!(
                    "run {} ({})",
                    flying[i].0,
                    imgs[flying[i].0 % 3].display()
                ));
                flying.swap_remove(i);
                done += 1;
                any = true;
            } else {
                i += 1;
            }
        }
        if !any {
            assert!(Instant::now() < deadline, "the runs did not end in time");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    assert_counts_back(before);
    for (img, sum) in imgs.iter().zip(&sums) {
        assert_eq!(&sha256(img), sum, "{} changed", img.display());
    }
}

/// fwrun's peak resident set so far (VmHWM), in KiB.
fn peak_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

/// One run that boots 200 times (--on-reboot restart), each boot writing
/// 2000 lines to its pty console (which fwrun relays) and making 100 calls
/// fwrun refuses: fwrun's peak memory once the last boot is up is at most
/// 10 % (and 256 KiB) above what it was at boot 20. A run keeps nothing per
/// boot, per byte relayed or per refusal.
#[test]
fn memory_stays_flat_within_one_long_run() {
    let _g = guard();
    const CYCLES: usize = 200;
    const EARLY: usize = 20;
    let img = image("fw.ext2");
    let mut child = fwrun()
        .arg("--firmware")
        .arg(&img)
        .args(["--console", "pty", "--on-reboot", "restart"])
        .args([
            "--env",
            &format!("CYCLES={CYCLES}"),
            "--",
            "/test/cycles.sh",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting fwrun");
    // The console's lines, read as they come; only the boots' own lines
    // are kept.
    let out = child.stdout.take().unwrap();
    let (tx, marks) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let line = line.trim_end_matches('\r');
            if (line.starts_with("cycle ") || line == "done") && tx.send(line.to_string()).is_err()
            {
                break;
            }
        }
    });
    let err = common::bg::slurp(child.stderr.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut early = None;
    let mut boots = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(mark) = marks.recv_timeout(left) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("only {boots} of {CYCLES} boots within the deadline");
        };
        if mark == "done" {
            break;
        }
        boots += 1;
        assert_eq!(mark, format!("cycle {boots}"), "a boot went missing");
        if boots == EARLY {
            early = Some(peak_kib(child.id()));
        }
    }
    let early = early.expect("boot 20 was seen");
    let late = peak_kib(child.id());
    // SAFETY: plain syscall on our own child, not yet reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = common::bg::wait_until(&mut child, Instant::now() + RUN_DEADLINE, "the long run");
    let stderr = common::bg::rest(&err, Instant::now() + RUN_DEADLINE, "the long run");
    println!("peak RSS at boot {EARLY}: {early} KiB; after boot {CYCLES}: {late} KiB");
    assert_eq!(status.code(), Some(143), "{stderr}");
    assert!(
        stderr.contains(&format!("refused {} calls of the firmware", CYCLES * 100)),
        "{stderr}"
    );
    assert!(
        late * 10 <= early * 11 && late <= early + 256,
        "fwrun's memory grew within one run: {early} KiB at boot {EARLY}, {late} KiB after boot {CYCLES}"
    );
}
