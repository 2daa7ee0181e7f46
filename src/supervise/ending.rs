//! How a run ended: why fwrun stopped the firmware (if it did), how the init
//! ended, and what that means as an exit code, a line for a person and the
//! report's `ending`.

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

    pub fn describe(self) -> &'static str {
        match self {
            Stop::Interrupted => "interrupted",
            Stop::Terminated => "terminated by SIGTERM",
            Stop::HungUp => "hung up (SIGHUP)",
            Stop::TimedOut => "timed out",
            Stop::Escaped => "stopped from the console (Ctrl-] three times)",
            Stop::NotReady => "not ready within --ready-timeout",
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

/// How the run ended, for the report.
pub fn ending(out: &Outcome) -> crate::report::Ending {
    let (kind, signal, stop_reason) = match (out.stopped, out.ending) {
        (Some(Stop::TimedOut), _) => ("timeout", None, None),
        (Some(Stop::NotReady), _) => ("timeout", None, Some("not-ready")),
        (Some(why), _) => (
            "interrupted",
            None,
            Some(match why {
                Stop::Interrupted => "ctrl-c",
                Stop::Terminated => "sigterm",
                Stop::HungUp => "sighup",
                Stop::Escaped | Stop::TimedOut | Stop::NotReady => "console-escape",
            }),
        ),
        (None, Ending::Exited(_)) => ("exited", None, None),
        (None, _) if rebooted(out) => ("rebooted", None, None),
        (None, Ending::Signaled(libc::SIGINT)) if !out.sent.contains(&libc::SIGINT) => {
            ("powered-off", None, None)
        }
        (None, Ending::Signaled(sig)) => ("signaled", Some(crate::sys::signals::name(sig)), None),
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
                crate::sys::signals::name(sig)
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
            (Stop::NotReady, 124),
        ] {
            assert_eq!(
                conclude(&outcome(Ending::Signaled(15), Some(stop), &[15])).0,
                code
            );
        }
    }
}
