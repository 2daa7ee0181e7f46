//! The command line: one clap definition, whose doc comments are the help
//! text (and, generated from it, the man page and the completions).

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{PossibleValue, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::firmware::rootfs::Bind;
use crate::network::{self, HostAddr, Move};
use crate::supervise::ready::Condition;
use crate::sys::signals;

const EXAMPLES: &str = "\
Examples:
  Boot a firmware image and watch it; Ctrl-C stops it:
    fwrun --firmware rootfs.ext4 -- /sbin/init
  Run one command in a squashfs firmware, keeping its changes in ./state:
    fwrun --firmware fw.squashfs --rw-dir ./state -- /bin/sh -c 'touch /etc/x'
  Reach a firmware that sets its eth0 to 192.168.1.1/24 from this host:
    fwrun --firmware fw.ext2 --net veth:192.168.1.2/24 -- /sbin/init
    curl http://192.168.1.1/
  Give the firmware the host's network and a serial port:
    fwrun --firmware fw.ext2 --net host --bind /dev/ttyUSB0:/dev/ttyS1 -- /sbin/init
  A systemd firmware for at most 60 s (stopped with RTMIN+4, read from its init):
    fwrun --firmware fw.ext4 --timeout 60s -- /lib/systemd/systemd
  In CI: boot in the background, wait until it is up, test inside, stop:
    fwrun --firmware fw.ext4 --name t1 --ready-when console:login: &
    fwrun wait t1 --timeout 60s && fwrun enter t1 -- /usr/bin/selftest
    fwrun stop t1

Exit status:
  the init's own status when it exits; 128+N when it dies of signal N;
  0 when the firmware powers off or halts; 129 when it reboots (with
  --on-reboot exit); 124 --timeout expired; 125 fwrun itself failed;
  126 init not executable; 127 init not found; 130, 143, 129 when fwrun
  was stopped by Ctrl-C, SIGTERM or SIGHUP.";

/// Run an embedded device's firmware (its root file system image and its
/// init) on this machine, isolated so that its accidents cannot hurt the host.
///
/// fwrun mounts a writable overlay over the read-only image, starts the init
/// as pid 1 in new pid, mount, uts, ipc, cgroup and network namespaces with
/// constrained /proc, /sys and /dev, and tears everything down when the init
/// exits or on Ctrl-C. It must run as root.
#[derive(Debug, Parser)]
#[command(
    name = "fwrun",
    version,
    after_help = EXAMPLES,
    max_term_width = 100,
    override_usage = "fwrun [OPTIONS] --firmware <PATH> [-- <INIT> [ARGS]...]\n       \
                      fwrun --cleanup [-v | -q]\n       \
                      fwrun enter [OPTIONS] <NAME> [--] [CMD [ARGS]...]\n       \
                      fwrun list [--json]\n       \
                      fwrun stop <NAME> [--kill] [--timeout <SECS>]\n       \
                      fwrun wait <NAME> [--timeout <DURATION>]",
    subcommand_negates_reqs = true,
    args_conflicts_with_subcommands = true,
    disable_help_subcommand = true
)]
pub struct Cli {
    /// What to do with a running firmware, instead of starting one.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// The firmware: an ext2/ext3/ext4 image, a squashfs image, or a directory
    /// holding a root file system. Its kind is read from its content, not its
    /// name. It is never written to.
    #[arg(long, value_name = "PATH", required_unless_present_any = ["cleanup", "print_profile"])]
    pub firmware: Option<PathBuf>,

    /// Only sweep: remove what dead runs left (state directories, AppArmor
    /// profiles), print what was removed, and exit. Live runs are never
    /// touched.
    #[arg(long, conflicts_with_all = ["firmware", "init", "print_profile"])]
    pub cleanup: bool,

    /// Keep the firmware's changes in DIR (DIR/upper and DIR/work) instead of
    /// a tmpfs that is discarded at the end: the next run with the same DIR
    /// sees them.
    #[arg(long, value_name = "DIR")]
    pub rw_dir: Option<PathBuf>,

    /// The run's name: letters, digits, '.', '_', '-', at most 32 characters.
    /// It names the state directory, the overlay and the AppArmor profile
    /// (fwrun-NAME-ID, with an ID fresh for every run).
    /// [default: generated, short and unique]
    #[arg(long, value_name = "NAME", value_parser = parse_name)]
    pub name: Option<String>,

    /// The firmware's hostname. [default: the run's name]
    #[arg(long, value_name = "NAME", value_parser = parse_hostname)]
    pub hostname: Option<String>,

