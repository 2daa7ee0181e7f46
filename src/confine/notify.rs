//! The supervisor's side of the seccomp filter: it receives the calls the
//! filter hands over (SECCOMP_RET_USER_NOTIF), reads their arguments from
//! the caller's memory, decides (confine/mounts.rs for mounts; the others
//! are refused, but for read-only clock adjustments), answers, and keeps
//! each refusal for --follow-denials, the summary and the report.

use std::cell::OnceCell;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;

use nix::errno::Errno;

use crate::confine::mounts::{self, MountCall, Resolve, Table, Target, Verdict};
use crate::confine::seccomp;
use crate::confine::tally::Tally;
use crate::process::spawn;
use crate::sys;

/// One call fwrun refused the firmware.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Refusal {
    pub syscall: String,
    /// What it was aimed at, as the firmware named it (a path, a file
    /// system type); empty when the call names nothing.
    pub target: String,
    pub reason: String,
    /// The group of a refusal every firmware makes on its device (its
    /// shutdown's unmounts, its module loads, its clock): summed up in one
    /// line at the end rather than listed. None for the others.
    pub routine: Option<&'static str>,
}

impl Refusal {
    pub fn describe(&self) -> String {
        match self.target.is_empty() {
            true => format!("{}: {}", self.syscall, self.reason),
            false => format!("{} {}: {}", self.syscall, self.target, self.reason),
        }
    }
}

/// Serves one boot's notifications.
pub struct Notifier {
    listener: OwnedFd,
    /// fwrun's mounts, as the init's mountinfo said when it started, and
    /// the host devices bound in; None when it could not be read (the init
    /// ended at once): every mount call is then refused. Parsed at the
    /// first mount call ([`Notifier::table`]): most runs make none.
    mounts: Option<(String, Vec<(u32, u32)>)>,
    table: OnceCell<Table>,
    /// The refusals, each kind once with its count.
    pub refused: Tally<Refusal>,
    /// The init's mount namespace, where fwrun's /proc stands: a proc
    /// mounted elsewhere is a copy of it. None: such mounts are refused.
    proc_ns: Option<File>,
    /// Module loads answered "loaded" (--modules fake), and how many were.
    pub fake_modules: bool,
    pub modules_faked: u64,
}

impl Notifier {
    /// `init` is the pid (in fwrun's namespace) of a process in the
    /// firmware's mount namespace as its init starts: its mounts are
    /// fwrun's. `host_devs` are the devices of the host file systems bound
    /// into the firmware.
    pub fn new(listener: OwnedFd, init: libc::pid_t, host_devs: Vec<(u32, u32)>) -> Self {
        let info = std::fs::read_to_string(format!("/proc/{init}/mountinfo")).ok();
        Notifier::from_mountinfo(listener, info, host_devs, init)
    }

    /// The same, from the init's mountinfo as it started (read then, or
    /// kept: `fwrun enter` serves its command with the run's). `init` is
    /// the run's init (pid in fwrun's namespace).
    pub fn from_mountinfo(
        listener: OwnedFd,
        mountinfo: Option<String>,
        host_devs: Vec<(u32, u32)>,
        init: libc::pid_t,
    ) -> Self {
        Notifier {
            listener,
            mounts: mountinfo.map(|info| (info, host_devs)),
            table: OnceCell::new(),
            refused: Tally::default(),
            proc_ns: File::open(format!("/proc/{init}/ns/mnt")).ok(),
            fake_modules: false,
            modules_faked: 0,
        }
    }

    /// fwrun's mounts, parsed the first time they are asked for.
    fn table(&self) -> Option<&Table> {
        let (info, host_devs) = self.mounts.as_ref()?;
        Some(
            self.table
                .get_or_init(|| Table::from_mountinfo(info, host_devs.clone())),
        )
    }

    pub fn fd(&self) -> RawFd {
        self.listener.as_raw_fd()
    }

