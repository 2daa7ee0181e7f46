//! Supervision: wait for the init, forward signals, stop the firmware on
//! Ctrl-C, SIGTERM, SIGHUP or --timeout (stop signal first, SIGKILL of the
//! whole pid namespace after --stop-timeout; a second Ctrl-C kills at once).
//!
//! fwrun reads its signals from a signalfd: they are blocked from the start,
//! so none is lost between setup and supervision, and no handler thread
//! exists that a clone could copy in the middle of its work.
//!
//! Beside this file: `ending.rs` (how a boot ended, and its exit code),
//! `console.rs` (the pty relay, the console's pipes), `kmsg.rs` (the
//! firmware's own kernel log), `ready.rs` (the
//! `--ready-when` conditions), `probe.rs` (an `exec:` condition's command).

pub mod console;
pub mod ending;
pub mod kmsg;
pub mod probe;
pub mod ready;

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::confine::denials::Denials;
use crate::confine::notify::Notifier;
use crate::supervise::console::{Event, Relay, Tee};
use crate::supervise::ending::{Ending, Kill, Outcome, Stop, Stopping};
use crate::supervise::ready::{Readiness, Tick};
use crate::sys::{errno_text, pidfd_signal, poll, sigpending};

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
    let set = sigpending::pending();
    [
        (Signal::SIGINT, Stop::Interrupted),
        (Signal::SIGTERM, Stop::Terminated),
        (Signal::SIGHUP, Stop::HungUp),
    ]
    .into_iter()
    .find(|(s, _)| set.contains(*s))
    .map(|(_, why)| why)
}

pub struct Options {
    pub stop_signal: i32,
    pub stop_timeout: Duration,
    pub timeout: Option<Duration>,
    /// The run's cgroup, killed whole (cgroup.kill) with the SIGKILL.
    pub cgroup: Option<std::path::PathBuf>,
}

/// What the supervisor watches besides signals and the init.
#[derive(Default)]
pub struct Watch<'a> {
    /// The pty console, relayed both ways.
    pub relay: Option<&'a mut Relay>,
    /// AppArmor denials, printed as they come (--follow-denials).
    pub follow: Option<&'a mut Denials>,
    /// The seccomp filter's calls, answered here.
    pub notify: Option<&'a mut Notifier>,
    /// Print each refused call as it happens.
    pub follow_refusals: bool,
    /// The init's output through fwrun (inherit mode with readiness).
    pub tee: Option<&'a mut Tee>,
    /// The --ready-when conditions, and the run's published state.
    pub ready: Option<&'a mut Readiness>,
    /// The firmware's own kernel log, relayed.
    pub kernel_log: Option<&'a mut kmsg::KernelLog>,
}

/// The supervisor's state while the init runs.
struct Supervisor<'a> {
    pidfd: &'a OwnedFd,
    opts: &'a Options,
    start: Instant,
    out: Outcome,
    /// When the firmware gets SIGKILL, once a stop has begun.
    kill_at: Option<Instant>,
    /// When the stop signal was sent.
    stop_sent: Option<Instant>,
}

