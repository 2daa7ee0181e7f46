//! Readiness: when a booting firmware counts as up, for `fwrun wait` and
//! CI jobs. The `--ready-when` conditions must all hold; each, once it has
//! held, counts as holding:
//! - `console:REGEX`: a line of the firmware's console matches (or the
//!   unfinished line at its end does, as a `login:` prompt is);
//! - `tcp:[ADDR:]PORT`: a TCP connection made inside the firmware's network
//!   namespace (as its own programs would, whatever `--net` gives it) is
//!   accepted; ADDR is an address or a name (see `resolve`), 127.0.0.1 when
//!   left out;
//! - `file:PATH`: PATH exists inside the firmware (resolved in its root);
//! - `exec:CMD`: `/bin/sh -c CMD`, run inside it as the init runs
//!   (probe.rs), exits 0.
//!
//! The polled ones are tried every [`INTERVAL`]. Once all hold, the run's
//! state becomes ready, fwrun says how long the boot took, and writes a
//! line to `--ready-fd`. Past `--ready-timeout`, the supervisor stops the
//! firmware (exit 124). The run's published state (`state/live.rs`) is
//! kept here: booting, ready, stopping.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{self, sockopt, AddressFamily, SockType, SockaddrIn, SockaddrIn6};

use crate::network;
use crate::state::live::{self, Phase};
use crate::supervise::probe::{Probe, Prober};
use crate::sys;
use crate::sys::fd::Inherited;

/// How often the polled conditions are tried.
pub const INTERVAL: Duration = Duration::from_millis(100);
/// How long one connection attempt may take before it is tried again.
const CONNECT_WAIT: Duration = Duration::from_secs(1);
/// How long one `exec:` probe may run before it counts as failed.
const PROBE_WAIT: Duration = Duration::from_secs(10);
/// The longest unfinished console line kept for matching.
const LINE_MAX: usize = 4096;

/// One `--ready-when` condition.
#[derive(Debug, Clone)]
pub enum Condition {
    Console(regex_lite::Regex),
    Tcp(SocketAddr),
    File(PathBuf),
    Exec(String),
}

impl Condition {
    /// `console:REGEX`, `tcp:ADDR:PORT`, `file:PATH` or `exec:CMD`.
    pub fn parse(s: &str) -> Result<Condition, String> {
        let (kind, arg) = s.split_once(':').unwrap_or((s, ""));
        let bad = |why: String| Err(format!("'{}': {why}", s.escape_default()));
        match kind {
            "console" if arg.is_empty() => bad("give console:REGEX, e.g. console:'login:'".into()),
            "console" => regex_lite::Regex::new(arg)
                .map(Condition::Console)
                .or_else(|e| bad(format!("not a regular expression: {e}"))),
            "tcp" => match arg.parse::<u16>() {
                Ok(port) => Ok(Condition::Tcp(SocketAddr::new(
                    Ipv4Addr::LOCALHOST.into(),
                    port,
                ))),
                Err(_) => resolve(arg).map(Condition::Tcp).or_else(bad),
            },
            "file" if arg.starts_with('/') && !arg.contains('\0') => {
                Ok(Condition::File(PathBuf::from(arg)))
            }
            "file" => bad("give file:PATH, an absolute path inside the firmware".into()),
            "exec" if !arg.trim().is_empty() && !arg.contains('\0') => {
                Ok(Condition::Exec(arg.to_string()))
            }
            "exec" => bad("give exec:COMMAND, a shell command".into()),
            _ => bad("use console:REGEX, tcp:[ADDR:]PORT, file:PATH or exec:CMD".into()),
        }
    }
}

