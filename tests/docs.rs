//! fwrun's man page and shell completions, generated from the one clap
//! definition in src/cli.rs, plus the tests that they are fresh and work.
//!
//! The committed files are
//!
//! - man/fwrun.1            (roff; `man -l man/fwrun.1`)
//! - man/fwrun-enter.1, man/fwrun-list.1, man/fwrun-stop.1, man/fwrun-wait.1
//!   (one page per subcommand)
//! - completions/fwrun.bash (bash)
//! - completions/_fwrun     (zsh: a directory on $fpath)
//! - completions/fwrun.fish (fish)
//!
//! After changing a flag or its doc comment in src/cli.rs, or the man page's
//! extra sections below, regenerate them with
//!
//!     FWRUN_REGEN_DOCS=1 cargo test --test docs
//!
//! and commit the result: `docs_are_fresh` fails until then.
//!
//! The other tests need `man` (Debian package man-db, which brings
//! groff-base), `zsh` and `fish`; they fail, saying which package is missing,
//! rather than skip. None needs root.

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use clap::CommandFactory;
use clap_complete::Shell;
use clap_mangen::roff::{bold, italic, roman, Inline, Roff};
use clap_mangen::Man;

use fwrun::cli::Cli;

const REGEN_VAR: &str = "FWRUN_REGEN_DOCS";
const REGEN_COMMAND: &str = "FWRUN_REGEN_DOCS=1 cargo test --test docs";

const MAN_PAGE: &str = "man/fwrun.1";
/// The subcommands, each with a page of its own: man/fwrun-NAME.1.
const SUBCOMMANDS: &[&str] = &["enter", "list", "stop", "wait"];
const BASH: &str = "completions/fwrun.bash";
const ZSH: &str = "completions/_fwrun";
const FISH: &str = "completions/fwrun.fish";

// ---------------------------------------------------------------------------
// The man page's sections that the clap definition cannot hold. This is the
// only place their text lives. Text in `backquotes` is set in bold: flags,
// commands, file and variable names; everything else is plain. No roff here:
// the renderer escapes what needs escaping.
// ---------------------------------------------------------------------------

