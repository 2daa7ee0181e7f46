//! The firmware's seccomp filter: a short classic-BPF program, built here by
//! the launcher and installed by the child as its last step before exec,
//! after the AppArmor change and the capability drop (process/confine.rs).
//! It holds on every host, with or without an LSM.
//!
//! - The new mount API (fsopen, fsmount, move_mount, open_tree, …) answers
//!   ENOSYS, so util-linux falls back to mount(2), which fwrun can see.
//! - mount(2) and umount2(2), and every call the firmware may not make
//!   (modules, the clock, swap, accounting, raw I/O ports, BPF, perf, keys,
//!   open_by_handle_at, the destructive syslog actions), go to fwrun's
//!   supervisor through the filter's notification descriptor
//!   (SECCOMP_RET_USER_NOTIF): it decides, answers, and logs each refusal
//!   (confine/notify.rs, confine/mounts.rs).
//! - Except, on a run without an AppArmor profile, a bind remount that
//!   leaves its mount read-only and nodev, which goes ahead at once: the
//!   supervisor would let it, and systemd makes a hundred at each boot.
//! - Everything else is allowed.
//! - The 32-bit entry the kernel runs beside this machine's own (i386 on
//!   x86_64, AArch32 on arm64) is treated the same, by its own call
//!   numbers ([`compat_calls`]), its 32-bit-only variants included (the old
//!   umount, stime, the time64 clock calls). The supervisor sees each such
//!   call as the native call it means ([`as_native`]).
//! - x32 (x86_64's entry whose numbers carry bit 30) and any other entry
//!   answer ENOSYS to every call: fwrun refuses to start an init built for
//!   one ([`confines`]).

/// How a call is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Treat {
    /// Answered by the supervisor.
    Notify,
    /// Fails at once with ENOSYS (the caller falls back to another call).
    NoSys,
}

/// The calls the supervisor answers, with what they do (for the refusal
/// log), and the ones that answer ENOSYS.
pub fn table() -> Vec<(libc::c_long, Treat)> {
    use Treat::*;
    let mut t = vec![
        (libc::SYS_mount, Notify),
        (libc::SYS_umount2, Notify),
        (libc::SYS_kexec_load, Notify),
        (libc::SYS_kexec_file_load, Notify),
        (libc::SYS_init_module, Notify),
        (libc::SYS_finit_module, Notify),
        (libc::SYS_delete_module, Notify),
        (libc::SYS_clock_settime, Notify),
        (libc::SYS_clock_adjtime, Notify),
        (libc::SYS_settimeofday, Notify),
        (libc::SYS_adjtimex, Notify),
        (libc::SYS_swapon, Notify),
        (libc::SYS_swapoff, Notify),
        (libc::SYS_acct, Notify),
        (libc::SYS_open_by_handle_at, Notify),
        (libc::SYS_perf_event_open, Notify),
        (libc::SYS_bpf, Notify),
        (libc::SYS_add_key, Notify),
        (libc::SYS_keyctl, Notify),
        (libc::SYS_request_key, Notify),
        (libc::SYS_fsopen, NoSys),
        (libc::SYS_fsconfig, NoSys),
        (libc::SYS_fsmount, NoSys),
        (libc::SYS_fspick, NoSys),
        (libc::SYS_move_mount, NoSys),
        (libc::SYS_open_tree, NoSys),
        (libc::SYS_mount_setattr, NoSys),
        (OPEN_TREE_ATTR, NoSys),
    ];
    #[cfg(target_arch = "x86_64")]
    t.extend([(libc::SYS_iopl, Notify), (libc::SYS_ioperm, Notify)]);
    t
}

/// What a call does, in the words of the refusal log.
pub fn describe(nr: libc::c_long) -> &'static str {
    match nr {
        libc::SYS_kexec_load | libc::SYS_kexec_file_load => "loads a new kernel",
        libc::SYS_init_module | libc::SYS_finit_module => "loads a kernel module",
        libc::SYS_delete_module => "removes a kernel module",
        libc::SYS_clock_settime | libc::SYS_settimeofday => "sets the host's clock",
        libc::SYS_clock_adjtime | libc::SYS_adjtimex => "adjusts the host's clock",
        libc::SYS_swapon | libc::SYS_swapoff => "changes the host's swap",
        libc::SYS_acct => "switches process accounting for the host",
        libc::SYS_open_by_handle_at => "opens host files by handle, past every mount",
        libc::SYS_perf_event_open => "watches the host's performance counters",
        libc::SYS_bpf => "loads BPF programs into the kernel",
        libc::SYS_add_key | libc::SYS_keyctl | libc::SYS_request_key => {
            "uses the kernel keyrings, shared with the host"
        }
        libc::SYS_syslog => "clears, consumes or reconfigures the host's kernel log",
        #[cfg(target_arch = "x86_64")]
        libc::SYS_iopl | libc::SYS_ioperm => "reaches the host's I/O ports",
        _ => "is refused",
    }
}