    /// Bind a host path into the firmware at DST (an absolute path inside
    /// it), read-only with ':ro' (every mount under SRC too). Device nodes
    /// under SRC open nothing unless SRC is itself a device node.
    /// Repeatable.
    #[arg(long, value_name = "SRC:DST[:ro]", value_parser = parse_bind)]
    pub bind: Vec<Bind>,

    /// Set a variable in the init's environment. Repeatable. The init
    /// otherwise gets a small clean environment (PATH, HOME, TERM,
    /// container=fwrun), not the caller's.
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_env)]
    pub env: Vec<(String, String)>,

    /// The firmware's network. 'none': a network namespace of its own with
    /// only the loopback interface, up. 'host': the host's own network, whose
    /// settings it may then not change (no net_admin; the AppArmor profile
    /// refuses writes under /proc/sys/net and /sys/class/net).
    /// 'veth[:HOSTADDR/PREFIX]': a namespace of its own with one end of a
    /// veth pair, eth0, left down and unaddressed for the firmware to
    /// configure as on its device; the host's end, fw-NAME, is brought up,
    /// with the IPv4 address HOSTADDR/PREFIX if given (refused if it shares
    /// a network with a route of the host). 'bridge:BR': the same, with the
    /// host's end in the existing bridge BR, which several firmwares and
    /// the host may share.
    #[arg(long, value_name = "MODE", default_value = "none", value_parser = NetParser, hide_possible_values = true)]
    pub net: Net,

    /// The firmware's end of the veth under --net veth or bridge.
    /// [default: eth0]
    #[arg(long, value_name = "NAME", value_parser = parse_ifname)]
    pub veth_name: Option<String>,

    /// Move the host interface IFACE (a tap, a USB network adapter, a CAN
    /// interface) into the firmware's network, named NEWNAME there if given.
    /// At the end it comes back to the host under its own name, with its
    /// flags and MTU (its addresses are not kept). Repeatable; not with
    /// --net host.
    #[arg(long, value_name = "IFACE[:NEWNAME]", value_parser = parse_move)]
    pub net_move: Vec<Move>,

    /// Reach the firmware's port PORT from the host's HOSTADDR:HOSTPORT
    /// (HOSTADDR 127.0.0.1 unless given; [::1] for IPv6), with every --net
    /// mode, none included: fwrun listens on the host and carries each
    /// connection (each client's datagrams with /udp) to the firmware's
    /// 127.0.0.1:PORT inside its network, or to the address the firmware
    /// listens on for PORT. Nothing of it outlives the run. A host port
    /// another program holds is refused before anything starts. Repeatable.
    #[arg(short = 'p', long, value_name = "[HOSTADDR:]HOSTPORT:PORT[/tcp|/udp]", value_parser = network::publish::parse)]
    pub publish: Vec<network::publish::Publish>,

    /// The signal that asks the init to stop (on Ctrl-C, SIGTERM, SIGHUP or
    /// --timeout): a name (TERM, SIGUSR2, RTMIN+4), a number, or 'auto':
    /// the one the init expects, read from the firmware (busybox init
    /// powers off on USR2, sysvinit shuts down on INT, its inittab's
    /// ctrlaltdel entry, systemd powers off on RTMIN+4; any other program
    /// gets TERM). -v and the report say which was chosen and why.
    #[arg(long, value_name = "SIGNAL", default_value = "auto", value_parser = parse_stop_signal)]
    pub stop_signal: StopSignal,

    /// Seconds to wait after the stop signal before every process of the
    /// firmware is killed. fwrun says which happened: stopped (and how
    /// fast) or killed.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_duration)]
    pub stop_timeout: Duration,

    /// Stop the firmware after this long (e.g. 90s, 5m, 1.5h; a bare number
    /// is seconds) and exit with 124.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,

    /// What a reboot from inside the firmware does: 'exit' ends the run
    /// (exit code 129), 'restart' boots the firmware again with the same
    /// writable layer.
    #[arg(long, value_name = "ACTION", default_value = "exit")]
    pub on_reboot: OnReboot,

    /// The firmware's console: 'pty' gives the init a new pseudo-terminal as
    /// its controlling terminal and /dev/console, relayed to fwrun's stdin
    /// and stdout (the terminal in raw mode; Ctrl-] three times within a
    /// second stops the run); 'inherit' gives it fwrun's stdin, stdout and
    /// stderr. 'auto': pty for an init fwrun recognises (busybox init,
    /// sysvinit, systemd) and whenever stdin and stdout are both a
    /// terminal, inherit for any other program (pipes and binary output
    /// pass unchanged). Without a terminal on stdout, the firmware gets
    /// TERM=dumb unless --env sets TERM.
    #[arg(long, value_name = "MODE", default_value = "auto")]
    pub console: Console,

    /// When the firmware counts as ready (repeatable: all must hold, each
    /// once): 'console:REGEX' (a line of its console matches),
    /// 'tcp:[ADDR:]PORT' (a connection to ADDR, 127.0.0.1 if not given,
    /// made inside its network, is accepted), 'file:PATH' (PATH exists
    /// inside it) or 'exec:CMD' (the shell command CMD, run inside it as by
    /// 'fwrun enter', exits 0; polled). Then the run's state becomes ready (fwrun wait, fwrun list)
    /// and fwrun says "firmware ready after N s". To read the console in
    /// inherit mode, fwrun passes the init's output on through pipes.
    /// [default: ready once the init runs]
    #[arg(long, value_name = "COND", value_parser = parse_ready)]
    pub ready_when: Vec<Condition>,

    /// Stop the firmware and exit with 124 if it is not ready after this
    /// long (e.g. 30s, 2m).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "ready_when")]
    pub ready_timeout: Option<Duration>,

    /// Once the firmware is ready, write a line ("ready") to this open file
    /// descriptor, and close it.
    #[arg(long, value_name = "FD")]
    pub ready_fd: Option<i32>,

    /// Limit the firmware's memory (memory.max of its cgroup): bytes, or
    /// with K, M or G (e.g. 64M). Swap is not used unless --memory-swap
    /// allows it. A firmware past the limit is OOM-killed (exit 137). Needs
    /// the cgroup v2 unified hierarchy, as every limit does.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub memory: Option<u64>,

    /// Let the firmware use this much swap (memory.swap.max). [default: 0
    /// with --memory]
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub memory_swap: Option<u64>,

    /// The most processes and threads the firmware may have at once
    /// (pids.max): a fork bomb stops there. [default: 4096 on a cgroup v2
    /// host; none on v1]
    #[arg(long, value_name = "N", value_parser = parse_pids)]
    pub pids: Option<u64>,

    /// The CPU time the firmware gets, in CPUs (cpu.max; e.g. 0.5 is half
    /// of one CPU).
    #[arg(long, value_name = "N.N", value_parser = parse_cpus)]
    pub cpus: Option<f64>,

    /// The firmware's share of block I/O against its siblings, 1 to 10000
    /// (io.weight; 100 is the kernel's default).
    #[arg(long, value_name = "N", value_parser = parse_io_weight)]
    pub io_weight: Option<u16>,

    /// Make the run's cgroup (fwrun-NAME) under this cgroup, a path below
    /// /sys/fs/cgroup, which must hold no process of its own. [default:
    /// next to fwrun's own cgroup]
    #[arg(long, value_name = "PATH", value_parser = parse_cgroup_parent)]
    pub cgroup_parent: Option<PathBuf>,

    /// Run INIT as pid 2 under a minimal pid 1 of fwrun's that reaps orphans
    /// and forwards signals: for a test program rather than a real init. The
    /// exit status is the program's.
    #[arg(long)]
    pub as_pid2: bool,

    /// Confine the firmware with a per-run AppArmor profile: 'auto' uses it
    /// when the kernel has AppArmor and warns once when it does not;
    /// 'require' refuses to run without it (exit 125); 'off' never uses it.
    #[arg(long, value_name = "MODE", default_value = "auto")]
    pub apparmor: AppArmorMode,

    /// Render the profile from this template instead of the built-in one
    /// (tera syntax; see profiles/fwrun.profile.tera).
    #[arg(long, value_name = "FILE")]
    pub profile_template: Option<PathBuf>,

    /// Deny the firmware every access to PATH (an AppArmor glob, as the
    /// firmware sees it), on top of the built-in list. Repeatable.
    #[arg(long, value_name = "PATH")]
    pub deny: Vec<String>,

    /// Keep CAP_MKNOD and the profile's permission for device nodes. Off by
    /// default. In the firmware's user namespace the kernel makes no
    /// device node all the same: this matters with --userns off only, and
    /// there a node made on fwrun's mounts does not open (they are nodev);
    /// one made on a file system the firmware mounts itself would.
    #[arg(long)]
    pub allow_mknod: bool,

    /// Give the firmware a capability it does not get by default (e.g.
    /// SYS_TIME, which lets it set the host's clock). Repeatable. By default
    /// it keeps every capability but sys_module, sys_time, sys_rawio,
    /// syslog, wake_alarm, sys_pacct, mac_admin, mac_override,
    /// audit_control, bpf, perfmon, block_suspend, mknod (see
    /// --allow-mknod) and, under --net host, net_admin.
    #[arg(long, value_name = "CAP", value_parser = parse_cap)]
    pub cap_add: Vec<caps::Capability>,

    /// Take a capability away from the firmware (e.g. NET_RAW). Repeatable.
    #[arg(long, value_name = "CAP", value_parser = parse_cap)]
    pub cap_drop: Vec<caps::Capability>,

    /// The seccomp filter: 'on' refuses the calls that reach the host
    /// (modules, the clock, swap, the kernel log's destructive actions, …)
    /// and hands the firmware's mounts to fwrun, which keeps /proc, /sys
    /// and /dev constrained. 'off' is for debugging only: without it, a
    /// firmware's own mounts undo those constraints.
    #[arg(long, value_name = "MODE", default_value = "on")]
    pub seccomp: Switch,

    /// The firmware's user namespace: 'on' makes it root only inside a user
    /// namespace of its own (ids mapped to themselves, so its files need no
    /// shifting), where the kernel keeps it off the host: fwrun's mounts
    /// are locked, and the clock, modules, device nodes, raw I/O and the
    /// host's terminal need privileges it does not have. 'off' is for
    /// debugging only: the firmware is then root in the host's user
    /// namespace, and only fwrun's own checks stand in its way.
    #[arg(long, value_name = "MODE", default_value = "on")]
    pub userns: Switch,

    /// What a module load (init_module, finit_module) gets: 'refuse' (the
    /// default) answers EPERM; 'fake' answers that the module was loaded,
    /// and loads nothing, for an rcS that stops when insmod fails. Either
    /// way the host's kernel is untouched, and the report counts the calls.
    #[arg(long, value_name = "MODE", default_value = "refuse")]
    pub modules: Modules,

    /// The firmware's kernel command line, as its /proc/cmdline shows it
    /// (its init reads console=, root=, boot slots and debug flags there).
    /// [default: the host's, without its console= entries]
    #[arg(long, value_name = "TEXT", value_parser = parse_cmdline)]
    pub cmdline: Option<String>,

    /// Write the firmware's kernel log (what it writes to /dev/kmsg, one
    /// '<PRI>message' record a line) to FILE instead of fwrun's stdout.
    /// The host's kernel log is never read or written for it.
    #[arg(long, value_name = "FILE")]
    pub kmsg: Option<PathBuf>,

    /// Print the AppArmor profile this run would load, and exit without
    /// running anything. Its name's ID is fresh every time, as a run's is.
    #[arg(long)]
    pub print_profile: bool,

    /// The apparmor_parser to load the profile with. [default: found in
    /// /usr/sbin or /sbin]
    #[arg(long, value_name = "PATH")]
    pub apparmor_parser: Option<PathBuf>,

    /// Print AppArmor denials as they happen, not only in the summary at
    /// the end.
    #[arg(long)]
    pub follow_denials: bool,

    /// At the end, list what the firmware added (A), modified (M), deleted
    /// (D) and replaced (R, a directory made anew) in its root, read from
    /// the overlay's upper layer.
    #[arg(long)]
    pub changes: bool,

    /// Write a JSON report of the run to FILE: name, firmware, init,
    /// times, phases, how it ended, exit code, changes, AppArmor denials.
    /// Written even when the run fails.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    /// Say more: each phase and how long it took.
    #[arg(short, long, conflicts_with = "quiet")]
    pub verbose: bool,

    /// Say nothing but errors.
    #[arg(short, long)]
    pub quiet: bool,

    /// The init to start inside the firmware, and its arguments.
    /// [default: /sbin/init]
    #[arg(last = true, value_name = "INIT")]
    pub init: Vec<OsString>,
}

