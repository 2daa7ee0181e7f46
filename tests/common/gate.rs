//! A directory bound into runs at /gate: each run's init marks itself up
//! there (`up-NAME`), then waits for a go file before it goes on.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::bg::{self, Running};
use super::{fwrun, Scratch};

pub struct Gate {
    pub dir: PathBuf,
}

impl Gate {
    /// A gate in `scratch` (its `gate` directory).
    pub fn new(scratch: &Scratch) -> Gate {
        let dir = scratch.path("gate");
        fs::create_dir(&dir).unwrap();
        Gate { dir }
    }

    /// A run of `img` named `name` (with `flags` besides) whose init marks
    /// itself up, waits for the file `go` in the gate, then runs `then`.
    pub fn start(&self, img: &Path, name: &str, flags: &[&str], go: &str, then: &str) -> Running {
        let mut script =
            format!("touch /gate/up-{name}; while [ ! -e /gate/{go} ]; do sleep 0.02; done");
        if !then.is_empty() {
            script.push_str("; ");
            script.push_str(then);
        }
        let mut c = fwrun();
        c.arg("--firmware")
            .arg(img)
            .args(["--name", name, "--timeout", "60s"])
            .args(flags)
            .arg("--bind")
            .arg(format!("{}:/gate", self.dir.display()))
            .args(["--", "/bin/sh", "-c", &script]);
        bg::spawn(c)
    }

    /// Wait until each of `names` is up.
    pub fn wait_up<S: AsRef<str>>(&self, names: &[S]) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let missing: Vec<&str> = names
                .iter()
                .map(AsRef::as_ref)
                .filter(|n| !self.dir.join(format!("up-{n}")).exists())
                .collect();
            if missing.is_empty() {
                return;
            }
            assert!(Instant::now() < deadline, "never came up: {missing:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Let the runs waiting for `go` go on.
    pub fn go(&self, go: &str) {
        fs::write(self.dir.join(go), "").unwrap();
    }
}
