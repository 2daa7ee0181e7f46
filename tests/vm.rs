//! The AppArmor tier: the real fwrun binary and the real apparmor_parser in
//! a VM running Debian's AppArmor kernel (this host's kernel has none).
//! tests/vm/run.sh boots it; tests/vm/apparmor.sh is what runs inside.

mod common;

use std::fs;
use std::process::Command;

use common::*;

#[test]
fn apparmor_profile_holds_on_a_real_apparmor_kernel() {
    let fw = firmware();
    let payload = repo().join("target/vm-payload");
    let _ = fs::remove_dir_all(&payload);
    fs::create_dir_all(&payload).unwrap();
    // The binary under test, without its debug info (the initramfs is smaller).
    let st = Command::new("objcopy")
        .args(["--strip-debug", env!("CARGO_BIN_EXE_fwrun")])
        .arg(payload.join("fwrun"))
        .status()
        .unwrap();
    assert!(st.success(), "objcopy failed");
    fs::copy(fw.join("fw.ext2"), payload.join("fw.ext2")).unwrap();

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
    // A real module file for the guest's insmod probe (loop is loaded there
    // already, so even an insmod that got through would change nothing).
    let module = Command::new("find")
        .arg(&kernel)
        .args(["-name", "loop.ko", "-print", "-quit"])
        .output()
        .unwrap();
    let module = String::from_utf8_lossy(&module.stdout).trim().to_string();
    assert!(!module.is_empty(), "the kernel package has no loop.ko");
    fs::copy(&module, payload.join("loop.ko")).unwrap();

    let log = repo().join("target/vm-apparmor.log");
    let out = Command::new("bash")
        .arg(repo().join("tests/vm/run.sh"))
        .arg("--kernel-dir")
        .arg(&kernel)
        .arg("--payload")
        .arg(&payload)
        .arg("--script")
        .arg(repo().join("tests/vm/apparmor.sh"))
        .args(["--timeout", "400", "--memory", "1024"])
        .arg("--log")
        .arg(&log)
        .output()
        .unwrap();
    let console = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let checks: Vec<&str> = console
        .lines()
        // The firmware's own ok/not ok lines come indented by "    | ".
        .map(|l| l.trim_start_matches("    | "))
        .filter(|l| l.starts_with("ok - ") || l.starts_with("not ok - "))
        .collect();
    assert!(
        out.status.success() && console.contains("FWRUN-VM-RESULT: pass"),
        "the VM tier failed (exit {:?}):\n{}\n--- stderr ---\n{stderr}",
        out.status.code(),
        console
    );
    assert!(!checks.iter().any(|l| l.starts_with("not ok")), "{console}");
    // Every check in apparmor.sh and in the firmware scripts it runs ran.
    assert!(
        checks.len() >= 148,
        "only {} checks ran:\n{console}",
        checks.len()
    );
    // fwrun enter's command is confined as the init is (apparmor.sh, 2e).
    for check in [
        "ok - the entered command runs under the run's profile",
        "ok - device-rcs.sh: the same verdicts as from the init",
        "ok - accidents.sh: the same verdicts as from the init",
        "ok - escape.sh through fwrun enter, the profile alone",
    ] {
        assert!(
            checks.iter().any(|c| c.starts_with(check)),
            "{check:?} did not run:\n{console}"
        );
    }
    print_profile_cost(&console);
    let _ = fs::remove_dir_all(&payload);
}

/// The guest script's "COST MODE PHASE: MS" lines (fwrun -v, five runs
/// with the profile and five without), as medians: what the AppArmor
/// profile costs against the whole run. Shown with --nocapture.
fn print_profile_cost(console: &str) {
    let mut by: std::collections::BTreeMap<(String, String), Vec<f64>> = Default::default();
    for line in console.lines() {
        let Some(rest) = line.strip_prefix("COST ") else {
            continue;
        };
        let Some((head, ms)) = rest.rsplit_once(' ') else {
            continue;
        };
        let Ok(ms) = ms.parse::<f64>() else { continue };
        let (mode, phase) = head.split_once(' ').unwrap_or((head, ""));
        let phase = phase
            .split(" /")
            .next()
            .unwrap_or(phase)
            .trim_end_matches(':');
        by.entry((mode.to_string(), phase.to_string()))
            .or_default()
            .push(ms);
    }
    let mut total: std::collections::BTreeMap<String, f64> = Default::default();
    println!("AppArmor profile cost in the VM (fwrun -v, medians of 5 runs, ms):");
    for ((mode, phase), mut v) in by {
        v.sort_by(f64::total_cmp);
        let median = v[v.len() / 2];
        *total.entry(mode.clone()).or_default() += median;
        println!("  {mode:8} {phase:48} {median:8.1}");
    }
    for (mode, t) in total {
        println!("  {mode:8} {:48} {t:8.1}", "whole run (sum of the phases)");
    }
}
