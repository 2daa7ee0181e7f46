//! The firmware's links to the host, made by the launcher with rtnetlink
//! (netlink.rs) between the clone and the init's exec:
//!
//! - `--net veth`: a veth pair whose firmware side (`eth0`) is made directly
//!   in the firmware's network namespace, down and unaddressed, as a device
//!   boots with it; the host side (`fw-NAME`) is brought up, with an address
//!   if one was given, or enslaved to a bridge (`--net bridge:BR`);
//! - `--net-move`: host interfaces moved into the firmware's namespace, and
//!   back under their own names, with their flags and MTU, at the end.
//!
//! `--publish` (publish.rs, relay.rs) carries the host's ports to the
//! firmware's inside its namespace, with any of them, or none; inside.rs
//! makes fwrun's own sockets there (`--ready-when tcp:`).
//!
//! Everything is checked before anything is made (check.rs); attach.rs
//! makes it for one boot while the child waits, and takes it back. The host
//! side of a veth carries the run's name and is recorded in the run's
//! state: the kernel deletes the pair with the firmware's namespace, and the
//! sweep deletes it when a run died while something else held that
//! namespace.

pub mod attach;
pub mod check;
pub mod inside;
pub mod netlink;
pub mod publish;
pub mod relay;

use std::fmt;
use std::net::Ipv4Addr;

use anyhow::{anyhow, Result};
use nix::errno::Errno;

use crate::network::netlink::{Link, Rtnl};
use crate::sys::errno_text;

/// The longest interface name the kernel takes (IFNAMSIZ less its NUL).
pub const IFNAME_MAX: usize = 15;
/// The firmware side's name unless `--veth-name` says otherwise.
pub const DEFAULT_VETH_NAME: &str = "eth0";
/// What starts the name of every host side fwrun makes.
pub use crate::state::identity::VETH_PREFIX as HOST_PREFIX;

/// An IPv4 address with its prefix length: `169.254.77.2/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostAddr {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl fmt::Display for HostAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl HostAddr {
    fn mask(prefix: u8) -> u32 {
        if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(prefix))
        }
    }

    /// Whether this network and `dst/prefix` share an address.
    fn overlaps(&self, dst: Ipv4Addr, prefix: u8) -> bool {
        let m = Self::mask(self.prefix.min(prefix));
        u32::from(self.addr) & m == u32::from(dst) & m
    }
}

/// `A.B.C.D/N`: a unicast IPv4 address that may be a host's, with a prefix
/// length from 1 to 31 (on a /30 or wider, neither the network's first nor
/// its last address).
pub fn parse_host_addr(s: &str) -> Result<HostAddr, String> {
    let (a, p) = s.split_once('/').ok_or_else(|| {
        format!("'{s}' has no prefix length: write it as ADDRESS/PREFIX, e.g. 169.254.77.2/24")
    })?;
    let addr: Ipv4Addr = a
        .parse()
        .map_err(|_| format!("'{a}' is not an IPv4 address"))?;
    let prefix: u8 = p
        .parse()
        .ok()
        .filter(|n| (1..=31).contains(n))
        .ok_or_else(|| format!("'{p}' is not a prefix length from 1 to 31"))?;
    if addr.is_unspecified()
        || addr.is_loopback()
        || addr.is_multicast()
        || addr.is_broadcast()
        || addr.octets()[0] == 0
        || addr.octets()[0] >= 240
    {
        return Err(format!("{addr} cannot be an interface's address"));
    }
    let host = u32::from(addr) & !HostAddr::mask(prefix);
    if prefix <= 30 && (host == 0 || host == !HostAddr::mask(prefix)) {
        return Err(format!(
            "{addr} is the first or last address of {}/{prefix}, not a host's",
            Ipv4Addr::from(u32::from(addr) & HostAddr::mask(prefix))
        ));
    }
    Ok(HostAddr { addr, prefix })
}

/// An interface name the kernel takes as it is: 1 to 15 bytes, no '/',
/// ':', '%' or white space, not "." or "..".
pub fn check_ifname(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("an interface name is empty".into());
    }
    if s.len() > IFNAME_MAX {
        return Err(format!(
            "'{s}' is longer than {IFNAME_MAX} bytes, the kernel's limit for an interface name"
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| matches!(c, '/' | ':' | '%') || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "'{}' holds '{}', which an interface name cannot",
            s.escape_default(),
            c.escape_default()
        ));
    }
    if s == "." || s == ".." {
        return Err(format!("'{s}' is not an interface name"));
    }
    Ok(())
}

/// `--net-move IFACE[:NEWNAME]`: a host interface and its name inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub host: String,
    pub inside: String,
}

