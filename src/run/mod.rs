//! The run, phase by phase (DESIGN.md), a file each: prepare.rs (validate,
//! preflight, render the profile) → acquire.rs (state, private mount
//! namespace, lower layer, overlay, the init read, profile, cgroups; each
//! with its undo step) → boot.rs (clone the init, supervise, again on a
//! reboot with --on-reboot restart) → finish.rs (changes, tear down,
//! denials). Each returns a value the next takes; report.rs builds the
//! --report from them. The work itself lives in the folders named after
//! its concern; this file puts the phases in order.

pub mod acquire;
pub mod boot;
pub mod finish;
pub mod prepare;
pub mod report;

use std::path::Path;

use anyhow::Result;

use crate::config::{Action, RunConfig};
use crate::control;
use crate::inspect::inits::Init;
use crate::report::status::Status;
use crate::state;
use crate::supervise;
use crate::supervise::ending::{self, Ending, Outcome, Stopping};

use acquire::Sweep;

/// Run what the configuration asks for; the exit code to end with.
pub fn run(cfg: RunConfig) -> Result<i32> {
    let mut log = Status::new(cfg.verbose, cfg.quiet);
    match &cfg.action {
        Action::Cleanup => cleanup(&log),
        Action::PrintProfile => {
            print!("{}", prepare::render_profile(&cfg)?);
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
    crate::host::preflight::check_root()?;
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

/// A run, and its --report written however it ended.
fn run_with_report(cfg: &RunConfig, firmware: &Path, log: &mut Status) -> Result<i32> {
    let report_path = cfg
        .report
        .as_deref()
        .map(crate::report::check_path)
        .transpose()?;
    let mut rep = report::begin(cfg, firmware);
    let result = launch(cfg, firmware, log, &mut rep);
    report::close(&mut rep, &result, std::mem::take(&mut log.phases));
    if let Some(path) = report_path {
        if let Err(e) = crate::report::write(&rep, &path) {
            log.say(format!("warning: {e:#}"));
        }
    }
    result
}

/// The phases in order, each taking what the ones before returned.
fn launch(
    cfg: &RunConfig,
    firmware: &Path,
    log: &mut Status,
    rep: &mut crate::report::Report,
) -> Result<i32> {
    let prep = prepare::prepare(cfg, firmware, log)?;
    report::prepared(rep, cfg, &prep);
    // Signals are read from a signalfd from here on.
    let mut sfd = supervise::block_signals()?;
    let mut acq = acquire::acquire(cfg, &prep, log)?;
    report::acquired(rep, cfg, &mut acq);
    if let Some(why) = supervise::pending_stop() {
        // Stopped before the firmware started.
        let outcome = Outcome {
            ending: Ending::Exited(0),
            stopped: Some(Stopping::before_start(why, cfg.stop_timeout, cfg.timeout)),
            sent: Vec::new(),
        };
        report::ended(rep, &outcome);
        let (code, line) = ending::conclude(&outcome);
        if let Some(line) = line {
            log.say(line);
        }
        return Ok(code);
    }
    let mut booted = boot::boot(cfg, &prep, &mut acq, &mut sfd, log)?;
    report::booted(rep, &booted);
    booted.line = booted
        .line
        .take()
        .map(|l| with_hint(l, &booted.outcome, acq.defaults.seen.init));
    let finished = finish::finish(cfg, &prep, &mut acq, &booted, log)?;
    report::finished(rep, finished);
    Ok(booted.code)
}

/// A stop that needed a kill: the line also says which stop signal the
/// init expects, when fwrun recognises the init and sent another.
fn with_hint(line: String, outcome: &Outcome, init: Option<Init>) -> String {
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