/// One block of an extra section.
enum Block {
    /// A paragraph.
    Para(&'static str),
    /// A tagged paragraph: the tag in bold, then the text, indented.
    Item(&'static str, &'static str),
    /// Lines shown as they are, indented (commands).
    Code(&'static str),
}
use Block::{Code, Item, Para};

/// The SYNOPSIS lines: `fwrun` and words starting with '-' are set in bold,
/// UPPERCASE words in italics, the rest as it is. Flags not named here are
/// under OPTIONS.
const SYNOPSIS: &[&str] = &[
    "fwrun [OPTIONS] --firmware PATH [-- INIT [ARG]...]",
    "fwrun --cleanup [-v | -q]",
    "fwrun enter [OPTIONS] NAME [--] [CMD [ARG]...]",
    "fwrun list [--json]",
    "fwrun stop NAME [--kill | --timeout SECS]",
    "fwrun wait NAME [--timeout DURATION]",
];

/// The extra sections, in the order they follow OPTIONS.
const EXTRA_SECTIONS: &[(&str, &[Block])] = &[
    (
        "EXIT STATUS",
        &[
            Para(
                "fwrun exits with the init's own exit status when the init exits \
                 (with `--as-pid2`, the program's), and with 128+N when it dies of \
                 signal N (139 for SIGSEGV), so that a CI step fails when the \
                 firmware's test fails. Otherwise:",
            ),
            Item(
                "0",
                "The firmware powered off or halted. (In a pid namespace, reboot(2) \
                 ends the init with SIGINT for these, and with SIGHUP for a reboot.)",
            ),
            Item(
                "129",
                "The firmware rebooted, and `--on-reboot` is `exit` (the default); \
                 with `restart`, fwrun boots it again instead.",
            ),
            Item(
                "124",
                "`--timeout` expired, or the firmware was not ready within \
                 `--ready-timeout`: the firmware was stopped as for Ctrl-C.",
            ),
            Item(
                "125",
                "fwrun itself failed: a bad flag, a bad image, or a setup step. \
                 One line on standard error says what went wrong and what to do.",
            ),
            Item(
                "126",
                "The init exists in the firmware but cannot be executed.",
            ),
            Item(
                "127",
                "The init was not found in the firmware, or a file it needs is \
                 missing there: its #! interpreter or its dynamic loader (the \
                 message names which).",
            ),
            Item(
                "130, 143, 129",
                "fwrun itself was stopped by Ctrl-C (SIGINT), SIGTERM or SIGHUP \
                 respectively: it asked the init to stop with `--stop-signal`, killed the \
                 firmware if it had not stopped within `--stop-timeout`, tore \
                 everything down, and exits with 128 plus the signal's number. \
                 Ctrl-] three times on the console stops a run as Ctrl-C does.",
            ),
            Para(
                "A stopped run's exit status is the same whether the firmware stopped \
                 on its stop signal or had to be killed. One line on standard error \
                 (unless `-q`) and the report's `stop` tell them apart: \
                 \"firmware stopped on SIGTERM after 0.3 s\" is a clean shutdown; \
                 \"firmware did not stop within 10 s of SIGTERM: killed (every process \
                 of it)\" and \"firmware killed at once (second Ctrl-C)\" are not: the \
                 firmware did not complete its own shutdown. When fwrun recognises \
                 the init (busybox init, sysvinit, systemd), a kill's line also names \
                 the stop signal that init expects.",
            ),
        ],
    ),
    (
        "ENVIRONMENT",
        &[
            Item(
                "NO_COLOR",
                "When set and not empty, fwrun's own messages use no colours.",
            ),
            Item(
                "TERM",
                "Passed on to the init (vt100 when unset) when the firmware has a \
                 terminfo entry for it (in /usr/share/terminfo, /lib/terminfo or \
                 /etc/terminfo); otherwise the init gets linux if the firmware has \
                 that entry, else vt100. `--env` TERM=... is passed as given; `-v` \
                 says which was chosen. Nothing else of the caller's environment \
                 is: the init gets `PATH`, `HOME`=/, `TERM`, `container`=fwrun, \
                 `FWRUN_NAME` and the `--env` values.",
            ),
            Item(
                "FWRUN_FAULT",
                "Only in builds with the fault-injection feature, which fwrun's \
                 own tests use and release builds never have. STEP makes fwrun \
                 fail right after the named step of a run, STEP:kill makes it \
                 send itself SIGKILL there. Other builds ignore it.",
            ),
        ],
    ),
    (
        "APPARMOR",
        &[
            Para(
                "Where the kernel has AppArmor, each run loads a profile named \
                 fwrun-NAME-ID (ID: eight hex digits fresh for every run, so that \
                 two runs of one name never share a profile), rendered from \
                 profiles/fwrun.profile.tera with the deny \
                 list in profiles/deny.list (`--print-profile` shows it), and the \
                 init enters it just before its exec. It holds even after the \
                 firmware mounts its own /proc, /sys or /dev: /proc/sysrq-trigger, \
                 /proc/kcore, the host's memory, port, watchdog, clock and block \
                 devices, /sys/firmware and /sys/kernel/security are refused, \
                 writes under a firmware-mounted /proc/sys and /sys are refused \
                 outside what its namespaces own, setting the clock, \
                 loading modules and (unless `--allow-mknod`) making device nodes \
                 are refused, and proc or sysfs may be mounted only at /proc and \
                 /sys, devtmpfs nowhere. Under `--net host` the network is the \
                 host's: the profile also refuses net_admin and writes under \
                 /proc/sys/net, /sys/class/net and /sys/devices/virtual/net \
                 (`--print-profile --net host` shows it).",
            ),
            Para(
                "After the run fwrun reads the kernel log (or the audit log when \
                 auditd runs) for the profile's DENIED records and prints a \
                 summary: operation, path or capability, requested access, count. \
                 `--follow-denials` prints them as they happen. Without AppArmor \
                 in the kernel, `--apparmor auto` says so once and runs with the \
                 other layers; `require` refuses to run.",
            ),
        ],
    ),
    (
        "CONFINEMENT",
        &[
            Para(
                "The firmware is real root and may mount things. On every host, \
                 with or without an LSM, the kernel enforces three layers besides \
                 the namespaces: a reduced capability set (every capability but \
                 sys_module, sys_time, sys_rawio, syslog, wake_alarm, sys_pacct, \
                 mac_admin, mac_override, audit_control, bpf, perfmon, \
                 block_suspend, mknod unless `--allow-mknod`, and net_admin under \
                 `--net host`; `--cap-add` and `--cap-drop` adjust it); nodev on \
                 fwrun's mounts; and a seccomp filter. The filter refuses kexec, \
                 modules, setting the clock, swap, accounting, I/O ports, BPF, \
                 perf, the kernel keyrings, open_by_handle_at and the kernel log's \
                 destructive actions, answers ENOSYS to the new mount API, and \
                 hands every mount(2) and umount2(2) to fwrun.",
            ),
            Para(
                "fwrun lets `proc` at /proc, `sysfs` at /sys, `devtmpfs` at /dev \
                 and `devpts` at /dev/pts succeed without mounting anything where \
                 its constrained mounts stand; refuses proc, sysfs, devtmpfs and \
                 the kernel's own file systems elsewhere, a remount that would make \
                 /sys, /proc/sys or a read-only bind writable, and unmounting or \
                 moving its mounts; applies a remount of its mounts or of a bind to \
                 that mount alone; and lets everything else through. Refusals are \
                 printed at the end, live with `--follow-denials`, and listed in \
                 the report. `--seccomp off` removes the filter, for debugging \
                 only.",
            ),
        ],
    ),
    (
        "REPORT",
        &[
            Para(
                "`--report` FILE writes one JSON object (schemas/report.schema.json \
                 in fwrun's sources), also when the run fails after its flags were \
                 read. Its fields:",
            ),
            Item("version", "The format's version, 1."),
            Item("name", "The run's name."),
            Item(
                "firmware",
                "`path` as given and `kind`: ext2, ext3, ext4, squashfs, directory, \
                 or null if it was never read.",
            ),
            Item("init", "The init and its arguments."),
            Item("start, end", "UTC times, RFC 3339 with milliseconds."),
            Item(
                "phases",
                "Each phase with its duration in milliseconds (`name`, `ms`): \
                 preflight, namespace, lower, overlay, apparmor, cgroup, network \
                 (under `--net veth`, `bridge` or `--net-move`), start, run, teardown.",
            ),
            Item(
                "ending",
                "`kind`: exited, signaled, powered-off, rebooted, timeout, \
                 interrupted or launcher-error; `signal` (signaled: its name), \
                 `stop_reason` (interrupted: ctrl-c, sigterm, sighup or \
                 console-escape), `error` (launcher-error: the message).",
            ),
            Item(
                "stop",
                "How fwrun stopped the firmware, or null when it did not: `reason` \
                 (ctrl-c, sigterm, sighup, timeout or console-escape), `signal` (the \
                 stop signal sent), `graceful` (true: the init ended by itself after \
                 the stop signal; false: it was killed), `killed_by` (null, or what \
                 made fwrun kill it: stop-timeout, a second request as ctrl-c, \
                 sigterm, sighup or console-escape, or stop-signal when that was \
                 KILL) and `ms` (from the stop signal to the init's end). A stop \
                 that came before the firmware started has null `signal`, \
                 `graceful` and `ms`.",
            ),
            Item("exit_code", "fwrun's exit status."),
            Item("boots", "How many times the firmware was started (`--on-reboot` restart)."),
            Item(
                "ready_ms",
                "How long the (last) boot took, from the init's start, until the \
                 `--ready-when` conditions held (at once without any), in \
                 milliseconds; null if it was never ready.",
            ),
            Item(
                "changes",
                "What the firmware changed in its root (`path`, `change`: added, \
                 modified, deleted, replaced-directory), or null if the overlay \
                 was never mounted.",
            ),
            Item(
                "apparmor",
                "`mode`, `profile` (null when none was loaded) and `denials` \
                 (`operation`, `target`, `requested`, `count`).",
            ),
            Item(
                "confinement",
                "`capabilities` the init kept and `dropped_capabilities` (short \
                 names, e.g. sys_time), `seccomp` (whether the filter was on) and \
                 `refused`: each call fwrun refused the firmware (`syscall`, \
                 `target` as the firmware named it, `reason`, `count`, and \
                 `routine`: the group of a refusal every firmware makes on its \
                 device, summed up in one line on stderr, or null).",
            ),
            Item(
                "cgroup",
                "The run's own cgroup on a cgroup v2 host: `path` (null when none \
                 was made, with `none_because` saying why: a v1 or hybrid host), \
                 `limits` written to it (`memory_bytes`, `memory_swap_bytes`, \
                 `pids`, `cpus`, `io_weight`; null when not set), and what it \
                 counted: `memory_peak_bytes` (memory.peak), `cpu_user_usec` and \
                 `cpu_system_usec` (cpu.stat), `oom_kills` (memory.events), \
                 `pids_peak` (pids.peak, Linux 6.13+), `pids_refused` (forks \
                 refused at the limit, pids.events); null when the kernel lacks \
                 the file. `init_oom_killed` is true when the OOM killer ended \
                 the init (exit 137).",
            ),
            Item(
                "network",
                "`mode`: none, host, veth or bridge; `interfaces`: the firmware's \
                 interfaces besides lo, each with its `name` in the firmware, its \
                 `kind` (veth, or moved for a `--net-move` interface), its \
                 `host_name` (the veth's host end, or the moved interface's own \
                 name), the `host_address` given to the veth's host end (or \
                 null) and the `bridge` that end is in (or null); `published`: \
                 each `--publish`, with its `host_address`, `host_port`, the \
                 firmware's `port` and its `protocol` (tcp or udp).",
            ),
            Item(
                "detected",
                "What fwrun read from the init before starting it, each null if \
                 it never got that far: `program` (its path in the firmware, \
                 symlinks resolved), `init` (busybox, sysvinit, systemd, procd, or null \
                 for any other program), `machine` (x86_64, aarch64, arm, ...; \
                 null if not an ELF program), `emulator` (for a program this \
                 machine cannot run: the binfmt_misc `handler`, its \
                 `interpreter`, its `flags`, and `bound`: whether fwrun bound the \
                 interpreter into the firmware), and the defaults chosen from it, \
                 `stop_signal` and `console`, each with its `value` (e.g. SIGUSR2, \
                 pty), `from` (auto, or flag when given) and `why`.",
            ),
            Item(
                "kernel",
                "What the firmware saw of a kernel of its own: `cmdline` (its \
                 /proc/cmdline), `kmsg_file` (`--kmsg` FILE, or null: its kernel \
                 log went to fwrun's stdout), `kmsg_records` (how many records it \
                 wrote to its /dev/kmsg), `modules` (refuse or fake) and \
                 `modules_faked` (module loads answered \"loaded\").",
            ),
        ],
    ),
    (
        "NETWORK",
        &[
            Para(
                "`--net veth` gives the firmware a veth pair: its end, eth0 (see \
                 `--veth-name`), is made directly in the firmware's network \
                 namespace, down and without an address, for the firmware's own \
                 scripts to configure as on its device; the host's end, fw-NAME \
                 (cut to 15 bytes, with a hash of NAME when it is longer), is \
                 brought up, with the address of `--net veth:HOSTADDR/PREFIX`. \
                 An address that shares a network with a route of the host is \
                 refused. `--net bridge:BR` puts the host's end in the existing \
                 bridge BR instead, so that several firmwares and the host share \
                 one segment. `--net-move` moves a host interface in, and back \
                 under its own name with its flags and MTU at the end.",
            ),
            Para(
                "fwrun makes them with netlink between the clone and the init's \
                 exec, so they are there when the init starts. At the end the \
                 veth's address is taken away and the kernel deletes the pair \
                 with the firmware's network namespace; a run killed with \
                 SIGKILL leaves the host's end to the next run or \
                 `fwrun --cleanup` when something still holds that namespace. \
                 Under `--net veth` and `bridge` the firmware keeps net_admin, as \
                 under `none`: its namespace is its own.",
            ),
            Para(
                "`--publish HOSTPORT:PORT` (`-p`) needs no link at all: fwrun binds \
                 the host's 127.0.0.1:HOSTPORT before anything is mounted (a port \
                 another program holds is refused), and a relay process of its \
                 own, in the firmware's network namespace, carries each \
                 connection to the firmware's 127.0.0.1:PORT there, whatever \
                 `--net` gives it. The relay lives for one boot and dies with \
                 fwrun; its connections close when the firmware stops.",
            ),
        ],
    ),
    (
        "FILES",
        &[
            Item(
                "/run/fwrun/NAME/",
                "The state of the run named NAME (what it acquired, its pid), \
                 locked for as long as the run lives. A later run, or \
                 `fwrun --cleanup`, removes it once its run is dead, after \
                 renaming it /run/fwrun/.dead-PID-SEQ-NAME, so that a new run \
                 may take the name at once; a run that ends does the same. The \
                 run also publishes there what `fwrun enter`, `list`, `stop` and \
                 `wait` read: its state (booting, ready, stopping), its init's \
                 pid, its firmware and network, the init's environment, \
                 capabilities and mounts.",
            ),
            Item(
                "/run/fwrun/.lower-KEY",
                "The loop device that runs of one image share while they run at \
                 the same time (KEY hashes the image's device, inode, size, mtime \
                 and ctime): the first attaches it and names it here, the others \
                 mount it too and get its superblock and page cache. Each run \
                 holds a lock on it while it uses it; the last one out removes \
                 it, and the device frees itself with the last mount of it. One \
                 whose runs were all killed is removed by a later run or \
                 `fwrun --cleanup`.",
            ),
            Item(
                "/sys/fs/cgroup/…/fwrun-NAME/",
                "The cgroup of the run named NAME, on a cgroup v2 host: next to \
                 fwrun's own cgroup (or under `--cgroup-parent`), with the memory, \
                 pids, cpu and io controllers passed to it. The init is cloned \
                 into it; the firmware sees it as its /sys/fs/cgroup, writable, \
                 and may make cgroups below it. It is killed whole (cgroup.kill) \
                 when the stop timeout expires and removed in the teardown, or by \
                 the sweep after fwrun was killed. On a v1 or hybrid host no \
                 cgroup is made and the limits are refused.",
            ),
        ],
    ),
    (
        "EXAMPLES",
        &[
            Para("fwrun must run as root, hence the sudo below."),
            Para("Boot a firmware image and watch its console; Ctrl-C stops it:"),
            Code("sudo fwrun --firmware rootfs.ext4 -- /sbin/init"),
            Para(
                "A CI step: run the firmware's self-test with its output on fwrun's \
                 own, for at most five minutes; fwrun exits with the self-test's \
                 status, or 124 when time is up:",
            ),
            Code("sudo fwrun --firmware fw.ext2 --console inherit --timeout 5m -- /usr/bin/selftest"),
            Para("Keep what the firmware writes in ./state, so that the next run with the same directory sees it:"),
            Code("sudo fwrun --firmware fw.squashfs --rw-dir ./state -- /bin/sh -c 'touch /etc/provisioned'"),
            Para(
                "A systemd firmware with the host's network and a serial adapter, \
                 stopped the way systemd asks to be:",
            ),
            Code(
                "sudo fwrun --firmware debian.ext4 --net host --bind /dev/ttyUSB0:/dev/ttyS1 \\\n    \
                 --stop-signal RTMIN+4 -- /lib/systemd/systemd",
            ),
            Para(
                "A firmware that sets its eth0 to 192.168.1.1/24 and serves its web \
                 interface, reached from the host:",
            ),
            Code(
                "sudo fwrun --firmware router.ext4 --net veth:192.168.1.2/24 -- /sbin/init &\n\
                 curl http://192.168.1.1/",
            ),
            Para(
                "A CI job: boot in the background, wait until the console shows \
                 the login prompt, test inside, stop (see `fwrun-enter`(1), \
                 `fwrun-wait`(1), `fwrun-stop`(1)):",
            ),
            Code(
                "sudo fwrun --firmware fw.ext4 --name t1 --ready-when console:'login:' &\n\
                 sudo fwrun wait t1 --timeout 60s\n\
                 sudo fwrun enter t1 -- /usr/bin/selftest\n\
                 sudo fwrun stop t1",
            ),
            Para("Remove what runs that were killed left behind:"),
            Code("sudo fwrun --cleanup"),
        ],
    ),
    (
        "SEE ALSO",
        &[Para(
            "`fwrun-enter`(1), `fwrun-list`(1), `fwrun-stop`(1), \
             `fwrun-wait`(1), `namespaces`(7), `pid_namespaces`(7), \
             `mount_namespaces`(7), `unshare`(1), `systemd-nspawn`(1)",
        )],
    ),
];

/// One page per subcommand: its name, SYNOPSIS lines and extra sections.
struct SubPage {
    name: &'static str,
    synopsis: &'static [&'static str],
    sections: &'static [(&'static str, &'static [Block])],
}

const SEE_ALSO_SUB: (&str, &[Block]) = (
    "SEE ALSO",
    &[Para(
        "`fwrun`(1), `fwrun-enter`(1), `fwrun-list`(1), `fwrun-stop`(1), `fwrun-wait`(1)",
    )],
);

const SUB_PAGES: &[SubPage] = &[
    SubPage {
        name: "enter",
        synopsis: &["fwrun enter [OPTIONS] NAME [--] [CMD [ARG]...]"],
        sections: &[
            (
                "CONFINEMENT",
                &[
                    Para(
                        "The command joins the init's mount, UTS, IPC, network, cgroup \
                         and pid namespaces (through a pidfd of the init), its root and \
                         working directory, and the run's cgroup when it has one; its \
                         pid is not 1, and ps shows the firmware's processes. It enters \
                         the run's AppArmor profile (the one the run's state records), \
                         keeps the capabilities the init kept and installs the same \
                         seccomp filter: what the init may not do, the command may not \
                         either. This fwrun process answers the command's mount calls \
                         as the run's fwrun answers the init's, with the same table of \
                         fwrun's mounts, and says at the end what it refused (not with \
                         `-q`). Processes the command leaves running keep running, but \
                         their mount calls fail once it has exited.",
                    ),
                    Para(
                        "It gets the init's environment (PATH, HOME, TERM, container, \
                         FWRUN_NAME and the run's --env values) with `--env` on top. On \
                         a pseudo-terminal of the firmware's own (when stdin is a \
                         terminal, or with `-t`), the caller's terminal is in raw mode: \
                         Ctrl-C reaches the command inside, and Ctrl-] three times \
                         within a second kills it. Without one, it shares fwrun's stdin, \
                         stdout and stderr, and the signals fwrun gets (SIGTERM, SIGINT, \
                         SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2) are passed on to it.",
                    ),
                    Para(
                        "A run is entered only while its fwrun holds its state's lock, \
                         and only if its state directory is root's and writable by no \
                         one else.",
                    ),
                ],
            ),
            (
                "EXIT STATUS",
                &[
                    Para("The command's own status; 128+N when it dies of signal N. Otherwise:"),
                    Item("126", "The command exists but cannot be executed."),
                    Item("127", "The command was not found in the firmware."),
                    Item(
                        "125",
                        "fwrun itself failed: a bad NAME, no such run, a run whose init \
                         has not started yet, a state directory that is not root's. One \
                         line on standard error says which.",
                    ),
                ],
            ),
            (
                "EXAMPLES",
                &[
                    Para("A login shell in run t1:"),
                    Code("sudo fwrun enter t1"),
                    Para("A self-test, with one more variable, its status as fwrun's:"),
                    Code("sudo fwrun enter --env VERBOSE=1 t1 -- /usr/bin/selftest"),
                ],
            ),
            SEE_ALSO_SUB,
        ],
    },
    SubPage {
        name: "list",
        synopsis: &["fwrun list [--json]"],
        sections: &[
            (
                "OUTPUT",
                &[
                    Para(
                        "One line per live run: NAME, FIRMWARE, PID (the init's, on the \
                         host), STATE (booting, ready or stopping), UPTIME, NETWORK. With \
                         `--json`, an array of objects (schemas/list.schema.json in \
                         fwrun's sources): `name`, `firmware`, `pid` (null until the \
                         init runs), `fwrun_pid`, `state`, `started` (UTC, RFC 3339), \
                         `uptime_s` and `network` (`mode`, and the host's side \
                         `interface` and `address` when the mode has them, else null; \
                         `published`: the ports of `--publish`). NETWORK shows each \
                         published port as 127.0.0.1:8080->80/tcp.",
                    ),
                    Para(
                        "Runs whose fwrun is dead are not listed: what they left is swept \
                         first, as `fwrun --cleanup` does.",
                    ),
                ],
            ),
            (
                "EXIT STATUS",
                &[
                    Item("0", "The list was printed (it may be empty)."),
                    Item("125", "fwrun failed (not root, say)."),
                ],
            ),
            SEE_ALSO_SUB,
        ],
    },
    SubPage {
        name: "stop",
        synopsis: &["fwrun stop NAME [--kill | --timeout SECS]"],
        sections: &[
            (
                "STOPPING",
                &[Para(
                    "fwrun stop sends SIGTERM to the run's fwrun (its pid checked \
                     against its state's lock, so that a reused pid is never \
                     signalled): the init gets the run's --stop-signal, and every \
                     process of the firmware is killed after the run's \
                     --stop-timeout. With `--kill`, or once `--timeout` has passed, \
                     a second SIGTERM kills the firmware at once. fwrun stop returns \
                     when the run's fwrun has torn everything down and exited; the \
                     run exits as for SIGTERM (143).",
                )],
            ),
            (
                "EXIT STATUS",
                &[
                    Item("0", "The run has ended and cleaned up."),
                    Item("1", "No run of that name was running."),
                    Item("125", "fwrun failed (a bad NAME, not root)."),
                ],
            ),
            SEE_ALSO_SUB,
        ],
    },
    SubPage {
        name: "wait",
        synopsis: &["fwrun wait NAME [--timeout DURATION]"],
        sections: &[
            (
                "EXIT STATUS",
                &[
                    Item(
                        "0",
                        "The run is ready: its --ready-when conditions held (at once, \
                         without any).",
                    ),
                    Item(
                        "1",
                        "The run ended before it was ready, or no run of that name \
                         started within 10 s.",
                    ),
                    Item("124", "`--timeout` passed first."),
                    Item("125", "fwrun failed (a bad NAME, not root)."),
                ],
            ),
            (
                "EXAMPLES",
                &[
                    Para("Start a run in the background, and go on once it is up:"),
                    Code(
                        "sudo fwrun --firmware fw.ext4 --name t1 --ready-when tcp:127.0.0.1:8080 \\\n    \
                         --net host &\n\
                         sudo fwrun wait t1 --timeout 2m",
                    ),
                ],
            ),
            SEE_ALSO_SUB,
        ],
    },
];

/// Plain text with `backquoted` spans set in bold.
fn inlines(text: &str) -> Vec<Inline> {
    text.split('`')
        .enumerate()
        .filter(|(_, part)| !part.is_empty())
        .map(|(i, part)| if i % 2 == 1 { bold(part) } else { roman(part) })
        .collect()
}

fn render_extra_sections(sections: &[(&str, &[Block])]) -> Roff {
    let mut roff = Roff::new();
    for (title, blocks) in sections {
        roff.control("SH", [*title]);
        for (i, block) in blocks.iter().enumerate() {
            match block {
                Para(text) => {
                    if i > 0 {
                        roff.control("PP", []);
                    }
                    roff.text(inlines(text));
                }
                Item(tag, text) => {
                    roff.control("TP", []);
                    roff.text([bold(*tag)]);
                    roff.text(inlines(text));
                }
                Code(lines) => {
                    if i > 0 {
                        roff.control("PP", []);
                    }
                    roff.control("RS", ["4"]);
                    roff.control("nf", []);
                    roff.text([roman(*lines)]);
                    roff.control("fi", []);
                    roff.control("RE", []);
                }
            }
        }
    }
    roff
}

// ---------------------------------------------------------------------------
// The generator.
// ---------------------------------------------------------------------------

/// The man page: clap_mangen's sections from the clap definition, with the
/// extra sections above between OPTIONS and VERSION. Two things differ from
/// clap_mangen's own page: the title line (clap_mangen leaves the date empty,
/// which shifts its other fields) and the SYNOPSIS (clap_mangen lists every
/// flag without its value and cannot tell --firmware is required; the
/// `SYNOPSIS` constant above says it, and `extra_text_names_real_flags`
/// keeps it honest). The definition's after_help (short examples and exit
/// codes for --help) is left out: the extra sections say it at length.
fn man_page() -> Vec<u8> {
    let mut cmd = Cli::command();
    cmd.build();
    page(cmd, "FWRUN", SYNOPSIS, EXTRA_SECTIONS)
}

/// The page of subcommand `sub`, named fwrun-SUB, built as the main one.
fn sub_page(sub: &SubPage) -> Vec<u8> {
    page(
        sub_command(sub.name),
        &format!("FWRUN-{}", sub.name.to_uppercase()),
        sub.synopsis,
        sub.sections,
    )
}

/// Subcommand `name` as a command of its own, fwrun-NAME, with fwrun's
/// version.
fn sub_command(name: &str) -> clap::Command {
    let mut root = Cli::command();
    root.build();
    // clap keeps names as &'static str; these few live for the test.
    let page_name: &'static str = Box::leak(format!("fwrun-{name}").into_boxed_str());
    root.find_subcommand(name)
        .unwrap_or_else(|| panic!("fwrun has no subcommand {name}"))
        .clone()
        .name(page_name)
        .version(env!("CARGO_PKG_VERSION"))
}

fn page(
    cmd: clap::Command,
    title: &str,
    synopsis_lines: &[&str],
    sections: &[(&str, &[Block])],
) -> Vec<u8> {
    let has_args = cmd.get_arguments().any(|a| !a.is_hide_set());
    let has_subcommands = cmd.get_subcommands().any(|s| !s.is_hide_set());
    let version = cmd.get_version().map(str::to_owned);
    let has_author = cmd.get_author().is_some();
    let man = Man::new(cmd);

    let render = |f: &dyn Fn(&mut Vec<u8>) -> std::io::Result<()>| {
        let mut buf = Vec::new();
        f(&mut buf).expect("rendering into memory");
        String::from_utf8(buf).expect("roff is UTF-8")
    };
    // Every render_* writes the same preamble (an apostrophe fix) first:
    // the page has it once, at its top.
    let preamble = Roff::new().render();
    let mut page = preamble.clone();
    let mut add = |piece: String| {
        page.push_str(piece.strip_prefix(&preamble).unwrap_or(&piece));
    };

    // .TH title section date source manual; no date, so that the page is
    // the same whenever it is generated.
    let source = match &version {
        Some(v) => format!("fwrun {v}"),
        None => "fwrun".to_owned(),
    };
    add(format!(
        ".TH {title} 1 \"\" \"{source}\" \"User Commands\"\n"
    ));
    add(render(&|w| man.render_name_section(w)));
    add(render(&|w| synopsis(synopsis_lines).to_writer(w)));
    add(render(&|w| man.render_description_section(w)));
    if has_args {
        add(render(&|w| man.render_options_section(w)));
    }
    if has_subcommands {
        add(render(&|w| man.render_subcommands_section(w)));
    }
    add(render(&|w| render_extra_sections(sections).to_writer(w)));
    if version.is_some() {
        add(render(&|w| man.render_version_section(w)));
    }
    if has_author {
        add(render(&|w| man.render_authors_section(w)));
    }
    page.into_bytes()
}

/// SYNOPSIS: the lines given with `fwrun`, its subcommands and the flags
/// in bold and the UPPERCASE placeholders in italics.
fn synopsis(lines: &[&str]) -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["SYNOPSIS"]);
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            roff.control("br", []);
        }
        let mut parts = Vec::new();
        let mut plain = String::new();
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if !(c.is_alphanumeric() || c == '-' || c == '_') {
                plain.push(c);
                continue;
            }
            let mut word = c.to_string();
            while let Some(&n) = chars
                .peek()
                .filter(|n| n.is_alphanumeric() || **n == '-' || **n == '_')
            {
                word.push(n);
                chars.next();
            }
            // `fwrun`, a subcommand right after it, and flags in bold.
            let subcommand =
                parts.len() == 1 && plain == " " && SUBCOMMANDS.contains(&word.as_str());
            let styled = if word == "fwrun" || word.starts_with('-') || subcommand {
                bold(word)
            } else if word.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                italic(word)
            } else {
                plain.push_str(&word);
                continue;
            };
            if !plain.is_empty() {
                parts.push(roman(std::mem::take(&mut plain)));
            }
            parts.push(styled);
        }
        if !plain.is_empty() {
            parts.push(roman(plain));
        }
        roff.text(parts);
    }
    roff
}

