//! The run's configuration, validated once: the command line (cli.rs) turned
//! into plain values that the layers below read. Only this module and
//! main.rs know the clap definition.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use crate::cli::{self, Cli, Command};
use crate::control::enter::EnterOptions;
use crate::control::list::ListOptions;
use crate::control::stop::StopOptions;
use crate::control::wait::WaitOptions;
use crate::error::fail;
use crate::firmware::defaults::Console;
use crate::firmware::exec::PATH;
use crate::firmware::rootfs::{self, ResolvedBind};
use crate::inspect::terminfo::LAST_RESORT;
use crate::network::{self, Move, Plan, Veth};
use crate::state::identity::Identity;
use crate::supervise::ready::ReadyOptions;
use crate::sys::fd::Inherited;

/// The init started when none is given after `--`.
pub const DEFAULT_INIT: &str = "/sbin/init";

/// The firmware's network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Net {
    None,
    Host,
    /// A veth pair (its details are in [`RunConfig::network`]).
    Veth,
    /// A veth pair whose host side is in a bridge.
    Bridge,
}

impl Net {
    /// The mode's name, as `--net` spells it.
    pub fn label(self) -> &'static str {
        match self {
            Net::None => "none",
            Net::Host => "host",
            Net::Veth => "veth",
            Net::Bridge => "bridge",
        }
    }
}

/// Whether the per-run AppArmor profile is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppArmorMode {
    Auto,
    Require,
    Off,
}

/// What a reboot from inside the firmware does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnReboot {
    Exit,
    Restart,
}

/// The command line's choices, named the same here.
macro_rules! same_variants {
    ($($ty:ident { $($v:ident),* })*) => {$(
        impl From<cli::$ty> for $ty {
            fn from(c: cli::$ty) -> $ty {
                match c { $(cli::$ty::$v => $ty::$v),* }
            }
        }
    )*};
}
same_variants! {
    AppArmorMode { Auto, Require, Off }
    OnReboot { Exit, Restart }
    Console { Auto, Pty, Inherit }
}
/// What this invocation does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Boot the firmware at this path.
    Run(PathBuf),
    /// Print the AppArmor profile and exit.
    PrintProfile,
    /// Only sweep what dead runs left.
    Cleanup,
    /// Run a command inside a running firmware.
    Enter(EnterOptions),
    /// List the live runs.
    List(ListOptions),
    /// Stop a run and wait until it is gone.
    Stop(StopOptions),
    /// Wait until a run is ready.
    Wait(WaitOptions),
}

/// The AppArmor layer's settings.
#[derive(Debug, Clone)]
pub struct AppArmorConfig {
    pub mode: AppArmorMode,
    pub template: Option<PathBuf>,
    pub deny: Vec<String>,
    pub allow_mknod: bool,
    pub parser: Option<PathBuf>,
    pub follow_denials: bool,
}

/// The kernel-enforced layers' settings.
#[derive(Debug, Clone)]
pub struct KernelConfig {
    pub cap_add: Vec<caps::Capability>,
    pub cap_drop: Vec<caps::Capability>,
    /// The seccomp filter and the mount interception (off only to debug).
    pub seccomp: bool,
    /// A user namespace of the firmware's own (off only to debug).
    pub userns: bool,
    /// Module loads answered "loaded" (--modules fake).
    pub fake_modules: bool,
    /// The firmware's /proc/cmdline, without its newline.
    pub cmdline: String,
    /// Where the firmware's kernel log goes; None: fwrun's stdout.
    pub kmsg: Option<PathBuf>,
}

/// Everything a run needs to know, checked.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub action: Action,
    /// The run's name, and every name on the host made from it.
    pub identity: Identity,
    pub hostname: String,
    /// The init's argv (the default init when none was given).
    pub init: Vec<OsString>,
    /// Whether the user named the init (a missing default init is a
    /// different mistake from a missing named one).
    pub init_named: bool,
    pub rw_dir: Option<PathBuf>,
    pub binds: Vec<ResolvedBind>,
    /// The init's whole environment, in order.
    pub env: Vec<(String, String)>,
    /// Whether --env set TERM: then it is passed as given, never replaced
    /// by one the firmware has a terminfo entry for.
    pub term_given: bool,
    pub net: Net,
    /// What the firmware's network namespace is given: a veth, interfaces.
    pub network: Plan,
    /// --publish: the host's ports carried to the firmware's.
    pub published: Vec<network::publish::Publish>,
    /// The stop signal given; None: the one the init expects (auto).
    pub stop_signal: Option<i32>,
    pub stop_timeout: Duration,
    pub timeout: Option<Duration>,
    pub on_reboot: OnReboot,
    pub console: Console,
    pub as_pid2: bool,
    /// --ready-when, --ready-timeout, --ready-fd.
    pub ready: ReadyOptions,
    pub apparmor: AppArmorConfig,
    pub kernel: KernelConfig,
    /// The run's cgroup limits (cgroup v2 only).
    pub cgroup: crate::host::cgroup::Limits,
    pub changes: bool,
    pub report: Option<PathBuf>,
    pub verbose: bool,
    pub quiet: bool,
}

