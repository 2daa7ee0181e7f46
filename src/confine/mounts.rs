//! What the firmware's mount(2) and umount2(2) calls may do, decided by the
//! supervisor when the seccomp filter hands them over (confine/notify.rs).
//!
//! fwrun's own mounts (every mount in the firmware's namespace when its init
//! starts, but its root) are the constraint: masked /proc, read-only
//! /proc/sys and /sys, a curated /dev, the user's binds. So:
//! - `proc` at /proc, `sysfs` at /sys, `devtmpfs` at /dev and `devpts` at
//!   /dev/pts, and `cgroup2` at /sys/fs/cgroup, where fwrun's stand, succeed
//!   without mounting anything;
//! - `proc` anywhere else (a service manager's private /proc for a unit,
//!   a chroot's) is fwrun's constrained /proc again: a recursive bind of
//!   it, masks included, rather than a new proc with nothing masked;
//! - sysfs, devtmpfs and the kernel's own file systems (debugfs, tracefs,
//!   securityfs, …) anywhere else are refused;
//! - a remount that would make one of fwrun's read-only mounts, any sysfs or
//!   a part of /proc writable is refused;
//! - a remount of one of fwrun's mounts (the root included), or of anything
//!   whose file system is the host's (a bind), changes only that mount's
//!   read-only flag, never
//!   the file system behind it (busybox's `umount -a -r` remounts busy
//!   mounts read-only without MS_BIND, which would reach the host);
//! - fwrun's mounts cannot be unmounted or moved, nor bound without their
//!   submounts (that would uncover what the masks hide);
//! - a tmpfs over fwrun's /dev (busybox's `mount -t tmpfs mdev /dev` before
//!   `mdev -s`) succeeds without mounting anything: the curated /dev stays;
//! - everything else (tmpfs, devpts elsewhere, binds inside the root, the
//!   firmware's own file systems) goes ahead unchanged.
//!
//! The decisions fail closed: a path fwrun cannot resolve inside the
//! firmware (a magic link such as /proc/1/root/…, a path that leaves its
//! root) is refused, and a path the kernel would not find gets the errno
//! the kernel would give; a call is never let through on a path that was
//! not judged. With a user namespace of its own, the kernel keeps fwrun's
//! mounts locked whatever this layer answers: these answers are what keeps
//! an ordinary rcS free of errors, and the log of what was refused.
//!
//! The checks read the caller's memory and resolve its paths, then let the
//! call continue: another thread of the caller could change the memory in
//! between. fwrun guards against accidents, not against an attacker, so
//! this race is accepted.

use nix::errno::Errno;

use crate::sys::mountinfo;

/// One mount of fwrun's, as /proc/PID/mountinfo shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub id: u64,
    /// Where the firmware sees it.
    pub path: String,
    pub fstype: String,
    pub read_only: bool,
}

/// A path resolved as the calling process sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// The mount the path is on.
    pub mnt_id: u64,
    /// Whether the path is that mount's root (a mount point).
    pub mount_root: bool,
    /// The file system's device (major, minor).
    pub dev: (u32, u32),
    /// statfs's f_type.
    pub fs_magic: i64,
    /// Whether the mount is nodev now.
    pub nodev: bool,
}

/// Resolves paths as the calling process would (its root, its cwd).
pub trait Resolve {
    fn resolve(&self, path: &str) -> Result<Target, Errno>;
}

/// What the supervisor answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Let the kernel run the call.
    Continue,
    /// Answer success without doing anything.
    Pretend,
    /// Answer EPERM, for this reason.
    Refuse(String),
    /// Answer this errno, as the kernel would have (a path it would not
    /// find): not a refusal of fwrun's.
    Fail(i32),
    /// Do the remount as a change of the mount's read-only flag only.
    RemountFlagOnly { read_only: bool },
    /// Mount a recursive copy of fwrun's /proc (the init's, with its
    /// masks and read-only parts) at the target instead.
    BindProc,
}

/// A mount(2) call's arguments, read from the caller's memory.
#[derive(Debug, Clone, Default)]
pub struct MountCall {
    pub source: Option<String>,
    pub target: String,
    pub fstype: Option<String>,
    pub flags: u64,
}

/// The kernel's own file systems: one per host (or per boot), never the
/// firmware's.
pub const KERNEL_FILESYSTEMS: &[&str] = &[
    "debugfs",
    "tracefs",
    "securityfs",
    "configfs",
    "bpf",
    "efivarfs",
    "pstore",
    "binfmt_misc",
];

