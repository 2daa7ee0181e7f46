//! Supervision: wait for the init, forward signals, stop the firmware on
//! Ctrl-C, SIGTERM, SIGHUP or --timeout (stop signal first, SIGKILL of the
//! whole pid namespace after --stop-timeout; a second Ctrl-C kills at once).
//!
//! fwrun reads its signals from a signalfd: they are blocked from the start,
//! so none is lost between setup and supervision, and no handler thread
//! exists that a clone could copy in the middle of its work.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::console::{Event, Relay};
use crate::denials::Denials;
use crate::sys::{errno_text, pidfd_signal};

/// The signals fwrun handles itself (stop) or forwards to the init.
const STOP: &[Signal] = &[Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];
const FORWARD: &[Signal] = &[
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGQUIT,
    Signal::SIGCONT,
    Signal::SIGWINCH,
];

fn handled() -> SigSet {
    let mut set = SigSet::empty();
    for s in STOP.iter().chain(FORWARD).chain([&Signal::SIGCHLD]) {
        set.add(*s);
    }
    set
}

/// Block the signals fwrun reads itself. Called first thing, so a Ctrl-C
/// during setup is held until supervision (or seen by [`interrupted`]).
pub fn block_signals() -> Result<SignalFd> {
    let set = handled();
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
        .map_err(|e| anyhow!("blocking signals: {}", errno_text(e)))?;
    SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| anyhow!("creating a signalfd: {}", errno_text(e)))
}

/// Whether a stop signal arrived during setup.
pub fn pending_stop() -> Option<Stop> {
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: sigpending into our set.
    unsafe { libc::sigpending(&mut set) };
    [
        (libc::SIGINT, Stop::Interrupted),
        (libc::SIGTERM, Stop::Terminated),
        (libc::SIGHUP, Stop::HungUp),
    ]
    .into_iter()
    // SAFETY: membership test on an initialised set.
    .find(|(s, _)| unsafe { libc::sigismember(&set, *s) } == 1)
    .map(|(_, why)| why)
}

/// Why fwrun stopped the firmware.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Interrupted,
    Terminated,
    HungUp,
    TimedOut,
    /// The console escape (Ctrl-] three times).
    Escaped,
}

impl Stop {
    pub fn exit_code(self) -> i32 {
        match self {
            Stop::Interrupted | Stop::Escaped => 128 + libc::SIGINT,
            Stop::Terminated => 128 + libc::SIGTERM,
            Stop::HungUp => 128 + libc::SIGHUP,
            Stop::TimedOut => crate::error::TIMED_OUT,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Stop::Interrupted => "interrupted",
            Stop::Terminated => "terminated by SIGTERM",
            Stop::HungUp => "hung up (SIGHUP)",
            Stop::TimedOut => "timed out",
            Stop::Escaped => "stopped from the console (Ctrl-] three times)",
        }
    }
}

/// How the init ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Exited(i32),
    Signaled(i32),
}

pub struct Outcome {
    pub ending: Ending,
    /// Set when fwrun stopped the firmware.
    pub stopped: Option<Stop>,
    /// Signals fwrun itself sent to the init (so that a death by SIGINT or
    /// SIGHUP it caused is not taken for a poweroff or a reboot).
    pub sent: Vec<i32>,
}

pub struct Options {
    pub stop_signal: i32,
    pub stop_timeout: Duration,
    pub timeout: Option<Duration>,
}