/// The name of a call the filter sends to the supervisor.
pub fn syscall_name(nr: libc::c_long) -> &'static str {
    match nr {
        libc::SYS_mount => "mount",
        libc::SYS_umount2 => "umount2",
        libc::SYS_kexec_load => "kexec_load",
        libc::SYS_kexec_file_load => "kexec_file_load",
        libc::SYS_init_module => "init_module",
        libc::SYS_finit_module => "finit_module",
        libc::SYS_delete_module => "delete_module",
        libc::SYS_clock_settime => "clock_settime",
        libc::SYS_clock_adjtime => "clock_adjtime",
        libc::SYS_settimeofday => "settimeofday",
        libc::SYS_adjtimex => "adjtimex",
        libc::SYS_swapon => "swapon",
        libc::SYS_swapoff => "swapoff",
        libc::SYS_acct => "acct",
        libc::SYS_open_by_handle_at => "open_by_handle_at",
        libc::SYS_perf_event_open => "perf_event_open",
        libc::SYS_bpf => "bpf",
        libc::SYS_add_key => "add_key",
        libc::SYS_keyctl => "keyctl",
        libc::SYS_request_key => "request_key",
        libc::SYS_syslog => "syslog",
        libc::SYS_ioctl => "ioctl",
        libc::SYS_fsopen => "fsopen",
        libc::SYS_fsconfig => "fsconfig",
        libc::SYS_fsmount => "fsmount",
        libc::SYS_fspick => "fspick",
        libc::SYS_move_mount => "move_mount",
        libc::SYS_open_tree => "open_tree",
        libc::SYS_mount_setattr => "mount_setattr",
        OPEN_TREE_ATTR => "open_tree_attr",
        #[cfg(target_arch = "x86_64")]
        libc::SYS_iopl => "iopl",
        #[cfg(target_arch = "x86_64")]
        libc::SYS_ioperm => "ioperm",
        _ => "syscall",
    }
}

/// open_tree_attr (Linux 6.15), the same number on every architecture's
/// unified table, 32-bit ones included.
const OPEN_TREE_ATTR: libc::c_long = 467;

/// The calls of i386 (the 32-bit entry of an x86_64 kernel) the filter
/// names, by their i386 number (arch/x86/entry/syscalls/syscall_32.tbl),
/// each with the name of the native call it means. Its own variants mean
/// the native call that does the same: the old umount (22, no flags) is
/// umount2, stime (25) settimeofday, the time64 calls (404, 405) the
/// native clock calls. socketcall and ipc reach nothing the filter names.
/// kexec_file_load has no i386 number.
pub const I386_CALLS: &[(u32, &str)] = &[
    (21, "mount"),
    (22, "umount2"),
    (52, "umount2"),
    (283, "kexec_load"),
    (128, "init_module"),
    (350, "finit_module"),
    (129, "delete_module"),
    (264, "clock_settime"),
    (404, "clock_settime"),
    (343, "clock_adjtime"),
    (405, "clock_adjtime"),
    (79, "settimeofday"),
    (25, "settimeofday"),
    (124, "adjtimex"),
    (87, "swapon"),
    (115, "swapoff"),
    (51, "acct"),
    (342, "open_by_handle_at"),
    (336, "perf_event_open"),
    (357, "bpf"),
    (286, "add_key"),
    (288, "keyctl"),
    (287, "request_key"),
    (430, "fsopen"),
    (431, "fsconfig"),
    (432, "fsmount"),
    (433, "fspick"),
    (429, "move_mount"),
    (428, "open_tree"),
    (442, "mount_setattr"),
    (467, "open_tree_attr"),
    (110, "iopl"),
    (101, "ioperm"),
    (103, "syslog"),
    (54, "ioctl"),
];

/// The same for AArch32 (EABI, the 32-bit entry of an arm64 kernel), by
/// its numbers (arch/arm/tools/syscall.tbl). The old umount and stime
/// are OABI only, which arm64 does not run; ARM has no I/O port calls.
pub const ARM_CALLS: &[(u32, &str)] = &[
    (21, "mount"),
    (52, "umount2"),
    (347, "kexec_load"),
    (401, "kexec_file_load"),
    (128, "init_module"),
    (379, "finit_module"),
    (129, "delete_module"),
    (262, "clock_settime"),
    (404, "clock_settime"),
    (372, "clock_adjtime"),
    (405, "clock_adjtime"),
    (79, "settimeofday"),
    (124, "adjtimex"),
    (87, "swapon"),
    (115, "swapoff"),
    (51, "acct"),
    (371, "open_by_handle_at"),
    (364, "perf_event_open"),
    (386, "bpf"),
    (309, "add_key"),
    (311, "keyctl"),
    (310, "request_key"),
    (430, "fsopen"),
    (431, "fsconfig"),
    (432, "fsmount"),
    (433, "fspick"),
    (429, "move_mount"),
    (428, "open_tree"),
    (442, "mount_setattr"),
    (467, "open_tree_attr"),
    (103, "syslog"),
    (54, "ioctl"),
];

/// This machine's audit architecture (AUDIT_ARCH_X86_64, AUDIT_ARCH_AARCH64).
#[cfg(target_arch = "x86_64")]
pub const NATIVE_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
pub const NATIVE_ARCH: u32 = 0xC000_00B7;
/// The 32-bit entry's (AUDIT_ARCH_I386, AUDIT_ARCH_ARM) and its calls.
#[cfg(target_arch = "x86_64")]
pub const COMPAT_ARCH: u32 = 0x4000_0003;
#[cfg(target_arch = "x86_64")]
const COMPAT: &[(u32, &str)] = I386_CALLS;
#[cfg(target_arch = "aarch64")]
pub const COMPAT_ARCH: u32 = 0x4000_0028;
#[cfg(target_arch = "aarch64")]
const COMPAT: &[(u32, &str)] = ARM_CALLS;

/// The calls the filter names beside the table: syslog (its read-only
/// actions pass) and ioctl (the terminal's requests, on a user's terminal).
fn named() -> impl Iterator<Item = libc::c_long> {
    table()
        .into_iter()
        .map(|(nr, _)| nr)
        .chain([libc::SYS_syslog, libc::SYS_ioctl])
}

/// The native number of the call `name`, if the filter names it.
fn native_nr(name: &str) -> Option<libc::c_long> {
    named().find(|nr| syscall_name(*nr) == name)
}

