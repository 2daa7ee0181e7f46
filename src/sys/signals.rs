//! Signal names and numbers, real-time signals included (nix cannot name
//! those, so they stay plain numbers).

/// The standard signals fwrun knows by name.
const NAMES: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

/// The first real-time signal as glibc numbers them, and systemd with it:
/// glibc keeps the kernel's first two for itself, so its SIGRTMIN is 34
/// (musl keeps three and says 35). An init reads "SIGRTMIN+4" in its own
/// C library's numbering: fwrun uses glibc's, whatever C library fwrun is
/// built with.
pub const RTMIN: i32 = 34;

/// Parse "TERM", "SIGTERM", "sigterm", "15", "RTMIN+3", "SIGRTMAX-1".
pub fn parse(s: &str) -> Option<i32> {
    let upper = s.trim().to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Ok(n) = name.parse::<i32>() {
        return valid(n).then_some(n);
    }
    if let Some(&(_, n)) = NAMES.iter().find(|(k, _)| *k == name) {
        return Some(n);
    }
    let (min, max) = (RTMIN, libc::SIGRTMAX());
    let rt = |rest: &str, base: i32, sign: i32| -> Option<i32> {
        let off = if rest.is_empty() {
            0
        } else {
            rest.parse::<i32>().ok()?
        };
        let n = base + sign * off;
        (min..=max).contains(&n).then_some(n)
    };
    if let Some(rest) = name.strip_prefix("RTMIN") {
        return rt(rest.strip_prefix('+').unwrap_or(rest), min, 1)
            .filter(|_| !rest.starts_with('-'));
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        return rt(rest.strip_prefix('-').unwrap_or(rest), max, -1)
            .filter(|_| !rest.starts_with('+'));
    }
    None
}

fn valid(n: i32) -> bool {
    (1..=libc::SIGRTMAX()).contains(&n)
}

/// A signal's name for messages: "SIGTERM", "SIGRTMIN+4", or its number.
pub fn name(n: i32) -> String {
    if let Some((k, _)) = NAMES.iter().find(|(_, v)| *v == n) {
        return format!("SIG{k}");
    }
    let min = RTMIN;
    if (min..=libc::SIGRTMAX()).contains(&n) {
        return format!("SIGRTMIN+{}", n - min);
    }
    format!("signal {n}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// fwrun's real-time numbering is glibc's, whichever C library it is
    /// built with: systemd's SIGRTMIN+4 (power off) is signal 38.
    #[test]
    fn real_time_signals_are_numbered_as_glibc_does() {
        assert_eq!(parse("RTMIN+4"), Some(38));
        assert_eq!(name(38), "SIGRTMIN+4");
        #[cfg(target_env = "gnu")]
        assert_eq!(RTMIN, libc::SIGRTMIN());
    }

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse("TERM"), Some(15));
        assert_eq!(parse("sigusr2"), Some(libc::SIGUSR2));
        assert_eq!(parse("9"), Some(9));
        assert_eq!(parse("RTMIN+3"), Some(RTMIN + 3));
        assert_eq!(parse("SIGRTMIN"), Some(RTMIN));
        assert_eq!(parse("RTMAX-1"), Some(libc::SIGRTMAX() - 1));
        assert_eq!(parse("RTMIN+999"), None);
        assert_eq!(parse("RTMIN-1"), None);
        assert_eq!(parse("NOPE"), None);
        assert_eq!(parse("0"), None);
        assert_eq!(parse("65"), None);
        assert_eq!(name(15), "SIGTERM");
        assert_eq!(name(RTMIN + 4), "SIGRTMIN+4");
    }
}
