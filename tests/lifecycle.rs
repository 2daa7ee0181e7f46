//! How runs end: signals, timeouts, poweroff and reboot, the console, and
//! --as-pid2, driven from outside as a user or a CI job would.

mod common;

use std::time::{Duration, Instant};

use common::bg::*;
use common::*;

/// How fwrun ended after it was asked to stop at `since`: (exit code,
/// stderr, how long it took).
fn stopped(bg: Bg, since: Instant) -> (i32, String, Duration) {
    let out = bg.finish();
    (out.code().unwrap_or(-1), out.stderr, since.elapsed())
}

fn fw() -> String {
    image("fw.ext2").to_str().unwrap().to_string()
}

#[test]
fn sigint_stops_an_obedient_firmware_quickly() {
    let _g = guard();
    let mut bg = Bg::start(&["--firmware", &fw(), "--", "/test/signals.sh"]);
    bg.expect("ready");
    let t = Instant::now();
    bg.signal(libc::SIGINT);
    let (code, err, took) = stopped(bg, t);
    assert_eq!(code, 130, "{err}");
    assert!(
        took < Duration::from_secs(3),
        "took {took:?} (stop-timeout is 10 s)"
    );
    assert!(err.contains("interrupted"), "{err}");
}

#[test]
fn a_firmware_that_ignores_sigterm_is_killed_after_stop_timeout() {
    let _g = guard();
    for init in ["/test/ignore-term.sh", "/test/stubborn.sh"] {
        let mut bg = Bg::start(&["--firmware", &fw(), "--stop-timeout", "2", "--", init]);
        bg.expect("ready");
        let t = Instant::now();
        bg.signal(libc::SIGINT);
        let (code, err, took) = stopped(bg, t);
        assert_eq!(code, 130, "{init}: {err}");
        assert!(
            took >= Duration::from_secs(2),
            "{init}: killed after {took:?}, before the stop-timeout"
        );
        assert!(took < Duration::from_secs(5), "{init}: took {took:?}");
    }
}