impl Supervisor<'_> {
    fn send(&mut self, sig: i32) {
        self.out.sent.push(sig);
        // ESRCH: it is already gone, which the wait will tell.
        let _ = pidfd_signal(self.pidfd, sig);
    }

    /// Ask the init to stop; a second request kills at once.
    fn stop(&mut self, why: Stop) {
        if self.out.stopped.is_some() {
            self.kill(Kill::Again(why));
            return;
        }
        let signal = self.opts.stop_signal;
        self.out.stopped = Some(Stopping {
            why,
            signal: Some(signal),
            kill: None,
            took: None,
            stop_timeout: self.opts.stop_timeout,
            timeout: self.opts.timeout,
        });
        self.stop_sent = Some(Instant::now());
        if signal == libc::SIGKILL {
            self.kill(Kill::StopSignal);
            return;
        }
        self.send(signal);
        self.kill_at = Some(Instant::now() + self.opts.stop_timeout);
    }

    /// SIGKILL of the namespace's init kills every process in it. The
    /// first cause is the one remembered.
    fn kill(&mut self, cause: Kill) {
        if let Some(s) = self.out.stopped.as_mut() {
            s.kill.get_or_insert(cause);
        }
        self.send(libc::SIGKILL);
        if let Some(cg) = &self.opts.cgroup {
            crate::host::cgroup::kill(cg);
        }
        self.kill_at = None;
    }

    /// The init has ended: how long the stop took, if one was under way.
    fn ended(mut self, ending: Ending) -> Outcome {
        let now = Instant::now();
        if let (Some(s), Some(sent)) = (self.out.stopped.as_mut(), self.stop_sent) {
            s.took = Some(now.saturating_duration_since(sent));
        }
        self.out.ending = ending;
        self.out
    }

    /// Act on the deadlines that have passed; how long poll may wait for
    /// the next one (-1: none).
    fn deadlines(&mut self) -> i32 {
        let now = Instant::now();
        let timeout_at = self
            .opts
            .timeout
            .map(|t| self.start + t)
            .filter(|_| self.out.stopped.is_none());
        if timeout_at.is_some_and(|t| now >= t) {
            self.stop(Stop::TimedOut);
        }
        if self.kill_at.is_some_and(|k| now >= k) {
            self.kill(Kill::Deadline);
        }
        let timeout_at = timeout_at.filter(|_| self.out.stopped.is_none());
        [timeout_at, self.kill_at]
            .into_iter()
            .flatten()
            .min()
            .map_or(-1, |n| {
                n.saturating_duration_since(Instant::now())
                    .as_millis()
                    .min(i32::MAX as u128) as i32
                    + 1
            })
    }

    fn on_signal(&mut self, sig: i32, relay: Option<&Relay>) {
        match sig {
            libc::SIGCHLD => {}
            libc::SIGINT => self.stop(Stop::Interrupted),
            libc::SIGTERM => self.stop(Stop::Terminated),
            libc::SIGHUP => self.stop(Stop::HungUp),
            // The pty's size follows the terminal's; the kernel tells the
            // firmware's foreground processes.
            libc::SIGWINCH if relay.is_some() => {
                if let Some(r) = relay {
                    console::copy_winsize(&r.master);
                }
            }
            other => self.send(other),
        }
    }
}

/// Wait for the init to end, acting on signals and deadlines meanwhile.
pub fn supervise(
    sfd: &mut SignalFd,
    pid: libc::pid_t,
    pidfd: &OwnedFd,
    opts: &Options,
    mut watch: Watch,
) -> Result<Outcome> {
    let mut sup = Supervisor {
        pidfd,
        opts,
        start: Instant::now(),
        out: Outcome {
            ending: Ending::Exited(0),
            stopped: None,
            sent: Vec::new(),
        },
        kill_at: None,
        stop_sent: None,
    };
    loop {
        if let Some(ending) = reap(pid)? {
            if let Some(r) = watch.relay.as_deref_mut() {
                r.drain();
            }
            if let Some(t) = watch.tee.as_deref_mut() {
                t.drain();
            }
            if let Some(k) = watch.kernel_log.as_deref_mut() {
                k.drain();
            }
            if let Some(r) = watch.ready.as_deref_mut() {
                r.stopping();
            }
            return Ok(sup.ended(ending));
        }
        let wait_ms = earliest(sup.deadlines(), look_at_readiness(&mut sup, &mut watch));
        let fds = Polled::new(sfd, &watch);
        let mut pfds = fds.pollfds();
        let _ = poll::poll(&mut pfds, wait_ms);
        serve_notifications(&mut watch, pfds[1].revents);
        fds.on_events(&pfds, &mut watch, &mut sup);
        while let Ok(Some(info)) = sfd.read_signal() {
            sup.on_signal(info.ssi_signo as i32, watch.relay.as_deref());
        }
        if sup.out.stopped.is_some() {
            if let Some(r) = watch.ready.as_deref_mut() {
                r.stopping();
            }
        }
    }
}

/// The sooner of two poll timeouts in ms (-1: none).
fn earliest(a: i32, b: i32) -> i32 {
    match (a, b) {
        (-1, x) | (x, -1) => x,
        (a, b) => a.min(b),
    }
}

/// Readiness: feed it what the console said, stop the firmware if it was
/// not ready in time; how long poll may wait for its next look.
fn look_at_readiness(sup: &mut Supervisor, watch: &mut Watch) -> i32 {
    let Some(ready) = watch.ready.as_deref_mut() else {
        return -1;
    };
    if let Some(tap) = watch.relay.as_deref_mut().and_then(|r| r.tap.as_mut()) {
        ready.feed(tap);
        tap.clear();
    }
    if let Some(tee) = watch.tee.as_deref_mut() {
        ready.feed(&tee.tapped);
        tee.tapped.clear();
    }
    let now = Instant::now();
    match ready.tick(now) {
        Tick::TimedOut if sup.out.stopped.is_none() => {
            sup.stop(Stop::NotReady);
            -1
        }
        Tick::Wait(Some(at)) => {
            at.saturating_duration_since(now)
                .as_millis()
                .min(i32::MAX as u128) as i32
                + 1
        }
        _ => -1,
    }
}