/// Wait for the init to end, acting on signals and deadlines meanwhile.
pub fn supervise(
    sfd: &mut SignalFd,
    pid: libc::pid_t,
    pidfd: &OwnedFd,
    opts: &Options,
    early: Option<Stop>,
    mut relay: Option<&mut Relay>,
    mut follow: Option<&mut Denials>,
) -> Result<Outcome> {
    let start = Instant::now();
    let mut out = Outcome {
        ending: Ending::Exited(0),
        stopped: None,
        sent: Vec::new(),
    };
    let mut kill_at: Option<Instant> = None;
    let send = |out: &mut Outcome, sig: i32| {
        out.sent.push(sig);
        // ESRCH: it is already gone, which the wait will tell.
        let _ = pidfd_signal(pidfd, sig);
    };
    let begin_stop = |out: &mut Outcome, kill_at: &mut Option<Instant>, why: Stop| {
        if out.stopped.is_some() {
            return;
        }
        out.stopped = Some(why);
        send(out, opts.stop_signal);
        *kill_at = Some(Instant::now() + opts.stop_timeout);
    };
    if let Some(why) = early {
        begin_stop(&mut out, &mut kill_at, why);
    }
    loop {
        if let Some(ending) = reap(pid)? {
            if let Some(r) = relay {
                r.drain();
            }
            out.ending = ending;
            return Ok(out);
        }
        let now = Instant::now();
        if let Some(t) = opts.timeout {
            if out.stopped.is_none() && now >= start + t {
                begin_stop(&mut out, &mut kill_at, Stop::TimedOut);
            }
        }
        if kill_at.is_some_and(|k| now >= k) {
            // SIGKILL of the namespace's init kills every process in it.
            send(&mut out, libc::SIGKILL);
            kill_at = None;
        }
        let next = [
            opts.timeout
                .filter(|_| out.stopped.is_none())
                .map(|t| start + t),
            kill_at,
        ]
        .into_iter()
        .flatten()
        .min();
        let wait_ms = next.map_or(-1, |n| {
            n.saturating_duration_since(Instant::now())
                .as_millis()
                .min(i32::MAX as u128) as i32
                + 1
        });
        let watched = relay.as_ref().map(|r| r.watched()).unwrap_or_default();
        let kmsg = follow.as_ref().and_then(|d| d.fd());
        let mut pfds: Vec<libc::pollfd> = std::iter::once(sfd.as_raw_fd())
            .chain(watched.iter().map(|(fd, _)| *fd))
            .chain(kmsg)
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: poll on valid descriptors.
        unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, wait_ms) };
        if kmsg.is_some() && pfds.last().is_some_and(|p| p.revents != 0) {
            if let Some(d) = follow.as_deref_mut() {
                let word = crate::denials::denied_word(crate::denials::colour());
                for den in d.read_new() {
                    eprintln!("fwrun: AppArmor {word} {}", crate::denials::describe(&den));
                }
            }
        }
        if let Some(r) = relay.as_deref_mut() {
            for (p, (_, is_stdin)) in pfds[1..].iter().zip(&watched) {
                if p.revents != 0 {
                    if let Event::Escape = r.ready(*is_stdin) {
                        if out.stopped.is_some() {
                            send(&mut out, libc::SIGKILL);
                            kill_at = None;
                        }
                        begin_stop(&mut out, &mut kill_at, Stop::Escaped);
                    }
                }
            }
        }
        while let Ok(Some(info)) = sfd.read_signal() {
            let sig = info.ssi_signo as i32;
            match sig {
                libc::SIGCHLD => {}
                libc::SIGINT | libc::SIGTERM | libc::SIGHUP => {
                    if out.stopped.is_some() {
                        // Asked twice: no more waiting.
                        send(&mut out, libc::SIGKILL);
                        kill_at = None;
                    } else {
                        let why = match sig {
                            libc::SIGINT => Stop::Interrupted,
                            libc::SIGTERM => Stop::Terminated,
                            _ => Stop::HungUp,
                        };
                        begin_stop(&mut out, &mut kill_at, why);
                    }
                }
                libc::SIGWINCH if relay.is_some() => {
                    // The pty's size follows the terminal's; the kernel tells
                    // the firmware's foreground processes.
                    if let Some(r) = relay.as_deref() {
                        crate::console::copy_winsize(&r.master);
                    }
                }
                other => send(&mut out, other),
            }
        }
    }
}

