//! The entries of shared lower layers: `/run/fwrun/.lower-KEY`, one per
//! image in use, where KEY hashes the image's device, inode, size, mtime
//! and ctime (an image changed on disk has another KEY, so it gets a fresh
//! entry and is never read through a stale one). The entry holds one line:
//! the loop device the image is attached to. Runs of the same image mount
//! that device (the kernel gives them one superblock and one page cache);
//! the loop device, attached with autoclear, frees itself when the last of
//! their mounts goes, wherever that run died.
//!
//! Who uses an entry is told by OFD byte-range locks on its file:
//! - byte 0, the door: held by a run while it joins (reads the entry,
//!   mounts the device it names, or attaches one and writes it there) or
//!   leaves, and by a sweeper. Joining runs hold it shared, so that runs
//!   of an attached image mount it side by side; a run holds it alone to
//!   attach (one device per image), to leave and to sweep;
//! - byte 1, the users: held shared by every run from the moment it joins
//!   until it has left. A run leaving with the door held alone turns its
//!   shared lock into an exclusive one, which succeeds only when it is the
//!   last; then it removes the entry. So an entry is never removed under a
//!   run that joined it.
//!
//! OFD locks rather than flock: a run holds two locks of different kinds on
//! one file, and the conversion from shared to exclusive must be atomic (a
//! flock conversion unlocks first, so a joiner could slip in and then find
//! its entry removed). Like flock locks, they belong to the open file and go
//! when its last descriptor closes: a SIGKILLed run drops its reference,
//! and a sweep (or the next run's) removes an entry nobody holds.
//!
//! Someone who waits for the door may find, once it has it, that the entry
//! was removed meanwhile (the last user left): it checks that the file it
//! locked is still the one at the path, and starts over otherwise. A new
//! entry appears at its path already locked by the run that made it (an
//! unnamed file, locked, then linked in): a sweeper never sees it free.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg};

/// Entries' names start with this (no run name can: it starts with '.').
pub const PREFIX: &str = ".lower-";

/// The lock byte a run holds exclusively while it joins or leaves.
const DOOR: i64 = 0;
/// The lock byte every user holds shared.
const USERS: i64 = 1;

/// What identifies an image's content as far as the file system tells:
/// its device and inode, its size, and its modification and change times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
}

