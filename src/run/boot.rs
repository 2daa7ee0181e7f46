//! Phases 7 and 8 of the run: clone the init into its namespaces (its
//! network made while it waits), supervise it until it ends, and boot it
//! again after a reboot under --on-reboot restart.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use anyhow::Result;
use nix::sys::signalfd::SignalFd;

use crate::config::{Net, OnReboot, RunConfig};
use crate::confine::denials::Denials;
use crate::confine::notify::{Notifier, Refusal};
use crate::confine::tally::Tally;
use crate::fault;
use crate::firmware::{self, spec::ChildSpec};
use crate::host::cgroup::{self, Cgroup};
use crate::host::prefetch::Prefetch;
use crate::network::{self, attach::Attached};
use crate::process::exec::Program;
use crate::process::startup::{Startup, Terminal};
use crate::report::{self, status::Status};
use crate::run::acquire::Acquired;
use crate::run::prepare::{c_string, Prepared};
use crate::state::live;
use crate::state::teardown::Teardown;
use crate::supervise::console::{self, RawMode, Relay, Tee};
use crate::supervise::ending::{self, Ending, Outcome};
use crate::supervise::kmsg::KernelLog;
use crate::supervise::probe::Prober;
use crate::supervise::ready::Readiness;
use crate::supervise::{self, Options, Watch};

/// How the last boot ended, and what fwrun saw over all boots.
pub struct Booted {
    pub code: i32,
    /// The line to say about the ending (none for a plain exit).
    pub line: Option<String>,
    pub outcome: Outcome,
    /// The calls fwrun refused the firmware, over all boots.
    pub refused: Tally<Refusal>,
    pub boots: u32,
    pub ready_ms: Option<u64>,
    /// The firmware's links, as the report lists them.
    pub interfaces: Vec<report::Interface>,
    /// What the run's cgroup counted (a cgroup v2 host), and whether its
    /// OOM killer ended the init.
    pub usage: Option<cgroup::Usage>,
    pub oom_killed: bool,
    /// How many records the firmware wrote to its kernel log.
    pub kmsg_records: u64,
    /// How many module loads were answered "loaded" (--modules fake).
    pub modules_faked: u64,
}

/// Clone the init and supervise it; boot again after a reboot under
/// --on-reboot restart.
pub fn boot(
    cfg: &RunConfig,
    prep: &Prepared,
    acq: &mut Acquired,
    sfd: &mut SignalFd,
    log: &mut Status,
) -> Result<Booted> {
    let (pty, mut tee, output) = open_console(cfg, acq.defaults.pty)?;
    let spec = child_spec(cfg, prep, acq, pty.as_ref(), output.as_ref())?;
    let mut relay = relay_for(cfg, pty.as_ref());
    // The terminal is restored when this guard goes, on every path.
    let _raw = match &relay {
        Some(_) => RawMode::enter()?,
        None => None,
    };
    let opts = options(cfg, acq);
    let mut ready = Readiness::new(&cfg.ready, &acq.state_dir, Some(prober(prep, &spec)));
    let mut kernel_log = KernelLog::new(
        prep.kmsg_file.as_ref().and_then(|f| f.try_clone().ok()),
        _raw.is_some() && console::stdout_is_tty(),
    );
    let mut refused = Tally::default();
    let mut modules_faked = 0;
    let mut boots = 0;
    loop {
        boots += 1;
        let (mut started, links, mountinfo) = start_init(cfg, prep, &spec, acq, log)?;
        ready.boot(started.pid);
        kernel_log.attach(started.kernel_log.take());
        let mut notifier = notifier_for(cfg, prep, &mut started, mountinfo);
        let watch = Watch {
            relay: relay.as_mut(),
            follow: followed(cfg, acq),
            notify: notifier.as_mut(),
            follow_refusals: cfg.apparmor.follow_denials,
            tee: tee.as_mut(),
            ready: Some(&mut ready),
            kernel_log: Some(&mut kernel_log),
        };
        let outcome = supervise::supervise(sfd, started.pid, &started.pidfd, &opts, watch)?;
        started.reaped = true;
        // The connections it carried close with the firmware.
        drop(links.relay);
        let net = links.net;
        if let Some(n) = notifier {
            modules_faked += n.modules_faked;
            refused.merge(n.refused);
        }
        log.phase("run", "the firmware's init ended");
        let (code, mut line) = ending::conclude(&outcome);
        let (usage, oom_killed) = match &acq.cgroup {
            Some(cg) => account(cfg, cg, &outcome, &mut line),
            None => (None, false),
        };
        let restart = ending::rebooted(&outcome) && cfg.on_reboot == OnReboot::Restart;
        let interfaces = net.as_ref().map(|_| interfaces(&cfg.network));
        hand_back(net, restart, &mut acq.teardown, log);
        if restart {
            log.say(format!(
                "firmware rebooted; booting it again (boot {})",
                boots + 1
            ));
            continue;
        }
        return Ok(Booted {
            code,
            line,
            outcome,
            refused,
            boots,
            ready_ms: ready.ready_after.map(|d| d.as_millis() as u64),
            interfaces: interfaces.unwrap_or_default(),
            usage,
            oom_killed,
            kmsg_records: kernel_log.records,
            modules_faked,
        });
    }
}

