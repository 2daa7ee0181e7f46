//! Descriptors fwrun knows by their number only: the one the user hands it
//! with --ready-fd, and the setup pipe that a fault injection in the child
//! writes to. nix and rustix act on borrowed or owned descriptors, which a
//! bare number is not.

use std::fs::File;
use std::io::Write;
use std::os::fd::{FromRawFd, RawFd};

use nix::errno::Errno;

/// A descriptor fwrun inherited under a number the user chose, found open
/// and made close-on-exec when the command line was read. fwrun writes to
/// it once, then closes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inherited(RawFd);

impl Inherited {
    /// Take descriptor `fd`, marking it close-on-exec so that nothing
    /// fwrun starts gets it; EBADF if no descriptor is open under that
    /// number.
    pub fn claim(fd: RawFd) -> Result<Inherited, Errno> {
        // SAFETY: F_SETFD takes no pointer and changes only the flag of the
        // descriptor; a number that names none is refused with EBADF.
        Errno::result(unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) })?;
        Ok(Inherited(fd))
    }

    /// Write `bytes` to it and close it; errors are ignored (the reader may
    /// be gone).
    pub fn write_and_close(self, bytes: &[u8]) {
        // SAFETY: the descriptor was open when claimed and fwrun never
        // closes it elsewhere: while it is open, no other descriptor of
        // fwrun's can get its number. This is its one owner from here on,
        // and closes it when done.
        let mut f = unsafe { File::from_raw_fd(self.0) };
        let _ = f.write_all(bytes);
    }
}

/// write(2) of `bytes` to descriptor number `fd`, once.
pub fn write(fd: RawFd, bytes: &[u8]) -> Result<usize, Errno> {
    // SAFETY: the kernel reads `bytes` within its length and nothing else
    // of this process's memory; a number that names no descriptor is EBADF.
    let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
    Errno::result(n).map(|n| n as usize)
}

/// Close every descriptor of this process but those in `keep` (a child
/// that must hold nothing of its parent's but what it serves).
pub fn close_all_but(keep: &[RawFd]) -> Result<(), Errno> {
    let mut keep: Vec<u32> = keep.iter().filter_map(|&k| u32::try_from(k).ok()).collect();
    keep.sort_unstable();
    keep.dedup();
    let mut from = 0u32;
    for k in keep.into_iter().chain([u32::MAX]) {
        if k > from {
            // SAFETY: close_range(2) takes no pointer; the caller owns the
            // whole descriptor table and keeps none of what is closed.
            let r = unsafe { libc::syscall(libc::SYS_close_range, from, k - 1, 0u32) };
            Errno::result(r)?;
        }
        from = k.saturating_add(1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::IntoRawFd;

    #[test]
    fn an_inherited_descriptor_is_written_once_and_closed() {
        let (r, w) = nix::unistd::pipe().unwrap();
        let raw = w.into_raw_fd();
        let fd = Inherited::claim(raw).unwrap();
        // SAFETY: F_GETFD takes no pointer.
        assert_eq!(unsafe { libc::fcntl(raw, libc::F_GETFD) }, libc::FD_CLOEXEC);
        fd.write_and_close(b"ready\n");
        let mut got = String::new();
        // End of file: the write end is closed.
        File::from(r).read_to_string(&mut got).unwrap();
        assert_eq!(got, "ready\n");
        assert_eq!(Inherited::claim(-1), Err(Errno::EBADF));
    }

    #[test]
    fn a_write_by_number() {
        let (r, w) = nix::unistd::pipe().unwrap();
        assert_eq!(write(std::os::fd::AsRawFd::as_raw_fd(&w), b"abc"), Ok(3));
        let mut buf = [0u8; 8];
        assert_eq!(nix::unistd::read(&r, &mut buf), Ok(3));
        assert_eq!(write(-1, b"x"), Err(Errno::EBADF));
    }
}
