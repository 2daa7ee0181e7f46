//! How a run ended: why fwrun stopped the firmware (if it did), how that
//! stop went (did the firmware stop on its stop signal, or did it have to be
//! killed), how the init ended, and what that means as an exit code, a line
//! for a person and the report's `ending` and `stop`.

use std::time::Duration;

use crate::sys::signals;

/// Why fwrun stopped the firmware.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Interrupted,
    Terminated,
    HungUp,
    TimedOut,
    /// The console escape (Ctrl-] three times).
    Escaped,
    /// --ready-timeout passed before the firmware was ready.
    NotReady,
}

impl Stop {
    pub fn exit_code(self) -> i32 {
        match self {
            Stop::Interrupted | Stop::Escaped => 128 + libc::SIGINT,
            Stop::Terminated => 128 + libc::SIGTERM,
            Stop::HungUp => 128 + libc::SIGHUP,
            Stop::TimedOut | Stop::NotReady => crate::error::TIMED_OUT,
        }
    }

    /// What asked for the stop, as the start of the line that says how it
    /// went (a --timeout has its own line).
    fn describe(self) -> &'static str {
        match self {
            Stop::Interrupted => "interrupted (Ctrl-C)",
            Stop::Terminated => "terminated (SIGTERM to fwrun)",
            Stop::HungUp => "hung up (SIGHUP to fwrun)",
            Stop::TimedOut => "timed out",
            Stop::Escaped => "stopped from the console (Ctrl-] three times)",
            Stop::NotReady => "not ready within --ready-timeout",
        }
    }

    /// The request, named shortly (for a second one).
    fn short(self) -> &'static str {
        match self {
            Stop::Interrupted => "Ctrl-C",
            Stop::Terminated => "SIGTERM to fwrun",
            Stop::HungUp => "SIGHUP to fwrun",
            Stop::TimedOut => "--timeout",
            Stop::Escaped => "console escape",
            Stop::NotReady => "--ready-timeout",
        }
    }

    /// The report's word for it.
    fn word(self) -> &'static str {
        match self {
            Stop::Interrupted => "ctrl-c",
            Stop::Terminated => "sigterm",
            Stop::HungUp => "sighup",
            Stop::TimedOut => "timeout",
            Stop::Escaped => "console-escape",
            Stop::NotReady => "not-ready",
        }
    }
}

/// Why fwrun sent SIGKILL during a stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kill {
    /// The firmware was still running --stop-timeout after the stop signal.
    Deadline,
    /// Another stop request came while the firmware was stopping.
    Again(Stop),
    /// The stop signal was SIGKILL itself.
    StopSignal,
}

/// A stop fwrun began, and what it measured of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopping {
    pub why: Stop,
    /// The stop signal sent to the init; None when the stop came before
    /// the firmware started.
    pub signal: Option<i32>,
    /// Set when fwrun sent SIGKILL (the first cause only).
    pub kill: Option<Kill>,
    /// From the stop signal to the init's end.
    pub took: Option<Duration>,
    /// --stop-timeout and --timeout, for the words.
    pub stop_timeout: Duration,
    pub timeout: Option<Duration>,
}

impl Stopping {
    /// A stop that came before the firmware started: nothing was sent.
    pub fn before_start(why: Stop, stop_timeout: Duration, timeout: Option<Duration>) -> Self {
        Stopping {
            why,
            signal: None,
            kill: None,
            took: None,
            stop_timeout,
            timeout,
        }
    }
}

/// What a stop came to, read from what fwrun sent and how the init ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Stopped before the firmware started.
    NotStarted,
    /// The init ended by itself after the stop signal.
    Graceful(Duration),
    /// The init died of the SIGKILL fwrun sent.
    Killed(Kill, Duration),
    /// The init died of a SIGKILL fwrun did not send.
    KilledElsewhere(Duration),
}

impl Stopping {
    pub fn verdict(&self, ending: Ending) -> Verdict {
        let (Some(_), Some(took)) = (self.signal, self.took) else {
            return Verdict::NotStarted;
        };
        match (ending, self.kill) {
            (Ending::Signaled(libc::SIGKILL), Some(k)) => Verdict::Killed(k, took),
            (Ending::Signaled(libc::SIGKILL), None) => Verdict::KilledElsewhere(took),
            _ => Verdict::Graceful(took),
        }
    }

