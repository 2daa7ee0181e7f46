//! Real firmware, as root: Debian bookworm root file systems that nobody
//! here wrote (built by tests/firmware/debian-rootfs.sh with mmdebstrap,
//! cached in /var/cache/fwrun-tests), booted with their own init from ext4
//! and squashfs images, checked from the host (`fwrun enter`, the console)
//! and stopped with their init's stop signal.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::bg::{finish, Bg, Out};
use common::*;

/// The cache the images are built in once (tests/firmware/debian-rootfs.sh).
const CACHE: &str = "/var/cache/fwrun-tests";

/// How long a boot may take to be ready (a squashfs image on a busy
/// machine is the slowest).
/// (Below the tests' own deadline for one fwrun command.)
const BOOT: &str = "25s";

/// Units that fail in these images for a reason real hardware would not
/// have either, with why. None so far: a failed unit is a failure.
const FAILS_ON_REAL_HARDWARE: &[(&str, &str)] = &[];

/// The directory of a Debian image of `kind` (systemd, sysvinit): built on
/// first use, then cached; a failed build fails the test.
fn debian(kind: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut built = BUILT.get_or_init(Default::default).lock().unwrap();
    if let Some(p) = built.get(kind) {
        return p.clone();
    }
    let out = Command::new("bash")
        .arg(repo().join("tests/firmware/debian-rootfs.sh"))
        .args([CACHE, kind])
        .output()
        .expect("running tests/firmware/debian-rootfs.sh");
    assert!(
        out.status.success(),
        "building the Debian {kind} image failed (it needs mmdebstrap and Debian's archive \
         once, then its cache in {CACHE}):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(dir.join(".complete").exists(), "{}", dir.display());
    built.insert(kind.into(), dir.clone());
    dir
}

/// A child (fwrun, exec'd by a shell) killed if the test fails before it
/// ended, so that no firmware outlives the test.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn image(kind: &str, file: &str) -> String {
    debian(kind).join(file).display().to_string()
}

fn fwrun_out(args: &[&str]) -> Out {
    let mut c = fwrun();
    c.args(args);
    finish(c)
}

/// `fwrun enter NAME -- CMD…`, to its end.
fn enter(name: &str, cmd: &[&str]) -> Out {
    let mut args = vec!["enter", name, "--"];
    args.extend_from_slice(cmd);
    fwrun_out(&args)
}

