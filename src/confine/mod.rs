//! Confinement of the firmware beyond its namespaces, decided by the
//! launcher (every child of the firmware's applies it: process/confine.rs).
//! What the kernel enforces on every host: a reduced capability set
//! (`caps.rs`) and a seccomp filter (`seccomp.rs`) whose mount calls and
//! refused calls the supervisor answers (`notify.rs`, deciding mounts in
//! `mounts.rs`). Where the kernel has AppArmor, the per-run profile
//! (`apparmor.rs`) and what it denied (`denials.rs`). Both count what was
//! refused in a bounded `tally.rs`.

pub mod apparmor;
pub mod caps;
pub mod denials;
pub mod mounts;
pub mod notify;
pub mod seccomp;
pub mod tally;

use crate::process::confine::Confinement;

/// What a child of the firmware's is confined with: the AppArmor profile
/// (when one is loaded), the capabilities it keeps, and (with `seccomp`)
/// the filter, built here once rather than in each child; with
/// `users_terminal` (its console is the user's own terminal) the filter
/// also keeps it from reaching that terminal beyond reading and writing.
pub fn confinement(
    profile: Option<String>,
    keep: Vec<::caps::Capability>,
    seccomp: bool,
    users_terminal: bool,
) -> Confinement {
    let filter = seccomp.then(|| seccomp::program_with(profile.is_none(), users_terminal));
    Confinement {
        profile,
        keep,
        filter,
    }
}
