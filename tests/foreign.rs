//! Foreign-architecture firmware, as root: a device-style firmware (busybox
//! init, inittab, rcS, power-off) built from Debian's busybox-static for
//! each architecture (tests/firmware/busybox-foreign.sh), booted with
//! fwrun's defaults: armel, armhf, mipsel, mips64el, ppc64el and arm64
//! through qemu-user, by a binfmt_misc handler the test registers under a
//! name of its own (with the F flag and without it); i386 natively, with the
//! seccomp filter on, also under the confinement tests' probes. Refused
//! without any handler, and an init the filter cannot confine (x32) is
//! refused before start. Also: a missing #! interpreter or dynamic loader
//! is named, not the init.
//!
//! The machine's binfmt_misc is never changed but for the test's own
//! handlers (named fwrun-test-*), and those only while a test runs: the
//! kernel tries the handler registered last first, so the machine's own
//! handlers need not be disabled; binfmt_misc is mounted only in a mount
//! namespace of a helper of the test's, which holds it (binfmt_misc drops
//! its handlers with its last mount) until its stdin closes, that is until
//! the test ends, however it ends (a SIGKILL included). On a machine that
//! has binfmt_misc mounted itself, a handler a killed run left stays
//! registered (sending that architecture's programs to the same qemu) until
//! the next test that registers one removes it.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::bg::*;
use common::report::*;
use common::*;
use serde_json::Value;

const BINFMT: &str = "/proc/sys/fs/binfmt_misc";
/// What the test's handlers are called: the prefix, and the architecture.
const PREFIX: &str = "fwrun-test-";

/// One architecture of the tier: its Debian name, its ELF class (1: 32-bit,
/// 2: 64-bit) and machine, the qemu-user that runs it (None: this machine
/// runs it), what `uname -m` says inside.
struct Arch {
    deb: &'static str,
    class: u8,
    machine: u8,
    qemu: Option<&'static str>,
    /// qemu-user-static's handler for it (/usr/lib/binfmt.d/CONF.conf).
    conf: &'static str,
    uname: &'static str,
}

const ARM64: Arch = Arch {
    deb: "arm64",
    class: 2,
    machine: 0xb7,
    qemu: Some("/usr/bin/qemu-aarch64-static"),
    conf: "qemu-aarch64",
    uname: "aarch64",
};

/// qemu-arm's default CPU is an ARMv7 one for both ARM ABIs; a 32-bit x86
/// program under the 32-bit personality fwrun gives it says i686.
const TIER: [Arch; 6] = [
    Arch {
        deb: "armel",
        class: 1,
        machine: 0x28,
        qemu: Some("/usr/bin/qemu-arm-static"),
        conf: "qemu-arm",
        uname: "armv7l",
    },
    Arch {
        deb: "armhf",
        class: 1,
        machine: 0x28,
        qemu: Some("/usr/bin/qemu-arm-static"),
        conf: "qemu-arm",
        uname: "armv7l",
    },
    Arch {
        deb: "mipsel",
        class: 1,
        machine: 0x08,
        qemu: Some("/usr/bin/qemu-mipsel-static"),
        conf: "qemu-mipsel",
        uname: "mips",
    },
    Arch {
        deb: "mips64el",
        class: 2,
        machine: 0x08,
        qemu: Some("/usr/bin/qemu-mips64el-static"),
        conf: "qemu-mips64el",
        uname: "mips64",
    },
    Arch {
        deb: "ppc64el",
        class: 2,
        machine: 0x15,
        qemu: Some("/usr/bin/qemu-ppc64le-static"),
        conf: "qemu-ppc64le",
        uname: "ppc64le",
    },
    Arch {
        deb: "i386",
        class: 1,
        machine: 0x03,
        qemu: None,
        conf: "qemu-i386",
        uname: "i686",
    },
];

fn tier(deb: &str) -> &'static Arch {
    TIER.iter().find(|a| a.deb == deb).unwrap()
}

impl Arch {
    /// The handler's name.
    fn name(&self) -> String {
        format!("{PREFIX}{}", self.deb)
    }