fn reap(pid: libc::pid_t) -> Result<Option<Ending>> {
    match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::Exited(_, code)) => Ok(Some(Ending::Exited(code))),
        Ok(WaitStatus::Signaled(_, sig, _)) => Ok(Some(Ending::Signaled(sig as i32))),
        Ok(_) => Ok(None),
        Err(e) => Err(anyhow!(
            "waiting for the firmware's init: {}",
            errno_text(e)
        )),
    }
}

/// How the run ended, for the report.
pub fn ending(out: &Outcome) -> crate::report::Ending {
    let (kind, signal, stop_reason) = match (out.stopped, out.ending) {
        (Some(Stop::TimedOut), _) => ("timeout", None, None),
        (Some(why), _) => (
            "interrupted",
            None,
            Some(match why {
                Stop::Interrupted => "ctrl-c",
                Stop::Terminated => "sigterm",
                Stop::HungUp => "sighup",
                Stop::Escaped | Stop::TimedOut => "console-escape",
            }),
        ),
        (None, Ending::Exited(_)) => ("exited", None, None),
        (None, _) if rebooted(out) => ("rebooted", None, None),
        (None, Ending::Signaled(libc::SIGINT)) if !out.sent.contains(&libc::SIGINT) => {
            ("powered-off", None, None)
        }
        (None, Ending::Signaled(sig)) => ("signaled", Some(crate::signals::name(sig)), None),
    };
    crate::report::Ending {
        kind: kind.into(),
        signal,
        stop_reason: stop_reason.map(str::to_string),
        error: None,
    }
}

/// Whether the firmware rebooted itself (rather than being stopped).
pub fn rebooted(out: &Outcome) -> bool {
    out.stopped.is_none()
        && out.ending == Ending::Signaled(libc::SIGHUP)
        && !out.sent.contains(&libc::SIGHUP)
}

/// The exit code and the line to report for an outcome.
pub fn conclude(out: &Outcome) -> (i32, Option<String>) {
    if let Some(why) = out.stopped {
        return (
            why.exit_code(),
            Some(format!("firmware stopped: {}", why.describe())),
        );
    }
    match out.ending {
        Ending::Exited(code) => (code, None),
        // reboot(2) in a pid namespace kills its init with SIGINT (power off,
        // halt) or SIGHUP (restart), unless fwrun sent that signal itself.
        Ending::Signaled(libc::SIGINT) if !out.sent.contains(&libc::SIGINT) => {
            (0, Some("firmware powered off".into()))
        }
        Ending::Signaled(libc::SIGHUP) if !out.sent.contains(&libc::SIGHUP) => {
            (128 + libc::SIGHUP, Some("firmware rebooted".into()))
        }
        Ending::Signaled(sig) => (
            128 + sig,
            Some(format!(
                "firmware's init died of {}",
                crate::signals::name(sig)
            )),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(ending: Ending, stopped: Option<Stop>, sent: &[i32]) -> Outcome {
        Outcome {
            ending,
            stopped,
            sent: sent.to_vec(),
        }
    }

    #[test]
    fn exit_codes() {
        assert_eq!(conclude(&outcome(Ending::Exited(3), None, &[])).0, 3);
        assert_eq!(conclude(&outcome(Ending::Signaled(11), None, &[])).0, 139);
        let off = conclude(&outcome(Ending::Signaled(libc::SIGINT), None, &[]));
        assert_eq!(off, (0, Some("firmware powered off".into())));
        let reboot = conclude(&outcome(Ending::Signaled(libc::SIGHUP), None, &[]));
        assert_eq!(reboot, (129, Some("firmware rebooted".into())));
        // A SIGINT fwrun forwarded is not a poweroff.
        assert_eq!(conclude(&outcome(Ending::Signaled(2), None, &[2])).0, 130);
        for (stop, code) in [
            (Stop::Interrupted, 130),
            (Stop::Terminated, 143),
            (Stop::HungUp, 129),
            (Stop::TimedOut, 124),
        ] {
            assert_eq!(
                conclude(&outcome(Ending::Signaled(15), Some(stop), &[15])).0,
                code
            );
        }
    }
}