/// The descriptors one poll watches, in order: the signalfd, the seccomp
/// notifications (the init's, then an `exec:` probe's), the firmware's
/// kernel log, the console (pty relay, or the tee's pipes), the host's
/// kernel log (AppArmor's denials).
struct Polled {
    fds: Vec<RawFd>,
    /// The relay's descriptors (fd, is_stdin), from index 4.
    relay: Vec<(RawFd, bool)>,
    /// The tee's pipes, after the relay's.
    tee: Vec<RawFd>,
    kmsg: bool,
}

impl Polled {
    fn new(sfd: &SignalFd, watch: &Watch) -> Polled {
        let relay = watch
            .relay
            .as_ref()
            .map(|r| r.watched())
            .unwrap_or_default();
        let tee = watch.tee.as_ref().map(|t| t.watched()).unwrap_or_default();
        let kmsg = watch.follow.as_ref().and_then(|d| d.fd());
        let notify = watch.notify.as_ref().map_or(-1, |n| n.fd());
        let probe = watch
            .ready
            .as_ref()
            .and_then(|r| r.probe_fd())
            .unwrap_or(-1);
        let kernel_log = watch.kernel_log.as_ref().and_then(|k| k.fd()).unwrap_or(-1);
        let fds = [sfd.as_raw_fd(), notify, probe, kernel_log]
            .into_iter()
            .chain(relay.iter().map(|(fd, _)| *fd))
            .chain(tee.iter().copied())
            .chain(kmsg)
            .collect();
        Polled {
            fds,
            relay,
            tee,
            kmsg: kmsg.is_some(),
        }
    }

    fn pollfds(&self) -> Vec<libc::pollfd> {
        self.fds
            .iter()
            .map(|&fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect()
    }

    /// The console and the kernel log, after a poll.
    fn on_events(&self, pfds: &[libc::pollfd], watch: &mut Watch, sup: &mut Supervisor) {
        if self.kmsg && pfds.last().is_some_and(|p| p.revents != 0) {
            if let Some(d) = watch.follow.as_deref_mut() {
                print_denials(d);
            }
        }
        if pfds[2].revents & libc::POLLIN != 0 {
            if let Some(r) = watch.ready.as_deref_mut() {
                r.serve_probe();
            }
        }
        if pfds[3].revents & libc::POLLIN != 0 {
            if let Some(k) = watch.kernel_log.as_deref_mut() {
                k.ready();
            }
        }
        let (relay_p, rest) = pfds[4..].split_at(self.relay.len());
        if let Some(r) = watch.relay.as_deref_mut() {
            for (p, (_, is_stdin)) in relay_p.iter().zip(&self.relay) {
                if p.revents != 0 {
                    if let Event::Escape = r.ready(*is_stdin) {
                        sup.stop(Stop::Escaped);
                    }
                }
            }
        }
        if let Some(t) = watch.tee.as_deref_mut() {
            for (p, fd) in rest.iter().zip(&self.tee) {
                if p.revents != 0 {
                    t.ready(*fd);
                }
            }
        }
    }
}

/// Answer the filter's pending call; stop watching once every process
/// under the filter is gone.
fn serve_notifications(watch: &mut Watch, revents: libc::c_short) {
    if revents & libc::POLLIN != 0 {
        if let Some(n) = watch.notify.as_deref_mut() {
            if let Some(r) = n.serve() {
                if watch.follow_refusals {
                    eprintln!("fwrun: refused {}", r.describe());
                }
            }
        }
    } else if revents & (libc::POLLHUP | libc::POLLERR) != 0 {
        watch.notify = None;
    }
}

/// --follow-denials: the denials logged since the last look.
fn print_denials(d: &mut Denials) {
    let word = crate::confine::denials::denied_word(crate::confine::denials::colour());
    for den in d.read_new() {
        eprintln!(
            "fwrun: AppArmor {word} {}",
            crate::confine::denials::describe(&den)
        );
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
