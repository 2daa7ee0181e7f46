//! Root only inside: every run is in a user namespace of its own, and the
//! kernel, not fwrun's judgement of paths, keeps the firmware off the host.
//! tests/firmware/files/userns.sh tries what a curious firmware would
//! (cgroups, read-only copies made writable, masks removed in copies,
//! magic links, device nodes, the global knobs), each probe harmless: it
//! writes back what the host has. Every probe is refused with fwrun's
//! defaults, and by the kernel alone (--seccomp off); with --userns off as
//! well, each of them reaches the host, which shows that the probes can
//! tell.

mod common;

use common::bg::Bg;
use common::*;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

fn fw() -> String {
    image("fw.ext2").to_str().unwrap().to_string()
}

fn trimmed(path: &str) -> String {
    fs::read_to_string(path).unwrap().trim().to_string()
}

/// The selected word of a sysfs choice ("always [madvise] never").
fn selected(path: &str) -> String {
    let text = trimmed(path);
    text.split_whitespace()
        .find_map(|w| w.strip_prefix('[')?.strip_suffix(']'))
        .unwrap_or(&text)
        .to_string()
}

/// What the host has that the probes touch, to compare before and after.
fn host_state(data: &Path) -> (String, String, u32, u32) {
    (
        trimmed("/proc/sys/kernel/ctrl-alt-del"),
        selected("/sys/kernel/mm/transparent_hugepage/enabled"),
        fs::metadata("/dev/null").unwrap().mode() & 0o7777,
        fs::metadata(data).unwrap().mode() & 0o7777,
    )
}

