//! The CI workflow, as root: boot a firmware in the background, wait until
//! it is ready, run commands inside it (`fwrun enter`), list and stop runs.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::bg::{finish, Bg, KillOnDrop, Out, DEADLINE};
use common::*;
use serde_json::Value;

fn fw() -> String {
    image("fw.ext2").to_str().unwrap().to_string()
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_fwrun")
}

/// fwrun with these arguments, to its end (within the deadline).
fn fwrun_out(args: &[&str]) -> Out {
    let mut c = fwrun();
    c.args(args);
    finish(c)
}

/// A run of the test firmware's service init (it stays up, says
/// "fwtest login: " on its console), ready once it has.
fn service(name: &str, extra: &[&str]) -> Bg {
    let mut args: Vec<String> = vec!["--firmware".into(), fw(), "--name".into(), name.into()];
    args.extend(extra.iter().map(|a| a.to_string()));
    if !extra.contains(&"--ready-when") {
        args.extend(["--ready-when".into(), "console:login:".into()]);
    }
    args.extend(["--".into(), "/test/service.sh".into()]);
    Bg::start(&args)
}

fn wait_ready(name: &str) {
    let o = fwrun_out(&["wait", name, "--timeout", "30s"]);
    assert_eq!(o.code(), Some(0), "fwrun wait {name}: {}", o.show());
}

/// Stop a run with `fwrun stop`; the run's own output.
fn stop(name: &str, bg: Bg) -> Out {
    let o = fwrun_out(&["stop", name]);
    assert_eq!(o.code(), Some(0), "fwrun stop {name}: {}", o.show());
    let out = bg.finish();
    assert_eq!(out.code(), Some(143), "the run of {name}: {}", out.show());
    out
}

fn enter(name: &str, cmd: &[&str]) -> Out {
    let mut args = vec!["enter", name, "--"];
    args.extend_from_slice(cmd);
    fwrun_out(&args)
}

/// `fwrun list --json`, parsed.
fn list() -> Vec<Value> {
    let o = fwrun_out(&["list", "--json"]);
    assert_eq!(o.code(), Some(0), "{}", o.show());
    serde_json::from_str::<Value>(&o.stdout)
        .unwrap_or_else(|e| panic!("fwrun list --json: {e}: {}", o.stdout))
        .as_array()
        .unwrap()
        .clone()
}

fn listed<'a>(runs: &'a [Value], name: &str) -> Option<&'a Value> {
    runs.iter().find(|r| r["name"] == name)
}

/// The code block of README's "In CI" section that starts with `want`.
fn readme_block(want: &str) -> String {
    let readme = fs::read_to_string(repo().join("README.md")).unwrap();
    let section = readme
        .split("\n## In CI")
        .nth(1)
        .expect("README.md has an 'In CI' section");
    let section = section.split("\n## ").next().unwrap();
    section
        .split("```")
        .skip(1)
        .step_by(2)
        .find(|b| b.starts_with(want))
        .unwrap_or_else(|| panic!("README's 'In CI' has no ```{want} block"))
        .trim_start_matches(want)
        .to_string()
}

/// Replace `from`, which must occur exactly once, by `to`.
fn substitute(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "README's CI example must name {from:?} once:\n{text}"
    );
    text.replace(from, to)
}

