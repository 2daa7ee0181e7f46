//! How runs end: signals, timeouts, poweroff and reboot, the console, and
//! --as-pid2, driven from outside as a user or a CI job would.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use common::bg::*;
use common::report::*;
use common::*;
use serde_json::Value;

/// How fwrun ended after it was asked to stop at `since`: (exit code,
/// stderr, how long it took).
fn stopped(bg: Bg, since: Instant) -> (i32, String, Duration) {
    let out = bg.finish();
    (out.code().unwrap_or(-1), out.stderr, since.elapsed())
}

fn fw() -> String {
    image("fw.ext2").to_str().unwrap().to_string()
}

/// The one line on stderr that starts with `start`: fwrun's stop line.
fn line_starting<'a>(err: &'a str, start: &str) -> &'a str {
    let found: Vec<&str> = err.lines().filter(|l| l.starts_with(start)).collect();
    assert_eq!(
        found.len(),
        1,
        "expected one line starting {start:?}:\n{err}"
    );
    found[0]
}

/// The time a stop line says it took, from its last words ("0.3 s",
/// "12 ms").
fn said_time(line: &str) -> Duration {
    let words: Vec<&str> = line.split_whitespace().collect();
    let [.., n, unit] = words[..] else {
        panic!("no time in {line:?}")
    };
    let n: f64 = n.parse().unwrap_or_else(|_| panic!("no time in {line:?}"));
    match unit {
        "s" => Duration::from_secs_f64(n),
        "ms" => Duration::from_secs_f64(n / 1000.0),
        _ => panic!("no time in {line:?}"),
    }
}

/// The report's `stop`, and its duration.
fn stop_of(report: &Value) -> (&Value, Duration) {
    let stop = &report["stop"];
    let ms = stop["ms"]
        .as_f64()
        .unwrap_or_else(|| panic!("no stop.ms: {report}"));
    (stop, Duration::from_secs_f64(ms / 1000.0))
}

/// A stop that the report says was graceful, as the line says, taking no
/// longer than fwrun took from the request to its end.
fn assert_graceful(report: &Value, line: &str, bound: Duration) {
    let (stop, ms) = stop_of(report);
    assert_eq!(stop["graceful"], true, "{report}");
    assert_eq!(stop["killed_by"], Value::Null, "{report}");
    assert_eq!(stop["signal"], "SIGTERM", "{report}");
    assert!(
        ms <= bound,
        "stop took {ms:?} by the report, {bound:?} from outside"
    );
    // The line says what the report measured (to its rounding).
    let said = said_time(line);
    assert!(
        said.abs_diff(ms) <= Duration::from_millis(51),
        "{line:?} against {ms:?}"
    );
}

#[test]
fn sigint_stops_an_obedient_firmware_quickly() {
    let _g = guard();
    let s = Scratch::new("obedient");
    let rep = s.path("r.json");
    let mut bg = Bg::start(&[
        "--firmware",
        &fw(),
        "--stop-timeout",
        "60",
        "--report",
        rep.to_str().unwrap(),
        "--",
        "/test/signals.sh",
    ]);
    bg.expect("ready");
    let t = Instant::now();
    bg.signal(libc::SIGINT);
    let (code, err, took) = stopped(bg, t);
    assert_eq!(code, 130, "{err}");
    // Well under the 60 s --stop-timeout: it was not killed (the line
    // below says it stopped); the bound is generous on a loaded host.
    assert!(
        took < Duration::from_secs(30),
        "took {took:?} (stop-timeout is 60 s)"
    );
    let line = line_starting(&err, "fwrun: interrupted (Ctrl-C): ");
    assert!(
        line.contains(": firmware stopped on SIGTERM after "),
        "{err}"
    );
    let v = read_report(&rep);
    assert_eq!(v["stop"]["reason"], "ctrl-c");
    assert_graceful(&v, line, took);
}