/// The commands that act on a running firmware, found by its run's name.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command inside a running firmware.
    ///
    /// The command joins the init's namespaces, root and working directory
    /// and gets the run's confinement (its AppArmor profile, capabilities and
    /// seccomp filter, whose mount calls this process answers while it
    /// waits) and the init's environment. It gets a pseudo-terminal when
    /// stdin is a terminal. fwrun exits with the command's status: 128+N if
    /// it died of signal N, 126 if it cannot be executed, 127 if it was not
    /// found, 125 if fwrun failed (no such run, say).
    #[command(
        after_help = "Examples:\n  fwrun enter t1                       a login shell inside run t1\n  \
                            fwrun enter t1 -- ps                 the firmware's processes\n  \
                            fwrun enter --env V=1 t1 -- /usr/bin/selftest"
    )]
    Enter(EnterArgs),
    /// List the live runs: name, firmware, init pid, state, uptime, network.
    ///
    /// The state is booting, ready (its --ready-when conditions held) or
    /// stopping. What dead runs left is swept first.
    List(ListArgs),
    /// Stop a run, as SIGTERM to its fwrun would, and wait until it has
    /// ended and cleaned up.
    ///
    /// The run's init gets its --stop-signal; fwrun exits 0 once the run is
    /// gone, 1 if it was not running.
    Stop(StopArgs),
    /// Wait until a run is ready: exit 0 once it is, 1 if it ends first,
    /// 124 when the timeout passes.
    ///
    /// A run that has not started yet is waited for, 10 s at most (or the
    /// timeout, if shorter).
    Wait(WaitArgs),
}