#[test]
fn the_readme_ci_example_boots_waits_enters_lists_and_stops() {
    let g = guard();
    let s = Scratch::new("ci-readme");
    let script = readme_block("sh\n");
    let script = substitute(&script, "build/rootfs.ext4", &fw());
    let script = substitute(&script, "-- /sbin/init", "-- /test/service.sh");
    let script = substitute(
        &script,
        "-- /usr/bin/selftest",
        "-- sh -c 'hostname; cat /proc/1/cmdline | tr \"\\0\" \" \"; echo; exit 7'",
    );
    fs::write(s.path("ci.sh"), &script).unwrap();
    let path = format!(
        "{}:{}",
        Path::new(bin()).parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut c = Command::new("sh");
    c.arg(s.path("ci.sh")).current_dir(&s.0).env("PATH", path);
    let o = finish(c);
    // The script ends with the test's status.
    assert_eq!(o.code(), Some(7), "{}", o.show());
    // (The console's prompt has no newline: the command's output may
    // follow it on its line.)
    assert!(
        o.stdout.contains("t1\n/bin/sh /test/service.sh \n"),
        "the run's hostname and its init's command line: {}",
        o.show()
    );
    assert!(
        o.stdout.contains("the run ended with 143"),
        "the run's own exit code: {}",
        o.show()
    );
    let json_start = o.stdout.find("\n[").expect("fwrun list --json's array") + 1;
    let json_end = json_start + o.stdout[json_start..].find("\n]").unwrap() + 2;
    let runs: Value = serde_json::from_str(&o.stdout[json_start..json_end]).unwrap();
    let t1 = listed(runs.as_array().unwrap(), "t1").expect("t1 is listed");
    assert_eq!(t1["state"], "ready", "{t1}");
    assert!(t1["pid"].as_i64().unwrap() > 1, "{t1}");
    // The report says how long it took to be ready.
    let report: Value =
        serde_json::from_str(&fs::read_to_string(s.path("t1.json")).unwrap()).unwrap();
    assert!(report["ready_ms"].as_u64().is_some(), "{report}");
    assert_eq!(report["exit_code"], 143);
    drop(g);
}

/// The `ok - ` and `not ok - ` lines, loop device names made alike.
fn verdicts(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| l.starts_with("ok - ") || l.starts_with("not ok - "))
        .map(|l| {
            l.split_whitespace()
                .map(|w| match w.strip_prefix("loop") {
                    Some(n) if n.chars().all(|c| c.is_ascii_digit()) && !n.is_empty() => "loopN",
                    _ => w,
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

#[test]
fn enter_joins_the_firmware_and_is_confined_as_its_init_is() {
    let _g = guard();
    let img = image("fw.ext2");
    let cad = Setting::ctrl_alt_del();
    let level = Setting::console_level();
    let probe_env = [
        format!("CAD={}", cad.probe),
        format!("LEVEL={}", level.probe),
        format!("IMAGE={}", img.display()),
        // device-rcs.sh checks the masks the host's /proc calls for.
        check_env()[1].clone(),
    ];
    // The probes as the init, for comparison.
    let mut as_init = vec!["--firmware", img.to_str().unwrap(), "--apparmor", "off"];
    for e in &probe_env {
        as_init.extend(["--env", e]);
    }
    let init_accidents = run(&[&as_init[..], &["--", "/test/accidents.sh"]].concat());
    let init_rcs = run(&[&as_init[..], &["--", "/test/device-rcs.sh"]].concat());
    let (cad_kept, level_kept) = (cad.unchanged(), level.unchanged());
    assert_eq!(init_accidents.code, 0, "{}", init_accidents.stdout);
    assert!(
        cad_kept && level_kept,
        "the init changed the host's settings"
    );
    assert_eq!(init_rcs.code, 0, "{}", init_rcs.stdout);

    let bg = service("e1", &["--apparmor", "off"]);
    wait_ready("e1");
    let o = enter(
        "e1",
        &[
            "sh",
            "-c",
            "echo pid=$$; hostname; cat /etc/fw-version; ps; \
             awk '$5 == \"/\" {print \"root=\" $0}' /proc/self/mountinfo; \
             grep -E '^(CapBnd|CapEff|Seccomp|NoNewPrivs):' /proc/self/status /proc/1/status; \
             echo FWRUN_NAME=$FWRUN_NAME V=$V",
        ],
    );
    assert_eq!(o.code(), Some(0), "{}", o.show());
    let out = &o.stdout;
    assert!(!out.contains("pid=1\n"), "{out}");
    assert!(out.contains("\ne1\n") && out.contains("\nimage\n"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains(" 1 root") && l.contains("/test/service.sh")),
        "ps inside shows the init: {out}"
    );
    assert!(
        out.contains("fwrun-e1"),
        "the firmware's overlay is its root: {out}"
    );
    // The same capabilities and filter as the init.
    for field in ["CapBnd", "CapEff", "Seccomp", "NoNewPrivs"] {
        let values: BTreeSet<&str> = out
            .lines()
            .filter(|l| l.contains(&format!(":{field}:")))
            .map(|l| l.rsplit(':').next().unwrap().trim())
            .collect();
        assert_eq!(values.len(), 1, "{field} differs from the init's: {out}");
    }
    assert!(out.contains("Seccomp:\t2"), "{out}");
    assert!(out.contains("FWRUN_NAME=e1 V="), "{out}");
    let o = fwrun_out(&["enter", "--env", "V=1", "e1", "--", "sh", "-c", "echo V=$V"]);
    assert_eq!(o.stdout, "V=1\n", "{}", o.show());

    // The confinement probes from inside give what they give the init.
    let mut args = vec!["enter"];
    for e in &probe_env {
        args.extend(["--env", e]);
    }
    args.extend(["e1", "--", "/test/accidents.sh"]);
    let accidents = fwrun_out(&args);
    let kept = (cad.unchanged(), level.unchanged());
    assert_eq!(accidents.code(), Some(0), "{}", accidents.show());
    assert_eq!(
        verdicts(&accidents.stdout),
        verdicts(&init_accidents.stdout)
    );
    // Each accident accidents.sh says was refused with EPERM by fwrun is
    // in what enter says it refused (it has no --report of its own).
    for want in [
        "clock_settime",
        "init_module",
        "syslog action 8",
        "swapon",
        "mount debugfs at /mnt/d",
    ] {
        assert!(
            accidents
                .stderr
                .lines()
                .any(|l| l.starts_with("fwrun: ") && l.contains(want)),
            "enter does not name {want:?} among what it refused: {}",
            accidents.show()
        );
    }
    let mut args = vec!["enter"];
    for e in &probe_env {
        args.extend(["--env", e]);
    }
    args.extend(["e1", "--", "/test/device-rcs.sh"]);
    let rcs = fwrun_out(&args);
    assert_eq!(rcs.code(), Some(0), "{}", rcs.show());
    assert_eq!(verdicts(&rcs.stdout), verdicts(&init_rcs.stdout));
    assert_eq!(
        kept,
        (true, true),
        "an entered command changed the host's settings"
    );

    // Exit statuses: the command's, 126 and 127 as for the init.
    assert_eq!(enter("e1", &["sh", "-c", "exit 42"]).code(), Some(42));
    assert_eq!(
        enter("e1", &["sh", "-c", "kill -TERM $$"]).code(),
        Some(143)
    );
    let o = enter("e1", &["/test/not-executable"]);
    assert_eq!(o.code(), Some(126), "{}", o.show());
    let o = enter("e1", &["no-such-command"]);
    assert_eq!(o.code(), Some(127), "{}", o.show());
    assert_eq!(o.errors().len(), 1, "{}", o.show());
    stop("e1", bg);
}

#[test]
fn enter_on_a_terminal_is_an_interactive_shell() {
    let _g = guard();
    let bg = service("tty1", &[]);
    wait_ready("tty1");
    let script = format!("{} enter tty1; echo \"exit=$?\"", bin());
    let mut cmd = Command::new("bash");
    cmd.args(["-c", &script]);
    let mut p = rexpect::session::spawn_command(cmd, Some(20_000)).unwrap();
    p.send_line("echo hello-$((6*7))").unwrap();
    p.exp_string("hello-42").unwrap();
    p.send_line("tty; echo pid=$$").unwrap();
    p.exp_regex("/dev/pts/[0-9]+").unwrap();
    // Ctrl-C interrupts a sleep inside, and neither the shell nor the run.
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
    p.send_line("exit 3").unwrap();
    p.exp_string("exit=3").unwrap();
    p.exp_eof().unwrap();
    let runs = list();
    assert_eq!(listed(&runs, "tty1").unwrap()["state"], "ready");
    stop("tty1", bg);
}

#[test]
fn console_readiness_on_the_pty_console() {
    let _g = guard();
    // fwrun on a terminal: the console is a pty, relayed; readiness reads it.
    let script = format!(
        "{} --firmware {} --name ptyready --ready-when console:'login: $' -- /test/service.sh; echo \"exit=$?\"",
        bin(),
        fw()
    );
    let mut cmd = Command::new("bash");
    cmd.args(["-c", &script]);
    let mut p = rexpect::session::spawn_command(cmd, Some(20_000)).unwrap();
    p.exp_string("fwtest login: ").unwrap();
    wait_ready("ptyready");
    let o = fwrun_out(&["stop", "ptyready"]);
    assert_eq!(o.code(), Some(0), "{}", o.show());
    let (said, code) = p.exp_regex("exit=[0-9]+").unwrap();
    assert_eq!(code, "exit=143", "{said}");
    assert!(said.contains("firmware ready after"), "{said}");
}

/// `GET /` at ADDR:PORT, the connection closed before this returns (a
/// socket left open would hold the route over a veth that is to go).
fn http_get(addr: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("the firmware's httpd answers once ready");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut page = String::new();
    s.read_to_string(&mut page).unwrap();
    page
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn tcp_readiness_from_the_host_and_a_ready_timeout() {
    let _g = guard();
    // --net host, the firmware's httpd on the loopback address only.
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let bg = service(
        "web1",
        &[
            "--net",
            "host",
            "--env",
            &format!("HTTPD={addr}"),
            "--ready-when",
            &format!("tcp:{addr}"),
        ],
    );
    wait_ready("web1");
    let page = http_get(&addr);
    assert!(page.contains("fwtest is up"), "{page}");
    let out = stop("web1", bg);
    assert!(
        out.stderr.contains("firmware ready after "),
        "{}",
        out.show()
    );

    // Never ready: 124 after --ready-timeout, and nothing is left (the
    // guard checks).
    let s = Scratch::new("ci-ready");
    let rep = s.path("r.json");
    let t = Instant::now();
    let o = fwrun_out(&[
        "--firmware",
        &fw(),
        "--ready-when",
        "file:/never",
        "--ready-timeout",
        "2s",
        "--report",
        rep.to_str().unwrap(),
        "--",
        "/test/service.sh",
    ]);
    assert_eq!(o.code(), Some(124), "{}", o.show());
    assert!(t.elapsed() >= Duration::from_secs(2) && t.elapsed() < Duration::from_secs(12));
    assert!(
        o.stderr.contains("not ready within --ready-timeout"),
        "{}",
        o.show()
    );
    let report: Value = serde_json::from_str(&fs::read_to_string(&rep).unwrap()).unwrap();
    assert_eq!(report["ending"]["stop_reason"], "not-ready");
    assert_eq!(report["ready_ms"], Value::Null);
    // tcp: under --net none is tried from inside the firmware's network
    // (tests/publish.rs).
}

/// `ip route get ADDR`'s device.
fn route_dev(addr: &str) -> String {
    let out = Command::new("ip")
        .args(["route", "get", addr])
        .output()
        .expect("running ip (apt-get install iproute2)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split_whitespace()
        .skip_while(|w| *w != "dev")
        .nth(1)
        .unwrap_or("")
        .to_string()
}

#[test]
fn tcp_readiness_over_the_veth() {
    let _g = guard();
    // Link-local addresses on the veth fwrun makes (fwrun refuses one whose
    // network the host already routes elsewhere).
    let bg = Bg::start(&[
        "--firmware",
        &fw(),
        "--name",
        "webv",
        "--net",
        "veth:169.254.79.2/24",
        "--ready-when",
        "tcp:169.254.79.1:80",
        "--",
        "/test/net.sh",
        "169.254.79.1/24",
    ]);
    wait_ready("webv");
    assert_eq!(route_dev("169.254.79.1"), "fw-webv");
    assert!(http_get("169.254.79.1:80").contains("page of webv"));
    let runs = list();
    let net = &listed(&runs, "webv").unwrap()["network"];
    assert_eq!(net["mode"], "veth", "{net}");
    assert_eq!(net["interface"], "fw-webv", "{net}");
    assert_eq!(net["address"], "169.254.79.2/24", "{net}");
    let out = stop("webv", bg);
    assert!(
        out.stderr.contains("firmware ready after "),
        "{}",
        out.show()
    );
}

/// Which terminal an entered command's stdin is, said from inside: the
/// firmware's own pty (its devpts, where `enter` makes one) or another.
const WHICH_TTY: &str =
    "if [ \"$(stat -L -c %d /proc/self/fd/0)\" = \"$(stat -c %d /dev/pts/ptmx)\" ]; \
     then echo own-pty; else echo not-own-pty; fi";

/// `enter -t` gives the command a pty even when stdin is no terminal;
/// `enter -T` gives it none even when stdin is one (it gets fwrun's own).
#[test]
fn enter_t_forces_a_pty_and_enter_capital_t_none() {
    let _g = guard();
    let bg = service("tty2", &[]);
    wait_ready("tty2");
    // stdin is /dev/null here: no pty unless -t.
    let o = fwrun_out(&["enter", "tty2", "--", "sh", "-c", WHICH_TTY]);
    assert_eq!(o.stdout.trim(), "not-own-pty", "{}", o.show());
    let o = fwrun_out(&["enter", "-t", "tty2", "--", "sh", "-c", WHICH_TTY]);
    assert_eq!(o.code(), Some(0), "{}", o.show());
    assert!(
        o.stdout.contains("own-pty") && !o.stdout.contains("not-own-pty"),
        "{}",
        o.show()
    );
    // On a terminal: a pty of the firmware's unless -T.
    for (flag, want) in [(None, "own-pty"), (Some("-T"), "not-own-pty")] {
        let script = format!(
            "{} enter {} tty2 -- sh -c '{}'; echo \"exit=$?\"",
            bin(),
            flag.unwrap_or(""),
            WHICH_TTY.replace('\'', "'\\''")
        );
        let mut cmd = Command::new("bash");
        cmd.args(["-c", &script]);
        let mut p = rexpect::session::spawn_command(cmd, Some(20_000)).unwrap();
        let before = p.exp_string("exit=0").unwrap();
        let said: Vec<&str> = before
            .lines()
            .map(str::trim)
            .filter(|l| l.ends_with("own-pty"))
            .collect();
        assert_eq!(said, [want], "{flag:?}: {before:?}");
    }
    stop("tty2", bg);
}

#[test]
fn file_and_exec_readiness_and_the_ready_fd() {
    let _g = guard();
    let s = Scratch::new("ci-fd");
    let said = s.path("ready-fd");
    // fwrun under a shell that opens descriptor 3 for it.
    let script = format!(
        "exec 3>{f}; exec {bin} --firmware {fw} --name rf1 --ready-fd 3 \
         --ready-when file:/root/go --ready-when exec:'grep -q yes /root/go' -- /test/service.sh",
        f = said.display(),
        bin = bin(),
        fw = fw()
    );
    let mut c = Command::new("bash");
    c.args(["-c", &script])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = KillOnDrop::new(c.spawn().unwrap());
    let deadline = Instant::now() + DEADLINE;
    // Booting, and not ready while the file is missing or says no.
    loop {
        let runs = list();
        if listed(&runs, "rf1").is_some_and(|r| r["pid"].is_i64()) {
            break;
        }
        assert!(Instant::now() < deadline, "rf1 never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        enter("rf1", &["sh", "-c", "echo no > /root/go"]).code(),
        Some(0)
    );
    let o = fwrun_out(&["wait", "rf1", "--timeout", "1s"]);
    assert_eq!(o.code(), Some(124), "{}", o.show());
    assert_eq!(listed(&list(), "rf1").unwrap()["state"], "booting");
    assert_eq!(fs::read_to_string(&said).unwrap(), "");
    assert_eq!(
        enter("rf1", &["sh", "-c", "echo yes > /root/go"]).code(),
        Some(0)
    );
    wait_ready("rf1");
    assert_eq!(fs::read_to_string(&said).unwrap(), "ready\n");
    let o = fwrun_out(&["stop", "rf1"]);
    assert_eq!(o.code(), Some(0), "{}", o.show());
    let st = child.wait_by(Instant::now() + DEADLINE, "the stopped run rf1");
    assert_eq!(st.code(), Some(143));
    // A descriptor that is not open is bad input.
    let o = fwrun_out(&["--firmware", &fw(), "--ready-fd", "9", "--", "/bin/true"]);
    assert_eq!(o.code(), Some(125), "{}", o.show());
}

#[test]
fn wait_stop_and_enter_on_runs_that_are_not_there() {
    let _g = guard();
    // A run that ends before it is ready.
    let bg = Bg::start(&[
        "--firmware",
        &fw(),
        "--name",
        "short1",
        "--ready-when",
        "file:/never",
        "--",
        "/bin/sh",
        "-c",
        "sleep 1",
    ]);
    let o = fwrun_out(&["wait", "short1", "--timeout", "30s"]);
    assert_eq!(o.code(), Some(1), "{}", o.show());
    assert_eq!(
        o.errors(),
        ["fwrun: run 'short1' ended before it was ready"]
    );
    assert_eq!(bg.finish().code(), Some(0));
    for (args, code, says) in [
        (
            &["stop", "nosuch"][..],
            1,
            "no run named 'nosuch' is running",
        ),
        (
            &["enter", "nosuch", "--", "true"][..],
            125,
            "no run named 'nosuch'",
        ),
        (&["enter", "a/b"][..], 125, "a/b"),
        (&["stop", "-x"][..], 125, "-x"),
        (
            &["wait", "nosuch", "--timeout", "300ms"][..],
            124,
            "not ready within",
        ),
    ] {
        let o = fwrun_out(args);
        assert_eq!(o.code(), Some(code), "{args:?}: {}", o.show());
        assert_eq!(o.errors().len(), 1, "{args:?}: {}", o.show());
        assert!(o.stderr.contains(says), "{args:?}: {}", o.show());
    }
    // A state directory that is not root's is never entered.
    let fake = Path::new("/run/fwrun/fake-other");
    fs::create_dir_all(fake).unwrap();
    std::os::unix::fs::chown(fake, Some(65534), Some(65534)).unwrap();
    let o = fwrun_out(&["enter", "fake-other", "--", "true"]);
    let _ = fs::remove_dir_all(fake);
    assert_eq!(o.code(), Some(125), "{}", o.show());
    assert!(
        o.stderr.contains("not a run's state directory"),
        "{}",
        o.show()
    );
}

#[test]
fn stop_kill_and_timeout_end_a_firmware_that_ignores_its_stop_signal() {
    let _g = guard();
    for (name, how) in [
        ("stub1", &["--kill"][..]),
        ("stub2", &["--timeout", "1s"][..]),
    ] {
        let mut bg = Bg::start(&[
            "--firmware",
            &fw(),
            "--name",
            name,
            "--stop-timeout",
            "60",
            "--",
            "/test/ignore-term.sh",
        ]);
        bg.expect("ready");
        let t = Instant::now();
        let o = fwrun_out(&[&["stop", name][..], how].concat());
        assert_eq!(o.code(), Some(0), "{}", o.show());
        // The run's own --stop-timeout is 60 s: well under it, the stop
        // was the kill asked for (the bound is generous on a loaded host).
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "{name}: {:?}",
            t.elapsed()
        );
        let out = bg.finish();
        assert_eq!(out.code(), Some(143), "{}", out.show());
    }
}

#[test]
fn list_shows_live_runs_only_and_sweeps_the_dead() {
    let _g = guard();
    let live = service("l1", &[]);
    wait_ready("l1");
    let mut dead = Bg::start(&[
        "--firmware",
        &fw(),
        "--name",
        "l2",
        "--",
        "/test/signals.sh",
    ]);
    dead.expect("ready");
    dead.signal(libc::SIGKILL);
    assert_eq!(dead.finish().signal(), Some(libc::SIGKILL));
    let o = fwrun_out(&["list"]);
    assert_eq!(o.code(), Some(0), "{}", o.show());
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("NETWORK"),
        "{}",
        o.stdout
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("l1 ") && l.contains(" ready ")),
        "{}",
        o.stdout
    );
    assert!(!o.stdout.contains("l2"), "{}", o.stdout);
    assert!(
        !Path::new("/run/fwrun/l2").exists(),
        "the dead run was swept"
    );
    let runs = list();
    let l1 = listed(&runs, "l1").unwrap();
    assert_eq!(l1["network"]["mode"], "none");
    assert_eq!(l1["firmware"], fw());
    // The array's schema.
    let schema: Value =
        serde_json::from_str(&fs::read_to_string(repo().join("schemas/list.schema.json")).unwrap())
            .unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = v
        .iter_errors(&Value::Array(runs.clone()))
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    stop("l1", live);
}

#[test]
fn eight_runs_each_entered_ten_times_while_running() {
    let _g = guard();
    let names: Vec<String> = (0..8).map(|i| format!("par{i}")).collect();
    let runs: Vec<Bg> = names.iter().map(|n| service(n, &[])).collect();
    for n in &names {
        wait_ready(n);
    }
    let threads: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let n = n.clone();
            std::thread::spawn(move || {
                for j in 0..10 {
                    let code = (i * 10 + j) as i32;
                    let o = enter(&n, &["sh", "-c", &format!("hostname; exit {code}")]);
                    assert_eq!(o.code(), Some(code), "{n} #{j}: {}", o.show());
                    assert_eq!(o.stdout, format!("{n}\n"), "{}", o.show());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("an enter failed");
    }
    for (n, bg) in names.iter().zip(runs) {
        stop(n, bg);
    }
}
