//! Phase 9 of the run: what the firmware changed (read while its layers
//! are still mounted), the teardown in reverse order of acquisition, then
//! what fwrun says about the run: how it ended, what it refused, what
//! AppArmor denied.

use anyhow::{anyhow, Result};

use crate::config::RunConfig;
use crate::confine::{denials, notify};
use crate::host::overlay;
use crate::report::changes::{self, Change};
use crate::report::status::Status;
use crate::report::{self, Denial, Refused};
use crate::run::acquire::Acquired;
use crate::run::boot::Booted;
use crate::run::prepare::Prepared;

/// What the end of the run found, for the report.
pub struct Finished {
    /// What the firmware changed in its root, when asked for.
    pub changes: Option<Vec<Change>>,
    /// What AppArmor denied, when a profile was loaded.
    pub denials: Vec<Denial>,
    pub refused: Vec<Refused>,
}

/// Read the changes, tear down, then say what happened.
pub fn finish(
    cfg: &RunConfig,
    prep: &Prepared,
    acq: &mut Acquired,
    booted: &Booted,
    log: &mut Status,
) -> Result<Finished> {
    let mut found = None;
    if cfg.changes || cfg.report.is_some() {
        overlay::remove_planted(&acq.planted);
        let upper = match &prep.rw_dir {
            Some(d) => d.join("upper"),
            None => acq.layout.workspace.join("upper"),
        };
        let list = changes::scan(&upper, &acq.layout.lower);
        if cfg.changes {
            // Asked for, so said even under -q.
            eprint!("{}", changes::listing(&list));
        }
        found = Some(list);
    }
    if let Some((_, Some(d))) = acq.profile.as_mut() {
        d.settle();
    }
    acq.prefetch.take();
    let failures = acq.teardown.run();
    log.phase("teardown", "tore down");
    if let (Some(cg), Some(u)) = (&acq.cgroup, &booted.usage) {
        let mut info = report::CgroupInfo {
            path: Some(cg.path.display().to_string()),
            ..Default::default()
        };
        info.set_usage(u);
        if let Some(line) = info.summary() {
            log.detail(line);
        }
    }
    if let Some(line) = &booted.line {
        log.say(line);
    }
    for line in notify::summary_lines(&booted.refused, cfg.verbose) {
        log.say(line);
    }
    let mut denied = Vec::new();
    if let Some((profile, Some(d))) = &acq.profile {
        for line in denials::summary_lines(profile, d) {
            log.say(line);
        }
        denied = denials::for_report(d);
    }
    if !failures.is_empty() {
        return Err(anyhow!("tearing down: {}", failures.join("; ")));
    }
    Ok(Finished {
        changes: found,
        denials: denied,
        refused: booted
            .refused
            .kinds()
            .iter()
            .map(|(r, count)| Refused {
                syscall: r.syscall.clone(),
                target: r.target.clone(),
                reason: r.reason.clone(),
                count: *count,
                routine: r.routine.map(String::from),
            })
            .collect(),
    })
}