#[derive(Debug, Args)]
pub struct EnterArgs {
    /// The run's name (its --name).
    #[arg(value_name = "NAME", value_parser = parse_name)]
    pub name: String,

    /// Set a variable in the command's environment, on top of the init's.
    /// Repeatable.
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_env)]
    pub env: Vec<(String, String)>,

    /// Give the command a pseudo-terminal even when stdin is not a terminal.
    #[arg(short = 't', long = "tty", conflicts_with = "no_tty")]
    pub tty: bool,

    /// Give the command fwrun's own stdin, stdout and stderr even on a
    /// terminal.
    #[arg(short = 'T', long = "no-tty")]
    pub no_tty: bool,

    /// Say nothing but errors (not the calls the command was refused).
    #[arg(short, long)]
    pub quiet: bool,

    /// The command and its arguments, looked up in the firmware's PATH.
    /// [default: /bin/sh -l]
    #[arg(
        value_name = "CMD",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<OsString>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print a JSON array (schemas/list.schema.json) instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// The run's name.
    #[arg(value_name = "NAME", value_parser = parse_name)]
    pub name: String,

    /// Kill the firmware at once (as a second Ctrl-C does) rather than wait
    /// for its init to stop.
    #[arg(long)]
    pub kill: bool,

    /// Kill the firmware if it has not stopped after this long (e.g. 5s).
    /// [default: the run's --stop-timeout]
    #[arg(long, value_name = "SECS", value_parser = parse_duration, conflicts_with = "kill")]
    pub timeout: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    /// The run's name.
    #[arg(value_name = "NAME", value_parser = parse_name)]
    pub name: String,

    /// Give up after this long (e.g. 30s, 2m) and exit with 124.
    /// [default: wait as long as the run boots]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
}