impl RunConfig {
    /// Turn the parsed command line into a configuration. Fails (exit 125,
    /// one line) on what clap could not check: a --bind source that does
    /// not exist.
    pub fn from_cli(mut cli: Cli) -> Result<RunConfig> {
        let action = if let Some(cmd) = cli.command.take() {
            subcommand(cmd)
        } else if cli.cleanup {
            Action::Cleanup
        } else if cli.print_profile {
            Action::PrintProfile
        } else {
            Action::Run(
                cli.firmware
                    .clone()
                    .ok_or_else(|| fail("--firmware is required"))?,
            )
        };
        let ready = ready_options(&cli)?;
        let kernel = kernel_config(&mut cli, matches!(action, Action::Run(_)));
        let identity = Identity::new(cli.name.unwrap_or_else(crate::state::generate_name));
        let name = &identity.name;
        let binds = match action {
            Action::Run(_) => cli
                .bind
                .iter()
                .map(rootfs::resolve_bind)
                .collect::<Result<Vec<_>>>()?,
            _ => Vec::new(),
        };
        let (net, network) =
            network_plan(&cli.net, cli.veth_name.as_deref(), &cli.net_move, &identity)?;
        network::publish::check(&cli.publish)?;
        let (init, init_named) = init_argv(cli.init);
        Ok(RunConfig {
            action,
            hostname: cli.hostname.unwrap_or_else(|| name.clone()),
            env: environment(&cli.env, name),
            term_given: cli.env.iter().any(|(k, _)| k == "TERM"),
            identity,
            init,
            init_named,
            rw_dir: cli.rw_dir,
            binds,
            net,
            network,
            published: cli.publish,
            stop_signal: stop_signal(cli.stop_signal),
            stop_timeout: cli.stop_timeout,
            timeout: cli.timeout,
            on_reboot: cli.on_reboot.into(),
            console: cli.console.into(),
            as_pid2: cli.as_pid2,
            ready,
            apparmor: AppArmorConfig {
                mode: cli.apparmor.into(),
                template: cli.profile_template,
                deny: cli.deny,
                allow_mknod: cli.allow_mknod,
                parser: cli.apparmor_parser,
                follow_denials: cli.follow_denials,
            },
            kernel,
            cgroup: crate::host::cgroup::Limits {
                memory: cli.memory,
                memory_swap: cli.memory_swap,
                pids: cli.pids,
                cpus: cli.cpus,
                io_weight: cli.io_weight,
                parent: cli.cgroup_parent,
            },
            changes: cli.changes,
            report: cli.report,
            verbose: cli.verbose,
            quiet: cli.quiet,
        })
    }
}

/// The init's argv, the default init's when none was given; and whether
/// it was given.
fn init_argv(init: Vec<OsString>) -> (Vec<OsString>, bool) {
    match init.is_empty() {
        true => (vec![DEFAULT_INIT.into()], false),
        false => (init, true),
    }
}

fn stop_signal(s: cli::StopSignal) -> Option<i32> {
    match s {
        cli::StopSignal::Auto => None,
        cli::StopSignal::Signal(n) => Some(n),
    }
}

/// A subcommand's options.
fn subcommand(cmd: Command) -> Action {
    match cmd {
        Command::Enter(e) => Action::Enter(EnterOptions {
            name: e.name,
            command: e.command,
            env: e.env,
            tty: match (e.tty, e.no_tty) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            },
            quiet: e.quiet,
        }),
        Command::List(l) => Action::List(ListOptions { json: l.json }),
        Command::Stop(s) => Action::Stop(StopOptions {
            name: s.name,
            kill: s.kill,
            timeout: s.timeout,
        }),
        Command::Wait(w) => Action::Wait(WaitOptions {
            name: w.name,
            timeout: w.timeout,
        }),
    }
}

