//! The names a run goes by on the host, made once from its name and handed
//! down: the overlay's source and the cgroups are `fwrun-NAME`, the
//! AppArmor profile `fwrun-NAME-ID` (ID fresh for every invocation, so that
//! neither of two runs of one name, nor a sweep of a dead one, can replace
//! or unload the other's), the host side of a veth `fw-NAME`. A sweep finds
//! what a dead run left by these names.

/// What every name of a run starts with.
pub const PREFIX: &str = "fwrun-";
/// What the host side of a run's veth starts with.
pub const VETH_PREFIX: &str = "fw-";
/// The longest interface name the kernel takes (IFNAMSIZ - 1).
const IFNAME_MAX: usize = 15;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The run's name (`--name`, or generated).
    pub name: String,
    /// `fwrun-NAME`: the overlay's source, the run's cgroups.
    pub label: String,
    /// `fwrun-NAME-ID`: the run's AppArmor profile.
    pub profile: String,
    /// The host side of its veth: `fw-NAME`, or shortened (see
    /// [`veth_host`]).
    pub veth_host: String,
}

impl Identity {
    /// The names of run `name`, with a fresh instance id for its profile.
    pub fn new(name: String) -> Identity {
        Identity::with_instance(name, &crate::state::instance_id())
    }

    pub fn with_instance(name: String, instance: &str) -> Identity {
        let label = format!("{PREFIX}{name}");
        Identity {
            profile: format!("{label}-{instance}"),
            veth_host: veth_host(&name),
            label,
            name,
        }
    }
}

/// The host side's name for run `run`: `fw-RUN`, or, when that is past the
/// limit, `fw-` with the run name's first six characters and five hex
/// digits of a hash of the whole name, so that two long names that start
/// alike still differ.
pub fn veth_host(run: &str) -> String {
    let whole = format!("{VETH_PREFIX}{run}");
    if whole.len() <= IFNAME_MAX {
        return whole;
    }
    // FNV-1a: stable across builds and machines.
    let hash = run.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    let head: String = run.chars().take(6).collect();
    format!("{VETH_PREFIX}{head}-{:05x}", hash & 0xf_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_comes_from_the_run_s() {
        let id = Identity::with_instance("t1".into(), "0000abcd");
        assert_eq!(id.label, "fwrun-t1");
        assert_eq!(id.profile, "fwrun-t1-0000abcd");
        assert_eq!(id.veth_host, "fw-t1");
        let fresh = Identity::new("t1".into());
        assert!(fresh.profile.starts_with("fwrun-t1-"), "{}", fresh.profile);
        assert_ne!(fresh.profile, Identity::new("t1".into()).profile);
    }

    #[test]
    fn veth_host_names_fit_and_differ() {
        assert_eq!(veth_host("fw3fa2c1"), "fw-fw3fa2c1");
        assert_eq!(veth_host("abcdefghijkl"), "fw-abcdefghijkl");
        let a = veth_host("bridge-test-alpha");
        let b = veth_host("bridge-test-beta");
        assert_ne!(a, b);
        assert!(a.len() <= IFNAME_MAX && b.len() <= IFNAME_MAX, "{a} {b}");
        assert_eq!(a, veth_host("bridge-test-alpha"), "stable");
        assert!(veth_host(&"x".repeat(32)).len() <= IFNAME_MAX);
    }
}
