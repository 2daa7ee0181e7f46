//! The run, phase by phase: validate, preflight, private mount namespace,
//! lower layer, upper layer and overlay, clone the init into its namespaces,
//! supervise, tear down. Each phase lives in the module named after it; this
//! file only puts them in order.

use std::ffi::{CString, OsString};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use anyhow::{anyhow, Context, Result};
use nix::mount::MsFlags;

use crate::child::{self, ChildSpec};
use crate::cli::AppArmorMode;
use crate::cli::{Cli, Console, Net, OnReboot};
use crate::console::{self, RawMode, Relay};
use crate::denials::{self, Denials};
use crate::error::fail;
use crate::image::{self, Kind};
use crate::overlay::{self, Layout};
use crate::report::{self, Phase, Report};
use crate::state::{self, Resource, RunState};
use crate::supervise::{self, Options};
use crate::teardown::Teardown;
use crate::{apparmor, changes, fault, lower, namespace, preflight, rootfs, sys};

const DEFAULT_INIT: &str = "/sbin/init";
pub const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Status lines for a person, on stderr, and the phases' durations.
pub struct Log {
    verbose: bool,
    quiet: bool,
    last: Instant,
    pub phases: Vec<Phase>,
}

impl Log {
    pub fn new(verbose: bool, quiet: bool) -> Self {
        Log {
            verbose,
            quiet,
            last: Instant::now(),
            phases: Vec::new(),
        }
    }

    /// Phase `name` ended: note its duration; say what it did under -v.
    pub fn phase(&mut self, name: &str, what: impl AsRef<str>) {
        let now = Instant::now();
        let ms = now.duration_since(self.last).as_secs_f64() * 1000.0;
        if self.verbose {
            eprintln!("fwrun: {} ({ms:.1} ms)", what.as_ref());
        }
        self.phases.push(Phase {
            name: name.to_string(),
            ms: (ms * 1000.0).round() / 1000.0,
        });
        self.last = now;
    }

    /// Something a person should know, unless -q.
    pub fn say(&self, what: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("fwrun: {}", what.as_ref());
        }
    }
}

fn c_string(s: &OsString) -> Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| fail("an argument holds a NUL byte"))
}

/// The init's environment: small, clean, and the user's --env on top.
fn environment(cli: &Cli, name: &str) -> Result<Vec<CString>> {
    let term = std::env::var("TERM").unwrap_or_else(|_| "vt100".into());
    let mut vars: Vec<(String, String)> = vec![
        ("PATH".into(), PATH.into()),
        ("HOME".into(), "/".into()),
        ("TERM".into(), term),
        ("container".into(), "fwrun".into()),
        ("FWRUN_NAME".into(), name.into()),
    ];
    for (k, v) in &cli.env {
        vars.retain(|(old, _)| old != k);
        vars.push((k.clone(), v.clone()));
    }
    vars.into_iter()
        .map(|(k, v)| CString::new(format!("{k}={v}")).map_err(|_| fail("--env holds a NUL byte")))
        .collect()
}

fn open_dir(path: &Path) -> Result<std::os::fd::OwnedFd> {
    let f = std::fs::File::options()
        .read(true)
        .custom_flags_dir()
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    Ok(f.into())
}

trait DirFlags {
    fn custom_flags_dir(&mut self) -> &mut Self;
}
impl DirFlags for std::fs::OpenOptions {
    fn custom_flags_dir(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
    }
}

fn render_profile(cli: &Cli, name: &str) -> Result<String> {
    let template = match &cli.profile_template {
        Some(path) => std::fs::read_to_string(path).map_err(|e| {
            fail(format!(
                "cannot read --profile-template '{}': {}",
                path.display(),
                image::io_reason(&e)
            ))
        })?,
        None => apparmor::DEFAULT_TEMPLATE.to_string(),
    };
    apparmor::render(&apparmor::ProfileSpec {
        name,
        template: &template,
        extra_deny: &cli.deny,
        allow_mknod: cli.allow_mknod,
    })
    .map_err(|e| match &cli.profile_template {
        Some(p) => e.context(format!("--profile-template '{}'", p.display())),
        None => e,
    })
}