#[test]
fn a_firmware_that_ignores_sigterm_is_killed_after_stop_timeout() {
    let _g = guard();
    let s = Scratch::new("ignores");
    let rep = s.path("r.json");
    for init in ["/test/ignore-term.sh", "/test/stubborn.sh"] {
        let mut bg = Bg::start(&[
            "--firmware",
            &fw(),
            "--stop-timeout",
            "1",
            "--report",
            rep.to_str().unwrap(),
            "--",
            init,
        ]);
        bg.expect("ready");
        let t = Instant::now();
        bg.signal(libc::SIGINT);
        let (code, err, took) = stopped(bg, t);
        assert_eq!(code, 130, "{init}: {err}");
        assert!(
            took >= Duration::from_secs(1),
            "{init}: killed after {took:?}, before the stop-timeout"
        );
        // Killed at the 1 s --stop-timeout; the bound is generous on a
        // loaded host (the report's ms below is checked against `took`).
        assert!(took < Duration::from_secs(15), "{init}: took {took:?}");
        // A shell script is no init fwrun recognises: no hint follows.
        assert_eq!(
            line_starting(&err, "fwrun: interrupted"),
            "fwrun: interrupted (Ctrl-C): firmware did not stop within 1 s of SIGTERM: \
             killed (every process of it)",
            "{init}"
        );
        let v = read_report(&rep);
        let (stop, ms) = stop_of(&v);
        assert_eq!(
            (&stop["graceful"], &stop["killed_by"], &stop["reason"]),
            (
                &Value::Bool(false),
                &"stop-timeout".into(),
                &"ctrl-c".into()
            ),
            "{init}: {v}"
        );
        assert!(ms >= Duration::from_secs(1) && ms <= took, "{init}: {ms:?}");
    }
}

/// An init fwrun recognises, killed because it was sent a signal it does
/// not stop on: the line says which one it expects, and that one works.
#[test]
fn a_killed_busybox_init_gets_a_hint_and_the_hinted_signal_stops_it() {
    let _g = guard();
    let s = Scratch::new("hint");
    // busybox init that boots and stays up; it has no ctrlaltdel action, so
    // SIGINT does nothing.
    let inittab = s.path("inittab");
    std::fs::write(&inittab, "::sysinit:/bin/echo ready\n").unwrap();
    let bind = format!("{}:/etc/inittab:ro", inittab.display());
    let rep = s.path("r.json");
    let run_with = |stop_signal: &str| {
        let mut bg = Bg::start(&[
            "--firmware",
            &fw(),
            "--bind",
            &bind,
            "--stop-signal",
            stop_signal,
            "--stop-timeout",
            if stop_signal == "INT" { "1" } else { "10" },
            "--report",
            rep.to_str().unwrap(),
            "--",
            "/sbin/init",
        ]);
        bg.expect("ready");
        let t = Instant::now();
        bg.signal(libc::SIGTERM);
        stopped(bg, t)
    };
    let (code, err, _) = run_with("INT");
    assert_eq!(code, 143, "{err}");
    assert_eq!(
        line_starting(&err, "fwrun: terminated"),
        "fwrun: terminated (SIGTERM to fwrun): firmware did not stop within 1 s of SIGINT: \
         killed (every process of it); busybox init stops on SIGUSR2: try --stop-signal USR2"
    );
    assert_eq!(read_report(&rep)["stop"]["graceful"], false);

    let (code, err, took) = run_with("USR2");
    assert_eq!(code, 143, "{err}");
    let line = line_starting(&err, "fwrun: terminated");
    assert!(
        line.starts_with(
            "fwrun: terminated (SIGTERM to fwrun): firmware stopped on SIGUSR2 after "
        ),
        "{err}"
    );
    assert!(!line.contains("try --stop-signal"), "{line}");
    let v = read_report(&rep);
    let (stop, ms) = stop_of(&v);
    assert_eq!(
        (&stop["graceful"], &stop["signal"]),
        (&Value::Bool(true), &"SIGUSR2".into())
    );
    assert!(ms <= took, "{ms:?} > {took:?}");
}