fn completion(shell: Shell) -> Vec<u8> {
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "fwrun", &mut buf);
    buf
}

/// Every generated file: its path under the crate's root and its content.
fn render_all() -> Vec<(String, Vec<u8>)> {
    let mut docs = vec![(MAN_PAGE.to_string(), man_page())];
    for sub in SUB_PAGES {
        docs.push((format!("man/fwrun-{}.1", sub.name), sub_page(sub)));
    }
    docs.extend([
        (BASH.to_string(), completion(Shell::Bash)),
        (ZSH.to_string(), completion(Shell::Zsh)),
        (FISH.to_string(), completion(Shell::Fish)),
    ]);
    docs
}

/// The man pages' paths.
fn man_pages() -> Vec<String> {
    std::iter::once(MAN_PAGE.to_string())
        .chain(SUB_PAGES.iter().map(|s| format!("man/fwrun-{}.1", s.name)))
        .collect()
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn path(rel: &str) -> PathBuf {
    root().join(rel)
}

fn regen_requested() -> bool {
    std::env::var_os(REGEN_VAR).is_some_and(|v| !v.is_empty() && v != "0")
}

/// The rendered files; with FWRUN_REGEN_DOCS set, also written to disk. Every
/// test goes through here first, so that in a regeneration run no test reads
/// a file while it is being written.
fn generated() -> &'static [(String, Vec<u8>)] {
    static DOCS: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    DOCS.get_or_init(|| {
        let docs = render_all();
        if regen_requested() {
            for (rel, content) in &docs {
                let p = path(rel);
                fs::create_dir_all(p.parent().unwrap()).unwrap();
                if fs::read(&p).ok().as_ref() != Some(content) {
                    fs::write(&p, content).unwrap_or_else(|e| panic!("writing {rel}: {e}"));
                    // Past the test harness's capture, so that it is seen.
                    let _ = writeln!(std::io::stderr(), "docs: wrote {rel}");
                }
            }
        }
        docs
    })
}