    /// Receive and answer one call. Returns the refusal, if it was one.
    pub fn serve(&mut self) -> Option<Refusal> {
        // ENOENT: the caller went away (a signal, or it died).
        let req = sys::seccomp::receive(self.listener.as_fd()).ok()?;
        // A 32-bit call as the native call it means: every handler below
        // knows native numbers and 64-bit arguments only.
        let Some(req) = seccomp::as_native(req) else {
            self.answer(req.id, Answer::Errno(libc::ENOSYS));
            return None;
        };
        let (verdict, refusal) = self.decide(&req);
        if !self.still_valid(req.id) {
            return None;
        }
        let answer = match verdict {
            Verdict::Continue => Answer::Continue,
            Verdict::Pretend => Answer::Errno(0),
            Verdict::Refuse(_) => Answer::Errno(libc::EPERM),
            Verdict::Fail(e) => Answer::Errno(e),
            Verdict::RemountFlagOnly { read_only } => {
                Answer::Errno(remount_flag_only(req.pid as libc::pid_t, &req, read_only))
            }
            Verdict::BindProc => match &self.proc_ns {
                Some(ns) => Answer::Errno(bind_proc(req.pid as libc::pid_t, &req, ns)),
                None => Answer::Errno(libc::EPERM),
            },
        };
        if matches!(answer, Answer::Errno(0)) && is_module_load(req.data.nr as libc::c_long) {
            self.modules_faked += 1;
        }
        self.answer(req.id, answer);
        if let Some(r) = &refusal {
            self.refused.add(r.clone());
        }
        refusal
    }

    fn decide(&self, req: &libc::seccomp_notif) -> (Verdict, Option<Refusal>) {
        let pid = req.pid as libc::pid_t;
        let nr = req.data.nr as libc::c_long;
        let a = req.data.args;
        let name = seccomp::syscall_name(nr);
        let refuse_as = |routine: Option<&'static str>, target: String, reason: String| {
            let r = Refusal {
                syscall: name.into(),
                target,
                reason: reason.clone(),
                routine,
            };
            (Verdict::Refuse(reason), Some(r))
        };
        let refuse = |target: String, reason: String| refuse_as(None, target, reason);
        match nr {
            libc::SYS_mount | libc::SYS_umount2 if self.mounts.is_none() => refuse(
                String::new(),
                "fwrun could not read the firmware's mounts".into(),
            ),
            libc::SYS_mount => {
                let table = self.table().expect("checked above");
                let mem = Memory::open(pid);
                // A string fwrun cannot read is refused: nothing goes ahead
                // unjudged.
                let (Ok(source), Ok(Some(target)), Ok(fstype)) =
                    (mem.arg(a[0]), mem.arg(a[1]), mem.arg(a[2]))
                else {
                    return refuse(String::new(), UNREADABLE.into());
                };
                let call = MountCall {
                    source,
                    target,
                    fstype,
                    flags: a[3],
                };
                let resolver = InProcess(pid);
                match mounts::decide_mount(&call, table, &resolver) {
                    Verdict::Refuse(why) => {
                        let what = match &call.fstype {
                            Some(t) if call.flags & libc::MS_REMOUNT == 0 && !t.is_empty() => {
                                format!("{t} at {}", call.target)
                            }
                            _ => call.target.clone(),
                        };
                        refuse_as(mounts::routine(Some(&call), &why), what, why)
                    }
                    v => (v, None),
                }
            }
            libc::SYS_umount2 => {
                let table = self.table().expect("checked above");
                let Ok(Some(target)) = Memory::open(pid).arg(a[0]) else {
                    return refuse(String::new(), UNREADABLE.into());
                };
                match mounts::decide_umount(&target, table, &InProcess(pid)) {
                    Verdict::Refuse(why) => refuse_as(mounts::routine(None, &why), target, why),
                    v => (v, None),
                }
            }
            libc::SYS_adjtimex | libc::SYS_clock_adjtime => {
                // struct timex starts with `modes`: 0 only reads the clock.
                let buf = if nr == libc::SYS_adjtimex { a[0] } else { a[1] };
                match Memory::open(pid).u32_at(buf) {
                    Some(0) => (Verdict::Continue, None),
                    _ => refuse(String::new(), seccomp::describe(nr).into()),
                }
            }
            libc::SYS_syslog => refuse_as(
                routine(nr),
                format!("action {}", a[0] as u32),
                seccomp::describe(nr).into(),
            ),
            n if is_module_load(n) && self.fake_modules => (Verdict::Pretend, None),
            _ => refuse_as(routine(nr), String::new(), seccomp::describe(nr).into()),
        }
    }

    fn still_valid(&self, id: u64) -> bool {
        sys::seccomp::still_valid(self.listener.as_fd(), id)
    }

    fn answer(&self, id: u64, answer: Answer) {
        match answer {
            Answer::Continue => sys::seccomp::answer(self.listener.as_fd(), id, true, 0),
            Answer::Errno(e) => sys::seccomp::answer(self.listener.as_fd(), id, false, e),
        }
    }
}

