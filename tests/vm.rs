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
    // Every check in apparmor.sh and in the firmware's escape.sh ran.
    assert!(
        checks.len() >= 66,
        "only {} checks ran:\n{console}",
        checks.len()
    );
    let _ = fs::remove_dir_all(&payload);
}
