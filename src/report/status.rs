//! Status lines for a person, on stderr (`-v` says more, `-q` nothing but
//! errors), and the phases' durations that go into the report.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::report::Phase;

/// Whether the firmware's output on fwrun's stdout, a terminal, stopped
/// in the middle of a line (a prompt, a progress bar).
static LINE_OPEN: AtomicBool = AtomicBool::new(false);

/// The firmware's output has just gone to fwrun's stdout: note whether its
/// last line is unfinished.
pub fn output_written(bytes: &[u8]) {
    if let Some(&last) = bytes.last() {
        LINE_OPEN.store(last != b'\n', Ordering::Relaxed);
    }
}

/// Before a line of fwrun's own on stderr: if the firmware left a line
/// unfinished on the same terminal, end it first, so that fwrun's line
/// starts on a line of its own.
fn end_open_line() {
    if LINE_OPEN.swap(false, Ordering::Relaxed) && on_one_terminal() {
        let _ = std::io::stderr().write_all(b"\n");
    }
}

/// Whether stdout and stderr are both a terminal (the firmware's output and
/// fwrun's lines then share the screen).
fn on_one_terminal() -> bool {
    use rustix::stdio::{stderr, stdout};
    rustix::termios::isatty(stdout()) && rustix::termios::isatty(stderr())
}

pub struct Status {
    verbose: bool,
    quiet: bool,
    last: Instant,
    pub phases: Vec<Phase>,
}

impl Status {
    pub fn new(verbose: bool, quiet: bool) -> Self {
        Status {
            verbose,
            quiet,
            last: Instant::now(),
            phases: Vec::new(),
        }
    }

    /// Phase `name` ended: note its duration; say what it did under -v.
    pub fn phase(&mut self, name: &str, what: impl AsRef<str>) {
        let now = Instant::now();
        let ms = now.duration_since(self.last).as_secs_f64() * 1000.0;
        if self.verbose {
            end_open_line();
            eprintln!("fwrun: {} ({ms:.1} ms)", what.as_ref());
        }
        self.phases.push(Phase {
            name: name.to_string(),
            ms: (ms * 1000.0).round() / 1000.0,
        });
        self.last = now;
    }

    /// Something a person should know, unless -q.
    pub fn say(&self, what: impl AsRef<str>) {
        if !self.quiet {
            end_open_line();
            eprintln!("fwrun: {}", what.as_ref());
        }
    }

    /// Something to say under -v only.
    pub fn detail(&self, what: impl AsRef<str>) {
        if self.verbose {
            end_open_line();
            eprintln!("fwrun: {}", what.as_ref());
        }
    }
}