    /// The one line that says how the stop went; it claims only what was
    /// measured.
    pub fn line(&self, ending: Ending) -> String {
        let sig = self.signal.map(signals::name).unwrap_or_default();
        let verdict = self.verdict(ending);
        let killed = "killed (every process of it)";
        let deadline = match (self.why, self.timeout) {
            (Stop::TimedOut, Some(limit)) => Some(format!("--timeout {} expired", duration(limit))),
            (Stop::NotReady, _) => Some("not ready within --ready-timeout".to_string()),
            _ => None,
        };
        if let Some(deadline) = deadline {
            let rest = match verdict {
                Verdict::NotStarted => None,
                Verdict::Graceful(t) => Some(format!("stopped after {}", took(t))),
                Verdict::Killed(Kill::Deadline, _) => Some(format!(
                    "did not stop within {}: {killed}",
                    seconds(self.stop_timeout)
                )),
                Verdict::Killed(k, _) => Some(format!("killed at once ({})", self.kill_words(k))),
                Verdict::KilledElsewhere(t) => Some(format!(
                    "died of a SIGKILL fwrun did not send, after {}",
                    took(t)
                )),
            };
            if let Some(rest) = rest {
                return format!("{deadline}: sent {sig}; {rest}");
            }
        }
        let what = match verdict {
            Verdict::NotStarted => "stopped before the firmware started".to_string(),
            Verdict::Graceful(t) => format!("firmware stopped on {sig} after {}", took(t)),
            Verdict::Killed(Kill::Deadline, _) => format!(
                "firmware did not stop within {} of {sig}: {killed}",
                seconds(self.stop_timeout)
            ),
            Verdict::Killed(k, _) => format!("firmware killed at once ({})", self.kill_words(k)),
            Verdict::KilledElsewhere(t) => format!(
                "firmware's init died of a SIGKILL fwrun did not send, {} after {sig}",
                took(t)
            ),
        };
        format!("{}: {what}", self.why.describe())
    }

    fn kill_words(&self, k: Kill) -> String {
        match k {
            Kill::Again(w) if w == self.why => format!("second {}", w.short()),
            Kill::Again(w) => format!("{} while it was stopping", w.short()),
            Kill::StopSignal => "--stop-signal KILL".into(),
            Kill::Deadline => "--stop-timeout".into(),
        }
    }

    /// The report's `stop`.
    pub fn report(&self, ending: Ending) -> crate::report::Stop {
        let verdict = self.verdict(ending);
        let (graceful, killed_by, took) = match verdict {
            Verdict::NotStarted => (None, None, None),
            Verdict::Graceful(t) => (Some(true), None, Some(t)),
            Verdict::Killed(k, t) => (
                Some(false),
                Some(match k {
                    Kill::Deadline => "stop-timeout",
                    Kill::StopSignal => "stop-signal",
                    Kill::Again(w) => w.word(),
                }),
                Some(t),
            ),
            Verdict::KilledElsewhere(t) => (Some(false), None, Some(t)),
        };
        crate::report::Stop {
            reason: self.why.word().into(),
            signal: self.signal.map(signals::name),
            graceful,
            killed_by: killed_by.map(str::to_string),
            ms: took.map(|t| (t.as_secs_f64() * 1e6).round() / 1000.0),
        }
    }
}

/// A measured time: "12 ms" below a tenth of a second, else "0.3 s".
fn took(t: Duration) -> String {
    if t < Duration::from_millis(100) {
        format!("{} ms", t.as_millis())
    } else {
        format!("{:.1} s", t.as_secs_f64())
    }
}