/// `tcp:`'s `HOST:PORT` as an address: `10.0.0.2:80` and `[::1]:22` as
/// they are; a name from /etc/hosts, `localhost` as 127.0.0.1 where that
/// file does not name it; and in the musl build, any other name from musl's
/// resolver (DNS), which is part of the static binary. glibc's resolver is
/// NSS: linked statically, it loads the modules /etc/nsswitch.conf names
/// (libnss_systemd and its libraries) from the host into fwrun, which runs
/// as root, or fails where they are of another glibc version. The glibc
/// build does not use it, and asks for an address instead.
fn resolve(arg: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = arg.parse::<SocketAddr>() {
        return Ok(a);
    }
    let usage = || {
        "give tcp:PORT or tcp:ADDRESS:PORT (e.g. tcp:80, tcp:10.0.0.2:80, tcp:[::1]:22)".to_string()
    };
    let (host, port) = arg.rsplit_once(':').ok_or_else(usage)?;
    let port = port.parse::<u16>().map_err(|_| usage())?;
    if host.is_empty() || host.contains([':', '[', ']']) || host.chars().any(char::is_whitespace) {
        return Err(usage());
    }
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    if let Some(ip) = hosts_lookup(&hosts, host) {
        return Ok(SocketAddr::new(ip, port));
    }
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port));
    }
    #[cfg(target_env = "musl")]
    {
        use std::net::ToSocketAddrs;
        if let Some(a) = (host, port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
        {
            return Ok(a);
        }
        Err(format!(
            "{} is neither in /etc/hosts nor known to DNS: give its address (e.g. tcp:10.0.0.2:{port})",
            host.escape_default()
        ))
    }
    #[cfg(not(target_env = "musl"))]
    Err(format!(
        "{} is not in /etc/hosts, and this build looks names up nowhere else: give its address (e.g. tcp:10.0.0.2:{port})",
        host.escape_default()
    ))
}

/// The first address an /etc/hosts text gives `name` (names match
/// whatever their case; `#` starts a comment).
fn hosts_lookup(hosts: &str, name: &str) -> Option<IpAddr> {
    hosts.lines().find_map(|line| {
        let mut words = line.split('#').next()?.split_whitespace();
        let ip = words.next()?.parse::<IpAddr>().ok()?;
        words.any(|w| w.eq_ignore_ascii_case(name)).then_some(ip)
    })
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Condition::Console(re) => write!(f, "console:{}", re.as_str()),
            Condition::Tcp(a) => write!(f, "tcp:{a}"),
            Condition::File(p) => write!(f, "file:{}", p.display()),
            Condition::Exec(c) => write!(f, "exec:{c}"),
        }
    }
}

/// What the run was asked about readiness.
#[derive(Debug, Clone, Default)]
pub struct ReadyOptions {
    pub conditions: Vec<Condition>,
    pub timeout: Option<Duration>,
    /// Where to write a line once ready (then closed).
    pub fd: Option<Inherited>,
    pub quiet: bool,
}

impl ReadyOptions {
    pub fn watches_console(&self) -> bool {
        self.conditions
            .iter()
            .any(|c| matches!(c, Condition::Console(_)))
    }
}

/// What the supervisor should do after a look at readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    /// Look again by then (None: nothing to look at).
    Wait(Option<Instant>),
    /// It has just become ready.
    Ready,
    /// --ready-timeout passed first.
    TimedOut,
}

/// A connection attempt under way.
struct Attempt {
    sock: OwnedFd,
    since: Instant,
}

/// Start a connection to `addr` from the network namespace `netns`: None
/// if it failed at once, Ok if it was accepted at once, Err(socket) while
/// it is under way.
fn connect_nonblocking(netns: &OwnedFd, addr: SocketAddr) -> Option<Result<OwnedFd, OwnedFd>> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let sock = network::inside::socket_in(netns, family, SockType::Stream).ok()?;
    let r = match addr {
        SocketAddr::V4(a) => socket::connect(sock.as_raw_fd(), &SockaddrIn::from(a)),
        // No flow label, as a parsed address has none.
        SocketAddr::V6(a) => {
            let a = SocketAddrV6::new(*a.ip(), a.port(), 0, a.scope_id());
            socket::connect(sock.as_raw_fd(), &SockaddrIn6::from(a))
        }
    };
    match r {
        Ok(()) => Some(Ok(sock)),
        Err(Errno::EINPROGRESS) => Some(Err(sock)),
        Err(_) => None,
    }
}

