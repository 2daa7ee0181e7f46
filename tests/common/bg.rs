//! Running fwrun with deadlines, in the foreground (`finish`) or in the
//! background (`Bg`), for the root tests.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use super::fwrun;

/// How long one fwrun may take before the test kills it and fails.
pub const DEADLINE: Duration = Duration::from_secs(30);
/// How long a long-running firmware may take to say it is ready.
pub const READY: Duration = Duration::from_secs(10);
/// The advisory line fwrun prints in --apparmor auto mode on a host
/// without AppArmor (not an error).
pub const NO_APPARMOR: &str = "fwrun: warning: no AppArmor confinement";

/// How a fwrun ended and what it printed.
pub struct Out {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn signal(&self) -> Option<i32> {
        self.status.signal()
    }

    /// stderr's lines, without the advisory of a host without AppArmor.
    pub fn errors(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| !l.starts_with(NO_APPARMOR))
            .collect()
    }

    pub fn show(&self) -> String {
        format!(
            "{}\n--- stdout:\n{}--- stderr:\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Read all of `r` in a thread; the text arrives on the channel at its end
/// of file.
pub fn slurp<R: Read + Send + 'static>(mut r: R) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = r.read_to_end(&mut v);
        let _ = tx.send(String::from_utf8_lossy(&v).into_owned());
    });
    rx
}

/// Wait for `child` until `deadline`; past it, kill it and fail.
pub fn wait_until(child: &mut Child, deadline: Instant, what: &str) -> ExitStatus {
    loop {
        if let Some(st) = child.try_wait().expect("waiting for fwrun") {
            return st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: fwrun did not end within its deadline (killed it)");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The rest of a pipe's text, waiting at most until `deadline` (a firmware
/// process that outlived fwrun would hold the pipe open).
pub fn rest(rx: &Receiver<String>, deadline: Instant, what: &str) -> String {
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_secs(2));
    rx.recv_timeout(left)
        .unwrap_or_else(|_| panic!("{what}: fwrun's output stayed open after it ended"))
}

/// A fwrun started with its output piped and read in the background; killed
/// if dropped before it is finished.
pub struct Running {
    child: Child,
    out: Receiver<String>,
    err: Receiver<String>,
    what: String,
    finished: bool,
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Running {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Wait for its end until `deadline`; past it, kill it and fail.
    pub fn finish_by(mut self, deadline: Instant) -> Out {
        self.finished = true;
        let status = wait_until(&mut self.child, deadline, &self.what);
        Out {
            status,
            stdout: rest(&self.out, deadline, &self.what),
            stderr: rest(&self.err, deadline, &self.what),
        }
    }
}

/// Start `cmd` (a fwrun) with its stdout and stderr piped.
pub fn spawn(mut cmd: Command) -> Running {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {what}: {e}"));
    let out = slurp(child.stdout.take().unwrap());
    let err = slurp(child.stderr.take().unwrap());
    Running {
        child,
        out,
        err,
        what,
        finished: false,
    }
}

/// Run `cmd` (a fwrun) to its end, within DEADLINE.
pub fn finish(cmd: Command) -> Out {
    spawn(cmd).finish_by(Instant::now() + DEADLINE)
}

/// A fwrun in the background whose stdout is read line by line.
pub struct Bg {
    pub child: Child,
    lines: Receiver<String>,
    pub seen: Vec<String>,
    err: Receiver<String>,
    what: String,
    finished: bool,
}

impl Drop for Bg {
    /// A test that failed half-way must not leave its firmware running.
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Bg {
    pub fn start<S: AsRef<OsStr>>(args: &[S]) -> Bg {
        let mut c = fwrun();
        c.args(args);
        let what = format!("{c:?}");
        let mut child = c
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {what}: {e}"));
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let err = slurp(child.stderr.take().unwrap());
        Bg {
            child,
            lines,
            seen: Vec::new(),
            err,
            what,
            finished: false,
        }
    }

    /// Wait (with a deadline) for a line of the firmware's output.
    pub fn expect(&mut self, line: &str) {
        let deadline = Instant::now() + READY;
        while !self.seen.iter().any(|l| l == line) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(_) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!(
                        "{}: never saw {line:?}; saw {:?}; stderr: {}",
                        self.what,
                        self.seen,
                        self.err
                            .recv_timeout(Duration::from_secs(2))
                            .unwrap_or_default()
                    )
                }
            }
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: plain syscall on our own child, not yet reaped.
        assert_eq!(unsafe { libc::kill(self.pid(), sig) }, 0, "kill {sig}");
    }

    pub fn finish(mut self) -> Out {
        self.finished = true;
        let deadline = Instant::now() + DEADLINE;
        let status = wait_until(&mut self.child, deadline, &self.what);
        let stderr = rest(&self.err, deadline, &self.what);
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(l);
        }
        let mut stdout = self.seen.join("\n");
        if !stdout.is_empty() {
            stdout.push('\n');
        }
        Out {
            status,
            stdout,
            stderr,
        }
    }
}

/// A child process the test started (a fwrun, or a shell that execs one),
/// killed and reaped if the test drops it before it ended: a failing test
/// never leaves a run behind for the next one to find.
pub struct KillOnDrop {
    pub child: Child,
    done: bool,
}

impl KillOnDrop {
    pub fn new(child: Child) -> KillOnDrop {
        KillOnDrop { child, done: false }
    }

    /// Wait for its end until `deadline`; past it, kill it and fail.
    pub fn wait_by(&mut self, deadline: Instant, what: &str) -> ExitStatus {
        let st = wait_until(&mut self.child, deadline, what);
        self.done = true;
        st
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
