//! The loop device ioctls (linux/loop.h) and BLKGETSIZE64. Neither nix
//! nor rustix has them; nix's ioctl macros make unsafe functions, which
//! these wrap the same way.
//!
//! Each is safe for any descriptor: the kernel reads or writes no more
//! than the struct or integer given, whose layout is the kernel's (a
//! descriptor that is no loop device is refused with ENOTTY or EINVAL).

use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use nix::errno::Errno;

const LOOP_SET_FD: libc::c_ulong = 0x4C00;
const LOOP_CLR_FD: libc::c_ulong = 0x4C01;
const LOOP_SET_STATUS64: libc::c_ulong = 0x4C04;
const LOOP_GET_STATUS64: libc::c_ulong = 0x4C05;
const BLKGETSIZE64: libc::c_ulong = 0x8008_1272;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;

pub const LO_FLAGS_READ_ONLY: u32 = 1;
pub const LO_FLAGS_AUTOCLEAR: u32 = 4;
pub const LO_NAME_SIZE: usize = 64;

/// struct loop_info64.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct LoopInfo64 {
    pub lo_device: u64,
    pub lo_inode: u64,
    pub lo_rdevice: u64,
    pub lo_offset: u64,
    pub lo_sizelimit: u64,
    pub lo_number: u32,
    pub lo_encrypt_type: u32,
    pub lo_encrypt_key_size: u32,
    pub lo_flags: u32,
    pub lo_file_name: [u8; LO_NAME_SIZE],
    pub lo_crypt_name: [u8; LO_NAME_SIZE],
    pub lo_encrypt_key: [u8; 32],
    pub lo_init: [u64; 2],
}

impl LoopInfo64 {
    /// Every field zero.
    pub const ZERO: LoopInfo64 = LoopInfo64 {
        lo_device: 0,
        lo_inode: 0,
        lo_rdevice: 0,
        lo_offset: 0,
        lo_sizelimit: 0,
        lo_number: 0,
        lo_encrypt_type: 0,
        lo_encrypt_key_size: 0,
        lo_flags: 0,
        lo_file_name: [0; LO_NAME_SIZE],
        lo_crypt_name: [0; LO_NAME_SIZE],
        lo_encrypt_key: [0; 32],
        lo_init: [0; 2],
    };
}

// The kernel's sizes: 232 and 304 bytes.
const _: () = assert!(std::mem::size_of::<LoopInfo64>() == 232);
const _: () = assert!(std::mem::size_of::<LoopConfig>() == 304);

/// struct loop_config: the backing file and its status, set in one step.
#[repr(C)]
pub struct LoopConfig<'a> {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
    /// The backing file stays open while the config names it.
    file: PhantomData<BorrowedFd<'a>>,
}

impl<'a> LoopConfig<'a> {
    /// `file` with the status `info`, at the default block size.
    pub fn new(file: BorrowedFd<'a>, info: LoopInfo64) -> LoopConfig<'a> {
        LoopConfig {
            fd: file.as_raw_fd() as u32,
            block_size: 0,
            info,
            reserved: [0; 8],
            file: PhantomData,
        }
    }

    pub fn info(&self) -> &LoopInfo64 {
        &self.info
    }
}

/// LOOP_CTL_GET_FREE on /dev/loop-control: the number of a free device
/// (made if none was).
pub fn get_free(control: impl AsFd) -> Result<u32, Errno> {
    // SAFETY: the request takes no argument.
    Errno::result(unsafe { libc::ioctl(control.as_fd().as_raw_fd(), LOOP_CTL_GET_FREE as _) })
        .map(|n| n as u32)
}

/// LOOP_CONFIGURE (Linux 5.8): attach and set the status at once.
pub fn configure(dev: impl AsFd, config: &LoopConfig) -> Result<(), Errno> {
    // SAFETY: the kernel reads one loop_config, which `config` is.
    Errno::result(unsafe { libc::ioctl(dev.as_fd().as_raw_fd(), LOOP_CONFIGURE as _, config) })
        .map(drop)
}

/// LOOP_SET_FD: attach `file`, with the default status.
pub fn set_fd(dev: impl AsFd, file: impl AsFd) -> Result<(), Errno> {
    let file = file.as_fd().as_raw_fd();
    // SAFETY: the argument is a descriptor number, no pointer.
    Errno::result(unsafe { libc::ioctl(dev.as_fd().as_raw_fd(), LOOP_SET_FD as _, file) }).map(drop)
}

/// LOOP_SET_STATUS64.
pub fn set_status(dev: impl AsFd, info: &LoopInfo64) -> Result<(), Errno> {
    // SAFETY: the kernel reads one loop_info64, which `info` is.
    Errno::result(unsafe { libc::ioctl(dev.as_fd().as_raw_fd(), LOOP_SET_STATUS64 as _, info) })
        .map(drop)
}

/// LOOP_CLR_FD: detach.
pub fn clear_fd(dev: impl AsFd) -> Result<(), Errno> {
    // SAFETY: the argument is unused (0), no pointer.
    Errno::result(unsafe { libc::ioctl(dev.as_fd().as_raw_fd(), LOOP_CLR_FD as _, 0) }).map(drop)
}

/// LOOP_GET_STATUS64.
pub fn status(dev: impl AsFd) -> Result<LoopInfo64, Errno> {
    let mut info = LoopInfo64::ZERO;
    // SAFETY: the kernel writes one loop_info64 into `info`.
    Errno::result(unsafe {
        libc::ioctl(dev.as_fd().as_raw_fd(), LOOP_GET_STATUS64 as _, &mut info)
    })?;
    Ok(info)
}

/// BLKGETSIZE64: a block device's size in bytes.
pub fn size(dev: impl AsFd) -> Result<u64, Errno> {
    let mut size: u64 = 0;
    // SAFETY: the kernel writes one u64 into `size`.
    Errno::result(unsafe { libc::ioctl(dev.as_fd().as_raw_fd(), BLKGETSIZE64 as _, &mut size) })?;
    Ok(size)
}
