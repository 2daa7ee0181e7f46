//! The link between fwrun and a child it starts (the firmware's init, or a
//! command of `fwrun enter`): a pair of connected sockets (SOCK_SEQPACKET,
//! close-on-exec), one end each. Everything between them goes over it, as
//! typed messages:
//!
//! - the lifeline: the child's first check is that fwrun's end is still
//!   open (it may have died before the child asked to die with it);
//! - the init's "ready" once its namespaces are made, and fwrun's answer,
//!   the mount namespace of its finished root, once fwrun has built it and
//!   set up what else the init waits for (its network);
//! - the descriptors the child hands fwrun (its seccomp filter's
//!   notifications; the command it started in a pid namespace);
//! - why the child failed: an exit code and one line, which fwrun reports
//!   as its own error;
//! - and, by its end, the exec: the child's end closes with the exec, so
//!   fwrun reads until the end of file and knows the program runs.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

/// One end of the link.
pub struct Channel {
    sock: OwnedFd,
}

/// Why a child failed: the exit code fwrun ends with, and one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

/// A descriptor a child hands fwrun, or fwrun a child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handed {
    /// The seccomp filter's notification descriptor.
    Listener,
}

/// What fwrun heard from a child by the time the child's end closed.
#[derive(Debug, Default)]
pub struct Heard {
    pub listener: Option<OwnedFd>,
    /// The program a child started in its own child (pid, pidfd), when it
    /// did: a command of `fwrun enter`, forked into the firmware's pid
    /// namespace last of all.
    pub started: Option<(libc::pid_t, OwnedFd)>,
    /// Set when the child failed (before or at its exec).
    pub failure: Option<Failure>,
}

/// A message's first byte says what it is.
const READY: u8 = b'R';
const WORLD: u8 = b'W';
const FAILED: u8 = b'F';
const LISTENER: u8 = b'L';
const STARTED: u8 = b'S';

/// The largest message: a failure's line is cut to fit.
const MAX: usize = 4096;

/// (fwrun's end, the child's end).
pub fn pair() -> Result<(Channel, Channel), Errno> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    Ok((Channel { sock: a }, Channel { sock: b }))
}

fn send(sock: BorrowedFd, bytes: &[u8], fd: Option<BorrowedFd>) -> Result<(), Errno> {
    crate::sys::send_with_fd(sock, bytes, fd)
}

/// One message: its bytes, and a descriptor that came with it.
type Message = (Vec<u8>, Option<OwnedFd>);

/// The next message; None at the end of file.
fn recv(sock: BorrowedFd) -> Result<Option<Message>, Errno> {
    let mut buf = vec![0u8; MAX];
    let (len, fd) = loop {
        match crate::sys::recv_with_fd(sock, &mut buf) {
            // The other end closed with a message of ours unread (a child
            // that failed before fwrun's answer came). The kernel says so
            // once, before what that end had sent: read on.
            Err(Errno::ECONNRESET) => continue,
            r => break r?,
        }
    };
    if len == 0 && fd.is_none() {
        return Ok(None);
    }
    buf.truncate(len);
    Ok(Some((buf, fd)))
}

impl Channel {
    pub fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// Another descriptor of the same end (close-on-exec).
    pub fn try_clone(&self) -> Result<Channel, Errno> {
        let sock = self
            .sock
            .try_clone()
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EBADF)))?;
        Ok(Channel { sock })
    }

    /// In a child made by a fork: close this process's copy of an end that
    /// is not its own (fwrun's end, so that the child sees fwrun go). The
    /// value itself is never dropped in the child, which execs or exits.
    pub fn close_copy(&self) {
        // SAFETY: the child's copy of a descriptor it never uses again.
        unsafe { libc::close(self.sock.as_raw_fd()) };
    }

    // --- The child's side ---------------------------------------------------

    /// Whether fwrun's end is still open.
    pub fn peer_alive(&self) -> bool {
        let mut fds = [nix::poll::PollFd::new(
            self.sock.as_fd(),
            nix::poll::PollFlags::empty(),
        )];
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO) {
            Ok(0) => true,
            Ok(_) => !fds[0]
                .revents()
                .is_some_and(|r| r.intersects(nix::poll::PollFlags::POLLHUP)),
            Err(_) => true,
        }
    }

    /// Tell fwrun that this child's namespaces are made.
    pub fn ready(&self) -> Result<(), Errno> {
        send(self.sock.as_fd(), &[READY], None)
    }

    /// Wait for the mount namespace fwrun built. Fails when fwrun went
    /// away instead.
    pub fn receive_world(&self) -> Result<OwnedFd, Errno> {
        match recv(self.sock.as_fd())? {
            Some((bytes, Some(fd))) if bytes.first() == Some(&WORLD) => Ok(fd),
            Some(_) => Err(Errno::EBADMSG),
            None => Err(Errno::EPIPE),
        }
    }

    /// Tell fwrun about the program this child started (its pid as fwrun
    /// sees it, and a pidfd).
    pub fn started(&self, pid: libc::pid_t, pidfd: BorrowedFd) -> Result<(), Errno> {
        let mut msg = vec![STARTED];
        msg.extend_from_slice(&pid.to_le_bytes());
        send(self.sock.as_fd(), &msg, Some(pidfd))
    }

    /// Hand fwrun a descriptor.
    pub fn hand(&self, what: Handed, fd: BorrowedFd) -> Result<(), Errno> {
        let tag = match what {
            Handed::Listener => LISTENER,
        };
        send(self.sock.as_fd(), &[tag], Some(fd))
    }

    /// Tell fwrun why this child failed (best effort: fwrun may be gone).
    pub fn fail(&self, f: &Failure) {
        let mut msg = Vec::with_capacity(MAX);
        msg.push(FAILED);
        msg.extend_from_slice(&f.code.to_le_bytes());
        let text = f.message.as_bytes();
        msg.extend_from_slice(&text[..text.len().min(MAX - msg.len())]);
        let _ = send(self.sock.as_fd(), &msg, None);
    }

    // --- fwrun's side -----------------------------------------------------

    /// Wait until the child says its namespaces are made. None: it said
    /// that; else what it said instead before its end closed (its failure).
    pub fn wait_ready(&self) -> Result<Option<Heard>, Errno> {
        let mut heard = Heard::default();
        while let Some((bytes, fd)) = recv(self.sock.as_fd())? {
            if bytes.first() == Some(&READY) {
                return Ok(None);
            }
            take(&mut heard, &bytes, fd);
        }
        Ok(Some(heard))
    }

    /// Hand the child the mount namespace of its finished root.
    pub fn send_world(&self, ns: BorrowedFd) -> Result<(), Errno> {
        send(self.sock.as_fd(), &[WORLD], Some(ns))
    }

    /// Read what the child says until its end closes: it exec'd, or it
    /// failed (and said why, unless it was killed). A fault injected in
    /// the child may ask fwrun to kill itself here.
    pub fn hear(&self) -> Result<Heard, Errno> {
        let mut heard = Heard::default();
        while let Some((bytes, fd)) = recv(self.sock.as_fd())? {
            take(&mut heard, &bytes, fd);
        }
        Ok(heard)
    }
}

