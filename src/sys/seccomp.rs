//! The seccomp user-notification ioctls on a filter's listener descriptor
//! (libc names the structures, nix and rustix have no calls for them).

use std::os::fd::{AsRawFd, BorrowedFd};

use nix::errno::Errno;

/// Receive the next notification (SECCOMP_IOCTL_NOTIF_RECV). ENOENT: the
/// caller went away (a signal, or it died).
pub fn receive(listener: BorrowedFd) -> Result<libc::seccomp_notif, Errno> {
    // SAFETY: a zeroed struct of the size the kernel writes, as it asks.
    let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: ioctl on a listener the caller holds, with a valid struct.
    if unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_RECV,
            &mut req,
        )
    } < 0
    {
        return Err(Errno::last());
    }
    Ok(req)
}

/// Whether the notification `id` is still pending (its caller is still
/// waiting in the call), SECCOMP_IOCTL_NOTIF_ID_VALID.
pub fn still_valid(listener: BorrowedFd, id: u64) -> bool {
    // SAFETY: ioctl on a listener the caller holds, with a valid id.
    unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_ID_VALID,
            &id,
        ) == 0
    }
}

/// Answer the notification `id`: let the call go ahead (`CONTINUE`), or
/// return `-errno` (0: success without doing anything).
pub fn answer(listener: BorrowedFd, id: u64, continue_call: bool, errno: i32) {
    let mut resp = libc::seccomp_notif_resp {
        id,
        val: 0,
        error: 0,
        flags: 0,
    };
    if continue_call {
        resp.flags = libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32;
    } else {
        resp.error = -errno;
    }
    // SAFETY: ioctl on a listener the caller holds, with a valid struct.
    // ENOENT: the caller went away meanwhile; nothing to do.
    unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND,
            &mut resp,
        )
    };
}
