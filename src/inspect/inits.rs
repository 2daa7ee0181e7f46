//! The inits fwrun recognises, and the stop signal each expects: the
//! default stop signal (`--stop-signal auto`), the default console
//! (`--console auto`: a pty for an init), and a hint when a firmware had to
//! be killed after another signal ("sysvinit stops on SIGINT: try
//! --stop-signal INT").
//!
//! The init is recognised by what the exec'd program is: its name once
//! symlinks are resolved inside the firmware (/sbin/init → /bin/busybox,
//! → /lib/systemd/systemd, /sbin/procd), else a string each of these
//! programs carries. OpenWrt's /sbin/init is procd's own first stage: it
//! mounts, runs preinit, then becomes /sbin/procd in the same process.

use std::io::Read;
use std::path::Path;

use crate::sys::signals;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    Busybox,
    Sysvinit,
    Systemd,
    /// OpenWrt's procd, and the first-stage init that execs it.
    Procd,
}

/// Strings that only these programs carry: busybox's banner, the variable
/// sysvinit sets for its children, systemd's start-up line.
const MARKERS: &[(&[u8], Init)] = &[
    (b"BusyBox v", Init::Busybox),
    (b"INIT_VERSION=sysvinit", Init::Sysvinit),
    (b" running in %ssystem mode", Init::Systemd),
    // The state machine's log line once rc.d has run (procd), and the
    // first stage's line before preinit (OpenWrt's /sbin/init).
    (b"- init complete -", Init::Procd),
    (b"- preinit -", Init::Procd),
];

/// How much of a program is read at most while looking for a marker
/// (sysvinit and systemd carry theirs in their first 100 KiB, a static
/// busybox within its first 2 MiB).
const READ_AT_MOST: u64 = 8 << 20;

/// Whether a program's name may be an init's under another name (a hard
/// link or copy at /sbin/init, init.sysvinit, systemd.real): only then is
/// its content read. A test program run as the init (a 50 MB selftest) is
/// not read at every run.
fn may_be_an_init(base: &str) -> bool {
    base.contains("init")
        || base.contains("linuxrc")
        || base.starts_with("systemd")
        || base.starts_with("procd")
}

impl Init {
    pub fn name(self) -> &'static str {
        match self {
            Init::Busybox => "busybox init",
            Init::Sysvinit => "sysvinit",
            Init::Systemd => "systemd",
            Init::Procd => "procd",
        }
    }

    /// The name the report gives it.
    pub fn label(self) -> &'static str {
        match self {
            Init::Busybox => "busybox",
            Init::Sysvinit => "sysvinit",
            Init::Systemd => "systemd",
            Init::Procd => "procd",
        }
    }

    /// Why its stop signal is the one it is, for -v and the report.
    pub fn stop_why(self) -> &'static str {
        match self {
            Init::Busybox => "busybox init powers off on SIGUSR2 (SIGTERM makes it reboot)",
            Init::Sysvinit => {
                "sysvinit shuts down on SIGINT (its inittab's ctrlaltdel entry; it ignores SIGTERM)"
            }
            Init::Systemd => {
                "systemd powers off on SIGRTMIN+4 (SIGTERM makes it re-execute itself)"
            }
            Init::Procd => "procd powers off on SIGUSR2 (SIGTERM and SIGINT make it reboot)",
        }
    }

    /// The signal on which this init shuts the system down.
    pub fn stop_signal(self) -> i32 {
        match self {
            // poweroff; SIGTERM makes it reboot.
            Init::Busybox => libc::SIGUSR2,
            // the inittab's ctrlaltdel entry; SIGTERM is ignored.
            Init::Sysvinit => libc::SIGINT,
            // poweroff; SIGTERM makes it re-execute itself.
            Init::Systemd => crate::sys::signals::RTMIN + 4,
            // poweroff (SIGUSR1 halts); SIGTERM and SIGINT reboot.
            Init::Procd => libc::SIGUSR2,
        }
    }

    /// What to say when a firmware run by this init had to be killed after
    /// `sent`; None when `sent` was already the right signal.
    pub fn hint(self, sent: i32) -> Option<String> {
        let want = self.stop_signal();
        (want != sent).then(|| {
            let name = signals::name(want);
            let arg = name.strip_prefix("SIG").unwrap_or(&name);
            format!("{} stops on {name}: try --stop-signal {arg}", self.name())
        })
    }
}

/// Which init a program is: `resolved` is its path with symlinks resolved,
/// `content` the program itself (read only if the name does not tell),
/// `applet` the name it is run under (busybox is an init only as `init`
/// or `linuxrc`; as `sh` it is a shell).
pub fn recognise(resolved: &Path, content: impl Read, applet: Option<&str>) -> Option<Init> {
    let base = resolved.file_name()?.to_string_lossy();
    let found = if base.starts_with("busybox") {
        Some(Init::Busybox)
    } else if base == "systemd" {
        Some(Init::Systemd)
    } else if base == "procd" {
        Some(Init::Procd)
    } else if may_be_an_init(&base) {
        find_marker(content.take(READ_AT_MOST))
    } else {
        None
    };
    match found {
        Some(Init::Busybox) if !matches!(applet, Some("init" | "linuxrc")) => None,
        other => other,
    }
}