/// Where `old` and `new` first differ, as "line N: - old / + new".
fn first_difference(old: &[u8], new: &[u8]) -> String {
    let old = String::from_utf8_lossy(old);
    let new = String::from_utf8_lossy(new);
    let (mut o, mut n) = (old.lines(), new.lines());
    for line in 1.. {
        match (o.next(), n.next()) {
            (Some(a), Some(b)) if a == b => continue,
            (None, None) => return "only in line endings".into(),
            (a, b) => {
                return format!(
                    "line {line}:\n      committed: {}\n      generated: {}",
                    a.unwrap_or("(end of file)"),
                    b.unwrap_or("(end of file)")
                )
            }
        }
    }
    unreachable!()
}

#[test]
fn docs_are_fresh() {
    let docs = generated();
    if regen_requested() {
        return;
    }
    let mut stale = String::new();
    for (rel, content) in docs {
        match fs::read(path(rel)) {
            Ok(committed) if &committed == content => {}
            Ok(committed) => {
                let _ = writeln!(
                    stale,
                    "  {rel} differs from what src/cli.rs and tests/docs.rs give, at {}",
                    first_difference(&committed, content)
                );
            }
            Err(e) => {
                let _ = writeln!(stale, "  {rel}: {e}");
            }
        }
    }
    assert!(
        stale.is_empty(),
        "the man page or the completions are stale:\n{stale}\
         Regenerate them, check the diff and commit them:\n\n    {REGEN_COMMAND}\n"
    );
}

