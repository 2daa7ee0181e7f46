//! The init, looked up inside the firmware's root before the clone: it
//! exists (symlinks resolved inside the root, never on the host) and can be
//! executed. Its exec, at the end of the child's start-up, is process/'s.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use nix::errno::Errno;

use crate::error::{fail_with, INIT_NOT_EXECUTABLE, INIT_NOT_FOUND};
use crate::sys::{self, errno_text};

/// The init's PATH, and where a bare init name is looked up.
pub const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Check, before the clone, that the init exists inside `root` (symlinks
/// resolved inside it, never on the host) and can be executed.
/// `named` says whether the user gave the init or it is the default.
///
/// A bare name (`sh`) is looked up in the firmware's PATH, as a shell would;
/// the path found is returned.
pub fn check_init(root_fd: &OwnedFd, init: &Path, named: bool) -> Result<PathBuf> {
    let shown = init.display();
    let init = if init.is_absolute() {
        init.to_path_buf()
    } else if init.components().count() == 1 {
        PATH
            .split(':')
            .map(|dir| Path::new(dir).join(init))
            .find(|p| sys::open_in_root(root_fd, p).is_ok())
            .ok_or_else(|| {
                fail_with(
                    INIT_NOT_FOUND,
                    format!(
                        "init '{shown}' was not found in the firmware's PATH ({}): give its full path after --",
                        PATH
                    ),
                )
            })?
    } else {
        return Err(crate::error::fail(format!(
            "init '{shown}' must be an absolute path inside the firmware, or a bare name to look up in its PATH"
        )));
    };
    let init = init.as_path();
    let fd = match sys::open_in_root(root_fd, init) {
        Ok(fd) => fd,
        Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP) if !named => {
            return Err(crate::error::fail(format!(
                "the firmware has no {shown}, so it does not look like a firmware root: give its init after -- (e.g. -- /bin/sh)"
            )))
        }
        Err(e @ (Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP)) => {
            return Err(fail_with(
                INIT_NOT_FOUND,
                format!(
                    "init '{shown}' was not found in the firmware ({}): give the init's path inside the firmware after --",
                    errno_text(e)
                ),
            ))
        }
        Err(e) => return Err(anyhow!("looking up init '{shown}' in the firmware: {}", errno_text(e))),
    };
    let st = nix::sys::stat::fstat(&fd)
        .map_err(|e| anyhow!("looking up init '{shown}': {}", errno_text(e)))?;
    let fmt = st.st_mode & libc::S_IFMT;
    if fmt == libc::S_IFDIR {
        return Err(fail_with(
            INIT_NOT_EXECUTABLE,
            format!("init '{shown}' is a directory: give the path of a program"),
        ));
    }
    if fmt != libc::S_IFREG || st.st_mode & 0o111 == 0 {
        return Err(fail_with(
            INIT_NOT_EXECUTABLE,
            format!("init '{shown}' is not executable: give it an execute bit (chmod +x) or name another init"),
        ));
    }
    Ok(init.to_path_buf())
}