pub fn parse_move(s: &str) -> Result<Move, String> {
    let (host, inside) = s.split_once(':').unwrap_or((s, s));
    check_ifname(host)?;
    check_ifname(inside)?;
    Ok(Move {
        host: host.into(),
        inside: inside.into(),
    })
}

/// The veth of `--net veth` or `--net bridge`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Veth {
    /// Its host side, `fw-NAME`.
    pub host: String,
    /// Its firmware side (`eth0`).
    pub inside: String,
    /// The host side's address, under `--net veth:ADDR/PREFIX`.
    pub addr: Option<HostAddr>,
    /// The bridge its host side joins, under `--net bridge:BR`.
    pub bridge: Option<String>,
}

/// What the firmware's network namespace is given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub veth: Option<Veth>,
    pub moves: Vec<Move>,
}

impl Plan {
    /// Whether there is anything to make after the clone.
    pub fn is_empty(&self) -> bool {
        self.veth.is_none() && self.moves.is_empty()
    }
}

fn rtnl() -> Result<Rtnl> {
    Rtnl::open().map_err(|e| anyhow!("opening a route netlink socket: {}", errno_text(e)))
}

pub(crate) fn lookup(nl: &mut Rtnl, name: &str) -> Result<Option<Link>> {
    nl.link(name)
        .map_err(|e| anyhow!("looking up interface {name}: {}", errno_text(e)))
}

/// The sweep: delete the host side of a dead run's veth, if it is still
/// there (the kernel deletes it with the firmware's namespace, unless
/// something else kept that alive).
pub fn release_link(name: &str) -> Result<()> {
    let mut nl = rtnl()?;
    match lookup(&mut nl, name)? {
        Some(l) if l.kind.as_deref() == Some("veth") => match nl.del_link(l.index) {
            Ok(()) | Err(Errno::ENODEV) => Ok(()),
            Err(e) => Err(anyhow!("deleting interface {name}: {}", errno_text(e))),
        },
        _ => Ok(()),
    }
}

/// What the firmware was given, in words, for `-v`.
pub fn describe(plan: &Plan) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(v) = &plan.veth {
        let host = match (&v.addr, &v.bridge) {
            (Some(a), _) => format!("{} is up with {a}", v.host),
            (None, Some(br)) => format!("{} is up in bridge {br}", v.host),
            (None, None) => format!("{} is up", v.host),
        };
        lines.push(format!(
            "gave the firmware {}, one end of a veth pair whose host end {host}",
            v.inside
        ));
    }
    for m in &plan.moves {
        if m.inside == m.host {
            lines.push(format!("moved {} into the firmware's network", m.host));
        } else {
            lines.push(format!(
                "moved {} into the firmware's network as {}",
                m.host, m.inside
            ));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> HostAddr {
        parse_host_addr(s).unwrap()
    }

    #[test]
    fn host_addresses() {
        assert_eq!(
            addr("169.254.77.2/24"),
            HostAddr {
                addr: Ipv4Addr::new(169, 254, 77, 2),
                prefix: 24
            }
        );
        assert_eq!(addr("10.0.0.1/31").to_string(), "10.0.0.1/31");
        for bad in [
            "169.254.77.2",
            "169.254.77.2/",
            "169.254.77.2/0",
            "169.254.77.2/32",
            "169.254.77.2/33",
            "169.254.77.256/24",
            "fe80::1/64",
            "169.254.77.0/24",
            "169.254.77.255/24",
            "127.0.0.2/8",
            "224.0.0.1/24",
            "0.1.2.3/8",
            "255.255.255.255/24",
            "x/24",
        ] {
            assert!(parse_host_addr(bad).is_err(), "{bad} was taken");
        }
    }

    #[test]
    fn interface_names() {
        assert!(check_ifname("eth0").is_ok());
        assert!(check_ifname("wlx00c0ca123456").is_ok());
        assert!(check_ifname("a234567890123456")
            .unwrap_err()
            .contains("15 bytes"));
        for bad in ["", "a/b", "a:b", "a b", "eth%d", ".", "..", "a\nb"] {
            assert!(check_ifname(bad).is_err(), "{bad:?} was taken");
        }
    }

    #[test]
    fn moves() {
        assert_eq!(
            parse_move("tap0").unwrap(),
            Move {
                host: "tap0".into(),
                inside: "tap0".into()
            }
        );
        assert_eq!(parse_move("wlan1:wlan0").unwrap().inside, "wlan0");
        assert!(parse_move("tap0:").is_err());
        assert!(parse_move(":x").is_err());
        assert!(parse_move("tap0:a234567890123456").is_err());
    }
}
