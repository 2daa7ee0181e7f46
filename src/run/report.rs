//! The run's --report, built from what each phase returned: filled in as
//! the phases return their values, so that a run that failed half-way
//! still reports what it had reached, and written however it ended.

use std::path::Path;
use std::time::SystemTime;

use crate::config::RunConfig;
use crate::confine::caps as capabilities;
use crate::host::cgroup::{self, Hierarchy};
use crate::report::{self, CgroupLimits, Report};
use crate::run::acquire::Acquired;
use crate::run::boot::Booted;
use crate::run::finish::Finished;
use crate::run::prepare::Prepared;
use crate::supervise::ending::{self, Outcome};

/// The report as the run starts: what the command line said.
pub fn begin(cfg: &RunConfig, firmware: &Path) -> Report {
    let mut rep = Report::begin(
        &cfg.identity.name,
        firmware,
        cfg.init.iter().map(|a| a.to_string_lossy().into_owned()),
        format!("{:?}", cfg.apparmor.mode).to_lowercase(),
    );
    rep.network.mode = cfg.net.label().into();
    rep.kernel = report::Kernel {
        cmdline: cfg.kernel.cmdline.clone(),
        kmsg_file: cfg.kernel.kmsg.as_ref().map(|p| p.display().to_string()),
        kmsg_records: 0,
        modules: if cfg.kernel.fake_modules {
            "fake"
        } else {
            "refuse"
        }
        .into(),
        modules_faked: 0,
    };
    rep.network.published = cfg
        .published
        .iter()
        .map(|p| report::Published {
            host_address: p.host.ip().to_string(),
            host_port: p.host.port(),
            port: p.port,
            protocol: p.proto.label().into(),
        })
        .collect();
    rep
}

/// The firmware (its canonical path, its kind), the cgroup layer the host
/// allows, the capabilities the init keeps.
pub fn prepared(rep: &mut Report, cfg: &RunConfig, prep: &Prepared) {
    rep.firmware.path = prep.fw.path.display().to_string();
    rep.firmware.kind = Some(prep.fw.kind.label().to_string());
    if let Hierarchy::Legacy(why) = &prep.hierarchy {
        rep.cgroup.none_because = Some(why.clone());
    }
    let c = &mut rep.confinement;
    c.capabilities = prep
        .caps
        .iter()
        .map(|c| capabilities::short_name(*c))
        .collect();
    c.dropped_capabilities = capabilities::dropped(&prep.caps)
        .into_iter()
        .map(capabilities::short_name)
        .collect();
    c.seccomp = cfg.kernel.seccomp;
}

/// The profile loaded, the cgroup made, what was read from the init.
pub fn acquired(rep: &mut Report, cfg: &RunConfig, acq: &mut Acquired) {
    rep.apparmor.profile = acq.profile.as_ref().map(|(name, _)| name.clone());
    if let Some(cg) = &acq.cgroup {
        rep.cgroup.path = Some(cg.path.display().to_string());
        let l = &cfg.cgroup;
        rep.cgroup.limits = CgroupLimits {
            memory_bytes: l.memory,
            // No swap with --memory unless --memory-swap allows some.
            memory_swap_bytes: l.memory_swap.or(l.memory.map(|_| 0)),
            pids: cgroup::pids_max(&cg.path),
            cpus: l.cpus,
            io_weight: l.io_weight,
        };
    }
    rep.detected = std::mem::take(&mut acq.defaults.detected);
}

/// How the firmware ended (or the stop that came before it started).
pub fn ended(rep: &mut Report, outcome: &Outcome) {
    rep.ending = ending::ending(outcome);
    rep.stop = ending::stop(outcome);
}

/// What the boots saw.
pub fn booted(rep: &mut Report, b: &Booted) {
    ended(rep, &b.outcome);
    rep.boots = b.boots;
    rep.ready_ms = b.ready_ms;
    rep.network.interfaces = b.interfaces.clone();
    if let Some(u) = &b.usage {
        rep.cgroup.set_usage(u);
    }
    rep.cgroup.init_oom_killed = b.oom_killed;
    rep.kernel.kmsg_records = b.kmsg_records;
    rep.kernel.modules_faked = b.modules_faked;
}

/// What the end of the run found.
pub fn finished(rep: &mut Report, f: Finished) {
    rep.changes = f.changes;
    rep.apparmor.denials = f.denials;
    rep.confinement.refused = f.refused;
}

/// The run's result, and the phases' times.
pub fn close(rep: &mut Report, result: &anyhow::Result<i32>, phases: Vec<report::Phase>) {
    rep.end = report::timestamp(SystemTime::now());
    rep.phases = phases;
    match result {
        Ok(code) => rep.exit_code = *code,
        Err(e) => rep.fail(crate::error::exit_code(e), crate::error::one_line(e)),
    }
}