/// The readiness of one run, across its boots.
pub struct Readiness {
    conds: Vec<(Condition, bool)>,
    timeout: Option<Duration>,
    fd: Option<Inherited>,
    quiet: bool,
    state_dir: PathBuf,
    /// The current boot: its init (host pid), its network namespace, and
    /// when it started.
    init: libc::pid_t,
    netns: Option<OwnedFd>,
    start: Instant,
    done: bool,
    stopping: bool,
    line: Vec<u8>,
    next_poll: Instant,
    attempt: Option<Attempt>,
    /// How `exec:` probes start, and the one that runs.
    prober: Option<Prober>,
    probe: Option<Probe>,
    /// How long the last boot took to become ready.
    pub ready_after: Option<Duration>,
}

impl Readiness {
    pub fn new(opts: &ReadyOptions, state_dir: &Path, prober: Option<Prober>) -> Readiness {
        Readiness {
            conds: opts.conditions.iter().map(|c| (c.clone(), false)).collect(),
            timeout: opts.timeout,
            fd: opts.fd,
            quiet: opts.quiet,
            state_dir: state_dir.to_path_buf(),
            init: 0,
            netns: None,
            start: Instant::now(),
            done: false,
            stopping: false,
            line: Vec::new(),
            next_poll: Instant::now(),
            attempt: None,
            prober,
            probe: None,
            ready_after: None,
        }
    }

    /// A boot has started with `init` (host pid): start over.
    pub fn boot(&mut self, init: libc::pid_t) {
        self.end_probe();
        self.init = init;
        self.netns = self
            .conds
            .iter()
            .any(|(c, _)| matches!(c, Condition::Tcp(_)))
            .then(|| network::inside::netns_of(init).ok())
            .flatten();
        self.start = Instant::now();
        self.next_poll = self.start;
        self.done = false;
        self.stopping = false;
        self.line.clear();
        self.attempt = None;
        self.ready_after = None;
        for c in &mut self.conds {
            c.1 = false;
        }
        self.publish(Phase::Booting);
    }

    fn publish(&self, phase: Phase) {
        if let Err(e) = live::set_phase(&self.state_dir, phase) {
            eprintln!("fwrun: warning: {e:#}");
        }
    }

    /// The run is being stopped, or its init has ended.
    pub fn stopping(&mut self) {
        if !self.stopping {
            self.stopping = true;
            self.done = true;
            self.end_probe();
            self.publish(Phase::Stopping);
        }
    }

