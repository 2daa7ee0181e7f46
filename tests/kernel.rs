//! The firmware's own kernel, as root: its kernel log (/dev/kmsg relayed to
//! fwrun's stdout or --kmsg FILE, /proc/kmsg, never the host's log), its
//! boot line (/proc/cmdline), a tmpfs over /dev followed by `mdev -s`,
//! module loads refused or faked, the refusals every firmware makes summed
//! up in one line; and an init that behaves as OpenWrt's procd does
//! (tests/firmware/files/procd.sh), recognised and stopped as procd.

mod common;

use std::process::Command;
use std::time::Instant;

use common::bg::*;
use common::report::*;
use common::*;
use serde_json::Value;

fn fw() -> String {
    image("fw.ext2").display().to_string()
}

/// A run of `script` under `/bin/sh -c`, with `args` before the firmware,
/// and its report.
fn run_sh(args: &[&str], script: &str) -> (Run, Value) {
    let s = Scratch::new("kernel");
    let report = s.path("report.json");
    let fw = fw();
    let mut all: Vec<&str> = args.to_vec();
    let report_arg = report.display().to_string();
    all.extend([
        "--report",
        &report_arg,
        "--firmware",
        &fw,
        "--",
        "/bin/sh",
        "-c",
        script,
    ]);
    let r = run(&all);
    let rep = read_report(&report);
    assert_eq!(schema_errors(&rep), Vec::<String>::new());
    (r, rep)
}

