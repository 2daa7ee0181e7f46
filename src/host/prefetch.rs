//! The init's program read ahead while the run sets itself up.
//!
//! An image that no other run holds gets a new superblock with nothing
//! cached. The init's exec would then fault its program in one read-around
//! at a time, each a round trip through the loop device, and for ext2 each
//! preceded by the indirect blocks that map it, read one by one. Asked from
//! fwrun itself, those reads would hold up the launcher as much as the exec.
//!
//! So a child process asks for them (readahead(2) of the whole program and
//! of its dynamic loader) while fwrun goes on with the run's profile, its
//! cgroups and the clone. By the time the init is exec'd its pages are in
//! the image's page cache, or on their way there. A directory or an image
//! another run holds is served from a warm cache: no child is made then.
//!
//! The child (process/spawn.rs's reader) shares fwrun's memory (no page
//! table is copied, and fwrun's writes after the clone take no
//! copy-on-write faults) and its descriptor table (it holds no copy of
//! fwrun's descriptors, so no lock of fwrun's is held by anyone else). It
//! dies with fwrun and has no exit signal, so the supervisor's SIGCHLD is
//! not woken for it. fwrun reaps it while the init's child sets itself
//! up, before that child may exec: once the init runs, it is fwrun's only
//! child.

use std::fs::File;
use std::os::fd::AsRawFd;

use crate::process::spawn::{self, Reader};

/// How much of a file is read ahead at most: an init larger than this
/// has its start read, which is what its exec touches first.
const AT_MOST: u64 = 32 << 20;

/// The child reading ahead: reaped by [`Prefetch::finish`], or killed and
/// reaped when dropped. Holds the files open until the child is gone.
pub struct Prefetch {
    // Dropped first: the child is gone before the files close.
    reader: Reader,
    _files: Vec<File>,
}

/// Read `files` ahead in a child. None when there is nothing to read or
/// the child could not be made (the run goes on, only slower).
pub fn start(files: Vec<File>) -> Option<Prefetch> {
    let reads: Vec<_> = files
        .iter()
        .filter_map(|f| {
            let meta = f.metadata().ok()?;
            let len = meta.len().min(AT_MOST);
            (meta.is_file() && len > 0).then_some((f.as_raw_fd(), len as usize))
        })
        .collect();
    let reader = spawn::read_ahead(reads)?;
    Some(Prefetch {
        reader,
        _files: files,
    })
}

impl Prefetch {
    /// Let the child finish its reading, and reap it.
    pub fn finish(self) {
        self.reader.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::state::scratch::unlinked_file;

    #[test]
    fn nothing_to_read_makes_no_child() {
        let f = unlinked_file("prefetch");
        assert!(start(vec![f]).is_none());
        assert!(start(Vec::new()).is_none());
        let dev_null = File::open("/dev/null").unwrap();
        assert!(start(vec![dev_null]).is_none(), "not a regular file");
    }
}