/// The long and short flags of `cmd`, and of subcommand `sub` if given.
fn flags(cmd: &clap::Command, sub: Option<&str>) -> (Vec<String>, Vec<char>) {
    let mut args: Vec<&clap::Arg> = cmd.get_arguments().collect();
    if let Some(sub) = sub.and_then(|s| cmd.find_subcommand(s)) {
        args.extend(sub.get_arguments());
    }
    (
        args.iter()
            .filter_map(|a| a.get_long())
            .map(str::to_string)
            .collect(),
        args.iter().filter_map(|a| a.get_short()).collect(),
    )
}

/// The hand-written text of a page: (section, text) pairs.
fn page_texts<'a>(
    synopsis: &[&str],
    sections: &'a [(&'a str, &'a [Block])],
) -> Vec<(&'a str, String)> {
    let mut texts: Vec<(&str, String)> = synopsis
        .iter()
        .map(|l| ("SYNOPSIS", l.to_string()))
        .collect();
    for (title, blocks) in sections {
        for block in *blocks {
            texts.push(match block {
                Para(t) | Code(t) => (title, t.to_string()),
                Item(tag, t) => (title, format!("{tag} {t}")),
            });
        }
    }
    texts
}

/// The flags `texts` name that fwrun does not have. On a subcommand's page,
/// or on a line that names `fwrun SUB`, that subcommand's flags count too.
fn unknown_flags(texts: &[(&str, String)], page_sub: Option<&str>) -> Vec<String> {
    let cmd = Cli::command();
    let mut unknown = Vec::new();
    for (title, text) in texts {
        for line in text.lines() {
            let sub = page_sub.or_else(|| {
                SUBCOMMANDS
                    .iter()
                    .copied()
                    .find(|s| line.contains(&format!("fwrun {s}")))
            });
            let (longs, shorts) = flags(&cmd, sub);
            // Flags start a word: "--x", "(--x", "`--x`"; "a-b" and
            // "RTMIN+4" are not flags. After a lone "--" come the init's.
            let words = line.split(|c: char| c.is_whitespace() || "`([|,".contains(c));
            for word in words {
                if word == "--" {
                    break;
                }
                let word = word.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
                let known = if let Some(long) = word.strip_prefix("--") {
                    longs.iter().any(|l| l == long)
                } else if let Some(short) = word.strip_prefix('-') {
                    let mut c = short.chars();
                    matches!((c.next(), c.next()), (Some(s), None) if shorts.contains(&s))
                } else {
                    true
                };
                if !known {
                    unknown.push(format!("{title}: {word}"));
                }
            }
        }
    }
    unknown
}