/// The readiness flags, checked: --ready-fd needs an open descriptor (kept
/// from the firmware).
fn ready_options(cli: &Cli) -> Result<ReadyOptions> {
    let fd = match cli.ready_fd {
        None => None,
        Some(fd) => match (fd > 2).then(|| Inherited::claim(fd)) {
            Some(Ok(claimed)) => Some(claimed),
            _ => {
                return Err(fail(format!(
                    "--ready-fd {fd} is not an open file descriptor above 2: open one for fwrun (e.g. 3>ready.txt)"
                )))
            }
        },
    };
    Ok(ReadyOptions {
        conditions: cli.ready_when.clone(),
        timeout: cli.ready_timeout,
        fd,
        quiet: cli.quiet,
    })
}

/// `--net`, `--veth-name` and `--net-move` as a mode and a plan; what
/// cannot go together is refused here.
fn network_plan(
    net: &cli::Net,
    veth_name: Option<&str>,
    moves: &[Move],
    identity: &Identity,
) -> Result<(Net, Plan)> {
    let veth = |addr, bridge| Veth {
        host: identity.veth_host.clone(),
        inside: veth_name.unwrap_or(network::DEFAULT_VETH_NAME).into(),
        addr,
        bridge,
    };
    let (net, veth) = match net {
        cli::Net::None => (Net::None, None),
        cli::Net::Host => (Net::Host, None),
        cli::Net::Veth(a) => (Net::Veth, Some(veth(*a, None))),
        cli::Net::Bridge(br) => (Net::Bridge, Some(veth(None, Some(br.clone())))),
    };
    if veth.is_none() && veth_name.is_some() {
        return Err(fail("--veth-name needs --net veth or --net bridge:BR"));
    }
    if net == Net::Host && !moves.is_empty() {
        return Err(fail(
            "--net-move needs a network of the firmware's own: it cannot go with --net host",
        ));
    }
    let mut inside: Vec<&str> = vec!["lo"];
    inside.extend(veth.as_ref().map(|v| v.inside.as_str()));
    let mut hosts: Vec<&str> = Vec::new();
    for m in moves {
        if hosts.contains(&m.host.as_str()) {
            return Err(fail(format!("--net-move {} is given twice", m.host)));
        }
        if inside.contains(&m.inside.as_str()) {
            return Err(fail(format!(
                "--net-move {}: the firmware would have two interfaces named {}: move it as {}:NEWNAME",
                m.host, m.inside, m.host
            )));
        }
        hosts.push(&m.host);
        inside.push(&m.inside);
    }
    Ok((
        net,
        Plan {
            veth,
            moves: moves.to_vec(),
        },
    ))
}

