//! Phases 1 and 2 of the run: everything checked that needs no change to
//! the system (the command line's values, the firmware opened and
//! classified, the profile rendered), then the preflight. A bad input is
//! refused here, before anything is mounted.

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::config::{AppArmorMode, Net, RunConfig};
use crate::confine::apparmor::{self, Support};
use crate::confine::caps::{self as capabilities, CapsRequest};
use crate::error::fail;
use crate::firmware::exec;
use crate::host::cgroup::{self, Hierarchy};
use crate::host::image::{self, Firmware, Kind};
use crate::host::{overlay, preflight};
use crate::network;
use crate::report::status::Status;

/// What the checks before any system change found.
pub struct Prepared {
    /// The firmware, opened once.
    pub fw: Firmware,
    /// The init to exec, once found (a directory is checked before
    /// anything is mounted, an image once its overlay is).
    pub program: Option<PathBuf>,
    pub rw_dir: Option<PathBuf>,
    /// The AppArmor parser and the rendered profile, when a profile is
    /// loaded; the warning said when the kernel has none.
    pub parser: Option<PathBuf>,
    pub profile_text: Option<String>,
    /// Said once the init is found, so that a bad input still gets exactly
    /// one line.
    pub aa_warning: Option<String>,
    pub argv: Vec<CString>,
    /// The capabilities the init keeps.
    pub caps: Vec<caps::Capability>,
    /// The devices of the host file systems bound into the firmware.
    pub host_devs: Vec<(u32, u32)>,
    /// Whether the run gets a cgroup of its own (cgroup v2 only).
    pub hierarchy: Hierarchy,
    /// --kmsg FILE, opened for appending.
    pub kmsg_file: Option<std::fs::File>,
    /// The host's sockets of --publish, bound before anything is mounted.
    pub published: Vec<network::publish::Bound>,
}

/// Validate everything that needs no system change, then preflight.
pub fn prepare(cfg: &RunConfig, firmware: &Path, log: &mut Status) -> Result<Prepared> {
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
    if cfg
        .env
        .iter()
        .any(|(k, v)| k.contains('\0') || v.contains('\0'))
    {
        return Err(fail("--env holds a NUL byte"));
    }
    preflight::check_root()?;
    preflight::check_privileges()?;
    preflight::check_overlay()?;
    network::check::check(&cfg.network)?;
    let published = network::publish::bind(&cfg.published)?;
    let hierarchy = cgroup_host(cfg, log)?;
    let fw = image::detect(firmware)?;
    preflight::check_loop_control(fw.kind.fstype().is_some())?;
    let program = match fw.kind {
        Kind::Directory => Some(exec::check_init(
            &fw.file.try_clone()?.into(),
            Path::new(&cfg.init[0]),
            cfg.init_named,
        )?),
        _ => None,
    };
    let rw_dir = cfg
        .rw_dir
        .as_deref()
        .map(overlay::check_rw_dir)
        .transpose()?;
    let (parser, aa_warning) = apparmor_plan(cfg, support)?;
    let kmsg_file = cfg.kernel.kmsg.as_deref().map(open_kmsg_file).transpose()?;
    let caps = kept_caps(cfg, log);
    say_what_the_user_namespace_changes(cfg, log);
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
        published,
        caps,
        host_devs: host_devices(cfg),
        fw,
        program,
        rw_dir,
        parser,
        profile_text,
        aa_warning,
        argv,
        kmsg_file,
    })
}

/// --kmsg FILE, created if missing and appended to.
fn open_kmsg_file(path: &Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| {
            fail(format!(
                "--kmsg '{}' cannot be written: {}: give a file fwrun may create or append to",
                path.display(),
                crate::error::io_reason(&e)
            ))
        })
}

/// The capabilities the init keeps, said under -v.
fn kept_caps(cfg: &RunConfig, log: &Status) -> Vec<caps::Capability> {
    let caps = capabilities::kept(&CapsRequest {
        allow_mknod: cfg.apparmor.allow_mknod,
        host_network: cfg.net == Net::Host,
        add: &cfg.kernel.cap_add,
        drop: &cfg.kernel.cap_drop,
    });
    log.detail(format!(
        "the init keeps every capability but {}; seccomp filter {}",
        capabilities::dropped(&caps)
            .into_iter()
            .map(capabilities::short_name)
            .collect::<Vec<_>>()
            .join(", "),
        if cfg.kernel.seccomp { "on" } else { "off" }
    ));
    caps
}

/// What a run without a user namespace of its own loses, and what one with
/// it cannot do under --net host: said, never lost silently.
fn say_what_the_user_namespace_changes(cfg: &RunConfig, log: &Status) {
    if !cfg.kernel.userns {
        log.say("warning: --userns off: the firmware is root in the host's user namespace, and only fwrun's own checks keep it off the host (for debugging)");
    } else if cfg.net == Net::Host {
        log.say("note: with --net host, the firmware cannot bind ports below 1024 nor open raw sockets: in the host's network they need the host's user namespace (--userns off gives them back, with less isolation)");
    }
}

/// The parser to load the profile with, or the warning to say when the
/// kernel has no AppArmor (a refusal under --apparmor require).
fn apparmor_plan(
    cfg: &RunConfig,
    support: Option<Support>,
) -> Result<(Option<PathBuf>, Option<String>)> {
    match (cfg.apparmor.mode, support) {
        (_, None) => Ok((None, None)),
        (_, Some(Support::Ready(p))) => Ok((Some(p), None)),
        (AppArmorMode::Require, Some(Support::Missing(why))) => Err(fail(format!(
            "--apparmor require: {why}: run on a kernel with AppArmor, or use --apparmor auto"
        ))),
        (_, Some(Support::Missing(why))) => Ok((
            None,
            Some(format!(
                "warning: no AppArmor confinement: {why}; {} (--apparmor off silences this)",
                without_apparmor(cfg)
            )),
        )),
    }
}

/// Whether the run gets a cgroup of its own; limits on a host that cannot
/// give one are refused here, before anything is touched.
fn cgroup_host(cfg: &RunConfig, log: &Status) -> Result<Hierarchy> {
    let hierarchy = cgroup::hierarchy();
    cgroup::check_host(&cfg.cgroup, &hierarchy)?;
    if let Hierarchy::Legacy(why) = &hierarchy {
        log.detail(format!(
            "no cgroup of its own for the firmware: this host has {why}; no limits or accounting"
        ));
    }
    Ok(hierarchy)
}

pub fn render_profile(cfg: &RunConfig) -> Result<String> {
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
        name: &cfg.identity.name,
        profile: &cfg.identity.profile,
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

pub fn c_string(s: &OsStr) -> Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| fail("an argument holds a NUL byte"))
}
