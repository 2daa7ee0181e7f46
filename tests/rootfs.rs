//! The mounts fwrun builds hold up against a firmware that runs as root:
//! device nodes of the image, of the firmware and of --bind sources open
//! nothing (nodev); /dev holds the host's own nodes, bound in; /proc/kmsg is
//! the firmware's own log; a `:ro` bind is read-only all the way down; a symlink an earlier
//! run left at /dev or /proc is refused; the pid 1 of --as-pid2 holds
//! nothing of fwrun's. Each test makes only the null device (1:3), in
//! places it removes, so a missing protection harms nothing.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::bg::*;
use common::*;

/// A tmpfs the test mounts on the host, unmounted when dropped (before the
/// guard's leak check, when declared after it).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, opts: &str) -> Tmpfs {
        fs::create_dir_all(at).unwrap();
        let st = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                opts,
                "fwrun-test",
                at.to_str().unwrap(),
            ])
            .status()
            .unwrap();
        assert!(st.success(), "mounting a tmpfs at {}", at.display());
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// The null device made at `path` on the host.
fn mknod_null(path: &Path) {
    let st = Command::new("mknod")
        .args([path.to_str().unwrap(), "c", "1", "3"])
        .status()
        .unwrap();
    assert!(st.success(), "mknod {}", path.display());
}

/// fwrun with these arguments, to its end.
fn fwrun_out(args: &[&str]) -> Out {
    let mut c = fwrun();
    c.args(args);
    finish(c)
}

/// Run `init` in `firmware`, expecting exit 0; its stdout.
fn stdout_of(firmware: &Path, extra: &[&str], init: &[&str]) -> String {
    let mut args = vec!["--firmware", firmware.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.push("--");
    args.extend_from_slice(init);
    let out = fwrun_out(&args);
    assert_eq!(out.code(), Some(0), "{:?}: {}", init, out.show());
    out.stdout
}

/// The lines of /proc/self/mountinfo (as `mountinfo` text) whose mount
/// point is `at`: its per-mount options and its file system type.
fn mount_at<'a>(mountinfo: &'a str, at: &str) -> Vec<(&'a str, &'a str)> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dash = f.iter().position(|x| *x == "-")?;
            (f.get(4) == Some(&at)).then(|| (f[5], f[dash + 1]))
        })
        .collect()
}

fn has_opt(opts: &str, opt: &str) -> bool {
    opts.split(',').any(|o| o == opt)
}

#[test]
fn an_images_own_device_node_opens_nothing() {
    let _g = guard();
    for kind in ["fw.ext2", "fw.ext4", "fw.sqfs", "root"] {
        let out = stdout_of(
            &image(kind),
            &[],
            &["/test/opens.sh", "/test/null-node", "/dev/null"],
        );
        assert_eq!(
            out, "/test/null-node: Permission denied\n/dev/null opens\n",
            "{kind}"
        );
    }
}

#[test]
fn a_node_the_firmware_makes_in_its_root_opens_nothing() {
    let _g = guard();
    let s = Scratch::new("made-node");
    let rw = s.path("rw");
    let fw = image("fw.ext2");
    // In a user namespace of its own (the default) the kernel makes no
    // device node for the firmware, --allow-mknod or not: that takes the
    // host's namespace.
    let tried = fwrun_out(&[
        "--firmware",
        fw.to_str().unwrap(),
        "--allow-mknod",
        "--",
        "/bin/sh",
        "-c",
        "mknod /made c 1 3; echo $?; ls /made",
    ]);
    assert!(
        tried.stdout.starts_with("1\n") && tried.stderr.contains("Operation not permitted"),
        "{}",
        tried.show()
    );
    // Without it, a node is made, and opens nothing: in the tmpfs upper
    // layer, and in a --rw-dir's.
    let make = "mknod /made c 1 3 && /test/opens.sh /made /dev/null";
    let want = "/made: Permission denied\n/dev/null opens\n";
    let out = stdout_of(
        &fw,
        &["--allow-mknod", "--userns", "off"],
        &["/bin/sh", "-c", make],
    );
    assert_eq!(out, want);
    let rw_args = [
        "--allow-mknod",
        "--userns",
        "off",
        "--rw-dir",
        rw.to_str().unwrap(),
    ];
    let out = stdout_of(&fw, &rw_args, &["/bin/sh", "-c", make]);
    assert_eq!(out, want);
    let kept = fs::symlink_metadata(rw.join("upper/made")).unwrap();
    assert!(kept.file_type().is_char_device(), "the node was not kept");
    // Kept in DIR/upper, it opens nothing on the next run either.
    let out = stdout_of(&fw, &rw_args, &["/test/opens.sh", "/made"]);
    assert_eq!(out, "/made: Permission denied\n");
}