/// Where each constrained file system stands.
const CONSTRAINED: &[(&str, &str)] = &[
    ("proc", "/proc"),
    ("sysfs", "/sys"),
    ("devtmpfs", "/dev"),
    ("devpts", "/dev/pts"),
    // The run's own cgroup subtree, on a cgroup v2 host: systemd mounts it
    // again at boot.
    ("cgroup2", "/sys/fs/cgroup"),
];

const PROC_SUPER_MAGIC: i64 = 0x9fa0;
const SYSFS_MAGIC: i64 = 0x6265_6572;

const MS_RDONLY: u64 = libc::MS_RDONLY;
const MS_REMOUNT: u64 = libc::MS_REMOUNT;
const MS_BIND: u64 = libc::MS_BIND;
const MS_MOVE: u64 = libc::MS_MOVE;
const MS_REC: u64 = libc::MS_REC;
const MS_NODEV: u64 = libc::MS_NODEV;
const PROPAGATION: u64 = libc::MS_SHARED | libc::MS_PRIVATE | libc::MS_SLAVE | libc::MS_UNBINDABLE;

/// fwrun's mounts in the firmware, and the file systems that are the host's.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub mounts: Vec<Mount>,
    /// The firmware's root (the overlay), which is fwrun's too.
    pub root: Option<u64>,
    /// Devices of file systems shared with the host (what binds bring in).
    pub host_devs: Vec<(u32, u32)>,
}

impl Table {
    /// Read from /proc/PID/mountinfo's text: every mount but the root.
    pub fn from_mountinfo(text: &str, host_devs: Vec<(u32, u32)>) -> Table {
        let (root, mounts): (Vec<Mount>, Vec<Mount>) = text
            .lines()
            .filter_map(parse_mountinfo_line)
            .partition(|m| m.path == "/");
        Table {
            mounts,
            root: root.last().map(|m| m.id),
            host_devs,
        }
    }

    /// fwrun's mount that `t` is the root of.
    fn ours(&self, t: &Target) -> Option<&Mount> {
        if !t.mount_root {
            return None;
        }
        self.mounts.iter().find(|m| m.id == t.mnt_id)
    }

    fn has_submounts(&self, m: &Mount) -> bool {
        let prefix = format!("{}/", m.path.trim_end_matches('/'));
        self.mounts.iter().any(|o| o.path.starts_with(&prefix))
    }
}

fn parse_mountinfo_line(line: &str) -> Option<Mount> {
    let e = mountinfo::Entry::parse(line)?;
    Some(Mount {
        id: e.id,
        read_only: e.read_only(),
        path: e.mount_point.into_owned(),
        fstype: e.fstype.to_string(),
    })
}

/// `path` resolved as the caller sees it; or the answer when it cannot be:
/// the kernel's own errno for a path it would not find, a refusal for one
/// fwrun cannot resolve inside the firmware.
fn resolved(r: &dyn Resolve, path: &str) -> Result<Target, Verdict> {
    match r.resolve(path) {
        Ok(t) => Ok(t),
        Err(e @ (Errno::ENOENT | Errno::ENOTDIR | Errno::ENAMETOOLONG)) => {
            Err(Verdict::Fail(e as i32))
        }
        Err(e) => Err(Verdict::Refuse(format!(
            "{path} {UNRESOLVED} ({}): a magic link, or a path that leaves its root",
            crate::sys::errno_text(e)
        ))),
    }
}

/// The words of a refusal of a path fwrun could not judge.
pub const UNRESOLVED: &str = "does not resolve inside the firmware";

/// The group of a refused mount or unmount that every firmware makes on its
/// device and that changes nothing here (its shutdown unmounting fwrun's
/// mounts, its boot remounting them read-write or mounting the kernel's
/// own file systems): said in one line at the end, not one line a call.
/// None for the others, and for a path fwrun could not judge.
pub fn routine(call: Option<&MountCall>, reason: &str) -> Option<&'static str> {
    if reason.contains(UNRESOLVED) {
        return None;
    }
    let Some(call) = call else {
        return Some("unmounts of fwrun's mounts");
    };
    let fstype = call.fstype.as_deref().unwrap_or("");
    if call.flags & MS_REMOUNT != 0 {
        Some("read-write remounts of fwrun's read-only mounts")
    } else if call.flags & (MS_MOVE | MS_BIND) == 0 && KERNEL_FILESYSTEMS.contains(&fstype) {
        Some("mounts of the kernel's own file systems")
    } else {
        None
    }
}

