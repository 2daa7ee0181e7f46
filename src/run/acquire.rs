//! Phases 3 to 6 of the run: the run's state, the launcher's private mount
//! namespace, the lower layer and the overlay, the init found and read in
//! them (and the defaults chosen from it), the AppArmor profile and the
//! cgroups. Each is pushed on the teardown stack as it is acquired, so that
//! a failure at any point undoes what came before.

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::mount::MsFlags;

use crate::config::RunConfig;
use crate::confine::apparmor;
use crate::confine::denials::Denials;
use crate::fault;
use crate::firmware::defaults::{self, Defaults, Wanted};
use crate::firmware::exec;
use crate::host::cgroup::{self, Cgroup, Hierarchy};
use crate::host::overlay::{self, Layout};
use crate::host::prefetch::{self, Prefetch};
use crate::host::{lower, namespace};
use crate::inspect::{terminfo, Inspected};
use crate::report::status::Status;
use crate::run::prepare::Prepared;
use crate::state::live::{self, Facts};
use crate::state::teardown::{self, Teardown};
use crate::state::{self, Resource, RunState};
use crate::supervise::console;
use crate::sys;

/// What a run holds while the firmware runs; dropped, it is torn down.
pub struct Acquired {
    /// The run's state directory, where it publishes what it is doing.
    pub state_dir: PathBuf,
    pub layout: Layout,
    pub program: PathBuf,
    /// What was read from the init, and the defaults chosen from it.
    pub defaults: Defaults,
    /// What fwrun made in the writable layer to bind an interpreter on.
    pub planted: Vec<PathBuf>,
    /// The init's environment, TERM chosen for the firmware.
    pub envp: Vec<CString>,
    /// The loaded profile's name, and its denials.
    pub profile: Option<(String, Option<Denials>)>,
    /// The run's cgroup, on a cgroup v2 host.
    pub cgroup: Option<Cgroup>,
    /// On a v1 or hybrid host, `fwrun-NAME` in each hierarchy (and fwrun's
    /// own cgroup there), which the init is cloned into.
    pub legacy_cgroups: Vec<(PathBuf, PathBuf)>,
    /// The run's cgroup in the unified hierarchy: its cgroup on a v2 host,
    /// one of `legacy_cgroups` on a hybrid one.
    pub unified: Option<PathBuf>,
    /// The user's terminal (stdin), as a detached mount made from its
    /// descriptor before the run left the host's mount namespace: the
    /// console of an init that inherits it.
    pub terminal: Option<OwnedFd>,
    /// The child reading the init's program ahead (a cold image only);
    /// reaped before the init's exec, or (a failed setup) before
    /// `teardown`.
    pub prefetch: Option<Prefetch>,
    pub teardown: Teardown,
}

/// Sweeps what a dead run left: its AppArmor profile, its cgroup, the host
/// side of its veth.
pub struct Sweep;

impl state::Sweeper for Sweep {
    fn release(&mut self, r: &Resource) -> Result<()> {
        match r {
            Resource::Cgroup(path) => cgroup::remove(path),
            Resource::Link(name) => crate::network::release_link(name),
            other => apparmor::Sweep.release(other),
        }
    }
}