    /// The handler's magic and mask, as qemu's binfmt configuration
    /// writes them for a little-endian ELF program of this class and
    /// machine: the OS ABI byte and the low bit of e_type (executable or
    /// position-independent) may differ.
    fn magic_mask(&self) -> (String, String) {
        let mut magic = vec![0x7f, b'E', b'L', b'F', self.class, 1, 1];
        magic.extend([0; 9]);
        magic.extend([2, 0, self.machine, 0]);
        let mut mask = vec![0xff; 20];
        mask[7] = 0;
        mask[16] = 0xfe;
        let esc = |b: &[u8]| b.iter().map(|x| format!("\\x{x:02x}")).collect::<String>();
        (esc(&magic), esc(&mask))
    }

    /// The firmware image, built (or found in the cache) by its script; a
    /// failure to build it fails the test.
    fn image(&self) -> PathBuf {
        let out = repo().join(format!("target/fwtest-{}", self.deb));
        let st = Command::new("bash")
            .arg(repo().join("tests/firmware/busybox-foreign.sh"))
            .args([self.deb, "/var/cache/fwrun-tests"])
            .arg(&out)
            .status()
            .expect("running tests/firmware/busybox-foreign.sh");
        assert!(
            st.success(),
            "building the {} test firmware failed",
            self.deb
        );
        if let Some(q) = self.qemu {
            assert!(
                Path::new(q).exists(),
                "{q} is missing: scripts/deps.sh installs qemu-user-static"
            );
        }
        out.join(format!("{}.squashfs", self.deb))
    }

    /// Whether this machine runs the architecture through qemu, which the
    /// test is about; said on stderr when not (an arm64 host runs arm64
    /// and ARM programs itself).
    fn foreign_here(&self) -> bool {
        let native = match std::env::consts::ARCH {
            "x86_64" => self.machine == 0x03,
            "aarch64" => self.machine == 0xb7 || self.machine == 0x28,
            _ => false,
        };
        if native != self.qemu.is_none() {
            eprintln!(
                "foreign.rs: skipped {} on this {} machine: the test expects it {}",
                self.deb,
                std::env::consts::ARCH,
                if native { "emulated" } else { "native" }
            );
            return false;
        }
        true
    }
}

