//! A run's own cgroup, as seen on this host. CI's host is cgroup v1 or
//! hybrid: there a run makes no cgroup, works as before, says why under
//! -v, and refuses every limit in one line before touching anything. (On a
//! cgroup v2 host the same flags are accepted; tests/vm_cgroup.rs proves
//! them in a guest that has the unified hierarchy.)

mod common;

use common::*;
use serde_json::Value;

fn fw() -> String {
    image("fw.ext2").to_str().unwrap().to_string()
}

/// Whether /sys/fs/cgroup is the unified hierarchy.
fn unified() -> bool {
    nix::sys::statfs::statfs("/sys/fs/cgroup")
        .map(|s| s.filesystem_type().0 == 0x6367_7270)
        .unwrap_or(false)
}

#[test]
fn limits_need_the_unified_hierarchy() {
    let _g = guard();
    if unified() {
        eprintln!(
            "skipped: the refusal of every limit on a cgroup v1 or hybrid host (this host \
             has the unified hierarchy; tests/vm_cgroup.rs proves the limits there)"
        );
        let r = run(&["--memory", "64M", "--firmware", &fw(), "--", "/bin/true"]);
        assert_eq!(r.code, 0, "a cgroup v2 host accepts --memory: {}", r.stderr);
        return;
    }
    for (flag, value) in [
        ("--memory", "64M"),
        ("--memory-swap", "1M"),
        ("--pids", "256"),
        ("--cpus", "0.5"),
        ("--io-weight", "100"),
        ("--cgroup-parent", "ci.slice"),
    ] {
        let r = run(&[flag, value, "--firmware", &fw(), "--", "/bin/true"]);
        assert_eq!(r.code, 125, "{flag}: {}", r.stderr);
        assert_one_line_naming(
            &r,
            &format!("{flag} needs the cgroup v2 unified hierarchy; this host has "),
        );
    }
}

#[test]
fn bad_limit_values_exit_125_in_one_line() {
    let _g = guard();
    for (flag, value) in [
        ("--memory", "12Q"),
        ("--memory", "0"),
        ("--pids", "0"),
        ("--cpus", "-1"),
        ("--cpus", "0"),
        ("--io-weight", "10001"),
        ("--cgroup-parent", "../x"),
    ] {
        let arg = format!("{flag}={value}");
        let r = run(&[&arg, "--firmware", &fw(), "--", "/bin/true"]);
        assert_eq!(r.code, 125, "{arg}: {}", r.stderr);
        assert_one_line_naming(&r, value);
    }
}

#[test]
fn without_limits_a_run_works_as_before_and_says_why_it_has_no_cgroup() {
    let _g = guard();
    if unified() {
        eprintln!(
            "skipped: a run without a cgroup of its own, said under -v (this host has the \
             unified hierarchy, where every run gets one: tests/vm_cgroup.rs)"
        );
        return;
    }
    let s = Scratch::new("cgroup-v1");
    let out = s.path("r.json");
    let r = run(&[
        "-v",
        "--report",
        out.to_str().unwrap(),
        "--firmware",
        &fw(),
        "--",
        "/bin/sh",
        "-c",
        "cat /proc/self/cgroup",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // The cgroup namespace is rooted at fwrun's own cgroup, as before.
    assert!(r.stdout.lines().any(|l| l == "0::/"), "{}", r.stdout);
    assert!(
        r.stderr
            .contains("fwrun: no cgroup of its own for the firmware: this host has "),
        "{}",
        r.stderr
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(v["cgroup"]["path"], Value::Null);
    assert!(v["cgroup"]["none_because"].is_string(), "{v}");
    assert_eq!(
        v["cgroup"]["limits"]["pids"],
        Value::Null,
        "no default limit on v1"
    );
    assert_eq!(v["cgroup"]["memory_peak_bytes"], Value::Null);
}