/// One message of a child's, into what fwrun heard.
fn take(heard: &mut Heard, bytes: &[u8], fd: Option<OwnedFd>) {
    let le = |b: &[u8]| i32::from_le_bytes(b.try_into().expect("four bytes"));
    match (bytes.first().copied(), fd) {
        (Some(LISTENER), Some(fd)) => heard.listener = Some(fd),
        (Some(STARTED), Some(fd)) if bytes.len() >= 5 => {
            heard.started = Some((le(&bytes[1..5]), fd))
        }
        // The first failure is the one that counts.
        (Some(FAILED), _) if bytes.len() >= 5 && heard.failure.is_none() => {
            heard.failure = Some(Failure {
                code: le(&bytes[1..5]),
                message: String::from_utf8_lossy(&bytes[5..]).into_owned(),
            });
        }
        (Some(crate::fault::KILL_REQUEST), _) => crate::fault::kill_requested(),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_arrive_typed_and_the_end_of_file_ends_them() {
        let (fwrun, child) = pair().unwrap();
        assert!(child.peer_alive());
        let null = std::fs::File::open("/dev/null").unwrap();
        child.hand(Handed::Listener, null.as_fd()).unwrap();
        child.fail(&Failure {
            code: 127,
            message: "init '/sbin/init' was not found".into(),
        });
        let ns = std::fs::File::open("/proc/self/ns/mnt").unwrap();
        fwrun.send_world(ns.as_fd()).unwrap();
        assert!(child.receive_world().is_ok());
        child.started(42, null.as_fd()).unwrap();
        drop(child);
        let heard = fwrun.hear().unwrap();
        assert!(heard.listener.is_some());
        assert_eq!(heard.started.map(|(pid, _)| pid), Some(42));
        assert_eq!(
            heard.failure,
            Some(Failure {
                code: 127,
                message: "init '/sbin/init' was not found".into()
            })
        );
    }

    #[test]
    fn a_child_sees_fwrun_gone() {
        let (fwrun, child) = pair().unwrap();
        drop(fwrun);
        assert!(!child.peer_alive());
        assert_eq!(child.receive_world().err(), Some(Errno::EPIPE));
    }

    #[test]
    fn ready_or_the_failure_that_came_instead() {
        let (fwrun, child) = pair().unwrap();
        child.ready().unwrap();
        assert!(fwrun.wait_ready().unwrap().is_none());
        child.fail(&Failure {
            code: 125,
            message: "no".into(),
        });
        drop(child);
        let h = fwrun.wait_ready().unwrap().expect("no ready");
        assert_eq!(h.failure.map(|f| f.code), Some(125));
    }

    #[test]
    fn a_child_gone_with_a_message_unread_has_still_said_its_piece() {
        let (fwrun, child) = pair().unwrap();
        let ns = std::fs::File::open("/proc/self/ns/mnt").unwrap();
        fwrun.send_world(ns.as_fd()).unwrap();
        child.fail(&Failure {
            code: 125,
            message: "injected".into(),
        });
        drop(child);
        let h = fwrun.hear().unwrap();
        assert_eq!(h.failure.map(|f| f.message), Some("injected".into()));
    }

    #[test]
    fn a_long_failure_is_cut_to_one_message() {
        let (fwrun, child) = pair().unwrap();
        child.fail(&Failure {
            code: 125,
            message: "x".repeat(10_000),
        });
        drop(child);
        let f = fwrun.hear().unwrap().failure.unwrap();
        assert_eq!(f.code, 125);
        assert_eq!(f.message.len(), MAX - 5);
    }
}
