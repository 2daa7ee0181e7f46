//! Status lines for a person, on stderr (`-v` says more, `-q` nothing but
//! errors), and the phases' durations that go into the report.

use std::time::Instant;

use crate::report::Phase;

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
            eprintln!("fwrun: {}", what.as_ref());
        }
    }

    /// Something to say under -v only.
    pub fn detail(&self, what: impl AsRef<str>) {
        if self.verbose {
            eprintln!("fwrun: {}", what.as_ref());
        }
    }
}