impl Identity {
    pub fn of(meta: &fs::Metadata) -> Identity {
        Identity {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// Sixteen hex digits: a 64-bit FNV-1a hash of the identity, stable
    /// across builds (it names the entry and labels the loop device).
    pub fn key(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let words = [
            self.dev,
            self.ino,
            self.size,
            self.mtime.0 as u64,
            self.mtime.1 as u64,
            self.ctime.0 as u64,
            self.ctime.1 as u64,
        ];
        for b in words.iter().flat_map(|w| w.to_le_bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{h:016x}")
    }
}

/// A run's hold on an entry: the users' lock shared, and while it joins,
/// the door. Dropped, it leaves (and removes the entry if it was the last).
pub struct Entry {
    file: File,
    path: PathBuf,
    door: Door,
    left: bool,
}

/// This run's lock on the door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Door {
    Open,
    Shared,
    Alone,
}

/// Set (`kind`: F_RDLCK, F_WRLCK, F_UNLCK) the OFD lock on byte `byte` of
/// `f`, waiting for it or not.
fn ofd_lock(f: &File, byte: i64, kind: i32, wait: bool) -> std::io::Result<()> {
    let fl = libc::flock {
        l_type: kind as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: byte,
        l_len: 1,
        l_pid: 0,
    };
    loop {
        let arg = if wait {
            FcntlArg::F_OFD_SETLKW(&fl)
        } else {
            FcntlArg::F_OFD_SETLK(&fl)
        };
        match fcntl(f, arg) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Whether the open file `f` is still the file at `path`.
fn same_file(f: &File, path: &Path) -> bool {
    match (f.metadata(), fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Join the entry `key` in the state root `root`, waiting while another run
/// attaches its image or leaves it. Returns with the door held shared: the
/// caller reads [`Entry::device`] and mounts it; or, to attach one,
/// [`Entry::hold_door`], reads it again (another run may have attached
/// the image meanwhile), attaches and [`Entry::set_device`]; then
/// [`Entry::open_door`].
pub fn join(root: &Path, key: &str) -> Result<Entry> {
    let path = root.join(format!("{PREFIX}{key}"));
    loop {
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match create(root, &path)? {
                Some(entry) => return Ok(entry),
                // Another run made it first: join that one.
                None => continue,
            },
            Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
        };
        ofd_lock(&file, DOOR, libc::F_RDLCK, true)
            .with_context(|| format!("locking {}", path.display()))?;
        // The last user may have removed it while this run waited.
        if !same_file(&file, &path) {
            continue;
        }
        ofd_lock(&file, USERS, libc::F_RDLCK, true)
            .with_context(|| format!("locking {}", path.display()))?;
        return Ok(Entry::held(file, path));
    }
}

/// Make the entry at `path`, already held (door and users shared) when it
/// appears there: an unnamed file in `root`, locked, then linked in. A
/// sweeper never finds it unlocked, so never takes a live run's new entry
/// for one nobody holds. None if another run made one first (or, where the
/// file system makes no unnamed files, once it is made: [`join`] opens it).
fn create(root: &Path, path: &Path) -> Result<Option<Entry>> {
    let file = match OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
        .open(root)
    {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
            // Named at once, then locked like any other entry.
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?;
            return Ok(None);
        }
        Err(e) => return Err(e).with_context(|| format!("making an entry in {}", root.display())),
    };
    // Nobody else can reach the file yet: neither lock waits.
    for byte in [DOOR, USERS] {
        ofd_lock(&file, byte, libc::F_RDLCK, false)
            .with_context(|| format!("locking a new entry in {}", root.display()))?;
    }
    match nix::unistd::linkat(
        nix::fcntl::AT_FDCWD,
        &crate::sys::fd_path(&file),
        nix::fcntl::AT_FDCWD,
        path,
        nix::fcntl::AtFlags::AT_SYMLINK_FOLLOW,
    ) {
        Ok(()) => Ok(Some(Entry::held(file, path.to_path_buf()))),
        Err(nix::errno::Errno::EEXIST) => Ok(None),
        Err(e) => Err(anyhow::anyhow!(
            "making {}: {}",
            path.display(),
            crate::sys::errno_text(e)
        )),
    }
}

impl Entry {
    /// A joined entry: its door and users' locks held shared.
    fn held(file: File, path: PathBuf) -> Entry {
        Entry {
            file,
            path,
            door: Door::Shared,
            left: false,
        }
    }

    /// The number of the loop device the entry names (`/dev/loopN`), if
    /// any: another run attached it, and it may have freed itself since.
    pub fn device(&mut self) -> Option<u32> {
        let mut text = String::new();
        self.file.seek(SeekFrom::Start(0)).ok()?;
        (&self.file).take(64).read_to_string(&mut text).ok()?;
        let n = text.lines().next()?.trim().strip_prefix("/dev/loop")?;
        n.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| n.parse().ok())?
    }

    /// Hold the door alone (to attach the image), waiting while others join
    /// or leave. The entry stays: this run is one of its users.
    pub fn hold_door(&mut self) -> Result<()> {
        if self.door == Door::Alone {
            return Ok(());
        }
        // Let go first: two runs turning their shared locks into exclusive
        // ones in place would wait for each other for ever.
        self.open_door()?;
        ofd_lock(&self.file, DOOR, libc::F_WRLCK, true)
            .with_context(|| format!("locking {}", self.path.display()))?;
        self.door = Door::Alone;
        Ok(())
    }

    /// Name the loop device this run attached, by its number (the entry says
    /// `/dev/loopN`, whatever node this run opened it through). The door is
    /// held alone ([`Entry::hold_door`]).
    pub fn set_device(&mut self, number: u32) -> Result<()> {
        debug_assert_eq!(self.door, Door::Alone);
        let dev = format!("/dev/loop{number}");
        let write = |f: &mut File| -> std::io::Result<()> {
            f.set_len(0)?;
            f.seek(SeekFrom::Start(0))?;
            f.write_all(format!("{dev}\n").as_bytes())
        };
        write(&mut self.file).with_context(|| format!("writing {}", self.path.display()))
    }

    /// Done joining: let the next run in.
    pub fn open_door(&mut self) -> Result<()> {
        if self.door != Door::Open {
            ofd_lock(&self.file, DOOR, libc::F_UNLCK, false)
                .with_context(|| format!("unlocking {}", self.path.display()))?;
            self.door = Door::Open;
        }
        Ok(())
    }

    /// Let go of the entry (once this run's mount of the lower layer is
    /// gone); the last run out removes it. Returns whether this run was the
    /// last.
    pub fn leave(mut self) -> Result<bool> {
        self.leave_now()
    }

    fn leave_now(&mut self) -> Result<bool> {
        if std::mem::replace(&mut self.left, true) {
            return Ok(false);
        }
        self.hold_door()?;
        // Atomic: on failure the shared lock stays, and the users we lost
        // to are still there.
        let last = ofd_lock(&self.file, USERS, libc::F_WRLCK, false).is_ok();
        if last && same_file(&self.file, &self.path) {
            fs::remove_file(&self.path)
                .with_context(|| format!("removing {}", self.path.display()))?;
        }
        // Closing the file (when the value goes) lets go of both locks.
        Ok(last)
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        if let Err(e) = self.leave_now() {
            eprintln!("fwrun: warning: {e:#}");
        }
    }
}

/// Remove the entries nobody holds (their runs were killed), of `names`,
/// the names in `root` (read once for every sweep: state/mod.rs). Returns
/// the names removed. An entry that someone is joining or leaving, or uses,
/// is left.
pub fn sweep_named(root: &Path, names: &[String]) -> Vec<String> {
    let mut swept = Vec::new();
    for name in names.iter().filter(|n| n.starts_with(PREFIX)) {
        let path = root.join(name);
        let Ok(file) = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&path)
        else {
            continue;
        };
        let free = ofd_lock(&file, DOOR, libc::F_WRLCK, false).is_ok()
            && ofd_lock(&file, USERS, libc::F_WRLCK, false).is_ok();
        if free && same_file(&file, &path) && fs::remove_file(&path).is_ok() {
            swept.push(name.clone());
        }
    }
    swept
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::state::scratch::Root;

    /// A sweep of the entries in `root`, as a run's sweep makes it.
    fn sweep_in(root: &Path) -> Vec<String> {
        let names: Vec<String> = fs::read_dir(root)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        sweep_named(root, &names)
    }

    fn identity() -> Identity {
        Identity {
            dev: 0xfd01,
            ino: 1234,
            size: 12 << 20,
            mtime: (1_700_000_000, 5),
            ctime: (1_700_000_000, 5),
        }
    }

    #[test]
    fn a_changed_image_has_another_key() {
        let a = identity();
        assert_eq!(a.key(), identity().key());
        assert_eq!(a.key().len(), 16);
        for b in [
            Identity {
                size: a.size + 1,
                ..a
            },
            Identity {
                mtime: (a.mtime.0, a.mtime.1 + 1),
                ..a
            },
            Identity {
                ctime: (a.ctime.0 + 1, a.ctime.1),
                ..a
            },
            Identity {
                ino: a.ino + 1,
                ..a
            },
            Identity {
                dev: a.dev + 1,
                ..a
            },
        ] {
            assert_ne!(a.key(), b.key(), "{b:?}");
        }
    }

    #[test]
    fn the_last_user_out_removes_the_entry() {
        let root = Root::new("last");
        let mut first = join(&root.0, "k").unwrap();
        assert_eq!(first.device(), None);
        first.hold_door().unwrap();
        first.set_device(7).unwrap();
        first.open_door().unwrap();
        let mut second = join(&root.0, "k").unwrap();
        assert_eq!(second.device(), Some(7));
        second.open_door().unwrap();
        // Neither a sweep nor the first run's leaving removes a used entry.
        assert!(sweep_in(&root.0).is_empty());
        assert!(!first.leave().unwrap());
        assert_eq!(root.entries(), [format!("{PREFIX}k")]);
        assert!(second.leave().unwrap());
        assert!(root.entries().is_empty(), "{:?}", root.entries());
    }

    #[test]
    fn a_run_that_fails_while_joining_lets_go() {
        let root = Root::new("fail");
        let e = join(&root.0, "k").unwrap();
        drop(e);
        assert!(root.entries().is_empty(), "{:?}", root.entries());
    }

    /// Whether some request for a lock on the entry `key` waits ("->" in
    /// /proc/locks), within ten seconds.
    fn someone_waits(root: &Root, key: &str) -> bool {
        let ino = fs::metadata(root.0.join(format!("{PREFIX}{key}")))
            .unwrap()
            .ino();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if fs::read_to_string("/proc/locks").unwrap().lines().any(|l| {
                l.contains("->") && l.contains("OFDLCK") && l.contains(&format!(":{ino} "))
            }) {
                return true;
            }
            std::thread::yield_now();
        }
        false
    }

    /// A run joining `key` in a thread of its own: what it read of the
    /// device once in, and its hold.
    fn joiner(root: &Root, key: &'static str) -> std::thread::JoinHandle<(Option<u32>, Entry)> {
        let path = root.0.clone();
        std::thread::spawn(move || {
            let mut e = join(&path, key).unwrap();
            let dev = e.device();
            e.open_door().unwrap();
            (dev, e)
        })
    }

    /// Runs of an attached image join side by side; one that attaches
    /// holds the door alone, after the joiners and before the next ones.
    #[test]
    fn joiners_share_the_door_and_an_attacher_holds_it_alone() {
        let root = Root::new("shared-door");
        let mut first = join(&root.0, "k").unwrap();
        first.hold_door().unwrap();
        first.set_device(4).unwrap();
        first.open_door().unwrap();
        // Two joiners at once: neither waits for the other.
        let mut a = join(&root.0, "k").unwrap();
        let mut b = join(&root.0, "k").unwrap();
        assert_eq!((a.device(), b.device()), (Some(4), Some(4)));
        // One of them finds the device gone and attaches: it waits for the
        // other to be in.
        let attacher = std::thread::spawn(move || {
            a.hold_door().unwrap();
            a.set_device(5).unwrap();
            a
        });
        assert!(someone_waits(&root, "k"), "the attacher never waited");
        assert!(!attacher.is_finished());
        b.open_door().unwrap();
        let mut a = attacher.join().unwrap();
        // A run joining meanwhile waits for the attacher, and reads its device.
        let third = joiner(&root, "k");
        assert!(someone_waits(&root, "k"), "the joiner never waited");
        a.open_door().unwrap();
        let (dev, c) = third.join().unwrap();
        assert_eq!(dev, Some(5));
        for e in [first, a, b] {
            assert!(!e.leave().unwrap());
        }
        assert!(c.leave().unwrap());
        assert!(root.entries().is_empty(), "{:?}", root.entries());
    }

    /// A joiner waits at the door while another attaches, and gets in once
    /// it is open; a joiner that waited while the last user removed the
    /// entry starts over on a fresh one.
    #[test]
    fn joiners_wait_at_the_door() {
        let root = Root::new("door");
        let mut first = join(&root.0, "k").unwrap();
        first.hold_door().unwrap();
        let waiter = joiner(&root, "k");
        // The waiter blocks at the door: /proc/locks shows its request
        // waiting ("->") on the entry's inode.
        assert!(someone_waits(&root, "k"), "the waiter never blocked");
        assert!(!waiter.is_finished());
        first.set_device(3).unwrap();
        first.open_door().unwrap();
        let (dev, second) = waiter.join().unwrap();
        assert_eq!(dev, Some(3));
        assert!(!first.leave().unwrap());
        assert!(second.leave().unwrap());
        // Removed while a joiner waited: it gets a new, empty entry.
        let mut again = join(&root.0, "k").unwrap();
        assert_eq!(again.device(), None);
        again.open_door().unwrap();
        drop(again);
        assert!(root.entries().is_empty());
    }

    /// Runs that make, use and leave an entry over and over, beside a
    /// sweeper that never stops: the sweeper never finds one of theirs
    /// free (each is made already locked), so it removes none.
    #[test]
    fn a_sweeper_never_takes_a_new_entry_for_an_abandoned_one() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let root = Root::new("race");
        let stop = Arc::new(AtomicBool::new(false));
        let sweeper = {
            let (dir, stop) = (root.0.clone(), stop.clone());
            std::thread::spawn(move || {
                let (mut swept, mut rounds) = (Vec::new(), 0);
                while !stop.load(Ordering::Relaxed) {
                    swept.extend(sweep_in(&dir));
                    rounds += 1;
                }
                (swept, rounds)
            })
        };
        for _ in 0..2000 {
            let mut e = join(&root.0, "k").unwrap();
            e.open_door().unwrap();
            assert!(e.leave().unwrap(), "the only user is the last");
        }
        stop.store(true, Ordering::Relaxed);
        let (swept, rounds) = sweeper.join().unwrap();
        assert!(rounds > 0);
        assert!(swept.is_empty(), "{swept:?}");
        assert!(root.entries().is_empty());
    }

    #[test]
    fn a_sweep_removes_only_entries_nobody_holds() {
        let root = Root::new("sweep");
        let mut held = join(&root.0, "held").unwrap();
        held.open_door().unwrap();
        // An entry whose users were killed: its file, without locks.
        fs::write(root.0.join(format!("{PREFIX}dead")), "/dev/loop9\n").unwrap();
        fs::write(root.0.join("not-an-entry"), "").unwrap();
        assert_eq!(sweep_in(&root.0), [format!("{PREFIX}dead")]);
        assert_eq!(
            root.entries(),
            [format!("{PREFIX}held"), "not-an-entry".to_string()]
        );
        drop(held);
    }

    #[test]
    fn only_a_loop_device_is_read_back() {
        let root = Root::new("parse");
        let mut e = join(&root.0, "k").unwrap();
        for bad in ["/dev/sda\n", "/dev/loop\n", "/dev/loop1x\n", "../loop1\n"] {
            fs::write(root.0.join(format!("{PREFIX}k")), bad).unwrap();
            assert_eq!(e.device(), None, "{bad:?}");
        }
        e.hold_door().unwrap();
        e.set_device(12).unwrap();
        assert_eq!(e.device(), Some(12));
    }
}
