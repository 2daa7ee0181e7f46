//! The run, phase by phase (DESIGN.md): prepare (validate, preflight, render
//! the profile) → acquire (state, private mount namespace, lower layer,
//! overlay, profile; each with its undo step) → boot (clone the init,
//! supervise, again on a reboot with --on-reboot restart) → finish (changes,
//! tear down, denials). Each phase lives in the folder named after its
//! concern; this file only puts them in order.

use std::ffi::{CString, OsStr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{anyhow, Context, Result};
use nix::mount::MsFlags;
use nix::sys::signalfd::SignalFd;

use crate::config::{Action, AppArmorMode, Console, Net, OnReboot, RunConfig};
use crate::confine::apparmor::{self, Support};
use crate::confine::caps::{self as capabilities, CapsRequest};
use crate::confine::denials::{self, Denials};
use crate::confine::notify::{self, Notifier, Refusal};
use crate::control;
use crate::error::fail;
use crate::fault;
use crate::firmware::{self, exec, spec::ChildSpec};
use crate::host::image::{self, Firmware, Kind};
use crate::host::overlay::{self, Layout};
use crate::host::{lower, namespace, preflight};
use crate::report::log::Log;
use crate::report::{self, changes, Report};
use crate::state::live::{self, RunFacts};
use crate::state::{self, teardown::Teardown, Resource, RunState};
use crate::supervise::console::{self, RawMode, Relay, Tee};
use crate::supervise::ending::{self, Ending, Outcome};
use crate::supervise::ready::Readiness;
use crate::supervise::{self, Options, Watch};
use crate::sys;

/// Run what the configuration asks for; the exit code to end with.
pub fn run(cfg: RunConfig) -> Result<i32> {
    let mut log = Log::new(cfg.verbose, cfg.quiet);
    match &cfg.action {
        Action::Cleanup => cleanup(&log),
        Action::PrintProfile => {
            print!("{}", render_profile(&cfg)?);
            Ok(0)
        }
        Action::Run(firmware) => run_with_report(&cfg, firmware, &mut log),
        Action::Enter(opts) => control::enter::enter(opts),
        Action::List(opts) => control::list::list(opts),
        Action::Stop(opts) => control::stop::stop(opts),
        Action::Wait(opts) => control::wait::wait(opts),
    }
}

/// `fwrun --cleanup`: sweep what dead runs left, say what went.
pub fn cleanup(log: &Log) -> Result<i32> {
    preflight::check_root()?;
    let swept = state::sweep(&mut apparmor::Sweep)?;
    for name in &swept {
        log.say(format!("removed the leftovers of dead run {name}"));
    }
    if swept.is_empty() {
        log.say("nothing to clean up");
    }
    Ok(0)
}

/// A run, and its --report written however it ended.
fn run_with_report(cfg: &RunConfig, firmware: &Path, log: &mut Log) -> Result<i32> {
    let report_path = cfg.report.as_deref().map(report::check_path).transpose()?;
    let mut rep = Report::begin(
        &cfg.name,
        firmware,
        cfg.init.iter().map(|a| a.to_string_lossy().into_owned()),
        format!("{:?}", cfg.apparmor.mode).to_lowercase(),
    );
    let result = launch(cfg, firmware, log, &mut rep);
    rep.end = report::timestamp(SystemTime::now());
    rep.phases = std::mem::take(&mut log.phases);
    match &result {
        Ok(code) => rep.exit_code = *code,
        Err(e) => rep.fail(crate::error::exit_code(e), crate::error::one_line(e)),
    }
    if let Some(path) = report_path {
        if let Err(e) = report::write(&rep, &path) {
            log.say(format!("warning: {e:#}"));
        }
    }
    result
}

fn launch(cfg: &RunConfig, firmware: &Path, log: &mut Log, rep: &mut Report) -> Result<i32> {
    let prep = prepare(cfg, firmware, log, rep)?;
    // Signals are read from a signalfd from here on.
    let mut sfd = supervise::block_signals()?;
    let mut acq = acquire(cfg, &prep, log, rep)?;
    if let Some(why) = supervise::pending_stop() {
        // Stopped before the firmware started.
        rep.ending = ending::ending(&Outcome {
            ending: Ending::Exited(0),
            stopped: Some(why),
            sent: Vec::new(),
        });
        return Ok(why.exit_code());
    }
    let booted = boot(cfg, &prep, &mut acq, &mut sfd, log, rep)?;
    rep.ending = ending::ending(&booted.outcome);
    finish(cfg, &prep, &mut acq, &booted, log, rep)?;
    Ok(booted.code)
}

/// What the checks before any system change found.
struct Prepared {
    fw: Firmware,
    /// The init to exec, once found (a directory is checked before
    /// anything is mounted, an image once its overlay is).
    program: Option<PathBuf>,
    rw_dir: Option<PathBuf>,
    parser: Option<PathBuf>,
    profile_text: Option<String>,
    /// Said once the init is found, so that a bad input still gets exactly
    /// one line.
    aa_warning: Option<String>,
    argv: Vec<CString>,
    envp: Vec<CString>,
    /// The capabilities the init keeps.
    caps: Vec<caps::Capability>,
    /// The devices of the host file systems bound into the firmware.
    host_devs: Vec<(u32, u32)>,
}

/// Phases 1-2: validate everything that needs no system change, then
/// preflight.
fn prepare(cfg: &RunConfig, firmware: &Path, log: &mut Log, rep: &mut Report) -> Result<Prepared> {
    let support = (cfg.apparmor.mode != AppArmorMode::Off)
        .then(|| apparmor::support(cfg.apparmor.parser.as_deref()));
    // The profile is rendered first, when it will be used or was given: a
    // template that does not render is bad input, refused before anything
    // is touched.
    let profile_text =
        if cfg.apparmor.template.is_some() || matches!(support, Some(Support::Ready(_))) {
            Some(render_profile(cfg)?)
        } else {
            None
        };
    let argv = cfg
        .init
        .iter()
        .map(|a| c_string(a))
        .collect::<Result<Vec<_>>>()?;
    preflight::check_root()?;
    preflight::check_overlay()?;
    let fw = image::detect(firmware)?;
    rep.firmware.kind = Some(fw.kind.label().to_string());
    let program = match fw.kind {
        Kind::Directory => Some(check_init(cfg, &fw.path)?),
        _ => None,
    };
    let rw_dir = cfg
        .rw_dir
        .as_deref()
        .map(overlay::check_rw_dir)
        .transpose()?;
    let envp = cfg
        .env
        .iter()
        .map(|(k, v)| CString::new(format!("{k}={v}")).map_err(|_| fail("--env holds a NUL byte")))
        .collect::<Result<Vec<_>>>()?;
    let mut aa_warning = None;
    let parser = match (cfg.apparmor.mode, support) {
        (_, None) => None,
        (_, Some(Support::Ready(p))) => Some(p),
        (AppArmorMode::Require, Some(Support::Missing(why))) => {
            return Err(fail(format!(
                "--apparmor require: {why}: run on a kernel with AppArmor, or use --apparmor auto"
            )))
        }
        (_, Some(Support::Missing(why))) => {
            aa_warning = Some(format!(
                "warning: no AppArmor confinement: {why}; {} (--apparmor off silences this)",
                without_apparmor(cfg)
            ));
            None
        }
    };
    let caps = kernel_layers(cfg, log, rep);
    log.phase(
        "preflight",
        format!(
            "checked firmware {} ({})",
            fw.path.display(),
            fw.kind.label()
        ),
    );
    Ok(Prepared {
        caps,
        host_devs: host_devices(cfg),
        fw,
        program,
        rw_dir,
        parser,
        profile_text,
        aa_warning,
        argv,
        envp,
    })
}

/// The capabilities the init keeps, said under -v and put in the report.
fn kernel_layers(cfg: &RunConfig, log: &Log, rep: &mut Report) -> Vec<caps::Capability> {
    let caps = capabilities::kept(&CapsRequest {
        allow_mknod: cfg.apparmor.allow_mknod,
        host_network: cfg.net == Net::Host,
        add: &cfg.kernel.cap_add,
        drop: &cfg.kernel.cap_drop,
    });
    rep.confinement.capabilities = caps.iter().map(|c| capabilities::short_name(*c)).collect();
    rep.confinement.dropped_capabilities = capabilities::dropped(&caps)
        .into_iter()
        .map(capabilities::short_name)
        .collect();
    rep.confinement.seccomp = cfg.kernel.seccomp;
    log.detail(format!(
        "the init keeps every capability but {}; seccomp filter {}",
        rep.confinement.dropped_capabilities.join(", "),
        if cfg.kernel.seccomp { "on" } else { "off" }
    ));
    caps
}

/// What a run holds while the firmware runs; dropped, it is torn down.
struct Acquired {
    /// The run's state directory, where it publishes what it is doing.
    state_dir: PathBuf,
    layout: Layout,
    program: PathBuf,
    /// The loaded profile's name, and its denials.
    profile: Option<(String, Option<Denials>)>,
    teardown: Teardown,
}

/// Phases 3-6: state, the launcher's private mount namespace, the layers and the
/// profile, each pushed on the teardown stack as it is acquired.
fn acquire(cfg: &RunConfig, prep: &Prepared, log: &mut Log, rep: &mut Report) -> Result<Acquired> {
    let mut teardown = Teardown::new();
    if let Err(e) = state::sweep(&mut apparmor::Sweep) {
        log.say(format!("warning: sweeping dead runs: {e:#}"));
    }
    let st = RunState::create(&cfg.name, &mut apparmor::Sweep)?;
    let state_dir = st.dir.clone();
    teardown.push("state", move || st.remove());
    publish_facts(cfg, prep, &state_dir)?;
    fault::step("state")?;
    let label = format!("fwrun-{}", cfg.name);
    let layout = mount_layers(prep, &state_dir, &label, &mut teardown, log)?;
    let program = match &prep.program {
        Some(p) => p.clone(),
        None => check_init(cfg, &layout.root)?,
    };
    if let Some(w) = &prep.aa_warning {
        log.say(w);
    }
    let profile = match (&prep.parser, &prep.profile_text) {
        (Some(parser), Some(text)) => {
            let name = load_profile(cfg, parser, text, &state_dir, &mut teardown)?;
            log.phase("apparmor", format!("loaded AppArmor profile {}", name.0));
            rep.apparmor.profile = Some(name.0.clone());
            Some(name)
        }
        _ => None,
    };
    Ok(Acquired {
        state_dir,
        layout,
        program,
        profile,
        teardown,
    })
}

/// What `fwrun enter` and `fwrun list` read about the run.
fn publish_facts(cfg: &RunConfig, prep: &Prepared, dir: &Path) -> Result<()> {
    let caps: Vec<String> = prep
        .caps
        .iter()
        .map(|c| capabilities::short_name(*c))
        .collect();
    live::publish_facts(
        dir,
        &RunFacts {
            firmware: &prep.fw.path,
            net: match cfg.net {
                Net::None => "none",
                Net::Host => "host",
            },
            env: &cfg.env,
            caps: &caps,
            seccomp: cfg.kernel.seccomp,
            host_devs: &prep.host_devs,
        },
    )
}

/// Phases 3-5: the private mount namespace, its workspace, the lower layer and the
/// overlay.
fn mount_layers(
    prep: &Prepared,
    state_dir: &Path,
    label: &str,
    teardown: &mut Teardown,
    log: &mut Log,
) -> Result<Layout> {
    namespace::enter_private_mount_namespace()?;
    fault::step("namespace")?;
    let layout = Layout::new(state_dir.join("mnt"));
    overlay::mkdir(&layout.workspace)?;
    sys::mount(
        label,
        &layout.workspace,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0700"),
    )
    .context("mounting the run's workspace")?;
    let ws = layout.workspace.clone();
    teardown.push("workspace", move || sys::umount_detach(&ws));
    fault::step("workspace")?;
    log.phase("namespace", "entered a private mount namespace");

    overlay::mkdir(&layout.lower)?;
    let loop_dev = lower::mount_lower(&prep.fw, &layout.lower, label)?;
    let lw = layout.lower.clone();
    teardown.push("lower", move || sys::umount_detach(&lw));
    fault::step("lower")?;
    log.phase(
        "lower",
        match &loop_dev {
            Some(dev) => format!("mounted the image read-only on {dev}"),
            None => "bound the directory read-only".into(),
        },
    );

    overlay::mount_overlay(&layout, prep.rw_dir.as_deref(), label)?;
    let rt = layout.root.clone();
    teardown.push("overlay", move || sys::umount_detach(&rt));
    fault::step("overlay")?;
    log.phase(
        "overlay",
        match &prep.rw_dir {
            Some(d) => format!(
                "mounted the overlay {label} (changes kept in {})",
                d.display()
            ),
            None => format!("mounted the overlay {label} (changes in a tmpfs)"),
        },
    );
    Ok(layout)
}

/// Phase 6: the per-run profile, recorded before it is loaded so that a sweep
/// finds it even if fwrun dies in between. Returns its name and the
/// denials reader started just before the load.
fn load_profile(
    cfg: &RunConfig,
    parser: &Path,
    text: &str,
    state_dir: &Path,
    teardown: &mut Teardown,
) -> Result<(String, Option<Denials>)> {
    let profile = apparmor::profile_name(&cfg.name);
    let denials = Denials::start(&profile);
    state::record(state_dir, &Resource::Profile(profile.clone()))?;
    apparmor::load(parser, text)?;
    let p = profile.clone();
    teardown.push("apparmor", move || apparmor::unload(&p));
    fault::step("apparmor")?;
    Ok((profile, denials))
}

/// Phases 7-8: clone the init into its namespaces and supervise it; boot again
/// after a reboot under --on-reboot restart. Returns the exit code, the
/// line to say and how the last boot ended.
fn boot(
    cfg: &RunConfig,
    prep: &Prepared,
    acq: &mut Acquired,
    sfd: &mut SignalFd,
    log: &mut Log,
    rep: &mut Report,
) -> Result<Booted> {
    let pty = open_console(cfg)?;
    // fwrun reads the console for readiness: in inherit mode, through
    // pipes (their write ends stay open across boots).
    let (mut tee, output) = match (&pty, cfg.ready.watches_console()) {
        (None, true) => {
            let (t, out, err) = Tee::open()?;
            (Some(t), Some((out, err)))
        }
        _ => (None, None),
    };
    let spec = child_spec(cfg, prep, acq, pty.as_ref(), output.as_ref())?;
    let mut relay = pty
        .as_ref()
        .map(|p| Relay::new(p.master.try_clone().expect("duplicating the pty master")));
    if let Some(r) = relay.as_mut().filter(|_| cfg.ready.watches_console()) {
        r.tap = Some(Vec::new());
    }
    // The terminal is restored when this guard goes, on every path.
    let _raw = match &relay {
        Some(_) => RawMode::enter()?,
        None => None,
    };
    let opts = Options {
        stop_signal: cfg.stop_signal,
        stop_timeout: cfg.stop_timeout,
        timeout: cfg.timeout,
    };
    let mut ready = Readiness::new(&cfg.ready, &cfg.name, &acq.state_dir);
    let mut refused = Vec::new();
    loop {
        rep.boots += 1;
        let (mut started, mountinfo) = start_init(cfg, &spec, acq, log)?;
        ready.boot(started.pid);
        let mut notifier = started
            .listener
            .take()
            .map(|l| Notifier::from_mountinfo(l, mountinfo.as_deref(), prep.host_devs.clone()));
        let watch = Watch {
            relay: relay.as_mut(),
            follow: acq
                .profile
                .as_mut()
                .and_then(|(_, d)| d.as_mut())
                .filter(|_| cfg.apparmor.follow_denials),
            notify: notifier.as_mut(),
            follow_refusals: cfg.apparmor.follow_denials,
            tee: tee.as_mut(),
            ready: Some(&mut ready),
        };
        let outcome = supervise::supervise(sfd, started.pid, &started.pidfd, &opts, watch)?;
        started.reaped = true;
        rep.ready_ms = ready.ready_after.map(|d| d.as_millis() as u64);
        refused.extend(notifier.map(|n| n.refused).unwrap_or_default());
        log.phase("run", "the firmware's init ended");
        let (code, line) = ending::conclude(&outcome);
        if ending::rebooted(&outcome) && cfg.on_reboot == OnReboot::Restart {
            log.say(format!(
                "firmware rebooted; booting it again (boot {})",
                rep.boots + 1
            ));
            continue;
        }
        return Ok(Booted {
            code,
            line,
            outcome,
            refused,
        });
    }
}

/// Clone the init and publish it in the run's state, with the mounts it
/// starts with (the mount interception's table, for the init and for
/// `fwrun enter`).
fn start_init(
    cfg: &RunConfig,
    spec: &ChildSpec,
    acq: &Acquired,
    log: &mut Log,
) -> Result<(firmware::Started, Option<String>)> {
    let started = firmware::start(spec, namespace::firmware_namespaces(spec.new_net))?;
    fault::step("clone")?;
    log.phase(
        "start",
        format!(
            "started {} as pid {} of run {} (host pid {})",
            Path::new(&cfg.init[0]).display(),
            if spec.as_pid2 { 2 } else { 1 },
            cfg.name,
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
    Ok((started, mountinfo))
}

/// How the last boot ended, and what fwrun refused over all boots.
struct Booted {
    code: i32,
    line: Option<String>,
    outcome: Outcome,
    refused: Vec<Refusal>,
}

/// A pty for the console, unless it inherits fwrun's (the default without
/// a terminal).
fn open_console(cfg: &RunConfig) -> Result<Option<console::Pty>> {
    let tty = console::stdin_is_tty();
    match cfg
        .console
        .unwrap_or(if tty { Console::Pty } else { Console::Inherit })
    {
        Console::Pty => Ok(Some(console::open_pty()?)),
        Console::Inherit => Ok(None),
    }
}

/// What the child is given, prepared before the clone.
fn child_spec(
    cfg: &RunConfig,
    prep: &Prepared,
    acq: &Acquired,
    pty: Option<&console::Pty>,
    output: Option<&(OwnedFd, OwnedFd)>,
) -> Result<ChildSpec> {
    let console_path = match pty {
        Some(p) => Some(p.slave_path.clone()),
        None if console::stdin_is_tty() => std::fs::read_link("/proc/self/fd/0").ok(),
        None => None,
    };
    Ok(ChildSpec {
        root: acq.layout.root.clone(),
        hostname: cfg.hostname.clone(),
        new_net: cfg.net == Net::None,
        binds: cfg.binds.clone(),
        console: console_path,
        tty: pty.map(|p| p.slave.as_raw_fd()),
        output: output.map(|(o, e)| (o.as_raw_fd(), e.as_raw_fd())),
        as_pid2: cfg.as_pid2,
        program: c_string(acq.program.as_os_str())?,
        profile: acq.profile.as_ref().map(|(name, _)| name.clone()),
        caps: prep.caps.clone(),
        seccomp: cfg.kernel.seccomp,
        argv: prep.argv.clone(),
        envp: prep.envp.clone(),
    })
}

/// Phase 9: what the firmware changed (while the layers are still mounted), the
/// teardown, then what was said and denied.
fn finish(
    cfg: &RunConfig,
    prep: &Prepared,
    acq: &mut Acquired,
    booted: &Booted,
    log: &mut Log,
    rep: &mut Report,
) -> Result<()> {
    if cfg.changes || cfg.report.is_some() {
        let upper = match &prep.rw_dir {
            Some(d) => d.join("upper"),
            None => acq.layout.workspace.join("upper"),
        };
        let found = changes::scan(&upper, &acq.layout.lower);
        if cfg.changes {
            // Asked for, so said even under -q.
            eprint!("{}", changes::listing(&found));
        }
        rep.changes = Some(found);
    }
    if let Some((_, Some(d))) = acq.profile.as_mut() {
        d.settle();
    }
    let failures = acq.teardown.run();
    log.phase("teardown", "tore down");
    if let Some(line) = &booted.line {
        log.say(line);
    }
    for line in notify::summary_lines(&booted.refused) {
        log.say(line);
    }
    rep.confinement.refused = notify::summary(&booted.refused)
        .into_iter()
        .map(|(r, count)| report::Refused {
            syscall: r.syscall,
            target: r.target,
            reason: r.reason,
            count,
        })
        .collect();
    if let Some((profile, Some(d))) = &acq.profile {
        for line in denials::summary_lines(profile, d) {
            log.say(line);
        }
        rep.apparmor.denials = denials::for_report(d);
    }
    if !failures.is_empty() {
        return Err(anyhow!("tearing down: {}", failures.join("; ")));
    }
    Ok(())
}

fn render_profile(cfg: &RunConfig) -> Result<String> {
    let template = match &cfg.apparmor.template {
        Some(path) => std::fs::read_to_string(path).map_err(|e| {
            fail(format!(
                "cannot read --profile-template '{}': {}",
                path.display(),
                crate::error::io_reason(&e)
            ))
        })?,
        None => apparmor::DEFAULT_TEMPLATE.to_string(),
    };
    apparmor::render(&apparmor::ProfileSpec {
        name: &cfg.name,
        template: &template,
        extra_deny: &cfg.apparmor.deny,
        allow_mknod: cfg.apparmor.allow_mknod,
    })
    .map_err(|e| match &cfg.apparmor.template {
        Some(p) => e.context(format!("--profile-template '{}'", p.display())),
        None => e,
    })
}

/// What still holds when the kernel has no AppArmor, for the warning.
fn without_apparmor(cfg: &RunConfig) -> &'static str {
    if cfg.kernel.seccomp {
        "the firmware still runs in its namespaces with constrained /proc, /sys and /dev, fewer capabilities and a seccomp filter that keeps its mounts, the clock, modules and the kernel log away from the host"
    } else {
        "the firmware runs in its namespaces with fewer capabilities, but with --seccomp off its own mounts can undo the constraints on /proc, /sys and /dev"
    }
}

/// The devices of the host's file systems that the firmware gets binds of:
/// the host's /dev (its nodes and /proc's masks), its ptys (the console),
/// the --bind sources, and under --net host the host's sysfs.
fn host_devices(cfg: &RunConfig) -> Vec<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    let mut paths: Vec<&Path> = vec![Path::new("/dev/null"), Path::new("/dev/pts")];
    paths.extend(cfg.binds.iter().map(|b| b.src.as_path()));
    if cfg.net == Net::Host {
        paths.push(Path::new("/sys"));
    }
    let mut devs: Vec<(u32, u32)> = paths
        .into_iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| (libc::major(m.dev()), libc::minor(m.dev())))
        .collect();
    devs.sort();
    devs.dedup();
    devs
}

/// The init, found inside the root at `root` (symlinks resolved inside it).
fn check_init(cfg: &RunConfig, root: &Path) -> Result<PathBuf> {
    exec::check_init(&open_dir(root)?, Path::new(&cfg.init[0]), cfg.init_named)
}

fn c_string(s: &OsStr) -> Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| fail("an argument holds a NUL byte"))
}

fn open_dir(path: &Path) -> Result<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    Ok(f.into())
}