/// `--net`'s value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Net {
    /// A network namespace of its own with only `lo`.
    None,
    /// The host's network.
    Host,
    /// A veth pair, the host's end with this address if given.
    Veth(Option<HostAddr>),
    /// A veth pair, the host's end in this bridge.
    Bridge(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Modules {
    /// Refuse with EPERM (the default).
    Refuse,
    /// Answer "loaded", load nothing.
    Fake,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    /// On (the default).
    On,
    /// Off (debugging only).
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AppArmorMode {
    /// Use AppArmor when the kernel has it; warn once when it does not.
    Auto,
    /// Refuse to run without AppArmor.
    Require,
    /// Never use AppArmor, and say nothing about it.
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnReboot {
    /// End the run, with exit code 129.
    Exit,
    /// Boot the firmware again, keeping its writable layer.
    Restart,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Console {
    /// pty for a recognised init or on a terminal, inherit otherwise.
    Auto,
    /// A new pseudo-terminal, relayed to fwrun's stdin and stdout.
    Pty,
    /// fwrun's own stdin, stdout and stderr.
    Inherit,
}

/// --stop-signal: chosen from the init, or the one given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    Auto,
    Signal(i32),
}

/// A run's name, checked as the state directory checks it.
pub fn parse_name(s: &str) -> Result<String, String> {
    crate::state::check_name(s).map(|()| s.to_string())
}

/// A kernel command line: one line, of printable text.
fn parse_cmdline(s: &str) -> Result<String, String> {
    const MAX: usize = 4096;
    if s.len() > MAX {
        return Err(format!(
            "the command line is {} bytes long: give at most {MAX}",
            s.len()
        ));
    }
    match s.chars().find(|c| c.is_control()) {
        Some(c) => Err(format!(
            "the command line holds the control character {c:?}: give one line of text"
        )),
        None => Ok(s.to_string()),
    }
}

fn parse_hostname(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "'{}' is not a hostname: use letters, digits, '-' and '.', at most 64 characters",
            s.escape_default()
        ))
    }
}

