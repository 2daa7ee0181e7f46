//! The launcher end to end, as root, on the test firmware.

mod common;

use std::fs;

use common::*;

/// check.sh in `kind`, in both init modes: every check it makes passes.
fn check_world(kind: &str) {
    let _g = guard();
    let img = image(kind);
    let sum = sha256(&img);
    let host = hostname();
    let name = format!("boot-{}", kind.replace('.', "-"));
    let env = check_env();
    for (mode, pid) in [(None, "1"), (Some("--as-pid2"), "2")] {
        let mut args = vec!["--firmware", img.to_str().unwrap(), "--name", &name];
        args.extend(env.iter().map(String::as_str));
        let init_pid = format!("INIT_PID={pid}");
        if let Some(m) = mode {
            args.extend([m, "--env", &init_pid]);
        }
        args.extend(["--", "/test/check.sh"]);
        let r = run(&args);
        let shown = format!("{mode:?}\nstdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
        assert_eq!(r.code, 0, "{shown}");
        assert!(r.stdout.contains("failures=0"), "{shown}");
        assert!(!r.stdout.contains("not ok"), "{shown}");
        // Every check ran (a check script that stopped early would print fewer).
        let oks = r.stdout.lines().filter(|l| l.starts_with("ok - ")).count();
        assert_eq!(oks, check_count(), "{shown}");
        assert!(r.stdout.contains(&format!("hostname={name}\n")), "{shown}");
        assert!(r.stdout.contains(&format!("pid={pid}\n")), "{shown}");
    }
    assert_eq!(hostname(), host, "the host's hostname changed");
    assert_eq!(sha256(&img), sum, "the firmware changed");
}

#[test]
fn boots_from_ext2() {
    check_world("fw.ext2");
}

#[test]
fn boots_from_ext4() {
    check_world("fw.ext4");
}

#[test]
fn boots_from_squashfs() {
    check_world("fw.sqfs");
}

#[test]
fn boots_from_directory() {
    check_world("root");
}

#[test]
fn writes_land_in_the_overlay_and_rw_dir_keeps_them() {
    let _g = guard();
    let img = image("fw.ext2");
    let sum = sha256(&img);
    let s = Scratch::new("rwdir");
    let rw = s.path("state");
    let rw_s = rw.to_str().unwrap();
    let fw = img.to_str().unwrap();

    let r = run(&[
        "--firmware",
        fw,
        "--rw-dir",
        rw_s,
        "--",
        "/bin/sh",
        "-c",
        "echo one > /persist && echo changed > /etc/fw-version",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // The writes are in the upper layer on the host, not in the image.
    assert_eq!(
        fs::read_to_string(rw.join("upper/persist")).unwrap(),
        "one\n"
    );
    assert_eq!(
        fs::read_to_string(rw.join("upper/etc/fw-version")).unwrap(),
        "changed\n"
    );

    let r = run(&[
        "--firmware",
        fw,
        "--rw-dir",
        rw_s,
        "--",
        "/bin/sh",
        "-c",
        "cat /persist /etc/fw-version",
    ]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "one\nchanged\n"),
        "{}",
        r.stderr
    );

    // Without --rw-dir the changes are gone (and were never in the image).
    let r = run(&[
        "--firmware",
        fw,
        "--",
        "/bin/sh",
        "-c",
        "test ! -e /persist && cat /etc/fw-version",
    ]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "image\n"), "{}", r.stderr);
    assert_eq!(sha256(&img), sum, "the image changed");
}

#[test]
fn tmpfs_upper_is_discarded() {
    let _g = guard();
    let fw = image("fw.sqfs");
    let fw = fw.to_str().unwrap();
    let r = run(&[
        "--firmware",
        fw,
        "--",
        "/bin/sh",
        "-c",
        "echo x > /persist && cat /persist",
    ]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "x\n"), "{}", r.stderr);
    let r = run(&[
        "--firmware",
        fw,
        "--",
        "/bin/sh",
        "-c",
        "test ! -e /persist",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn exit_codes_follow_the_init() {
    let _g = guard();
    let fw = image("fw.ext2");
    let fw = fw.to_str().unwrap();
    let cases: &[(&[&str], i32, &str)] = &[
        (&["/test/exit.sh", "3"], 3, ""),
        (&["/test/exit.sh", "0"], 0, ""),
        (&["/test/segv"], 139, "SIGSEGV"),
        (&["/test/no-such-init"], 127, "/test/no-such-init"),
        (&["/test/dangling"], 127, "/test/dangling"),
        (&["/test/not-executable"], 126, "/test/not-executable"),
        (&["/test"], 126, "'/test' is a directory"),
        (&["test/exit.sh"], 125, "absolute path"),
        // A bare name is looked up in the firmware's PATH.
        (&["sh", "-c", "exit 5"], 5, ""),
        (&["no-such-program"], 127, "PATH"),
    ];
    for (init, code, says) in cases {
        let mut args = vec!["--firmware", fw, "--"];
        args.extend_from_slice(init);
        let r = run(&args);
        assert_eq!(r.code, *code, "{init:?}: {}", r.stderr);
        assert!(r.stderr.contains(says), "{init:?}: {}", r.stderr);
        if (125..=127).contains(code) {
            assert_one_line_naming(&r, init[0]);
        }
    }
    // An absolute symlink to the init is resolved inside the firmware.
    let env = check_env();
    let mut args = vec!["--firmware", fw];
    args.extend(env.iter().map(String::as_str));
    args.extend(["--", "/test/abs-link"]);
    let r = run(&args);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
}

#[test]
fn bad_firmware_is_refused_before_anything_is_mounted() {
    let _g = guard();
    let s = Scratch::new("bad");
    let empty = s.path("empty.img");
    fs::write(&empty, b"").unwrap();
    let random = s.path("random.img");
    let bytes: Vec<u8> = (0..65536u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    fs::write(&random, bytes).unwrap();
    let bare = s.path("bare-dir");
    fs::create_dir(&bare).unwrap();
    let missing = s.path("missing.img");
    let ext4 = fs::read(image("fw.ext4")).unwrap();
    // An ext4 image cut in half (a copy that stopped), and one cut before
    // its superblock (1024 bytes in).
    let truncated = s.path("truncated.ext4");
    fs::write(&truncated, &ext4[..ext4.len() / 2]).unwrap();
    let tiny = s.path("tiny.ext4");
    fs::write(&tiny, &ext4[..1000]).unwrap();
    for (path, says) in [
        (&missing, "no such file"),
        (&empty, "is empty"),
        (&random, "not an image fwrun knows"),
        (&truncated, "is a truncated ext2/3/4 image"),
        (&tiny, "too small"),
        (&bare, "does not look like a firmware root"),
    ] {
        let r = run(&["--firmware", path.to_str().unwrap()]);
        assert_eq!(r.code, 125, "{}: {}", path.display(), r.stderr);
        assert!(r.stderr.contains(says), "{}: {}", path.display(), r.stderr);
        let shown = if path == &bare {
            "/sbin/init"
        } else {
            path.to_str().unwrap()
        };
        assert_one_line_naming(&r, shown);
    }
}

/// An image that holds no /sbin/init, run with the default init: refused as
/// a directory without one is (exit 125, one line naming it and saying
/// what to do), after the image is mounted and before anything runs.
#[test]
fn an_image_without_the_default_init() {
    let _g = guard();
    let s = Scratch::new("noinit");
    let tree = s.path("tree");
    fs::create_dir_all(tree.join("etc")).unwrap();
    fs::write(tree.join("etc/hostname"), "no-init\n").unwrap();
    let img = s.path("noinit.ext4");
    mkfs_ext4(&tree, &img);
    let r = run(&["--firmware", img.to_str().unwrap()]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert_one_line_naming(&r, "/sbin/init");
    assert!(r.stderr.contains("give its init after --"), "{}", r.stderr);
}

/// `mkfs.ext4 -d tree image` (4 MiB).
fn mkfs_ext4(tree: &std::path::Path, img: &std::path::Path) {
    fs::File::create(img).unwrap().set_len(4 << 20).unwrap();
    let st = std::process::Command::new("mkfs.ext4")
        .args(["-q", "-F", "-d"])
        .arg(tree)
        .arg(img)
        .status()
        .unwrap();
    assert!(st.success(), "mkfs.ext4 failed");
}

/// The features line of `dumpe2fs -h`.
fn ext_features(img: &std::path::Path) -> String {
    let out = std::process::Command::new("dumpe2fs")
        .arg("-h")
        .arg(img)
        .output()
        .unwrap();
    assert!(out.status.success(), "dumpe2fs -h {}", img.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with("Filesystem features:"))
        .unwrap_or_default()
        .to_string()
}

/// An ext4 image whose journal needs recovery, as a crash leaves it: the
/// test mounts a copy read-write (in a mount namespace of its own), writes,
/// and shuts the file system down as a power cut would (EXT4_IOC_SHUTDOWN,
/// no log flush) before unmounting. fwrun mounts it without replaying the
/// journal (`noload`, said under -v), runs it, and never writes it.
#[test]
fn an_ext4_whose_journal_needs_recovery_boots_read_only() {
    let _g = guard();
    let s = Scratch::new("journal");
    let img = s.path("crashed.ext4");
    fs::copy(image("fw.ext4"), &img).unwrap();
    let mnt = s.path("mnt");
    fs::create_dir(&mnt).unwrap();
    // EXT4_IOC_SHUTDOWN = _IOR('X', 125, __u32); 2 = EXT4_GOING_FLAGS_NOLOGFLUSH.
    let crash = "mount --make-rprivate / && mount -o loop \"$1\" \"$2\" \
        && echo 'after the crash' > \"$2/etc/fw-version\" && sync \
        && python3 -c 'import fcntl, os, struct, sys; fd = os.open(sys.argv[1], os.O_RDONLY); fcntl.ioctl(fd, 0x8004587d, struct.pack(\"I\", 2))' \"$2\" \
        && umount \"$2\"";
    let st = std::process::Command::new("unshare")
        .args(["-m", "sh", "-c", crash, "sh"])
        .arg(&img)
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(st.success(), "making the unclean image failed");
    assert!(
        ext_features(&img).contains("needs_recovery"),
        "the shut-down file system does not need recovery: {}",
        ext_features(&img)
    );
    let sum = sha256(&img);
    let r = run(&[
        "-v",
        "--firmware",
        img.to_str().unwrap(),
        "--",
        "/bin/sh",
        "-c",
        "test -x /bin/busybox && cat /etc/hostname",
    ]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "fwtest\n"), "{}", r.stderr);
    assert!(
        r.stderr.contains("mounted the image read-only")
            && r.stderr.contains("noload")
            && r.stderr.contains("journal needs recovery"),
        "-v does not say the journal was left alone:\n{}",
        r.stderr
    );
    assert_eq!(sha256(&img), sum, "the image was written");
    assert!(ext_features(&img).contains("needs_recovery"));
}

/// The image's loop device is read-only (/sys/block/loopN/ro is 1), for
/// each kind of image.
#[test]
fn the_loop_device_is_read_only() {
    let _g = guard();
    for kind in ["fw.ext2", "fw.ext4", "fw.sqfs"] {
        let img = fs::canonicalize(image(kind)).unwrap();
        let mut bg = common::bg::Bg::start(&[
            "--firmware",
            img.to_str().unwrap(),
            "--",
            "/test/signals.sh",
        ]);
        bg.expect("ready");
        let mut ours = Vec::new();
        for e in fs::read_dir("/sys/block").unwrap().flatten() {
            let back = fs::read_to_string(e.path().join("loop/backing_file")).unwrap_or_default();
            if back.trim_end() == img.to_str().unwrap() {
                let ro = fs::read_to_string(e.path().join("ro")).unwrap();
                ours.push((e.file_name().to_string_lossy().into_owned(), ro));
            }
        }
        bg.signal(libc::SIGTERM);
        let out = bg.finish();
        assert_eq!(out.code(), Some(143), "{kind}: {}", out.show());
        assert_eq!(ours.len(), 1, "{kind}: loop devices of the image: {ours:?}");
        assert_eq!(ours[0].1, "1\n", "{kind}: {} is writable", ours[0].0);
    }
}

#[test]
fn twenty_runs_in_parallel() {
    let _g = guard();
    let img = image("fw.ext2");
    let sum = sha256(&img);
    // One deadline for them all: a run that hangs fails the test.
    let deadline = std::time::Instant::now() + common::bg::DEADLINE;
    let children: Vec<_> = (0..20)
        .map(|i| {
            let mut c = fwrun();
            c.args(["--firmware", img.to_str().unwrap()])
                .args(["--name", &format!("par{i}")])
                .args(check_env())
                .args(["--", "/test/check.sh"]);
            common::bg::spawn(c)
        })
        .collect();
    for (i, c) in children.into_iter().enumerate() {
        let out = c.finish_by(deadline);
        assert_eq!(out.code(), Some(0), "run {i}: {}", out.show());
        assert!(
            out.stdout.contains(&format!("hostname=par{i}\n")),
            "{}",
            out.stdout
        );
    }
    assert_eq!(sha256(&img), sum);
}

#[test]
fn env_bind_and_hostname() {
    let _g = guard();
    let s = Scratch::new("bind");
    fs::write(s.path("hello"), "from the host\n").unwrap();
    let fw = image("fw.ext2");
    let r = run(&[
        "--firmware",
        fw.to_str().unwrap(),
        "--hostname",
        "router-1",
        "--env",
        "GREETING=hi there",
        "--bind",
        &format!("{}:/mnt/host:ro", s.0.display()),
        "--",
        "/bin/sh",
        "-c",
        "echo \"$GREETING\"; hostname; cat /mnt/host/hello; echo x > /mnt/host/new || echo refused",
    ]);
    assert_eq!(
        r.stdout, "hi there\nrouter-1\nfrom the host\nrefused\n",
        "{}",
        r.stderr
    );
    assert!(!s.path("new").exists());
}

/// TERM, with fwrun's output on a terminal: the caller's when the
/// firmware has its terminfo entry, else one it can use (the test firmware
/// has no `linux` entry, so vt100); --env wins; -v says what was chosen.
/// With fwrun's output in a pipe: `dumb`, unless --env sets it.
#[test]
fn term_is_one_the_firmware_has_terminfo_for() {
    let _g = guard();
    let fw = image("fw.ext2");
    let s = Scratch::new("term");
    // fwrun's stdout is a terminal (script(1)'s pty), its stderr a file.
    let on_tty = |caller: &str, extra: &[&str]| {
        let err = s.path("err");
        let cmd = format!(
            "{} -v --firmware {} {} -- /bin/sh -c 'echo \"TERM=$TERM\"' 2>{}",
            env!("CARGO_BIN_EXE_fwrun"),
            fw.display(),
            extra.join(" "),
            err.display()
        );
        let mut c = std::process::Command::new("script");
        c.args(["-qec", &cmd, "/dev/null"])
            .env("TERM", caller)
            .stdin(std::process::Stdio::null());
        let out = common::bg::finish(c);
        assert_eq!(out.code(), Some(0), "{}", out.show());
        let said = fs::read_to_string(&err).unwrap();
        // Only the command's line: the terminal may echo what script(1)
        // sends at the end of its stdin.
        let seen = out.stdout.replace('\r', "");
        let line = seen
            .find("TERM=")
            .and_then(|i| seen[i..].lines().next())
            .unwrap_or(&seen);
        (format!("{line}\n"), said)
    };
    let (seen, said) = on_tty("tmux-256color", &[]);
    assert_eq!(seen, "TERM=vt100\n", "{said}");
    assert!(
        said.contains(
            "fwrun: TERM=vt100 for the firmware: the firmware has no terminfo entry \
             for tmux-256color, nor for linux\n"
        ),
        "{said}"
    );
    let (seen, said) = on_tty("fwtest-term", &[]);
    assert_eq!(seen, "TERM=fwtest-term\n", "{said}");
    assert!(
        said.contains(
            "fwrun: TERM=fwtest-term for the firmware: the firmware has its terminfo entry\n"
        ),
        "{said}"
    );
    let in_pipe = |extra: &[&str]| {
        let mut c = fwrun();
        c.env("TERM", "fwtest-term")
            .args(["-v", "--firmware", fw.to_str().unwrap()])
            .args(extra)
            .args(["--", "/bin/sh", "-c", "echo \"TERM=$TERM\""]);
        let out = common::bg::finish(c);
        assert_eq!(out.code(), Some(0), "{}", out.show());
        (out.stdout, out.stderr)
    };
    let (seen, said) = in_pipe(&[]);
    assert_eq!(seen, "TERM=dumb\n", "{said}");
    assert!(
        said.contains("fwrun: TERM=dumb for the firmware: fwrun's stdout is not a terminal"),
        "{said}"
    );
    for extra in [&["--env", "TERM=xterm-unknown"][..], &["--console", "pty"]] {
        let (seen, said) = in_pipe(extra);
        let want = if extra[0] == "--env" {
            "xterm-unknown"
        } else {
            "dumb"
        };
        assert_eq!(seen.replace('\r', ""), format!("TERM={want}\n"), "{said}");
    }
    let (_, said) = in_pipe(&["--env", "TERM=xterm-unknown"]);
    assert!(
        said.contains("fwrun: TERM=xterm-unknown for the firmware, as --env gave it\n"),
        "{said}"
    );
}

/// The init's environment is fwrun's small clean one and the --env values,
/// exactly: nothing of the caller's (fwrun itself runs with a marker in its
/// environment), in both init modes.
#[test]
fn the_inits_environment_is_exactly_the_clean_one_and_env() {
    let _g = guard();
    let fw = image("fw.ext2");
    for mode in [&[][..], &["--as-pid2"][..]] {
        let mut c = fwrun();
        c.env("HOSTNAME_OF_CALLER", "caller-marker")
            .env("TERM", "vt100")
            .args(["--firmware", fw.to_str().unwrap(), "--name", "envcheck"])
            .args(["--env", "GREETING=hi there", "--env", "EMPTY="])
            .args(mode)
            // env(1) as the init: it prints its environment as exec gave it.
            .args(["--", "/usr/bin/env"]);
        let out = common::bg::finish(c);
        assert_eq!(out.code(), Some(0), "{mode:?}: {}", out.show());
        let mut env: Vec<(&str, &str)> = out
            .stdout
            .lines()
            .map(|l| l.split_once('=').unwrap_or((l, "")))
            .collect();
        env.sort();
        let keys: Vec<&str> = env.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            keys,
            [
                "EMPTY",
                "FWRUN_NAME",
                "GREETING",
                "HOME",
                "PATH",
                "TERM",
                "container"
            ],
            "{mode:?}: {}",
            out.stdout
        );
        for want in [
            ("EMPTY", ""),
            ("FWRUN_NAME", "envcheck"),
            ("GREETING", "hi there"),
            ("HOME", "/"),
            ("container", "fwrun"),
        ] {
            assert!(env.contains(&want), "{mode:?}: {want:?}: {}", out.stdout);
        }
    }
}

#[test]
fn name_already_running_and_bad_names() {
    let _g = guard();
    let fw = image("fw.ext2");
    let fw = fw.to_str().unwrap();
    let r = run(&["--firmware", fw, "--name", "a/b"]);
    assert_eq!(r.code, 125);
    assert_one_line_naming(&r, "a/b");
    let mut long = fwrun()
        .args([
            "--firmware",
            fw,
            "--name",
            "busy",
            "--",
            "/bin/sh",
            "-c",
            "read x; exit 0",
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Poll until the first run has published its state.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !std::path::Path::new("/run/fwrun/busy/info").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the first run never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let r = run(&["--firmware", fw, "--name", "busy", "--", "/bin/true"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert_one_line_naming(&r, "'busy' is already running");
    drop(long.stdin.take());
    let deadline = std::time::Instant::now() + common::bg::DEADLINE;
    let st = common::bg::wait_until(&mut long, deadline, "the first run");
    assert_eq!(st.code(), Some(0));
}