/// Every flag that the SYNOPSIS and the extra sections of every page name
/// is one of fwrun's, so that renaming or removing a flag cannot leave the
/// man pages' hand-written text behind unnoticed.
#[test]
fn extra_text_names_real_flags() {
    let mut unknown = unknown_flags(&page_texts(SYNOPSIS, EXTRA_SECTIONS), None);
    for sub in SUB_PAGES {
        assert!(SUBCOMMANDS.contains(&sub.name), "{}", sub.name);
        let texts = page_texts(sub.synopsis, sub.sections);
        unknown.extend(
            unknown_flags(&texts, Some(sub.name))
                .into_iter()
                .map(|u| format!("fwrun-{}: {u}", sub.name)),
        );
    }
    assert!(
        unknown.is_empty(),
        "the man pages' hand-written text in tests/docs.rs names flags fwrun does not have: {unknown:?}"
    );
    // Every subcommand has its page.
    let cmd = Cli::command();
    let subs: Vec<&str> = cmd.get_subcommands().map(|s| s.get_name()).collect();
    assert_eq!(subs, SUBCOMMANDS);
    assert_eq!(SUB_PAGES.len(), SUBCOMMANDS.len());
}

// ---------------------------------------------------------------------------
// The committed files work.
// ---------------------------------------------------------------------------

