//! Foreign-architecture firmware, as root: Debian's arm64 busybox-static in
//! an ext2 image (tests/firmware/busybox-arm64.sh), run through qemu-user
//! by a binfmt_misc handler the test registers under a name of its own,
//! with the F flag and without it, and refused without any handler. Also:
//! a missing #! interpreter or dynamic loader is named, not the init.
//!
//! Each test puts the machine's binfmt_misc back as it found it, on every
//! exit path: its own handler removed, a handler it disabled for the same
//! machine (qemu-user-static's qemu-aarch64) enabled again, binfmt_misc
//! unmounted if the test mounted it.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::bg::*;
use common::report::*;
use common::*;
use serde_json::Value;

const BINFMT: &str = "/proc/sys/fs/binfmt_misc";
const NAME: &str = "fwrun-test-aarch64";
/// An aarch64 ELF header, as qemu-user-static registers it, and its mask.
const MAGIC: &str =
    r"\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00";
const MASK: &str =
    r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff";
/// The magic as the kernel lists a handler's.
const MAGIC_HEX: &str = "7f454c460201010000000000000000000200b700";
const QEMU: &str = "/usr/bin/qemu-aarch64-static";

/// The arm64 firmware image, built (or found in the cache) by its script;
/// a failure to build it fails the test.
fn arm64_image() -> PathBuf {
    let out = repo().join("target/fwtest-arm64");
    let st = Command::new("bash")
        .arg(repo().join("tests/firmware/busybox-arm64.sh"))
        .arg("/var/cache/fwrun-tests")
        .arg(&out)
        .status()
        .expect("running tests/firmware/busybox-arm64.sh");
    assert!(st.success(), "building the arm64 test firmware failed");
    assert!(
        Path::new(QEMU).exists(),
        "{QEMU} is missing: scripts/deps.sh installs qemu-user-static"
    );
    out.join("arm64.ext2")
}

/// The machine's binfmt_misc, changed for one test and put back when
/// dropped (a panic included).
struct Binfmt {
    mounted: bool,
    disabled: Vec<PathBuf>,
}

fn write(path: &Path, what: &str) {
    fs::write(path, what).unwrap_or_else(|e| panic!("writing {what:?} to {}: {e}", path.display()));
}

impl Binfmt {
    /// binfmt_misc mounted, with no enabled handler for aarch64 (those
    /// there are disabled, to be enabled again).
    fn clear() -> Binfmt {
        let dir = Path::new(BINFMT);
        let mut b = Binfmt {
            mounted: false,
            disabled: Vec::new(),
        };
        if !dir.join("status").exists() {
            let st = Command::new("mount")
                .args(["-t", "binfmt_misc", "binfmt_misc", BINFMT])
                .status()
                .unwrap();
            assert!(st.success(), "mounting binfmt_misc at {BINFMT}");
            b.mounted = true;
        }
        assert_eq!(
            fs::read_to_string(dir.join("status")).unwrap().trim(),
            "enabled",
            "binfmt_misc is disabled on this machine"
        );
        // What a killed earlier run left.
        if dir.join(NAME).exists() {
            write(&dir.join(NAME), "-1");
        }
        for e in fs::read_dir(dir).unwrap().flatten() {
            let text = fs::read_to_string(e.path()).unwrap_or_default();
            let aarch64 = text.lines().any(|l| l == format!("magic {MAGIC_HEX}"));
            if aarch64 && text.starts_with("enabled") {
                write(&e.path(), "0");
                b.disabled.push(e.path());
            }
        }
        b
    }

    /// Register the test's aarch64 handler with `flags`.
    fn register(&self, flags: &str) {
        let line = format!(":{NAME}:M::{MAGIC}:{MASK}:{QEMU}:{flags}");
        write(&Path::new(BINFMT).join("register"), &line);
        let text = fs::read_to_string(Path::new(BINFMT).join(NAME)).unwrap();
        assert!(text.contains(&format!("flags: {flags}\n")), "{text}");
    }
}

impl Drop for Binfmt {
    fn drop(&mut self) {
        let dir = Path::new(BINFMT);
        if dir.join(NAME).exists() {
            let _ = fs::write(dir.join(NAME), "-1");
        }
        for p in &self.disabled {
            let _ = fs::write(p, "1");
        }
        if self.mounted {
            let _ = Command::new("umount").arg(BINFMT).status();
        }
    }
}

/// `uname -m` and a #! script inside the arm64 firmware print aarch64; the
/// report and -v name the machine and the handler.
fn runs_as_aarch64(flags: &str, bound: bool) {
    let img = arm64_image();
    let _g = guard();
    let b = Binfmt::clear();
    b.register(flags);
    let s = Scratch::new("foreign");
    let rep = s.path("r.json");
    let r = run(&[
        "-v",
        "--changes",
        "--report",
        rep.to_str().unwrap(),
        "--firmware",
        img.to_str().unwrap(),
        "--",
        "/bin/sh",
        "-c",
        "uname -m; /bin/arch-script",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "aarch64\nscript on aarch64\n", "{}", r.stderr);
    let v = read_report(&rep);
    let d = &v["detected"];
    assert_eq!(d["machine"], "aarch64");
    assert_eq!(
        d["emulator"],
        serde_json::json!({ "handler": NAME, "interpreter": QEMU, "flags": flags, "bound": bound })
    );
    let said = format!(
        "fwrun: init '/bin/sh' is a program for aarch64: the kernel runs it with {QEMU} \
         (binfmt_misc handler {NAME}, flags '{flags}')"
    );
    assert!(r.stderr.contains(&said), "{}", r.stderr);
    assert_eq!(
        r.stderr
            .contains("bound read-only into the firmware at the same path"),
        bound,
        "{}",
        r.stderr
    );
    // The interpreter's mount point is not one of the firmware's changes.
    assert_eq!(v["changes"], serde_json::json!([]));
    drop(b);
}

#[test]
fn arm64_with_a_handler_with_the_f_flag() {
    runs_as_aarch64("F", false);
}

#[test]
fn arm64_with_a_handler_without_the_f_flag_gets_its_interpreter_bound() {
    runs_as_aarch64("", true);
    // The interpreter is there only while the firmware runs, and a kept
    // writable layer keeps nothing of it.
    let img = arm64_image();
    let _g = guard();
    let b = Binfmt::clear();
    b.register("");
    let s = Scratch::new("foreign-rw");
    let rw = s.path("rw");
    let r = run(&[
        "--rw-dir",
        rw.to_str().unwrap(),
        "--firmware",
        img.to_str().unwrap(),
        "--",
        "/bin/sh",
        "-c",
        &format!("test -x {QEMU} && echo bound"),
    ]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "bound\n"), "{}", r.stderr);
    assert!(
        !rw.join("upper").join(&QEMU[1..]).exists(),
        "the interpreter's mount point was left in --rw-dir"
    );
}