#[test]
fn a_second_sigint_kills_at_once() {
    let _g = guard();
    let mut bg = Bg::start(&[
        "--firmware",
        &fw(),
        "--stop-timeout",
        "60",
        "--",
        "/test/stubborn.sh",
    ]);
    bg.expect("ready");
    let t = Instant::now();
    bg.signal(libc::SIGINT);
    // The init has been asked (it says so) before the second Ctrl-C.
    bg.expect("got TERM");
    bg.signal(libc::SIGINT);
    let (code, err, took) = stopped(bg, t);
    assert_eq!(code, 130, "{err}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

#[test]
fn sigterm_sighup_and_forwarded_signals() {
    let _g = guard();
    for (sig, code) in [(libc::SIGTERM, 143), (libc::SIGHUP, 129)] {
        let mut bg = Bg::start(&["--firmware", &fw(), "--", "/test/signals.sh"]);
        bg.expect("ready");
        for (fwd, name) in [
            (libc::SIGUSR1, "USR1"),
            (libc::SIGUSR2, "USR2"),
            (libc::SIGQUIT, "QUIT"),
        ] {
            bg.signal(fwd);
            bg.expect(&format!("got {name}"));
        }
        let t = Instant::now();
        bg.signal(sig);
        let (got, err, _) = stopped(bg, t);
        assert_eq!(got, code, "{err}");
    }
}

#[test]
fn sigkill_of_fwrun_takes_the_firmware_with_it_and_the_next_run_sweeps() {
    let g = guard();
    let mut bg = Bg::start(&[
        "--firmware",
        &fw(),
        "--name",
        "killed",
        "--",
        "/test/signals.sh",
    ]);
    bg.expect("ready");
    // The firmware's pid namespace: its init is fwrun's child.
    let me = bg.child.id();
    let children = std::fs::read_to_string(format!("/proc/{me}/task/{me}/children")).unwrap();
    let init = children
        .split_whitespace()
        .next()
        .expect("fwrun has a child");
    let ns = std::fs::read_link(format!("/proc/{init}/ns/pid")).unwrap();
    let ns = ns.to_string_lossy().into_owned();
    assert!(!g.before().pid_namespaces.contains(&ns));
    bg.signal(libc::SIGKILL);
    let _ = bg.finish();
    let t = Instant::now();
    // No process of the firmware's pid namespace survives it by more than a second.
    while footprint().pid_namespaces.contains(&ns) {
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "firmware processes outlived fwrun"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // What a SIGKILL leaves is the state directory; the next run sweeps it.
    assert!(footprint().states.contains("killed"));
    let r = run(&["--firmware", &fw(), "--", "/bin/true"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!footprint().states.contains("killed"));
}

#[test]
fn timeout_stops_the_firmware_with_124() {
    let _g = guard();
    let t = Instant::now();
    let r = run(&[
        "--firmware",
        &fw(),
        "--timeout",
        "1s",
        "--",
        "/test/signals.sh",
    ]);
    let took = t.elapsed();
    assert_eq!(r.code, 124, "{}", r.stderr);
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(3),
        "took {took:?}"
    );
    assert!(r.stdout.contains("got TERM"), "{}", r.stdout);
}

#[test]
fn poweroff_exits_0_and_reboot_can_restart() {
    let _g = guard();
    // The demo's busybox init powers off at the end of its boot.
    let r = run(&["--firmware", &fw()]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("firmware powered off"), "{}", r.stderr);
    assert!(
        r.stdout.contains("demo firmware: up; powering off"),
        "{}",
        r.stdout
    );

    let r = run(&["--firmware", &fw(), "--", "/test/boot-twice.sh"]);
    assert_eq!(r.code, 129, "{}", r.stderr);
    assert!(r.stderr.contains("firmware rebooted"), "{}", r.stderr);

    let r = run(&[
        "--firmware",
        &fw(),
        "--on-reboot",
        "restart",
        "--",
        "/test/boot-twice.sh",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("first boot, rebooting\n"), "{}", r.stdout);
    assert!(
        r.stdout.contains("second boot, found: first boot\n"),
        "{}",
        r.stdout
    );
}

#[test]
fn closed_stdin_and_piped_stdout_work() {
    let _g = guard();
    use std::os::unix::process::CommandExt;
    let mut c = fwrun();
    c.args(["--firmware", &fw(), "--", "/test/check.sh"]);
    // SAFETY: only close(2) between fork and exec.
    unsafe {
        c.pre_exec(|| {
            libc::close(0);
            Ok(())
        });
    }
    let out = c.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("failures=0"), "{stdout}");
}

#[test]
fn as_pid2_returns_the_programs_status_and_reaps_orphans() {
    let _g = guard();
    let t = Instant::now();
    let r = run(&[
        "--firmware",
        &fw(),
        "--as-pid2",
        "--",
        "/bin/sh",
        "-c",
        "sleep 100 & exit 7",
    ]);
    assert_eq!(r.code, 7, "{}", r.stderr);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    let r = run(&[
        "--firmware",
        &fw(),
        "--as-pid2",
        "--",
        "/bin/sh",
        "-c",
        "echo $$; cat /proc/1/cmdline | tr '\\0' ' '",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("2\n"), "{}", r.stdout);
    let r = run(&["--firmware", &fw(), "--as-pid2", "--", "/test/segv"]);
    assert_eq!(r.code, 139, "{}", r.stderr);
}

#[test]
fn pty_console_shell_ctrl_c_escape_and_terminal_restored() {
    let _g = guard();
    let s = Scratch::new("pty");
    let (before, after) = (s.path("before"), s.path("after"));
    let script = format!(
        "stty -g > {b}; {bin} -v --stop-timeout 2 --firmware {fw} --name ptyrun -- /bin/sh; echo \"exit=$?\"; stty -g > {a}",
        b = before.display(),
        a = after.display(),
        bin = env!("CARGO_BIN_EXE_fwrun"),
        fw = fw()
    );
    let mut cmd = std::process::Command::new("bash");
    cmd.args(["-c", &script]);
    let mut p = rexpect::session::spawn_command(cmd, Some(20_000)).unwrap();
    p.send_line("echo hello-$((6*7))").unwrap();
    p.exp_string("hello-42").unwrap();
    // The firmware's shell has the pty as its controlling terminal.
    p.send_line("tty; echo tty-done").unwrap();
    p.exp_string("/dev/console").unwrap();
    // Ctrl-C interrupts a sleep inside the firmware, not the run: the
    // shell is back well before the sleep would have ended.
    p.send_line("echo sleeping; sleep 30").unwrap();
    p.exp_string("sleeping\r\n").unwrap();
    let t = Instant::now();
    p.send_control('c').unwrap();
    p.send_line("echo still-$((1+1))").unwrap();
    p.exp_string("still-2").unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "the sleep was not interrupted"
    );
    // The escape ends the run.
    p.send("\x1d\x1d\x1d").unwrap();
    p.flush().unwrap();
    p.exp_string("exit=130").unwrap();
    p.exp_eof().unwrap();
    let (b, a) = (
        std::fs::read_to_string(&before).unwrap(),
        std::fs::read_to_string(&after).unwrap(),
    );
    assert!(!b.is_empty());
    assert_eq!(b, a, "the terminal's settings were not restored");
}

#[test]
fn inherit_console_ctrl_c_reaches_fwrun_which_stops_the_init() {
    let _g = guard();
    // fwrun in the foreground of a real terminal, the init on fwrun's own
    // stdin/stdout: the terminal's Ctrl-C goes to fwrun's process group
    // only (the init leads a session of its own), and the init gets the
    // stop signal (SIGTERM), which signals.sh reports.
    let script = format!(
        "{bin} --console inherit --firmware {fw} -- /test/signals.sh; echo \"exit=$?\"",
        bin = env!("CARGO_BIN_EXE_fwrun"),
        fw = fw()
    );
    let mut cmd = std::process::Command::new("bash");
    cmd.args(["-c", &script]);
    let mut p = rexpect::session::spawn_command(cmd, Some(20_000)).unwrap();
    p.exp_string("ready").unwrap();
    p.send_control('c').unwrap();
    let (said, code) = p.exp_regex("exit=[0-9]+").unwrap();
    p.exp_eof().unwrap();
    assert_eq!(code, "exit=130", "{said}");
    assert!(said.contains("got TERM"), "{said}");
    assert!(
        !said.contains("got INT"),
        "the terminal's Ctrl-C reached the init: {said}"
    );
    assert!(said.contains("firmware stopped: interrupted"), "{said}");
}
