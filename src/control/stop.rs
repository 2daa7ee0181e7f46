//! `fwrun stop NAME`: ask a run to stop as SIGTERM to its fwrun would (its
//! init gets the run's --stop-signal, then SIGKILL after --stop-timeout),
//! and wait until the run has ended and torn everything down. `--kill`, or
//! `--timeout` once it passes, sends a second SIGTERM, which kills the
//! firmware at once, as a second Ctrl-C does; it is sent once the run says
//! it is stopping, so that the two signals are never merged into one.

use std::time::{Duration, Instant};

use anyhow::Result;

use crate::control::{ended_by, not_running};
use crate::host::preflight;
use crate::state::live::{self, Live, Phase};
use crate::sys::{errno_text, pidfd_signal};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopOptions {
    pub name: String,
    pub kill: bool,
    /// Kill the firmware if it is still running after this long.
    pub timeout: Option<Duration>,
}

/// How often the run's state is read while a kill waits for it.
const LOOK: Duration = Duration::from_millis(10);

pub fn stop(opts: &StopOptions) -> Result<i32> {
    preflight::check_root()?;
    let run = live::find(&opts.name)?.ok_or_else(|| not_running(&opts.name))?;
    signal(&run)?;
    let kill_at = match (opts.kill, opts.timeout) {
        (true, _) => Some(Instant::now()),
        (false, t) => t.map(|t| Instant::now() + t),
    };
    if let Some(at) = kill_at {
        if !ended_by(&run.pidfd, Some(at)) {
            // The first SIGTERM must have been seen before the second is
            // sent, or the kernel would keep only one.
            while run.phase() != Phase::Stopping
                && !ended_by(&run.pidfd, Some(Instant::now() + LOOK))
            {}
            signal(&run)?;
        }
    }
    ended_by(&run.pidfd, None);
    Ok(0)
}

fn signal(run: &Live) -> Result<()> {
    match pidfd_signal(&run.pidfd, libc::SIGTERM) {
        // It has just ended by itself.
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(anyhow::anyhow!(
            "signalling run '{}' (fwrun pid {}): {}",
            run.name,
            run.pid,
            errno_text(e)
        )),
    }
}