/// Boot `firmware`'s /sbin/init in the background as run `name`, with
/// `extra` flags, and wait until `ready` (a console regex) held.
fn boot(name: &str, firmware: &str, extra: &[&str], ready: &str) -> (Bg, Duration) {
    let t = Instant::now();
    let mut args: Vec<String> = vec![
        "--firmware".into(),
        firmware.into(),
        "--name".into(),
        name.into(),
        "--ready-when".into(),
        format!("console:{ready}"),
        "--ready-timeout".into(),
        BOOT.into(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    args.extend(["--".into(), "/sbin/init".into()]);
    let bg = Bg::start(&args);
    let w = fwrun_out(&["wait", name, "--timeout", BOOT]);
    let took = t.elapsed();
    if w.code() != Some(0) {
        let out = bg.finish();
        panic!(
            "{name} did not get ready ({ready}): {}\n--- the run:\n{}",
            w.show(),
            out.show()
        );
    }
    (bg, took)
}

/// SIGTERM to fwrun; its end, and how long it took to end.
fn sigterm(bg: Bg) -> (Out, Duration) {
    let t = Instant::now();
    bg.signal(libc::SIGTERM);
    let out = bg.finish();
    (out, t.elapsed())
}

/// The console with its colours and carriage returns taken out, for
/// searching (the raw text is checked for escapes separately).
fn plain(console: &str) -> String {
    let mut out = String::new();
    let mut chars = console.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                // CSI: ESC [ parameters final-byte.
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for d in chars.by_ref() {
                        if ('@'..='~').contains(&d) {
                            break;
                        }
                    }
                }
            }
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// Whether a line of `text` matches `re`.
fn has_line(text: &str, re: &str) -> bool {
    let re = regex_lite::Regex::new(re).unwrap();
    text.lines().any(|l| re.is_match(l))
}

/// Check a booted systemd firmware from inside: the boot finished, and no
/// unit failed but those real hardware would fail too.
fn assert_systemd_running(name: &str) {
    let state = enter(name, &["systemctl", "is-system-running", "--wait"]);
    let state_word = state.stdout.trim().to_string();
    let failed = enter(
        name,
        &[
            "systemctl",
            "list-units",
            "--failed",
            "--plain",
            "--no-legend",
        ],
    );
    assert_eq!(failed.code(), Some(0), "{}", failed.show());
    let failed_units: Vec<String> = failed
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    let unexplained: Vec<&String> = failed_units
        .iter()
        .filter(|u| !FAILS_ON_REAL_HARDWARE.iter().any(|(n, _)| n == u))
        .collect();
    if !unexplained.is_empty() {
        let mut why = String::new();
        for u in &unexplained {
            let j = enter(
                name,
                &["journalctl", "-b", "--no-pager", "-n", "15", "-u", u],
            );
            why.push_str(&j.stdout);
        }
        panic!("units failed in {name}: {unexplained:?}\n{why}");
    }
    match state_word.as_str() {
        "running" => {}
        "degraded" => assert!(!failed_units.is_empty(), "degraded with no failed unit"),
        other => panic!("systemctl is-system-running: {other:?}: {}", state.show()),
    }
}

/// Boot a systemd image, check it from inside, stop it with SIGTERM to
/// fwrun: its stop signal powers it off within 5 s.
fn systemd_boots_and_powers_off(name: &str, file: &str, extra: &[&str]) {
    // Built (or found in the cache) before the leak check's snapshot:
    // mmdebstrap mounts in the tree it builds.
    let fw = image("systemd", file);
    let _g = guard();
    let (bg, booted) = boot(name, &fw, extra, "Reached target.*Multi-User System");
    assert_systemd_running(name);
    // Its cgroups, as the host sees them: below the run's fwrun-NAME in
    // every hierarchy (on a v1/hybrid host as on v2), not fwrun's own.
    let list = fwrun_out(&["list", "--json"]);
    let runs: serde_json::Value = serde_json::from_str(&list.stdout).expect("fwrun list --json");
    let pid = runs
        .as_array()
        .and_then(|a| a.iter().find(|r| r["name"] == name))
        .and_then(|r| r["pid"].as_i64())
        .unwrap_or_else(|| panic!("{name} is not listed: {}", list.show()));
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let own = format!("/fwrun-{name}");
    assert!(
        cgroups
            .lines()
            .all(|l| l.ends_with(&own) || l.contains(&format!("{own}/"))),
        "the init is not in {own} everywhere:\n{cgroups}"
    );
    // The firmware's root is the image, its hostname the image's own.
    let who = enter(
        name,
        &[
            "sh",
            "-c",
            "hostname; . /etc/os-release; echo $ID $VERSION_CODENAME; cat /proc/1/comm",
        ],
    );
    assert_eq!(
        who.stdout,
        "fw-systemd\ndebian bookworm\nsystemd\n",
        "{}",
        who.show()
    );
    let (out, stop) = sigterm(bg);
    let console = plain(&out.stdout);
    assert_eq!(out.code(), Some(143), "{}", out.show());
    assert!(
        out.stderr.contains("firmware stopped on SIGRTMIN+4 after"),
        "{}",
        out.show()
    );
    // Nothing the sandbox caused: no unit failed to start, no refusal
    // systemd complained of, and on a cgroup v1/hybrid host none of the
    // messages of a cgroup namespace shared with the host.
    let complaints = regex_lite::Regex::new(
        "FAILED|Operation not permitted|Permission denied|Read-only file system|\
         Couldn't move remaining userspace processes|Failed to migrate controller cgroups",
    )
    .unwrap();
    let bad: Vec<&str> = console.lines().filter(|l| complaints.is_match(l)).collect();
    assert!(bad.is_empty(), "{bad:#?}\n{}", out.show());
    assert!(
        has_line(&console, r"Reached target.*(Power-Off|System Power Off)"),
        "{}",
        out.show()
    );
    // What the feature promises: a graceful stop (said above) comes within
    // the default --stop-timeout, 10 s, or it would have been a kill. The
    // time it took is printed.
    assert!(
        stop < Duration::from_secs(10),
        "the stop took {stop:?}: {}",
        out.show()
    );
    eprintln!("{name}: ready after {booted:?}, stopped in {stop:?}");
}

#[test]
fn systemd_ext4_reaches_multi_user_and_powers_off_on_its_stop_signal() {
    // The defaults: fwrun reads the init, gives it a pty console (relayed
    // to the pipe the test reads) and systemd's stop signal.
    systemd_boots_and_powers_off("rfw-sd-ext4", "rootfs.ext4", &[]);
}

#[test]
fn systemd_squashfs_reaches_multi_user_and_powers_off_on_its_stop_signal() {
    systemd_boots_and_powers_off(
        "rfw-sd-sqfs",
        "rootfs.squashfs",
        // The same said explicitly.
        &["--console", "pty", "--stop-signal", "RTMIN+4"],
    );
}

#[test]
fn sysvinit_reaches_runlevel_2_and_stops_on_sigint() {
    let fw = image("sysvinit", "rootfs.ext4");
    let _g = guard();
    let name = "rfw-sysv";
    let (bg, booted) = boot(
        name,
        &fw,
        // The defaults: a pty console and sysvinit's stop signal, SIGINT.
        &[],
        "login: $",
    );
    let rl = enter(name, &["runlevel"]);
    assert_eq!(rl.stdout.trim(), "N 2", "{}", rl.show());
    let init = enter(name, &["sh", "-c", "hostname; readlink -f /proc/1/exe"]);
    assert_eq!(
        init.stdout,
        "fw-sysvinit\n/usr/sbin/init\n",
        "{}",
        init.show()
    );
    let (out, stop) = sigterm(bg);
    let console = plain(&out.stdout);
    assert_eq!(out.code(), Some(143), "{}", out.show());
    assert!(
        out.stderr.contains("firmware stopped on SIGINT after"),
        "{}",
        out.show()
    );
    assert!(has_line(&console, "Entering runlevel: 2"), "{console}");
    // SIGINT ran inittab's ctrlaltdel entry (shutdown -r): runlevel 6's
    // scripts ran to their end.
    assert!(
        has_line(&console, "concurrent boot in runlevel 6"),
        "{console}"
    );
    assert!(has_line(&console, "^Will now restart"), "{console}");
    // What the feature promises: a graceful stop (said above) comes within
    // the default --stop-timeout, 10 s. The time it took is printed.
    assert!(
        stop < Duration::from_secs(10),
        "the stop took {stop:?}: {}",
        out.show()
    );
    eprintln!("{name}: ready after {booted:?}, stopped in {stop:?}");
}

#[test]
fn login_on_the_systemd_console_then_the_escape_ends_the_run() {
    let fw = image("systemd", "rootfs.ext4");
    let g = guard();
    let script = format!(
        "{bin} --console pty --firmware {fw} --name rfw-login -- /sbin/init; echo \"exit=$?\"",
        bin = env!("CARGO_BIN_EXE_fwrun"),
    );
    let mut cmd = Command::new("bash");
    cmd.args(["-c", &script]);
    let mut p = rexpect::session::spawn_command(cmd, Some(60_000)).unwrap();
    // console-getty's prompt, with the image's hostname.
    p.exp_string("fw-systemd login: ").unwrap();
    p.send_line("root").unwrap();
    // An empty password is no password: no prompt, or an empty answer.
    let (_, got) = p.exp_regex(r"(Password: |root@fw-systemd:~# )").unwrap();
    if got.starts_with("Password") {
        p.send_line("").unwrap();
        p.exp_string("root@fw-systemd:~# ").unwrap();
    }
    p.send_line("echo in-$((6*7)) $(id -un) $(tty)").unwrap();
    p.exp_string("in-42 root /dev/console").unwrap();
    p.send("\x1d\x1d\x1d").unwrap();
    p.flush().unwrap();
    p.exp_string("exit=130").unwrap();
    p.exp_eof().unwrap();
    drop(g);
}

#[test]
fn systemd_boot_messages_reach_a_log_file_without_escapes() {
    let fw = image("systemd", "rootfs.ext4");
    let _g = guard();
    let s = Scratch::new("rfw-log");
    let log = s.path("log");
    // As a CI job runs it: output to a file, no stdin, no console flag.
    let script = format!(
        "exec {bin} --firmware {fw} --name rfw-log --ready-when console:'Multi-User System' \
         --ready-timeout {BOOT} -- /sbin/init > {log} 2>&1 < /dev/null",
        bin = env!("CARGO_BIN_EXE_fwrun"),
        log = log.display(),
    );
    let mut run = KillOnDrop(Command::new("bash").args(["-c", &script]).spawn().unwrap());
    let w = fwrun_out(&["wait", "rfw-log", "--timeout", BOOT]);
    let stopped = fwrun_out(&["stop", "rfw-log"]);
    let deadline = Instant::now() + common::bg::DEADLINE;
    let st = common::bg::wait_until(&mut run.0, deadline, "the logged run");
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(w.code(), Some(0), "{}\n--- log:\n{text}", w.show());
    assert_eq!(stopped.code(), Some(0), "{}", stopped.show());
    assert_eq!(st.code(), Some(143), "{text}");
    assert!(
        has_line(&text, r"Reached target .*Multi-User System"),
        "{text}"
    );
    assert!(
        !text.contains('\x1b'),
        "escape sequences in the log:\n{text}"
    );
    assert!(
        text.contains("firmware stopped on SIGRTMIN+4 after"),
        "not stopped by systemd's own signal:\n{text}"
    );
}
