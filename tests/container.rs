//! fwrun inside containers, as a CI job's container or a pod runs it:
//! podman (from Debian, runtime runc), an image built locally with
//! mmdebstrap (tests/container/base-image.sh), the fwrun just built bound
//! into it. Checked from the host: no loop device, mount, state, profile
//! or process left, and podman left no container or image of the test's.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::bg::{self, Out};
use common::{guard, image, repo, Scratch};

/// Where the base image's tarball is kept between runs of the tests.
const CACHE: &str = "/var/cache/fwrun-tests";

/// The image the containers run (built once, then imported when missing).
fn base_image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let out = Command::new("bash")
            .arg(repo().join("tests/container/base-image.sh"))
            .arg(CACHE)
            .stderr(Stdio::inherit())
            .output()
            .expect("running tests/container/base-image.sh");
        assert!(
            out.status.success(),
            "building the container test image failed: run scripts/deps.sh (podman, mmdebstrap)"
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    })
}

fn podman() -> Command {
    let mut c = Command::new("podman");
    // crun refuses this host's hybrid cgroup layout; runc takes it.
    c.args(["--runtime", "runc"]);
    c.stdin(Stdio::null());
    c
}

fn podman_list(args: &[&str]) -> BTreeSet<String> {
    let out = podman().args(args).output().expect("running podman");
    assert!(out.status.success(), "podman {args:?} failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// The containers of one test, removed when it ends; it checks that podman
/// holds no container or image it did not hold before.
struct Containers {
    tag: String,
    made: Vec<String>,
    before: (BTreeSet<String>, BTreeSet<String>),
}

impl Containers {
    fn new(tag: &str) -> Containers {
        base_image();
        Containers {
            tag: format!("fwrun-test-{}-{tag}", std::process::id()),
            made: Vec::new(),
            before: (
                podman_list(&["ps", "-aq", "--no-trunc"]),
                podman_list(&["images", "-q", "--no-trunc"]),
            ),
        }
    }

    /// A `podman run` of `cmd` in a fresh container, with fwrun at
    /// /usr/local/bin/fwrun and the test firmware at /fw. `extra` goes
    /// before the image (mounts, the working directory).
    fn run(&mut self, privileged: bool, extra: &[String], cmd: &[&str]) -> Command {
        let name = format!("{}-{}", self.tag, self.made.len());
        self.made.push(name.clone());
        let mut c = podman();
        c.args(["run", "--rm", "--name", &name, "--network", "none"]);
        // This machine lacks CAP_SYS_RESOURCE: podman's default rlimits
        // cannot be set.
        c.args([
            "--ulimit",
            "nofile=1024:20000",
            "--ulimit",
            "nproc=1000:1000",
        ]);
        if privileged {
            c.arg("--privileged");
        }
        c.arg("-v").arg(format!(
            "{}:/usr/local/bin/fwrun:ro",
            env!("CARGO_BIN_EXE_fwrun")
        ));
        c.arg("-v")
            .arg(format!("{}:/fw:ro", common::firmware().display()));
        c.args(extra).arg(base_image()).args(cmd);
        c
    }

    fn last(&self) -> &str {
        self.made.last().unwrap()
    }
}

impl Drop for Containers {
    fn drop(&mut self) {
        for name in &self.made {
            let _ = podman()
                .args(["rm", "--force", "--ignore", "--time", "0", name])
                .stdout(Stdio::null())
                .status();
        }
        if std::thread::panicking() {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = (
                podman_list(&["ps", "-aq", "--no-trunc"]),
                podman_list(&["images", "-q", "--no-trunc"]),
            );
            if now.0.is_subset(&self.before.0) && now.1.is_subset(&self.before.1) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "podman holds containers or images the test made: {now:?}, before {:?}",
                self.before
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn finish(c: Command) -> Out {
    bg::spawn(c).finish_by(Instant::now() + Duration::from_secs(120))
}

/// The loop devices on the host backed by `file`, told by its device and
/// inode (as the host sees it; the path a device shows is the one the
/// container that attached it used).
fn loops_of(file: &Path) -> BTreeSet<String> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(file).unwrap();
    let dev = m.dev();
    let (major, minor) = (
        ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff),
        (dev & 0xff) | ((dev >> 12) & !0xff),
    );
    let want = format!("{} {major}:{minor}", m.ino());
    let out = Command::new("losetup")
        .args([
            "--list",
            "--noheadings",
            "--raw",
            "-O",
            "NAME,BACK-INO,BACK-MAJ:MIN",
        ])
        .output()
        .expect("running losetup");
    // Off a terminal, losetup writes its padding as \x20.
    String::from_utf8_lossy(&out.stdout)
        .replace("\\x20", " ")
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|w| w.len() == 3 && w[1..].join(" ") == want)
        .map(|w| w[0].to_string())
        .collect()
}

/// The loop device a `fwrun -v` run mounted the image from (its number).
fn loop_used(stderr: &str) -> Option<u32> {
    let line = stderr
        .lines()
        .find(|l| l.contains("mounted the image read-only on "))?;
    let dev = line.split(" on ").nth(1)?.split_whitespace().next()?;
    dev.rsplit("/loop").next()?.parse().ok()
}

#[test]
fn a_privileged_container_runs_the_firmware_and_returns_its_exit_code() {
    let g = guard();
    let mut ct = Containers::new("one");
    let out = finish(ct.run(
        true,
        &[],
        &[
            "fwrun",
            "-v",
            "--firmware",
            "/fw/fw.ext2",
            "--",
            "/test/exit.sh",
            "3",
        ],
    ));
    assert_eq!(out.code(), Some(3), "{}", out.show());
    assert!(loop_used(&out.stderr).is_some(), "{}", out.show());
    drop(ct);
    assert_eq!(g.before().loops, common::footprint().loops);
}

/// The container's /dev has no loop nodes at all: fwrun makes the one it
/// needs in a tmpfs of its own, and /dev stays as it was.
#[test]
fn a_missing_loop_node_is_made_in_a_private_place_and_removed() {
    let _g = guard();
    let mut ct = Containers::new("nodes");
    let script = "rm -f /dev/loop[0-9]*; ls /dev > /tmp/dev.before; \
                  fwrun -v --firmware /fw/fw.ext2 -- /test/exit.sh 3; rc=$?; \
                  ls /dev | diff /tmp/dev.before - >&2 || exit 90; \
                  grep -q fwrun-dev /proc/mounts && exit 91; exit $rc";
    let out = finish(ct.run(true, &[], &["sh", "-c", script]));
    assert_eq!(out.code(), Some(3), "{}", out.show());
    let line = out
        .stderr
        .lines()
        .find(|l| l.contains("mounted the image read-only on "))
        .unwrap_or_else(|| panic!("{}", out.show()));
    assert!(
        line.contains("/run/fwrun/") && line.contains("/mnt/dev/loop"),
        "{line}"
    );
}

/// Eight containers boot the same image at once. Each firmware waits (in
/// a directory bound in from the host) until all eight are up, so all
/// eight hold their loop devices together: each must have its own.
#[test]
fn eight_containers_at_once_each_get_their_own_loop_device() {
    let g = guard();
    let sync = Scratch::new("container-sync");
    let mut ct = Containers::new("eight");
    let wait_all = "touch /sync/up-$(hostname); n=0; \
                    while [ $(ls /sync | grep -c up-) -lt 8 ]; do \
                    n=$((n+1)); [ $n -gt 1200 ] && exit 1; sleep 0.05; done; exit 3";
    let bind = format!("--bind={}:/sync", sync.0.display());
    let runs: Vec<_> = (0..8)
        .map(|_| {
            bg::spawn(ct.run(
                true,
                &[
                    "-v".into(),
                    format!("{}:{}", sync.0.display(), sync.0.display()),
                ],
                &[
                    "fwrun",
                    "-v",
                    "--firmware",
                    "/fw/fw.ext2",
                    &bind,
                    "--",
                    "/bin/sh",
                    "-c",
                    wait_all,
                ],
            ))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(180);
    let outs: Vec<Out> = runs.into_iter().map(|r| r.finish_by(deadline)).collect();
    let mut used = BTreeSet::new();
    for out in &outs {
        assert_eq!(out.code(), Some(3), "{}", out.show());
        used.insert(loop_used(&out.stderr).expect("a loop device named"));
    }
    assert_eq!(used.len(), 8, "two runs shared a loop device: {used:?}");
    drop(ct);
    assert_eq!(g.before().loops, common::footprint().loops);
}

/// A container killed in the middle of a run: its loop device goes with
/// it (autoclear, as its mount namespace dies), before any sweep; a sweep
/// on the host and the next run in a container leave none either.
#[test]
fn a_killed_container_leaves_no_loop_device() {
    let g = guard();
    let fw = image("fw.ext2");
    assert!(loops_of(&fw).is_empty(), "{:?}", loops_of(&fw));
    let mut ct = Containers::new("kill");
    let running = bg::spawn(ct.run(
        true,
        &[],
        &[
            "fwrun",
            "--firmware",
            "/fw/fw.ext2",
            "--",
            "/bin/sh",
            "-c",
            "echo up; exec sleep 600",
        ],
    ));
    let name = ct.last().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    while loops_of(&fw).is_empty() {
        if Instant::now() > deadline {
            let out = running.finish_by(Instant::now());
            panic!("the run never attached the image: {}", out.show());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let held = loops_of(&fw);
    let st = podman()
        .args(["kill", &name])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "podman kill failed");
    let out = running.finish_by(Instant::now() + Duration::from_secs(60));
    assert_eq!(out.code(), Some(137), "{}", out.show());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !loops_of(&fw).is_empty() {
        assert!(
            Instant::now() < deadline,
            "{held:?} still attached after the kill: {:?}",
            loops_of(&fw)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let cleanup = common::run(&["--cleanup"]);
    assert_eq!(cleanup.code, 0, "{}", cleanup.stderr);
    let next = finish(ct.run(
        true,
        &[],
        &[
            "fwrun",
            "--firmware",
            "/fw/fw.ext2",
            "--",
            "/test/exit.sh",
            "3",
        ],
    ));
    assert_eq!(next.code(), Some(3), "{}", next.show());
    drop(ct);
    assert!(loops_of(&fw).is_empty(), "{:?}", loops_of(&fw));
    assert_eq!(g.before().loops, common::footprint().loops);
}

/// Without --privileged: exit 125, one line naming what is missing, and
/// nothing made (not even the state directory).
#[test]
fn an_unprivileged_container_gets_one_line_and_exit_125() {
    let _g = guard();
    let mut ct = Containers::new("unpriv");
    let script = "fwrun --firmware /fw/fw.ext2 -- /test/exit.sh 3; rc=$?; \
                  [ -e /run/fwrun ] && exit 90; exit $rc";
    let out = finish(ct.run(false, &[], &["sh", "-c", script]));
    assert_eq!(out.code(), Some(125), "{}", out.show());
    let lines = out.errors();
    assert_eq!(lines.len(), 1, "{}", out.show());
    assert!(
        lines[0].starts_with("fwrun: ")
            && lines[0].contains("CAP_SYS_ADMIN")
            && lines[0].contains("--privileged"),
        "{}",
        lines[0]
    );
    // With CAP_SYS_ADMIN alone, the loop control device is what lacks.
    let out = finish(ct.run(
        false,
        &["--cap-add".into(), "SYS_ADMIN".into()],
        &["sh", "-c", script],
    ));
    assert_eq!(out.code(), Some(125), "{}", out.show());
    let lines = out.errors();
    assert_eq!(lines.len(), 1, "{}", out.show());
    assert!(lines[0].contains("/dev/loop-control"), "{}", lines[0]);
    // With CAP_SYS_ADMIN but a seccomp policy that refuses mount(2), the
    // probe finds it before anything is made.
    let policy = Scratch::new("container-seccomp");
    fs::write(
        policy.path("no-mount.json"),
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let out = finish(ct.run(
        false,
        &[
            "--cap-add".into(),
            "SYS_ADMIN".into(),
            format!(
                "--security-opt=seccomp={}",
                policy.path("no-mount.json").display()
            ),
        ],
        &["sh", "-c", script],
    ));
    assert_eq!(out.code(), Some(125), "{}", out.show());
    let lines = out.errors();
    assert_eq!(lines.len(), 1, "{}", out.show());
    assert!(
        lines[0].contains("mount(2) is refused") && lines[0].contains("--privileged"),
        "{}",
        lines[0]
    );
}

/// The command the documented CI jobs run (docs/containers.md), run as
/// they run it: in a privileged container, from a directory that holds
/// the image as firmware.ext2. The demo firmware boots and powers off;
/// the report says so.
#[test]
fn the_documented_job_command_runs_in_a_privileged_container() {
    let _g = guard();
    let cmd = documented_command();
    let job = Scratch::new("container-job");
    fs::copy(image("fw.ext2"), job.path("firmware.ext2")).unwrap();
    let mut ct = Containers::new("job");
    let extra = [
        "-v".to_string(),
        format!("{}:/job", job.0.display()),
        "-w".into(),
        "/job".into(),
    ];
    let words: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let out = finish(ct.run(true, &extra, &words));
    assert_eq!(out.code(), Some(0), "{}", out.show());
    assert!(out.stdout.contains("demo firmware: up"), "{}", out.show());
    let report: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(job.path("fwrun-report.json")).unwrap()).unwrap();
    assert_eq!(report["exit_code"], 0, "{report}");
    assert_eq!(report["firmware"]["kind"], "ext2", "{report}");
}

/// The Kubernetes Job's container, run as its pod would run it: privileged,
/// the firmware in its working directory, /run a tmpfs, and a file at
/// /dev/termination-log, which must then hold the run's report.
#[test]
fn the_kubernetes_jobs_container_runs_and_leaves_its_report_as_the_message() {
    let _g = guard();
    let v = snippets();
    let pod = &v["kubernetes_container"];
    let workdir = pod["workingDir"].as_str().unwrap();
    let command: Vec<String> = serde_json::from_value(pod["command"].clone()).unwrap();
    let job = Scratch::new("container-k8s");
    fs::copy(image("fw.ext2"), job.path("firmware.ext2")).unwrap();
    fs::write(job.path("termination-log"), "").unwrap();
    let mut ct = Containers::new("k8s");
    let extra = [
        "-v".to_string(),
        format!("{}:{workdir}", job.0.display()),
        "-w".into(),
        workdir.into(),
        "-v".into(),
        format!(
            "{}:/dev/termination-log",
            job.path("termination-log").display()
        ),
        "--tmpfs".into(),
        "/run".into(),
    ];
    let words: Vec<&str> = command.iter().map(String::as_str).collect();
    let out = finish(ct.run(true, &extra, &words));
    assert_eq!(out.code(), Some(0), "{}", out.show());
    let message = fs::read_to_string(job.path("termination-log")).unwrap();
    assert!(message.len() <= 4096, "{} bytes", message.len());
    let report: serde_json::Value = serde_json::from_str(&message).unwrap();
    assert_eq!(report["exit_code"], 0, "{report}");
}

/// What tests/container/check-snippets.py reads from the docs and the Job.
fn snippets() -> serde_json::Value {
    let out = Command::new("python3")
        .arg(repo().join("tests/container/check-snippets.py"))
        .arg(repo())
        .output()
        .expect("running tests/container/check-snippets.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The fwrun command of the documented GitLab job, checked to be the one
/// every documented job runs.
fn documented_command() -> Vec<String> {
    let v = snippets();
    let mut all = Vec::new();
    for ci in ["gitlab", "actions"] {
        for job in v[ci].as_object().unwrap().values() {
            all.extend(job["commands"].as_array().unwrap().iter().cloned());
        }
    }
    assert!(all.len() >= 3, "{v}");
    assert!(all.iter().all(|c| *c == all[0]), "the jobs differ: {all:?}");
    serde_json::from_value(all[0].clone()).unwrap()
}

/// The recipe in contrib/container builds an image with fwrun and
/// apparmor_parser (from the local base image: no registry is reachable).
#[test]
fn the_containerfile_builds_an_image_with_fwrun_and_apparmor_parser() {
    let _g = guard();
    let ct = Containers::new("build");
    let ctx = Scratch::new("container-build");
    fs::copy(
        repo().join("contrib/container/Containerfile"),
        ctx.path("Containerfile"),
    )
    .unwrap();
    fs::copy(env!("CARGO_BIN_EXE_fwrun"), ctx.path("fwrun")).unwrap();
    let tag = format!("localhost/{}:latest", ct.tag);
    let build = finish({
        let mut c = podman();
        c.args([
            "build",
            "--layers=false",
            "--network",
            "none",
            "--pull=never",
            "-t",
            &tag,
        ])
        .arg(format!("--build-arg=BASE={}", base_image()))
        .arg(&ctx.0);
        c
    });
    let run = finish({
        let mut c = podman();
        c.args(["run", "--rm", "--network", "none"])
            .args([
                "--ulimit",
                "nofile=1024:20000",
                "--ulimit",
                "nproc=1000:1000",
            ])
            .args([&tag, "sh", "-c"])
            .arg("fwrun --version && apparmor_parser --version | head -n1 && pwd");
        c
    });
    let rmi = podman().args(["rmi", "--force", &tag]).output().unwrap();
    assert!(build.code() == Some(0), "{}", build.show());
    assert_eq!(run.code(), Some(0), "{}", run.show());
    assert!(
        run.stdout.contains("fwrun ") && run.stdout.contains("AppArmor parser"),
        "{}",
        run.show()
    );
    assert!(run.stdout.trim_end().ends_with("/work"), "{}", run.show());
    assert!(
        rmi.status.success(),
        "{}",
        String::from_utf8_lossy(&rmi.stderr)
    );
}

/// Two containers share one state directory (/run/fwrun bound from the
/// host, as a job may do by mistake). While A's run lives, B's sweep
/// (`fwrun --cleanup`) and B's own runs leave A's state and loop device
/// alone, and B cannot take A's name: A's lock is seen from B.
#[test]
fn a_sweep_in_one_container_leaves_another_containers_live_run_alone() {
    let g = guard();
    let fw = image("fw.ext2");
    let state = Scratch::new("container-state");
    let sync = Scratch::new("container-hold");
    let mut ct = Containers::new("shared");
    let shared = [
        "-v".to_string(),
        format!("{}:/run/fwrun", state.0.display()),
    ];
    let mut with_sync = shared.to_vec();
    with_sync.extend(["-v".into(), format!("{0}:{0}", sync.0.display())]);
    let bind = format!("--bind={}:/sync", sync.0.display());
    let hold = "touch /sync/up; n=0; while [ ! -e /sync/release ]; do \
                n=$((n+1)); [ $n -gt 1200 ] && exit 1; sleep 0.05; done; exit 3";
    let a = bg::spawn(ct.run(
        true,
        &with_sync,
        &[
            "fwrun",
            "--name",
            "a",
            "--firmware",
            "/fw/fw.ext2",
            &bind,
            "--",
            "/bin/sh",
            "-c",
            hold,
        ],
    ));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !sync.path("up").exists() {
        assert!(Instant::now() < deadline, "run a never came up");
        std::thread::sleep(Duration::from_millis(20));
    }
    let held = loops_of(&fw);
    assert_eq!(held.len(), 1, "{held:?}");
    // Run a's state directory; the entry that names its image's loop
    // device for other runs (/run/fwrun/.lower-KEY) is not counted.
    let a_state = || {
        fs::read_dir(&state.0)
            .unwrap()
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with(".lower-"))
            .count()
    };
    assert_eq!(a_state(), 1);

    let sweep = finish(ct.run(true, &shared, &["fwrun", "--cleanup"]));
    assert_eq!(sweep.code(), Some(0), "{}", sweep.show());
    assert!(
        sweep.stderr.contains("nothing to clean up"),
        "{}",
        sweep.show()
    );
    let other = finish(ct.run(
        true,
        &shared,
        &[
            "fwrun",
            "--firmware",
            "/fw/fw.ext2",
            "--",
            "/test/exit.sh",
            "3",
        ],
    ));
    assert_eq!(other.code(), Some(3), "{}", other.show());
    let same_name = finish(ct.run(
        true,
        &shared,
        &[
            "fwrun",
            "--name",
            "a",
            "--firmware",
            "/fw/fw.ext2",
            "--",
            "/test/exit.sh",
            "3",
        ],
    ));
    assert_eq!(same_name.code(), Some(125), "{}", same_name.show());
    assert!(
        same_name.stderr.contains("'a' is already running"),
        "{}",
        same_name.show()
    );
    assert_eq!(loops_of(&fw), held, "run a's loop device changed");
    assert_eq!(a_state(), 1, "run a's state was touched");

    fs::write(sync.path("release"), "").unwrap();
    let out = a.finish_by(Instant::now() + Duration::from_secs(60));
    assert_eq!(out.code(), Some(3), "{}", out.show());
    assert_eq!(a_state(), 0, "run a left its state");
    let left: Vec<_> = fs::read_dir(&state.0).unwrap().flatten().collect();
    assert!(left.is_empty(), "left in the shared /run/fwrun: {left:?}");
    drop(ct);
    assert_eq!(g.before().loops, common::footprint().loops);
}

/// A container whose /run is read-only: one line saying what to mount,
/// exit 125, nothing mounted or attached.
#[test]
fn a_read_only_run_gets_one_line_saying_what_to_mount() {
    let g = guard();
    let mut ct = Containers::new("readonly");
    let out = finish(ct.run(
        true,
        &["--read-only".into(), "--read-only-tmpfs=false".into()],
        &[
            "fwrun",
            "--firmware",
            "/fw/fw.ext2",
            "--",
            "/test/exit.sh",
            "3",
        ],
    ));
    assert_eq!(out.code(), Some(125), "{}", out.show());
    let lines = out.errors();
    assert_eq!(lines.len(), 1, "{}", out.show());
    assert!(
        lines[0].contains("/run/fwrun") && lines[0].contains("--tmpfs /run"),
        "{}",
        lines[0]
    );
    drop(ct);
    assert_eq!(g.before().loops, common::footprint().loops);
}
