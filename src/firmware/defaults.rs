//! The defaults fwrun reads from the firmware before it starts it: the
//! stop signal (`--stop-signal auto`), the console (`--console auto`) and,
//! for a program this machine cannot run by itself, the binfmt_misc handler
//! that runs it. Each choice is said under -v and put in the report, with
//! why.

use std::ffi::{CString, OsString};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::Result;
use rustix::stdio::{stdin, stdout};

use crate::confine::seccomp;
use crate::error::fail;
use crate::firmware::rootfs::ResolvedBind;
use crate::host::binfmt::{self, Handler};
use crate::inspect::inits::Init;
use crate::inspect::{self, Inspected, Machine};
use crate::report::status::Status;
use crate::report::{self, Chosen, Detected};
use crate::sys::signals;

/// The firmware's console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Console {
    /// A pty for a recognised init or on a terminal, else inherit.
    Auto,
    Pty,
    Inherit,
}

/// What the user asked for, which the defaults fill in.
pub struct Wanted<'a> {
    /// The init's argv, as given.
    pub init: &'a [OsString],
    /// --stop-signal, unless auto.
    pub stop_signal: Option<i32>,
    pub console: Console,
    /// Whether the seccomp filter is on (`--seccomp on`).
    pub seccomp: bool,
}

/// What was read and chosen.
#[derive(Debug, Default)]
pub struct Defaults {
    pub seen: Inspected,
    /// The same, as the report says it.
    pub detected: Detected,
    pub stop_signal: i32,
    /// Whether the init gets a pty console.
    pub pty: bool,
    /// The binfmt_misc interpreters to bind into the firmware (handlers
    /// without the F flag).
    pub binds: Vec<ResolvedBind>,
    /// What the exec needs besides the init, (what, path), for the message
    /// when it fails with ENOENT.
    pub needs: Vec<(String, CString)>,
    /// The init is a 32-bit program this 64-bit machine runs itself: it
    /// runs with the 32-bit personality (uname says i686, armv8l).
    pub linux32: bool,
}

/// For a program this machine runs itself: refused (125) when the seccomp
/// filter would answer its every call with ENOSYS (x32), and whether it
/// runs with the 32-bit personality.
fn native_machine(want: &Wanted, shown: &Path, seen: &Inspected, log: &Status) -> Result<bool> {
    let Some(m) = seen.machine.filter(|m| binfmt::native(m.code)) else {
        return Ok(false);
    };
    if want.seccomp && !seccomp::confines(m.code, m.is_64, m.little_endian) {
        return Err(fail(format!(
            "init '{}' is a program for {}, whose system calls fwrun's seccomp filter does not know (it confines {} programs): use a firmware built for one of them, or --seccomp off",
            shown.display(),
            m.name(),
            seccomp::CONFINED.join(" and "),
        )));
    }
    let linux32 = !m.is_64 && cfg!(target_pointer_width = "64");
    if linux32 {
        log.detail("init runs with the 32-bit personality: uname -m says the 32-bit machine");
    }
    Ok(linux32)
}

/// Whether `fd`, fwrun's stdin or stdout, is a terminal.
fn is_tty(fd: BorrowedFd) -> bool {
    nix::unistd::isatty(fd).unwrap_or(false)
}