/// The 32-bit entry's calls the filter names: (its number, the native one).
pub fn compat_calls() -> Vec<(u32, libc::c_long)> {
    COMPAT
        .iter()
        .map(|&(nr, name)| {
            let native = native_nr(name).expect("every 32-bit call means a native one");
            (nr, native)
        })
        .collect()
}

/// The machines whose programs the filter confines ([`confines`]), by
/// the names fwrun's messages give them.
#[cfg(target_arch = "x86_64")]
pub const CONFINED: [&str; 2] = ["x86_64", "i386"];
#[cfg(target_arch = "aarch64")]
pub const CONFINED: [&str; 2] = ["aarch64", "arm"];

/// Whether the filter treats calls from the entry of ELF machine `code`
/// (32 or 64-bit, little or big-endian, as its header says) as this
/// machine's: its own and the 32-bit one beside it, little-endian. A
/// program for any other entry (x32, big-endian ARM) would meet ENOSYS at
/// its first call.
pub fn confines(code: u16, is_64: bool, little_endian: bool) -> bool {
    #[cfg(target_arch = "x86_64")]
    let known = [(62, true), (3, false)];
    #[cfg(target_arch = "aarch64")]
    let known = [(183, true), (40, false)];
    little_endian && known.contains(&(code, is_64))
}

/// A notification as the native call it means, for the supervisor, whose
/// handlers know native numbers only: a 32-bit call gets its native
/// number, and its arguments their low 32 bits (pointers, flags: the
/// caller's registers are 32 bits wide). None for a call the filter never
/// sends (another entry's).
pub fn as_native(mut req: libc::seccomp_notif) -> Option<libc::seccomp_notif> {
    if req.data.arch == NATIVE_ARCH {
        return Some(req);
    }
    if req.data.arch != COMPAT_ARCH {
        return None;
    }
    let nr = req.data.nr as u32;
    let native = compat_calls()
        .into_iter()
        .find_map(|(c, n)| (c == nr).then_some(n))?;
    #[cfg(target_arch = "x86_64")]
    let no_flags = nr == 22;
    #[cfg(target_arch = "aarch64")]
    let no_flags = false;
    for a in req.data.args.iter_mut() {
        *a &= 0xFFFF_FFFF;
    }
    if no_flags {
        // umount(target) has no flags argument: umount2(target, 0).
        req.data.args[1] = 0;
    }
    req.data.nr = native as i32;
    Some(req)
}

/// syslog(2) actions that only read: the kernel log may be read, not
/// cleared, consumed or reconfigured. 0 and 1 (close, open) do nothing.
pub const SYSLOG_READ_ONLY: &[u32] = &[0, 1, 3, 9, 10];

const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGE: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
const AND: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;
const OFFSET_ARG0: u32 = 16;
/// mount(2)'s flags, a 64-bit argument: its low and high words.
const OFFSET_ARG3_LO: u32 = 16 + 3 * 8;
const OFFSET_ARG3_HI: u32 = OFFSET_ARG3_LO + 4;

/// The flags every mount(2) the filter lets through must have: a bind
/// remount (it changes one mount's flags, never a file system's) that
/// leaves the mount read-only and nodev.
const FAST_REQUIRED: u32 =
    (libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NODEV) as u32;
/// And the flags it may have besides.
const FAST_ALLOWED: u32 = FAST_REQUIRED
    | (libc::MS_NOSUID
        | libc::MS_NOEXEC
        | libc::MS_NOATIME
        | libc::MS_NODIRATIME
        | libc::MS_RELATIME
        | libc::MS_STRICTATIME
        | libc::MS_SILENT) as u32;