#[test]
fn binds_are_nodev_unless_their_source_is_a_device() {
    let _g = guard();
    let s = Scratch::new("bind-nodev");
    let t = Tmpfs::mount(&s.path("host"), "size=1m,mode=0755");
    mknod_null(&t.0.join("node"));
    let dir_bind = format!("{}:/mnt/host", t.0.display());
    let out = stdout_of(
        &image("fw.ext2"),
        &[
            "--bind",
            &dir_bind,
            "--bind",
            "/dev/zero:/dev/ttyS1",
            "--bind",
            "/dev/null:/mnt/null:ro",
        ],
        &[
            "/bin/sh",
            "-c",
            "/test/opens.sh /mnt/host/node /dev/ttyS1 /mnt/null && \
             /test/opens.sh -w /mnt/null && head -c 3 /dev/ttyS1 | wc -c",
        ],
    );
    assert_eq!(
        out,
        "/mnt/host/node: Permission denied\n/dev/ttyS1 opens\n/mnt/null opens\n\
         /mnt/null opens\n3\n"
    );
}

#[test]
fn dev_is_a_nodev_tmpfs_holding_the_hosts_own_nodes() {
    let _g = guard();
    let names = ["null", "zero", "full", "random", "urandom", "tty"];
    let script = format!(
        "cat /proc/self/mountinfo; echo ---; for n in {}; do \
         stat -c '%n %F %t:%T %a %d %i' /dev/$n; done; echo ---; \
         chmod 600 /dev/null 2>&1; (echo x > /dev/full) 2>&1; \
         head -c 5 /dev/zero | wc -c; /test/opens.sh -w /dev/null /dev/urandom",
        names.join(" ")
    );
    let out = stdout_of(&image("fw.ext2"), &[], &["/bin/sh", "-c", &script]);
    let parts: Vec<&str> = out.split("---\n").collect();
    assert_eq!(parts.len(), 3, "{out}");
    let dev = mount_at(parts[0], "/dev");
    assert_eq!(dev.len(), 1, "{out}");
    assert_eq!(dev[0].1, "tmpfs", "{out}");
    assert!(has_opt(dev[0].0, "nodev"), "/dev is not nodev: {out}");
    let inside: BTreeMap<&str, &str> = parts[1].lines().filter_map(|l| l.split_once(' ')).collect();
    for n in names {
        let host = fs::metadata(format!("/dev/{n}")).unwrap();
        assert!(host.file_type().is_char_device());
        // The same inode of the same file system as the host's: bound in,
        // not made anew.
        let want = format!(
            "character special file {:x}:{:x} {:o} {} {}",
            libc::major(host.rdev()),
            libc::minor(host.rdev()),
            host.permissions().mode() & 0o7777,
            host.dev(),
            host.ino()
        );
        assert_eq!(
            inside.get(format!("/dev/{n}").as_str()),
            Some(&want.as_str()),
            "{out}"
        );
        assert_eq!(host.permissions().mode() & 0o777, 0o666, "host /dev/{n}");
    }
    let rest: Vec<&str> = parts[2].lines().collect();
    assert!(
        rest[0].contains("Read-only file system"),
        "chmod of /dev/null reached the host's node: {out}"
    );
    assert!(rest[1].contains("No space left on device"), "{out}");
    assert_eq!(
        &rest[2..],
        ["5", "/dev/null opens", "/dev/urandom opens"],
        "{out}"
    );
    let null = fs::metadata("/dev/null").unwrap();
    assert_eq!(null.permissions().mode() & 0o777, 0o666, "host /dev/null");
}

#[test]
fn proc_kmsg_is_the_firmwares_own_log() {
    let _g = guard();
    // Never read: were it the host's, that would take the host's log.
    let out = stdout_of(
        &image("fw.ext2"),
        &[],
        &[
            "/bin/sh",
            "-c",
            "stat -c '%F' /proc/kmsg; cat /proc/self/mountinfo",
        ],
    );
    let (first, mountinfo) = out.split_once('\n').unwrap();
    assert_eq!(first, "fifo", "{out}");
    let kmsg = mount_at(mountinfo, "/proc/kmsg");
    assert_eq!(kmsg.len(), 1, "{out}");
}

#[test]
fn a_read_only_bind_is_read_only_all_the_way_down() {
    let _g = guard();
    let s = Scratch::new("ro-bind");
    let src = s.path("src");
    fs::create_dir(&src).unwrap();
    let sub = Tmpfs::mount(&src.join("sub"), "size=1m,mode=0755,nosuid,noexec");
    let bind = format!("{}:/mnt/ro:ro", src.display());
    let out = stdout_of(
        &image("fw.ext2"),
        &["--bind", &bind],
        &[
            "/bin/sh",
            "-c",
            "/test/opens.sh -w /mnt/ro/top /mnt/ro/sub/f; echo ---; cat /proc/self/mountinfo",
        ],
    );
    let (writes, mountinfo) = out.split_once("---\n").unwrap();
    assert_eq!(
        writes, "/mnt/ro/top: Read-only file system\n/mnt/ro/sub/f: Read-only file system\n",
        "{out}"
    );
    // The submount keeps its own nosuid and noexec, and gets ro and nodev.
    let m = mount_at(mountinfo, "/mnt/ro/sub");
    assert_eq!(m.len(), 1, "{out}");
    for opt in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(has_opt(m[0].0, opt), "/mnt/ro/sub lacks {opt}: {out}");
    }
    assert!(!sub.0.join("f").exists() && !src.join("top").exists());
}

