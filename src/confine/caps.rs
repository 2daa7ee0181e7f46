//! The firmware's capabilities: everything an init uses, minus what reaches
//! the host however it is namespaced (the clock, kernel modules, raw I/O,
//! the kernel log, the LSMs, audit, BPF). Computed here by the launcher;
//! the child applies it just before its exec (process/confine.rs).

use std::str::FromStr;

use caps::Capability;

/// Dropped on every run: each reaches the host from any namespace.
pub const DROPPED: &[Capability] = &[
    Capability::CAP_SYS_MODULE,
    Capability::CAP_SYS_TIME,
    Capability::CAP_SYS_RAWIO,
    Capability::CAP_SYSLOG,
    Capability::CAP_WAKE_ALARM,
    Capability::CAP_SYS_PACCT,
    Capability::CAP_MAC_ADMIN,
    Capability::CAP_MAC_OVERRIDE,
    Capability::CAP_AUDIT_CONTROL,
    Capability::CAP_BPF,
    Capability::CAP_PERFMON,
    Capability::CAP_BLOCK_SUSPEND,
];

/// What decides the set, besides the fixed list.
pub struct CapsRequest<'a> {
    pub allow_mknod: bool,
    /// The firmware shares the host's network: its interfaces are the host's.
    pub host_network: bool,
    pub add: &'a [Capability],
    pub drop: &'a [Capability],
}

/// The capabilities the init keeps, sorted by number.
pub fn kept(req: &CapsRequest) -> Vec<Capability> {
    let mut dropped: Vec<Capability> = DROPPED.to_vec();
    if !req.allow_mknod {
        dropped.push(Capability::CAP_MKNOD);
    }
    if req.host_network {
        dropped.push(Capability::CAP_NET_ADMIN);
    }
    let mut keep: Vec<Capability> = caps::all()
        .into_iter()
        .filter(|c| (!dropped.contains(c) || req.add.contains(c)) && !req.drop.contains(c))
        .collect();
    keep.sort_by_key(|c| c.index());
    keep
}

/// The capabilities of the whole set that are not in `keep`, sorted.
pub fn dropped(keep: &[Capability]) -> Vec<Capability> {
    let mut d: Vec<Capability> = caps::all()
        .into_iter()
        .filter(|c| !keep.contains(c))
        .collect();
    d.sort_by_key(|c| c.index());
    d
}

/// A set of capabilities as the kernel writes one: bit N for capability N.
pub fn to_mask(set: &[Capability]) -> u64 {
    set.iter().fold(0, |m, c| m | c.bitmask())
}

/// The capabilities of a mask, sorted by number.
pub fn from_mask(mask: u64) -> Vec<Capability> {
    let mut set: Vec<Capability> = caps::all()
        .into_iter()
        .filter(|c| mask & c.bitmask() != 0)
        .collect();
    set.sort_by_key(|c| c.index());
    set
}

/// A capability's short name, as the command line takes it: `sys_time`.
pub fn short_name(c: Capability) -> String {
    c.to_string()
        .trim_start_matches("CAP_")
        .to_ascii_lowercase()
}

/// `SYS_TIME`, `sys_time` or `CAP_SYS_TIME`.
pub fn parse(name: &str) -> Result<Capability, String> {
    Capability::from_str(&caps::to_canonical(name)).map_err(|_| {
        format!("'{name}' is not a capability: use a name like SYS_TIME or NET_RAW (man 7 capabilities)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(add: &'a [Capability], drop: &'a [Capability]) -> CapsRequest<'a> {
        CapsRequest {
            allow_mknod: false,
            host_network: false,
            add,
            drop,
        }
    }

    #[test]
    fn the_default_set_keeps_what_an_init_needs_and_nothing_that_reaches_the_host() {
        let keep = kept(&req(&[], &[]));
        for c in [
            Capability::CAP_SYS_ADMIN,
            Capability::CAP_NET_ADMIN,
            Capability::CAP_SYS_BOOT,
            Capability::CAP_CHOWN,
            Capability::CAP_SETPCAP,
        ] {
            assert!(keep.contains(&c), "{c} must be kept");
        }
        for c in DROPPED.iter().chain([&Capability::CAP_MKNOD]) {
            assert!(!keep.contains(c), "{c} must be dropped");
        }
        assert_eq!(keep.len() + dropped(&keep).len(), caps::all().len());
    }

    #[test]
    fn mknod_host_network_add_and_drop() {
        let keep = kept(&CapsRequest {
            allow_mknod: true,
            host_network: true,
            add: &[Capability::CAP_SYS_TIME],
            drop: &[Capability::CAP_NET_RAW],
        });
        assert!(keep.contains(&Capability::CAP_MKNOD));
        assert!(keep.contains(&Capability::CAP_SYS_TIME));
        assert!(!keep.contains(&Capability::CAP_NET_ADMIN));
        assert!(!keep.contains(&Capability::CAP_NET_RAW));
    }

    #[test]
    fn a_set_goes_through_its_mask_unchanged() {
        let keep = kept(&req(&[], &[]));
        assert_eq!(from_mask(to_mask(&keep)), keep);
        assert_eq!(to_mask(&[Capability::CAP_CHOWN]), 1);
        assert_eq!(to_mask(&[Capability::CAP_SYS_ADMIN]), 1 << 21);
    }

    #[test]
    fn names() {
        assert_eq!(parse("sys_time"), Ok(Capability::CAP_SYS_TIME));
        assert_eq!(parse("CAP_NET_RAW"), Ok(Capability::CAP_NET_RAW));
        assert!(parse("time").is_err());
        assert_eq!(short_name(Capability::CAP_SYS_ADMIN), "sys_admin");
    }
}