fn op(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

fn errno(e: i32) -> u32 {
    libc::SECCOMP_RET_ERRNO | (e as u32 & libc::SECCOMP_RET_DATA)
}

/// ioctl(2)'s request, the low word of its second argument (the kernel
/// reads 32 bits of it).
const OFFSET_ARG1_LO: u32 = 16 + 8;
/// Requests that reach a terminal beyond reading and writing it: faking
/// its input (TIOCSTI), taking the system console (TIOCCONS), the Linux
/// console's own subcommands (TIOCLINUX).
const TERMINAL_REQUESTS: [u32; 3] = [0x5412, 0x541D, 0x541C];
/// And whole families of them, by their type byte: the keyboard and
/// console modes (KD*), the virtual terminals (VT_*).
const TERMINAL_FAMILIES: [u32; 2] = [0x4B00, 0x5600];

/// What the filter does with an ioctl(2) call (the number matched) when
/// the firmware's console is the user's terminal: the requests above are
/// refused with EPERM, every other goes ahead. In a user namespace of its
/// own the kernel refuses most of them already (they need the host's
/// capabilities); this keeps the rest, and a firmware run with --userns
/// off, off the user's terminal. The instructions end in returns.
fn terminal_ioctls() -> Vec<libc::sock_filter> {
    const DENY: usize = 8;
    let to_deny = |at: usize| (DENY - at - 1) as u8;
    let [sti, cons, linux] = TERMINAL_REQUESTS;
    let [kd, vt] = TERMINAL_FAMILIES;
    vec![
        /* 0 */ op(LD_W_ABS, OFFSET_ARG1_LO),
        /* 1 */ jump(JEQ, sti, to_deny(1), 0),
        /* 2 */ jump(JEQ, cons, to_deny(2), 0),
        /* 3 */ jump(JEQ, linux, to_deny(3), 0),
        /* 4 */ op(AND, 0xff00),
        /* 5 */ jump(JEQ, kd, to_deny(5), 0),
        /* 6 */ jump(JEQ, vt, to_deny(6), 0),
        /* 7 */ op(RET, libc::SECCOMP_RET_ALLOW),
        /* 8 */ op(RET, errno(libc::EPERM)),
    ]
}

/// What the filter does with a mount(2) call (the number matched) when the
/// supervisor's answer is known from the flags alone: a bind remount that
/// leaves its mount read-only and nodev, a recursive bind (it takes every
/// submount along, masks and read-only flags included), and a change of
/// propagation only go ahead, as the supervisor would let them; anything
/// else goes to the supervisor. The instructions end in returns.
fn fast_mounts() -> Vec<libc::sock_filter> {
    const ALLOW: u8 = 16;
    const NOTIFY: u8 = 17;
    let lo = || op(LD_W_ABS, OFFSET_ARG3_LO);
    let rbind = (libc::MS_BIND | libc::MS_REC) as u32;
    let kinds = (libc::MS_REMOUNT | libc::MS_BIND | libc::MS_MOVE) as u32;
    let propagation =
        (libc::MS_SHARED | libc::MS_PRIVATE | libc::MS_SLAVE | libc::MS_UNBINDABLE) as u32;
    let p = vec![
        // FAST_LOW_WORD is the first instruction after these two.
        /* 0 */
        op(LD_W_ABS, OFFSET_ARG3_HI),
        /* 1 */ jump(JEQ, 0, 0, NOTIFY - 2),
        // A read-only nodev bind remount, with nothing else but these.
        /* 2 */ lo(),
        /* 3 */ op(AND, FAST_REQUIRED),
        /* 4 */ jump(JEQ, FAST_REQUIRED, 0, 8 - 5),
        /* 5 */ lo(),
        /* 6 */ op(AND, !FAST_ALLOWED),
        /* 7 */ jump(JEQ, 0, ALLOW - 8, NOTIFY - 8),
        // A recursive bind (not a remount nor a move).
        /* 8 */ lo(),
        /* 9 */ op(AND, kinds | libc::MS_REC as u32),
        /* 10 */ jump(JEQ, rbind, ALLOW - 11, 0),
        // A propagation change: none of the other kinds, a propagation flag.
        /* 11 */
        op(AND, kinds),
        /* 12 */ jump(JEQ, 0, 0, NOTIFY - 13),
        /* 13 */ lo(),
        /* 14 */ op(AND, propagation),
        /* 15 */ jump(JEQ, 0, NOTIFY - 16, ALLOW - 16),
        /* 16 */ op(RET, libc::SECCOMP_RET_ALLOW),
        /* 17 */ op(RET, libc::SECCOMP_RET_USER_NOTIF),
    ];
    debug_assert_eq!(p.len(), NOTIFY as usize + 1);
    p
}

/// Where [`fast_mounts`] starts on the flags' low word.
const FAST_LOW_WORD: usize = 2;

/// A jump target while the program is laid out: so many instructions on,
/// or a label placed further down.
#[derive(Clone, Copy)]
enum To {
    Skip(u8),
    Label(usize),
}

/// The program under construction: instructions whose forward jumps may
/// name labels, resolved once every label has its place.
#[derive(Default)]
struct Layout {
    code: Vec<(libc::sock_filter, To, To)>,
    labels: Vec<Option<usize>>,
}

impl Layout {
    /// An instruction as it stands (its jumps, if any, relative).
    fn push(&mut self, i: libc::sock_filter) {
        self.code.push((i, To::Skip(i.jt), To::Skip(i.jf)));
    }

    fn jump(&mut self, code: u16, k: u32, jt: To, jf: To) {
        self.code.push((jump(code, k, 0, 0), jt, jf));
    }

    fn label(&mut self) -> usize {
        self.labels.push(None);
        self.labels.len() - 1
    }

    fn place(&mut self, label: usize) {
        self.labels[label] = Some(self.code.len());
    }

    fn finish(self) -> Vec<libc::sock_filter> {
        let offset = |at: usize, to: To| -> u8 {
            match to {
                To::Skip(n) => n,
                To::Label(l) => {
                    let target = self.labels[l].expect("every label is placed");
                    u8::try_from(target - at - 1).expect("a jump of at most 255")
                }
            }
        };
        self.code
            .iter()
            .enumerate()
            .map(|(at, (i, jt, jf))| libc::sock_filter {
                jt: offset(at, *jt),
                jf: offset(at, *jf),
                ..*i
            })
            .collect()
    }
}

/// How many calls a leaf of the search compares one by one.
const LEAF: usize = 4;

/// A binary search for the call's number among `calls` (sorted): the
/// accumulator holds the number. A call found jumps to its action's
/// label; any other is allowed.
fn search(p: &mut Layout, calls: &[(u32, usize)]) {
    if calls.len() <= LEAF {
        for &(nr, action) in calls {
            p.jump(JEQ, nr, To::Label(action), To::Skip(0));
        }
        p.push(op(RET, libc::SECCOMP_RET_ALLOW));
        return;
    }
    let mid = calls.len() / 2;
    let upper = p.label();
    p.jump(JGE, calls[mid].0, To::Label(upper), To::Skip(0));
    search(p, &calls[..mid]);
    p.place(upper);
    search(p, &calls[mid..]);
}

/// The filter program. With `fast_bind_remounts`, the mount(2) calls whose
/// answer the flags tell ([`fast_mounts`]) go ahead without a round trip to
/// the supervisor (systemd makes about a hundred and fifty at boot, for its
/// units' sandboxes). Not under an AppArmor profile: the supervisor makes
/// some of them on the firmware's behalf there, where the profile would
/// refuse them.
///
/// The calls it names are found by a binary search on the number rather
/// than one comparison after another: when the filter is installed, the
/// kernel runs it once for every call number to learn which ones it always
/// allows, and a search makes that several times shorter.
pub fn program(fast_bind_remounts: bool) -> Vec<libc::sock_filter> {
    program_with(fast_bind_remounts, false)
}

/// The program, and with `guard_terminal` (the firmware's console is the
/// user's own terminal: `--console inherit`) the ioctl(2) requests that
/// reach a terminal beyond reading and writing it refused with EPERM
/// ([`terminal_ioctls`]).
pub fn program_with(fast_bind_remounts: bool, guard_terminal: bool) -> Vec<libc::sock_filter> {
    let mut p = Layout::default();
    // Where the calls the filter names go, once found.
    let (notify, nosys, fast_mount, syslog) = (p.label(), p.label(), p.label(), p.label());
    let (ioctl, compat, fast_mount_32) = (p.label(), p.label(), p.label());
    p.push(op(LD_W_ABS, OFFSET_ARCH));
    p.jump(JEQ, COMPAT_ARCH, To::Label(compat), To::Skip(0));
    p.push(jump(JEQ, NATIVE_ARCH, 1, 0));
    p.push(op(RET, errno(libc::ENOSYS)));
    p.push(op(LD_W_ABS, OFFSET_NR));
    #[cfg(target_arch = "x86_64")]
    {
        // x32 calls carry this bit in their number.
        p.push(jump(JGE, 0x4000_0000, 0, 1));
        p.push(op(RET, errno(libc::ENOSYS)));
    }
    // Where a call goes, by its native number; a 32-bit call's mount
    // flags are one word.
    let target = |nr: libc::c_long, wide: bool| match treat(nr) {
        Some(Treat::Notify) if nr == libc::SYS_mount && fast_bind_remounts => match wide {
            true => Some(fast_mount),
            false => Some(fast_mount_32),
        },
        Some(Treat::Notify) => Some(notify),
        Some(Treat::NoSys) => Some(nosys),
        None if nr == libc::SYS_syslog => Some(syslog),
        None if nr == libc::SYS_ioctl => guard_terminal.then_some(ioctl),
        None => None,
    };
    let mut calls: Vec<(u32, usize)> = named()
        .filter_map(|nr| Some((nr as u32, target(nr, true)?)))
        .collect();
    calls.sort_unstable();
    search(&mut p, &calls);
    // The 32-bit entry: its numbers, to the same places.
    p.place(compat);
    p.push(op(LD_W_ABS, OFFSET_NR));
    let mut calls: Vec<(u32, usize)> = compat_calls()
        .into_iter()
        .filter_map(|(nr, native)| Some((nr, target(native, false)?)))
        .collect();
    calls.sort_unstable();
    search(&mut p, &calls);
    p.place(notify);
    p.push(op(RET, libc::SECCOMP_RET_USER_NOTIF));
    p.place(nosys);
    p.push(op(RET, errno(libc::ENOSYS)));
    if fast_bind_remounts {
        // The high word of the flags must be 0; a 32-bit caller's flags
        // have none, and come in after its check.
        p.place(fast_mount);
        for (at, i) in fast_mounts().into_iter().enumerate() {
            if at == FAST_LOW_WORD {
                p.place(fast_mount_32);
            }
            p.push(i);
        }
    }
    if guard_terminal {
        p.place(ioctl);
        for i in terminal_ioctls() {
            p.push(i);
        }
    }
    // syslog: the read-only actions pass, the others go to the supervisor.
    p.place(syslog);
    p.push(op(LD_W_ABS, OFFSET_ARG0));
    let n = SYSLOG_READ_ONLY.len() as u8;
    for (i, action) in SYSLOG_READ_ONLY.iter().enumerate() {
        // On a match, jump over the rest and the notify to the allow.
        p.push(jump(JEQ, *action, n - i as u8, 0));
    }
    p.push(op(RET, libc::SECCOMP_RET_USER_NOTIF));
    p.push(op(RET, libc::SECCOMP_RET_ALLOW));
    p.finish()
}

/// How the table treats the call `nr`, if it names it.
fn treat(nr: libc::c_long) -> Option<Treat> {
    table()
        .into_iter()
        .find_map(|(n, t)| (n == nr).then_some(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run the program on one call, as the kernel would.
    fn verdict(nr: libc::c_long, arch: u32, arg0: u64) -> u32 {
        run(&program(false), nr, arch, [arg0, 0, 0, 0])
    }

    fn run(prog: &[libc::sock_filter], nr: libc::c_long, arch: u32, args: [u64; 4]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&(nr as i32).to_ne_bytes());
        data[4..8].copy_from_slice(&arch.to_ne_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
        }
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let i = prog[pc];
            match i.code {
                LD_W_ABS => {
                    let k = i.k as usize;
                    acc = u32::from_ne_bytes(data[k..k + 4].try_into().unwrap());
                    pc += 1;
                }
                JEQ | JGE => {
                    let hit = if i.code == JEQ {
                        acc == i.k
                    } else {
                        acc >= i.k
                    };
                    pc += 1 + if hit { i.jt } else { i.jf } as usize;
                }
                AND => {
                    acc &= i.k;
                    pc += 1;
                }
                RET => return i.k,
                c => panic!("unknown opcode {c:#x}"),
            }
        }
    }

    #[test]
    fn the_filter_sends_allows_and_refuses_as_documented() {
        let n = NATIVE_ARCH;
        assert_eq!(verdict(libc::SYS_mount, n, 0), libc::SECCOMP_RET_USER_NOTIF);
        assert_eq!(
            verdict(libc::SYS_umount2, n, 0),
            libc::SECCOMP_RET_USER_NOTIF
        );
        assert_eq!(
            verdict(libc::SYS_init_module, n, 0),
            libc::SECCOMP_RET_USER_NOTIF
        );
        assert_eq!(verdict(libc::SYS_fsopen, n, 0), errno(libc::ENOSYS));
        assert_eq!(verdict(libc::SYS_openat, n, 0), libc::SECCOMP_RET_ALLOW);
        assert_eq!(verdict(libc::SYS_read, n, 0), libc::SECCOMP_RET_ALLOW);
        // syslog: READ_ALL passes, CONSOLE_LEVEL (dmesg -n) and READ_CLEAR
        // (dmesg -c) go to the supervisor.
        assert_eq!(verdict(libc::SYS_syslog, n, 3), libc::SECCOMP_RET_ALLOW);
        assert_eq!(verdict(libc::SYS_syslog, n, 10), libc::SECCOMP_RET_ALLOW);
        assert_eq!(
            verdict(libc::SYS_syslog, n, 8),
            libc::SECCOMP_RET_USER_NOTIF
        );
        assert_eq!(
            verdict(libc::SYS_syslog, n, 4),
            libc::SECCOMP_RET_USER_NOTIF
        );
        assert_eq!(
            verdict(libc::SYS_syslog, n, 2),
            libc::SECCOMP_RET_USER_NOTIF
        );
        // Another architecture's entry (x32's own, big-endian ARM's).
        assert_eq!(verdict(libc::SYS_read, 0x4000_003E, 0), errno(libc::ENOSYS));
        assert_eq!(verdict(3, 0x0000_0028, 0), errno(libc::ENOSYS));
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            verdict(0x4000_0000 + libc::SYS_read, n, 0),
            errno(libc::ENOSYS)
        );
    }

    #[test]
    fn flag_decided_mounts_pass_only_when_asked() {
        let n = NATIVE_ARCH;
        let (fast, slow) = (program(true), program(false));
        let mount =
            |p: &[libc::sock_filter], flags: u64| run(p, libc::SYS_mount, n, [0, 0, 0, flags]);
        let (notify, allow) = (libc::SECCOMP_RET_USER_NOTIF, libc::SECCOMP_RET_ALLOW);
        let ro_nodev = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NODEV;
        // systemd's: read-only, nosuid, nodev, noexec.
        assert_eq!(
            mount(&fast, ro_nodev | libc::MS_NOSUID | libc::MS_NOEXEC),
            allow
        );
        assert_eq!(mount(&slow, ro_nodev), notify);
        for without in [
            libc::MS_REMOUNT,
            libc::MS_BIND,
            libc::MS_RDONLY,
            libc::MS_NODEV,
        ] {
            assert_eq!(mount(&fast, ro_nodev & !without), notify, "{without:#x}");
        }
        // Anything else along (MS_REC, a propagation change, the old magic
        // in the high bits of the word, a bit past 32): the supervisor.
        for extra in [libc::MS_REC, libc::MS_SHARED, 0xC0ED_0000, 1 << 40] {
            assert_eq!(mount(&fast, ro_nodev | extra), notify, "{extra:#x}");
        }
        // Recursive binds and propagation changes pass; a bind without its
        // submounts, a move, a new mount or any remount that is not the
        // read-only nodev one go to the supervisor.
        for ok in [
            libc::MS_BIND | libc::MS_REC,
            libc::MS_BIND | libc::MS_REC | libc::MS_RDONLY | libc::MS_SILENT,
            libc::MS_REC | libc::MS_SLAVE,
            libc::MS_SLAVE,
            libc::MS_REC | libc::MS_SHARED,
            libc::MS_PRIVATE,
            libc::MS_UNBINDABLE | libc::MS_REC,
        ] {
            assert_eq!(mount(&fast, ok), allow, "{ok:#x}");
            assert_eq!(mount(&slow, ok), notify, "{ok:#x}");
        }
        for no in [
            libc::MS_BIND,
            libc::MS_MOVE,
            libc::MS_BIND | libc::MS_REC | libc::MS_REMOUNT,
            libc::MS_BIND | libc::MS_REC | libc::MS_MOVE,
            libc::MS_MOVE | libc::MS_SLAVE,
            libc::MS_REMOUNT | libc::MS_SHARED,
            libc::MS_BIND | libc::MS_SLAVE,
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            0,
            libc::MS_REMOUNT | libc::MS_BIND | libc::MS_NOSUID | libc::MS_NODEV,
            (libc::MS_BIND | libc::MS_REC) | 1 << 40,
        ] {
            assert_eq!(mount(&fast, no), notify, "{no:#x}");
        }
        // The other calls are as without.
        assert_eq!(run(&fast, libc::SYS_umount2, n, [0; 4]), notify);
        assert_eq!(run(&fast, libc::SYS_read, n, [0; 4]), allow);
        assert_eq!(run(&fast, libc::SYS_fsopen, n, [0; 4]), errno(libc::ENOSYS));
    }

    /// The filter as one comparison after another, as it was first
    /// written, the 32-bit entry's calls after the native ones: the search
    /// must answer every call as this does.
    fn one_by_one(fast_bind_remounts: bool) -> Vec<libc::sock_filter> {
        let mut native = vec![op(LD_W_ABS, OFFSET_NR)];
        #[cfg(target_arch = "x86_64")]
        native.extend([jump(JGE, 0x4000_0000, 0, 1), op(RET, errno(libc::ENOSYS))]);
        native.extend(compare(fast_bind_remounts, true, &[]));
        let mut p = vec![
            op(LD_W_ABS, OFFSET_ARCH),
            jump(JEQ, NATIVE_ARCH, 0, native.len() as u8),
        ];
        p.extend(native);
        p.extend([
            jump(JEQ, COMPAT_ARCH, 1, 0),
            op(RET, errno(libc::ENOSYS)),
            op(LD_W_ABS, OFFSET_NR),
        ]);
        p.extend(compare(fast_bind_remounts, false, &compat_calls()));
        p
    }

    /// One entry's comparisons, ending in an allow: by the native numbers,
    /// or by `compat`'s.
    fn compare(fast: bool, wide: bool, compat: &[(u32, libc::c_long)]) -> Vec<libc::sock_filter> {
        let own = |native: libc::c_long| -> Vec<u32> {
            match wide {
                true => vec![native as u32],
                false => compat
                    .iter()
                    .filter(|(_, n)| *n == native)
                    .map(|(c, _)| *c)
                    .collect(),
            }
        };
        let mut p = Vec::new();
        if fast {
            let mut f = fast_mounts();
            if !wide {
                f.drain(..FAST_LOW_WORD);
            }
            for nr in own(libc::SYS_mount) {
                p.push(jump(JEQ, nr, 0, f.len() as u8));
                p.extend(f.clone());
            }
        }
        for (native, treat) in table() {
            let ret = match treat {
                Treat::Notify => libc::SECCOMP_RET_USER_NOTIF,
                Treat::NoSys => errno(libc::ENOSYS),
            };
            for nr in own(native) {
                p.push(jump(JEQ, nr, 0, 1));
                p.push(op(RET, ret));
            }
        }
        let n = SYSLOG_READ_ONLY.len() as u8;
        for nr in own(libc::SYS_syslog) {
            p.push(jump(JEQ, nr, 0, n + 2));
            p.push(op(LD_W_ABS, OFFSET_ARG0));
            for (i, action) in SYSLOG_READ_ONLY.iter().enumerate() {
                p.push(jump(JEQ, *action, n - i as u8, 0));
            }
            p.push(op(RET, libc::SECCOMP_RET_USER_NOTIF));
            p.push(op(RET, libc::SECCOMP_RET_ALLOW));
        }
        p.push(op(RET, libc::SECCOMP_RET_ALLOW));
        p
    }

    #[test]
    fn the_search_answers_every_call_as_comparing_one_by_one_does() {
        let ro_nodev = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NODEV;
        let args = [
            [0u64; 4],
            [3, 0, 0, ro_nodev],
            [8, 0, 0, libc::MS_BIND | libc::MS_REC],
            [10, 0, 0, libc::MS_PRIVATE],
            [2, 0, 0, libc::MS_MOVE],
        ];
        for fast in [false, true] {
            let (search, reference) = (program(fast), one_by_one(fast));
            for arch in [NATIVE_ARCH, COMPAT_ARCH, 0x4000_003E, 0xC000_0028] {
                for nr in (0..1024).chain([0x4000_0000, 0x4000_0002, u32::MAX as i64]) {
                    for a in args {
                        assert_eq!(
                            run(&search, nr, arch, a),
                            run(&reference, nr, arch, a),
                            "call {nr}, arch {arch:#x}, arguments {a:?}, fast {fast}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn every_notified_call_has_a_name_and_a_reason() {
        for (nr, t) in table() {
            if t == Treat::Notify {
                assert_ne!(syscall_name(nr), "syscall", "{nr}");
                if nr != libc::SYS_mount && nr != libc::SYS_umount2 {
                    assert_ne!(describe(nr), "is refused", "{nr}");
                }
            }
        }
    }

    #[test]
    fn the_users_terminal_is_read_and_written_only() {
        let n = NATIVE_ARCH;
        let ioctl =
            |prog: &[libc::sock_filter], req: u64| run(prog, libc::SYS_ioctl, n, [1, req, 0, 0]);
        let guarded = program_with(false, true);
        let deny = errno(libc::EPERM);
        // TIOCSTI, TIOCCONS, TIOCLINUX, KDSETMODE, KDSKBMODE, VT_ACTIVATE.
        for req in [0x5412, 0x541D, 0x541C, 0x4B3A, 0x4B51, 0x5606] {
            assert_eq!(ioctl(&guarded, req), deny, "{req:#x}");
            assert_eq!(ioctl(&program(false), req), libc::SECCOMP_RET_ALLOW);
        }
        // TCGETS, TIOCGWINSZ, TIOCSPGRP, TIOCSCTTY.
        for req in [0x5401, 0x5413, 0x5410, 0x540E] {
            assert_eq!(ioctl(&guarded, req), libc::SECCOMP_RET_ALLOW, "{req:#x}");
        }
        // The rest of the filter is as it was.
        assert_eq!(
            run(&guarded, libc::SYS_mount, n, [0; 4]),
            libc::SECCOMP_RET_USER_NOTIF
        );
        assert_eq!(
            run(&guarded, libc::SYS_read, n, [0; 4]),
            libc::SECCOMP_RET_ALLOW
        );
    }

    /// Every call the filter names on either 64-bit machine, by name.
    const NAMES: &[&str] = &[
        "mount",
        "umount2",
        "kexec_load",
        "kexec_file_load",
        "init_module",
        "finit_module",
        "delete_module",
        "clock_settime",
        "clock_adjtime",
        "settimeofday",
        "adjtimex",
        "swapon",
        "swapoff",
        "acct",
        "open_by_handle_at",
        "perf_event_open",
        "bpf",
        "add_key",
        "keyctl",
        "request_key",
        "fsopen",
        "fsconfig",
        "fsmount",
        "fspick",
        "move_mount",
        "open_tree",
        "mount_setattr",
        "open_tree_attr",
        "iopl",
        "ioperm",
        "syslog",
        "ioctl",
    ];

    #[test]
    fn every_call_has_its_numbers_on_each_32_bit_entry() {
        // The names are this machine's calls, all of them.
        let here: Vec<&str> = named().map(syscall_name).collect();
        assert!(here.iter().all(|n| NAMES.contains(n)), "{here:?}");
        for (table, absent) in [
            (I386_CALLS, &["kexec_file_load"][..]),
            (ARM_CALLS, &["iopl", "ioperm"][..]),
        ] {
            for name in NAMES {
                let has = table.iter().any(|(_, n)| n == name);
                assert_eq!(has, !absent.contains(name), "{name}");
            }
            let mut numbers: Vec<u32> = table.iter().map(|(nr, _)| *nr).collect();
            numbers.sort_unstable();
            numbers.dedup();
            assert_eq!(numbers.len(), table.len(), "a number given twice");
            assert!(table.iter().all(|(_, n)| NAMES.contains(n)));
        }
        // The 32-bit-only variants, and a few numbers as the kernel's
        // tables give them.
        let i386 = |nr| I386_CALLS.iter().find(|(c, _)| *c == nr).map(|(_, n)| *n);
        let arm = |nr| ARM_CALLS.iter().find(|(c, _)| *c == nr).map(|(_, n)| *n);
        assert_eq!(i386(22), Some("umount2"));
        assert_eq!(i386(25), Some("settimeofday"));
        assert_eq!(i386(404), Some("clock_settime"));
        assert_eq!(i386(405), Some("clock_adjtime"));
        assert_eq!(i386(21), Some("mount"));
        assert_eq!(i386(103), Some("syslog"));
        assert_eq!(arm(379), Some("finit_module"));
        assert_eq!(arm(262), Some("clock_settime"));
        assert_eq!(arm(22), None, "OABI only");
        assert_eq!(compat_calls().len(), COMPAT.len());
    }

    #[test]
    fn a_32_bit_call_is_answered_as_the_native_one_it_means() {
        let words = [
            [0u64; 4],
            [3, 0, 0, 0],
            [8, 0x5412, 0, 0],
            [10, 0x4B3A, 0, 0],
            [
                0,
                0x5401,
                0,
                libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NODEV,
            ],
            [0, 0, 0, libc::MS_BIND | libc::MS_REC],
            [0, 0, 0, libc::MS_PRIVATE],
            [0, 0, 0, libc::MS_MOVE],
        ];
        for (fast, guard) in [(false, false), (true, false), (false, true), (true, true)] {
            let prog = program_with(fast, guard);
            for (nr, native) in compat_calls() {
                for a in words {
                    assert_eq!(
                        run(&prog, nr as libc::c_long, COMPAT_ARCH, a),
                        run(&prog, native, NATIVE_ARCH, a),
                        "32-bit call {nr} ({}), arguments {a:?}, fast {fast}, terminal {guard}",
                        syscall_name(native)
                    );
                }
            }
            // The others are allowed: read, write, open, socketcall.
            for nr in [3, 4, 5, 102] {
                assert_eq!(run(&prog, nr, COMPAT_ARCH, [0; 4]), libc::SECCOMP_RET_ALLOW);
            }
        }
        // A 32-bit caller's flags are its register's: a high word set there
        // does not send a fast mount to the supervisor.
        let ro_nodev = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NODEV;
        let mount32 = COMPAT.iter().find(|(_, n)| *n == "mount").unwrap().0;
        assert_eq!(
            run(
                &program(true),
                mount32 as libc::c_long,
                COMPAT_ARCH,
                [0, 0, 0, ro_nodev | 1 << 40]
            ),
            libc::SECCOMP_RET_ALLOW
        );
    }

    fn notification(arch: u32, nr: i32, args: [u64; 6]) -> libc::seccomp_notif {
        // SAFETY: a plain C struct of integers.
        let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        req.id = 7;
        req.data.arch = arch;
        req.data.nr = nr;
        req.data.args = args;
        req
    }

    #[test]
    fn the_supervisor_sees_32_bit_calls_as_native_ones() {
        let high = 0xDEAD_BEEF_0000_0000u64;
        let args = [high | 0x1000, high | 0x2000, 0x3000, high | 0x21, 5, 6];
        let native = as_native(notification(NATIVE_ARCH, libc::SYS_mount as i32, args)).unwrap();
        assert_eq!(native.data.args, args, "native calls are left alone");
        assert_eq!(native.data.nr, libc::SYS_mount as i32);
        for (nr, want) in compat_calls() {
            let req = as_native(notification(COMPAT_ARCH, nr as i32, args)).unwrap();
            assert_eq!(req.data.nr as libc::c_long, want, "{nr}");
            assert_eq!(req.id, 7);
            assert_eq!(req.data.args[0], 0x1000, "a pointer's low 32 bits");
            assert_eq!(req.data.args[3], 0x21, "the flags' low 32 bits");
        }
        #[cfg(target_arch = "x86_64")]
        {
            let old = as_native(notification(COMPAT_ARCH, 22, args)).unwrap();
            assert_eq!(old.data.nr as libc::c_long, libc::SYS_umount2);
            assert_eq!(old.data.args[1], 0, "umount(2) has no flags");
            assert_eq!(
                as_native(notification(COMPAT_ARCH, 52, args))
                    .unwrap()
                    .data
                    .args[1],
                0x2000
            );
        }
        // A 32-bit call the filter never sends, another entry's.
        assert!(as_native(notification(COMPAT_ARCH, 3, args)).is_none());
        assert!(as_native(notification(0x4000_003E, 21, args)).is_none());
    }

    #[test]
    fn the_filter_confines_this_machine_s_own_and_32_bit_programs_only() {
        #[cfg(target_arch = "x86_64")]
        {
            assert!(confines(62, true, true));
            assert!(confines(3, false, true));
            assert!(!confines(62, false, true), "x32");
        }
        #[cfg(target_arch = "aarch64")]
        {
            assert!(confines(183, true, true));
            assert!(confines(40, false, true));
            assert!(!confines(40, false, false), "big-endian ARM");
            assert!(!confines(183, false, true), "ILP32");
        }
        assert!(!confines(8, false, true));
    }
}