/// --stop-timeout as given, in seconds: "10 s", "0.5 s".
fn seconds(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

/// --timeout in the unit a person would have written: "5m", "1h", "90s".
fn duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if d.subsec_nanos() == 0 && s >= 3600.0 && d.as_secs() % 3600 == 0 {
        format!("{}h", d.as_secs() / 3600)
    } else if d.subsec_nanos() == 0 && s >= 60.0 && d.as_secs() % 60 == 0 {
        format!("{}m", d.as_secs() / 60)
    } else {
        format!("{s}s")
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
    pub stopped: Option<Stopping>,
    /// Signals fwrun itself sent to the init (so that a death by SIGINT or
    /// SIGHUP it caused is not taken for a poweroff or a reboot).
    pub sent: Vec<i32>,
}

impl Outcome {
    /// Whether fwrun had to kill the firmware to stop it.
    pub fn killed(&self) -> bool {
        self.stopped
            .is_some_and(|s| matches!(s.verdict(self.ending), Verdict::Killed(..)))
    }
}

/// How the run ended, for the report.
pub fn ending(out: &Outcome) -> crate::report::Ending {
    let (kind, signal, stop_reason) = match (out.stopped.map(|s| s.why), out.ending) {
        (Some(Stop::TimedOut), _) => ("timeout", None, None),
        (Some(Stop::NotReady), _) => ("timeout", None, Some(Stop::NotReady.word())),
        (Some(why), _) => ("interrupted", None, Some(why.word())),
        (None, Ending::Exited(_)) => ("exited", None, None),
        (None, _) if rebooted(out) => ("rebooted", None, None),
        (None, Ending::Signaled(libc::SIGINT)) if !out.sent.contains(&libc::SIGINT) => {
            ("powered-off", None, None)
        }
        (None, Ending::Signaled(sig)) => ("signaled", Some(signals::name(sig)), None),
    };
    crate::report::Ending {
        kind: kind.into(),
        signal,
        stop_reason: stop_reason.map(str::to_string),
        error: None,
    }
}

/// The report's `stop`: null unless fwrun stopped the firmware.
pub fn stop(out: &Outcome) -> Option<crate::report::Stop> {
    out.stopped.map(|s| s.report(out.ending))
}

/// Whether the firmware rebooted itself (rather than being stopped).
pub fn rebooted(out: &Outcome) -> bool {
    out.stopped.is_none()
        && out.ending == Ending::Signaled(libc::SIGHUP)
        && !out.sent.contains(&libc::SIGHUP)
}

/// The exit code and the line to report for an outcome.
pub fn conclude(out: &Outcome) -> (i32, Option<String>) {
    if let Some(s) = out.stopped {
        return (s.why.exit_code(), Some(s.line(out.ending)));
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
            Some(format!("firmware's init died of {}", signals::name(sig))),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(ending: Ending, stopped: Option<Stopping>, sent: &[i32]) -> Outcome {
        Outcome {
            ending,
            stopped,
            sent: sent.to_vec(),
        }
    }

    /// A stop on `why` with SIGTERM, --stop-timeout 10 and --timeout 5m,
    /// that took `ms`.
    fn stopping(why: Stop, kill: Option<Kill>, ms: u64) -> Stopping {
        Stopping {
            why,
            signal: Some(libc::SIGTERM),
            kill,
            took: Some(Duration::from_millis(ms)),
            stop_timeout: Duration::from_secs(10),
            timeout: Some(Duration::from_secs(300)),
        }
    }

    const KILLED: Ending = Ending::Signaled(libc::SIGKILL);
    const OBEYED: Ending = Ending::Exited(0);

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
            (Stop::NotReady, 124),
            (Stop::Escaped, 130),
        ] {
            // The same code whether the firmware obeyed or was killed.
            for (ending, kill) in [(OBEYED, None), (KILLED, Some(Kill::Deadline))] {
                let s = stopping(stop, kill, 500);
                assert_eq!(conclude(&outcome(ending, Some(s), &[15])).0, code);
            }
        }
    }

    #[test]
    fn a_stop_says_whether_the_firmware_obeyed_or_was_killed() {
        let line = |why, kill, ms, ending| stopping(why, kill, ms).line(ending);
        assert_eq!(
            line(Stop::Interrupted, None, 300, OBEYED),
            "interrupted (Ctrl-C): firmware stopped on SIGTERM after 0.3 s"
        );
        assert_eq!(
            line(Stop::Terminated, None, 12, Ending::Signaled(libc::SIGHUP)),
            "terminated (SIGTERM to fwrun): firmware stopped on SIGTERM after 12 ms"
        );
        assert_eq!(
            line(Stop::HungUp, Some(Kill::Deadline), 10_004, KILLED),
            "hung up (SIGHUP to fwrun): firmware did not stop within 10 s of SIGTERM: \
             killed (every process of it)"
        );
        assert_eq!(
            line(
                Stop::Interrupted,
                Some(Kill::Again(Stop::Interrupted)),
                800,
                KILLED
            ),
            "interrupted (Ctrl-C): firmware killed at once (second Ctrl-C)"
        );
        assert_eq!(
            line(
                Stop::Escaped,
                Some(Kill::Again(Stop::Terminated)),
                800,
                KILLED
            ),
            "stopped from the console (Ctrl-] three times): firmware killed at once \
             (SIGTERM to fwrun while it was stopping)"
        );
        assert_eq!(
            line(Stop::TimedOut, None, 1_234, OBEYED),
            "--timeout 5m expired: sent SIGTERM; stopped after 1.2 s"
        );
        assert_eq!(
            line(Stop::TimedOut, Some(Kill::Deadline), 10_001, KILLED),
            "--timeout 5m expired: sent SIGTERM; did not stop within 10 s: \
             killed (every process of it)"
        );
        assert_eq!(
            line(
                Stop::TimedOut,
                Some(Kill::Again(Stop::Interrupted)),
                5,
                KILLED
            ),
            "--timeout 5m expired: sent SIGTERM; killed at once (Ctrl-C while it was stopping)"
        );
        // A kill fwrun sent that came after the init had ended by itself
        // is no kill; a SIGKILL from elsewhere is not called fwrun's.
        assert!(line(Stop::Interrupted, Some(Kill::Deadline), 9_999, OBEYED)
            .ends_with("firmware stopped on SIGTERM after 10.0 s"));
        assert_eq!(
            line(Stop::Terminated, None, 2_000, KILLED),
            "terminated (SIGTERM to fwrun): firmware's init died of a SIGKILL fwrun did \
             not send, 2.0 s after SIGTERM"
        );
        let early = Stopping::before_start(Stop::HungUp, Duration::from_secs(10), None);
        assert_eq!(
            early.line(OBEYED),
            "hung up (SIGHUP to fwrun): stopped before the firmware started"
        );
    }

    #[test]
    fn the_report_records_the_stop() {
        let s = stopping(Stop::TimedOut, Some(Kill::Deadline), 1_500).report(KILLED);
        assert_eq!(
            (s.reason.as_str(), s.signal.as_deref(), s.graceful),
            ("timeout", Some("SIGTERM"), Some(false))
        );
        assert_eq!(
            (s.killed_by.as_deref(), s.ms),
            (Some("stop-timeout"), Some(1500.0))
        );
        let s = stopping(Stop::Interrupted, None, 42).report(OBEYED);
        assert_eq!(
            (s.graceful, s.killed_by, s.ms),
            (Some(true), None, Some(42.0))
        );
        let s = stopping(Stop::Interrupted, Some(Kill::Again(Stop::Interrupted)), 1).report(KILLED);
        assert_eq!(s.killed_by.as_deref(), Some("ctrl-c"));
        let s = Stopping::before_start(Stop::Terminated, Duration::from_secs(1), None);
        let s = s.report(OBEYED);
        assert_eq!((s.signal, s.graceful, s.ms), (None, None, None));
        let out = outcome(
            KILLED,
            Some(stopping(Stop::HungUp, Some(Kill::Deadline), 3)),
            &[1, 9],
        );
        assert!(out.killed());
        assert!(!outcome(KILLED, None, &[]).killed());
    }

    #[test]
    fn durations_read_as_written() {
        assert_eq!(duration(Duration::from_secs(300)), "5m");
        assert_eq!(duration(Duration::from_secs(7200)), "2h");
        assert_eq!(duration(Duration::from_secs(90)), "90s");
        assert_eq!(duration(Duration::from_secs(1)), "1s");
        assert_eq!(duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(seconds(Duration::from_secs(10)), "10 s");
        assert_eq!(seconds(Duration::from_millis(500)), "0.5 s");
        assert_eq!(took(Duration::from_millis(99)), "99 ms");
        assert_eq!(took(Duration::from_millis(260)), "0.3 s");
    }
}
