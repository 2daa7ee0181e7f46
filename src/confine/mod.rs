//! Confinement of the firmware beyond its namespaces. What the kernel
//! enforces on every host: a reduced capability set (`caps.rs`) and a
//! seccomp filter (`seccomp.rs`) whose mount calls and refused calls the
//! supervisor answers (`notify.rs`, deciding mounts in `mounts.rs`). Where
//! the kernel has AppArmor, the per-run profile (`apparmor.rs`) and what it
//! denied (`denials.rs`). Both count what was refused in a bounded
//! `tally.rs`.

pub mod apparmor;
pub mod caps;
pub mod denials;
pub mod mounts;
pub mod notify;
pub mod seccomp;
pub mod tally;