/// Read the init `program` (found inside the root at `root_path`, opened
/// as `root`) and choose the defaults from it.
pub fn choose(
    want: &Wanted,
    root: &OwnedFd,
    root_path: &Path,
    program: &Path,
    log: &Status,
) -> Result<Defaults> {
    let argv0 = want.init[0].to_string_lossy();
    let argv1 = want.init.get(1).map(|a| a.to_string_lossy());
    let applet = inspect::applet(&argv0, argv1.as_deref());
    let seen = inspect::inspect(root, root_path, program, applet)?;
    let mut detected = Detected {
        program: seen.resolved.as_ref().map(|p| p.display().to_string()),
        init: seen.init.map(|i| i.label().to_string()),
        machine: seen.machine.map(Machine::name),
        ..Detected::default()
    };
    let shown = Path::new(&want.init[0]);
    log.detail(format!(
        "init {}{}: {}, {}",
        shown.display(),
        match &seen.resolved {
            Some(r) if r != shown => format!(" is {}", r.display()),
            _ => String::new(),
        },
        seen.init
            .map_or("not an init fwrun recognises", |i| i.name()),
        match seen.machine {
            Some(m) if binfmt::native(m.code) =>
                format!("a program for {} (this machine runs it)", m.name()),
            Some(m) => format!("a program for {}", m.name()),
            None => "not an ELF program".into(),
        }
    ));
    let mut out = Defaults {
        needs: seen
            .needs
            .iter()
            .map(|n| (n.role.to_string(), c_path(&n.path)))
            .collect(),
        ..Defaults::default()
    };
    out.linux32 = native_machine(want, shown, &seen, log)?;
    if let Some(m) = seen.machine.filter(|m| !binfmt::native(m.code)) {
        let handler = emulate(shown, &seen, m, log, &mut out)?;
        out.needs.push((
            "binfmt_misc interpreter".into(),
            c_path(&handler.interpreter),
        ));
    }
    let (signal, stop) = stop_signal(want.stop_signal, seen.init, shown);
    log.detail(format!("stop signal {}: {}", stop.value, stop.why));
    detected.stop_signal = Some(stop);
    let (pty, console) = console(
        want.console,
        seen.init,
        shown,
        is_tty(stdin()),
        is_tty(stdout()),
    );
    log.detail(format!("console {}: {}", console.value, console.why));
    detected.console = Some(console);
    detected.emulator = out.detected.emulator.take();
    out.detected = detected;
    out.stop_signal = signal;
    out.pty = pty;
    out.seen = seen;
    Ok(out)
}

fn c_path(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap_or_default()
}

/// The stop signal: the one given, else the one the init expects, else
/// SIGTERM.
pub fn stop_signal(given: Option<i32>, init: Option<Init>, shown: &Path) -> (i32, Chosen) {
    let (signal, from, why) = match (given, init) {
        (Some(s), _) => (s, "flag", "as --stop-signal gave it".to_string()),
        (None, Some(init)) => (init.stop_signal(), "auto", init.stop_why().to_string()),
        (None, None) => (
            libc::SIGTERM,
            "auto",
            format!(
                "{} is not an init fwrun recognises (busybox init, sysvinit, systemd)",
                shown.display()
            ),
        ),
    };
    let chosen = Chosen {
        value: signals::name(signal),
        from: from.into(),
        why,
    };
    (signal, chosen)
}

/// The console: pty for a recognised init, or when stdin and stdout are
/// both a terminal; inherit otherwise, so that a command's pipes and
/// binary output pass unchanged.
pub fn console(
    mode: Console,
    init: Option<Init>,
    shown: &Path,
    stdin_tty: bool,
    stdout_tty: bool,
) -> (bool, Chosen) {
    let (pty, from, why) = match (mode, init) {
        (Console::Pty, _) => (true, "flag", "as --console gave it".to_string()),
        (Console::Inherit, _) => (false, "flag", "as --console gave it".to_string()),
        (Console::Auto, Some(init)) => (
            true,
            "auto",
            format!(
                "the init is {}, which writes its boot to /dev/console",
                init.name()
            ),
        ),
        (Console::Auto, None) if stdin_tty && stdout_tty => (
            true,
            "auto",
            "fwrun's stdin and stdout are a terminal".to_string(),
        ),
        (Console::Auto, None) => (
            false,
            "auto",
            format!(
                "{} is not an init fwrun recognises, and fwrun's stdin or stdout is not a terminal: its output passes unchanged",
                shown.display()
            ),
        ),
    };
    let chosen = Chosen {
        value: if pty { "pty" } else { "inherit" }.into(),
        from: from.into(),
        why,
    };
    (pty, chosen)
}