/// The init's environment: small, clean, and the user's --env on top.
fn environment(user: &[(String, String)], name: &str) -> Vec<(String, String)> {
    let term = std::env::var("TERM").unwrap_or_else(|_| LAST_RESORT.into());
    let mut vars: Vec<(String, String)> = vec![
        ("PATH".into(), PATH.into()),
        ("HOME".into(), "/".into()),
        ("TERM".into(), term),
        ("container".into(), "fwrun".into()),
        ("FWRUN_NAME".into(), name.into()),
    ];
    for (k, v) in user {
        vars.retain(|(old, _)| old != k);
        vars.push((k.clone(), v.clone()));
    }
    vars
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn config(args: &[&str]) -> RunConfig {
        let cli =
            Cli::try_parse_from(std::iter::once("fwrun").chain(args.iter().copied())).unwrap();
        RunConfig::from_cli(cli).unwrap()
    }

    #[test]
    fn defaults_are_filled_in() {
        let c = config(&["--firmware", "x", "--name", "t1"]);
        assert_eq!(c.action, Action::Run("x".into()));
        assert_eq!(c.hostname, "t1");
        assert_eq!(c.init, [DEFAULT_INIT]);
        assert!(!c.init_named);
        assert_eq!((c.stop_signal, c.console), (None, Console::Auto));
        let c = config(&["--firmware", "x", "--stop-signal", "rtmin+4"]);
        assert_eq!(c.stop_signal, Some(crate::sys::signals::RTMIN + 4));
    }

    #[test]
    fn every_invocation_has_a_profile_of_its_own() {
        let a = config(&["--firmware", "x", "--name", "t1"])
            .identity
            .profile;
        let b = config(&["--firmware", "x", "--name", "t1"])
            .identity
            .profile;
        for p in [&a, &b] {
            let id = p.strip_prefix("fwrun-t1-").unwrap_or_else(|| panic!("{p}"));
            assert!(
                id.len() == 8 && id.bytes().all(|c| c.is_ascii_hexdigit()),
                "{p}"
            );
        }
        assert_ne!(a, b, "two runs named t1 share a profile name");
    }

    #[test]
    fn env_overrides_replace_in_place_of_appending_twice() {
        let c = config(&["--firmware", "x", "--name", "t", "--env", "HOME=/root"]);
        let homes: Vec<_> = c.env.iter().filter(|(k, _)| k == "HOME").collect();
        assert_eq!(homes, [&("HOME".to_string(), "/root".to_string())]);
        assert!(c.env.contains(&("FWRUN_NAME".into(), "t".into())));
        assert!(!c.term_given);
        let c = config(&["--firmware", "x", "--env", "TERM=ansi"]);
        assert!(c.term_given && c.env.contains(&("TERM".into(), "ansi".into())));
    }

    #[test]
    fn network_plans() {
        let c = config(&["--firmware", "x", "--name", "t1", "--net", "veth"]);
        let v = c.network.veth.unwrap();
        assert_eq!(
            (c.net, v.host.as_str(), v.inside.as_str()),
            (Net::Veth, "fw-t1", "eth0")
        );
        let c = config(&[
            "--firmware",
            "x",
            "--net",
            "bridge:br0",
            "--veth-name",
            "lan0",
            "--net-move",
            "tap0:eth1",
        ]);
        let v = c.network.veth.unwrap();
        assert_eq!(
            (v.inside.as_str(), v.bridge.as_deref()),
            ("lan0", Some("br0"))
        );
        assert_eq!(c.network.moves[0].inside, "eth1");
        assert!(config(&["--firmware", "x"]).network.is_empty());
    }

    #[test]
    fn network_flags_that_do_not_go_together() {
        for args in [
            &["--veth-name", "eth1"][..],
            &["--net", "host", "--net-move", "tap0"],
            &["--net", "veth", "--net-move", "tap0:eth0"],
            &["--net-move", "tap0:lo"],
            &["--net-move", "tap0", "--net-move", "tap0:x"],
            &["--net-move", "tap0", "--net-move", "tap1:tap0"],
        ] {
            let cli = Cli::try_parse_from(["fwrun", "--firmware", "x"].iter().chain(args)).unwrap();
            let e = RunConfig::from_cli(cli).unwrap_err();
            assert_eq!(crate::error::exit_code(&e), 125, "{args:?}");
        }
    }

    #[test]
    fn a_missing_bind_source_is_bad_input() {
        let cli = Cli::try_parse_from([
            "fwrun",
            "--firmware",
            "x",
            "--bind",
            "/nonexistent/fwrun-test:/x",
        ])
        .unwrap();
        let e = RunConfig::from_cli(cli).unwrap_err();
        assert_eq!(crate::error::exit_code(&e), 125);
    }
}

/// The kernel-enforced layers and the firmware's own kernel, as asked; the
/// host's command line is read for a run only.
fn kernel_config(cli: &mut Cli, run: bool) -> KernelConfig {
    KernelConfig {
        cap_add: std::mem::take(&mut cli.cap_add),
        cap_drop: std::mem::take(&mut cli.cap_drop),
        seccomp: cli.seccomp == cli::Switch::On,
        userns: cli.userns == cli::Switch::On,
        fake_modules: cli.modules == cli::Modules::Fake,
        cmdline: match cli.cmdline.take() {
            Some(c) => c,
            None if run => host_cmdline(),
            None => String::new(),
        },
        kmsg: cli.kmsg.take(),
    }
}

/// The host's kernel command line without its console= entries: a
/// firmware that reads its console there would look for the host's
/// (ttyS0 on many virtual machines) and find no such node.
fn host_cmdline() -> String {
    let line = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    without_consoles(line.trim_end())
}

fn without_consoles(line: &str) -> String {
    line.split_ascii_whitespace()
        .filter(|w| !w.starts_with("console="))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod cmdline_tests {
    #[test]
    fn console_entries_are_left_out() {
        assert_eq!(
            super::without_consoles(
                "BOOT_IMAGE=/vmlinuz root=UUID=1 console=tty0 console=ttyS0,115200n8 quiet"
            ),
            "BOOT_IMAGE=/vmlinuz root=UUID=1 quiet"
        );
        assert_eq!(super::without_consoles("console=ttyS0"), "");
    }
}