fn is_module_load(nr: libc::c_long) -> bool {
    matches!(nr, libc::SYS_init_module | libc::SYS_finit_module)
}

/// The group of a refused call (not a mount) that firmware makes at every
/// boot on its device: a module load (kmodloader, modprobe), the clock set
/// from a hardware clock or a time server, swap switched on, the kernel
/// log cleared by a log daemon.
fn routine(nr: libc::c_long) -> Option<&'static str> {
    match nr {
        libc::SYS_init_module | libc::SYS_finit_module | libc::SYS_delete_module => {
            Some("module loads and removals")
        }
        libc::SYS_clock_settime
        | libc::SYS_settimeofday
        | libc::SYS_clock_adjtime
        | libc::SYS_adjtimex => Some("changes of the clock"),
        libc::SYS_swapon | libc::SYS_swapoff => Some("changes of swap"),
        libc::SYS_syslog => Some("clears of the kernel log"),
        _ => None,
    }
}

enum Answer {
    Continue,
    /// 0 for success.
    Errno(i32),
}

/// Why a call whose arguments fwrun could not read is refused.
const UNREADABLE: &str = "fwrun could not read the call's arguments";

/// The caller's memory, through /proc/PID/mem.
struct Memory(Option<File>);

impl Memory {
    /// A string argument at `addr`: None for a null pointer, an error when
    /// it cannot be read.
    fn arg(&self, addr: u64) -> Result<Option<String>, ()> {
        match addr {
            0 => Ok(None),
            a => self.string(a).map(Some).ok_or(()),
        }
    }

    fn open(pid: libc::pid_t) -> Memory {
        Memory(File::open(format!("/proc/{pid}/mem")).ok())
    }

    /// A NUL-terminated string at `addr` (at most PATH_MAX bytes).
    fn string(&self, addr: u64) -> Option<String> {
        let f = self.0.as_ref().filter(|_| addr != 0)?;
        let mut out = Vec::new();
        let mut at = addr;
        while out.len() < libc::PATH_MAX as usize {
            // Read up to the end of the page, which is mapped if `at` is.
            let n = 4096 - (at % 4096) as usize;
            let mut buf = vec![0u8; n];
            let got = f.read_at(&mut buf, at).ok().filter(|g| *g > 0)?;
            if let Some(end) = buf[..got].iter().position(|b| *b == 0) {
                out.extend_from_slice(&buf[..end]);
                return Some(String::from_utf8_lossy(&out).into_owned());
            }
            out.extend_from_slice(&buf[..got]);
            at += got as u64;
        }
        None
    }

    fn u32_at(&self, addr: u64) -> Option<u32> {
        let f = self.0.as_ref().filter(|_| addr != 0)?;
        let mut b = [0u8; 4];
        f.read_exact_at(&mut b, addr).ok()?;
        Some(u32::from_ne_bytes(b))
    }
}

/// Paths resolved as process `pid` sees them: absolute ones inside its
/// root, relative ones from its working directory.
struct InProcess(libc::pid_t);