/// The end-of-run summary of what AppArmor refused.
fn report_denials(log: &Log, profile: &str, d: &Denials) {
    let summary = d.summary();
    if summary.is_empty() {
        return;
    }
    let word = denials::denied_word(denials::colour());
    log.say(format!(
        "AppArmor {word} {} access{} of the firmware (profile {profile}):",
        d.seen.len(),
        if d.seen.len() == 1 { "" } else { "es" }
    ));
    for (den, n) in summary {
        let times = if n > 1 {
            format!("  x{n}")
        } else {
            String::new()
        };
        log.say(format!("  {}{times}", denials::describe(&den)));
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

pub fn run(cli: Cli) -> Result<i32> {
    let mut log = Log::new(cli.verbose, cli.quiet);
    if cli.cleanup {
        return cleanup(&log);
    }
    let report_path = cli.report.as_deref().map(report::check_path).transpose()?;
    let name = cli.name.clone().unwrap_or_else(state::generate_name);
    let mut rep = Report {
        version: report::VERSION,
        name: name.clone(),
        firmware: report::Firmware {
            path: cli
                .firmware
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            kind: None,
        },
        init: if cli.init.is_empty() {
            vec![DEFAULT_INIT.into()]
        } else {
            cli.init
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect()
        },
        start: report::timestamp(SystemTime::now()),
        end: String::new(),
        phases: Vec::new(),
        ending: report::Ending {
            kind: "launcher-error".into(),
            signal: None,
            stop_reason: None,
            error: None,
        },
        exit_code: 0,
        boots: 0,
        changes: None,
        apparmor: report::AppArmor {
            mode: format!("{:?}", cli.apparmor).to_lowercase(),
            profile: None,
            denials: Vec::new(),
        },
    };
    let result = launch(&cli, &mut log, &mut rep, &name);
    rep.end = report::timestamp(SystemTime::now());
    rep.phases = std::mem::take(&mut log.phases);
    match &result {
        Ok(code) => rep.exit_code = *code,
        Err(e) => {
            rep.exit_code = crate::error::exit_code(e);
            rep.ending = report::Ending {
                kind: "launcher-error".into(),
                signal: None,
                stop_reason: None,
                error: Some(crate::error::one_line(e)),
            };
        }
    }
    if let Some(path) = report_path {
        if let Err(e) = report::write(&rep, &path) {
            log.say(format!("warning: {e:#}"));
        }
    }
    result
}

fn launch(cli: &Cli, log: &mut Log, rep: &mut Report, name: &str) -> Result<i32> {
    let name = name.to_string();
    let support = (cli.apparmor != AppArmorMode::Off)
        .then(|| apparmor::support(cli.apparmor_parser.as_deref()));
    // The profile is rendered first, when it will be used or was given: a
    // template that does not render is bad input, refused before anything
    // is touched.
    let profile_text = if cli.print_profile
        || cli.profile_template.is_some()
        || matches!(support, Some(apparmor::Support::Ready(_)))
    {
        Some(render_profile(cli, &name)?)
    } else {
        None
    };
    if cli.print_profile {
        print!("{}", profile_text.unwrap_or_default());
        return Ok(0);
    }
    let Some(firmware) = cli.firmware.clone() else {
        return Err(fail("--firmware is required"));
    };

    // 1. Validate everything that needs no system change.
    let init_named = !cli.init.is_empty();
    let argv_os: Vec<OsString> = if init_named {
        cli.init.clone()
    } else {
        vec![DEFAULT_INIT.into()]
    };
    let init = PathBuf::from(&argv_os[0]);
    let argv = argv_os.iter().map(c_string).collect::<Result<Vec<_>>>()?;
    let binds = cli
        .bind
        .iter()
        .map(rootfs::resolve_bind)
        .collect::<Result<Vec<_>>>()?;

    // 2. Preflight.
    preflight::check_root()?;
    preflight::check_overlay()?;
    let fw = image::detect(&firmware)?;
    let mut program = init.clone();
    rep.firmware.kind = Some(fw.kind.label().to_string());
    if fw.kind == Kind::Directory {
        // A directory can be checked before anything is mounted.
        program = child::check_init(&open_dir(&fw.path)?, &init, init_named)?;
    }
    let rw_dir = cli
        .rw_dir
        .as_deref()
        .map(overlay::check_rw_dir)
        .transpose()?;
    let envp = environment(cli, &name)?;
    let mut aa_warning = None;
    let parser = match (cli.apparmor, support) {
        (_, None) => None,
        (_, Some(apparmor::Support::Ready(p))) => Some(p),
        (AppArmorMode::Require, Some(apparmor::Support::Missing(why))) => {
            return Err(fail(format!(
                "--apparmor require: {why}: run on a kernel with AppArmor, or use --apparmor auto"
            )))
        }
        (_, Some(apparmor::Support::Missing(why))) => {
            // Said once the input is known to be good, so that a bad input
            // still gets exactly one line.
            aa_warning = Some(format!(
                "warning: no AppArmor confinement: {why}; the firmware runs with namespaces and constrained /proc, /sys and /dev only (--apparmor off silences this)"
            ));
            None
        }
    };
    log.phase(
        "preflight",
        format!(
            "checked firmware {} ({})",
            fw.path.display(),
            fw.kind.label()
        ),
    );

    // Signals are read from a signalfd from here on.
    let mut sfd = supervise::block_signals()?;

    // Per-run state, and the sweep of dead runs' leftovers.
    let mut teardown = Teardown::new();
    if let Err(e) = state::sweep(&mut apparmor::Sweep) {
        log.say(format!("warning: sweeping dead runs: {e:#}"));
    }
    let st = RunState::create(&name, &mut apparmor::Sweep)?;
    let state_dir = st.dir.clone();
    teardown.push("state", move || st.remove());
    fault::step("state")?;

    // 3. The launcher's own mount namespace: nothing below outlives it.
    namespace::enter_private_mount_namespace()?;
    fault::step("namespace")?;
    let label = format!("fwrun-{name}");
    let layout = Layout::new(state_dir.join("mnt"));
    overlay::mkdir(&layout.workspace)?;
    sys::mount(
        &label,
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

    // 4. Lower layer.
    overlay::mkdir(&layout.lower)?;
    let loop_dev = lower::mount_lower(&fw, &layout.lower, &label)?;
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

    // 5. Upper layer and overlay.
    overlay::mount_overlay(&layout, rw_dir.as_deref(), &label)?;
    let rt = layout.root.clone();
    teardown.push("overlay", move || sys::umount_detach(&rt));
    fault::step("overlay")?;
    log.phase(
        "overlay",
        match &rw_dir {
            Some(d) => format!(
                "mounted the overlay {label} (changes kept in {})",
                d.display()
            ),
            None => format!("mounted the overlay {label} (changes in a tmpfs)"),
        },
    );
    if fw.kind != Kind::Directory {
        program = child::check_init(&open_dir(&layout.root)?, &init, init_named)?;
    }

    if let Some(w) = aa_warning {
        log.say(w);
    }

    // 6. The per-run AppArmor profile, recorded before it is loaded so that
    // a sweep finds it even if fwrun dies in between.
    let profile = apparmor::profile_name(&name);
    let mut denials = None;
    if let (Some(parser), Some(text)) = (&parser, &profile_text) {
        denials = Denials::start(&profile);
        state::record(&state_dir, &Resource::Profile(profile.clone()))?;
        apparmor::load(parser, text)?;
        let p = profile.clone();
        teardown.push("apparmor", move || apparmor::unload(&p));
        fault::step("apparmor")?;
        log.phase("apparmor", format!("loaded AppArmor profile {profile}"));
        rep.apparmor.profile = Some(profile.clone());
    }
    let follow = cli.follow_denials;

    // 7. Clone the init into its namespaces.
    let console_mode = cli.console.unwrap_or(if console::stdin_is_tty() {
        Console::Pty
    } else {
        Console::Inherit
    });
    let pty = match console_mode {
        Console::Pty => Some(console::open_pty()?),
        Console::Inherit => None,
    };
    let console_path = match &pty {
        Some(p) => Some(p.slave_path.clone()),
        None if console::stdin_is_tty() => std::fs::read_link("/proc/self/fd/0").ok(),
        None => None,
    };
    let spec = ChildSpec {
        root: layout.root.clone(),
        hostname: cli.hostname.clone().unwrap_or_else(|| name.clone()),
        new_net: cli.net == Net::None,
        binds,
        console: console_path,
        tty: pty.as_ref().map(|p| p.slave.as_raw_fd()),
        as_pid2: cli.as_pid2,
        program: c_string(&program.into_os_string())?,
        profile: parser.is_some().then(|| profile.clone()),
        argv,
        envp,
    };
    if let Some(why) = supervise::pending_stop() {
        // Stopped before the firmware started.
        rep.ending = supervise::ending(&supervise::Outcome {
            ending: supervise::Ending::Exited(0),
            stopped: Some(why),
            sent: Vec::new(),
        });
        return Ok(why.exit_code());
    }
    let mut relay = pty
        .as_ref()
        .map(|p| Relay::new(p.master.try_clone().expect("duplicating the pty master")));
    let raw = match &relay {
        Some(_) => RawMode::enter()?,
        None => None,
    };
    let opts = Options {
        stop_signal: cli.stop_signal,
        stop_timeout: cli.stop_timeout,
        timeout: cli.timeout,
    };
    let (code, line, outcome) = loop {
        rep.boots += 1;
        let mut started = child::start(&spec, namespace::firmware_namespaces(spec.new_net))?;
        fault::step("clone")?;
        log.phase(
            "start",
            format!(
                "started {} as pid {} of run {name} (host pid {})",
                init.display(),
                if spec.as_pid2 { 2 } else { 1 },
                started.pid
            ),
        );

        // 8. Supervise.
        let outcome = supervise::supervise(
            &mut sfd,
            started.pid,
            &started.pidfd,
            &opts,
            None,
            relay.as_mut(),
            denials.as_mut().filter(|_| follow),
        )?;
        started.reaped = true;
        log.phase("run", "the firmware's init ended");
        let (code, line) = supervise::conclude(&outcome);
        if supervise::rebooted(&outcome) && cli.on_reboot == OnReboot::Restart {
            log.say(format!(
                "firmware rebooted; booting it again (boot {})",
                rep.boots + 1
            ));
            continue;
        }
        break (code, line, outcome);
    };
    drop(raw);
    rep.ending = supervise::ending(&outcome);

    // What the firmware changed, while the layers are still mounted.
    if cli.changes || cli.report.is_some() {
        let upper = match &rw_dir {
            Some(d) => d.join("upper"),
            None => layout.workspace.join("upper"),
        };
        let found = changes::scan(&upper, &layout.lower);
        if cli.changes {
            // Asked for, so said even under -q.
            eprintln!(
                "fwrun: {} change{} in the firmware's root{}",
                found.len(),
                if found.len() == 1 { "" } else { "s" },
                if found.is_empty() { "" } else { ":" }
            );
            for c in &found {
                eprintln!("fwrun:   {} {}", c.change.letter(), c.path);
            }
        }
        rep.changes = Some(found);
    }

    // 9. Tear down, last acquired first; then say what AppArmor refused.
    if let Some(d) = denials.as_mut() {
        d.settle();
    }
    let failures = teardown.run();
    log.phase("teardown", "tore down");
    if let Some(line) = line {
        log.say(line);
    }
    if let Some(d) = &denials {
        report_denials(log, &profile, d);
        rep.apparmor.denials = d
            .summary()
            .into_iter()
            .map(|(den, count)| report::Denial {
                operation: den.operation,
                target: den.target,
                requested: den.requested,
                count,
            })
            .collect();
    }
    if !failures.is_empty() {
        return Err(anyhow!("tearing down: {}", failures.join("; ")));
    }
    Ok(code)
}