/// The AppArmor denials printed as they come (--follow-denials).
fn followed<'a>(cfg: &RunConfig, acq: &'a mut Acquired) -> Option<&'a mut Denials> {
    acq.profile
        .as_mut()
        .and_then(|(_, d)| d.as_mut())
        .filter(|_| cfg.apparmor.follow_denials)
}

/// How the supervisor stops the firmware.
fn options(cfg: &RunConfig, acq: &Acquired) -> Options {
    Options {
        stop_signal: acq.defaults.stop_signal,
        stop_timeout: cfg.stop_timeout,
        timeout: cfg.timeout,
        cgroup: acq.cgroup.as_ref().map(|c| c.path.clone()),
    }
}

/// The supervisor of the init's seccomp filter, when it has one.
fn notifier_for(
    cfg: &RunConfig,
    prep: &Prepared,
    started: &mut firmware::Started,
    mountinfo: Option<String>,
) -> Option<Notifier> {
    let listener = started.listener.take()?;
    let mut n = Notifier::from_mountinfo(listener, mountinfo, prep.host_devs.clone(), started.pid);
    n.fake_modules = cfg.kernel.fake_modules;
    Some(n)
}

/// How `exec:` probes start: as the init does.
fn prober(prep: &Prepared, spec: &ChildSpec) -> Prober {
    Prober {
        envp: spec.startup.envp.clone(),
        confinement: spec.startup.confinement.clone(),
        cgroup: spec.cgroup,
        host_devs: prep.host_devs.clone(),
        userns: spec.userns,
    }
}

/// Start the firmware, and publish its init in the run's state with the
/// mounts it starts with (the mount interception's table, for the init
/// and for `fwrun enter`).
fn start_init(
    cfg: &RunConfig,
    prep: &Prepared,
    spec: &ChildSpec,
    acq: &mut Acquired,
    log: &mut Status,
) -> Result<(firmware::Started, Links, Option<String>)> {
    let (started, links) = start_firmware(cfg, prep, spec, acq.prefetch.take(), log)?;
    fault::step("clone")?;
    log.phase(
        "start",
        format!(
            "started {} as pid {} of run {} (host pid {})",
            Path::new(&cfg.init[0]).display(),
            if spec.startup.as_pid2 { 2 } else { 1 },
            cfg.identity.name,
            started.pid
        ),
    );
    let mountinfo = std::fs::read_to_string(format!("/proc/{}/mountinfo", started.pid)).ok();
    if let Err(e) = live::publish_init(
        &acq.state_dir,
        started.pid,
        mountinfo.as_deref().unwrap_or_default(),
    ) {
        log.say(format!("warning: {e:#}"));
    }
    Ok((started, links, mountinfo))
}

/// What one boot's firmware is linked to the host with: its interfaces,
/// and the relay of the published ports.
struct Links {
    net: Option<Attached>,
    relay: Option<network::relay::Relay>,
}

/// The pty's relay, which also hands readiness what the console says.
fn relay_for(cfg: &RunConfig, pty: Option<&console::Pty>) -> Option<Relay> {
    let mut relay =
        pty.map(|p| Relay::new(p.master.try_clone().expect("duplicating the pty master")));
    if let Some(r) = relay.as_mut().filter(|_| cfg.ready.watches_console()) {
        r.tap = Some(Vec::new());
    }
    relay
}

/// Clone the init and, when the firmware gets links to the host, make them
/// while it waits before its exec (and start the relay of its published
/// ports); then let it exec.
fn start_firmware(
    cfg: &RunConfig,
    prep: &Prepared,
    spec: &ChildSpec,
    prefetch: Option<Prefetch>,
    log: &mut Status,
) -> Result<(firmware::Started, Links)> {
    let cloned = firmware::clone_child(spec)?;
    // The reader finishes while the child sets itself up, and is reaped
    // before the child may exec (it waits for the go): once the init
    // runs, only the relay is fwrun's child beside it.
    if let Some(p) = prefetch {
        p.finish();
    }
    let mut links = Links {
        net: None,
        relay: None,
    };
    if !cfg.network.is_empty() {
        match network::attach::attach(&cfg.network, cloned.pid) {
            Ok(a) => links.net = Some(a),
            Err(e) => return Err(cloned.abandon(e)),
        };
        if let Err(e) = fault::step("network") {
            return Err(cloned.abandon(e));
        }
        let lines = network::describe(&cfg.network);
        log.phase("network", lines.join("; "));
    }
    if !prep.published.is_empty() {
        match network::relay::Relay::start(&prep.published, cloned.pid, spec.new_net) {
            Ok(r) => links.relay = Some(r),
            Err(e) => return Err(cloned.abandon(e)),
        }
        log.detail(network::publish::describe(&cfg.published));
    }
    Ok((cloned.release()?, links))
}

