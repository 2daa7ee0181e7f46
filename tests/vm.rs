//! The AppArmor tier: the real fwrun binary and the real apparmor_parser in
//! a VM running Debian's AppArmor kernel (this host's kernel has none).
//! tests/vm/run.sh boots it; tests/vm/apparmor.sh is what runs inside.

mod common;

use std::fs;
use std::process::Command;

use common::*;

#[test]
fn apparmor_profile_holds_on_a_real_apparmor_kernel() {
    let want = vm_checks();
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
        // The sound core, for a /proc/asound whose mask check.sh checks.
        .args(["--module", "snd"])
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
    // Every check in apparmor.sh and in the firmware scripts it runs ran,
    // as many as their text makes.
    assert_eq!(
        checks.len(),
        want,
        "{} checks ran, the scripts make {want}:\n{console}",
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
    if let Some(ms) = console.lines().find_map(|l| l.strip_prefix("DEATH-MS ")) {
        println!("the firmware was gone {ms} ms (at most, polled) after fwrun's SIGKILL (TCG)");
    }
    let _ = fs::remove_dir_all(&payload);
}

/// How many ok/not ok lines tests/vm/apparmor.sh and the firmware check
/// scripts it runs print (common/plan.rs says how they are counted).
fn vm_checks() -> usize {
    let files = repo().join("tests/firmware/files");
    common::plan::planned(&repo().join("tests/vm/apparmor.sh"), &files)
}

/// The VM scripts can be counted (this runs without the VM).
#[test]
fn the_vm_scripts_checks_can_be_counted() {
    let files = repo().join("tests/firmware/files");
    for script in [
        "check.sh",
        "escape.sh",
        "devices.sh",
        "device-rcs.sh",
        "accidents.sh",
        "net-host.sh",
    ] {
        println!(
            "{script}: {} checks",
            common::plan::planned(&files.join(script), &files)
        );
    }
    println!(
        "apparmor.sh with the scripts it runs: {} checks",
        vm_checks()
    );
    let escape = common::plan::planned(&files.join("escape.sh"), &files);
    assert!(escape > 20, "{escape}");
    assert!(vm_checks() > 150 + escape, "{}", vm_checks());
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

#[cfg(test)]
mod plan_tests {
    use super::common::plan::*;
    use std::path::Path;

    fn plan(text: &str) -> usize {
        plan_text(text, Path::new("/nonexistent"), "test")
    }

    #[test]
    fn counts_helpers_loops_and_composites() {
        let text = r#"
ok() { echo "ok - $*"; }
check() { d=$1; shift; if "$@"; then ok "$d"; else echo "not ok - $d"; fi; }
wait_for() {
  while ! grep -q "$2" "$1"; do usleep 1; done
}
both() {
  check "one" true
  check "two # not a comment" true
}
check "a" true  # a comment with check in it
check 'b; check c' true; check "d" \
  true
wait_for /tmp/x ready
for what in 'x y' z \
    "w"; do
  check "$what" true
  both
done
for mode in a b; do
  for i in 1 2 3; do
    echo "COST $mode"
  done
done
check "e" sh -c '
  echo multi-line
  check inside quotes
'
"#;
        // a, b, d, e; 3 words x (1 + 2).
        assert_eq!(plan(text), 4 + 3 * 3);
    }

    #[test]
    #[should_panic(expected = "may not run")]
    fn a_check_under_a_condition_cannot_be_counted() {
        plan("check() { echo \"ok - $1\"; }\nif true; then\n  check x\nfi\n");
    }

    #[test]
    #[should_panic(expected = "may not run")]
    fn a_check_in_a_one_line_condition_cannot_be_counted() {
        plan(
            "say() { echo \"$1 - $2\"; [ $1 = ok ]; }\nif true; then say ok x; else say no x; fi\n",
        );
    }
}
