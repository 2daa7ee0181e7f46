//! The cgroup tier: this host is cgroup v1/hybrid, so a run's own cgroup
//! (limits, delegation, cgroup.kill, the sweep, accounting) is proved in
//! the VM, whose guest mounts cgroup2 at /sys/fs/cgroup. tests/vm/run.sh
//! boots it; tests/vm/cgroup.sh is what runs inside.

mod common;

use std::fs;
use std::process::Command;

use common::*;

/// How many ok/not ok lines tests/vm/cgroup.sh prints, with
/// tests/vm/cgroup-faults.sh (which it sources, at its end) or without.
fn planned_checks(with_faults: bool) -> usize {
    let vm = repo().join("tests/vm");
    let mut text = fs::read_to_string(vm.join("cgroup.sh")).unwrap();
    if with_faults {
        text += &fs::read_to_string(vm.join("cgroup-faults.sh")).unwrap();
    }
    common::plan::plan_text(&text, &repo().join("tests/firmware/files"), "cgroup.sh")
}

/// The guest scripts can be counted (this runs without the VM), and the
/// fault steps add checks of their own.
#[test]
fn the_cgroup_scripts_checks_can_be_counted() {
    let (without, with) = (planned_checks(false), planned_checks(true));
    println!("cgroup.sh: {without} checks; with the fault steps: {with}");
    assert!(without > 50, "{without}");
    assert_eq!(with, without + 7);
}

#[test]
fn a_run_gets_a_cgroup_of_its_own_on_a_cgroup_v2_kernel() {
    let fw = firmware();
    let payload = repo().join("target/vm-cgroup-payload");
    let _ = fs::remove_dir_all(&payload);
    fs::create_dir_all(&payload).unwrap();
    let st = Command::new("objcopy")
        .args(["--strip-debug", env!("CARGO_BIN_EXE_fwrun")])
        .arg(payload.join("fwrun"))
        .status()
        .unwrap();
    assert!(st.success(), "objcopy failed");
    fs::copy(fw.join("fw.ext2"), payload.join("fw.ext2")).unwrap();
    let faults = repo().join("tests/vm/cgroup-faults.sh");
    if cfg!(feature = "fault-injection") {
        // The guest script then also injects faults at the cgroup's steps.
        fs::copy(&faults, payload.join("cgroup-faults.sh")).unwrap();
    } else {
        eprintln!(
            "skipped: the cgroup's fault steps (tests/vm/cgroup-faults.sh): this build has \
             no fault injection (cargo test --features fault-injection runs them)"
        );
    }

    let kernel = repo().join("target/vm-kernel");
    let st = Command::new("bash")
        .arg(repo().join("tests/vm/kernel.sh"))
        .arg(&kernel)
        .status()
        .unwrap();
    assert!(
        st.success(),
        "tests/vm/kernel.sh failed to get Debian's kernel"
    );

    let out = Command::new("bash")
        .arg(repo().join("tests/vm/run.sh"))
        .arg("--kernel-dir")
        .arg(&kernel)
        .arg("--payload")
        .arg(&payload)
        .arg("--script")
        .arg(repo().join("tests/vm/cgroup.sh"))
        .args(["--timeout", "300", "--memory", "1024"])
        .arg("--log")
        .arg(repo().join("target/vm-cgroup.log"))
        .output()
        .unwrap();
    let console = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let checks: Vec<&str> = console
        .lines()
        .filter(|l| l.starts_with("ok - ") || l.starts_with("not ok - "))
        .collect();
    assert!(
        out.status.success() && console.contains("FWRUN-VM-RESULT: pass"),
        "the cgroup VM tier failed (exit {:?}):\n{}\n--- stderr ---\n{stderr}",
        out.status.code(),
        console
    );
    assert!(!checks.iter().any(|l| l.starts_with("not ok")), "{console}");
    // Every check cgroup.sh makes ran (plan.rs counts them from its text),
    // those of the fault steps with it when they were put in the payload.
    assert_eq!(
        checks.len(),
        planned_checks(cfg!(feature = "fault-injection")),
        "not every check ran:\n{console}"
    );
    if let Some(ms) = console
        .lines()
        .find_map(|l| l.strip_prefix("BOMB-PROBE-MS "))
    {
        println!("a guest command during the fork bomb took {ms} ms (TCG)");
    }
    // The reports the guest printed hold to the schema, accounting and all.
    let reports: Vec<&str> = console
        .lines()
        .filter_map(|l| l.strip_prefix("REPORT-JSON "))
        .collect();
    assert_eq!(reports.len(), 2, "{console}");
    let schema: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(repo().join("schemas/report.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for text in reports {
        let v: serde_json::Value = serde_json::from_str(text).expect("a report is JSON");
        let errs: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
        assert!(errs.is_empty(), "{errs:#?}\n{text}");
        assert!(v["cgroup"]["path"].is_string(), "{text}");
        assert!(
            v["cgroup"]["memory_peak_bytes"].as_u64() > Some(0),
            "{text}"
        );
        assert!(v["cgroup"]["cpu_user_usec"].is_u64(), "{text}");
    }
    let _ = fs::remove_dir_all(&payload);
}