/// Run `script` with binfmt_misc mounted in a mount namespace of its own,
/// which ends with it: the machine's mounts stay as they are. Its stdout.
fn in_binfmt(script: &str) -> String {
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-ec"])
        .arg(format!(
            "mount -t binfmt_misc binfmt_misc {BINFMT}; cd {BINFMT}; {script}"
        ))
        .output()
        .expect("running unshare");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Remove the handlers a killed earlier run left.
fn sweep() {
    in_binfmt(&format!(
        "for h in {PREFIX}*; do [ ! -e \"$h\" ] || echo -1 > \"$h\"; done"
    ));
}

/// Whether binfmt_misc is mounted on the machine.
fn mounted_here() -> bool {
    Path::new(BINFMT).join("status").exists()
}

/// A handler of the test's. binfmt_misc keeps its handlers only while it
/// is mounted somewhere: a helper holds it mounted in a mount namespace of
/// its own for as long as the handler is needed, and ends when its stdin
/// closes, which the test's end (a panic or a SIGKILL included) does; on a
/// machine without binfmt_misc mounted, the handler goes with it.
struct Handler {
    name: String,
    helper: std::process::Child,
}

impl Handler {
    /// Register the test's handler for `arch` with `flags`, its
    /// interpreter qemu-ARCH-static itself.
    fn register(arch: &Arch, flags: &str) -> Handler {
        let (magic, mask) = arch.magic_mask();
        let qemu = arch.qemu.expect("an emulated architecture");
        Handler::with(
            &arch.name(),
            &format!("M::{magic}:{mask}:{qemu}:{flags}"),
            flags,
        )
    }

    /// Register, under the test's name, the handler qemu-user-static
    /// ships for `arch` (/usr/lib/binfmt.d): its magic and mask, its
    /// interpreter (a name ending in -binfmt-P, which tells qemu that the
    /// kernel passes the program's own argv[0], flag P, as busybox's
    /// applets need) and its flags. Its interpreter path.
    fn as_qemu_ships(arch: &Arch) -> (Handler, String) {
        let conf = format!("/usr/lib/binfmt.d/{}.conf", arch.conf);
        let line = fs::read_to_string(&conf)
            .unwrap_or_else(|e| panic!("{conf}: {e}: scripts/deps.sh installs qemu-user-static"));
        // :name:type:offset:magic:mask:interpreter:flags
        let fields: Vec<&str> = line.trim().split(':').collect();
        assert_eq!(fields.len(), 8, "{conf}: {line}");
        let flags = fields[7];
        let h = Handler::with(&arch.name(), &fields[2..].join(":"), flags);
        (h, fields[6].to_string())
    }

    /// Register `name` with the rest of a registration line (type to
    /// flags) and check that the kernel lists it with `flags`.
    fn with(name: &str, rest: &str, flags: &str) -> Handler {
        use std::io::BufRead;
        use std::process::Stdio;
        sweep();
        let name = name.to_string();
        let mut helper = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-ec"])
            .arg(format!(
                "mount -t binfmt_misc binfmt_misc {BINFMT}; cd {BINFMT}; \
                 printf '%s' ':{name}:{rest}' > register; \
                 cat {name}; echo ready; read -r _ || true; echo -1 > {name}"
            ))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("running unshare");
        let mut text = String::new();
        let mut lines = std::io::BufReader::new(helper.stdout.take().unwrap()).lines();
        for line in lines.by_ref() {
            let line = line.unwrap();
            if line == "ready" {
                break;
            }
            text.push_str(&line);
            text.push('\n');
        }
        // The kernel lists the flags in an order of its own.
        let sorted = |f: &str| {
            let mut c: Vec<char> = f.chars().collect();
            c.sort_unstable();
            c
        };
        let listed = text.lines().find_map(|l| l.strip_prefix("flags: "));
        assert_eq!(
            listed.map(sorted),
            Some(sorted(flags)),
            "registering {name}: {text:?}"
        );
        Handler { name, helper }
    }
}

impl Drop for Handler {
    fn drop(&mut self) {
        drop(self.helper.stdin.take());
        let _ = self.helper.wait();
        if !std::thread::panicking() {
            let left = in_binfmt("ls").lines().any(|l| l == self.name);
            assert!(!left, "{} is still registered", self.name);
        }
    }
}

/// `uname -m` and a #! script inside the arm64 firmware print aarch64; the
/// report and -v name the machine and the handler.
fn runs_as_aarch64(flags: &str, bound: bool) {
    let img = ARM64.image();
    let _g = guard();
    let h = Handler::register(&ARM64, flags);
    let (name, qemu) = (ARM64.name(), ARM64.qemu.unwrap());
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
        serde_json::json!({ "handler": name, "interpreter": qemu, "flags": flags, "bound": bound })
    );
    let said = format!(
        "fwrun: init '/bin/sh' is a program for aarch64: the kernel runs it with {qemu} \
         (binfmt_misc handler {name}, flags '{flags}')"
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
    drop(h);
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
    let img = ARM64.image();
    let _g = guard();
    let _h = Handler::register(&ARM64, "");
    let qemu = ARM64.qemu.unwrap();
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
        &format!("test -x {qemu} && echo bound"),
    ]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "bound\n"), "{}", r.stderr);
    assert!(
        !rw.join("upper").join(&qemu[1..]).exists(),
        "the interpreter's mount point was left in --rw-dir"
    );
}