impl InProcess {
    /// `path` opened as the caller sees it, never through a magic link
    /// (ELOOP): /proc/1/root/… leads out of what fwrun can judge.
    fn open(&self, path: &str) -> Result<OwnedFd, Errno> {
        // A descriptor of the caller's own, named through its /proc (what
        // systemd and util-linux mount on, having opened the target
        // without following links): the file it stands for.
        if let Some(n) = own_fd(path) {
            let fd = format!("/proc/{}/fd/{n}", self.0);
            return sys::open_path(std::path::Path::new(&fd), nix::fcntl::OFlag::empty());
        }
        let (base, resolve) = match path.starts_with('/') {
            true => (format!("/proc/{}/root", self.0), sys::RESOLVE_IN_ROOT),
            false => (format!("/proc/{}/cwd", self.0), 0),
        };
        let dir = File::open(base).map_err(|_| Errno::ESRCH)?;
        sys::openat2(
            dir.as_fd(),
            std::path::Path::new(path),
            libc::O_PATH,
            resolve | sys::RESOLVE_NO_MAGICLINKS,
        )
    }
}

/// N of `/proc/self/fd/N` or `/proc/thread-self/fd/N`.
fn own_fd(path: &str) -> Option<u32> {
    let rest = path
        .strip_prefix("/proc/self/fd/")
        .or_else(|| path.strip_prefix("/proc/thread-self/fd/"))?;
    rest.parse().ok()
}

impl Resolve for InProcess {
    fn resolve(&self, path: &str) -> Result<Target, Errno> {
        let fd = self.open(path)?;
        let st = sys::statx_fd(fd.as_fd()).ok_or(Errno::EIO)?;
        let fs = nix::sys::statfs::fstatfs(&fd)?;
        Ok(Target {
            mnt_id: st.mnt_id,
            mount_root: st.mount_root,
            dev: st.dev,
            fs_magic: fs.filesystem_type().0 as _,
            nodev: nix::sys::statvfs::fstatvfs(&fd)
                .is_ok_and(|v| v.flags().contains(nix::sys::statvfs::FsFlags::ST_NODEV)),
        })
    }
}

/// The target of a mount call, opened as the caller sees it, and the
/// caller's mount namespace; or the errno to answer.
fn target_and_ns(pid: libc::pid_t, req: &libc::seccomp_notif) -> Result<(OwnedFd, File), i32> {
    let target = Memory::open(pid)
        .string(req.data.args[1])
        .ok_or(libc::EPERM)?;
    let fd = InProcess(pid).open(&target).map_err(|e| e as i32)?;
    let ns = File::open(format!("/proc/{pid}/ns/mnt")).map_err(|_| libc::ESRCH)?;
    Ok((fd, ns))
}

/// Run `work` in a child (which may join other mount namespaces without
/// moving fwrun) and return 0 or its errno. The child shares fwrun's
/// memory and runs while fwrun waits (process/spawn.rs's `beside`): no
/// page table is copied, which a systemd boot's few dozen such calls
/// notice. It has its own namespaces, a copy of the file table, and its
/// own root.
fn in_child(work: impl FnOnce() -> Result<(), Errno>) -> i32 {
    const STACK: usize = 256 << 10;
    match spawn::beside(0, STACK, work) {
        Err(e) => e as i32,
        Ok(child) => {
            spawn::reap(child.pid);
            match child.out {
                Ok(()) => 0,
                Err(e) => e as i32,
            }
        }
    }
}

/// Join the mount namespace `ns` (this process's root and working
/// directory move to its root).
fn join(ns: &File) -> Result<(), Errno> {
    nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNS)
}

/// A remount reduced to the mount's read-only flag: done in a child that
/// joins the caller's mount namespace (the kernel changes mounts of the
/// caller's namespace only). Returns 0 or the errno.
fn remount_flag_only(pid: libc::pid_t, req: &libc::seccomp_notif, read_only: bool) -> i32 {
    let (fd, ns) = match target_and_ns(pid, req) {
        Ok(v) => v,
        Err(e) => return e,
    };
    in_child(|| {
        join(&ns)?;
        sys::set_read_only(fd.as_fd(), read_only)
    })
}

