//! The firmware's console. In pty mode the init gets a new pseudo-terminal
//! as its controlling terminal and /dev/console; fwrun puts the user's
//! terminal in raw mode (always restored), relays bytes both ways and window
//! size changes, and watches for the escape (Ctrl-] three times within a
//! second), since Ctrl-C then belongs to the firmware.

use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::termios::{self, SetArg, Termios};
use rustix::stdio::{stderr, stdin, stdout};
use rustix::termios::{tcgetwinsize, tcsetwinsize};

use crate::sys::errno_text;

/// Ctrl-]
pub const ESCAPE_BYTE: u8 = 0x1d;
const ESCAPE_PRESSES: usize = 3;
const ESCAPE_WINDOW: Duration = Duration::from_secs(1);

pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
    /// The slave's path on the host (/dev/pts/N), bound at /dev/console.
    pub slave_path: PathBuf,
}

pub fn stdin_is_tty() -> bool {
    nix::unistd::isatty(stdin()).unwrap_or(false)
}

pub fn stdout_is_tty() -> bool {
    nix::unistd::isatty(stdout()).unwrap_or(false)
}

/// Give the pty the size of the user's terminal.
pub fn copy_winsize(master: &OwnedFd) {
    if let Ok(ws) = tcgetwinsize(stdin()) {
        let _ = tcsetwinsize(master, ws);
    }
}

pub fn open_pty() -> Result<Pty> {
    let p = nix::pty::openpty(None, None)
        .map_err(|e| anyhow!("opening a pseudo-terminal: {}", errno_text(e)))?;
    for fd in [&p.master, &p.slave] {
        nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )
        .map_err(|e| anyhow!("configuring the pseudo-terminal: {}", errno_text(e)))?;
    }
    let slave_path = nix::unistd::ttyname(&p.slave)
        .map_err(|e| anyhow!("naming the pseudo-terminal: {}", errno_text(e)))?;
    copy_winsize(&p.master);
    Ok(Pty {
        master: p.master,
        slave: p.slave,
        slave_path,
    })
}

/// The user's terminal in raw mode; restored on drop.
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// Raw mode on stdin, if it is a terminal.
    pub fn enter() -> Result<Option<RawMode>> {
        if !stdin_is_tty() {
            return Ok(None);
        }
        let saved = termios::tcgetattr(stdin())
            .map_err(|e| anyhow!("reading the terminal's settings: {}", errno_text(e)))?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(stdin(), SetArg::TCSADRAIN, &raw)
            .map_err(|e| anyhow!("setting the terminal to raw mode: {}", errno_text(e)))?;
        Ok(Some(RawMode { saved }))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(stdin(), SetArg::TCSADRAIN, &self.saved);
    }
}

/// Counts Ctrl-] presses; three within a second is the escape.
#[derive(Default)]
pub struct Escape {
    presses: VecDeque<Instant>,
}

impl Escape {
    pub fn feed(&mut self, bytes: &[u8], now: Instant) -> bool {
        for &b in bytes {
            if b != ESCAPE_BYTE {
                self.presses.clear();
                continue;
            }
            self.presses.push_back(now);
            while self
                .presses
                .front()
                .is_some_and(|t| now.duration_since(*t) > ESCAPE_WINDOW)
            {
                self.presses.pop_front();
            }
            if self.presses.len() >= ESCAPE_PRESSES {
                self.presses.clear();
                return true;
            }
        }
        false
    }
}

/// Relays bytes between the user's stdin/stdout and the pty master.
pub struct Relay {
    pub master: OwnedFd,
    stdin_open: bool,
    master_open: bool,
    escape: Escape,
    /// When set, what the pty said is also kept here (for readiness).
    pub tap: Option<Vec<u8>>,
    /// Whether the pty's "\r\n" line ends are written as "\n" (fwrun's
    /// stdout is a file or a pipe, not a terminal).
    fold_crlf: bool,
    /// A "\r" at the end of the last read, held until the next byte.
    held_cr: bool,
}

/// What the relay saw.
pub enum Event {
    Nothing,
    Escape,
}