/// `--net`'s parser: [`parse_net`], with the plain modes offered to the
/// shell completions.
#[derive(Clone)]
struct NetParser;

impl TypedValueParser for NetParser {
    type Value = Net;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Net, clap::Error> {
        let text = value.to_str().unwrap_or_default();
        parse_net(text).map_err(|why| {
            let name = arg.map_or("--net".to_string(), |a| a.to_string());
            clap::Error::raw(
                clap::error::ErrorKind::InvalidValue,
                format!("invalid value '{text}' for '{name}': {why}\n"),
            )
            .with_cmd(cmd)
        })
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            [
                PossibleValue::new("none").help("A network namespace of its own with only lo"),
                PossibleValue::new("host").help("The host's network"),
                PossibleValue::new("veth").help("A veth pair to the host"),
            ]
            .into_iter(),
        ))
    }
}

fn parse_net(s: &str) -> Result<Net, String> {
    let (mode, arg) = match s.split_once(':') {
        Some((m, a)) => (m, Some(a)),
        None => (s, None),
    };
    match (mode, arg) {
        ("none", None) => Ok(Net::None),
        ("host", None) => Ok(Net::Host),
        ("veth", None) => Ok(Net::Veth(None)),
        ("veth", Some(a)) => network::parse_host_addr(a).map(|a| Net::Veth(Some(a))),
        ("bridge", Some(br)) => network::check_ifname(br).map(|()| Net::Bridge(br.into())),
        ("bridge", None) => Err("give the bridge's name: bridge:BR".into()),
        _ => Err("use none, host, veth, veth:HOSTADDR/PREFIX or bridge:BR".into()),
    }
}

fn parse_ifname(s: &str) -> Result<String, String> {
    network::check_ifname(s).map(|()| s.to_string())
}

fn parse_move(s: &str) -> Result<Move, String> {
    network::parse_move(s)
}

fn parse_bind(s: &str) -> Result<Bind, String> {
    let mut parts: Vec<&str> = s.split(':').collect();
    let read_only = match parts.as_slice() {
        [_, _, "ro"] => true,
        [_, _, "rw"] => false,
        [_, _] => false,
        _ => return Err(format!("'{s}' is not SRC:DST or SRC:DST:ro")),
    };
    parts.truncate(2);
    let (src, dst) = (parts[0], parts[1]);
    if src.is_empty() {
        return Err(format!("'{s}' has no source path"));
    }
    if !dst.starts_with('/') {
        return Err(format!(
            "the destination '{dst}' must be an absolute path inside the firmware"
        ));
    }
    if dst.split('/').any(|c| c == "..") {
        return Err(format!("the destination '{dst}' must not contain '..'"));
    }
    Ok(Bind {
        src: PathBuf::from(src),
        dst: PathBuf::from(dst),
        read_only,
    })
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() && !k.contains('\0') && !v.contains('\0') => {
            Ok((k.to_string(), v.to_string()))
        }
        _ => Err(format!("'{s}' is not KEY=VALUE")),
    }
}

fn parse_ready(s: &str) -> Result<Condition, String> {
    Condition::parse(s)
}

fn parse_cap(s: &str) -> Result<caps::Capability, String> {
    crate::confine::caps::parse(s)
}

fn parse_stop_signal(s: &str) -> Result<StopSignal, String> {
    if s.trim().eq_ignore_ascii_case("auto") {
        return Ok(StopSignal::Auto);
    }
    parse_signal(s).map(StopSignal::Signal)
}

fn parse_signal(s: &str) -> Result<i32, String> {
    signals::parse(s).ok_or_else(|| {
        format!("'{s}' is not a signal: use a name like TERM, USR2, RTMIN+3, or a number")
    })
}

