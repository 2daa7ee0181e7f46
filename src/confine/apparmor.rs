//! The per-run AppArmor profile: rendered from a template (profiles/) with
//! the deny list kept as data (profiles/deny.list), loaded with
//! apparmor_parser, entered by the init just before its exec, removed at
//! the end.
//!
//! It is what still holds after the firmware mounts its own /proc, /sys or
//! /dev: path rules match the paths the firmware sees (fwrun pivot_roots),
//! capabilities that reach the host (the clock, modules, raw I/O, mknod of
//! block devices outside /dev) are refused, and mounts are restricted so
//! that a second proc or sysfs elsewhere cannot sidestep the path rules.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{anyhow, Context, Result};
use serde::Serialize;

use crate::error::fail;

/// The default template and deny list, built into the binary.
pub const DEFAULT_TEMPLATE: &str = include_str!("../../profiles/fwrun.profile.tera");
pub const DENY_LIST: &str = include_str!("../../profiles/deny.list");

/// Capabilities the firmware never gets: the host's clock, kernel modules,
/// raw I/O ports, the security policy itself, the kernel log, wake alarms.
pub const DENIED_CAPABILITIES: &[&str] = &[
    "sys_time",
    "sys_module",
    "sys_rawio",
    "mac_admin",
    "mac_override",
    "syslog",
    "wake_alarm",
];

/// Capabilities the firmware never gets under `--net host`, where the
/// network is the host's: its interfaces, routes and firewall.
pub const HOST_NETWORK_DENIED_CAPABILITIES: &[&str] = &["net_admin"];

/// Where a firmware's own procfs or sysfs may be written: the parts its
/// uts, ipc and cgroup namespaces make its own. Relative to /proc/sys and
/// /sys; a last part ending in '*' is a prefix.
pub const PROC_SYS_WRITABLE: &[&str] = &[
    "kernel/hostname",
    "kernel/domainname",
    "kernel/shm*",
    "kernel/msg*",
    "kernel/sem*",
];
pub const SYS_WRITABLE: &[&str] = &["fs/cgroup"];
/// And these, which its network namespace makes its own: only under
/// `--net none`. Under `--net host` they are the host's network settings.
pub const PROC_SYS_WRITABLE_NET: &[&str] = &["net"];
pub const SYS_WRITABLE_NET: &[&str] = &["class/net", "devices/virtual/net"];

/// The deny-write globs for /proc/sys and /sys: everything but what the
/// firmware's namespaces make its own, which depends on its network.
pub fn deny_writes(host_network: bool) -> Vec<String> {
    let with_net = |base: &[&'static str], net: &[&'static str]| -> Vec<&'static str> {
        let mut v = base.to_vec();
        if !host_network {
            v.extend_from_slice(net);
        }
        v
    };
    let mut globs = deny_writes_except(
        "/proc/sys",
        &with_net(PROC_SYS_WRITABLE, PROC_SYS_WRITABLE_NET),
    );
    globs.extend(deny_writes_except(
        "/sys",
        &with_net(SYS_WRITABLE, SYS_WRITABLE_NET),
    ));
    globs
}

const SECURITYFS: &str = "/sys/kernel/security/apparmor";
const ENABLED: &str = "/sys/module/apparmor/parameters/enabled";
/// Where apparmor_parser is looked for (not the caller's PATH).
const SBIN_PATH: &str = "/usr/sbin:/sbin:/usr/local/sbin:/usr/bin:/bin";

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Rule {
    pub path: String,
    pub access: String,
}

/// The deny list's rules: one "PATH ACCESS" a line, '#' comments.
pub fn parse_deny_list(text: &str) -> Result<Vec<Rule>> {
    let mut rules = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(path), Some(access), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(anyhow!("deny list line {}: expected 'PATH ACCESS'", i + 1));
        };
        rules.push(Rule {
            path: quote_path(path).map_err(|e| anyhow!("deny list line {}: {e}", i + 1))?,
            access: access_mask(access)
                .ok_or_else(|| anyhow!("deny list line {}: unknown access '{access}'", i + 1))?
                .to_string(),
        });
    }
    Ok(rules)
}

