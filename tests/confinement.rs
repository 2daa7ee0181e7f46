//! The kernel-enforced layers, on this host (no AppArmor): a device's rcS
//! runs as written and its accidents are refused: capabilities, the seccomp
//! filter and the mount interception hold with `--apparmor off`. Every probe
//! writes back what the host has, so a missing protection changes nothing.

mod common;

use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::report::{assert_accidents_refused, refused};
use common::*;
use serde_json::Value;

fn fw() -> String {
    image("fw.ext2").to_str().unwrap().to_string()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(path).expect("the report was written")).unwrap()
}

fn assert_all_ok(r: &Run) {
    let oks = r.stdout.lines().filter(|l| l.starts_with("ok - ")).count();
    assert!(
        oks > 0 && !r.stdout.contains("not ok"),
        "exit {}\n{}\n{}",
        r.code,
        r.stdout,
        r.stderr
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
}

/// assert_all_ok, and every check of the firmware's `script` ran.
fn assert_every_check(r: &Run, script: &str) {
    assert_all_ok(r);
    let files = repo().join("tests/firmware/files");
    let want = common::plan::planned(&files.join(script), &files);
    let oks = r.stdout.lines().filter(|l| l.starts_with("ok - ")).count();
    assert_eq!(oks, want, "{script}: not every check ran\n{}", r.stdout);
}

/// CLOCK_REALTIME minus CLOCK_MONOTONIC, in seconds: moves only when
/// someone sets the clock.
fn clock_offset() -> f64 {
    let read = |clock| {
        let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
        // SAFETY: clock_gettime into our struct.
        unsafe { libc::clock_gettime(clock, &mut ts) };
        ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
    };
    read(libc::CLOCK_REALTIME) - read(libc::CLOCK_MONOTONIC)
}

#[test]
fn a_device_rcs_runs_unchanged_and_the_constraints_still_hold() {
    let _g = guard();
    let s = Scratch::new("confine");
    let rep = s.path("r.json");
    let env = check_env();
    let fw = fw();
    let mut args = vec!["--firmware", &fw, "--apparmor", "off"];
    args.extend(["--report", rep.to_str().unwrap()]);
    args.extend(env.iter().map(String::as_str));
    args.extend(["--", "/test/device-rcs.sh"]);
    let r = run(&args);
    assert_every_check(&r, "device-rcs.sh");
    let report = read_json(&rep);
    let got = refused(&report);
    for want in ["mount /sys", "mount /proc/sys", "umount2 /proc/sys"] {
        assert!(got.iter().any(|g| g == want), "{want} not in {got:?}");
    }
    // The first group succeeded without a refusal.
    assert!(
        !got.iter()
            .any(|g| g.starts_with("mount proc") || g.contains("devtmpfs")),
        "{got:?}"
    );
    assert_eq!(report["confinement"]["seccomp"], true);
    let dropped = report["confinement"]["dropped_capabilities"].to_string();
    for cap in ["sys_module", "sys_time", "sys_rawio", "syslog", "mknod"] {
        assert!(dropped.contains(cap), "{cap} not dropped: {dropped}");
    }
}

#[test]
fn a_firmware_s_accidents_are_refused_and_the_host_is_unchanged() {
    let _g = guard();
    let s = Scratch::new("confine");
    let rep = s.path("r.json");
    let image = image("fw.ext2");
    let sum = sha256(&image);
    let cad = Setting::ctrl_alt_del();
    let level = Setting::console_level();
    let offset = clock_offset();
    let r = run(&[
        "--firmware",
        image.to_str().unwrap(),
        "--apparmor",
        "off",
        "--report",
        rep.to_str().unwrap(),
        "--env",
        &format!("CAD={}", cad.probe),
        "--env",
        &format!("LEVEL={}", level.probe),
        "--env",
        &format!("IMAGE={}", image.display()),
        "--",
        "/test/accidents.sh",
    ]);
    // Both probes wrote a value other than the host's (ctrl-alt-del only
    // where the host's is not 0): a write that went through shows here.
    let (cad_kept, level_kept) = (cad.unchanged(), level.unchanged());
    assert!(
        cad_kept,
        "the host's ctrl-alt-del changed (put back)\n{}",
        r.stdout
    );
    assert!(
        level_kept,
        "the host's console log level changed (put back)\n{}",
        r.stdout
    );
    assert_every_check(&r, "accidents.sh");
    assert!(
        (clock_offset() - offset).abs() < 0.5,
        "the host's clock moved"
    );
    assert_eq!(sha256(&image), sum, "the image changed");
    assert_accidents_refused(&read_json(&rep));
}

#[test]
fn the_new_mount_api_falls_back_to_mount_2_which_is_intercepted() {
    let _g = guard();
    let r = run(&[
        "--firmware",
        &fw(),
        "--apparmor",
        "off",
        "--",
        "/test/newmount",
    ]);
    assert_all_ok(&r);
    // This machine's util-linux mount (one before 2.39 calls mount(2)
    // directly), in a copy of the firmware.
    let s = Scratch::new("confine");
    let root = s.path("root");
    let cp = std::process::Command::new("cp")
        .args([
            "-a",
            firmware().join("root").to_str().unwrap(),
            root.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(cp.success());
    copy_with_libraries("/usr/bin/mount", &root);
    let r = run(&[
        "--firmware",
        root.to_str().unwrap(),
        "--apparmor",
        "off",
        "--",
        "/usr/bin/mount",
        "-t",
        "proc",
        "proc",
        "/proc",
    ]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(!r.stderr.contains("refused"), "{}", r.stderr);

    // util-linux 2.41's mount, from Debian trixie with its own libc and
    // libraries: libmount tries the new API first, then mount(2).
    let root = s.path("trixie");
    copy_tree(&firmware().join("root"), &root);
    copy_tree(&util_linux_trixie(), &root);
    trixie_mount_succeeds_quietly(&root, &s.path("r.json"));
    trixie_mount_tried_the_new_api_first(&root);
    trixie_mount_uses_the_new_api_without_the_filter(&root);
}

/// `mount -t proc proc /proc` as the init: exit 0, nothing on stderr, no
/// refusal.
fn trixie_mount_succeeds_quietly(root: &Path, rep: &Path) {
    let r = run(&[
        "--firmware",
        root.to_str().unwrap(),
        "--apparmor",
        "off",
        "--report",
        rep.to_str().unwrap(),
        "--",
        "/usr/bin/mount",
        "-t",
        "proc",
        "proc",
        "/proc",
    ]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.stderr, "", "mount or fwrun printed on stderr");
    assert_eq!(refused(&read_json(rep)), Vec::<String>::new());
}

/// The same with libmount's debug lines: it is util-linux 2.39 or later,
/// fsopen met ENOSYS, mount(2) followed, and no proc was mounted over
/// fwrun's /proc.
fn trixie_mount_tried_the_new_api_first(root: &Path) {
    let count = "awk '$5 == \"/proc\"' /proc/self/mountinfo | wc -l";
    let script = format!(
        "/usr/bin/mount --version; echo before=$({count}); \
         LIBMOUNT_DEBUG=all /usr/bin/mount -t proc proc /proc; echo rc=$?; echo after=$({count})"
    );
    let r = run(&[
        "--firmware",
        root.to_str().unwrap(),
        "--apparmor",
        "off",
        "--",
        "/bin/sh",
        "-c",
        &script,
    ]);
    let line = |prefix: &str| {
        r.stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line:\n{}\n{}", r.stdout, r.stderr))
            .to_string()
    };
    let version = line("mount from util-linux ");
    let release: Vec<u32> = version
        .split(|c: char| !c.is_ascii_digit())
        .take(2)
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(
        release >= vec![2, 39],
        "util-linux {version} does not use the new mount API"
    );
    assert_eq!(line("rc="), "0", "{}", r.stderr);
    assert_eq!(
        line("before="),
        line("after="),
        "a proc was mounted over fwrun's /proc"
    );
    for want in [
        "syscall 'fsopen' [failed: Function not implemented]",
        "failed to init new API",
        "mount(2) [source=proc, target=/proc, type=proc",
    ] {
        assert!(r.stderr.contains(want), "no {want:?} in:\n{}", r.stderr);
    }
    assert!(!r.stderr.contains("syscall 'fsmount'"), "{}", r.stderr);
}

/// Without the filter the same binary mounts through the new API (at
/// /mnt/p, in the firmware's own mount namespace): the ENOSYS above was
/// fwrun's, not this kernel's. Without the user namespace too: in one, the
/// kernel refuses a proc beside fwrun's masked one whatever the API.
fn trixie_mount_uses_the_new_api_without_the_filter(root: &Path) {
    let r = run(&[
        "--firmware",
        root.to_str().unwrap(),
        "--apparmor",
        "off",
        "--seccomp",
        "off",
        "--userns",
        "off",
        "--env",
        "LIBMOUNT_DEBUG=all",
        "--",
        "/bin/sh",
        "-c",
        "mkdir -p /mnt/p && /usr/bin/mount -t proc proc /mnt/p && echo mounted",
    ]);
    assert!(r.stdout.contains("mounted"), "{}\n{}", r.stdout, r.stderr);
    for want in [
        "syscall 'fsopen' [success]",
        "syscall 'fsmount' [success]",
        "syscall 'move_mount' [success]",
    ] {
        assert!(r.stderr.contains(want), "no {want:?} in:\n{}", r.stderr);
    }
    assert!(!r.stderr.contains("mount(2) ["), "{}", r.stderr);
}

/// Debian trixie's mount and everything it loads, as a tree to lay over a
/// firmware root, fetched once by tests/firmware/util-linux-trixie.sh into
/// /var/cache/fwrun-tests.
fn util_linux_trixie() -> std::path::PathBuf {
    let out = repo().join("target/fwtest-util-linux");
    let got = std::process::Command::new("bash")
        .arg(repo().join("tests/firmware/util-linux-trixie.sh"))
        .arg("/var/cache/fwrun-tests")
        .arg(&out)
        .output()
        .expect("running tests/firmware/util-linux-trixie.sh");
    assert!(
        got.status.success(),
        "fetching util-linux's mount from Debian trixie failed; this test needs Debian's \
         archive once, then its cache in /var/cache/fwrun-tests:\n{}",
        String::from_utf8_lossy(&got.stderr)
    );
    out.join("tree")
}

/// Copy `from`'s contents into `to`, replacing files rather than writing
/// through links (the firmware's absolute links point into the host).
fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg("--remove-destination")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .status()
        .unwrap();
    assert!(
        st.success(),
        "copying {} to {}",
        from.display(),
        to.display()
    );
}

/// Copy a host program and the libraries `ldd` names into `root`.
fn copy_with_libraries(program: &str, root: &Path) {
    let out = std::process::Command::new("ldd")
        .arg(program)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut files = vec![program.to_string()];
    files.extend(
        text.split_whitespace()
            .filter(|w| w.starts_with('/'))
            .map(str::to_string),
    );
    for f in files {
        let dst = root.join(f.trim_start_matches('/'));
        fs::create_dir_all(dst.parent().unwrap()).unwrap();
        let _ = fs::remove_file(&dst);
        fs::copy(&f, &dst).unwrap_or_else(|e| panic!("copying {f}: {e}"));
    }
}

#[test]
fn busybox_shutdown_umount_a_r_leaves_the_host_writable() {
    let _g = guard();
    let s = Scratch::new("confine");
    let host_dir = s.path("hostdir");
    fs::create_dir(&host_dir).unwrap();
    // The bind's source is a file system of its own, as /dev is.
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "fwrun-test-hostdir"])
        .arg(&host_dir)
        .status()
        .unwrap();
    assert!(st.success());
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _u = Unmount(&host_dir);
    let r = run(&[
        "--firmware",
        &fw(),
        "--apparmor",
        "off",
        "--bind",
        &format!("{}:/data", host_dir.display()),
        "--",
        "/bin/sh",
        "-c",
        "mount -t devtmpfs devtmpfs /dev; mount -o remount,ro /data; mount -o remount,ro /dev/null; \
         cd /data && umount -a -r; echo data=$(grep ' /data ' /proc/self/mountinfo | cut -d' ' -f6)",
    ]);
    let dev_probe = Path::new("/dev/.fwrun-test-probe");
    let dev_ok = fs::write(dev_probe, b"x").is_ok();
    let _ = fs::remove_file(dev_probe);
    if !dev_ok {
        // Put the host back before failing.
        let _ = std::process::Command::new("mount")
            .args(["-o", "remount,rw", "/dev"])
            .status();
    }
    assert!(dev_ok, "the host's /dev was left read-only\n{}", r.stderr);
    assert!(
        fs::write(host_dir.join("after"), b"x").is_ok(),
        "the bind's source was left read-only\n{}",
        r.stderr
    );
    // Inside, the bind alone became read-only.
    assert!(r.stdout.contains("data=ro"), "{}\n{}", r.stdout, r.stderr);
}

#[test]
fn refusals_are_printed_as_they_happen_with_follow_denials() {
    let _g = guard();
    let s = Scratch::new("confine");
    let err = s.path("stderr");
    let mut child = fwrun()
        .args([
            "--firmware",
            &fw(),
            "--apparmor",
            "off",
            "--follow-denials",
            "--",
            "/bin/sh",
            "-c",
            "umount /proc/sys 2>/dev/null; exec sleep 60",
        ])
        .stdout(Stdio::null())
        .stderr(fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let line = "fwrun: refused umount2 /proc/sys: ";
    while !fs::read_to_string(&err).unwrap_or_default().contains(line) {
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "no live refusal line: {}",
                fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "printed only at the end"
    );
    // SAFETY: plain syscall on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "fwrun did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn seccomp_off_and_cap_add_are_honoured() {
    let _g = guard();
    // With --seccomp off (debugging only) the mount is no longer
    // intercepted: a second procfs elsewhere succeeds (inside the
    // firmware's own mount namespace, so the host is untouched) when the
    // kernel does not refuse it either, that is without a user namespace
    // of the firmware's own (where a proc beside fwrun's masked one is too
    // revealing).
    let script = "mkdir -p /mnt/p && mount -t proc proc /mnt/p && echo mounted; grep CapBnd /proc/self/status";
    let r = run(&[
        "--firmware",
        &fw(),
        "--apparmor",
        "off",
        "--seccomp",
        "off",
        "--userns",
        "off",
        "--",
        "/bin/sh",
        "-c",
        script,
    ]);
    assert!(r.stdout.contains("mounted"), "{}\n{}", r.stdout, r.stderr);
    // With the filter, that proc is fwrun's constrained /proc again (a
    // copy with its masks and its read-only /proc/sys), not a new one.
    let copy =
        format!("{script}; awk '$5 ~ \"^/(proc|mnt/p)/\" {{ print $5, $6 }}' /proc/self/mountinfo");
    let r = run(&[
        "--firmware",
        &fw(),
        "--apparmor",
        "off",
        "--",
        "/bin/sh",
        "-c",
        &copy,
    ]);
    assert!(r.stdout.contains("mounted\n"), "{}\n{}", r.stdout, r.stderr);
    let under = |top: &str| -> std::collections::BTreeSet<String> {
        r.stdout
            .lines()
            .filter_map(|l| l.strip_prefix(top))
            .map(str::to_string)
            .collect()
    };
    let (masks, copied) = (under("/proc/"), under("/mnt/p/"));
    assert!(
        masks.iter().any(|m| m.starts_with("sys ro,")),
        "{}",
        r.stdout
    );
    assert_eq!(copied, masks, "{}", r.stdout);
    let bounding = |out: &str| {
        let hex = out
            .lines()
            .find_map(|l| l.strip_prefix("CapBnd:"))
            .unwrap()
            .trim()
            .to_string();
        u64::from_str_radix(&hex, 16).unwrap()
    };
    let default = bounding(&r.stdout);
    assert_eq!(default & (1 << 25), 0, "sys_time is dropped");
    let r = run(&[
        "--firmware",
        &fw(),
        "--apparmor",
        "off",
        "--cap-add",
        "sys_time",
        "--cap-drop",
        "NET_RAW",
        "--",
        "/bin/sh",
        "-c",
        "grep CapBnd /proc/self/status",
    ]);
    let adjusted = bounding(&r.stdout);
    assert_ne!(adjusted & (1 << 25), 0, "--cap-add sys_time");
    assert_eq!(adjusted & (1 << 13), 0, "--cap-drop NET_RAW");
    let r = run(&["--firmware", &fw(), "--cap-add", "time", "--", "/bin/true"]);
    assert_eq!(r.code, 125);
    assert_one_line_naming(&r, "'time' is not a capability");
}

#[test]
fn under_as_pid2_fwrun_s_pid_1_is_confined_like_the_init() {
    let _g = guard();
    let r = run(&[
        "--firmware",
        &fw(),
        "--apparmor",
        "off",
        "--as-pid2",
        "--",
        "/bin/sh",
        "-c",
        "for p in 1 $$; do echo \"$p $(grep -E '^(Seccomp|CapBnd):' /proc/$p/status | tr -s '\\t\\n' '  ')\"; done",
    ]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", r.stdout);
    for l in &lines {
        // Seccomp 2: a filter is installed.
        assert!(l.contains("Seccomp: 2"), "{l}");
    }
    let bounding = |l: &str| {
        let hex = l
            .split("CapBnd: ")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap();
        u64::from_str_radix(hex, 16).unwrap()
    };
    assert_eq!(bounding(lines[0]), bounding(lines[1]), "{}", r.stdout);
    assert_eq!(bounding(lines[0]) & (1 << 16), 0, "pid 1 keeps sys_module");
}

/// What a firmware tries in a real run that fwrun promises to refuse: the
/// kernel's own file systems mounted anywhere, fwrun's mounts moved away
/// (MS_MOVE), a `:ro` bind remounted read-write, and the system calls
/// seccomp hands to fwrun (tests/firmware/calls.c, each with arguments that
/// change nothing if it went through). Each is answered EPERM and listed
/// in the report with its reason; the bind's host file is unchanged.
#[test]
fn refused_mounts_and_calls_in_a_real_run() {
    let _g = guard();
    let s = Scratch::new("refused");
    let rep = s.path("r.json");
    let data = s.path("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("file"), "host\n").unwrap();
    const KERNEL_FS: [&str; 7] = [
        "binfmt_misc",
        "securityfs",
        "tracefs",
        "configfs",
        "bpf",
        "efivarfs",
        "pstore",
    ];
    const MOVED: [&str; 4] = ["/proc", "/sys", "/dev", "/data"];
    const CALLS: [&str; 9] = [
        "open_by_handle_at",
        "kexec_load",
        "bpf",
        "perf_event_open",
        "keyctl",
        "add_key",
        "acct",
        "iopl",
        "ioperm",
    ];
    let script = format!(
        r#"
for fs in {fss}; do
  mkdir -p /mnt/$fs
  if err=$(mount -t $fs none /mnt/$fs 2>&1); then echo "mount $fs: allowed"; else echo "mount $fs: $err"; fi
done
mkdir -p /mnt/moved
for m in {moved}; do
  if err=$(mount --move $m /mnt/moved 2>&1); then echo "move $m: allowed"; else echo "move $m: $err"; fi
done
if err=$(/test/remount /data 2>&1); then echo "remount /data: allowed"; else echo "remount /data: $err"; fi
if err=$(sh -c 'echo x > /data/file' 2>&1); then echo "write /data: allowed"; else echo "write /data: $err"; fi
/test/calls
"#,
        fss = KERNEL_FS.join(" "),
        moved = MOVED.join(" ")
    );
    let r = run(&[
        "--firmware",
        &fw(),
        "--apparmor",
        "off",
        "--report",
        rep.to_str().unwrap(),
        "--bind",
        &format!("{}:/data:ro", data.display()),
        "--",
        "/bin/sh",
        "-c",
        &script,
    ]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(fs::read_to_string(data.join("file")).unwrap(), "host\n");
    let said = |what: &str| -> String {
        r.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{what}: ")))
            .unwrap_or_else(|| panic!("no line for {what}: {}", r.stdout))
            .to_string()
    };
    let report = read_json(&rep);
    let refusals: Vec<(String, String, String)> = report["confinement"]["refused"]
        .as_array()
        .expect("confinement.refused is a list")
        .iter()
        .map(|x| {
            let f = |k: &str| x[k].as_str().unwrap_or_default().to_string();
            (f("syscall"), f("target"), f("reason"))
        })
        .collect();
    let listed = |call: &str, target: &str, reason: &str| {
        refusals
            .iter()
            .any(|(c, t, why)| c == call && t == target && why.contains(reason))
    };
    // busybox mount words EPERM (and EACCES) as "permission denied";
    // the report says it was fwrun's refusal, and why.
    const MOUNT_EPERM: &str = "mount: permission denied (are you root?)";
    for fs in KERNEL_FS {
        assert_eq!(said(&format!("mount {fs}")), MOUNT_EPERM, "{fs}");
        assert!(
            listed(
                "mount",
                &format!("{fs} at /mnt/{fs}"),
                "the host kernel's own"
            ),
            "mount of {fs} not in the report: {refusals:?}"
        );
    }
    for m in MOVED {
        assert_eq!(said(&format!("move {m}")), MOUNT_EPERM, "{m}");
        assert!(
            listed(
                "mount",
                "/mnt/moved",
                &format!("fwrun's mount at {m} stays where it is")
            ),
            "the move of {m} not in the report: {refusals:?}"
        );
    }
    assert_eq!(
        said("remount /data"),
        "remount /data: Operation not permitted"
    );
    assert!(
        listed("mount", "/data", "stays read-only"),
        "the remount of the :ro bind not in the report: {refusals:?}"
    );
    assert!(
        said("write /data").ends_with("Read-only file system"),
        "{}",
        r.stdout
    );
    for call in CALLS {
        assert_eq!(said(call), "EPERM", "{call}: {}", r.stdout);
        assert!(
            listed(call, "", ""),
            "{call} not in the report: {refusals:?}"
        );
    }
}

/// The firmware has an IPC namespace of its own: a System V shared memory
/// segment the host makes is not among the firmware's.
#[test]
fn the_hosts_ipc_objects_are_not_the_firmwares() {
    let _g = guard();
    // A key of the test's own ("FWrT"), in a segment removed at the end.
    const KEY: libc::key_t = 0x4657_7254;
    // SAFETY: plain System V calls on a segment this test makes and removes.
    let id = unsafe { libc::shmget(KEY, 4096, libc::IPC_CREAT | libc::IPC_EXCL | 0o600) };
    assert!(id >= 0, "shmget: {}", std::io::Error::last_os_error());
    struct Segment(i32);
    impl Drop for Segment {
        fn drop(&mut self) {
            // SAFETY: removes the segment made above.
            unsafe { libc::shmctl(self.0, libc::IPC_RMID, std::ptr::null_mut()) };
        }
    }
    let _segment = Segment(id);
    // /proc/sysvipc/shm: one segment a line, its key first.
    let lists = |text: &str| {
        text.lines()
            .any(|l| l.split_whitespace().next() == Some(&KEY.to_string()))
    };
    let host = fs::read_to_string("/proc/sysvipc/shm").unwrap();
    assert!(lists(&host), "the host does not list it: {host}");
    let r = run(&[
        "--firmware",
        &fw(),
        "--",
        "/bin/sh",
        "-c",
        "cat /proc/sysvipc/shm; echo end",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("end"), "{}", r.stdout);
    assert!(
        !lists(&r.stdout),
        "the firmware sees the host's segment: {}",
        r.stdout
    );
}
