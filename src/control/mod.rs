//! The commands that act on a running firmware from outside, each a
//! short-lived process that finds the run by its name in its state
//! directory (`state/live.rs`): fwrun stays daemonless.
//! - `enter.rs`: `fwrun enter`, a command inside the firmware (started
//!   through process/join.rs);
//! - `list.rs`: `fwrun list`, the live runs;
//! - `stop.rs`: `fwrun stop`, as SIGTERM to the run's fwrun, then wait;
//! - `wait.rs`: `fwrun wait`, until the run is ready or has ended.

pub mod enter;
pub mod list;
pub mod stop;
pub mod wait;

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::error::fail_with;

/// Exit status of `stop` and `wait` for a run that is not running.
pub const NOT_RUNNING: i32 = 1;

pub fn not_running(name: &str) -> anyhow::Error {
    fail_with(NOT_RUNNING, format!("no run named '{name}' is running"))
}

/// Wait until the process behind `pidfd` has ended, or `until` passes;
/// whether it has ended.
pub fn ended_by(pidfd: &OwnedFd, until: Option<Instant>) -> bool {
    loop {
        let timeout = until.map_or(PollTimeout::NONE, |t| {
            PollTimeout::try_from(t.saturating_duration_since(Instant::now()))
                .unwrap_or(PollTimeout::MAX)
        });
        let mut p = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut p, timeout) {
            Ok(1) => return true,
            Ok(0) => return false,
            Err(Errno::EINTR) => continue,
            _ => return false,
        }
    }
}

/// A short, readable duration: 42s, 3m07s, 2h05m.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations() {
        assert_eq!(human(Duration::from_secs(42)), "42s");
        assert_eq!(human(Duration::from_secs(187)), "3m07s");
        assert_eq!(human(Duration::from_secs(7500)), "2h05m");
    }
}
