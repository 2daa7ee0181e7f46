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
    let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
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
    let min = libc::SIGRTMIN();
    if (min..=libc::SIGRTMAX()).contains(&n) {
        return format!("SIGRTMIN+{}", n - min);
    }
    format!("signal {n}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse("TERM"), Some(15));
        assert_eq!(parse("sigusr2"), Some(libc::SIGUSR2));
        assert_eq!(parse("9"), Some(9));
        assert_eq!(parse("RTMIN+3"), Some(libc::SIGRTMIN() + 3));
        assert_eq!(parse("SIGRTMIN"), Some(libc::SIGRTMIN()));
        assert_eq!(parse("RTMAX-1"), Some(libc::SIGRTMAX() - 1));
        assert_eq!(parse("RTMIN+999"), None);
        assert_eq!(parse("RTMIN-1"), None);
        assert_eq!(parse("NOPE"), None);
        assert_eq!(parse("0"), None);
        assert_eq!(parse("65"), None);
        assert_eq!(name(15), "SIGTERM");
        assert_eq!(name(libc::SIGRTMIN() + 4), "SIGRTMIN+4");
    }
}