/// The firmware's links, as the report lists them.
fn interfaces(plan: &network::Plan) -> Vec<report::Interface> {
    let veth = plan.veth.iter().map(|v| report::Interface {
        name: v.inside.clone(),
        kind: "veth".into(),
        host_name: v.host.clone(),
        host_address: v.addr.map(|a| a.to_string()),
        bridge: v.bridge.clone(),
    });
    let moved = plan.moves.iter().map(|m| report::Interface {
        name: m.inside.clone(),
        kind: "moved".into(),
        host_name: m.host.clone(),
        host_address: None,
        bridge: None,
    });
    veth.chain(moved).collect()
}

/// A boot's links after it ended: taken back now before a restart (the
/// next boot makes a veth of the same name), else with the rest of the
/// teardown (after the firmware's changes are read, before its state goes).
fn hand_back(net: Option<Attached>, restart: bool, teardown: &mut Teardown, log: &Status) {
    let Some(mut net) = net else {
        return;
    };
    if restart {
        for f in net.detach(true) {
            log.say(format!("warning: {f}"));
        }
    } else {
        teardown.push("network", move || net.finish());
    }
}

/// What the cgroup counted; an OOM kill of the init said as such.
fn account(
    cfg: &RunConfig,
    cg: &Cgroup,
    out: &Outcome,
    line: &mut Option<String>,
) -> (Option<cgroup::Usage>, bool) {
    let usage = cgroup::usage(&cg.path);
    let oom = oom_killed(out, Some(&usage));
    if oom {
        *line = Some(oom_line(cfg));
    }
    (Some(usage), oom)
}

/// Whether the init died of a SIGKILL that fwrun did not send while the
/// cgroup's OOM killer had struck.
fn oom_killed(out: &Outcome, usage: Option<&cgroup::Usage>) -> bool {
    out.stopped.is_none()
        && out.ending == Ending::Signaled(libc::SIGKILL)
        && !out.sent.contains(&libc::SIGKILL)
        && usage.and_then(|u| u.oom_kills).is_some_and(|n| n > 0)
}

fn oom_line(cfg: &RunConfig) -> String {
    match cfg.cgroup.memory {
        Some(m) => format!(
            "firmware's init was killed by the kernel's OOM killer: --memory was {}",
            cgroup::show_size(m)
        ),
        None => "firmware's init was killed by the kernel's OOM killer".into(),
    }
}

/// A pty for the console (`pty`, as chosen), unless it inherits fwrun's.
/// Inherited, and read for readiness, the init's output goes through pipes
/// to fwrun's (their write ends stay open across boots).
#[allow(clippy::type_complexity)]
fn open_console(
    cfg: &RunConfig,
    pty: bool,
) -> Result<(
    Option<console::Pty>,
    Option<Tee>,
    Option<(OwnedFd, OwnedFd)>,
)> {
    if pty {
        return Ok((Some(console::open_pty()?), None, None));
    }
    if cfg.ready.watches_console() {
        let (tee, out, err) = Tee::open()?;
        return Ok((None, Some(tee), Some((out, err))));
    }
    Ok((None, None, None))
}

/// What the child is given, prepared before the clone.
fn child_spec(
    cfg: &RunConfig,
    prep: &Prepared,
    acq: &Acquired,
    pty: Option<&console::Pty>,
    output: Option<&(OwnedFd, OwnedFd)>,
) -> Result<ChildSpec> {
    // The console from its descriptor, not its path: the path of a
    // terminal opened before a switch_root, or in another mount namespace,
    // leads nowhere here.
    let console = match pty {
        Some(p) => crate::sys::clone_fd_tree(p.slave.as_fd()).ok(),
        None => acq.terminal.as_ref().and_then(|t| t.try_clone().ok()),
    };
    let terminal = Terminal {
        new_session: true,
        tty: pty.map(|p| p.slave.as_raw_fd()),
        stdin: None,
        stdout: output.map(|(o, _)| o.as_raw_fd()),
        stderr: output.map(|(_, e)| e.as_raw_fd()),
    };
    Ok(ChildSpec {
        root: acq.layout.root.clone(),
        hostname: cfg.hostname.clone(),
        new_net: cfg.net != Net::Host,
        userns: cfg.kernel.userns,
        binds: cfg
            .binds
            .iter()
            .chain(&acq.defaults.binds)
            .cloned()
            .collect(),
        cmdline: cfg.kernel.cmdline.clone(),
        state_dir: acq.state_dir.clone(),
        console,
        cgroup: acq.cgroup.as_ref().map(|c| c.fd()),
        legacy: cgroup::joins(&acq.legacy_cgroups, acq.unified.as_deref())?,
        startup: Startup {
            terminal,
            fork_last: false,
            confinement: crate::confine::confinement(
                acq.profile.as_ref().map(|(name, _)| name.clone()),
                prep.caps.clone(),
                cfg.kernel.seccomp,
                pty.is_none() && (console::stdin_is_tty() || console::stdout_is_tty()),
            ),
            program: Program::Init {
                path: c_string(acq.program.as_os_str())?,
                needs: acq.defaults.needs.clone(),
                linux32: acq.defaults.linux32,
            },
            as_pid2: cfg.as_pid2,
            argv: prep.argv.clone(),
            envp: acq.envp.clone(),
        },
    })
}