/// Decide a mount(2) call.
pub fn decide_mount(call: &MountCall, table: &Table, r: &dyn Resolve) -> Verdict {
    let flags = call.flags;
    if flags & MS_REMOUNT != 0 {
        return decide_remount(call, table, r);
    }
    if flags & (MS_MOVE | MS_BIND) != 0 {
        let Some(src) = call.source.as_deref() else {
            return Verdict::Fail(libc::EFAULT);
        };
        let m = match resolved(r, src) {
            Ok(s) => table.ours(&s).cloned(),
            Err(v) => return v,
        };
        let Some(m) = m else {
            return Verdict::Continue;
        };
        if flags & MS_MOVE != 0 {
            return Verdict::Refuse(format!("fwrun's mount at {} stays where it is", m.path));
        }
        if flags & MS_REC == 0 && table.has_submounts(&m) {
            return Verdict::Refuse(format!(
                "a bind of {} without its submounts would uncover what they hide",
                m.path
            ));
        }
        return Verdict::Continue;
    }
    if flags & PROPAGATION != 0 {
        return Verdict::Continue;
    }
    let fstype = call.fstype.as_deref().unwrap_or("");
    if KERNEL_FILESYSTEMS.contains(&fstype) {
        return Verdict::Refuse(format!("{fstype} is the host kernel's own"));
    }
    let target = match resolved(r, &call.target) {
        Ok(t) => table.ours(&t).cloned(),
        Err(v) => return v,
    };
    if fstype == "tmpfs" {
        // The mdev recipe: a tmpfs over /dev, then `mdev -s`. fwrun's /dev
        // stays, with the nodes the firmware may have.
        return match target.is_some_and(|m| m.path == "/dev") {
            true => Verdict::Pretend,
            false => Verdict::Continue,
        };
    }
    let Some((_, home)) = CONSTRAINED.iter().find(|(t, _)| *t == fstype) else {
        return Verdict::Continue;
    };
    let at_home = target.is_some_and(|m| m.path == *home);
    match (at_home, fstype) {
        (true, _) => Verdict::Pretend,
        // Elsewhere (or where fwrun made no cgroup: a v1 host) it is the
        // firmware's own cgroup namespace, as before.
        (false, "devpts" | "cgroup2") => Verdict::Continue,
        (false, "devtmpfs") => Verdict::Refuse("devtmpfs holds the host's devices".into()),
        (false, "proc") => Verdict::BindProc,
        (false, _) => Verdict::Refuse(format!(
            "{fstype} belongs at {home}, where fwrun mounted it constrained; another would not be"
        )),
    }
}

fn decide_remount(call: &MountCall, table: &Table, r: &dyn Resolve) -> Verdict {
    let t = match resolved(r, &call.target) {
        Ok(t) => t,
        Err(v) => return v,
    };
    let ours = table.ours(&t);
    let read_only = call.flags & MS_RDONLY != 0;
    if !read_only {
        if let Some(m) = ours.filter(|m| m.read_only) {
            return Verdict::Refuse(format!("fwrun's {} stays read-only", m.path));
        }
        if t.fs_magic == SYSFS_MAGIC {
            return Verdict::Refuse("/sys stays read-only".into());
        }
        if t.fs_magic == PROC_SUPER_MAGIC && ours.is_none_or(|m| m.path != "/proc") {
            return Verdict::Refuse("the read-only parts of /proc stay read-only".into());
        }
    }
    // A bind remount sets the mount's flags to exactly those it names:
    // without MS_NODEV (busybox's `mount -o remount,bind,rw`) it would make
    // the device nodes of an image, seen through a bind of the firmware's
    // own, open the host's devices. Only the read-only flag changes then.
    if call.flags & MS_BIND != 0 && call.flags & MS_NODEV == 0 && t.nodev {
        return Verdict::RemountFlagOnly { read_only };
    }
    // The root is remounted as a mount too: the overlay's superblock is
    // read-write anyway, and so the request needs no mount rule of the
    // profile's (whose flags vary with what mount(8) copies along).
    let root = t.mount_root && table.root == Some(t.mnt_id);
    if ours.is_some() || root || table.host_devs.contains(&t.dev) {
        return Verdict::RemountFlagOnly { read_only };
    }
    Verdict::Continue
}