/// A proc mount away from /proc, done as a recursive copy of fwrun's
/// /proc (in the init's mount namespace `proc_ns`, masks and read-only
/// parts included) attached at the caller's target, in the caller's mount
/// namespace: what a service manager gets when it builds a unit's private
/// /proc. Options such as hidepid= are not applied. Returns 0 or the errno.
fn bind_proc(pid: libc::pid_t, req: &libc::seccomp_notif, proc_ns: &File) -> i32 {
    let (fd, ns) = match target_and_ns(pid, req) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let read_only = req.data.args[3] & libc::MS_RDONLY != 0;
    in_child(|| {
        join(proc_ns)?;
        let tree = sys::clone_tree(c"/proc")?;
        if read_only {
            sys::set_read_only(tree.as_fd(), true)?;
        }
        join(&ns)?;
        sys::attach_tree(tree.as_fd(), fd.as_fd())
    })
}

/// The end-of-run lines about what fwrun refused (none when nothing was).
/// The refusals every firmware makes (see [`Refusal::routine`]) are summed
/// up in one line, unless `all`; the others are listed, each kind once.
pub fn summary_lines(refused: &Tally<Refusal>, all: bool) -> Vec<String> {
    if refused.is_empty() {
        return Vec::new();
    }
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    let mut lines = Vec::new();
    let mut groups: Vec<(&str, usize)> = Vec::new();
    if !all {
        for (r, n) in refused.kinds() {
            let Some(g) = r.routine else { continue };
            match groups.iter_mut().find(|(name, _)| *name == g) {
                Some((_, count)) => *count += n,
                None => groups.push((g, *n)),
            }
        }
    }
    let routine: usize = groups.iter().map(|(_, n)| n).sum();
    if routine > 0 {
        let parts: Vec<String> = groups.iter().map(|(g, n)| format!("{n} {g}")).collect();
        lines.push(format!(
            "refused {routine} call{} that firmware makes on its device, harmless here ({}; -v lists them)",
            plural(routine),
            parts.join(", ")
        ));
    }
    let others: Vec<&(Refusal, usize)> = refused
        .kinds()
        .iter()
        .filter(|(r, _)| all || r.routine.is_none())
        .collect();
    let untold = refused.untold();
    let rest = refused.total() - routine;
    if others.is_empty() && untold == 0 {
        return lines;
    }
    let other = if routine > 0 { " other" } else { "" };
    lines.push(format!(
        "refused {rest}{other} call{} of the firmware:",
        plural(rest)
    ));
    for (r, n) in others {
        let times = if *n > 1 {
            format!("  x{n}")
        } else {
            String::new()
        };
        lines.push(format!("  {}{times}", r.describe()));
    }
    if untold > 0 {
        lines.push(format!("  and {untold} more, of other kinds"));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(syscall: &str, target: &str, routine: Option<&'static str>) -> Refusal {
        Refusal {
            syscall: syscall.into(),
            target: target.into(),
            reason: "why".into(),
            routine,
        }
    }

    #[test]
    fn routine_refusals_are_one_line_and_the_others_are_listed() {
        let mut t = Tally::default();
        for p in ["/proc", "/sys", "/dev", "/dev/pts"] {
            t.add(refusal("umount2", p, Some("unmounts of fwrun's mounts")));
        }
        t.add_n(
            refusal("finit_module", "", Some("module loads and removals")),
            3,
        );
        t.add(refusal("kexec_load", "", None));
        let lines = summary_lines(&t, false);
        assert_eq!(
            lines,
            [
                "refused 7 calls that firmware makes on its device, harmless here (4 unmounts of fwrun's mounts, 3 module loads and removals; -v lists them)",
                "refused 1 other call of the firmware:",
                "  kexec_load: why",
            ]
        );
        // -v: every kind, one line each.
        let all = summary_lines(&t, true);
        assert_eq!(all[0], "refused 8 calls of the firmware:");
        assert_eq!(all.len(), 1 + 6);
        // Only routine ones: the one line.
        let mut quiet = Tally::default();
        quiet.add(refusal(
            "umount2",
            "/proc",
            Some("unmounts of fwrun's mounts"),
        ));
        assert_eq!(summary_lines(&quiet, false).len(), 1);
    }
}