/// A foreign busybox init: detected as such, its console relayed, stopped
/// with SIGUSR2 (through qemu) when fwrun is asked to stop.
#[test]
fn an_arm64_busybox_init_boots_and_stops_on_its_own_signal() {
    let img = ARM64.image();
    let _g = guard();
    let h = Handler::register(&ARM64, "F");
    let s = Scratch::new("foreign-init");
    let rep = s.path("r.json");
    let mut bg = Bg::start(&[
        "--env",
        "FW_STAY_UP=1",
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
    drop(h);
}

/// No handler for aarch64: exit 125 and one line naming the architecture
/// and what to install, before the firmware starts; -v says when fwrun had
/// to mount binfmt_misc to look.
#[test]
fn arm64_without_a_handler_is_refused_in_one_line() {
    let img = ARM64.image();
    let _g = guard();
    sweep();
    let (magic, _) = ARM64.magic_mask();
    let hex: String = magic.split("\\x").collect();
    let theirs = in_binfmt(&format!(
        "for h in *; do grep -qx 'magic {hex}' \"$h\" && grep -qx enabled \"$h\" && echo \"$h\"; done; true"
    ));
    if !theirs.trim().is_empty() {
        // Disabling the machine's handler would change the machine.
        eprintln!(
            "foreign.rs: skipped the refusal without a handler: this machine has its own for aarch64 ({})",
            theirs.trim()
        );
        return;
    }
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
    if mounted_here() {
        eprintln!(
            "foreign.rs: skipped the check that fwrun mounts binfmt_misc to look: it is mounted on this machine"
        );
        return;
    }
    // fwrun mounts it in its own mount namespace to look, and says so.
    let r = run(&["-v", "--firmware", img.to_str().unwrap(), "--", "/bin/sh"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "fwrun: mounted binfmt_misc at {BINFMT} (in fwrun's own mount namespace)"
        )),
        "{}",
        r.stderr
    );
    assert!(!mounted_here(), "left mounted");
}

/// The tier: `arch`'s device-style firmware booted with fwrun's defaults
/// (its own handler registered for an emulated one): the rcS ran, uname
/// says the machine, the firmware powered off, exit 0, nothing left (the
/// guard). Returns how long the boot took.
fn boots_and_powers_off(arch: &Arch) {
    if !arch.foreign_here() {
        return;
    }
    let img = arch.image();
    let _g = guard();
    let h = arch.qemu.map(|_| Handler::as_qemu_ships(arch));
    let s = Scratch::new("foreign-tier");
    let rep = s.path("r.json");
    let start = Instant::now();
    let r = run(&[
        "--report",
        rep.to_str().unwrap(),
        "--firmware",
        img.to_str().unwrap(),
        "--",
        "/sbin/init",
    ]);
    let took = start.elapsed();
    eprintln!(
        "foreign.rs: {} booted and powered off in {took:.2?}",
        arch.deb
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    for line in [
        format!("rcS ran: machine {}", arch.uname),
        format!("{} firmware up on {}", arch.deb, arch.uname),
        format!("{} firmware: shutting down", arch.deb),
    ] {
        assert!(
            r.stdout.contains(&line),
            "{line:?} missing:\n{}\n{}",
            r.stdout,
            r.stderr
        );
    }
    assert!(
        r.stderr.contains("fwrun: firmware powered off"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("refused"), "{}", r.stderr);
    let v = read_report(&rep);
    assert_eq!(v["detected"]["init"], "busybox");
    assert_eq!(v["confinement"]["seccomp"], true);
    match &h {
        Some((_, interpreter)) => {
            assert_eq!(v["detected"]["emulator"]["interpreter"], *interpreter)
        }
        None => assert_eq!(v["detected"]["emulator"], Value::Null),
    }
    drop(h);
}

#[test]
fn tier_armel() {
    boots_and_powers_off(tier("armel"));
}

#[test]
fn tier_armhf() {
    boots_and_powers_off(tier("armhf"));
}

#[test]
fn tier_mipsel() {
    boots_and_powers_off(tier("mipsel"));
}

#[test]
fn tier_mips64el() {
    boots_and_powers_off(tier("mips64el"));
}

#[test]
fn tier_ppc64el() {
    boots_and_powers_off(tier("ppc64el"));
}

/// i386 runs on this machine itself, with the seccomp filter on (it
/// answered ENOSYS to every 32-bit call before, and the init died with 139).
#[test]
fn tier_i386_natively_with_the_filter_on() {
    boots_and_powers_off(tier("i386"));
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
            eprintln!("foreign.rs: skipped the dynamic loader case: its path is x86_64's");
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

/// The i386 firmware's root with the confinement tests' probe scripts in
/// /test, as an ext2 image (accidents.sh looks for the loop device behind
/// it).
fn i386_with_probes(s: &Scratch) -> PathBuf {
    let arch = tier("i386");
    arch.image();
    let root = s.path("root");
    let st = Command::new("cp")
        .arg("-a")
        .arg(repo().join("target/fwtest-i386/root"))
        .arg(&root)
        .status()
        .unwrap();
    assert!(st.success());
    fs::create_dir_all(root.join("test")).unwrap();
    for script in ["device-rcs.sh", "accidents.sh"] {
        fs::copy(
            repo().join("tests/firmware/files").join(script),
            root.join("test").join(script),
        )
        .unwrap();
    }
    let img = s.path("i386.ext2");
    let st = Command::new("mkfs.ext2")
        .args(["-q", "-F", "-d"])
        .arg(&root)
        .arg(&img)
        .arg("16M")
        .status()
        .unwrap();
    assert!(st.success(), "mkfs.ext2 of the i386 probes' image");
    img
}

/// Every "ok" line the script plans, and not one "not ok".
fn assert_every_check(r: &Run, script: &str) {
    let files = repo().join("tests/firmware/files");
    let want = common::plan::planned(&files.join(script), &files);
    let oks = r.stdout.lines().filter(|l| l.starts_with("ok - ")).count();
    assert!(
        !r.stdout.contains("not ok") && oks == want && r.code == 0,
        "{script}: {oks} of {want} checks ok, exit {}\n{}\n{}",
        r.code,
        r.stdout,
        r.stderr
    );
}

/// The confinement tests' probes, made by the i386 busybox's own system
/// calls (i386 numbers, 32-bit arguments), with the filter on: a device's
/// rcS mounts succeed and its dangerous ones are refused, the accidents
/// (the clock set to now, insmod, dmesg -n, swapon, debugfs, mknod) are
/// refused and named in the report by the native call they mean, exactly
/// as for the native firmware (tests/confinement.rs).
#[test]
fn i386_answers_the_confinement_probes_as_the_native_firmware_does() {
    if !tier("i386").foreign_here() {
        return;
    }
    let s = Scratch::new("foreign-i386");
    let img = i386_with_probes(&s);
    let _g = guard();
    let rep = s.path("rcs.json");
    let mut args = vec!["--firmware", img.to_str().unwrap(), "--apparmor", "off"];
    args.extend(["--report", rep.to_str().unwrap()]);
    let env = check_env();
    args.extend(env.iter().map(String::as_str));
    args.extend(["--", "/test/device-rcs.sh"]);
    let r = run(&args);
    assert_every_check(&r, "device-rcs.sh");
    let got = refused(&read_report(&rep)).join("\n");
    for want in ["mount /sys", "mount /proc/sys", "umount2 /proc/sys"] {
        assert!(got.lines().any(|g| g == want), "{want} not in {got}");
    }
    assert!(
        !got.contains("devtmpfs") && !got.contains("mount proc"),
        "{got}"
    );

    let rep = s.path("accidents.json");
    let cad = fs::read_to_string("/proc/sys/kernel/ctrl-alt-del").unwrap();
    let printk = fs::read_to_string("/proc/sys/kernel/printk").unwrap();
    let level = printk.split_whitespace().next().unwrap().to_string();
    let r = run(&[
        "--firmware",
        img.to_str().unwrap(),
        "--apparmor",
        "off",
        "--report",
        rep.to_str().unwrap(),
        "--env",
        &format!("CAD={}", cad.trim()),
        "--env",
        &format!("LEVEL={level}"),
        "--env",
        &format!("IMAGE={}", img.display()),
        "--",
        "/test/accidents.sh",
    ]);
    assert_every_check(&r, "accidents.sh");
    assert_accidents_refused(&read_report(&rep));
    assert_eq!(
        fs::read_to_string("/proc/sys/kernel/printk").unwrap(),
        printk
    );
}

/// An init for an entry the filter does not know (x32: an x86_64 ELF of
/// class 32) is refused before start in one line, exit 125, never left to
/// die at its first call.
#[test]
fn an_init_the_filter_cannot_confine_is_refused_before_start() {
    if std::env::consts::ARCH != "x86_64" {
        eprintln!("foreign.rs: skipped the x32 refusal: x32 is x86_64's");
        return;
    }
    let _g = guard();
    let s = Scratch::new("x32");
    let rw = s.path("rw");
    let test = rw.join("upper/test");
    fs::create_dir_all(&test).unwrap();
    // An ELF header: class 32, little-endian, executable, machine x86_64,
    // no program headers.
    let mut elf = vec![0x7f, b'E', b'L', b'F', 1, 1, 1, 0];
    elf.resize(16, 0);
    elf.extend([2, 0, 62, 0, 1, 0, 0, 0]);
    elf.resize(64, 0);
    elf[40] = 52;
    fs::write(test.join("x32"), &elf).unwrap();
    fs::set_permissions(
        test.join("x32"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let fw = image("fw.ext2");
    let args = [
        "--firmware",
        fw.to_str().unwrap(),
        "--rw-dir",
        rw.to_str().unwrap(),
        "--",
        "/test/x32",
    ];
    let r = run(&args);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert_one_line_naming(&r, "x32");
    assert!(
        r.stderr.contains("seccomp filter does not know"),
        "{}",
        r.stderr
    );
}