/// A foreign busybox init: detected as such, its console relayed, stopped
/// with SIGUSR2 (through qemu) when fwrun is asked to stop.
#[test]
fn an_arm64_busybox_init_boots_and_stops_on_its_own_signal() {
    let img = arm64_image();
    let _g = guard();
    let b = Binfmt::clear();
    b.register("F");
    let s = Scratch::new("foreign-init");
    let rep = s.path("r.json");
    let mut bg = Bg::start(&[
        "--report",
        rep.to_str().unwrap(),
        "--firmware",
        img.to_str().unwrap(),
        "--",
        "/sbin/init",
    ]);
    bg.expect("arm64 firmware up on aarch64");
    bg.signal(libc::SIGTERM);
    let out = bg.finish();
    assert_eq!(out.code(), Some(143), "{}", out.stderr);
    assert!(
        out.stderr.contains("firmware stopped on SIGUSR2 after"),
        "{}",
        out.stderr
    );
    let v = read_report(&rep);
    assert_eq!(v["detected"]["init"], "busybox");
    assert_eq!(v["detected"]["console"]["value"], "pty");
    assert_eq!(v["stop"]["signal"], "SIGUSR2");
    assert_eq!(v["stop"]["graceful"], Value::Bool(true));
    drop(b);
}

/// No handler for aarch64: exit 125 and one line naming the architecture
/// and what to install, before the firmware starts; -v says when fwrun had
/// to mount binfmt_misc to look.
#[test]
fn arm64_without_a_handler_is_refused_in_one_line() {
    let img = arm64_image();
    let _g = guard();
    let b = Binfmt::clear();
    let r = run(&[
        "--firmware",
        img.to_str().unwrap(),
        "--",
        "/bin/sh",
        "-c",
        "uname -m",
    ]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert_one_line_naming(&r, "aarch64");
    assert_eq!(
        r.stderr,
        format!(
            "fwrun: init '/bin/sh' is a program for aarch64, which this {} machine cannot run \
             by itself, and no binfmt_misc handler is registered for aarch64: install \
             qemu-user-static and binfmt-support (Debian), or qemu-user-binfmt\n",
            std::env::consts::ARCH
        )
    );
    if b.mounted {
        // binfmt_misc as the test found it, unmounted: fwrun mounts it in
        // its own mount namespace to look, and says so.
        let st = Command::new("umount").arg(BINFMT).status().unwrap();
        assert!(st.success());
        let r = run(&["-v", "--firmware", img.to_str().unwrap(), "--", "/bin/sh"]);
        assert_eq!(r.code, 125, "{}", r.stderr);
        assert!(
            r.stderr.contains(&format!(
                "fwrun: mounted binfmt_misc at {BINFMT} (in fwrun's own mount namespace)"
            )),
            "{}",
            r.stderr
        );
        assert!(!Path::new(BINFMT).join("status").exists(), "left mounted");
        let mut b = b;
        b.mounted = false;
        drop(b);
    }
}

/// exec's ENOENT blames the file that is missing: a #! interpreter or a
/// dynamic loader the firmware lacks is named, not the init (exit 127).
#[test]
fn a_missing_interpreter_or_loader_is_named() {
    let _g = guard();
    let s = Scratch::new("needs");
    // The programs are put in a --rw-dir's upper layer, where the init is
    // looked up (a --bind comes only once the firmware's root is made).
    let rw = s.path("rw");
    let test = rw.join("upper/test");
    fs::create_dir_all(&test).unwrap();
    let script = test.join("script");
    fs::write(&script, "#!/bin/nonexistent-shell\necho hi\n").unwrap();
    fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // A program of this machine that needs the host's dynamic loader,
    // which the busybox test firmware does not have.
    fs::copy("/usr/bin/true", test.join("dynamic")).unwrap();
    let fw = image("fw.ext2");
    let cases = [
        (
            "/test/script",
            "its #! interpreter '/bin/nonexistent-shell'",
        ),
        (
            "/test/dynamic",
            "its dynamic loader '/lib64/ld-linux-x86-64.so.2'",
        ),
    ];
    for (dst, names) in cases {
        if names.contains("ld-linux") && std::env::consts::ARCH != "x86_64" {
            continue;
        }
        let r = run(&[
            "--firmware",
            fw.to_str().unwrap(),
            "--rw-dir",
            rw.to_str().unwrap(),
            "--",
            dst,
        ]);
        assert_eq!(r.code, 127, "{}", r.stderr);
        assert_one_line_naming(&r, names);
        assert!(
            r.stderr.contains(&format!("init '{dst}' is there")),
            "{}",
            r.stderr
        );
    }
}