fn access_mask(word: &str) -> Option<&'static str> {
    match word {
        "all" => Some("rwlkmx"),
        "w" => Some("w"),
        "r" => Some("r"),
        _ => None,
    }
}

/// A path as it may appear in a rule: absolute, in double quotes, and free
/// of what could end the quoted string or the rule (quotes, backslashes,
/// control characters such as a newline). Glob characters keep their
/// meaning: they widen a rule, they cannot add one.
pub fn quote_path(path: &str) -> Result<String, String> {
    if !path.starts_with('/') {
        return Err(format!(
            "'{}' is not an absolute path",
            path.escape_default()
        ));
    }
    if let Some(c) = path
        .chars()
        .find(|c| c.is_control() || matches!(c, '"' | '\\'))
    {
        return Err(format!(
            "'{}' holds '{}', which an AppArmor rule cannot carry safely",
            path.escape_default(),
            c.escape_default()
        ));
    }
    check_glob(path).map_err(|why| {
        format!(
            "'{}' is not a valid AppArmor glob: {why}",
            path.escape_default()
        )
    })?;
    Ok(format!("\"{path}\""))
}

/// The glob's brackets and braces must pair up, and every {..} must hold
/// alternatives (AppArmor refuses "{a}"), or apparmor_parser would refuse
/// the whole profile.
fn check_glob(path: &str) -> Result<(), String> {
    let mut groups: Vec<bool> = Vec::new(); // per open '{': seen a ','?
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        match c {
            '[' if !chars.by_ref().any(|c| c == ']') => {
                return Err("'[' without ']'".into());
            }
            ']' => return Err("']' without '['".into()),
            '{' => groups.push(false),
            ',' => {
                if let Some(g) = groups.last_mut() {
                    *g = true;
                }
            }
            '}' => match groups.pop() {
                None => return Err("'}' without '{'".into()),
                Some(false) => return Err("'{..}' needs alternatives separated by ','".into()),
                Some(true) => {}
            },
            _ => {}
        }
    }
    if groups.is_empty() {
        Ok(())
    } else {
        Err("'{' without '}'".into())
    }
}

/// Globs for "every path under `base` but the `allowed` ones", with AppArmor
/// character classes: each level denies the names that are not a prefix of
/// an allowed name, then descends along the allowed names.
pub fn deny_writes_except(base: &str, allowed: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    level(base, allowed, &mut out);
    out.into_iter()
        .map(|g| format!("\"{g}{{,/**}}\""))
        .collect()
}

#[derive(Default)]
struct Node {
    children: std::collections::BTreeMap<char, Node>,
    /// Everything from here down is allowed.
    whole: bool,
    /// This exact name is allowed as a whole (file or directory tree).
    exact: bool,
    /// This exact name is a directory with allowed parts: descend.
    within: Vec<String>,
}

fn level(dir: &str, allowed: &[&str], out: &mut Vec<String>) {
    let mut root = Node::default();
    for a in allowed {
        let (first, rest) = match a.split_once('/') {
            Some((f, r)) => (f, Some(r)),
            None => (*a, None),
        };
        let (name, prefix) = match first.strip_suffix('*') {
            Some(n) => (n, true),
            None => (first, false),
        };
        let mut node = &mut root;
        for c in name.chars() {
            node = node.children.entry(c).or_default();
        }
        match (prefix, rest) {
            (true, _) => node.whole = true,
            (false, None) => node.exact = true,
            (false, Some(r)) => node.within.push(r.to_string()),
        }
    }
    walk(dir, String::new(), &root, out);
}

