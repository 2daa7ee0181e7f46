//! --changes and --report: what a user or a CI job reads after a run. Every
//! report is checked against schemas/report.schema.json.

mod common;

use common::bg::*;
use common::report::*;
use common::*;
use serde_json::Value;

fn fw() -> String {
    image("fw.ext2").to_str().unwrap().to_string()
}

#[test]
fn a_normal_run_and_a_failing_init() {
    let _g = guard();
    let s = Scratch::new("report");
    let out = s.path("r.json");
    let out_s = out.to_str().unwrap();
    let r = run(&[
        "--report",
        out_s,
        "--name",
        "rep1",
        "--firmware",
        &fw(),
        "--",
        "/test/exit.sh",
        "0",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = read_report(&out);
    assert_eq!(v["name"], "rep1");
    assert_eq!(v["firmware"]["kind"], "ext2");
    assert_eq!(v["init"], serde_json::json!(["/test/exit.sh", "0"]));
    assert_eq!(v["ending"]["kind"], "exited");
    assert_eq!(v["exit_code"], 0);
    assert_eq!(v["boots"], 1);
    let phases: Vec<&str> = v["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for p in [
        "preflight",
        "namespace",
        "lower",
        "overlay",
        "start",
        "run",
        "teardown",
    ] {
        assert!(phases.contains(&p), "no phase {p}: {phases:?}");
    }
    assert_eq!(v["changes"], serde_json::json!([]));

    let r = run(&[
        "--report",
        out_s,
        "--firmware",
        &fw(),
        "--",
        "/test/exit.sh",
        "3",
    ]);
    assert_eq!(r.code, 3);
    let v = read_report(&out);
    assert_eq!(
        (v["ending"]["kind"].as_str(), v["exit_code"].as_i64()),
        (Some("exited"), Some(3))
    );

    let r = run(&["--report", out_s, "--firmware", &fw(), "--", "/test/segv"]);
    assert_eq!(r.code, 139);
    let v = read_report(&out);
    assert_eq!(v["ending"]["kind"], "signaled");
    assert_eq!(v["ending"]["signal"], "SIGSEGV");
    assert_eq!(v["exit_code"], 139);
}

#[test]
fn a_ctrl_c_stop_is_reported() {
    let _g = guard();
    let s = Scratch::new("report-int");
    let out = s.path("r.json");
    let mut bg = Bg::start(&[
        "--report",
        out.to_str().unwrap(),
        "--firmware",
        &fw(),
        "--",
        "/test/signals.sh",
    ]);
    bg.expect("ready");
    bg.signal(libc::SIGINT);
    assert_eq!(bg.finish().code(), Some(130));
    let v = read_report(&out);
    assert_eq!(v["ending"]["kind"], "interrupted");
    assert_eq!(v["ending"]["stop_reason"], "ctrl-c");
    assert_eq!(v["exit_code"], 130);
    assert_eq!(v["stop"]["reason"], "ctrl-c");
    assert_eq!(v["stop"]["signal"], "SIGTERM");
    assert_eq!(v["stop"]["graceful"], true);
}

/// A report the schema accepts, to change one thing at a time.
fn sample() -> Value {
    serde_json::json!({
        "version": 1,
        "name": "fw1",
        "firmware": { "path": "fw.ext2", "kind": "ext2" },
        "init": ["/sbin/init"],
        "start": "2026-01-01T00:00:00.000Z",
        "end": "2026-01-01T00:00:01.000Z",
        "phases": [{ "name": "run", "ms": 1000.0 }],
        "ending": { "kind": "interrupted", "signal": null, "stop_reason": "ctrl-c", "error": null },
        "stop": { "reason": "ctrl-c", "signal": "SIGTERM", "graceful": true, "killed_by": null, "ms": 312.5 },
        "exit_code": 130,
        "boots": 1,
        "ready_ms": null,
        "changes": [],
        "apparmor": { "mode": "auto", "profile": null, "denials": [] },
        "confinement": { "capabilities": ["chown"], "dropped_capabilities": ["sys_time"], "seccomp": true, "refused": [] },
        "cgroup": {
            "path": null, "none_because": "this host has cgroup v1", "init_oom_killed": false,
            "limits": { "memory_bytes": null, "memory_swap_bytes": null, "pids": null, "cpus": null, "io_weight": null },
            "memory_peak_bytes": null, "cpu_user_usec": null, "cpu_system_usec": null,
            "oom_kills": null, "pids_peak": null, "pids_refused": null
        },
        "network": {
            "mode": "veth",
            "interfaces": [{
                "name": "eth0", "kind": "veth", "host_name": "fw-fw1",
                "host_address": "169.254.77.2/24", "bridge": null
            }],
            "published": [{
                "host_address": "127.0.0.1", "host_port": 8080, "port": 80, "protocol": "tcp"
            }]
        },
        "detected": {
            "program": "/bin/busybox", "init": "busybox", "machine": "aarch64",
            "emulator": {
                "handler": "qemu-aarch64", "interpreter": "/usr/libexec/qemu-binfmt/aarch64-binfmt-P",
                "flags": "POF", "bound": false
            },
            "stop_signal": {
                "value": "SIGUSR2", "from": "auto",
                "why": "busybox init powers off on SIGUSR2 (SIGTERM makes it reboot)"
            },
            "console": {
                "value": "pty", "from": "auto",
                "why": "the init is busybox init, which writes its boot to /dev/console"
            }
        },
        "kernel": {
            "cmdline": "root=/dev/mtdblock2", "kmsg_file": null, "kmsg_records": 3,
            "modules": "refuse", "modules_faked": 0
        }
    })
}

/// The schema pins `kernel`, and a refusal's `routine` group.
#[test]
fn the_schema_pins_kernel_and_routine_refusals() {
    assert_eq!(schema_errors(&sample()), Vec::<String>::new());
    let mut v = sample();
    v["kernel"]["modules"] = "load".into();
    assert!(!schema_errors(&v).is_empty(), "an unknown --modules mode");
    let mut v = sample();
    v["kernel"]["kmsg_records"] = (-1).into();
    assert!(!schema_errors(&v).is_empty(), "a negative count");
    let mut v = sample();
    v["confinement"]["refused"] = serde_json::json!([{
        "syscall": "umount2", "target": "/proc", "reason": "fwrun's mount at /proc stays for the run",
        "count": 2, "routine": "unmounts of fwrun's mounts"
    }]);
    assert_eq!(schema_errors(&v), Vec::<String>::new());
    v["confinement"]["refused"][0]
        .as_object_mut()
        .unwrap()
        .remove("routine");
    assert!(
        !schema_errors(&v).is_empty(),
        "a refusal without its routine field"
    );
}

/// The schema pins `detected`: what fwrun writes passes (also before it
/// read anything), what it never writes is refused.
#[test]
fn the_schema_pins_detected() {
    let with = |key: &str, val: Value| {
        let mut v = sample();
        v["detected"][key] = val;
        schema_errors(&v)
    };
    let null = Value::Null;
    for key in [
        "program",
        "init",
        "machine",
        "emulator",
        "stop_signal",
        "console",
    ] {
        assert_eq!(with(key, null.clone()), Vec::<String>::new(), "{key}");
    }
    let chosen =
        |value: &str, from: &str| serde_json::json!({ "value": value, "from": from, "why": "x" });
    assert_eq!(
        with("stop_signal", chosen("SIGRTMIN+4", "flag")),
        Vec::<String>::new()
    );
    assert_eq!(
        with("console", chosen("inherit", "auto")),
        Vec::<String>::new()
    );
    for (key, bad) in [
        ("init", Value::from("openrc")),
        ("program", "bin/busybox".into()),
        ("stop_signal", chosen("USR2", "auto")),
        ("stop_signal", chosen("SIGTERM", "default")),
        ("console", chosen("serial", "auto")),
        (
            "emulator",
            serde_json::json!({ "handler": "q", "interpreter": "/q", "flags": "F" }),
        ),
    ] {
        assert!(!with(key, bad.clone()).is_empty(), "accepted: {key} {bad}");
    }
    let mut v = sample();
    v.as_object_mut().unwrap().remove("detected");
    assert!(!schema_errors(&v).is_empty());
}

/// --stop-signal auto: the test firmware's busybox init gets SIGUSR2 and
/// powers off on it; a plain command gets SIGTERM; the flag wins. The
/// report says which, from where and why.
#[test]
fn the_default_stop_signal_is_the_inits_own() {
    let _g = guard();
    let s = Scratch::new("report-auto");
    let out = s.path("r.json");
    // busybox init that boots and stays up.
    let inittab = s.path("inittab");
    std::fs::write(&inittab, "::sysinit:/bin/echo ready\n").unwrap();
    let bind = format!("{}:/etc/inittab:ro", inittab.display());
    let stop = |init: &[&str], extra: &[&str]| {
        let mut args = vec![
            "--bind",
            &bind,
            "--report",
            out.to_str().unwrap(),
            "--firmware",
        ];
        let f = fw();
        args.push(&f);
        args.extend(extra);
        args.push("--");
        args.extend(init);
        let mut bg = Bg::start(&args);
        bg.expect("ready");
        bg.signal(libc::SIGTERM);
        let code = bg.finish().code();
        (code, read_report(&out))
    };
    let (code, v) = stop(
        &[
            "/bin/sh",
            "-c",
            "trap 'exit 0' TERM; echo ready; while :; do sleep 1; done",
        ],
        &[],
    );
    assert_eq!(code, Some(143));
    let d = &v["detected"];
    assert_eq!(d["init"], Value::Null);
    assert_eq!(d["program"], "/bin/busybox");
    assert_eq!(d["machine"], std::env::consts::ARCH);
    assert_eq!(d["emulator"], Value::Null);
    assert_eq!(
        (&d["stop_signal"]["value"], &d["stop_signal"]["from"]),
        (&"SIGTERM".into(), &"auto".into())
    );
    assert_eq!(d["console"]["value"], "inherit");
    assert_eq!(v["stop"]["signal"], "SIGTERM");
    assert_eq!(v["stop"]["graceful"], true);

    let (code, v) = stop(&["/sbin/init"], &[]);
    assert_eq!(code, Some(143));
    let d = &v["detected"];
    assert_eq!(d["init"], "busybox");
    assert_eq!(
        (&d["console"]["value"], &d["console"]["from"]),
        (&"pty".into(), &"auto".into())
    );
    assert_eq!(
        (&d["stop_signal"]["value"], &d["stop_signal"]["from"]),
        (&"SIGUSR2".into(), &"auto".into())
    );
    assert!(d["stop_signal"]["why"]
        .as_str()
        .unwrap()
        .contains("powers off"));
    assert_eq!(v["stop"]["signal"], "SIGUSR2");
    assert_eq!(v["stop"]["graceful"], true, "{v}");

    let (_, v) = stop(
        &["/sbin/init"],
        &["--console", "inherit", "--stop-signal", "TERM"],
    );
    let d = &v["detected"];
    assert_eq!(
        (&d["stop_signal"]["value"], &d["stop_signal"]["from"]),
        (&"SIGTERM".into(), &"flag".into())
    );
    assert_eq!(
        (&d["console"]["value"], &d["console"]["from"]),
        (&"inherit".into(), &"flag".into())
    );
    assert_eq!(v["stop"]["signal"], "SIGTERM");
}

/// `fwrun ... -- /sbin/init > log 2>&1 < /dev/null`, no console flag: the
/// init gets a pty console whose output fwrun writes to the log, line ends
/// as a file has them, TERM=dumb, no escape sequence.
#[test]
fn an_inits_console_goes_to_a_log_file() {
    let _g = guard();
    let s = Scratch::new("report-log");
    let end = s.path("end.sh");
    std::fs::write(
        &end,
        "#!/bin/sh\necho \"demo firmware: TERM is $TERM\"\ntest -c /dev/console && echo \"demo firmware: console ok\"\npoweroff\n",
    )
    .unwrap();
    std::fs::set_permissions(&end, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let log = s.path("log");
    let script = format!(
        "{} --firmware {} --bind {}:/test/demo-end.sh:ro -- /sbin/init > {} 2>&1 < /dev/null",
        env!("CARGO_BIN_EXE_fwrun"),
        fw(),
        end.display(),
        log.display()
    );
    let mut c = std::process::Command::new("sh");
    c.args(["-c", &script]).env("TERM", "xterm-256color");
    let out = common::bg::finish(c);
    assert_eq!(out.code(), Some(0), "{}", out.show());
    let text = std::fs::read_to_string(&log).unwrap();
    for want in [
        "demo firmware: booting image as pid ",
        "demo firmware: TERM is dumb\n",
        "demo firmware: console ok\n",
        "fwrun: firmware powered off\n",
    ] {
        assert!(text.contains(want), "no {want:?} in the log:\n{text}");
    }
    assert!(
        !text.contains('\x1b'),
        "an escape sequence in the log:\n{text:?}"
    );
    assert!(
        !text.contains("\r\n"),
        "CRLF line ends in the log:\n{text:?}"
    );
}

/// The schema pins `network`: a veth, a bridge's veth and a moved
/// interface pass; what fwrun never writes is refused.
#[test]
fn the_schema_pins_network() {
    let with = |mode: &str, iface: Value| {
        let mut v = sample();
        v["network"] = serde_json::json!({ "mode": mode, "interfaces": [iface], "published": [] });
        schema_errors(&v)
    };
    let iface = |name: &str, kind: &str, host: &str, addr: Value, br: Value| {
        serde_json::json!({
            "name": name, "kind": kind, "host_name": host, "host_address": addr, "bridge": br
        })
    };
    let null = Value::Null;
    let ok = [
        (
            "bridge",
            iface("eth0", "veth", "fw-fw1", null.clone(), "br0".into()),
        ),
        (
            "none",
            iface("lan1", "moved", "tap0", null.clone(), null.clone()),
        ),
    ];
    for (mode, i) in ok {
        assert_eq!(with(mode, i), Vec::<String>::new());
    }
    let bad = [
        (
            "bridged",
            iface("eth0", "veth", "fw-fw1", null.clone(), "br0".into()),
        ),
        (
            "veth",
            iface("eth0", "tap", "fw-fw1", null.clone(), null.clone()),
        ),
        (
            "veth",
            iface(
                "eth0",
                "veth",
                "fw-a234567890123",
                null.clone(),
                null.clone(),
            ),
        ),
        (
            "veth",
            iface(
                "eth0",
                "veth",
                "fw-fw1",
                "169.254.77.2".into(),
                null.clone(),
            ),
        ),
        (
            "veth",
            iface("eth:0", "veth", "fw-fw1", null.clone(), null.clone()),
        ),
    ];
    for (mode, i) in bad {
        assert!(!with(mode, i.clone()).is_empty(), "accepted: {mode} {i}");
    }
    // --publish: each published port as fwrun writes it, and what it never
    // writes refused.
    let published = |p: Value| {
        let mut v = sample();
        v["network"]["published"] = serde_json::json!([p]);
        schema_errors(&v)
    };
    let port = |addr: &str, host: u32, inside: u32, proto: &str| serde_json::json!({ "host_address": addr, "host_port": host, "port": inside, "protocol": proto });
    assert_eq!(
        published(port("::1", 5353, 53, "udp")),
        Vec::<String>::new()
    );
    for bad in [
        port("127.0.0.1", 0, 80, "tcp"),
        port("127.0.0.1", 8080, 65536, "tcp"),
        port("127.0.0.1", 8080, 80, "sctp"),
        serde_json::json!({ "host_port": 8080, "port": 80, "protocol": "tcp" }),
    ] {
        assert!(!published(bad.clone()).is_empty(), "accepted: {bad}");
    }
}

/// The schema pins `stop`: each shape fwrun writes passes, and what it
/// never writes is refused. (No run, so no root needed.)
#[test]
fn the_schema_pins_stop() {
    let with = |edits: &[(&str, &str, Value)]| {
        let mut v = sample();
        for (obj, key, val) in edits {
            let target = if obj.is_empty() { &mut v } else { &mut v[*obj] };
            if val == &Value::String("<absent>".into()) {
                target.as_object_mut().unwrap().remove(*key);
            } else {
                target[*key] = val.clone();
            }
        }
        schema_errors(&v)
    };
    let null = Value::Null;
    assert_eq!(with(&[]), Vec::<String>::new());
    // Killed at the stop-timeout; stopped before the firmware started; a
    // firmware that ended by itself has no stop.
    let killed = [
        ("stop", "graceful", false.into()),
        ("stop", "killed_by", "stop-timeout".into()),
    ];
    assert_eq!(with(&killed), Vec::<String>::new());
    let early = [
        ("stop", "signal", null.clone()),
        ("stop", "graceful", null.clone()),
        ("stop", "ms", null.clone()),
    ];
    assert_eq!(with(&early), Vec::<String>::new());
    let exited = [
        ("ending", "kind", "exited".into()),
        ("ending", "stop_reason", null.clone()),
        ("", "stop", null.clone()),
    ];
    assert_eq!(with(&exited), Vec::<String>::new());

    let refused: &[&[(&str, &str, Value)]] = &[
        &[("", "stop", "<absent>".into())],
        &[("stop", "reason", "second-ctrl-c".into())],
        &[("stop", "killed_by", "stop-timeout".into())],
        &[("stop", "graceful", null.clone())],
        &[("stop", "ms", (-1).into())],
        &[("stop", "extra", 1.into())],
        &[("stop", "signal", null.clone())],
        &[("", "stop", null.clone())],
        &[
            ("ending", "kind", "exited".into()),
            ("ending", "stop_reason", null.clone()),
        ],
    ];
    for edits in refused {
        assert!(!with(edits).is_empty(), "accepted: {edits:?}");
    }
}

#[test]
fn a_launcher_error_is_reported_and_a_bad_report_path_refused() {
    let _g = guard();
    let s = Scratch::new("report-err");
    let out = s.path("r.json");
    let missing = s.path("missing.img");
    let r = run(&[
        "--report",
        out.to_str().unwrap(),
        "--firmware",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 125);
    let v = read_report(&out);
    assert_eq!(v["ending"]["kind"], "launcher-error");
    assert_eq!(v["exit_code"], 125);
    assert!(
        v["ending"]["error"]
            .as_str()
            .unwrap()
            .contains("missing.img"),
        "{v}"
    );
    assert_eq!(v["firmware"]["kind"], Value::Null);

    // Init not found: a launcher-side refusal with its own exit code.
    let r = run(&[
        "--report",
        out.to_str().unwrap(),
        "--firmware",
        &fw(),
        "--",
        "/nope",
    ]);
    assert_eq!(r.code, 127);
    let v = read_report(&out);
    assert_eq!(
        (v["ending"]["kind"].as_str(), v["exit_code"].as_i64()),
        (Some("launcher-error"), Some(127))
    );

    let nowhere = s.path("no/such/dir/r.json");
    let r = run(&["--report", nowhere.to_str().unwrap(), "--firmware", &fw()]);
    assert_eq!(r.code, 125);
    assert_one_line_naming(&r, "--report");
    let r = run(&["--report", s.0.to_str().unwrap(), "--firmware", &fw()]);
    assert_eq!(r.code, 125);
    assert_one_line_naming(&r, "is a directory");
}

/// A firmware that adds, modifies and deletes files and replaces a directory.
const CHANGER: &str = "echo new > /etc/added; echo changed > /etc/fw-version; rm /etc/hostname; \
                       rm -rf /test; mkdir /test; echo t > /test/fresh; mkdir -p /data/sub; echo d > /data/sub/f";

#[test]
fn changes_are_listed_correctly() {
    let _g = guard();
    let s = Scratch::new("changes");
    let out = s.path("r.json");
    let r = run(&[
        "-q",
        "--changes",
        "--report",
        out.to_str().unwrap(),
        "--firmware",
        &fw(),
        "--",
        "/bin/sh",
        "-c",
        CHANGER,
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let want = [
        "fwrun: 8 changes in the firmware's root:",
        "fwrun:   A /data",
        "fwrun:   A /data/sub",
        "fwrun:   A /data/sub/f",
        "fwrun:   A /etc/added",
        "fwrun:   M /etc/fw-version",
        "fwrun:   D /etc/hostname",
        "fwrun:   R /test",
        "fwrun:   A /test/fresh",
    ];
    let got: Vec<&str> = r.stderr.lines().collect();
    // The lines above, in path order.
    assert_eq!(got[..], want[..], "{}", r.stderr);
    let v = read_report(&out);
    let changes: Vec<(String, String)> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap().into(),
                c["change"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(changes.contains(&("/test".into(), "replaced-directory".into())));
    assert!(changes.contains(&("/etc/hostname".into(), "deleted".into())));
    assert_eq!(changes.len(), 8);

    // With --rw-dir the changes add up across runs, against the image.
    let rw = s.path("rw");
    let rw_s = rw.to_str().unwrap();
    let r = run(&[
        "-q",
        "--changes",
        "--rw-dir",
        rw_s,
        "--firmware",
        &fw(),
        "--",
        "/bin/sh",
        "-c",
        "echo 1 > /etc/one",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(&[
        "-q",
        "--changes",
        "--rw-dir",
        rw_s,
        "--firmware",
        &fw(),
        "--",
        "/bin/sh",
        "-c",
        "rm /etc/passwd",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stderr,
        "fwrun: 2 changes in the firmware's root:\nfwrun:   A /etc/one\nfwrun:   D /etc/passwd\n"
    );
}