    /// Output of the firmware's console.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.done
            || !self
                .conds
                .iter()
                .any(|(c, held)| !held && matches!(c, Condition::Console(_)))
        {
            return;
        }
        for &b in bytes {
            match b {
                b'\n' => {
                    self.match_line();
                    self.line.clear();
                }
                b'\r' => {}
                _ if self.line.len() < LINE_MAX => self.line.push(b),
                _ => {}
            }
        }
        // A prompt ends without a newline.
        self.match_line();
    }

    fn match_line(&mut self) {
        let text = String::from_utf8_lossy(&self.line);
        for (c, held) in &mut self.conds {
            if let Condition::Console(re) = c {
                if !*held && re.is_match(&text) {
                    *held = true;
                }
            }
        }
    }

    /// Look at the conditions that are due; what to do next.
    pub fn tick(&mut self, now: Instant) -> Tick {
        if self.done {
            return Tick::Wait(None);
        }
        if now >= self.next_poll {
            self.poll_conditions(now);
            self.next_poll = now + INTERVAL;
        }
        if self.conds.iter().all(|(_, held)| *held) {
            self.announce(now);
            return Tick::Ready;
        }
        let deadline = self.timeout.map(|t| self.start + t);
        if deadline.is_some_and(|d| now >= d) {
            self.done = true;
            self.end_probe();
            return Tick::TimedOut;
        }
        let polled = self
            .conds
            .iter()
            .any(|(c, held)| !held && !matches!(c, Condition::Console(_)));
        let next = polled.then_some(self.next_poll);
        Tick::Wait([next, deadline].into_iter().flatten().min())
    }

    fn poll_conditions(&mut self, now: Instant) {
        for i in 0..self.conds.len() {
            if self.conds[i].1 {
                continue;
            }
            let held = match self.conds[i].0.clone() {
                Condition::Console(_) => false,
                Condition::File(p) => self.exists(&p),
                Condition::Tcp(addr) => self.connected(addr, now),
                Condition::Exec(cmd) => self.probed(&cmd, now),
            };
            self.conds[i].1 = held;
        }
    }

    /// Whether `path` exists in the init's root (symlinks resolved in it).
    fn exists(&self, path: &Path) -> bool {
        let Ok(root) = std::fs::File::open(format!("/proc/{}/root", self.init)) else {
            return false;
        };
        sys::openat2(
            root.as_fd(),
            path,
            libc::O_PATH,
            sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_MAGICLINKS,
        )
        .is_ok()
    }

    /// Whether a connection to `addr` has been accepted; starts an attempt
    /// when none is under way.
    fn connected(&mut self, addr: SocketAddr, now: Instant) -> bool {
        if let Some(a) = &self.attempt {
            let mut p = [PollFd::new(a.sock.as_fd(), PollFlags::POLLOUT)];
            let ready = poll(&mut p, PollTimeout::ZERO) == Ok(1);
            if ready {
                let ok = socket::getsockopt(&a.sock, sockopt::SocketError) == Ok(0);
                self.attempt = None;
                return ok;
            }
            if now.duration_since(a.since) < CONNECT_WAIT {
                return false;
            }
            self.attempt = None;
        }
        let Some(sock) = self
            .netns
            .as_ref()
            .and_then(|ns| connect_nonblocking(ns, addr))
        else {
            return false;
        };
        match sock {
            Ok(_) => true,
            Err(sock) => {
                self.attempt = Some(Attempt { sock, since: now });
                false
            }
        }
    }

    /// Whether an `exec:` probe has exited 0; starts one when none runs.
    fn probed(&mut self, cmd: &str, now: Instant) -> bool {
        if let Some(p) = &mut self.probe {
            match p.ended() {
                Some(code) => {
                    self.probe = None;
                    return code == 0;
                }
                None if now.duration_since(p.since) < PROBE_WAIT => return false,
                None => {
                    self.end_probe();
                    return false;
                }
            }
        }
        if let Some(prober) = &self.prober {
            // A probe that cannot start counts as not ready yet.
            self.probe = prober.start(self.init, cmd).ok();
        }
        false
    }

    /// The running probe's seccomp descriptor, for the supervisor's poll.
    pub fn probe_fd(&self) -> Option<std::os::fd::RawFd> {
        self.probe.as_ref().and_then(|p| p.fd())
    }

    /// Answer a call of the running probe's.
    pub fn serve_probe(&mut self) {
        if let Some(p) = self.probe.as_mut() {
            p.serve();
        }
    }

    fn end_probe(&mut self) {
        self.probe = None;
    }

    fn announce(&mut self, now: Instant) {
        let after = now.duration_since(self.start);
        self.done = true;
        self.ready_after = Some(after);
        self.attempt = None;
        self.end_probe();
        self.publish(Phase::Ready);
        if !self.quiet && !self.conds.is_empty() {
            eprintln!("fwrun: firmware ready after {:.1} s", after.as_secs_f64());
        }
        if let Some(fd) = self.fd.take() {
            fd.write_and_close(b"ready\n");
        }
    }
}

