//! poll(2) over descriptors named by number. nix's poll takes entries that
//! borrow their descriptors for as long as the array lives; the supervisor's
//! array names the descriptors of objects it then acts on mutably, and
//! keeps a place (-1) for a watcher that is absent, so that each watcher's
//! entry stays at its index.

use nix::errno::Errno;

/// Wait up to `timeout_ms` (-1: no limit) for the events of `fds`; how
/// many entries have some.
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> Result<usize, Errno> {
    // SAFETY: the kernel reads fds.len() entries and writes their revents,
    // all within the slice. It only looks at the descriptors: a negative
    // number is skipped, one that names no descriptor comes back POLLNVAL.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    Errno::result(n).map(|n| n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn an_absent_entry_keeps_its_place() {
        let (r, w) = nix::unistd::pipe().unwrap();
        let entry = |fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let mut fds = [entry(-1), entry(r.as_raw_fd())];
        assert_eq!(poll(&mut fds, 0), Ok(0));
        nix::unistd::write(&w, b"x").unwrap();
        assert_eq!(poll(&mut fds, -1), Ok(1));
        assert_eq!(fds[0].revents, 0);
        assert_eq!(fds[1].revents, libc::POLLIN);
    }
}