/// "65536", "64K", "64M", "1G", "1.5G" (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || format!("'{s}' is not a size: use bytes or K, M, G (e.g. 64M)");
    let value: f64 = num.parse().map_err(|_| bad())?;
    let scale = match unit.to_ascii_uppercase().trim_end_matches(['B', 'I']) {
        "" => 1u64,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return Err(bad()),
    };
    let bytes = value * scale as f64;
    if !bytes.is_finite() || bytes < 1.0 || bytes > (1u64 << 60) as f64 {
        return Err(format!("'{s}' is out of range"));
    }
    Ok(bytes as u64)
}

fn parse_pids(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if (1..=4_194_304).contains(&n) => Ok(n),
        _ => Err(format!(
            "'{s}' is not a process count: use a whole number from 1 to 4194304"
        )),
    }
}

fn parse_cpus(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        // cpu.max's quota must be at least 1 ms per 100 ms period.
        Ok(n) if n.is_finite() && (0.01..=4096.0).contains(&n) => Ok(n),
        _ => Err(format!(
            "'{s}' is not a CPU count: use a number from 0.01 to 4096 (e.g. 0.5)"
        )),
    }
}

fn parse_io_weight(s: &str) -> Result<u16, String> {
    match s.trim().parse::<u16>() {
        Ok(n) if (1..=10000).contains(&n) => Ok(n),
        _ => Err(format!("'{s}' is not an I/O weight: use 1 to 10000")),
    }
}

fn parse_cgroup_parent(s: &str) -> Result<PathBuf, String> {
    let p = s.strip_prefix("/sys/fs/cgroup").unwrap_or(s);
    if p.split('/').any(|c| c == ".." || c == ".") || p.contains('\0') {
        return Err(format!(
            "'{s}' is not a cgroup path: give it below /sys/fs/cgroup, without '.' or '..'"
        ));
    }
    Ok(PathBuf::from(p.trim_matches('/')))
}