/// Decide an umount2(2) call.
pub fn decide_umount(target: &str, table: &Table, r: &dyn Resolve) -> Verdict {
    let t = match resolved(r, target) {
        Ok(t) => t,
        Err(v) => return v,
    };
    match table.ours(&t) {
        Some(m) => Verdict::Refuse(format!("fwrun's mount at {} stays for the run", m.path)),
        None => Verdict::Continue,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn routine_refusals_are_told_apart_from_the_others() {
        let call = |fstype: &str, flags: u64| MountCall {
            source: Some("x".into()),
            target: "/sys".into(),
            fstype: Some(fstype.into()),
            flags,
        };
        let why = "fwrun's mount at /proc stays for the run";
        assert_eq!(routine(None, why), Some("unmounts of fwrun's mounts"));
        let lost = format!("/proc/1/root/x {UNRESOLVED} (ELOOP): a magic link");
        assert_eq!(routine(None, &lost), None);
        assert!(routine(Some(&call("", MS_REMOUNT)), "/sys stays read-only").is_some());
        assert!(routine(
            Some(&call("securityfs", 0)),
            "securityfs is the host kernel's own"
        )
        .is_some());
        assert_eq!(
            routine(
                Some(&call("devtmpfs", 0)),
                "devtmpfs holds the host's devices"
            ),
            None
        );
        assert_eq!(
            routine(
                Some(&call("", MS_MOVE)),
                "fwrun's mount at /sys stays where it is"
            ),
            None
        );
        assert_eq!(routine(Some(&call("", MS_REMOUNT)), &lost), None);
    }

    const INFO: &str = "\
100 99 0:50 / / rw,relatime - overlay fwrun-t rw,lowerdir=/l
101 100 0:60 / /proc rw,nosuid,nodev,noexec - proc proc rw
102 101 0:60 /sys /proc/sys ro,nosuid,nodev,noexec - proc proc rw
103 101 0:5 /null /proc/kcore rw,nosuid - devtmpfs udev rw
104 100 0:61 / /sys ro,nosuid,nodev,noexec - sysfs sysfs rw
105 100 0:62 / /dev rw,nosuid,nodev - tmpfs dev rw
106 105 0:63 / /dev/pts rw - devpts devpts rw
107 100 8:1 /srv/data /data ro,nodev - ext4 /dev/sda1 rw
108 100 8:1 /srv/my\\040dir /my\\040dir rw - ext4 /dev/sda1 rw
109 104 0:64 / /sys/fs/cgroup rw,nosuid,nodev,noexec - cgroup2 cgroup2 rw
";

    /// Paths as the firmware sees them, and what they resolve to.
    struct Fake(HashMap<&'static str, Target>);
    impl Resolve for Fake {
        fn resolve(&self, path: &str) -> Result<Target, Errno> {
            if path.starts_with("/proc/1/root") {
                return Err(Errno::ELOOP);
            }
            self.0.get(path).copied().ok_or(Errno::ENOENT)
        }
    }

    fn t(mnt_id: u64, mount_root: bool, dev: (u32, u32), fs_magic: i64) -> Target {
        Target {
            mnt_id,
            mount_root,
            dev,
            fs_magic,
            nodev: false,
        }
    }

    fn world() -> (Table, Fake) {
        let table = Table::from_mountinfo(INFO, vec![(0, 5), (8, 1)]);
        let fake = Fake(HashMap::from([
            ("/", t(100, true, (0, 50), 0x794c_7630)),
            ("/proc", t(101, true, (0, 60), PROC_SUPER_MAGIC)),
            ("/proc/sys", t(102, true, (0, 60), PROC_SUPER_MAGIC)),
            ("/proc/sys/kernel", t(102, false, (0, 60), PROC_SUPER_MAGIC)),
            ("/proc/kcore", t(103, true, (0, 5), 0x0102_1994)),
            ("/sys", t(104, true, (0, 61), SYSFS_MAGIC)),
            ("/dev", t(105, true, (0, 62), 0x0102_1994)),
            ("/dev/pts", t(106, true, (0, 63), 0x1cd1)),
            ("/data", t(107, true, (8, 1), 0xef53)),
            ("/mnt", t(100, false, (0, 50), 0x794c_7630)),
            ("/tmp", t(100, false, (0, 50), 0x794c_7630)),
            ("/mnt/hostbind", t(120, true, (0, 5), 0x0102_1994)),
            ("/run", t(121, true, (0, 70), 0x0102_1994)),
            ("/sys/fs/cgroup", t(109, true, (0, 64), 0x6367_7270)),
        ]));
        (table, fake)
    }

    fn mount(fstype: &str, target: &str, flags: u64) -> MountCall {
        MountCall {
            source: Some(fstype.into()),
            target: target.into(),
            fstype: Some(fstype.into()),
            flags,
        }
    }

    fn decide(call: MountCall) -> Verdict {
        let (table, fake) = world();
        decide_mount(&call, &table, &fake)
    }

    #[test]
    fn mountinfo_is_read_without_the_root_and_with_escapes() {
        let (table, _) = world();
        assert_eq!(table.mounts.len(), 9);
        assert!(table.mounts.iter().all(|m| m.path != "/"));
        let ps = table.mounts.iter().find(|m| m.path == "/proc/sys").unwrap();
        assert!(ps.read_only);
        assert!(table.mounts.iter().any(|m| m.path == "/my dir"));
    }

    #[test]
    fn a_device_rcs_mounts_succeed_where_fwrun_stands() {
        for (fs, at) in CONSTRAINED {
            assert_eq!(decide(mount(fs, at, 0)), Verdict::Pretend, "{fs} at {at}");
        }
        assert_eq!(decide(mount("tmpfs", "/tmp", 0)), Verdict::Continue);
        assert_eq!(decide(mount("devpts", "/mnt", 0)), Verdict::Continue);
    }

    #[test]
    fn cgroup2_at_fwruns_cgroup_mount_is_pretended_and_elsewhere_is_the_firmwares() {
        let at_home = decide(mount("cgroup2", "/sys/fs/cgroup", 0));
        assert_eq!(at_home, Verdict::Pretend);
        assert_eq!(decide(mount("cgroup2", "/mnt", 0)), Verdict::Continue);
        // Without fwrun's mount there (a v1 host), the firmware's goes ahead.
        let (mut table, fake) = world();
        table.mounts.retain(|m| m.path != "/sys/fs/cgroup");
        let call = mount("cgroup2", "/sys/fs/cgroup", 0);
        assert_eq!(decide_mount(&call, &table, &fake), Verdict::Continue);
    }

    #[test]
    fn kernel_file_systems_elsewhere_are_refused() {
        for fs in ["sysfs", "devtmpfs", "debugfs", "securityfs", "bpf"] {
            assert!(
                matches!(decide(mount(fs, "/mnt", 0)), Verdict::Refuse(_)),
                "{fs}"
            );
        }
        // proc elsewhere is fwrun's /proc again, never a new one.
        assert_eq!(decide(mount("proc", "/mnt", 0)), Verdict::BindProc);
        assert_eq!(decide(mount("proc", "/proc", 0)), Verdict::Pretend);
        // debugfs even at a path fwrun mounted something.
        assert!(matches!(
            decide(mount("debugfs", "/sys", 0)),
            Verdict::Refuse(_)
        ));
    }

    #[test]
    fn remounts() {
        let rw = MS_REMOUNT;
        let ro = MS_REMOUNT | MS_RDONLY;
        let refuse = |c| matches!(decide(c), Verdict::Refuse(_));
        assert!(refuse(mount("", "/sys", rw)));
        assert!(refuse(mount("", "/sys", rw | MS_BIND)));
        assert!(refuse(mount("", "/proc/sys", rw | MS_BIND)));
        assert!(refuse(mount("", "/data", rw | MS_BIND)), ":ro bind");
        // A bind of a part of /proc/sys that the firmware made itself.
        assert!(refuse(mount("", "/proc/sys/kernel", rw | MS_BIND)));
        // The root is the firmware's: remount rw goes ahead, on the mount.
        assert_eq!(
            decide(mount("", "/", rw)),
            Verdict::RemountFlagOnly { read_only: false }
        );
        // umount -a -r: read-only remounts without MS_BIND touch only the
        // mount, for fwrun's mounts and for host file systems.
        let flag_only = Verdict::RemountFlagOnly { read_only: true };
        assert_eq!(decide(mount("", "/proc/kcore", ro)), flag_only);
        assert_eq!(decide(mount("", "/dev", ro)), flag_only);
        assert_eq!(decide(mount("", "/mnt/hostbind", ro)), flag_only);
        assert_eq!(decide(mount("", "/run", ro)), Verdict::Continue);
        assert_eq!(decide(mount("", "/", ro)), flag_only);
    }

    #[test]
    fn a_bind_remount_keeps_nodev() {
        let (table, mut fake) = world();
        // The firmware's own bind of a part of its root, nodev as the
        // overlay it comes from.
        let mut own = t(130, true, (0, 50), 0x794c_7630);
        own.nodev = true;
        fake.0.insert("/mnt/dev", own);
        let call = |flags| mount("", "/mnt/dev", flags);
        let bind_rw = MS_REMOUNT | MS_BIND;
        assert_eq!(
            decide_mount(&call(bind_rw), &table, &fake),
            Verdict::RemountFlagOnly { read_only: false }
        );
        assert_eq!(
            decide_mount(&call(bind_rw | MS_RDONLY), &table, &fake),
            Verdict::RemountFlagOnly { read_only: true }
        );
        // Naming nodev, or on a mount that was not nodev: as asked.
        assert_eq!(
            decide_mount(&call(bind_rw | MS_NODEV), &table, &fake),
            Verdict::Continue
        );
        fake.0.get_mut("/mnt/dev").unwrap().nodev = false;
        assert_eq!(
            decide_mount(&call(bind_rw), &table, &fake),
            Verdict::Continue
        );
    }

    #[test]
    fn moves_binds_and_umounts_of_fwrun_mounts() {
        let (table, fake) = world();
        let mv = MountCall {
            source: Some("/proc/sys".into()),
            target: "/mnt".into(),
            fstype: None,
            flags: MS_MOVE,
        };
        assert!(matches!(
            decide_mount(&mv, &table, &fake),
            Verdict::Refuse(_)
        ));
        let bind = |flags| MountCall {
            source: Some("/proc".into()),
            target: "/mnt".into(),
            fstype: None,
            flags,
        };
        assert!(matches!(
            decide_mount(&bind(MS_BIND), &table, &fake),
            Verdict::Refuse(_)
        ));
        assert_eq!(
            decide_mount(&bind(MS_BIND | MS_REC), &table, &fake),
            Verdict::Continue
        );
        for p in ["/proc/sys", "/proc", "/sys", "/dev"] {
            assert!(
                matches!(decide_umount(p, &table, &fake), Verdict::Refuse(_)),
                "{p}"
            );
        }
        assert_eq!(decide_umount("/run", &table, &fake), Verdict::Continue);
        assert_eq!(
            decide_umount("/nowhere", &table, &fake),
            Verdict::Fail(libc::ENOENT)
        );
    }

    #[test]
    fn paths_fwrun_cannot_judge_are_never_let_through() {
        let (table, fake) = world();
        let refused = |v: Verdict| matches!(v, Verdict::Refuse(_));
        // Through a magic link (the resolver refuses to follow one).
        let rw = MS_REMOUNT | MS_BIND;
        assert!(refused(decide(mount("", "/proc/1/root/proc/sys", rw))));
        assert!(refused(decide(mount("proc", "/proc/1/root/proc", 0))));
        assert!(refused(decide_umount("/proc/1/root/sys", &table, &fake)));
        let bind = MountCall {
            source: Some("/proc/1/root/proc".into()),
            target: "/mnt".into(),
            fstype: None,
            flags: MS_BIND,
        };
        assert!(refused(decide_mount(&bind, &table, &fake)));
        // A path that is not there: what the kernel would say.
        assert_eq!(
            decide(mount("", "/nowhere", MS_REMOUNT)),
            Verdict::Fail(libc::ENOENT)
        );
        assert_eq!(
            decide(mount("tmpfs", "/nowhere", 0)),
            Verdict::Fail(libc::ENOENT)
        );
    }

    #[test]
    fn a_tmpfs_over_dev_keeps_fwruns_dev() {
        assert_eq!(decide(mount("tmpfs", "/dev", 0)), Verdict::Pretend);
        let mdev = MountCall {
            source: Some("mdev".into()),
            target: "/dev".into(),
            fstype: Some("tmpfs".into()),
            flags: 0,
        };
        assert_eq!(decide(mdev), Verdict::Pretend);
        assert_eq!(decide(mount("tmpfs", "/mnt", 0)), Verdict::Continue);
    }
}