/// The host's kernel log, as dmesg shows it.
fn host_dmesg() -> String {
    let out = Command::new("dmesg").output().expect("running dmesg");
    assert!(out.status.success(), "dmesg failed on the host");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn token(tag: &str) -> String {
    format!(
        "fwrun-{tag}-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    )
}

#[test]
fn the_kernel_log_goes_to_the_output_and_proc_kmsg_never_to_the_host() {
    let _g = guard();
    let t = token("kmsg");
    let script = format!(
        "echo '<3>{t}-a' > /dev/kmsg; echo '{t}-b' > /dev/kmsg; echo proc:; head -n 2 /proc/kmsg"
    );
    let (r, rep) = run_sh(&[], &script);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Once relayed by fwrun, once read back from /proc/kmsg (the two share
    // the output, in either order).
    for rec in [format!("<3>{t}-a"), format!("<12>{t}-b")] {
        let n = r.stdout.lines().filter(|l| *l == rec).count();
        assert_eq!(n, 2, "{rec}: {}", r.stdout);
    }
    assert!(r.stdout.contains("proc:\n"), "{}", r.stdout);
    assert_eq!(rep["kernel"]["kmsg_records"], 2, "{rep}");
    assert_eq!(rep["kernel"]["kmsg_file"], Value::Null);
    assert!(
        !host_dmesg().contains(&t),
        "the firmware's record reached the host's kernel log"
    );
}

#[test]
fn kmsg_file_gets_the_records_instead_of_stdout() {
    let _g = guard();
    let s = Scratch::new("kmsg-file");
    let file = s.path("kmsg.log");
    let t = token("kmsgfile");
    let file_arg = file.display().to_string();
    let script = format!("echo '<3>{t}' > /dev/kmsg; echo '<6>{t}-second' > /dev/kmsg; echo done");
    let (r, rep) = run_sh(&["--kmsg", &file_arg], &script);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "done\n", "the records went to stdout too");
    let got = std::fs::read_to_string(&file).unwrap();
    assert_eq!(got, format!("<3>{t}\n<6>{t}-second\n"));
    assert_eq!(rep["kernel"]["kmsg_file"], file_arg.as_str());
    assert!(!host_dmesg().contains(&t));
    // A file fwrun cannot write: one line, 125, before anything starts.
    let r = run(&[
        "--kmsg",
        "/proc/no/such/file",
        "--firmware",
        &fw(),
        "--",
        "/bin/true",
    ]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert_one_line_naming(&r, "--kmsg '/proc/no/such/file'");
}

#[test]
fn proc_cmdline_is_the_hosts_without_console_or_the_one_given() {
    let _g = guard();
    let host = std::fs::read_to_string("/proc/cmdline").unwrap();
    let expected: Vec<&str> = host
        .split_ascii_whitespace()
        .filter(|w| !w.starts_with("console="))
        .collect();
    let script =
        "cat /proc/cmdline; echo x > /proc/cmdline 2>/dev/null && echo written; cat /proc/cmdline";
    let (r, rep) = run_sh(&[], script);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let line = expected.join(" ");
    assert_eq!(r.stdout, format!("{line}\n{line}\n"), "{}", r.stderr);
    assert!(!r.stdout.contains("console="));
    assert_eq!(rep["kernel"]["cmdline"], line.as_str());

    let given = "root=/dev/mtdblock2 bootslot=b console=ttyS0,115200 init_debug=1";
    let (r, rep) = run_sh(&["--cmdline", given], script);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, format!("{given}\n{given}\n"));
    assert_eq!(rep["kernel"]["cmdline"], given);
    // A line with a control character is refused before anything starts.
    let r = run(&["--cmdline", "a\nb", "--firmware", &fw(), "--", "/bin/true"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
}

#[test]
fn a_tmpfs_over_dev_then_mdev_keeps_the_curated_dev() {
    let _g = guard();
    let script = "mount -t tmpfs mdev /dev && echo mounted; mdev -s 2>/dev/null; ls /dev";
    let (r, _) = run_sh(&["--console", "pty"], script);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let names: Vec<&str> = r.stdout.split_whitespace().collect();
    assert_eq!(names.first(), Some(&"mounted"), "{}", r.stdout);
    for want in ["null", "zero", "urandom", "console", "tty", "kmsg"] {
        assert!(names.contains(&want), "/dev lost {want}: {names:?}");
    }
    let host_disks = [
        "sd", "vd", "xvd", "hd", "nvme", "mmcblk", "loop", "mem", "kmem", "port", "dm-",
    ];
    let disks: Vec<&&str> = names
        .iter()
        .filter(|n| host_disks.iter().any(|d| n.starts_with(d)))
        .collect();
    assert!(
        disks.is_empty(),
        "host nodes in the firmware's /dev: {disks:?}"
    );
}

#[test]
fn module_loads_are_refused_by_default_and_faked_when_asked() {
    let _g = guard();
    // Not a module: were the load ever let through, the kernel would
    // refuse it as such.
    let script = "echo 'not a module' > /tmp/m.ko; insmod /tmp/m.ko 2>/dev/null; echo rc=$?";
    let (r, rep) = run_sh(&[], script);
    assert_eq!(r.stdout, "rc=1\n", "{}", r.stderr);
    let refused = rep["confinement"]["refused"].as_array().unwrap();
    // busybox's insmod tries finit_module, then init_module.
    let loads: Vec<&Value> = refused
        .iter()
        .filter(|x| {
            x["syscall"]
                .as_str()
                .is_some_and(|s| s.ends_with("init_module"))
        })
        .collect();
    assert!(
        !loads.is_empty() && loads.len() == refused.len(),
        "{refused:?}"
    );
    assert!(loads
        .iter()
        .all(|l| l["routine"] == "module loads and removals"));
    assert_eq!(rep["kernel"]["modules"], "refuse");
    // Summed up in one line, not listed.
    let n = loads.len();
    let said: Vec<&str> = r.stderr.lines().filter(|l| l.contains("refused")).collect();
    assert_eq!(
        said,
        [format!("fwrun: refused {n} call{} that firmware makes on its device, harmless here ({n} module loads and removals; -v lists them)", if n == 1 { "" } else { "s" })],
        "{}",
        r.stderr
    );
    // -v lists them.
    let (r, _) = run_sh(&["-v"], script);
    assert!(
        r.stderr.contains("  finit_module: loads a kernel module"),
        "{}",
        r.stderr
    );

    let (r, rep) = run_sh(&["--modules", "fake"], script);
    assert_eq!(r.stdout, "rc=0\n", "{}", r.stderr);
    assert_eq!(rep["kernel"]["modules"], "fake");
    assert_eq!(rep["kernel"]["modules_faked"], 1, "{rep}");
    assert_eq!(rep["confinement"]["refused"], serde_json::json!([]));
    assert!(!r.stderr.contains("refused"), "{}", r.stderr);
}

/// The stand-in procd: recognised by the string its binary carries, a pty
/// console with no terminal (its prompt reaches the output), its early
/// lines through /dev/kmsg, its askconsole given no host console=; on a
/// stop, SIGUSR2 (SIGTERM would reboot it); its shutdown's unmounts summed
/// up in one line.
#[test]
fn a_procd_like_init_boots_shows_its_console_and_powers_off_on_usr2() {
    let _g = guard();
    let s = Scratch::new("procd");
    let report = s.path("report.json");
    let report_arg = report.display().to_string();
    let fw = fw();
    let mut bg = Bg::start(&[
        "--report",
        &report_arg,
        "--name",
        "procd-like",
        "--firmware",
        &fw,
        "--",
        "/test/procd.sh",
    ]);
    bg.expect("<6>procd: - early -");
    bg.expect("Please press Enter to activate this console.");
    bg.expect("<6>procd: - init complete -");
    bg.expect("procd: up");
    bg.signal(libc::SIGTERM);
    let out = bg.finish();
    assert_eq!(out.code(), Some(143), "{}", out.show());
    assert!(out.stdout.contains("- power down -\n"), "{}", out.show());
    assert!(
        out.stderr.contains("firmware stopped on SIGUSR2 after "),
        "{}",
        out.stderr
    );
    let refusals: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("refused"))
        .collect();
    assert_eq!(refusals.len(), 1, "{}", out.stderr);
    assert!(
        refusals[0].starts_with("fwrun: refused ")
            && refusals[0].contains(" unmounts of fwrun's mounts"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("umount2 /"), "{}", out.stderr);
    let rep = read_report(&report);
    assert_eq!(schema_errors(&rep), Vec::<String>::new());
    assert_eq!(rep["detected"]["init"], "procd");
    assert_eq!(rep["detected"]["stop_signal"]["value"], "SIGUSR2");
    assert_eq!(rep["detected"]["console"]["value"], "pty");
    let refused = rep["confinement"]["refused"].as_array().unwrap();
    let unmounts: u64 = refused
        .iter()
        .filter(|x| x["routine"] == "unmounts of fwrun's mounts")
        .map(|x| x["count"].as_u64().unwrap())
        .sum();
    assert!(unmounts >= 5, "{refused:?}");
    assert!(
        rep["kernel"]["kmsg_records"].as_u64().unwrap() >= 4,
        "{rep}"
    );
}

/// Given the host's console on its command line, the stand-in (as procd's
/// askconsole does) finds no such node and asks nowhere; it says so in its
/// kernel log.
#[test]
fn a_procd_like_init_given_a_console_it_lacks_skips_it() {
    let _g = guard();
    let fw = fw();
    let mut bg = Bg::start(&[
        "--cmdline",
        "console=ttyS0,115200n8",
        "--firmware",
        &fw,
        "--",
        "/test/procd.sh",
    ]);
    bg.expect("<4>procd: skipping ttyS0");
    bg.expect("procd: up");
    bg.signal(libc::SIGTERM);
    let out = bg.finish();
    assert_eq!(out.code(), Some(143), "{}", out.show());
    assert!(!out.stdout.contains("Please press Enter"), "{}", out.stdout);
}

/// On a terminal, a firmware that left a line unfinished (a prompt) does
/// not swallow fwrun's stop line: it starts on a line of its own.
#[test]
fn the_stop_line_starts_on_a_line_of_its_own_on_a_terminal() {
    let _g = guard();
    let script = format!(
        "{bin} --console pty --timeout 1 --stop-timeout 1 --firmware {fw} -- /bin/sh -c 'printf partial-line; sleep 30'; echo \"exit=$?\"",
        bin = env!("CARGO_BIN_EXE_fwrun"),
        fw = fw()
    );
    let mut cmd = Command::new("bash");
    cmd.args(["-c", &script]);
    let mut p = rexpect::session::spawn_command(cmd, Some(20_000)).unwrap();
    let (said, _) = p.exp_regex("exit=[0-9]+").unwrap();
    p.exp_eof().unwrap();
    assert!(said.contains("partial-line\r\nfwrun: "), "{said:?}");
    assert!(!said.contains("partial-linefwrun"), "{said:?}");
}