/// "90", "90s", "500ms", "5m", "1.5h".
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration: use e.g. 30s, 500ms, 5m"))?;
    let secs = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("'{s}': unknown unit '{unit}': use ms, s, m or h")),
    };
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(format!("'{s}' is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn init_and_args_after_double_dash() {
        let cli =
            Cli::try_parse_from(["fwrun", "--firmware", "x", "--", "/bin/sh", "-c", "exit 3"])
                .unwrap();
        assert_eq!(cli.init, ["/bin/sh", "-c", "exit 3"]);
        assert_eq!(cli.net, Net::None);
        assert_eq!(cli.stop_signal, StopSignal::Auto);
        assert_eq!(cli.console, Console::Auto);
        assert_eq!(cli.stop_timeout, Duration::from_secs(10));
    }

    #[test]
    fn firmware_is_required() {
        assert!(Cli::try_parse_from(["fwrun"]).is_err());
    }

    #[test]
    fn names() {
        assert!(parse_name("fw-1.test_a").is_ok());
        assert!(parse_name("a/b").unwrap_err().contains('/'));
        assert!(parse_name(&"a".repeat(33)).is_err());
        assert!(parse_name("-x").is_err());
        assert!(parse_name("").is_err());
        assert!(parse_name("a b").is_err());
        assert!(parse_name("a\nb").unwrap_err().contains("\\n"));
    }

    #[test]
    fn binds() {
        assert_eq!(
            parse_bind("/srv/data:/data:ro").unwrap(),
            Bind {
                src: "/srv/data".into(),
                dst: "/data".into(),
                read_only: true
            }
        );
        assert!(!parse_bind("a:/b").unwrap().read_only);
        assert!(parse_bind("a:b").is_err());
        assert!(parse_bind("a").is_err());
        assert!(parse_bind("a:/b:x").is_err());
        assert!(parse_bind(":/b").is_err());
        assert!(parse_bind("a:/b/../c").is_err());
    }

    #[test]
    fn envs() {
        assert_eq!(parse_env("A=b=c").unwrap(), ("A".into(), "b=c".into()));
        assert!(parse_env("=x").is_err());
        assert!(parse_env("novalue").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1s").unwrap(), Duration::from_secs(1));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert!(parse_duration("1d").is_err());
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("-1").is_err());
    }

    #[test]
    fn subcommands_and_a_plain_run_side_by_side() {
        let cli = Cli::try_parse_from(["fwrun", "enter", "t1", "sh", "-c", "exit 7"]).unwrap();
        match cli.command {
            Some(Command::Enter(e)) => {
                assert_eq!(e.name, "t1");
                assert_eq!(e.command, ["sh", "-c", "exit 7"]);
            }
            other => panic!("{other:?}"),
        }
        let cli = Cli::try_parse_from(["fwrun", "enter", "-T", "t1", "--", "ls", "-l"]).unwrap();
        assert!(
            matches!(cli.command, Some(Command::Enter(e)) if e.no_tty && e.command == ["ls", "-l"])
        );
        let cli = Cli::try_parse_from(["fwrun", "enter", "t1"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Enter(e)) if e.command.is_empty()));
        assert!(Cli::try_parse_from(["fwrun", "enter", "a/b"]).is_err());
        assert!(Cli::try_parse_from(["fwrun", "list", "--json"]).is_ok());
        let cli = Cli::try_parse_from(["fwrun", "stop", "t1", "--timeout", "5s"]).unwrap();
        assert!(
            matches!(cli.command, Some(Command::Stop(s)) if s.timeout == Some(Duration::from_secs(5)))
        );
        assert!(Cli::try_parse_from(["fwrun", "stop", "t1", "--kill", "--timeout", "1"]).is_err());
        assert!(Cli::try_parse_from(["fwrun", "wait", "t1", "--timeout", "30s"]).is_ok());
        // A run's flags do not mix with a subcommand.
        assert!(Cli::try_parse_from(["fwrun", "--firmware", "x", "list"]).is_err());
        // A plain run is unchanged, even with an init named like a subcommand.
        let cli = Cli::try_parse_from(["fwrun", "--firmware", "x", "--", "list"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.init, ["list"]);
        let cli = Cli::try_parse_from([
            "fwrun",
            "--firmware",
            "x",
            "--ready-when",
            "console:up",
            "--ready-when",
            "file:/run/up",
            "--ready-timeout",
            "2s",
        ])
        .unwrap();
        assert_eq!(cli.ready_when.len(), 2);
        assert!(
            Cli::try_parse_from(["fwrun", "--firmware", "x", "--ready-timeout", "2s"]).is_err()
        );
        assert!(Cli::try_parse_from(["fwrun", "--firmware", "x", "--ready-when", "nope"]).is_err());
    }

    #[test]
    fn network_modes() {
        assert_eq!(parse_net("none"), Ok(Net::None));
        assert_eq!(parse_net("veth"), Ok(Net::Veth(None)));
        assert_eq!(
            parse_net("veth:169.254.77.2/24").unwrap(),
            Net::Veth(Some(network::parse_host_addr("169.254.77.2/24").unwrap()))
        );
        assert_eq!(parse_net("bridge:br0"), Ok(Net::Bridge("br0".into())));
        for bad in [
            "bridge",
            "bridge:",
            "veth:",
            "veth:1.2.3.4",
            "host:x",
            "vet",
        ] {
            assert!(parse_net(bad).is_err(), "{bad}");
        }
        assert!(parse_net("bridge:a234567890123456")
            .unwrap_err()
            .contains("15 bytes"));
    }

    #[test]
    fn limits() {
        assert_eq!(parse_size("64M").unwrap(), 64 << 20);
        assert_eq!(parse_size("1.5G").unwrap(), 3 << 29);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("2KiB").unwrap(), 2048);
        for bad in ["", "M", "-1M", "64X", "0"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_pids("256").unwrap(), 256);
        assert!(parse_pids("0").is_err());
        assert!(parse_pids("x").is_err());
        assert_eq!(parse_cpus("0.5").unwrap(), 0.5);
        assert!(parse_cpus("0").is_err());
        assert!(parse_cpus("nan").is_err());
        assert_eq!(parse_io_weight("100").unwrap(), 100);
        assert!(parse_io_weight("0").is_err());
        assert!(parse_io_weight("10001").is_err());
        assert_eq!(
            parse_cgroup_parent("/sys/fs/cgroup/ci.slice/").unwrap(),
            PathBuf::from("ci.slice")
        );
        assert!(parse_cgroup_parent("a/../b").is_err());
    }

    #[test]
    fn command_lines() {
        assert_eq!(
            parse_cmdline("root=/dev/mtdblock2 bootslot=b").as_deref(),
            Ok("root=/dev/mtdblock2 bootslot=b")
        );
        assert_eq!(parse_cmdline("").as_deref(), Ok(""));
        assert!(parse_cmdline("a\nb").is_err());
        assert!(parse_cmdline(&"x".repeat(5000)).is_err());
    }

    #[test]
    fn hostnames() {
        assert!(parse_hostname("router-1.lab").is_ok());
        assert!(parse_hostname("bad_name").is_err());
        assert!(parse_hostname("").is_err());
    }
}
