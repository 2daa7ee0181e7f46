//! `fwrun wait NAME`: block until the run is ready (exit 0), has ended
//! before it was (1), or the timeout passes (124). It watches the run's
//! state directory with inotify (the state file is renamed into place) and
//! its fwrun through a pidfd; a run that has not started yet is looked for
//! every [`LOOK`] for [`START_GRACE`] at most.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use crate::control::NOT_RUNNING;
use crate::error::{fail_with, TIMED_OUT};
use crate::host::preflight;
use crate::state::live::{self, Live, Phase};
use crate::sys::errno_text;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitOptions {
    pub name: String,
    pub timeout: Option<Duration>,
}

/// How long a run that does not exist yet is waited for.
pub const START_GRACE: Duration = Duration::from_secs(10);
/// How often the state is read when no event comes.
const LOOK: Duration = Duration::from_millis(100);

pub fn wait(opts: &WaitOptions) -> Result<i32> {
    preflight::check_root()?;
    let begin = Instant::now();
    let deadline = opts.timeout.map(|t| begin + t);
    let inotify = Watcher::new()?;
    let mut seen: Option<Live> = None;
    loop {
        if seen.is_none() {
            if let Some(run) = live::find(&opts.name)? {
                inotify.watch(&run.dir);
                seen = Some(run);
            } else if begin.elapsed() > START_GRACE {
                return Err(fail_with(
                    NOT_RUNNING,
                    format!("no run named '{}' started", opts.name),
                ));
            }
        }
        if let Some(run) = &seen {
            if run.phase() == Phase::Ready {
                return Ok(0);
            }
            if !run.still_live() {
                return Err(ended(&opts.name));
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(fail_with(
                TIMED_OUT,
                format!(
                    "run '{}' was not ready within {:.1} s",
                    opts.name,
                    opts.timeout.unwrap_or_default().as_secs_f64()
                ),
            ));
        }
        let next = [Some(Instant::now() + LOOK), deadline]
            .into_iter()
            .flatten()
            .min()
            .expect("one instant at least");
        inotify.wait(seen.as_ref().map(|r| &r.pidfd), next);
    }
}

fn ended(name: &str) -> anyhow::Error {
    fail_with(
        NOT_RUNNING,
        format!("run '{name}' ended before it was ready"),
    )
}

/// An inotify instance watching run directories for their state file.
struct Watcher(Inotify);

impl Watcher {
    fn new() -> Result<Watcher> {
        Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
            .map(Watcher)
            .map_err(|e| anyhow!("watching the run's state (inotify): {}", errno_text(e)))
    }

    /// Wake on a file renamed into `dir` or written there, or its removal.
    fn watch(&self, dir: &Path) {
        let mask = AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_CLOSE_WRITE
            | AddWatchFlags::IN_DELETE_SELF
            | AddWatchFlags::IN_MOVE_SELF;
        // A failed watch only means a slower wake.
        let _ = self.0.add_watch(dir, mask);
    }

    /// Sleep until an event, the end of `pidfd`'s process, or `until`.
    fn wait(&self, pidfd: Option<&OwnedFd>, until: Instant) {
        let timeout = PollTimeout::try_from(until.saturating_duration_since(Instant::now()))
            .unwrap_or(PollTimeout::MAX);
        let events = PollFlags::POLLIN;
        let _ = match pidfd {
            Some(p) => poll(
                &mut [
                    PollFd::new(self.0.as_fd(), events),
                    PollFd::new(p.as_fd(), events),
                ],
                timeout,
            ),
            None => poll(&mut [PollFd::new(self.0.as_fd(), events)], timeout),
        };
        // The events only wake the loop: drain them.
        let mut buf = [0u8; 4096];
        while nix::unistd::read(&self.0, &mut buf).is_ok_and(|n| n > 0) {}
    }
}