#[test]
fn a_second_sigint_kills_at_once() {
    let _g = guard();
    let s = Scratch::new("second");
    let rep = s.path("r.json");
    let mut bg = Bg::start(&[
        "--firmware",
        &fw(),
        "--stop-timeout",
        "60",
        "--report",
        rep.to_str().unwrap(),
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
    // At once: well under the 60 s --stop-timeout (generous on a loaded
    // host; the line says it was the second Ctrl-C).
    assert!(took < Duration::from_secs(30), "took {took:?}");
    assert_eq!(
        line_starting(&err, "fwrun: interrupted"),
        "fwrun: interrupted (Ctrl-C): firmware killed at once (second Ctrl-C)"
    );
    let v = read_report(&rep);
    let (stop, ms) = stop_of(&v);
    assert_eq!(
        (&stop["graceful"], &stop["killed_by"]),
        (&Value::Bool(false), &"ctrl-c".into()),
        "{v}"
    );
    assert!(ms <= took, "{ms:?} > {took:?}");
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
            (libc::SIGCONT, "CONT"),
            (libc::SIGWINCH, "WINCH"),
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

/// The pid of fwrun's child (the firmware's init, seen from the host).
fn init_of(fwrun: u32) -> i32 {
    let children = std::fs::read_to_string(format!("/proc/{fwrun}/task/{fwrun}/children")).unwrap();
    children
        .split_whitespace()
        .next()
        .expect("fwrun has a child")
        .parse()
        .unwrap()
}

#[test]
fn sigkill_of_fwrun_takes_the_firmware_with_it_and_the_next_run_sweeps() {
    let g = guard();
    let s = Scratch::new("sigkill");
    let out = s.path("stdout");
    // Output to files, not pipes: the measure below waits on nothing of
    // the test's own.
    let mut child = fwrun()
        .args([
            "--firmware",
            &fw(),
            "--name",
            "killed",
            "--",
            "/test/signals.sh",
        ])
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(s.path("stderr")).unwrap())
        .spawn()
        .unwrap();
    let ready_by = Instant::now() + READY;
    while !std::fs::read_to_string(&out).unwrap().contains("ready\n") {
        if Instant::now() > ready_by {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the firmware never said ready");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // The firmware's pid namespace: its init is fwrun's child.
    let init = init_of(child.id());
    let ns = std::fs::read_link(format!("/proc/{init}/ns/pid")).unwrap();
    let ns = ns.to_string_lossy().into_owned();
    assert!(!g.before().pid_namespaces.contains(&ns));
    // No process of the firmware's pid namespace outlives fwrun by more
    // than a second, from the SIGKILL on.
    // SAFETY: plain syscall on our own child, not yet reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGKILL) }, 0);
    let t = Instant::now();
    while live_pid_namespaces().contains(&ns) {
        if t.elapsed() > Duration::from_secs(1) {
            // Do not leave it running: SIGKILL of its init ends them all.
            // SAFETY: plain syscall.
            unsafe { libc::kill(init, libc::SIGKILL) };
            let _ = child.wait();
            panic!("firmware processes outlived fwrun by more than 1 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = wait_until(&mut child, Instant::now() + DEADLINE, "the killed fwrun");
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    // What a SIGKILL leaves is the state directory; the next run sweeps it.
    assert!(footprint().states.contains("killed"));
    let r = run(&["--firmware", &fw(), "--", "/bin/true"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!footprint().states.contains("killed"));
}

/// An init killed from outside the firmware (SIGKILL, from the host): exit
/// 128 + 9, said as such.
#[test]
fn an_init_sigkilled_from_outside_gives_137() {
    let _g = guard();
    let mut bg = Bg::start(&["--firmware", &fw(), "--", "/test/signals.sh"]);
    bg.expect("ready");
    let init = init_of(bg.child.id());
    // SAFETY: plain syscall; the init is fwrun's child, alive.
    assert_eq!(unsafe { libc::kill(init, libc::SIGKILL) }, 0);
    let out = bg.finish();
    assert_eq!(out.code(), Some(137), "{}", out.show());
    assert!(out.stderr.contains("SIGKILL"), "{}", out.show());
}

#[test]
fn timeout_stops_the_firmware_with_124() {
    let _g = guard();
    let s = Scratch::new("timeout");
    let rep = s.path("r.json");
    let rep_s = rep.to_str().unwrap();
    let fw = fw();
    let timed = |init: &str, quiet: bool| {
        let mut args = vec!["--firmware", &fw, "--timeout", "1s", "--stop-timeout", "1"];
        args.extend(["--report", rep_s, "--", init]);
        if quiet {
            args.insert(0, "-q");
        }
        let t = Instant::now();
        let r = run(&args);
        (r, t.elapsed())
    };

    // An init that stops on its signal.
    let (r, took) = timed("/test/signals.sh", false);
    assert_eq!(r.code, 124, "{}", r.stderr);
    // Not before the --timeout (what it promises); the upper bound only
    // catches a hang, generous on a loaded host: that it stopped on its
    // signal rather than being killed is the line below.
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(15),
        "took {took:?}"
    );
    assert!(r.stdout.contains("got TERM"), "{}", r.stdout);
    let line = line_starting(&r.stderr, "fwrun: --timeout");
    assert!(
        line.starts_with("fwrun: --timeout 1s expired: sent SIGTERM; stopped after "),
        "{line}"
    );
    let v = read_report(&rep);
    assert_eq!(
        (&v["ending"]["kind"], &v["stop"]["reason"]),
        (&"timeout".into(), &"timeout".into())
    );
    assert_graceful(&v, line, took);

    // One that does not: killed a --stop-timeout later, still 124.
    let (r, took) = timed("/test/ignore-term.sh", false);
    assert_eq!(r.code, 124, "{}", r.stderr);
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(15),
        "took {took:?}"
    );
    assert_eq!(
        line_starting(&r.stderr, "fwrun: --timeout"),
        "fwrun: --timeout 1s expired: sent SIGTERM; did not stop within 1 s: \
         killed (every process of it)"
    );
    let v = read_report(&rep);
    let (stop, ms) = stop_of(&v);
    assert_eq!(
        (&stop["reason"], &stop["graceful"], &stop["killed_by"]),
        (
            &"timeout".into(),
            &Value::Bool(false),
            &"stop-timeout".into()
        ),
        "{v}"
    );
    assert!(ms >= Duration::from_secs(1), "{ms:?}");

    // -q: the report still tells, stderr says nothing.
    let (r, _) = timed("/test/ignore-term.sh", true);
    assert_eq!((r.code, r.stderr.as_str()), (124, ""));
    assert_eq!(read_report(&rep)["stop"]["graceful"], false);
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
    c.args(["--firmware", &fw()])
        .args(check_env())
        .args(["--", "/test/check.sh"]);
    // SAFETY: only close(2) between fork and exec.
    unsafe {
        c.pre_exec(|| {
            libc::close(0);
            Ok(())
        });
    }
    let out = finish(c);
    assert_eq!(out.code(), Some(0), "{}", out.show());
    assert!(out.stdout.contains("failures=0"), "{}", out.stdout);
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
    // Without waiting for the orphaned sleep's 100 s (generous bound).
    assert!(
        t.elapsed() < Duration::from_secs(50),
        "took {:?}",
        t.elapsed()
    );
    // An orphan (a child whose parent is gone) is reaped by the pid 1 it
    // falls to: its /proc entry, which a zombie keeps, goes away.
    let reaps = "(sleep 0.1 & echo $! > /tmp/orphan); orphan=$(cat /tmp/orphan); i=0; \
        while [ -e /proc/$orphan ]; do \
          i=$((i + 1)); [ $i -gt 500 ] && { echo \"not reaped: $(cat /proc/$orphan/stat)\"; exit 1; }; \
          usleep 10000; \
        done; echo reaped";
    let r = run(&[
        "--firmware",
        &fw(),
        "--as-pid2",
        "--",
        "/bin/sh",
        "-c",
        reaps,
    ]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "reaped\n"), "{}", r.stderr);
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
    // Well before the sleep's 30 s (generous on a loaded host).
    assert!(
        t.elapsed() < Duration::from_secs(20),
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
    assert!(
        said.contains("fwrun: interrupted (Ctrl-C): firmware stopped on SIGTERM after "),
        "{said}"
    );
}
