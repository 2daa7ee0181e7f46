//! `fwrun wait NAME`: block until the run is ready (exit 0), has ended
//! before it was (1), or the timeout passes (124). It watches the run's
//! state directory with inotify (the state file is renamed into place) and
//! its fwrun through a pidfd; a run that has not started yet is looked for
//! every [`LOOK`] for [`START_GRACE`] at most.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};

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
    let inotify = Inotify::new()?;
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
struct Inotify(OwnedFd);

impl Inotify {
    fn new() -> Result<Inotify> {
        // SAFETY: plain syscall; the descriptor is ours.
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
        if fd < 0 {
            return Err(anyhow!(
                "watching the run's state (inotify): {}",
                errno_text(nix::errno::Errno::last())
            ));
        }
        // SAFETY: a new descriptor.
        Ok(Inotify(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Wake on a file renamed into `dir` or written there, or its removal.
    fn watch(&self, dir: &Path) {
        let Ok(c) = CString::new(dir.as_os_str().as_bytes()) else {
            return;
        };
        let mask =
            libc::IN_MOVED_TO | libc::IN_CLOSE_WRITE | libc::IN_DELETE_SELF | libc::IN_MOVE_SELF;
        // SAFETY: a valid path; a failed watch only means a slower wake.
        unsafe { libc::inotify_add_watch(self.0.as_raw_fd(), c.as_ptr(), mask) };
    }

    /// Sleep until an event, the end of `pidfd`'s process, or `until`.
    fn wait(&self, pidfd: Option<&OwnedFd>, until: Instant) {
        let ms = until
            .saturating_duration_since(Instant::now())
            .as_millis()
            .min(i32::MAX as u128) as i32;
        let mut pfds =
            [self.0.as_raw_fd(), pidfd.map_or(-1, |p| p.as_raw_fd())].map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            });
        // SAFETY: poll on descriptors we hold (-1 is skipped).
        unsafe { libc::poll(pfds.as_mut_ptr(), 2, ms) };
        let mut buf = [0u8; 4096];
        // SAFETY: drain the events into our buffer; they only wake us.
        while unsafe { libc::read(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
    }
}