/// userns.sh with `extra` arguments, its environment from the host.
fn probe(extra: &[&str], data: &Path) -> Run {
    let (cad, thp, null_mode, data_mode) = host_state(data);
    let env = [
        format!("CAD={cad}"),
        format!("THP={thp}"),
        format!("NULLMODE={null_mode:o}"),
        format!("DATAMODE={data_mode:o}"),
    ];
    let bind = format!("{}:/data:ro", data.display());
    let mut args = vec![
        "--firmware".to_string(),
        fw(),
        "--apparmor".into(),
        "off".into(),
        "--allow-mknod".into(),
        "--bind".into(),
        bind,
    ];
    for e in &env {
        args.extend(["--env".to_string(), e.clone()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(["--".to_string(), "/test/userns.sh".to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&args)
}

fn checks(r: &Run) -> Vec<&str> {
    r.stdout
        .lines()
        .filter(|l| l.starts_with("ok - ") || l.starts_with("not ok - "))
        .collect()
}

fn planned() -> usize {
    let files = repo().join("tests/firmware/files");
    common::plan::planned(&files.join("userns.sh"), &files)
}

/// A directory of the host's, 0755, for the read-only bind.
fn data_dir(s: &Scratch) -> std::path::PathBuf {
    let data = s.path("data");
    fs::create_dir(&data).unwrap();
    fs::set_permissions(&data, fs::Permissions::from_mode(0o755)).unwrap();
    data
}

#[test]
fn every_probe_is_refused_with_the_defaults_and_by_the_kernel_alone() {
    let _g = guard();
    let s = Scratch::new("userns");
    let data = data_dir(&s);
    let before = host_state(&data);
    for extra in [&[][..], &["--seccomp", "off"][..]] {
        let r = probe(extra, &data);
        let all = checks(&r);
        assert_eq!(
            all.len(),
            planned(),
            "{extra:?}: not every check ran\n{}",
            r.stdout
        );
        let failed: Vec<_> = all.iter().filter(|l| l.starts_with("not ok")).collect();
        assert!(
            failed.is_empty() && r.code == 0,
            "{extra:?}: exit {}\n{}\n{}",
            r.code,
            r.stdout,
            r.stderr
        );
        assert_eq!(host_state(&data), before, "{extra:?}");
    }
}

#[test]
fn without_the_user_namespace_every_probe_reaches_the_host() {
    let _g = guard();
    let s = Scratch::new("userns-off");
    let data = data_dir(&s);
    let before = host_state(&data);
    let r = probe(&["--seccomp", "off", "--userns", "off"], &data);
    let all = checks(&r);
    assert_eq!(all.len(), planned(), "not every check ran\n{}", r.stdout);
    for line in &all {
        // The checks that hold either way: the cgroup namespace is rooted
        // at the run's cgroup whatever the user namespace.
        let holds_anyway = line.ends_with("its cgroup2 tree holds its own processes only")
            || line.ends_with("no v1 release_agent in reach");
        assert_eq!(
            line.starts_with("ok - "),
            holds_anyway,
            "without the user namespace, a probe was still refused: {line}\n{}\n{}",
            r.stdout,
            r.stderr
        );
    }
    // Every probe wrote back what it read: the host is as it was.
    assert_eq!(host_state(&data), before);
}

#[test]
fn the_firmware_is_root_in_a_user_namespace_of_its_own() {
    let _g = guard();
    let host_ns = fs::read_link("/proc/self/ns/user").unwrap();
    let script = "cat /proc/self/uid_map /proc/self/gid_map; readlink /proc/self/ns/user; id -u";
    let r = run(&["--firmware", &fw(), "--", "/bin/sh", "-c", script]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    fn map(l: &str) -> Vec<&str> {
        l.split_whitespace().collect()
    }
    assert_eq!(map(lines[0]), ["0", "0", "65536"], "{}", r.stdout);
    assert_eq!(map(lines[1]), ["0", "0", "65536"], "{}", r.stdout);
    assert_ne!(lines[2], host_ns.to_str().unwrap(), "{}", r.stdout);
    assert_eq!(lines[3], "0");
    // --userns off: the host's user namespace, with a warning that says so.
    let r = run(&[
        "--firmware",
        &fw(),
        "--userns",
        "off",
        "--",
        "/bin/sh",
        "-c",
        "readlink /proc/self/ns/user",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.trim(), host_ns.to_str().unwrap());
    assert!(r.stderr.contains("--userns off"), "{}", r.stderr);
}

/// `fwrun enter`: the command is in the init's user namespace, and only
/// it (not the child of fwrun's that joined the namespaces for it) is in
/// the firmware's pid namespace.
#[test]
fn enter_joins_the_user_namespace_and_only_the_command_is_seen() {
    let _g = guard();
    let mut bg = Bg::start(&[
        "--name",
        "uns1",
        "--firmware",
        &fw(),
        "--",
        "/bin/sh",
        "-c",
        "echo up; exec sleep 60",
    ]);
    bg.expect("up");
    let out = fwrun()
        .args([
            "enter",
            "-T",
            "uns1",
            "--",
            "/bin/sh",
            "-c",
            "readlink /proc/self/ns/user; readlink /proc/1/ns/user; cat /proc/self/uid_map; \
             for p in /proc/[0-9]*; do echo \"pid ${p#/proc/} $(cat $p/comm)\"; done",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], lines[1], "not the init's user namespace: {text}");
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "65536"],
        "{text}"
    );
    let pids: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("pid "))
        .copied()
        .collect();
    // The init (sleep), the command's shell, and what it forks to list.
    assert!(
        pids.iter()
            .all(|l| l.ends_with(" sleep") || l.ends_with(" sh") || l.ends_with(" cat")),
        "a process of fwrun's is in the firmware's pid namespace: {pids:?}"
    );
    bg.signal(libc::SIGTERM);
    let _ = bg.finish();
}

#[test]
fn rw_dir_is_root_s_alone() {
    let _g = guard();
    let s = Scratch::new("rw-dir-mode");
    let rw = s.path("rw");
    fs::create_dir(&rw).unwrap();
    fs::set_permissions(&rw, fs::Permissions::from_mode(0o755)).unwrap();
    let r = run(&[
        "--firmware",
        &fw(),
        "--rw-dir",
        rw.to_str().unwrap(),
        "--",
        "/bin/sh",
        "-c",
        "cp /bin/busybox /bin/kept && chmod 4755 /bin/kept",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(fs::metadata(&rw).unwrap().mode() & 0o7777, 0o700);
    assert_eq!(
        fs::metadata(rw.join("upper/bin/kept")).unwrap().mode() & 0o7777,
        0o4755,
        "the firmware's setuid file is kept, behind the 0700"
    );
    // A directory another user owns is refused, in one line, before
    // anything is mounted.
    let theirs = s.path("theirs");
    fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(1000), Some(1000)).unwrap();
    let r = run(&[
        "--firmware",
        &fw(),
        "--rw-dir",
        theirs.to_str().unwrap(),
        "--",
        "/bin/true",
    ]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert_one_line_naming(&r, "--rw-dir");
    assert!(!theirs.join("upper").exists());
}

/// The cgroups of a run whose init fwrun does not recognise, in every
/// hierarchy this host mounts, named fwrun-NAME.
fn run_cgroups(name: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![std::path::PathBuf::from("/sys/fs/cgroup")];
    while let Some(d) = dirs.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if p.file_name()
                .is_some_and(|n| n == format!("fwrun-{name}").as_str())
            {
                out.push(p);
            } else if p.components().count() < 7 {
                dirs.push(p);
            }
        }
    }
    out
}

#[test]
fn an_init_fwrun_does_not_recognise_gets_cgroups_of_its_own() {
    let _g = guard();
    let mut bg = Bg::start(&[
        "--name",
        "uns2",
        "--firmware",
        &fw(),
        "--",
        "/bin/sh",
        "-c",
        "cat /proc/self/cgroup; echo up; exec sleep 60",
    ]);
    bg.expect("up");
    // Its cgroup namespace is rooted at its own cgroup in every hierarchy.
    let lines: Vec<String> = bg
        .seen
        .iter()
        .filter(|l| l.contains(':'))
        .cloned()
        .collect();
    assert!(!lines.is_empty());
    for l in &lines {
        assert!(
            l.ends_with(":/"),
            "not rooted at the run's cgroup: {lines:?}"
        );
    }
    let made = run_cgroups("uns2");
    assert!(!made.is_empty(), "no fwrun-uns2 cgroup on the host");
    // A SIGKILL of fwrun leaves them to the sweep, which removes them.
    bg.signal(libc::SIGKILL);
    let _ = bg.finish();
    let r = run(&["--cleanup"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    eventually("the cleanup removes the run's cgroups", 10, || {
        run_cgroups("uns2").is_empty()
    });
}

/// On a terminal, with `--console inherit`, the firmware's /dev/console is
/// that terminal, bound from fwrun's descriptor; a terminal whose mount
/// fwrun cannot reach (a pty of a devpts outside its mount namespace)
/// leaves the firmware without a console, and the run goes on. The
/// terminal is a pty of script(1)'s.
#[test]
fn the_console_is_bound_from_its_descriptor_and_never_fails_a_run() {
    let _g = guard();
    let s = Scratch::new("console-fd");
    let run_sh = s.path("run.sh");
    fs::write(
        &run_sh,
        format!(
            "{} --console inherit --apparmor off --firmware {} -- \
             /bin/sh -c \"stat -c 'console %t:%T' /dev/console; echo exit=\\$?\"; \
             echo fwrun=$?\n",
            env!("CARGO_BIN_EXE_fwrun"),
            fw()
        ),
    )
    .unwrap();
    let on_a_pty = |cmd: &str| -> String {
        let out = std::process::Command::new("script")
            .args(["-qec", cmd, "/dev/null"])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let said = on_a_pty(&format!("sh {}", run_sh.display()));
    // A pty's slave: major 136 (hex 88).
    assert!(said.contains("console 88:"), "{said}");
    assert!(
        said.contains("exit=0") && said.contains("fwrun=0"),
        "{said}"
    );
    // fwrun in a mount namespace of its own whose /dev/pts is another
    // devpts: the terminal's mount is not there.
    let said = on_a_pty(&format!(
        "unshare -m --propagation private sh -c 'mount -t devpts -o newinstance devpts /dev/pts && sh {}'",
        run_sh.display()
    ));
    assert!(said.contains("fwrun=0"), "{said}");
    assert!(
        said.contains("warning: the firmware has no /dev/console") && said.contains("exit=1"),
        "{said}"
    );
}

#[test]
fn net_host_says_what_the_user_namespace_cannot_do_there() {
    let _g = guard();
    let r = run(&["--net", "host", "--firmware", &fw(), "--", "/bin/true"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("cannot bind ports below 1024 nor open raw sockets"),
        "{}",
        r.stderr
    );
    let r = run(&[
        "-q",
        "--net",
        "host",
        "--firmware",
        &fw(),
        "--",
        "/bin/true",
    ]);
    assert!(r.stderr.is_empty(), "{}", r.stderr);
}