/// A scratch directory for one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(what: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("fwrun-docs-{}-{what}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Runs `cmd` in the crate's root with a time limit, with HOME, ZDOTDIR and
/// the XDG directories in `scratch` so that no user configuration is read or
/// written.
fn run(mut cmd: Command, scratch: &Scratch, package: &str) -> Output {
    let home = &scratch.0;
    cmd.current_dir(root())
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("ZDOTDIR", home)
        .env_remove("BASH_ENV")
        .env_remove("ENV")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| {
        panic!("cannot run {cmd:?}: {e}; install Debian's {package} (scripts/deps.sh does)")
    });
    // Drain stdout and stderr while waiting, so that a chatty command
    // cannot block on a full pipe.
    let drain = |r: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let stdout = drain(child.stdout.take().map(|r| Box::new(r) as _));
    let stderr = drain(child.stderr.take().map(|r| Box::new(r) as _));
    let limit = Duration::from_secs(60);
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} took longer than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn describe(out: &Output) -> String {
    format!(
        "status {}\n--- stdout:\n{}\n--- stderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// `MANWIDTH=100 man -l man/fwrun.1` (man-db) formats the page without a word
/// on stderr, even with all of groff's warnings on, and the page shows the
/// flags and the extra sections.
#[test]
fn man_page_renders_without_warnings() {
    generated();
    for page in man_pages() {
        let shown = render_man(&page);
        let needles: &[&str] = match page.as_str() {
            MAN_PAGE => &[
                "--firmware",
                "--on-reboot",
                "--ready-when",
                "EXIT STATUS",
                "ENVIRONMENT",
                "FWRUN_FAULT",
                "FILES",
                "/run/fwrun/NAME/",
                "EXAMPLES",
                "sudo fwrun --firmware rootfs.ext4 -- /sbin/init",
                "SUBCOMMANDS",
                "fwrun-enter(1)",
                "ready_ms",
            ],
            "man/fwrun-enter.1" => &["fwrun-enter", "--no-tty", "CONFINEMENT", "EXIT STATUS"],
            "man/fwrun-list.1" => &["fwrun-list", "--json", "uptime_s"],
            "man/fwrun-stop.1" => &["fwrun-stop", "--kill", "143"],
            "man/fwrun-wait.1" => &["fwrun-wait", "--timeout", "124"],
            other => panic!("no needles for {other}"),
        };
        for needle in needles {
            assert!(
                shown.contains(needle),
                "man -l {page} does not show {needle:?}:\n{shown}"
            );
        }
    }
}

/// `man -l PAGE`'s text, which must come without a warning.
fn render_man(page: &str) -> String {
    let mut man = Command::new("man");
    // --warnings=w: every groff warning, not only man-db's default few.
    man.args(["--warnings=w", "-l", page])
        .env("MANWIDTH", "100")
        .env("LC_ALL", "C.UTF-8")
        .env_remove("MAN_KEEP_FORMATTING")
        .env_remove("MANPAGER")
        .env_remove("PAGER")
        .env_remove("MANOPT");
    let out = run(man, &Scratch::new("man"), "man-db");
    assert!(
        out.status.success(),
        "man -l {page} failed: {}",
        describe(&out)
    );
    assert!(
        out.stderr.is_empty(),
        "man -l {page} warned: {}",
        describe(&out)
    );
    text(&out.stdout)
}

/// groff with every warning on (-ww) finds nothing to say about the pages.
#[test]
fn man_page_passes_groff_warnings() {
    generated();
    for page in man_pages() {
        let mut groff = Command::new("groff");
        groff.args(["-k", "-ww", "-z", "-man", &page]);
        let out = run(groff, &Scratch::new("groff"), "groff-base");
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "groff -k -ww -z -man {page} warned: {}",
            describe(&out)
        );
    }
}

/// What every shell must offer for `fwrun --fir`: `--firmware`, and nothing
/// that does not start with `--fir` (more only if a flag like
/// `--firmware-kind` is added one day).
fn offers_firmware(offered: &[&str]) -> bool {
    offered.contains(&"--firmware") && offered.iter().all(|o| o.starts_with("--fir"))
}

/// bash: the script loads, registers a completion for fwrun, and its
/// function, called as bash calls it (COMP_WORDS=(fwrun --fir),
/// COMP_CWORD=1), puts `--firmware` in COMPREPLY.
#[test]
fn bash_completion_completes_a_flag() {
    generated();
    let script = format!(
        r#"set -u
source {BASH} || exit 10
complete -p fwrun || exit 11
COMP_WORDS=(fwrun --fir)
COMP_CWORD=1
COMP_LINE="fwrun --fir"
COMP_POINT=${{#COMP_LINE}}
COMPREPLY=()
_fwrun fwrun --fir fwrun || exit 12
printf 'reply:%s\n' "${{COMPREPLY[@]}}"
"#
    );
    let mut bash = Command::new("bash");
    bash.args(["--norc", "--noprofile", "-c", &script]);
    let out = run(bash, &Scratch::new("bash"), "bash");
    assert!(out.status.success(), "bash completion: {}", describe(&out));
    let replies: Vec<&str> = std::str::from_utf8(&out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("reply:"))
        .map(str::trim)
        .collect();
    assert!(
        offers_firmware(&replies),
        "bash completion of 'fwrun --fir': {}",
        describe(&out)
    );
}

/// fish: `complete -C` after sourcing the script offers `--firmware` for
/// `fwrun --fir`.
#[test]
fn fish_completion_completes_a_flag() {
    generated();
    let mut fish = Command::new("fish");
    fish.args([
        "--no-config",
        "-c",
        &format!("source {FISH}; or exit 10; complete -C 'fwrun --fir'"),
    ]);
    let out = run(fish, &Scratch::new("fish"), "fish");
    assert!(out.status.success(), "fish completion: {}", describe(&out));
    let offered: Vec<&str> = std::str::from_utf8(&out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split('\t').next().unwrap_or(""))
        .collect();
    assert!(
        offers_firmware(&offered),
        "fish completion of 'fwrun --fir': {}",
        describe(&out)
    );
}

/// zsh: the file parses (`zsh -n`), and a real completion works. An outer
/// zsh starts an interactive zsh on a pseudo-terminal (the zsh/zpty module)
/// whose .zshrc runs compinit with completions/ on $fpath, wraps compadd to
/// record every match offered, and binds Ctrl-T to a widget that completes
/// the word under the cursor and saves the command line. The outer zsh types
/// `fwrun --fir` and Ctrl-T; the matches must include `--firmware` and, when
/// it is the only one, the line must have become `fwrun --firmware...`.
/// Without a working completions/_fwrun, zsh offers nothing and the line
/// stays as typed.
#[test]
fn zsh_completion_completes_a_flag() {
    generated();

    let scratch = Scratch::new("zsh-parse");
    let mut parse = Command::new("zsh");
    parse.args(["-n", ZSH]);
    let out = run(parse, &scratch, "zsh");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "zsh -n {ZSH}: {}",
        describe(&out)
    );

    let scratch = Scratch::new("zsh");
    let dir = &scratch.0;
    let at = |name: &str| {
        dir.join(name)
            .to_str()
            .expect("a UTF-8 temporary directory")
            .to_owned()
    };
    let (ready, done, matches, line) = (at("ready"), at("done"), at("matches"), at("line"));
    let completions = path(ZSH).parent().unwrap().to_owned();
    // The inner shell's (run() points ZDOTDIR here); no system-wide rc files.
    fs::write(dir.join(".zshenv"), "unsetopt GLOBAL_RCS\n").unwrap();
    fs::write(
        dir.join(".zshrc"),
        format!(
            r#"PS1='%% '
fpath=({completions:?} $fpath)
autoload -U compinit && compinit -u -d {zcompdump:?}
compadd() {{
  local -a hits
  builtin compadd -O hits "$@"
  (( $#hits )) && print -rl -- $hits >> {matches:?}
  builtin compadd "$@"
}}
fwrun-test-complete() {{
  zle complete-word
  print -r -- "$BUFFER" > {line:?}
  : > {done:?}
}}
zle -N fwrun-test-complete
bindkey '^T' fwrun-test-complete
: > {ready:?}
"#,
            zcompdump = at("zcompdump"),
        ),
    )
    .unwrap();
    let driver = format!(
        r#"
wait_for() {{ local i; for i in {{1..400}}; do [[ -e $1 ]] && return 0; sleep 0.05; done; return 1 }}
zmodload zsh/zpty || exit 20
zpty inner zsh -i || exit 21
wait_for {ready:?} || {{ zpty -r -t inner out; print -ru2 -- "the inner zsh never got ready: $out"; exit 22 }}
zpty -w -n inner $'fwrun --fir\C-t'
wait_for {done:?} || {{ zpty -r -t inner out; print -ru2 -- "the completion never ended: $out"; exit 23 }}
zpty -d inner
"#
    );
    let mut zsh = Command::new("zsh");
    zsh.args(["-f", "-c", &driver]);
    let out = run(zsh, &scratch, "zsh");
    let read = |p: &str| fs::read_to_string(p).unwrap_or_default();
    let (matches, line) = (read(&matches), read(&line));
    let mut offered: Vec<&str> = matches.lines().collect();
    offered.sort_unstable();
    offered.dedup();
    // A single match is also inserted into the line.
    let inserted = offered != ["--firmware"] || line.starts_with("fwrun --firmware");
    assert!(
        out.status.success() && offers_firmware(&offered) && inserted,
        "zsh completion of 'fwrun --fir': offered {offered:?}, line {line:?}; {}",
        describe(&out)
    );
}
