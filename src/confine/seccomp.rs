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
//! - Everything else is allowed. A call from another architecture's entry
//!   (32-bit x86 on a 64-bit kernel, x32) answers ENOSYS: the filter checks
//!   this machine's table only.

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
        // open_tree_attr (Linux 6.15), the same number on every
        // architecture's unified table.
        (467, NoSys),
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
        #[cfg(target_arch = "x86_64")]
        libc::SYS_iopl => "iopl",
        #[cfg(target_arch = "x86_64")]
        libc::SYS_ioperm => "ioperm",
        _ => "syscall",
    }
}

/// syslog(2) actions that only read: the kernel log may be read, not
/// cleared, consumed or reconfigured. 0 and 1 (close, open) do nothing.
pub const SYSLOG_READ_ONLY: &[u32] = &[0, 1, 3, 9, 10];

#[cfg(target_arch = "x86_64")]
const NATIVE_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const NATIVE_ARCH: u32 = 0xC000_00B7;

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
        /* 0 */ op(LD_W_ABS, OFFSET_ARG3_HI),
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
    p.push(op(LD_W_ABS, OFFSET_ARCH));
    p.push(jump(JEQ, NATIVE_ARCH, 1, 0));
    p.push(op(RET, errno(libc::ENOSYS)));
    p.push(op(LD_W_ABS, OFFSET_NR));
    #[cfg(target_arch = "x86_64")]
    {
        // x32 calls carry this bit in their number.
        p.push(jump(JGE, 0x4000_0000, 0, 1));
        p.push(op(RET, errno(libc::ENOSYS)));
    }
    // Where the calls the filter names go, once found.
    let (notify, nosys, fast_mount, syslog) = (p.label(), p.label(), p.label(), p.label());
    let ioctl = p.label();
    let mut calls: Vec<(u32, usize)> = table()
        .into_iter()
        .map(|(nr, treat)| {
            let to = match treat {
                Treat::Notify if nr == libc::SYS_mount && fast_bind_remounts => fast_mount,
                Treat::Notify => notify,
                Treat::NoSys => nosys,
            };
            (nr as u32, to)
        })
        .chain([(libc::SYS_syslog as u32, syslog)])
        .chain(guard_terminal.then_some((libc::SYS_ioctl as u32, ioctl)))
        .collect();
    calls.sort_unstable();
    search(&mut p, &calls);
    p.place(notify);
    p.push(op(RET, libc::SECCOMP_RET_USER_NOTIF));
    p.place(nosys);
    p.push(op(RET, errno(libc::ENOSYS)));
    if fast_bind_remounts {
        p.place(fast_mount);
        for i in fast_mounts() {
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
        // Another architecture's entry.
        assert_eq!(verdict(libc::SYS_read, 0x4000_0003, 0), errno(libc::ENOSYS));
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
    /// written: the search must answer every call as this does.
    fn one_by_one(fast_bind_remounts: bool) -> Vec<libc::sock_filter> {
        let mut p = vec![
            op(LD_W_ABS, OFFSET_ARCH),
            jump(JEQ, NATIVE_ARCH, 1, 0),
            op(RET, errno(libc::ENOSYS)),
            op(LD_W_ABS, OFFSET_NR),
        ];
        #[cfg(target_arch = "x86_64")]
        p.extend([jump(JGE, 0x4000_0000, 0, 1), op(RET, errno(libc::ENOSYS))]);
        if fast_bind_remounts {
            let fast = fast_mounts();
            p.push(jump(JEQ, libc::SYS_mount as u32, 0, fast.len() as u8));
            p.extend(fast);
        }
        for (nr, treat) in table() {
            let ret = match treat {
                Treat::Notify => libc::SECCOMP_RET_USER_NOTIF,
                Treat::NoSys => errno(libc::ENOSYS),
            };
            p.push(jump(JEQ, nr as u32, 0, 1));
            p.push(op(RET, ret));
        }
        let n = SYSLOG_READ_ONLY.len() as u8;
        p.push(jump(JEQ, libc::SYS_syslog as u32, 0, n + 2));
        p.push(op(LD_W_ABS, OFFSET_ARG0));
        for (i, action) in SYSLOG_READ_ONLY.iter().enumerate() {
            p.push(jump(JEQ, *action, n - i as u8, 0));
        }
        p.push(op(RET, libc::SECCOMP_RET_USER_NOTIF));
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
            for arch in [NATIVE_ARCH, 0x4000_0003] {
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
}