/// State, the private mount namespace, the layers, the init and the
/// profile, each pushed on the teardown stack as it is acquired.
pub fn acquire(cfg: &RunConfig, prep: &Prepared, log: &mut Status) -> Result<Acquired> {
    let mut teardown = Teardown::new();
    // Held from before the sweep until the run's state is gone: undone last.
    let hold = state::root::hold()?;
    teardown.push("state-root", move || hold.release().map(drop));
    if let Err(e) = state::sweep(&mut Sweep) {
        log.say(format!("warning: sweeping dead runs: {e:#}"));
    }
    let st = RunState::create(&cfg.identity.name, &mut Sweep)?;
    let state_dir = st.dir.clone();
    teardown.push("state", move || st.remove());
    fault::step("state")?;
    if let Some(v) = &cfg.network.veth {
        // Recorded before it exists, so that a sweep finds it whenever
        // fwrun dies.
        state::record(&state_dir, &Resource::Link(v.host.clone()))?;
    }
    // Made before the run leaves the host's mount namespace, where the
    // terminal's mount is.
    let terminal = terminal_tree(log);
    let (layout, cold) = mount_layers(cfg, prep, &state_dir, &mut teardown, log)?;
    let root = open_dir(&layout.root)?;
    let program = match &prep.program {
        Some(p) => p.clone(),
        None => exec::check_init(&root, Path::new(&cfg.init[0]), cfg.init_named)?,
    };
    let want = Wanted {
        init: &cfg.init,
        stop_signal: cfg.stop_signal,
        console: cfg.console,
        seccomp: cfg.kernel.seccomp,
    };
    let defaults = defaults::choose(&want, &root, &layout.root, &program, log)?;
    // Dropped (reaped) before the teardown, on every path.
    let prefetch = match cold {
        true => read_ahead(&root, &defaults.seen),
        false => None,
    };
    let planted = plant_binds(&defaults, &layout, &mut teardown);
    let envp = firmware_env(cfg, &root, log);
    if let Some(w) = &prep.aa_warning {
        log.say(w);
    }
    let profile = match (&prep.parser, &prep.profile_text) {
        (Some(parser), Some(text)) => {
            let loaded = load_profile(cfg, parser, text, &state_dir, &mut teardown)?;
            log.phase("apparmor", format!("loaded AppArmor profile {}", loaded.0));
            Some(loaded)
        }
        _ => None,
    };
    let (cgroup, legacy_cgroups, unified) =
        make_cgroups(cfg, prep, &state_dir, &mut teardown, log)?;
    publish_facts(
        cfg,
        prep,
        &envp,
        profile.as_ref().map(|p| &p.0),
        unified.clone(),
        &state_dir,
    )?;
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
        unified,
        terminal,
        prefetch,
        teardown,
    })
}

/// The user's terminal, when stdin is one, as a detached mount of its node.
fn terminal_tree(log: &Status) -> Option<OwnedFd> {
    if !console::stdin_is_tty() {
        return None;
    }
    sys::clone_fd_tree(std::io::stdin().as_fd())
        .inspect_err(|e| {
            log.say(format!(
                "warning: the firmware has no /dev/console: its terminal is not in fwrun's mount namespace ({})",
                sys::errno_text(*e)
            ))
        })
        .ok()
}

