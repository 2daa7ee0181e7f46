//! sigpending(2): the signals raised for fwrun while it blocks them. nix
//! has no call for it, and rustix keeps its own out of its public API.

use nix::sys::signal::SigSet;

/// The signals pending for this thread or the process.
pub fn pending() -> SigSet {
    // SAFETY: an all-zero sigset_t is a valid, empty set; sigpending writes
    // into the set it is given and nowhere else, and leaves it as it was
    // if it fails.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigpending(&mut set);
        SigSet::from_sigset_t_unchecked(set)
    }
}