fn walk(dir: &str, name: String, node: &Node, out: &mut Vec<String>) {
    if node.whole {
        return;
    }
    let next: String = node.children.keys().collect();
    if next.is_empty() {
        out.push(format!("{dir}/{name}?*"));
    } else {
        out.push(format!("{dir}/{name}[^{next}]*"));
    }
    if !name.is_empty() && !node.exact {
        if node.within.is_empty() {
            out.push(format!("{dir}/{name}"));
        } else {
            let inner: Vec<&str> = node.within.iter().map(String::as_str).collect();
            level(&format!("{dir}/{name}"), &inner, out);
        }
    }
    for (c, child) in &node.children {
        walk(dir, format!("{name}{c}"), child, out);
    }
}

/// What the profile is made from.
pub struct ProfileSpec<'a> {
    /// The run's name.
    pub name: &'a str,
    /// The profile's name (state/identity.rs).
    pub profile: &'a str,
    pub template: &'a str,
    pub extra_deny: &'a [String],
    pub allow_mknod: bool,
    /// `--net host`: the firmware shares the host's network.
    pub host_network: bool,
}

/// Render the profile text.
pub fn render(spec: &ProfileSpec) -> Result<String> {
    let deny = parse_deny_list(DENY_LIST)?;
    let extra: Vec<Rule> = spec
        .extra_deny
        .iter()
        .map(|p| {
            Ok(Rule {
                path: quote_path(p).map_err(|e| fail(format!("--deny {e}: give an absolute path without quotes, backslashes or control characters")))?,
                access: "rwlkmx".into(),
            })
        })
        .collect::<Result<_>>()?;
    let mut caps: Vec<&str> = DENIED_CAPABILITIES.to_vec();
    if !spec.allow_mknod {
        caps.push("mknod");
    }
    if spec.host_network {
        caps.extend_from_slice(HOST_NETWORK_DENIED_CAPABILITIES);
    }
    let deny_writes = deny_writes(spec.host_network);

    let mut ctx = tera::Context::new();
    ctx.insert("name", spec.name);
    ctx.insert("profile", spec.profile);
    ctx.insert("denied_capabilities", &caps);
    ctx.insert("deny", &deny);
    ctx.insert("deny_writes", &deny_writes);
    ctx.insert("extra_deny", &extra);
    ctx.insert("host_network", &spec.host_network);
    let mut t = tera::Tera::new();
    t.autoescape_on(Vec::<&str>::new());
    t.add_raw_template("profile", spec.template).map_err(|e| {
        fail(format!(
            "the profile template does not parse: {}",
            tera_error(&e)
        ))
    })?;
    t.render("profile", &ctx).map_err(|e| {
        fail(format!(
            "the profile template does not render: {}",
            tera_error(&e)
        ))
    })
}

