//! The run, phase by phase (DESIGN.md): prepare (validate, preflight, render
//! the profile) → acquire (state, private mount namespace, lower layer,
//! overlay, profile; each with its undo step) → boot (clone the init,
//! supervise, again on a reboot with --on-reboot restart) → finish (changes,
//! tear down, denials). Each phase lives in the folder named after its
//! concern; this file only puts them in order.

use std::ffi::{CString, OsStr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{anyhow, Context, Result};
use nix::mount::MsFlags;
use nix::sys::signalfd::SignalFd;

use crate::config::{Action, AppArmorMode, Net, OnReboot, RunConfig};
use crate::confine::apparmor::{self, Support};
use crate::confine::caps::{self as capabilities, CapsRequest};
use crate::confine::denials::{self, Denials};
use crate::confine::notify::{self, Notifier, Refusal};
use crate::confine::tally::Tally;
use crate::control;
use crate::error::fail;
use crate::fault;
use crate::firmware::defaults::{self, Defaults};
use crate::firmware::{self, exec, spec::ChildSpec};
use crate::host::cgroup::{self, Cgroup, Hierarchy};
use crate::host::image::{self, Firmware, Kind};
use crate::host::overlay::{self, Layout};
use crate::host::prefetch::{self, Prefetch};
use crate::host::{lower, namespace, preflight};
use crate::inspect::terminfo;
use crate::inspect::Inspected;
use crate::network::{self, attach::Attached};
use crate::process::exec::Program;
use crate::process::startup::{Startup, Terminal};
use crate::report::status::Status;
use crate::report::{self, changes, Report};
use crate::state::live::{self, RunFacts};
use crate::state::teardown::{self, Teardown};
use crate::state::{self, Resource, RunState};
use crate::supervise::console::{self, RawMode, Relay, Tee};
use crate::supervise::ending::{self, Ending, Outcome, Stopping};
use crate::supervise::ready::Readiness;
use crate::supervise::{self, Options, Watch};
use crate::sys;

/// Run what the configuration asks for; the exit code to end with.
pub fn run(cfg: RunConfig) -> Result<i32> {
    let mut log = Status::new(cfg.verbose, cfg.quiet);
    match &cfg.action {
        Action::Cleanup => cleanup(&log),
        Action::PrintProfile => {
            print!("{}", render_profile(&cfg)?);
            Ok(0)
        }
        Action::Run(firmware) => run_with_report(&cfg, firmware, &mut log),
        Action::Enter(opts) => control::enter::enter(opts),
        Action::List(opts) => control::list::list(opts, &mut Sweep),
        Action::Stop(opts) => control::stop::stop(opts),
        Action::Wait(opts) => control::wait::wait(opts),
    }
}

/// `fwrun --cleanup`: sweep what dead runs left, say what went.
pub fn cleanup(log: &Status) -> Result<i32> {
    preflight::check_root()?;
    let hold = state::root::hold_existing();
    let swept = state::sweep(&mut Sweep)?;
    for name in &swept {
        match name.strip_prefix(state::shared_images::PREFIX) {
            Some(key) => log.say(format!(
                "removed the entry of a shared lower layer no run uses ({key})"
            )),
            None => log.say(format!("removed the leftovers of dead run {name}")),
        }
    }
    // Housekeeping rather than a leftover: said under -v only.
    if hold.map(|h| h.release()).transpose()? == Some(true) {
        log.detail(format!(
            "unmounted fwrun's own tmpfs from {} (no run uses it)",
            state::STATE_ROOT
        ));
    }
    if swept.is_empty() {
        log.say("nothing to clean up");
    }
    Ok(0)
}

/// Sweeps what a dead run left: its AppArmor profile, its cgroup, the host
/// side of its veth.
struct Sweep;

impl state::Sweeper for Sweep {
    fn release(&mut self, r: &Resource) -> Result<()> {
        match r {
            Resource::Cgroup(path) => cgroup::remove(path),
            Resource::Link(name) => network::release_link(name),
            other => apparmor::Sweep.release(other),
        }
    }
}

/// A run, and its --report written however it ended.
fn run_with_report(cfg: &RunConfig, firmware: &Path, log: &mut Status) -> Result<i32> {
    let report_path = cfg.report.as_deref().map(report::check_path).transpose()?;
    let mut rep = Report::begin(
        &cfg.name,
        firmware,
        cfg.init.iter().map(|a| a.to_string_lossy().into_owned()),
        format!("{:?}", cfg.apparmor.mode).to_lowercase(),
    );
    rep.network.mode = cfg.net.label().into();
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

fn launch(cfg: &RunConfig, firmware: &Path, log: &mut Status, rep: &mut Report) -> Result<i32> {
    let prep = prepare(cfg, firmware, log, rep)?;
    // Signals are read from a signalfd from here on.
    let mut sfd = supervise::block_signals()?;
    let mut acq = acquire(cfg, &prep, log, rep)?;
    if let Some(why) = supervise::pending_stop() {
        // Stopped before the firmware started.
        let outcome = Outcome {
            ending: Ending::Exited(0),
            stopped: Some(Stopping::before_start(why, cfg.stop_timeout, cfg.timeout)),
            sent: Vec::new(),
        };
        rep.ending = ending::ending(&outcome);
        rep.stop = ending::stop(&outcome);
        let (code, line) = ending::conclude(&outcome);
        if let Some(line) = line {
            log.say(line);
        }
        return Ok(code);
    }
    let mut booted = boot(cfg, &prep, &mut acq, &mut sfd, log, rep)?;
    rep.ending = ending::ending(&booted.outcome);
    rep.stop = ending::stop(&booted.outcome);
    booted.line = booted
        .line
        .take()
        .map(|l| with_hint(l, &booted.outcome, acq.defaults.seen.init));
    finish(cfg, &prep, &mut acq, &booted, log, rep)?;
    Ok(booted.code)
}

/// A stop that needed a kill: the line also says which stop signal the
/// init expects, when fwrun recognises the init and sent another.
fn with_hint(line: String, outcome: &Outcome, init: Option<crate::inspect::inits::Init>) -> String {
    let sent = outcome.stopped.and_then(|s| s.signal);
    let hint = match (outcome.killed(), sent, init) {
        (true, Some(sent), Some(init)) => init.hint(sent),
        _ => None,
    };
    match hint {
        Some(h) => format!("{line}; {h}"),
        None => line,
    }
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
    /// Whether the run gets a cgroup of its own (cgroup v2 only).
    hierarchy: Hierarchy,
}

/// Phases 1-2: validate everything that needs no system change, then
/// preflight.
fn prepare(
    cfg: &RunConfig,
    firmware: &Path,
    log: &mut Status,
    rep: &mut Report,
) -> Result<Prepared> {
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
    preflight::check_privileges()?;
    preflight::check_overlay()?;
    network::check::check(&cfg.network)?;
    let hierarchy = cgroup_host(cfg, log, rep)?;
    let fw = image::detect(firmware)?;
    preflight::check_loop_control(fw.kind.fstype().is_some())?;
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
        hierarchy,
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

/// Whether the run gets a cgroup of its own; limits on a host that cannot
/// give one are refused here, before anything is touched.
fn cgroup_host(cfg: &RunConfig, log: &Status, rep: &mut Report) -> Result<Hierarchy> {
    let hierarchy = cgroup::hierarchy();
    cgroup::check_host(&cfg.cgroup, &hierarchy)?;
    if let Hierarchy::Legacy(why) = &hierarchy {
        log.detail(format!(
            "no cgroup of its own for the firmware: this host has {why}; no limits or accounting"
        ));
        rep.cgroup.none_because = Some(why.clone());
    }
    Ok(hierarchy)
}

/// The capabilities the init keeps, said under -v and put in the report.
fn kernel_layers(cfg: &RunConfig, log: &Status, rep: &mut Report) -> Vec<caps::Capability> {
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
    /// What was read from the init, and the defaults chosen from it.
    defaults: Defaults,
    /// What fwrun made in the writable layer to bind an interpreter on.
    planted: Vec<PathBuf>,
    /// The init's environment, TERM chosen for the firmware.
    envp: Vec<CString>,
    /// The loaded profile's name, and its denials.
    profile: Option<(String, Option<Denials>)>,
    /// The run's cgroup, on a cgroup v2 host.
    cgroup: Option<Cgroup>,
    /// On a v1 or hybrid host, `fwrun-NAME` in each hierarchy (and fwrun's
    /// own cgroup there), which the init is cloned into.
    legacy_cgroups: Vec<(PathBuf, PathBuf)>,
    /// The child reading the init's program ahead (a cold image only);
    /// reaped before the init's exec, or (a failed setup) before
    /// `teardown`.
    prefetch: Option<Prefetch>,
    teardown: Teardown,
}

/// Phases 3-6: state, the launcher's private mount namespace, the layers and the
/// profile, each pushed on the teardown stack as it is acquired.
fn acquire(
    cfg: &RunConfig,
    prep: &Prepared,
    log: &mut Status,
    rep: &mut Report,
) -> Result<Acquired> {
    let mut teardown = Teardown::new();
    // Held from before the sweep until the run's state is gone: undone last.
    let hold = state::root::hold()?;
    teardown.push("state-root", move || hold.release().map(drop));
    if let Err(e) = state::sweep(&mut Sweep) {
        log.say(format!("warning: sweeping dead runs: {e:#}"));
    }
    let st = RunState::create(&cfg.name, &mut Sweep)?;
    let state_dir = st.dir.clone();
    teardown.push("state", move || st.remove());
    fault::step("state")?;
    if let Some(v) = &cfg.network.veth {
        // Recorded before it exists, so that a sweep finds it whenever
        // fwrun dies.
        state::record(&state_dir, &Resource::Link(v.host.clone()))?;
    }
    let label = format!("fwrun-{}", cfg.name);
    let (layout, cold) = mount_layers(prep, &state_dir, &label, &mut teardown, log)?;
    let root = open_dir(&layout.root)?;
    let program = match &prep.program {
        Some(p) => p.clone(),
        None => exec::check_init(&root, Path::new(&cfg.init[0]), cfg.init_named)?,
    };
    let defaults = defaults::choose(cfg, &root, &layout.root, &program, log, rep)?;
    // Dropped (reaped) before the teardown, on every path.
    let prefetch = match cold {
        true => read_ahead(&root, &defaults.seen),
        false => None,
    };
    let planted = plant_binds(&defaults, &layout, &mut teardown);
    let envp = firmware_env(cfg, prep, &root, log);
    publish_facts(cfg, prep, &envp, &state_dir)?;
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
    let (cgroup, legacy_cgroups) = match prep.hierarchy {
        Hierarchy::Unified => (
            Some(make_cgroup(cfg, &state_dir, &mut teardown, log, rep)?),
            Vec::new(),
        ),
        // A plain command (a self-test, `-- /bin/true`) makes no cgroups:
        // it is spared the few milliseconds of making and joining them.
        Hierarchy::Legacy(_) if defaults.seen.init.is_some() => (
            None,
            make_legacy_cgroups(cfg, &state_dir, &mut teardown, log)?,
        ),
        Hierarchy::Legacy(_) => (None, Vec::new()),
    };
    Ok(Acquired {
        state_dir,
        layout,
        program,
        defaults,
        planted,
        envp,
        profile,
        cgroup,
        legacy_cgroups,
        prefetch,
        teardown,
    })
}

/// Start reading the init's program (and its dynamic loader) into a cold
/// image's page cache while the run sets up.
fn read_ahead(root: &OwnedFd, seen: &Inspected) -> Option<Prefetch> {
    let files: Vec<std::fs::File> = seen
        .elf_path
        .iter()
        .chain(
            seen.needs
                .iter()
                .filter(|n| n.role == "dynamic loader")
                .map(|n| &n.path),
        )
        .filter_map(|p| {
            // Non-blocking, should it not be a regular file after all.
            let flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY;
            sys::openat2(root.as_fd(), p, flags, sys::RESOLVE_IN_ROOT).ok()
        })
        .map(std::fs::File::from)
        .collect();
    prefetch::start(files)
}

/// What `fwrun enter` and `fwrun list` read about the run.
fn publish_facts(cfg: &RunConfig, prep: &Prepared, envp: &[CString], dir: &Path) -> Result<()> {
    let caps: Vec<String> = prep
        .caps
        .iter()
        .map(|c| capabilities::short_name(*c))
        .collect();
    let veth = cfg.network.veth.as_ref();
    live::publish_facts(
        dir,
        &RunFacts {
            firmware: &prep.fw.path,
            net: cfg.net.label(),
            interface: veth.map(|v| v.host.as_str()),
            address: veth.and_then(|v| v.addr.map(|a| a.to_string())),
            env: envp,
            caps: &caps,
            seccomp: cfg.kernel.seccomp,
            host_devs: &prep.host_devs,
        },
    )
}

/// The init's environment: TERM, unless --env gave it, becomes one the
/// firmware has a terminfo entry for (-v says which).
fn firmware_env(cfg: &RunConfig, prep: &Prepared, root: &OwnedFd, log: &Status) -> Vec<CString> {
    let wanted = cfg.env.iter().find(|(k, _)| k == "TERM").map(|(_, v)| v);
    let Some(wanted) = wanted else {
        return prep.envp.clone();
    };
    if cfg.term_given {
        log.detail(format!("TERM={wanted} for the firmware, as --env gave it"));
        return prep.envp.clone();
    }
    let choice = if console::stdout_is_tty() {
        terminfo::choose(root, wanted)
    } else {
        terminfo::Choice {
            term: "dumb".into(),
            why: "fwrun's stdout is not a terminal (--env TERM=... sets another)".into(),
        }
    };
    log.detail(format!(
        "TERM={} for the firmware: {}",
        choice.term, choice.why
    ));
    if choice.term == *wanted {
        return prep.envp.clone();
    }
    let term = CString::new(format!("TERM={}", choice.term)).expect("a terminfo name without NUL");
    prep.envp
        .iter()
        .map(|e| {
            if e.as_bytes().starts_with(b"TERM=") {
                term.clone()
            } else {
                e.clone()
            }
        })
        .collect()
}

/// Phases 3-5: the private mount namespace, its workspace, the lower layer and the
/// overlay. Also says whether the lower layer is an image with nothing
/// cached yet (this run attached it).
fn mount_layers(
    prep: &Prepared,
    state_dir: &Path,
    label: &str,
    teardown: &mut Teardown,
    log: &mut Status,
) -> Result<(Layout, bool)> {
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
    let mut lower = lower::mount_lower(&prep.fw, &layout.lower)?;
    // Left once this run's mount of it is gone: pushed first, undone last.
    if let Some(entry) = lower.entry.take() {
        teardown.push("lower-entry", move || entry.leave().map(drop));
    }
    let lw = layout.lower.clone();
    // An image's superblock is shut down (and its loop device freed, when
    // this run is the last to use it) beside the rest of the teardown; a
    // directory's bind has nothing to release.
    match lower.device.is_some() {
        true => teardown.push("lower", move || teardown::detach_beside(&lw)),
        false => teardown.push("lower", move || sys::umount_detach(&lw)),
    }
    fault::step("lower")?;
    log.phase("lower", lower_line(prep, &lower));
    let cold = lower.device.is_some() && !lower.shared;

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
    Ok((layout, cold))
}

/// What -v says of the lower layer.
fn lower_line(prep: &Prepared, lower: &lower::Lower) -> String {
    let Some(dev) = &lower.device else {
        return "bound the directory read-only".into();
    };
    let how = match lower.shared {
        true => "already attached by another run of this image",
        false => "attached for this run",
    };
    if prep.fw.needs_recovery {
        format!(
            "mounted the image read-only on {dev} ({how}), with noload: its journal needs \
             recovery (it was not cleanly unmounted) and is not replayed, so its last changes \
             are not seen"
        )
    } else {
        format!("mounted the image read-only on {dev} ({how})")
    }
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
    let profile = cfg.apparmor.profile.clone();
    let denials = Denials::start(&profile);
    state::record(state_dir, &Resource::Profile(profile.clone()))?;
    apparmor::load(parser, text)?;
    let p = profile.clone();
    teardown.push("apparmor", move || apparmor::unload(&p));
    fault::step("apparmor")?;
    Ok((profile, denials))
}

/// The run's cgroup with its limits, recorded before it is made so that a
/// sweep finds it even if fwrun dies in between; removed (once empty) in
/// the teardown.
fn make_cgroup(
    cfg: &RunConfig,
    state_dir: &Path,
    teardown: &mut Teardown,
    log: &mut Status,
    rep: &mut Report,
) -> Result<Cgroup> {
    let path = cgroup::path_for(&cfg.name, &cfg.cgroup)?;
    state::record(state_dir, &Resource::Cgroup(path.clone()))?;
    let made = cgroup::create(&path, &cfg.cgroup);
    let p = path.clone();
    teardown.push("cgroup", move || cgroup::remove(&p));
    let made = made?;
    fault::step("cgroup")?;
    rep.cgroup.path = Some(path.display().to_string());
    rep.cgroup.limits = report::CgroupLimits {
        memory_bytes: cfg.cgroup.memory,
        // No swap with --memory unless --memory-swap allows some.
        memory_swap_bytes: cfg.cgroup.memory_swap.or(cfg.cgroup.memory.map(|_| 0)),
        pids: cgroup::pids_max(&path),
        cpus: cfg.cgroup.cpus,
        io_weight: cfg.cgroup.io_weight,
    };
    log.phase("cgroup", format!("made the cgroup {}", path.display()));
    Ok(made)
}

/// On a v1 or hybrid host, for an init fwrun recognises (which may manage
/// cgroups: systemd does), `fwrun-NAME` under fwrun's own cgroup in each
/// hierarchy, each recorded before it is made and removed, with what the
/// firmware made below it, in the teardown. One that cannot be made (a
/// read-only cgroup file system) is left out, with a warning.
fn make_legacy_cgroups(
    cfg: &RunConfig,
    state_dir: &Path,
    teardown: &mut Teardown,
    log: &mut Status,
) -> Result<Vec<(PathBuf, PathBuf)>> {
    let mut made = Vec::new();
    for (run, own) in cgroup::legacy_dirs(&cfg.name) {
        state::record(state_dir, &Resource::Cgroup(run.clone()))?;
        let result = cgroup::create_legacy(&run, &own);
        let p = run.clone();
        teardown.push("cgroup", move || cgroup::remove(&p));
        match result {
            Ok(()) => made.push((run, own)),
            Err(e) => log.say(format!(
                "warning: {e:#}: the firmware's cgroups in that hierarchy go under fwrun's own"
            )),
        }
    }
    fault::step("cgroup")?;
    if !made.is_empty() {
        log.phase(
            "cgroup",
            format!(
                "made fwrun-{} in {} cgroup hierarchies, for the firmware's own cgroups",
                cfg.name,
                made.len()
            ),
        );
    }
    Ok(made)
}

/// Phases 7-8: clone the init into its namespaces and supervise it; boot again
/// after a reboot under --on-reboot restart. Returns the exit code, the
/// line to say and how the last boot ended.
fn boot(
    cfg: &RunConfig,
    prep: &Prepared,
    acq: &mut Acquired,
    sfd: &mut SignalFd,
    log: &mut Status,
    rep: &mut Report,
) -> Result<Booted> {
    let (pty, mut tee, output) = open_console(cfg, acq.defaults.pty)?;
    let spec = child_spec(cfg, prep, acq, pty.as_ref(), output.as_ref())?;
    let mut relay = relay_for(cfg, pty.as_ref());
    // The terminal is restored when this guard goes, on every path.
    let _raw = match &relay {
        Some(_) => RawMode::enter()?,
        None => None,
    };
    let opts = Options {
        stop_signal: acq.defaults.stop_signal,
        stop_timeout: cfg.stop_timeout,
        timeout: cfg.timeout,
        cgroup: acq.cgroup.as_ref().map(|c| c.path.clone()),
    };
    let mut ready = Readiness::new(&cfg.ready, &cfg.name, &acq.state_dir);
    let mut refused = Tally::default();
    loop {
        rep.boots += 1;
        let (mut started, net, mountinfo) = start_init(cfg, &spec, acq, log, rep)?;
        ready.boot(started.pid);
        let mut notifier = started
            .listener
            .take()
            .map(|l| Notifier::from_mountinfo(l, mountinfo, prep.host_devs.clone(), started.pid));
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
        refused.merge(notifier.map(|n| n.refused).unwrap_or_default());
        log.phase("run", "the firmware's init ended");
        let (code, mut line) = ending::conclude(&outcome);
        if let Some(cg) = &acq.cgroup {
            account(cfg, cg, &outcome, &mut line, rep);
        }
        let restart = ending::rebooted(&outcome) && cfg.on_reboot == OnReboot::Restart;
        hand_back(net, restart, &mut acq.teardown, log);
        if restart {
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

/// Start the firmware, and publish its init in the run's state with the
/// mounts it starts with (the mount interception's table, for the init
/// and for `fwrun enter`).
#[allow(clippy::type_complexity)]
fn start_init(
    cfg: &RunConfig,
    spec: &ChildSpec,
    acq: &mut Acquired,
    log: &mut Status,
    rep: &mut Report,
) -> Result<(firmware::Started, Option<Attached>, Option<String>)> {
    let stepped = cgroup::step_in(&acq.legacy_cgroups)?;
    let cloned = start_firmware(cfg, spec, acq.prefetch.take(), log, rep);
    drop(stepped);
    let (started, net) = cloned?;
    fault::step("clone")?;
    log.phase(
        "start",
        format!(
            "started {} as pid {} of run {} (host pid {})",
            Path::new(&cfg.init[0]).display(),
            if spec.startup.as_pid2 { 2 } else { 1 },
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
    Ok((started, net, mountinfo))
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
/// while it waits before its exec; then let it exec.
fn start_firmware(
    cfg: &RunConfig,
    spec: &ChildSpec,
    prefetch: Option<Prefetch>,
    log: &mut Status,
    rep: &mut Report,
) -> Result<(firmware::Started, Option<Attached>)> {
    let namespaces = namespace::firmware_namespaces(spec.new_net);
    let cloned = firmware::clone_child(spec, namespaces)?;
    // The reader finishes while the child sets itself up, and is reaped
    // before the child may exec (it waits for the go): once the init
    // runs, it is fwrun's only child.
    if let Some(p) = prefetch {
        p.finish();
    }
    if cfg.network.is_empty() {
        return Ok((cloned.release()?, None));
    }
    let attached = match network::attach::attach(&cfg.network, cloned.pid) {
        Ok(a) => a,
        Err(e) => return Err(cloned.abandon(e)),
    };
    if let Err(e) = fault::step("network") {
        return Err(cloned.abandon(e));
    }
    let lines = network::describe(&cfg.network);
    log.phase("network", lines.join("; "));
    rep.network.interfaces = report_interfaces(&cfg.network);
    Ok((cloned.release()?, Some(attached)))
}

/// The firmware's links, as the report lists them.
fn report_interfaces(plan: &network::Plan) -> Vec<report::Interface> {
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

/// What the cgroup counted, into the report; an OOM kill of the init said
/// as such.
fn account(
    cfg: &RunConfig,
    cg: &Cgroup,
    out: &Outcome,
    line: &mut Option<String>,
    rep: &mut Report,
) {
    let usage = cgroup::usage(&cg.path);
    if oom_killed(out, Some(&usage)) {
        *line = Some(oom_line(cfg));
        rep.cgroup.init_oom_killed = true;
    }
    rep.cgroup.set_usage(&usage);
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

/// How the last boot ended, and what fwrun refused over all boots.
struct Booted {
    code: i32,
    line: Option<String>,
    outcome: Outcome,
    refused: Tally<Refusal>,
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

/// The binfmt_misc interpreters bound into the firmware are bound on
/// files and directories the child makes in the writable layer: those
/// that were not there go again with the teardown (and before the changes
/// are read), so that a --rw-dir keeps none of them.
fn plant_binds(defaults: &Defaults, layout: &Layout, teardown: &mut Teardown) -> Vec<PathBuf> {
    let planted: Vec<PathBuf> = defaults
        .binds
        .iter()
        .flat_map(|b| overlay::missing_under(&layout.root, &b.dst))
        .collect();
    if !planted.is_empty() {
        let p = planted.clone();
        teardown.push("interpreter", move || {
            overlay::remove_planted(&p);
            Ok(())
        });
    }
    planted
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
        binds: cfg
            .binds
            .iter()
            .chain(&acq.defaults.binds)
            .cloned()
            .collect(),
        console: console_path,
        cgroup: acq.cgroup.as_ref().map(|c| c.fd()),
        startup: Startup {
            terminal,
            wait_for_go: !cfg.network.is_empty() || acq.prefetch.is_some(),
            confinement: crate::confine::confinement(
                acq.profile.as_ref().map(|(name, _)| name.clone()),
                prep.caps.clone(),
                cfg.kernel.seccomp,
            ),
            program: Program::Init {
                path: c_string(acq.program.as_os_str())?,
                needs: acq.defaults.needs.clone(),
            },
            as_pid2: cfg.as_pid2,
            argv: prep.argv.clone(),
            envp: acq.envp.clone(),
        },
    })
}

/// Phase 9: what the firmware changed (while the layers are still mounted), the
/// teardown, then what was said and denied.
fn finish(
    cfg: &RunConfig,
    prep: &Prepared,
    acq: &mut Acquired,
    booted: &Booted,
    log: &mut Status,
    rep: &mut Report,
) -> Result<()> {
    if cfg.changes || cfg.report.is_some() {
        overlay::remove_planted(&acq.planted);
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
    acq.prefetch.take();
    let failures = acq.teardown.run();
    log.phase("teardown", "tore down");
    if let Some(line) = rep.cgroup.summary() {
        log.detail(line);
    }
    if let Some(line) = &booted.line {
        log.say(line);
    }
    for line in notify::summary_lines(&booted.refused) {
        log.say(line);
    }
    rep.confinement.refused = booted
        .refused
        .kinds()
        .iter()
        .map(|(r, count)| report::Refused {
            syscall: r.syscall.clone(),
            target: r.target.clone(),
            reason: r.reason.clone(),
            count: *count,
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
        profile: &cfg.apparmor.profile,
        template: &template,
        extra_deny: &cfg.apparmor.deny,
        allow_mknod: cfg.apparmor.allow_mknod,
        host_network: cfg.net == Net::Host,
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