/// The run's cgroups: on a v2 host its own cgroup, on a v1 or hybrid host
/// `fwrun-NAME` in each hierarchy; and the one in the unified hierarchy.
#[allow(clippy::type_complexity)]
fn make_cgroups(
    cfg: &RunConfig,
    prep: &Prepared,
    state_dir: &Path,
    teardown: &mut Teardown,
    log: &mut Status,
) -> Result<(Option<Cgroup>, Vec<(PathBuf, PathBuf)>, Option<PathBuf>)> {
    let (cgroup, legacy_cgroups) = match prep.hierarchy {
        Hierarchy::Unified => (
            Some(make_cgroup(cfg, state_dir, teardown, log)?),
            Vec::new(),
        ),
        // Whatever the init: its cgroup namespace is rooted there, never
        // at a hierarchy's root, where a v1 hierarchy's release_agent is.
        Hierarchy::Legacy(_) => (None, make_legacy_cgroups(cfg, state_dir, teardown, log)?),
    };
    let unified = cgroup.as_ref().map(|c| c.path.clone()).or_else(|| {
        // Last in /proc/self/cgroup ("0::"): looked for from the end.
        legacy_cgroups
            .iter()
            .rev()
            .find(|(run, _)| cgroup::is_unified(run))
            .map(|(run, _)| run.clone())
    });
    Ok((cgroup, legacy_cgroups, unified))
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
fn publish_facts(
    cfg: &RunConfig,
    prep: &Prepared,
    envp: &[CString],
    profile: Option<&String>,
    cgroup: Option<PathBuf>,
    dir: &Path,
) -> Result<()> {
    let veth = cfg.network.veth.as_ref();
    live::publish_facts(
        dir,
        &Facts {
            firmware: prep.fw.path.display().to_string(),
            net: cfg.net.label().into(),
            interface: veth.map(|v| v.host.clone()),
            address: veth.and_then(|v| v.addr.map(|a| a.to_string())),
            env: envp
                .iter()
                .map(|e| e.to_string_lossy().into_owned())
                .collect(),
            caps: crate::confine::caps::to_mask(&prep.caps),
            seccomp: cfg.kernel.seccomp,
            userns: cfg.kernel.userns,
            profile: profile.cloned(),
            cgroup,
            host_devs: prep.host_devs.clone(),
            published: cfg
                .published
                .iter()
                .map(|p| live::Port {
                    host_address: p.host.ip().to_string(),
                    host_port: p.host.port(),
                    port: p.port,
                    protocol: p.proto.label().into(),
                })
                .collect(),
        },
    )
}

/// The init's environment. TERM, unless --env gave it, becomes one the
/// firmware has a terminfo entry for (-v says which).
fn firmware_env(cfg: &RunConfig, root: &OwnedFd, log: &Status) -> Vec<CString> {
    let term = cfg
        .env
        .iter()
        .find(|(k, _)| k == "TERM")
        .map(|(_, wanted)| match cfg.term_given {
            true => {
                log.detail(format!("TERM={wanted} for the firmware, as --env gave it"));
                wanted.clone()
            }
            false => {
                let choice = if console::stdout_is_tty() {
                    terminfo::choose(root, wanted)
                } else {
                    terminfo::Choice {
                        term: "dumb".into(),
                        why: "fwrun's stdout is not a terminal (--env TERM=... sets another)"
                            .into(),
                    }
                };
                log.detail(format!(
                    "TERM={} for the firmware: {}",
                    choice.term, choice.why
                ));
                choice.term
            }
        });
    cfg.env
        .iter()
        .map(|(k, v)| {
            let v = match (k.as_str(), &term) {
                ("TERM", Some(t)) => t,
                _ => v,
            };
            // Checked for NUL bytes in the preparation.
            CString::new(format!("{k}={v}")).unwrap_or_default()
        })
        .collect()
}

/// The private mount namespace, its workspace, the lower layer and the
/// overlay. Also says whether the lower layer is an image with nothing
/// cached yet (this run attached it).
fn mount_layers(
    cfg: &RunConfig,
    prep: &Prepared,
    state_dir: &Path,
    teardown: &mut Teardown,
    log: &mut Status,
) -> Result<(Layout, bool)> {
    let label = &cfg.identity.label;
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

/// The per-run profile, recorded before it is loaded so that a sweep
/// finds it even if fwrun dies in between. Returns its name and the
/// denials reader started just before the load.
fn load_profile(
    cfg: &RunConfig,
    parser: &Path,
    text: &str,
    state_dir: &Path,
    teardown: &mut Teardown,
) -> Result<(String, Option<Denials>)> {
    let profile = cfg.identity.profile.clone();
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
) -> Result<Cgroup> {
    let path = cgroup::path_for(&cfg.identity.label, &cfg.cgroup)?;
    state::record(state_dir, &Resource::Cgroup(path.clone()))?;
    let made = cgroup::create(&path, &cfg.cgroup);
    let p = path.clone();
    teardown.push("cgroup", move || cgroup::remove(&p));
    let made = made?;
    fault::step("cgroup")?;
    log.phase("cgroup", format!("made the cgroup {}", path.display()));
    Ok(made)
}

/// On a v1 or hybrid host, `fwrun-NAME` under fwrun's own cgroup in each
/// hierarchy (where the init's cgroup namespace is rooted, and where a
/// systemd init makes its own), each recorded before it is made and
/// removed, with what the firmware made below it, in the teardown. One that cannot be made (a
/// read-only cgroup file system) is left out, with a warning.
fn make_legacy_cgroups(
    cfg: &RunConfig,
    state_dir: &Path,
    teardown: &mut Teardown,
    log: &mut Status,
) -> Result<Vec<(PathBuf, PathBuf)>> {
    let mut made = Vec::new();
    let dirs = cgroup::legacy_dirs(&cfg.identity.label);
    let records: Vec<Resource> = dirs
        .iter()
        .map(|(run, _)| Resource::Cgroup(run.clone()))
        .collect();
    state::record_all(state_dir, &records)?;
    for (run, own) in dirs {
        let result = cgroup::create_legacy(&run, &own);
        let p = run.clone();
        teardown.push("cgroup", move || cgroup::remove_legacy(&p));
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
                "made {} in {} cgroup hierarchies, for the firmware's own cgroups",
                cfg.identity.label,
                made.len()
            ),
        );
    }
    Ok(made)
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

fn open_dir(path: &Path) -> Result<OwnedFd> {
    sys::open_path(path, nix::fcntl::OFlag::O_DIRECTORY)
        .map_err(std::io::Error::from)
        .with_context(|| format!("opening {}", path.display()))
}
