//! The pty ioctls fwrun uses that nix does not wrap.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;

/// Unlock the pty behind `master` and open its slave through the master
/// (TIOCGPTPEER), read-write, without becoming its controlling terminal,
/// close-on-exec: the slave of this very master, whatever /dev/pts the
/// caller sees.
pub fn open_peer(master: BorrowedFd) -> Result<OwnedFd, Errno> {
    let unlock: libc::c_int = 0;
    // SAFETY: ioctls on a master the caller holds, with the arguments they
    // take (a pointer to an int; open flags).
    let slave = unsafe {
        libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock);
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if slave < 0 {
        return Err(Errno::last());
    }
    // SAFETY: a new descriptor, ours.
    Ok(unsafe { OwnedFd::from_raw_fd(slave) })
}