/// A program this machine cannot run by itself: the binfmt_misc handler
/// that runs it, its interpreter bound into the firmware when the kernel
/// opens it there (no F flag). No handler is bad input (exit 125).
fn emulate(
    shown: &Path,
    seen: &Inspected,
    m: Machine,
    log: &Status,
    out: &mut Defaults,
) -> Result<Handler> {
    let arch = m.name();
    let (handlers, mounted) = binfmt::handlers()?;
    if let Some(line) = mounted {
        log.detail(line);
    }
    let matching: Vec<Handler> = handlers
        .into_iter()
        .filter(|h| h.matches(&seen.head))
        .collect();
    let program = match &seen.elf_path {
        Some(p) if p != shown => {
            format!("init '{}' runs {}, a program", shown.display(), p.display())
        }
        _ => format!("init '{}' is a program", shown.display()),
    };
    let Some(first) = matching.first().cloned() else {
        return Err(fail(format!(
            "{program} for {arch}, which this {} machine cannot run by itself, and no binfmt_misc handler is registered for {arch}: install qemu-user-static and binfmt-support (Debian), or qemu-user-binfmt",
            std::env::consts::ARCH
        )));
    };
    for h in matching.iter().filter(|h| !h.fixed()) {
        out.binds.push(interpreter_bind(h, &arch)?);
    }
    let bound = !first.fixed();
    log.detail(format!(
        "{program} for {arch}: the kernel runs it with {} (binfmt_misc handler {}, flags '{}'){}",
        first.interpreter.display(),
        first.name,
        first.flags,
        if bound {
            ", bound read-only into the firmware at the same path (no F flag)"
        } else {
            ""
        }
    ));
    out.detected.emulator = Some(report::Emulator {
        handler: first.name.clone(),
        interpreter: first.interpreter.display().to_string(),
        flags: first.flags.clone(),
        bound,
    });
    Ok(first)
}

/// The read-only bind of a handler's interpreter at the path the handler
/// names, checked on the host: it must exist and need no library of the
/// host's.
fn interpreter_bind(h: &Handler, arch: &str) -> Result<ResolvedBind> {
    let src = std::fs::canonicalize(&h.interpreter).map_err(|e| {
        fail(format!(
            "binfmt_misc handler {} runs {arch} programs with {}, which this host does not have ({}): install qemu-user-static, or register the handler again",
            h.name,
            h.interpreter.display(),
            crate::error::io_reason(&e)
        ))
    })?;
    if !binfmt::is_static(&src) {
        return Err(fail(format!(
            "binfmt_misc handler {} runs {arch} programs with {}, which needs the host's libraries, and without the F flag the kernel opens it inside the firmware: install qemu-user-static (static interpreters), or register the handler with the F flag",
            h.name,
            h.interpreter.display()
        )));
    }
    Ok(ResolvedBind {
        src,
        dst: PathBuf::from(&h.interpreter),
        read_only: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_signal_defaults_and_the_flag_wins() {
        let sh = Path::new("/bin/sh");
        let (s, c) = stop_signal(None, Some(Init::Busybox), sh);
        assert_eq!(
            (s, c.value.as_str(), c.from.as_str()),
            (libc::SIGUSR2, "SIGUSR2", "auto")
        );
        let (s, _) = stop_signal(None, Some(Init::Sysvinit), sh);
        assert_eq!(s, libc::SIGINT);
        let (s, c) = stop_signal(None, Some(Init::Systemd), sh);
        assert_eq!(
            (s, c.value.as_str()),
            (crate::sys::signals::RTMIN + 4, "SIGRTMIN+4")
        );
        let (s, c) = stop_signal(None, None, sh);
        assert_eq!(s, libc::SIGTERM);
        assert!(c.why.contains("/bin/sh is not an init"), "{}", c.why);
        let (s, c) = stop_signal(Some(libc::SIGHUP), Some(Init::Systemd), sh);
        assert_eq!((s, c.from.as_str()), (libc::SIGHUP, "flag"));
    }

    #[test]
    fn console_defaults() {
        let sh = Path::new("/bin/sh");
        let bb = Some(Init::Busybox);
        assert!(console(Console::Auto, bb, sh, false, false).0);
        assert!(!console(Console::Auto, None, sh, false, false).0);
        assert!(!console(Console::Auto, None, sh, true, false).0);
        assert!(console(Console::Auto, None, sh, true, true).0);
        assert!(!console(Console::Inherit, bb, sh, true, true).0);
        assert!(console(Console::Pty, None, sh, false, false).0);
    }
}
