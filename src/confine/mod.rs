//! Confinement of the firmware beyond its namespaces: the per-run AppArmor
//! profile (render, load, enter, unload) and what it denied.

pub mod apparmor;
pub mod denials;