pub fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> Result<(), Errno> {
    while !buf.is_empty() {
        match nix::unistd::write(fd, buf) {
            Ok(n) => buf = &buf[n..],
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                let mut p = [PollFd::new(fd, PollFlags::POLLOUT)];
                let _ = poll(&mut p, PollTimeout::from(1000u16));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl Relay {
    pub fn new(master: OwnedFd) -> Relay {
        Relay {
            master,
            stdin_open: true,
            master_open: true,
            escape: Escape::default(),
            tap: None,
            fold_crlf: !stdout_is_tty(),
            held_cr: false,
        }
    }

    /// Whether the user's stdin is still read (false after its end).
    pub fn stdin_open(&self) -> bool {
        self.stdin_open
    }

    /// The descriptors to poll for input: (fd, is_stdin).
    pub fn watched(&self) -> Vec<(RawFd, bool)> {
        let mut v = Vec::new();
        if self.stdin_open {
            v.push((0, true));
        }
        if self.master_open {
            v.push((self.master.as_raw_fd(), false));
        }
        v
    }

    /// Input is ready on `fd` (stdin when `is_stdin`).
    pub fn ready(&mut self, is_stdin: bool) -> Event {
        let mut buf = [0u8; 8192];
        if is_stdin {
            match nix::unistd::read(stdin(), &mut buf) {
                Ok(0) | Err(_) => self.stdin_open = false,
                Ok(n) => {
                    if self.escape.feed(&buf[..n], Instant::now()) {
                        return Event::Escape;
                    }
                    let _ = write_all(self.master.as_fd(), &buf[..n]);
                }
            }
        } else {
            match nix::unistd::read(&self.master, &mut buf) {
                Ok(0) | Err(_) => self.master_open = false,
                Ok(n) => self.output(&buf[..n]),
            }
        }
        Event::Nothing
    }

    /// After the init ended: copy out what the firmware wrote last.
    pub fn drain(&mut self) {
        let _ = nix::fcntl::fcntl(
            &self.master,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        );
        let mut buf = [0u8; 8192];
        while let Ok(n) = nix::unistd::read(&self.master, &mut buf) {
            if n == 0 {
                break;
            }
            self.output(&buf[..n]);
        }
        if std::mem::take(&mut self.held_cr) {
            self.output(b"\r");
        }
    }

    /// What the pty said, to fwrun's stdout (and the tap).
    fn output(&mut self, bytes: &[u8]) {
        let folded;
        let bytes = if self.fold_crlf {
            folded = fold_crlf(bytes, &mut self.held_cr);
            &folded[..]
        } else {
            bytes
        };
        let _ = write_all(stdout(), bytes);
        crate::report::status::output_written(bytes);
        if let Some(t) = &mut self.tap {
            t.extend_from_slice(bytes);
        }
    }
}

/// `bytes` with each "\r\n" as "\n"; a "\r" at the end is held (in
/// `held`) until the next piece shows what follows it.
pub fn fold_crlf(bytes: &[u8], held: &mut bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 1);
    if std::mem::take(held) && bytes.first() != Some(&b'\n') {
        out.push(b'\r');
    }
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\r' {
            match bytes.get(i + 1) {
                Some(b'\n') => continue,
                None => {
                    *held = true;
                    continue;
                }
                _ => {}
            }
        }
        out.push(b);
    }
    out
}

/// In inherit mode, when fwrun must read the console (readiness): the
/// init's stdout and stderr are pipes, copied to fwrun's own as they come.
pub struct Tee {
    /// The read ends, with the descriptor each is copied to (fwrun's
    /// stdout or stderr).
    pipes: Vec<(OwnedFd, BorrowedFd<'static>)>,
    /// What was read since the last look.
    pub tapped: Vec<u8>,
}

impl Tee {
    /// The pipes, and the write ends the init gets as its stdout and
    /// stderr.
    pub fn open() -> Result<(Tee, OwnedFd, OwnedFd)> {
        let pipe = || {
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                .map_err(|e| anyhow!("creating the console's pipe: {}", errno_text(e)))
        };
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let tee = Tee {
            pipes: vec![(out_r, stdout()), (err_r, stderr())],
            tapped: Vec::new(),
        };
        Ok((tee, out_w, err_w))
    }

    /// The descriptors to poll for input.
    pub fn watched(&self) -> Vec<RawFd> {
        self.pipes.iter().map(|(r, _)| r.as_raw_fd()).collect()
    }

    /// Input is ready on `fd`: copy it out. A pipe at its end is dropped.
    pub fn ready(&mut self, fd: RawFd) {
        let mut buf = [0u8; 8192];
        let Some(i) = self.pipes.iter().position(|(r, _)| r.as_raw_fd() == fd) else {
            return;
        };
        match nix::unistd::read(&self.pipes[i].0, &mut buf) {
            Ok(0) | Err(_) => {
                self.pipes.remove(i);
            }
            Ok(n) => {
                let _ = write_all(self.pipes[i].1, &buf[..n]);
                crate::report::status::output_written(&buf[..n]);
                self.tapped.extend_from_slice(&buf[..n]);
            }
        }
    }

    /// After the init ended: copy out what is left, without waiting.
    pub fn drain(&mut self) {
        for (r, _) in &self.pipes {
            let _ = nix::fcntl::fcntl(
                r,
                nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
            );
        }
        for fd in self.watched() {
            while self.pipes.iter().any(|(r, _)| r.as_raw_fd() == fd) {
                let before = self.tapped.len();
                self.ready(fd);
                if self.tapped.len() == before {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_is_folded_across_reads() {
        let mut held = false;
        let mut out = fold_crlf(b"one\r\ntwo\r", &mut held);
        assert!(held);
        out.extend(fold_crlf(b"\nthree\rx\r", &mut held));
        out.extend(fold_crlf(b"y", &mut held));
        assert_eq!(out, b"one\ntwo\nthree\rx\ry");
        assert!(!held);
    }

    #[test]
    fn escape_needs_three_presses_within_a_second() {
        let t0 = Instant::now();
        let mut e = Escape::default();
        assert!(!e.feed(&[ESCAPE_BYTE, ESCAPE_BYTE], t0));
        assert!(e.feed(&[ESCAPE_BYTE], t0 + Duration::from_millis(500)));
        // Too slow.
        let mut e = Escape::default();
        assert!(!e.feed(&[ESCAPE_BYTE], t0));
        assert!(!e.feed(&[ESCAPE_BYTE], t0 + Duration::from_millis(900)));
        assert!(!e.feed(&[ESCAPE_BYTE], t0 + Duration::from_millis(1500)));
        assert!(e.feed(&[ESCAPE_BYTE], t0 + Duration::from_millis(1600)));
        // Another key in between starts over.
        let mut e = Escape::default();
        assert!(!e.feed(&[ESCAPE_BYTE, ESCAPE_BYTE, b'x', ESCAPE_BYTE], t0));
    }
}