/// The first marker found in `r`, read in pieces (a marker may straddle
/// two of them).
fn find_marker(mut r: impl Read) -> Option<Init> {
    let keep = MARKERS.iter().map(|(m, _)| m.len()).max().unwrap_or(1) - 1;
    let mut buf = vec![0u8; 64 << 10];
    let mut filled = 0;
    loop {
        let n = match r.read(&mut buf[filled..]) {
            Ok(0) | Err(_) => return None,
            Ok(n) => n,
        };
        filled += n;
        let seen = &buf[..filled];
        for (marker, init) in MARKERS {
            if seen.windows(marker.len()).any(|w| w == *marker) {
                return Some(*init);
            }
        }
        // Keep the tail, where a marker may have begun.
        let from = filled.saturating_sub(keep);
        buf.copy_within(from..filled, 0);
        filled -= from;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn by_name_once_resolved() {
        let none: &[u8] = b"";
        assert_eq!(
            recognise(Path::new("/bin/busybox"), none, Some("init")),
            Some(Init::Busybox)
        );
        assert_eq!(
            recognise(Path::new("/lib/systemd/systemd"), none, Some("init")),
            Some(Init::Systemd)
        );
        assert_eq!(
            recognise(Path::new("/sbin/procd"), none, Some("procd")),
            Some(Init::Procd)
        );
        assert_eq!(recognise(Path::new("/sbin/init"), none, Some("init")), None);
        assert_eq!(recognise(Path::new("/"), none, Some("init")), None);
        // busybox as a shell, or an applet other than init, is no init.
        assert_eq!(recognise(Path::new("/bin/busybox"), none, Some("sh")), None);
        assert_eq!(recognise(Path::new("/bin/busybox"), none, None), None);
        assert_eq!(
            recognise(Path::new("/bin/busybox"), none, Some("linuxrc")),
            Some(Init::Busybox)
        );
    }

    #[test]
    fn by_content() {
        let elf = b"\x7fELF\x02\x01\x01\0".as_slice();
        let bb = program(&[
            elf,
            &[0; 100],
            b"BusyBox v1.36.1 (Debian) multi-call binary",
        ]);
        assert_eq!(
            recognise(Path::new("/sbin/init"), &bb[..], Some("init")),
            Some(Init::Busybox)
        );
        let sysv = program(&[elf, b"INIT: \0/run/initctl\0INIT_VERSION=sysvinit-3.06\0"]);
        assert_eq!(
            recognise(Path::new("/sbin/init"), &sysv[..], Some("init")),
            Some(Init::Sysvinit)
        );
        let sd = program(&[elf, b"systemd 252 running in %ssystem mode (%s)\0"]);
        assert_eq!(
            recognise(
                Path::new("/usr/lib/systemd/systemd.real"),
                &sd[..],
                Some("init")
            ),
            Some(Init::Systemd)
        );
        // A shell script, and a program that only mentions an init.
        let script = b"#!/bin/sh\nexec /sbin/init\n";
        assert_eq!(
            recognise(Path::new("/sbin/init"), &script[..], Some("init")),
            None
        );
        // A program under a name no init has is not read at all.
        let bb_elsewhere = program(&[elf, b"BusyBox v1.36.1 (2023-06-10)\0"]);
        assert_eq!(
            recognise(
                Path::new("/usr/bin/selftest"),
                &bb_elsewhere[..],
                Some("init")
            ),
            None
        );
        // OpenWrt's first stage, and procd itself under another name: the
        // log lines each carries as a string.
        let first = program(&[elf, b"Console is alive\n\0- preinit -\n\0/sbin/procd\0"]);
        assert_eq!(
            recognise(Path::new("/sbin/init"), &first[..], Some("init")),
            Some(Init::Procd)
        );
        let procd = program(&[elf, b"- init -\n\0- init complete -\n\0"]);
        assert_eq!(
            recognise(Path::new("/sbin/procd.real"), &procd[..], Some("procd")),
            Some(Init::Procd)
        );
        let other = program(&[elf, b"INIT_VERSION\0systemd\0busybox\0- init -\0"]);
        assert_eq!(
            recognise(Path::new("/sbin/init"), &other[..], Some("init")),
            None
        );
    }

    /// A reader that hands out at most `step` bytes a call.
    struct Dribble<'a>(&'a [u8], usize);
    impl Read for Dribble<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = self.1.min(self.0.len()).min(out.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn a_marker_across_reads_and_far_in_is_found() {
        let mut big = vec![b'x'; (64 << 10) - 4];
        big.extend_from_slice(b"INIT_VERSION=sysvinit-2.88");
        big.extend(vec![b'y'; 200_000]);
        assert_eq!(find_marker(&big[..]), Some(Init::Sysvinit));
        assert_eq!(find_marker(Dribble(&big, 7)), Some(Init::Sysvinit));
        let mut far = vec![0u8; 3 << 20];
        far.extend_from_slice(b"BusyBox v1.35.0");
        assert_eq!(find_marker(Dribble(&far, 65_000)), Some(Init::Busybox));
    }

    #[test]
    fn the_hint_names_the_signal_the_init_expects() {
        assert_eq!(
            Init::Sysvinit.hint(libc::SIGTERM).as_deref(),
            Some("sysvinit stops on SIGINT: try --stop-signal INT")
        );
        assert_eq!(
            Init::Busybox.hint(libc::SIGTERM).as_deref(),
            Some("busybox init stops on SIGUSR2: try --stop-signal USR2")
        );
        assert_eq!(
            Init::Systemd.hint(libc::SIGTERM).as_deref(),
            Some("systemd stops on SIGRTMIN+4: try --stop-signal RTMIN+4")
        );
        assert_eq!(
            Init::Procd.hint(libc::SIGTERM).as_deref(),
            Some("procd stops on SIGUSR2: try --stop-signal USR2")
        );
        // Already the right signal: nothing to suggest.
        assert_eq!(Init::Sysvinit.hint(libc::SIGINT), None);
    }
}