#[test]
fn a_symlink_left_at_dev_proc_or_sys_is_refused() {
    let _g = guard();
    let fw = image("fw.ext2");
    for name in ["dev", "proc", "sys"] {
        let s = Scratch::new("planted");
        let rw = s.path("rw");
        let host = s.path("host");
        fs::create_dir(&host).unwrap();
        fs::write(host.join("marker"), "host\n").unwrap();
        let plant = format!(
            "umount -l /{name} && rmdir /{name} && ln -s {} /{name}",
            host.display()
        );
        // The earlier run that planted it had fwrun's mounts unprotected
        // (--seccomp off and --userns off, or an older fwrun), so it could
        // unmount /dev.
        let rw_args = [
            "--rw-dir",
            rw.to_str().unwrap(),
            "--seccomp",
            "off",
            "--userns",
            "off",
        ];
        stdout_of(&fw, &rw_args, &["/bin/sh", "-c", &plant]);
        let link = fs::read_link(rw.join("upper").join(name)).unwrap();
        assert_eq!(link, host, "the first run did not plant the link");
        let out = fwrun_out(&[
            "--firmware",
            fw.to_str().unwrap(),
            "--rw-dir",
            rw.to_str().unwrap(),
            "--",
            "/bin/true",
        ]);
        assert_eq!(out.code(), Some(125), "{name}: {}", out.show());
        let errors = out.errors();
        assert_eq!(errors.len(), 1, "{name}: {}", out.show());
        assert!(
            errors[0].starts_with(&format!(
                "fwrun: the firmware's /{name} is a symlink to {}",
                host.display()
            )),
            "{name}: {}",
            out.show()
        );
        let left: Vec<_> = fs::read_dir(&host)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left, ["marker"], "{name}: the host directory changed");
    }
}

#[test]
fn fwruns_own_mounts_are_nodev() {
    let _g = guard();
    let s = Scratch::new("own-nodev");
    let rw = s.path("rw");
    for (kind, extra) in [("fw.ext2", None), ("root", Some(&rw))] {
        let name = format!("nodev-{}", kind.replace('.', "-"));
        let fw = image(kind);
        let mut args = vec!["--firmware", fw.to_str().unwrap(), "--name", &name];
        if let Some(rw) = extra {
            args.extend(["--rw-dir", rw.to_str().unwrap()]);
        }
        args.extend(["--", "/test/signals.sh"]);
        let mut bg = Bg::start(&args);
        bg.expect("ready");
        // fwrun's own mount namespace: the workspace, the lower layer, the
        // --rw-dir's bind and the overlay.
        let mountinfo = fs::read_to_string(format!("/proc/{}/mountinfo", bg.pid())).unwrap();
        let base = format!("/run/fwrun/{name}/mnt");
        let mut seen = Vec::new();
        for sub in ["", "/lower", "/rw", "/root"] {
            for (opts, _) in mount_at(&mountinfo, &format!("{base}{sub}")) {
                assert!(has_opt(opts, "nodev"), "{base}{sub} is not nodev: {opts}");
                seen.push(sub);
            }
        }
        let want: &[&str] = match extra {
            Some(_) => &["", "/lower", "/rw", "/root"],
            None => &["", "/lower", "/root"],
        };
        assert_eq!(seen, want, "{kind}: {mountinfo}");
        bg.signal(libc::SIGTERM);
        let out = bg.finish();
        assert_eq!(out.code(), Some(143), "{}", out.show());
    }
}

#[test]
fn the_pid_1_of_as_pid2_holds_nothing_of_fwruns() {
    let _g = guard();
    let list = "for f in /proc/1/fd/*; do echo \"${f##*/} $(readlink $f)\"; done";
    for console in ["inherit", "pty"] {
        let out = stdout_of(
            &image("fw.ext2"),
            &["--as-pid2", "--console", console],
            &["/bin/sh", "-c", list],
        );
        let fds: Vec<(u32, String)> = out
            .lines()
            .filter_map(|l| {
                let (fd, what) = l.trim_end_matches('\r').split_once(' ')?;
                Some((fd.parse().ok()?, what.to_string()))
            })
            .collect();
        let numbers: Vec<u32> = fds.iter().map(|(fd, _)| *fd).collect();
        assert!(numbers.starts_with(&[0, 1, 2]), "{console}: {out}");
        // Beyond the console, only the signalfd it reads its signals from.
        let rest: Vec<&str> = fds[3..].iter().map(|(_, w)| w.as_str()).collect();
        assert_eq!(rest, ["anon_inode:[signalfd]"], "{console}: {out}");
    }
}
