//! The link between fwrun and a child it starts (the firmware's init, or a
//! command of `fwrun enter`): a pair of connected sockets (SOCK_SEQPACKET,
//! close-on-exec), one end each. Everything between them goes over it, as
//! typed messages:
//!
//! - the lifeline: the child's first check is that fwrun's end is still
//!   open (it may have died before the child asked to die with it);
//! - fwrun's go, once it has set up what the child waits for;
//! - the descriptors the child hands fwrun (its seccomp filter's
//!   notifications);
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
    /// Set when the child failed (before or at its exec).
    pub failure: Option<Failure>,
}

/// A message's first byte says what it is.
const GO: u8 = b'G';
const FAILED: u8 = b'F';
const LISTENER: u8 = b'L';

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
    let (len, fd) = crate::sys::recv_with_fd(sock, &mut buf)?;
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

    /// Wait for fwrun's go. Fails when fwrun went away instead.
    pub fn wait_for_go(&self) -> Result<(), Errno> {
        match recv(self.sock.as_fd())? {
            Some((bytes, _)) if bytes.first() == Some(&GO) => Ok(()),
            Some(_) => Err(Errno::EBADMSG),
            None => Err(Errno::EPIPE),
        }
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

    /// Let the child go on.
    pub fn go(&self) -> Result<(), Errno> {
        send(self.sock.as_fd(), &[GO], None)
    }

    /// Read what the child says until its end closes: it exec'd, or it
    /// failed (and said why, unless it was killed). A fault injected in
    /// the child may ask fwrun to kill itself here.
    pub fn hear(&self) -> Result<Heard, Errno> {
        let mut heard = Heard::default();
        while let Some((bytes, fd)) = recv(self.sock.as_fd())? {
            match (bytes.first().copied(), fd) {
                (Some(LISTENER), Some(fd)) => heard.listener = Some(fd),
                (Some(FAILED), _) if bytes.len() >= 5 => {
                    let code = i32::from_le_bytes(bytes[1..5].try_into().expect("four bytes"));
                    heard.failure = Some(Failure {
                        code,
                        message: String::from_utf8_lossy(&bytes[5..]).into_owned(),
                    });
                }
                (Some(crate::fault::KILL_REQUEST), _) => crate::fault::kill_requested(),
                _ => {}
            }
        }
        Ok(heard)
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
        fwrun.go().unwrap();
        child.wait_for_go().unwrap();
        drop(child);
        let heard = fwrun.hear().unwrap();
        assert!(heard.listener.is_some());
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
        assert_eq!(child.wait_for_go(), Err(Errno::EPIPE));
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