impl Drop for Readiness {
    fn drop(&mut self) {
        self.end_probe();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_parse() {
        assert!(matches!(
            Condition::parse("console:lo+gin:"),
            Ok(Condition::Console(_))
        ));
        assert!(matches!(
            Condition::parse("tcp:127.0.0.1:80"),
            Ok(Condition::Tcp(a)) if a.port() == 80
        ));
        assert!(matches!(
            Condition::parse("tcp:8080"),
            Ok(Condition::Tcp(a)) if a.port() == 8080 && a.ip().is_loopback()
        ));
        assert!(matches!(
            Condition::parse("tcp:[::1]:22"),
            Ok(Condition::Tcp(_))
        ));
        assert!(matches!(
            Condition::parse("file:/run/up"),
            Ok(Condition::File(_))
        ));
        assert!(matches!(
            Condition::parse("exec:pidof httpd"),
            Ok(Condition::Exec(_))
        ));
        for bad in [
            "console:(",
            "tcp:nowhere",
            "file:run/up",
            "exec:",
            "web:x",
            "console",
        ] {
            assert!(Condition::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tcp_names_resolve_from_etc_hosts() {
        let hosts = "# comment\n127.0.0.1\tlocalhost\n::1 localhost ip6-localhost\n\
                     10.0.0.2 Router.lan router # the device\nnot-an-ip fw\n\
                     # 10.9.9.9 gone\n";
        let at = |name| hosts_lookup(hosts, name);
        assert_eq!(at("localhost"), Some(Ipv4Addr::LOCALHOST.into()));
        assert_eq!(at("ip6-localhost"), Some("::1".parse().unwrap()));
        assert_eq!(at("router.LAN"), Some("10.0.0.2".parse().unwrap()));
        assert_eq!(at("router"), Some("10.0.0.2".parse().unwrap()));
        for missing in ["fw", "gone", "device", "10.0.0.2", "lan"] {
            assert_eq!(at(missing), None, "{missing}");
        }

        // localhost is the host's loopback in every build, whatever this
        // machine's /etc/hosts says of it.
        match Condition::parse("tcp:localhost:8080") {
            Ok(Condition::Tcp(a)) => assert!(a.ip().is_loopback() && a.port() == 8080, "{a}"),
            other => panic!("{other:?}"),
        }
        for bad in [
            "tcp:localhost",
            "tcp::80",
            "tcp:localhost:http",
            "tcp:a b:80",
            "tcp:::1:80",
        ] {
            let e = Condition::parse(bad).unwrap_err();
            assert!(
                e.contains("give tcp:PORT or tcp:ADDRESS:PORT"),
                "{bad}: {e}"
            );
        }
    }

    /// The glibc build knows names from /etc/hosts only (its resolver
    /// would load the host's NSS modules) and says to give an address.
    #[cfg(not(target_env = "musl"))]
    #[test]
    fn tcp_names_elsewhere_are_refused_in_one_line() {
        let e = Condition::parse("tcp:fw-7f3a.invalid:80").unwrap_err();
        assert!(e.contains("give its address"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn console_lines_and_prompts_match() {
        let dir = std::env::temp_dir().join(format!("fwrun-ready-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let opts = ReadyOptions {
            conditions: vec![
                Condition::parse("console:^fw login: ?$").unwrap(),
                Condition::parse("console:services up").unwrap(),
            ],
            quiet: true,
            ..Default::default()
        };
        let mut r = Readiness::new(&opts, &dir, None);
        r.feed(b"booting\r\nservi");
        assert!(matches!(r.tick(Instant::now()), Tick::Wait(None)));
        r.feed(b"ces up\r\nfw log");
        assert!(matches!(r.tick(Instant::now()), Tick::Wait(None)));
        r.feed(b"in: ");
        assert_eq!(r.tick(Instant::now()), Tick::Ready);
        assert!(r.ready_after.is_some());
        assert!(dir.join("ready").exists() && !dir.join("stopping").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn no_condition_is_ready_at_once_and_a_timeout_ends_the_wait() {
        let dir = std::env::temp_dir().join(format!("fwrun-ready2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut r = Readiness::new(&ReadyOptions::default(), &dir, None);
        assert_eq!(r.tick(Instant::now()), Tick::Ready);
        let opts = ReadyOptions {
            conditions: vec![Condition::parse("console:never").unwrap()],
            timeout: Some(Duration::from_millis(10)),
            ..Default::default()
        };
        let mut r = Readiness::new(&opts, &dir, None);
        r.boot(1);
        let t = Instant::now();
        assert!(matches!(r.tick(t), Tick::Wait(Some(_))));
        assert_eq!(r.tick(t + Duration::from_millis(20)), Tick::TimedOut);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