fn tera_error(e: &tera::Error) -> String {
    let mut text = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        text.push_str(": ");
        text.push_str(&s.to_string());
        src = s.source();
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What decides whether fwrun can load a profile here: the kernel's
/// AppArmor, securityfs (mounted, and writable), and fwrun's own label (a
/// container's default profile may not load policy).
struct Loader {
    enabled: bool,
    securityfs: bool,
    /// Why the policy loading file cannot be written, if it cannot.
    writable: Option<nix::errno::Errno>,
    /// fwrun's own AppArmor label, as /proc/self/attr shows it.
    label: String,
}

impl Loader {
    /// Why no profile can be loaded, in one line; None if it can.
    fn why_not(&self) -> Option<String> {
        if !self.enabled {
            return Some(
                "this kernel has no AppArmor (/sys/module/apparmor/parameters/enabled is not Y)"
                    .into(),
            );
        }
        if !self.securityfs {
            return Some(format!(
                "securityfs is not mounted ({SECURITYFS} is missing: mount -t securityfs securityfs /sys/kernel/security; a container must be privileged to do so)"
            ));
        }
        let label = self.label.trim_end_matches(['\n', '\0']).trim();
        if !label.is_empty() && label != "unconfined" {
            return Some(format!(
                "fwrun itself is confined by the AppArmor profile '{}', which may not load profiles (run the container privileged, or with --security-opt apparmor=unconfined)",
                label.escape_default()
            ));
        }
        self.writable.map(|e| {
            format!(
                "{SECURITYFS}/.replace cannot be written ({}: in a container, securityfs must be mounted read-write, as --privileged does)",
                crate::sys::errno_text(e)
            )
        })
    }
}

/// Whether this kernel can enforce a profile, and with which parser.
pub enum Support {
    Ready(PathBuf),
    Missing(String),
}

pub fn support(parser: Option<&Path>) -> Support {
    let enabled = fs::read_to_string(ENABLED).unwrap_or_default().trim() == "Y";
    // The rest matters only where the kernel has AppArmor. Elsewhere its
    // lookups under /sys are spared: a lookup there waits while any
    // network namespace is made or torn down on the host, which runs side
    // by side do all the time.
    let loader = match enabled {
        true => Loader {
            enabled,
            securityfs: Path::new(SECURITYFS).exists(),
            writable: nix::unistd::access(
                &Path::new(SECURITYFS).join(".replace"),
                nix::unistd::AccessFlags::W_OK,
            )
            .err(),
            label: fs::read_to_string("/proc/self/attr/apparmor/current")
                .or_else(|_| fs::read_to_string("/proc/self/attr/current"))
                .unwrap_or_default(),
        },
        false => Loader {
            enabled,
            securityfs: false,
            writable: None,
            label: String::new(),
        },
    };
    if let Some(why) = loader.why_not() {
        return Support::Missing(why);
    }
    let found = match parser {
        Some(p) => p.is_file().then(|| p.to_path_buf()),
        None => which::which_in("apparmor_parser", Some(SBIN_PATH), "/").ok(),
    };
    match found {
        Some(p) => Support::Ready(p),
        None => Support::Missing(match parser {
            Some(p) => format!("the AppArmor parser {} does not exist", p.display()),
            None => {
                "apparmor_parser was not found in /usr/sbin or /sbin (apt-get install apparmor)"
                    .into()
            }
        }),
    }
}

/// apparmor_parser's compile options for fwrun's profiles.
pub const LOAD_OPTIONS: &[&str] = &["-O", "no-expr-simplify"];

/// Load (or replace) the profile. The parser's complaint, if any, is part of
/// the error.
pub fn load(parser: &Path, text: &str) -> Result<()> {
    let mut child = Command::new(parser)
        // Without expression-tree simplification the parser compiles this
        // profile in about half the time, to the same binary policy
        // (tests/apparmor.rs checks that the two are identical).
        .args(["--replace", "--skip-cache", "--quiet"])
        .args(LOAD_OPTIONS)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", parser.display()))?;
    // A parser that fails may exit before it has read the whole profile:
    // the write then breaks (EPIPE), and its exit status and message,
    // read below, say why.
    let written = child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(text.as_bytes());
    let out = child
        .wait_with_output()
        .with_context(|| format!("waiting for {}", parser.display()))?;
    if out.status.success() {
        return written.with_context(|| format!("writing the profile to {}", parser.display()));
    }
    let err = String::from_utf8_lossy(&out.stderr);
    Err(anyhow!(
        "{} could not load the profile ({}): {}",
        parser.display(),
        out.status,
        err.split_whitespace().collect::<Vec<_>>().join(" ")
    ))
}

/// Remove a loaded profile by name (the kernel interface apparmor_parser
/// -R uses; no helper process). A profile that is not loaded is fine.
pub fn unload(profile: &str) -> Result<()> {
    let remove = Path::new(SECURITYFS).join(".remove");
    if !remove.exists() {
        return Ok(());
    }
    match fs::OpenOptions::new()
        .write(true)
        .open(&remove)
        .and_then(|mut f| f.write_all(profile.as_bytes()))
    {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(e) => Err(anyhow!("removing AppArmor profile {profile}: {e}")),
    }
}

/// Sweeps a dead run's profile (see state.rs).
pub struct Sweep;

impl crate::state::Sweeper for Sweep {
    fn release(&mut self, r: &crate::state::Resource) -> Result<()> {
        match r {
            crate::state::Resource::Profile(p) => unload(p),
            // Not this layer's: run.rs's sweeper releases it.
            crate::state::Resource::Cgroup(_) | crate::state::Resource::Link(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A parser that exits at once, before reading the profile, is
    /// reported by its exit status, not by the broken pipe its early exit
    /// leaves (which one comes first is a race).
    #[test]
    fn a_parser_that_fails_early_is_reported_as_failing() {
        let big = "#".repeat(4 << 20);
        for _ in 0..3 {
            let e = load(std::path::Path::new("/bin/false"), &big).unwrap_err();
            assert!(
                e.to_string().contains("could not load the profile"),
                "{e:#}"
            );
        }
    }

    /// Each way a host or a container can fall short gets its own line;
    /// an unconfined fwrun with a writable securityfs gets none.
    #[test]
    fn why_no_profile_can_be_loaded() {
        let loader = |enabled, securityfs, writable, label: &str| Loader {
            enabled,
            securityfs,
            writable,
            label: label.into(),
        };
        let free = "unconfined\n";
        assert_eq!(loader(true, true, None, free).why_not(), None);
        let why = |l: Loader| l.why_not().unwrap();
        assert!(why(loader(false, true, None, free)).contains("no AppArmor"));
        let unmounted = why(loader(true, false, None, free));
        assert!(
            unmounted.contains("securityfs is not mounted"),
            "{unmounted}"
        );
        let read_only = why(loader(true, true, Some(nix::errno::Errno::EROFS), free));
        assert!(
            read_only.contains(".replace cannot be written") && read_only.contains("read-only"),
            "{read_only}"
        );
        let confined = why(loader(
            true,
            true,
            None,
            "containers-default-0.50.1 (enforce)\n",
        ));
        assert!(
            confined.contains("'containers-default-0.50.1 (enforce)'"),
            "{confined}"
        );
        for line in [unmounted, read_only, confined] {
            assert!(!line.contains('\n'), "{line}");
        }
    }

    #[test]
    fn deny_list_parses() {
        let rules = parse_deny_list(DENY_LIST).unwrap();
        assert!(rules.contains(&Rule {
            path: "\"/proc/sysrq-trigger\"".into(),
            access: "rwlkmx".into()
        }));
        assert!(rules.iter().any(|r| r.path == "\"/dev/nvme**\""));
        assert!(parse_deny_list("/x nope").is_err());
        assert!(parse_deny_list("relative all").is_err());
    }

    #[test]
    fn quoting_refuses_what_could_inject() {
        assert_eq!(quote_path("/dev/ttyUSB*").unwrap(), "\"/dev/ttyUSB*\"");
        assert_eq!(quote_path("/a b").unwrap(), "\"/a b\"");
        assert!(quote_path("/a\", /etc/x r").is_err());
        assert!(quote_path("/a\n  file,").is_err());
        assert!(quote_path("/a\\").is_err());
        assert!(quote_path("a").is_err());
        assert!(quote_path("/x } profile y {").is_err());
        assert!(quote_path("/x{a}").is_err());
        assert!(quote_path("/x[ab").is_err());
        assert!(quote_path("/x{a,b}/[0-9]").is_ok());
    }

    /// Does `name` (a path under base) match one of the globs? A tiny
    /// matcher for the subset used: literal chars, '?', '*', '[^..]',
    /// and the '{,/**}' tail.
    fn denied(globs: &[String], path: &str) -> bool {
        fn m(p: &[char], s: &[char]) -> bool {
            match p.first() {
                None => s.is_empty(),
                Some('*') => (0..=s.len()).any(|i| !s[..i].contains(&'/') && m(&p[1..], &s[i..])),
                Some('?') => !s.is_empty() && s[0] != '/' && m(&p[1..], &s[1..]),
                Some('[') => {
                    let end = p.iter().position(|&c| c == ']').unwrap();
                    let set = &p[2..end];
                    !s.is_empty()
                        && s[0] != '/'
                        && !set.contains(&s[0])
                        && m(&p[end + 1..], &s[1..])
                }
                Some(c) => !s.is_empty() && s[0] == *c && m(&p[1..], &s[1..]),
            }
        }
        globs.iter().any(|g| {
            let g = g.trim_matches('"').strip_suffix("{,/**}").unwrap();
            let s: Vec<char> = path.chars().collect();
            let p: Vec<char> = g.chars().collect();
            (0..=s.len()).any(|i| (i == s.len() || s[i] == '/') && m(&p, &s[..i]))
        })
    }

    #[test]
    fn proc_sys_writes_denied_except_namespaced_knobs() {
        let g = deny_writes(false);
        for ok in [
            "/proc/sys/kernel/hostname",
            "/proc/sys/kernel/domainname",
            "/proc/sys/kernel/shmmax",
            "/proc/sys/kernel/msgmnb",
            "/proc/sys/kernel/sem",
            "/proc/sys/net/ipv4/ip_forward",
            "/proc/sys/net/core/somaxconn",
        ] {
            assert!(!denied(&g, ok), "{ok} should be writable: {g:#?}");
        }
        for no in [
            "/proc/sys/vm/drop_caches",
            "/proc/sys/kernel/panic",
            "/proc/sys/kernel/hostnamex",
            "/proc/sys/kernel/d",
            "/proc/sys/kernel/domain",
            "/proc/sys/kernel/sysrq",
            "/proc/sys/kernel/modprobe",
            "/proc/sys/kernel/core_pattern",
            "/proc/sys/kernel/random/boot_id",
            "/proc/sys/fs/file-max",
            "/proc/sys/n",
            "/proc/sys/netx/a",
        ] {
            assert!(denied(&g, no), "{no} should be denied: {g:#?}");
        }
    }

    #[test]
    fn sys_writes_denied_except_the_network_and_cgroups() {
        let g = deny_writes(false);
        for ok in [
            "/sys/class/net/lo/mtu",
            "/sys/devices/virtual/net/lo/mtu",
            "/sys/fs/cgroup/cgroup.procs",
        ] {
            assert!(!denied(&g, ok), "{ok} should be writable: {g:#?}");
        }
        for no in [
            "/sys/kernel/uevent_helper",
            "/sys/power/state",
            "/sys/class/gpio/export",
            "/sys/devices/system/cpu/cpu1/online",
            "/sys/devices/virtual/misc/x",
            "/sys/fs/ext4/x",
            "/sys/block/sda/queue/scheduler",
            "/sys/module/x/parameters/y",
        ] {
            assert!(denied(&g, no), "{no} should be denied: {g:#?}");
        }
    }

    /// Paths of the host's network settings, and paths still the
    /// firmware's under `--net host`.
    const NET_KNOBS: &[&str] = &[
        "/proc/sys/net/ipv4/ip_forward",
        "/proc/sys/net/core/somaxconn",
        "/proc/sys/net",
        "/sys/class/net/lo/mtu",
        "/sys/devices/virtual/net/lo/mtu",
        "/sys/devices/virtual/net/eth0/flags",
    ];
    const OWN_KNOBS: &[&str] = &[
        "/proc/sys/kernel/hostname",
        "/proc/sys/kernel/domainname",
        "/proc/sys/kernel/shmmax",
        "/proc/sys/kernel/msgmnb",
        "/proc/sys/kernel/sem",
        "/sys/fs/cgroup/cgroup.procs",
    ];

    #[test]
    fn under_host_network_the_network_is_not_writable() {
        let own = deny_writes(false);
        let host = deny_writes(true);
        for p in NET_KNOBS {
            assert!(!denied(&own, p), "{p}: the firmware's own under --net none");
            assert!(
                denied(&host, p),
                "{p} should be denied under --net host: {host:#?}"
            );
        }
        for p in OWN_KNOBS {
            assert!(!denied(&host, p), "{p} should stay writable: {host:#?}");
        }
        // Everything refused with a network of its own is refused still.
        for p in [
            "/proc/sys/vm/drop_caches",
            "/proc/sys/kernel/panic",
            "/proc/sys/netx/a",
            "/proc/sys/n",
            "/sys/class/gpio/export",
            "/sys/devices/virtual/misc/x",
            "/sys/kernel/uevent_helper",
        ] {
            assert!(denied(&own, p) && denied(&host, p), "{p}");
        }
    }

    #[test]
    fn renders_per_network_mode() {
        let spec = |host_network| ProfileSpec {
            name: "t1",
            profile: "fwrun-t1-0123abcd",
            template: DEFAULT_TEMPLATE,
            extra_deny: &[],
            allow_mknod: false,
            host_network,
        };
        let none = render(&spec(false)).unwrap();
        let host = render(&spec(true)).unwrap();
        assert!(!none.contains("net_admin"), "{none}");
        assert!(
            host.contains("\n  audit deny capability net_admin,\n"),
            "{host}"
        );
        for g in deny_writes(true) {
            assert!(host.contains(&format!("\n  audit deny {g} w,\n")), "{g}");
        }
        // The rest is the same profile.
        let rules = |t: &str| -> std::collections::BTreeSet<String> {
            t.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .filter(|l| !l.ends_with(" w,") && !l.contains("net_admin"))
                .map(str::to_string)
                .collect()
        };
        assert_eq!(rules(&none), rules(&host));
    }

    #[test]
    fn renders_with_every_part() {
        let text = render(&ProfileSpec {
            name: "t1",
            profile: "fwrun-t1-0123abcd",
            template: DEFAULT_TEMPLATE,
            extra_deny: &["/dev/ttyUSB*".into()],
            allow_mknod: false,
            host_network: false,
        })
        .unwrap();
        assert!(text
            .contains("profile fwrun-t1-0123abcd flags=(attach_disconnected,mediate_deleted) {"));
        assert!(text.contains("abi <abi/3.0>,"));
        assert!(text.contains("audit deny capability sys_time,"));
        assert!(text.contains("audit deny capability mknod,"));
        assert!(text.contains("audit deny \"/proc/sysrq-trigger\" rwlkmx,"));
        assert!(text.contains("audit deny \"/dev/ttyUSB*\" rwlkmx,"));
        assert!(text.contains("audit deny mount fstype=devtmpfs,"));
        let with_mknod = render(&ProfileSpec {
            name: "t1",
            profile: "fwrun-t1-0123abcd",
            template: DEFAULT_TEMPLATE,
            extra_deny: &[],
            allow_mknod: true,
            host_network: false,
        })
        .unwrap();
        assert!(!with_mknod.contains("capability mknod"));
    }

    #[test]
    fn bad_templates_and_paths_are_launcher_errors() {
        let e = render(&ProfileSpec {
            name: "t",
            profile: "fwrun-t-0123abcd",
            template: "{% for x in %}",
            extra_deny: &[],
            allow_mknod: false,
            host_network: false,
        })
        .unwrap_err();
        assert_eq!(crate::error::exit_code(&e), 125);
        assert!(e.to_string().contains("template"), "{e}");
        let e = render(&ProfileSpec {
            name: "t",
            profile: "fwrun-t-0123abcd",
            template: DEFAULT_TEMPLATE,
            extra_deny: &["/x\"\n  capability,".into()],
            allow_mknod: false,
            host_network: false,
        })
        .unwrap_err();
        assert!(e.to_string().contains("--deny"), "{e}");
    }
}
